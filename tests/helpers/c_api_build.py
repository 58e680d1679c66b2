"""Builds the Cython consumers of the C API (tests/helpers/c_api/*.pyx) against the installed
logitloss, as an extension author's setup.py would: Cython finds logitloss/kernels.pxd on sys.path,
``include_dirs=[logitloss.get_include()]`` finds logitloss.h, and nothing is linked. With OpenMP
where the compiler has it (prange then runs on several threads), else without (prange runs
serially: the build says which)."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import shutil
import subprocess
import sys

from .libraries import missing, require

SOURCES = pathlib.Path(__file__).parent / "c_api"
MODULES = ("consumer", "unimported")

# Run in a subprocess from the build folder: setuptools' build_ext --inplace, as `python setup.py
# build_ext --inplace` would. argv[1]: "openmp" or "serial".
_SETUP = """
import sys
from setuptools import Extension, setup
from Cython.Build import cythonize
import logitloss

openmp = sys.argv[1] == "openmp"
flags = (["/openmp"] if sys.platform == "win32" else ["-fopenmp"]) if openmp else []
extensions = [
    Extension(f"logitloss_c_api_{name}", [f"{name}.pyx"], include_dirs=[logitloss.get_include()],
              extra_compile_args=flags, extra_link_args=flags if sys.platform != "win32" else [])
    for name in MODULES_PLACEHOLDER
]
setup(ext_modules=cythonize(extensions, quiet=True), script_args=["build_ext", "--inplace"])
"""


@dataclasses.dataclass
class Consumers:
    consumer: object      # tests/helpers/c_api/consumer.pyx, built
    unimported: object    # tests/helpers/c_api/unimported.pyx, built
    folder: pathlib.Path  # where they are (a subprocess can put it on sys.path)
    openmp: bool          # built with OpenMP: prange uses several threads
    log: str              # the failed OpenMP attempt's output, when openmp is False


def _run_setup(folder, mode):
    return subprocess.run([sys.executable, "-c", _SETUP.replace("MODULES_PLACEHOLDER", repr(MODULES)), mode], cwd=folder,
                          capture_output=True, text=True, timeout=600)


def _load(folder, name):
    module_name = f"logitloss_c_api_{name}"
    built = [p for p in folder.iterdir() if p.name.startswith(module_name + ".") and p.suffix in (".so", ".pyd")]
    spec = importlib.util.spec_from_file_location(module_name, built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_consumers(folder: pathlib.Path) -> Consumers:
    """Builds both consumers into `folder` (skips, or fails under LOGITLOSS_REQUIRE_REFERENCES=1,
    without Cython, setuptools or a C compiler)."""
    require("Cython")
    require("setuptools")
    for name in MODULES:
        shutil.copy(SOURCES / f"{name}.pyx", folder / f"{name}.pyx")
    attempt = _run_setup(folder, "openmp")
    openmp, log = attempt.returncode == 0, ""
    if not openmp:
        log = attempt.stdout + attempt.stderr
        attempt = _run_setup(folder, "serial")
    if attempt.returncode != 0:
        output = attempt.stdout + attempt.stderr
        if "error: command" in output and ("not found" in output or "failed: No such file" in output):
            missing(f"no C compiler to build the Cython consumer: {output[-400:]}", name="compiler")
        if "Python.h" in output and "No such file" in output:
            # The README's test extra needs the interpreter's headers (python3-dev on Debian).
            missing(f"no Python headers to build the Cython consumer: {output[-400:]}", name="Python headers")
        raise AssertionError(f"building the Cython consumer failed:\n{output[-4000:]}")
    return Consumers(_load(folder, "consumer"), _load(folder, "unimported"), folder, openmp, log)
