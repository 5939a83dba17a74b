"""Values print with the precision their unit deserves: no exponents, no float32 noise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xcomlog.formatting import format_number, format_quantity


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (3.572e-21, "kW", "0 kW"),
        (-3.572e-21, "kW", "0 kW"),
        (48.756512, "V", "48.76 V"),
        (49.5, "V", "49.5 V"),
        (14.0, "Adc", "14 Adc"),
        (81.0, "%", "81 %"),
        (0.123456, "kWh", "0.12 kWh"),
        (1234.6, "W", "1235 W"),
        (50.01, "Hz", "50.01 Hz"),
        (12345678.9, "", "12345678.9"),
        (7, "", "7"),
        (float("nan"), "V", "nan V"),
    ],
)
def test_examples(value, unit, text):
    assert format_quantity(value, unit) == text


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "V", "kW", "%", "Ah", "°C", "min"]),
)
def test_never_an_exponent_and_close_to_the_value(value, unit):
    text = format_number(value, unit)
    assert "e" not in text and text != "-0"
    assert math.isclose(float(text), value, abs_tol=0.51)
