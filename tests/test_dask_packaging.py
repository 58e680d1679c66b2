"""logitloss.dask is optional: the core never imports Dask, and without Dask the subpackage says
which extra to install."""

from __future__ import annotations

import subprocess
import sys


def run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_logitloss_does_not_import_dask():
    result = run("import sys, logitloss; logitloss.cross_entropy([[1.0, 2.0]], [0]); print('dask' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_missing_dask_names_the_extra():
    # sys.modules[name] = None makes `import name` raise ImportError, as an absent package does.
    result = run(
        "import sys\n"
        "for name in ('dask', 'dask.array', 'distributed'):\n"
        "    sys.modules[name] = None\n"
        "import logitloss\n"
        "try:\n"
        "    import logitloss.dask\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "logitloss[dask]"' in result.stdout
