"""The one extension carries every x86-64 SIMD target, and only the target files hold wide
instructions: checked on the machine code of the extension this process imported.

Why importing works on any x86-64 CPU: the code that runs before a target is chosen (module init,
CPU detection, dispatch) and every driver and binding is baseline x86-64; AVX and AVX2 instructions
live only in csrc/arch/target_avx2.cpp and target_avx512.cpp, AVX-512 only in target_avx512.cpp.

How a function is traced to its source file: an ELF symbol table lists each object file's local
symbols after a FILE symbol naming its source, and every function of a target file is local (an
anonymous namespace, csrc/arch/target.inc) except its exported accessor, kernel_table_<target>(),
which is recognised by name. A wide instruction anywhere else fails the test: for example an inline
function compiled with a target's flags that the linker kept for everyone (numpy#25274).

Needs binutils' objdump and an unstripped extension (install.strip = false and NO_EXTRAS keep the
symbols). Without objdump the tests skip, except under LOGITLOSS_REQUIRE_REFERENCES=1 (CI), where
the proof must not vanish silently.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from logitloss import _core
from .helpers.libraries import REQUIRE_REFERENCES

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
    reason="checks the x86-64 targets of an ELF extension (Linux x86-64 only)",
)

EXTENSION = _core.__file__
AVX512_SOURCE = "target_avx512.cpp"
AVX_SOURCES = ("target_avx2.cpp", AVX512_SOURCE)
ACCESSOR = "logitloss::kernel_table_{}()"

# Functions that run before any target is chosen: CPU detection and dispatch (csrc/runtime/).
RUNTIME_SOURCES = ("cpu_features.cpp", "dispatch.cpp")
RUNTIME_FUNCTIONS = re.compile(
    r"logitloss::(cpu_features|initialize_dispatch|compiled_targets|known_isa_names|dispatch_state"
    r"|active_kernels|set_active_isa)\("
)

# ---- which instructions are AVX or AVX-512 (AT&T syntax, as objdump prints) ----------------------

PREFIXES = {"lock", "rep", "repz", "repe", "repnz", "repne", "notrack", "bnd", "data16", "addr32",
            "cs", "ds", "es", "fs", "gs", "ss", "{vex}", "{vex3}", "{evex}"}
# Only EVEX can encode these registers: zmm, the opmasks, and xmm/ymm 16-31.
EVEX_REGISTER = re.compile(r"%(zmm\d+|k[0-7]\b|[xy]mm(1[6-9]|2\d|3[01])\b)")
# EVEX-only mnemonics, so that AVX-512VL code on xmm/ymm 0-15 without a mask is caught too.
EVEX_MNEMONIC = re.compile(
    r"k[a-z]+|v(align[dq]|blendmp[sd]|pblendm[bwdq]|compressp[sd]|expandp[sd]|pcompress[bwdq]"
    r"|pexpand[bwdq]|fixupimm[ps][sd]|fpclass[ps][sd]|getexp[ps][sd]|getmant[ps][sd]|range[ps][sd]"
    r"|rcp14[ps][sd]|rsqrt14[ps][sd]|reduce[ps][sd]|rndscale[ps][sd]|scalef[ps][sd]|pternlog[dq]"
    r"|perm[it]2[bwdqps]+|permw|permb|pro[lr]v?[dq]|psraq|psravq|psravw|psllvw|psrlvw|pabsq"
    r"|pm(ax|in)[su]q|pmullq|p(and|andn|or|xor)[dq]|movdq[au](8|16|32|64)"
    r"|(extract|insert|broadcast)[fi](32x[248]|64x[24])|shuf[fi](32x4|64x2)"
    r"|cvtt?(pd|ps)2u?qq|cvtu?qq2p[sd]|cvtt?(p[sd]2udq|s[sd]2usi)|cvtu(dq2p[sd]|si2s[sd])"
    r"|pcmp(lt|le|neq|nlt|nle|true|false)?u?[bwdq]|pmovu?s?[qdw][bwd]|pmov[bwdq]2m|pmovm2[bwdq])"
)
# A broadcast from a general-purpose register is EVEX-only (AVX2 broadcasts from xmm or memory).
EVEX_BROADCAST_FROM_GPR = re.compile(r"vpbroadcast[bwdq]\s+%(?![xyz]mm)")
# Mnemonics starting with "v" that are not vector instructions (virtualization, segment checks).
NOT_VECTOR = re.compile(r"v(mcall|mlaunch|mresume|mxoff|mxon|mread|mwrite|mptrld|mptrst|mclear|mfunc"
                        r"|mrun|mload|msave|mmcall|err|erw)")
# VEX-encoded general-purpose instructions (BMI1/BMI2): they need a CPU with AVX-era extensions too.
VEX_GENERAL = {"andn", "bextr", "blsi", "blsmsk", "blsr", "bzhi", "mulx", "pdep", "pext", "rorx",
               "sarx", "shlx", "shrx"}


def mnemonic(instruction: str) -> str:
    words = instruction.split()
    for word in words:
        if word not in PREFIXES and not word.startswith("rex"):
            return word
    return ""


def is_avx512(instruction: str) -> bool:
    return bool(EVEX_REGISTER.search(instruction) or EVEX_MNEMONIC.fullmatch(mnemonic(instruction))
                or EVEX_BROADCAST_FROM_GPR.match(instruction))


def is_avx(instruction: str) -> bool:
    """Any VEX- or EVEX-encoded instruction: AVX, AVX2, FMA, BMI, AVX-512."""
    name = mnemonic(instruction)
    vector = name.startswith("v") and not NOT_VECTOR.fullmatch(name)
    return vector or name in VEX_GENERAL or "%ymm" in instruction or is_avx512(instruction)


@pytest.mark.parametrize(
    "instruction, avx, avx512",
    [
        ("addps  %xmm1,%xmm0", False, False),
        ("cpuid", False, False),
        ("xgetbv", False, False),
        ("lock cmpxchg %rdx,(%rdi)", False, False),
        ("vaddps %xmm1,%xmm2,%xmm0", True, False),
        ("vfmadd231ps %ymm1,%ymm2,%ymm0", True, False),
        ("vpcmpeqd %ymm1,%ymm2,%ymm0", True, False),
        ("vpmovsxdq %xmm0,%ymm1", True, False),
        ("vpbroadcastq %xmm1,%ymm0", True, False),
        ("vzeroupper", True, False),
        ("shlx   %rax,%rbx,%rcx", True, False),
        ("vaddps %zmm1,%zmm2,%zmm0", True, True),
        ("vmovaps %xmm17,%xmm1", True, True),
        ("vmovups (%rdi),%ymm0{%k1}{z}", True, True),
        ("kmovw  %k1,%eax", True, True),
        ("vpternlogd $0x96,%ymm1,%ymm2,%ymm0", True, True),
        ("vpcmpltq %ymm1,%ymm2,%k1", True, True),
        ("vcvttpd2qq %ymm1,%ymm0", True, True),
        ("vpmovqd %ymm1,%xmm0", True, True),
        ("vpbroadcastq %rax,%xmm0", True, True),
    ],
)
def test_instruction_classes(instruction, avx, avx512):
    assert (is_avx(instruction), is_avx512(instruction)) == (avx, avx512)


# ---- the extension's functions, with their source files ------------------------------------------


@dataclass
class Function:
    name: str  # demangled
    source: str | None  # the source file of a local function; None for the rest
    instructions: list[str] = field(default_factory=list)

    def avx(self) -> list[str]:
        return [i for i in self.instructions if is_avx(i)]

    def avx512(self) -> list[str]:
        return [i for i in self.instructions if is_avx512(i)]

    def is_from(self, source: str) -> bool:
        target = source.removeprefix("target_").removesuffix(".cpp")
        return self.source == source or self.name.startswith(ACCESSOR.format(target))


SYMBOL = re.compile(r"([0-9a-f]+) (.{7}) (\S+)\t[0-9a-f]+ *(.*)")
LABEL = re.compile(r"([0-9a-f]+) <(.+)>:")
INSTRUCTION = re.compile(r"\s+[0-9a-f]+:\t(.+)")


def run_objdump(*options: str) -> str:
    return subprocess.run(["objdump", *options, EXTENSION], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def sources_of_local_functions(symbol_table: str) -> tuple[dict[int, str], set[str]]:
    """Map the address of each local function to the source file whose FILE symbol precedes it."""
    sources, files, current = {}, set(), None
    for line in symbol_table.splitlines():
        match = SYMBOL.fullmatch(line)
        if not match:
            continue
        address, flags, _, name = match.groups()
        if flags[6] == "f":  # a FILE symbol opens the next object's local symbols
            current = os.path.basename(name.strip()) or None
            files.add(current)
        elif flags[6] == "F" and flags[0] == "l" and current:
            sources[int(address, 16)] = current
    return sources, files


@pytest.fixture(scope="module")
def functions() -> list[Function]:
    if shutil.which("objdump") is None:
        message = "objdump (GNU binutils) is not installed: cannot disassemble the extension"
        if REQUIRE_REFERENCES:
            pytest.fail(message + " (LOGITLOSS_REQUIRE_REFERENCES=1)", pytrace=False)
        pytest.skip(message)
    sources, files = sources_of_local_functions(run_objdump("--syms"))
    missing = {"target_baseline.cpp", *AVX_SOURCES, *RUNTIME_SOURCES} - files
    assert not missing, f"{EXTENSION}: no FILE symbols for {sorted(missing)} (stripped?)"
    result = []
    for line in run_objdump("-d", "-C", "--no-show-raw-insn").splitlines():
        if label := LABEL.fullmatch(line):
            result.append(Function(label[2], sources.get(int(label[1], 16))))
        elif (instruction := INSTRUCTION.fullmatch(line)) and result:
            result[-1].instructions.append(instruction[1])
    return result


def describe(offenders: list[tuple[Function, list[str]]]) -> str:
    return "\n".join(f"  {f.name} [{f.source or 'no source file'}]: {len(found)} e.g. {found[0]!r}"
                     for f, found in offenders[:20])


def test_every_target_is_compiled_in(functions):
    names = {f.name for f in functions}
    for target in ("baseline", "avx2", "avx512"):
        assert ACCESSOR.format(target) in names, f"{EXTENSION} has no {target} target"


def test_avx_targets_hold_their_instructions(functions):
    """Positive controls: the checks below see the target code and its wide instructions."""
    avx512 = sum(len(f.avx512()) for f in functions if f.is_from(AVX512_SOURCE))
    assert avx512 >= 100, f"only {avx512} AVX-512 instructions in {AVX512_SOURCE}"
    ymm = sum(1 for f in functions if f.is_from("target_avx2.cpp") for i in f.avx() if "%ymm" in i)
    assert ymm >= 100, f"only {ymm} ymm instructions in target_avx2.cpp"


def test_avx512_only_in_the_avx512_target(functions):
    offenders = [(f, found) for f in functions if (found := f.avx512()) and not f.is_from(AVX512_SOURCE)]
    assert not offenders, f"AVX-512 instructions outside {AVX512_SOURCE}:\n{describe(offenders)}"


def test_avx_only_in_the_avx_targets(functions):
    offenders = [(f, found) for f in functions
                 if (found := f.avx()) and not any(f.is_from(source) for source in AVX_SOURCES)]
    assert not offenders, f"AVX instructions outside {AVX_SOURCES}:\n{describe(offenders)}"


def test_cpu_detection_and_dispatch_run_no_avx(functions):
    runtime = [f for f in functions if f.source in RUNTIME_SOURCES or RUNTIME_FUNCTIONS.match(f.name)]
    named = {RUNTIME_FUNCTIONS.match(f.name)[1] for f in runtime if RUNTIME_FUNCTIONS.match(f.name)}
    assert {"cpu_features", "initialize_dispatch", "compiled_targets"} <= named, sorted(named)
    offenders = [(f, found) for f in runtime if (found := f.avx())]
    assert not offenders, f"AVX instructions in CPU detection or dispatch:\n{describe(offenders)}"
