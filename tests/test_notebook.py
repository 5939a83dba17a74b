"""The example notebook runs top to bottom on live, SD-imported and mixed datasets, from the
``examples/`` folder and from the repository root, and computes the right energy."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
NOTEBOOK = EXAMPLES / "explore_dataset.ipynb"
#: Real SD-card samples: 1 XTH + VS-70 + BSP (31 Dec 2018), 3 XTH + VT + 2 VS + BSP (13 Jul 2018).
SAMPLES = ["LG181231.CSV", "LG180713.CSV"]


def load_demo_module():
    spec = importlib.util.spec_from_file_location("xcomlog_demo_data", EXAMPLES / "demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook(cwd: Path, monkeypatch, dataset: Path | None, site: str | None = None):
    """Execute the notebook with ``cwd`` as working directory; return (outputs, result)."""
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # one extra cell hands the notebook's result back to the test
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json\n"
            "print('RESULT=' + json.dumps({'energy': {str(d): row.to_dict() for d, row in "
            "energy.iterrows()}, 'soc': soc_columns, 'pv': pv_columns, 'site': SITE, "
            "'sources': sorted({str(v) for c in sources.columns for v in day[c].dropna()})}))"
        )
    )
    if dataset is None:
        monkeypatch.delenv("XCOMLOG_DATASET", raising=False)
    else:
        monkeypatch.setenv("XCOMLOG_DATASET", str(dataset))
    if site is None:
        monkeypatch.delenv("XCOMLOG_SITE", raising=False)
    else:
        monkeypatch.setenv("XCOMLOG_SITE", site)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend draws the PNGs
    monkeypatch.chdir(cwd)
    # no TCP port at all; the IPC sockets go to a temporary folder, not the working one
    # (the notebook runs from the repository root and examples/ too)
    sockets = Path(tempfile.mkdtemp(prefix="xcomlog-kernel-"))
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "kernel-ipc"))
    client = nbclient.NotebookClient(
        nb, km=km, timeout=120, resources={"metadata": {"path": str(cwd)}}
    )
    try:
        client.execute()  # raises CellExecutionError naming the failing cell
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    result = json.loads(text.split("RESULT=", 1)[1].splitlines()[0])
    return outputs, result


def images(outputs) -> int:
    return len([o for o in outputs if "image/png" in o.get("data", {})])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("live") / "data"
    expected = load_demo_module().make_demo_dataset(data, days=2)
    return data, expected


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from conftest import SD_DATALOG

    from xcomlog import importer

    if not SD_DATALOG.is_dir():
        pytest.skip("../shared/reference/sd-datalog is not present")
    data = tmp_path_factory.mktemp("imported") / "data"
    importer.import_paths(
        [SD_DATALOG / name for name in SAMPLES], site="demo", tz="Europe/Zurich", out=data,
        progress=False,
    )  # fmt: skip
    return data


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, imported):
    """Live demo days (before) and an imported real day (the latest day) in one site."""
    from conftest import SD_DATALOG

    from xcomlog import importer

    data = tmp_path_factory.mktemp("mixed") / "data"
    expected = load_demo_module().make_demo_dataset(data, first_day=dt.date(2018, 12, 28), days=2)
    importer.import_paths(
        [SD_DATALOG / "LG181231.CSV"], site="demo", tz="Europe/Zurich", out=data, progress=False
    )
    return data, expected


def sd_energy(data: Path, day: str) -> dict[str, float]:
    """Independent of the notebook: minute averages (kW, one per minute) summed / 60."""
    import xcomlog

    raw = xcomlog.read(data, numbers=[3101, 11043, 15061], wide=False)
    raw = raw[raw["address"].isin([101, 102, 103, 301, 701, 702])]
    raw = raw[raw["time"].dt.date.astype(str) == day]
    return {
        str(k): float(v) / 60
        for k, v in raw.groupby("device", observed=True)["value"].sum().items()
    }


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["examples", "root"])
def test_notebook_on_the_live_demo_dataset(where, live, monkeypatch):
    data, expected = live
    outputs, result = run_notebook(EXAMPLES if where == "examples" else REPO, monkeypatch, data)
    assert images(outputs) >= 2  # the day plot and the energy bar chart
    energy = result["energy"]
    assert sorted(energy) == sorted(expected)
    for day, per_device in expected.items():
        for device, kwh in per_device.items():
            assert energy[day][device] == pytest.approx(kwh, rel=1e-4), (day, device)
    assert result["soc"] == ["bsp State of Charge [%]"]
    assert result["pv"] == ["vs1 PV power [kW]", "vt1 PV power [kW]"]
    assert result["sources"] == ["11004 instant", "15010 instant", "7002 instant"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["examples", "root"])
def test_notebook_on_an_imported_real_sample(where, imported, monkeypatch):
    outputs, result = run_notebook(EXAMPLES if where == "examples" else REPO, monkeypatch, imported)
    assert images(outputs) >= 2
    # The latest day is 31 Dec 2018: one XTH, one VS-70 and a BSP, all from minute averages.
    assert result["soc"] == ["bsp State of Charge [%]"] and result["pv"] == ["vs1 PV power [kW]"]
    assert result["sources"] == ["15061 minute avg", "7032 minute avg"]
    energy = result["energy"]
    want = sd_energy(imported, "2018-12-31")
    assert set(want) == {"xt1", "vs1"}
    for device, kwh in want.items():
        assert energy["2018-12-31"][device] == pytest.approx(kwh, rel=1e-4, abs=1e-6)
    # 13 July 2018: three Xtenders, a VarioTrack and two VarioStrings, each its own series
    assert {"xt1", "xt2", "xt3", "vt1", "vs1", "vs2"} <= set(energy["2018-07-13"])


@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["examples", "root"])
def test_notebook_on_a_mixed_dataset(where, mixed, monkeypatch):
    data, expected = mixed
    outputs, result = run_notebook(EXAMPLES if where == "examples" else REPO, monkeypatch, data)
    assert images(outputs) >= 2
    energy = result["energy"]
    assert sorted(energy) == ["2018-12-28", "2018-12-29", "2018-12-30", "2018-12-31"]
    for day, per_device in expected.items():  # the live days
        for device, kwh in per_device.items():
            assert energy[day][device] == pytest.approx(kwh, rel=1e-4), (day, device)
    for device, kwh in sd_energy(data, "2018-12-31").items():  # the imported day
        assert energy["2018-12-31"][device] == pytest.approx(kwh, rel=1e-4, abs=1e-6)
    assert result["sources"] == ["15061 minute avg", "7032 minute avg"]


@pytest.mark.timeout(180)
def test_notebook_finds_demo_data_one_folder_up(live, tmp_path, monkeypatch):
    import shutil

    data, expected = live
    shutil.copytree(data, tmp_path / "demo-data")
    (tmp_path / "examples").mkdir()
    _, result = run_notebook(tmp_path / "examples", monkeypatch, None)
    assert sorted(result["energy"]) == sorted(expected)


@pytest.mark.timeout(120)
def test_a_missing_dataset_is_one_clear_sentence(tmp_path, monkeypatch):
    with pytest.raises(nbclient.exceptions.CellExecutionError) as failed:
        run_notebook(tmp_path, monkeypatch, tmp_path / "nowhere")
    message = str(failed.value)
    assert "NoDataset: no xcomlog dataset at" in message and "XCOMLOG_DATASET" in message
    assert "IndexError" not in message and "Traceback" not in message
