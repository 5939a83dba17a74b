"""The example notebook runs top to bottom on a demo dataset and computes the right energy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOK = EXAMPLES / "explore_dataset.ipynb"


def load_demo_module():
    spec = importlib.util.spec_from_file_location("xcomlog_demo_data", EXAMPLES / "demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.timeout(180)
def test_notebook_executes_on_demo_dataset(tmp_path, monkeypatch):
    from jupyter_client.manager import KernelManager

    data = tmp_path / "data"
    expected = load_demo_module().make_demo_dataset(data, days=2)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # one extra cell hands the notebook's result back to the test
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json\n"
            "print('ENERGY=' + json.dumps({str(d): row.to_dict() for d, row in energy.iterrows()}))"
        )
    )
    monkeypatch.setenv("XCOMLOG_DATASET", str(data))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend draws the PNGs
    monkeypatch.chdir(tmp_path)
    km = KernelManager(kernel_name="python3", transport="ipc")  # no TCP port at all
    client = nbclient.NotebookClient(
        nb, km=km, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the day plot and the energy bar chart
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    energy = json.loads(text.split("ENERGY=", 1)[1].splitlines()[0])
    assert sorted(energy) == sorted(expected)
    for day, per_device in expected.items():
        for device, kwh in per_device.items():
            assert energy[day][device] == pytest.approx(kwh, rel=1e-4), (day, device)
