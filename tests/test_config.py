"""Runtime configuration: ISA choice and override, threads, show_config, version (fork safety and
concurrency: test_concurrency.py)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap

import pytest

import logitloss
from .helpers.isas import KNOWN_ISAS, SUPPORTED_ISAS


def run_python(code, tmp_path, **env_overrides):
    """Run ``code`` in a fresh interpreter with a clean LOGITLOSS_* environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITLOSS_")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRINT_STATE = """
    import logitloss
    print(logitloss.get_isa())
    print(",".join(logitloss.supported_isas()))
    print(logitloss.get_num_threads())
    print("----")
    logitloss.show_config()
"""


def state(tmp_path, **env):
    proc = run_python(PRINT_STATE, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    isa, supported, threads, _, *config = proc.stdout.splitlines()
    return isa, supported.split(","), int(threads), "\n".join(config)


# ---- ISAs ---------------------------------------------------------------------------------------


def test_supported_isas_shape():
    supported = logitloss.supported_isas()
    assert isinstance(supported, list) and supported, supported
    assert supported[0] == "baseline"
    assert set(supported) <= set(KNOWN_ISAS), supported
    assert len(set(supported)) == len(supported)
    assert "neon" not in supported or not ({"avx2", "avx512"} & set(supported)), "one architecture at a time"
    order = [name for name in KNOWN_ISAS if name in supported]
    if "neon" not in supported:
        assert supported == order, f"lowest first: {supported}"


def test_default_is_the_best_supported(tmp_path):
    isa, supported, _, _ = state(tmp_path)
    assert supported == list(SUPPORTED_ISAS)
    assert isa == supported[-1], f"without a cap the best supported target is chosen: {isa} of {supported}"


def test_use_isa_switches_and_restores():
    before = logitloss.get_isa()
    for name in SUPPORTED_ISAS:
        with logitloss.use_isa(name) as entered:
            assert entered == name
            assert logitloss.get_isa() == name
            with logitloss.use_isa("baseline"):
                assert logitloss.get_isa() == "baseline"
            assert logitloss.get_isa() == name
        assert logitloss.get_isa() == before
    with pytest.raises(RuntimeError, match="boom"):
        with logitloss.use_isa("baseline"):
            raise RuntimeError("boom")
    assert logitloss.get_isa() == before


def test_use_isa_rejects_unknown_and_unsupported():
    before = logitloss.get_isa()
    with pytest.raises(ValueError) as info:
        with logitloss.use_isa("sse9"):
            pass
    assert "sse9" in str(info.value)
    for name in SUPPORTED_ISAS:
        assert name in str(info.value), f"the error should name the valid targets: {info.value}"
    for name in set(KNOWN_ISAS) - set(SUPPORTED_ISAS):
        with pytest.raises(ValueError, match=name):
            with logitloss.use_isa(name):
                pass
    assert logitloss.get_isa() == before


def test_show_config(capsys):
    logitloss.show_config()
    text = capsys.readouterr().out
    assert logitloss.__version__ in text
    for name in SUPPORTED_ISAS:
        assert name in text
    assert logitloss.get_isa() in text
    assert re.search(rf"threads\D*{logitloss.get_num_threads()}\b", text), text
    assert re.search(r"output reuse:\s+on \(\d+ idle buffers, \d+ MiB\)", text), text
    with logitloss.use_isa("baseline"):
        logitloss.show_config()
        chosen = [line for line in capsys.readouterr().out.splitlines() if "chosen" in line]
    assert chosen and "baseline" in chosen[0], chosen


def test_version_single_source():
    assert isinstance(logitloss.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*([+].*)?", logitloss.__version__)
    assert importlib.metadata.version("logitloss") == logitloss.__version__


# ---- LOGITLOSS_ISA (at import, in a subprocess) --------------------------------------------------


@pytest.mark.parametrize("name", SUPPORTED_ISAS)
def test_isa_env_cap(tmp_path, name):
    isa, supported, _, config = state(tmp_path, LOGITLOSS_ISA=name)
    assert isa == name
    assert supported == list(SUPPORTED_ISAS)  # the cap picks the target; it hides nothing from use_isa


def test_isa_env_cap_above_cpu_is_lowered(tmp_path):
    unsupported = [name for name in KNOWN_ISAS if name not in SUPPORTED_ISAS]
    assert unsupported, "every known target is supported: impossible (neon and x86 targets exclude each other)"
    for name in unsupported:
        isa, supported, _, config = state(tmp_path, LOGITLOSS_ISA=name)
        assert isa in SUPPORTED_ISAS and isa != name
        chosen = [line for line in config.splitlines() if "chosen" in line]
        assert chosen and name in chosen[0] and isa in chosen[0], f"show_config must say the cap was lowered:\n{config}"


@pytest.mark.parametrize("value,threads", [("3", 3), (" 2 ", 2), ("0004", 4), ("5000", 1024), ("9" * 30, 1024)])
def test_num_threads_env_values(tmp_path, value, threads):
    """Decimal integers >= 1, capped at 1024 as set_num_threads (30 digits once overflowed atoi)."""
    _, _, got, _ = state(tmp_path, LOGITLOSS_NUM_THREADS=value)
    assert got == threads


@pytest.mark.parametrize("value", ["0", "-2", "two", "2.5", "4,2", "0x10", "3 4"])
def test_num_threads_env_invalid_fails_at_import(tmp_path, value):
    """A typo was silently ignored (atoi: the default count); now it is reported, as LOGITLOSS_ISA."""
    proc = run_python("import logitloss", tmp_path, LOGITLOSS_NUM_THREADS=value)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "LOGITLOSS_NUM_THREADS" in proc.stderr, proc.stderr


def test_num_threads_env_blank_means_default(tmp_path):
    _, _, blank, _ = state(tmp_path, LOGITLOSS_NUM_THREADS="  ")
    _, _, default, _ = state(tmp_path)
    assert blank == default


def test_isa_env_unknown_name_fails_at_import(tmp_path):
    proc = run_python("import logitloss", tmp_path, LOGITLOSS_ISA="avx9000")
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert "avx9000" in message and "LOGITLOSS_ISA" in message, message
    for name in ("baseline",) + SUPPORTED_ISAS:
        assert name in message, f"the error should name the valid targets: {message}"


# ---- LOGITLOSS_REUSE_OUTPUTS (at import) ------------------------------------------------------------


@pytest.mark.parametrize("value,enabled", [(None, True), ("1", True), (" 0 ", False), ("0", False), ("", True)])
def test_reuse_outputs_env(tmp_path, value, enabled):
    env = {} if value is None else {"LOGITLOSS_REUSE_OUTPUTS": value}
    proc = run_python("import logitloss; print(logitloss.get_output_reuse()); logitloss.show_config()", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(enabled)
    assert any(re.search(rf"output reuse:\s+{'on' if enabled else 'off'}\b", line) for line in lines), proc.stdout


@pytest.mark.parametrize("value", ["yes", "off", "2", "true"])
def test_reuse_outputs_env_invalid_fails_at_import(tmp_path, value):
    proc = run_python("import logitloss", tmp_path, LOGITLOSS_REUSE_OUTPUTS=value)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert "ValueError" in message and "LOGITLOSS_REUSE_OUTPUTS" in message and repr(value) in message, message


# ---- threads --------------------------------------------------------------------------------------


def test_set_num_threads(restore_threads):
    for n in (1, 2, 3):
        logitloss.set_num_threads(n)
        assert logitloss.get_num_threads() == n
    assert isinstance(logitloss.get_num_threads(), int)


@pytest.mark.parametrize("n", [1, 2])
def test_num_threads_env(tmp_path, n):
    _, _, threads, config = state(tmp_path, LOGITLOSS_NUM_THREADS=str(n))
    assert threads == n
    assert re.search(rf"threads\D*{n}\b", config), config
