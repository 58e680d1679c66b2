"""examples/calibrate_digits.py runs (under a minute) and temperature scaling does what it claims there."""

import importlib.util
import pathlib

import pytest

from .helpers.libraries import require

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "calibrate_digits.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/ is not shipped with the installed package")
def test_calibrate_digits_example(tmp_path, capsys):
    require("sklearn.datasets")
    require("matplotlib")
    spec = importlib.util.spec_from_file_location("calibrate_digits", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    png = tmp_path / "reliability.png"
    result = example.main([str(png)])
    before, after = result["before"], result["after"]
    assert result["temperature"] > 2.0  # overfitted: overconfident
    assert after["accuracy"] == before["accuracy"]  # dividing by T > 0 keeps every argmax
    assert after["nll"] < 0.5 * before["nll"] and after["ece"] < 0.5 * before["ece"]
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ECE" in capsys.readouterr().out
