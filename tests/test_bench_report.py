"""``python -m logitloss.bench --quick --only ... --out DIR`` writes the whole report folder (one tiny timing row;
the safety and accuracy tables always run, float16, float32 and float64), and logitloss is right on every entry of
both tables; without JAX the run still succeeds and the report says JAX was skipped."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from .helpers.libraries import require


FILES = ("report.md", "safety.md", "accuracy.md", "results.json", "results.csv", "time_vs_width.png",
         "roofline.png", "memory.png")
MACHINE_KEYS = ("cpu_model", "logitloss_isa", "logical_cores", "logitloss_version", "numpy_version", "threads",
                "timestamp_utc")


def test_quick_report_folder(tmp_path):
    require("mpmath")  # the exact references of safety.md and accuracy.md
    require("matplotlib")  # the plots
    out = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "logitloss.bench", "--quick", "--only", "bce_tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, f"{name} missing"
    assert (out / "time_vs_width.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [case["case"] for case in results["cases"]] == ["bce_tiny"]
    assert all(results["machine"].get(key) not in (None, "") for key in MACHINE_KEYS)
    with open(out / "results.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["cpu_model"] and row["logitloss_isa"] and row["threads"] for row in rows)
    assert {row["provider"] for row in rows} >= {"logitloss", "numpy stable"}

    # logitloss: every value and gradient of the adversarial catalogue right, and every random-logit error
    # within the bounds (4 eps for values, 8 for gradients, times the condition scale)
    safety = [cell for cell in results["safety"]["cells"] if cell["provider"] == "logitloss"]
    assert {cell["kernel"] for cell in safety} == {"logsumexp", "softmax", "log_softmax", "cross_entropy",
                                                   "binary_cross_entropy_with_logits"}
    wrong = [(cell["entry"], cell["kernel"], cell["value"]["status"], cell["gradient"]["status"])
             for cell in safety if cell["value"]["status"] != "ok" or cell["gradient"]["status"] != "ok"]
    assert not wrong, wrong
    assert {entry["dtype"] for entry in results["safety"]["catalogue"]} == {"float16", "float32", "float64"}
    assert {cell["dtype"] for cell in results["accuracy"]["cells"]} == {"float32", "float64"}
    accuracy = [cell for cell in results["accuracy"]["cells"] if cell["provider"] == "logitloss"]
    assert accuracy
    too_large = [cell for cell in accuracy if not (isinstance(cell["value"], float) and cell["value"] <= 4
                                                    and isinstance(cell["gradient"], float)
                                                    and cell["gradient"] <= 8)]
    assert not too_large, too_large
    # and the table shows at least one peer failing somewhere (the tables can tell right from wrong)
    assert any(cell["value"]["status"] != "ok" for cell in results["safety"]["cells"]
               if cell["provider"] == "numpy stable")


def test_run_without_jax(tmp_path):
    """JAX hidden (``sys.modules["jax"] = None``): no error, a note in each row that would use it, and the
    providers section of the report says it was skipped."""
    out = tmp_path / "report"
    script = ("import sys; sys.modules['jax'] = None\n"
              "from logitloss.bench.__main__ import main\n"
              f"sys.exit(main(['--quick', '--timing-only', '--only', 'cross_entropy_tiny', '--out', {str(out)!r}]))")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                               cwd=tmp_path, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "jax: not available" in report
    assert "**skipped**" in report.split("## Providers")[1].split("##")[0]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    providers = {timing["provider"] for timing in results["cases"][0]["timings"]}
    assert "logitloss" in providers and "jax" not in providers
