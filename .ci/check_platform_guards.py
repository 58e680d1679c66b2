#!/usr/bin/env python3
"""Every POSIX-only and every Windows-only include and call in csrc/ sits behind a platform guard.

Why a check of its own: the Windows build that CI compiles uses MinGW-w64, which ships POSIX
headers of its own (pthread.h, unistd.h, sched.h), so an unguarded POSIX include or call compiles
there and fails only under clang-cl with Microsoft's headers, which CI does not have. Apple's SDK
has no sched_getaffinity either.

What counts as guarded: the line lies in a preprocessor branch one of whose conditions (a
conjunct of an #if / #elif, or the negation an #else / #elif implies) is a test of the platform:
  POSIX-only   defined(__linux__), defined(__APPLE__), defined(__unix__), !defined(_WIN32), a
               macro only a POSIX header defines (MADV_FREE ...), __has_include(<posix header>),
               or the #else of `#if defined(_WIN32)`;
  Windows-only defined(_WIN32) / defined(_WIN64), or the #else of `#if !defined(_WIN32)`.
A test of the processor (__x86_64__, __aarch64__) is not a platform guard; a condition joined
with || qualifies only if every alternative does.

Usage: python .ci/check_platform_guards.py [root]   (default: csrc/ beside .ci/). The script
first runs its self-test (snippets that must and must not be flagged), then the check; exit 1
on any unguarded use.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

POSIX_HEADERS = re.compile(r"(pthread|unistd|sched|dlfcn|semaphore|spawn|poll|termios|sys/.+)\.h")
WINDOWS_HEADERS = re.compile(r"(windows|winbase|winnt|processthreadsapi|sysinfoapi|memoryapi|malloc)\.h", re.I)
POSIX_CALLS = re.compile(
    r"\b(pthread_\w+|madvise|posix_madvise|mmap|munmap|mprotect|sched_getaffinity|sched_setaffinity|CPU_COUNT"
    r"|CPU_ZERO|CPU_SET|sysconf|sysctl|sysctlbyname|getauxval|fork|posix_memalign|dlopen|dlsym|getpid)\s*\("
)
WINDOWS_CALLS = re.compile(
    r"\b(GetActiveProcessorCount|GetActiveProcessorGroupCount|GetProcessAffinityMask|GetCurrentProcess"
    r"|GetSystemInfo|GetNativeSystemInfo|VirtualAlloc|VirtualFree|DiscardVirtualMemory|_aligned_malloc"
    r"|_aligned_free)\s*\("
)
POSIX_MACROS = re.compile(r"__linux__|__linux|__APPLE__|__MACH__|__unix__|__unix|__FreeBSD__|_POSIX_VERSION|MADV_\w+")
WINDOWS_MACROS = re.compile(r"_WIN32|_WIN64")


def _atom(text: str) -> str:
    """A condition with white space removed, `defined X` as `defined(X)`, outer parentheses dropped."""
    text = re.sub(r"\s+", "", re.sub(r"defined\s+(\w+)", r"defined(\1)", text))
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _split_top(text: str, operator: str) -> list[str]:
    parts, depth, start = [], 0, 0
    i = 0
    while i < len(text):
        ch = text[i]
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and text.startswith(operator, i):
            parts.append(text[start:i])
            i += len(operator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [_atom(p) for p in parts]


def _tests(atom: str, platform: str) -> bool:
    """Whether a condition (no top-level &&) holds only on `platform` ('posix' or 'windows')."""
    alternatives = _split_top(atom, "||")
    if len(alternatives) > 1:
        return all(_tests(a, platform) for a in alternatives)
    negated = atom.startswith("!")
    body = _atom(atom[1:]) if negated else atom
    if "&&" in body or "||" in body:
        return False
    defined = re.fullmatch(r"defined\((\w+)\)|(\w+)", body)
    macro = defined and (defined.group(1) or defined.group(2))
    include = re.fullmatch(r"__has_include\(<([^>]+)>\)", body)
    if platform == "posix":
        if negated:
            return bool(macro and WINDOWS_MACROS.fullmatch(macro))
        return bool((macro and POSIX_MACROS.fullmatch(macro)) or (include and POSIX_HEADERS.fullmatch(include.group(1))))
    if negated:
        return False
    return bool(macro and WINDOWS_MACROS.fullmatch(macro))


def _negation(condition: str) -> str:
    return "!(" + condition + ")" if not condition.startswith("!") else _atom(condition[1:])


def _strip_comments(source: str) -> str:
    """Comments and string literals blanked out (line structure kept)."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', re.S)
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)


def violations(source: str, name: str = "<snippet>") -> list[str]:
    """One message per POSIX-only or Windows-only include or call outside its platform's guard."""
    found = []
    # Each open #if: the conjuncts of the current branch, and the negations earlier branches imply.
    stack: list[tuple[list[str], list[str]]] = []
    for number, line in enumerate(_strip_comments(source).splitlines(), 1):
        directive = re.match(r"\s*#\s*(\w+)\s*(.*)", line)
        if directive:
            keyword, argument = directive.group(1), directive.group(2).strip()
            if keyword in ("if", "ifdef", "ifndef"):
                condition = {"if": argument, "ifdef": f"defined({argument})", "ifndef": f"!defined({argument})"}[keyword]
                stack.append((_split_top(_atom(condition), "&&"), []))
                continue
            if keyword in ("elif", "else") and stack:
                branch, earlier = stack[-1]
                earlier = earlier + [_negation("&&".join(branch))] if len(branch) > 1 else earlier + [_negation(branch[0])]
                branch = _split_top(_atom(argument), "&&") if keyword == "elif" else []
                stack[-1] = (branch, earlier)
                continue
            if keyword == "endif" and stack:
                stack.pop()
                continue
        conditions = [c for branch, earlier in stack for c in branch + earlier]
        checks = []
        include = re.match(r"\s*#\s*include\s*<([^>]+)>", line)
        if include and POSIX_HEADERS.fullmatch(include.group(1)):
            checks.append(("posix", f"#include <{include.group(1)}>"))
        if include and WINDOWS_HEADERS.fullmatch(include.group(1)):
            checks.append(("windows", f"#include <{include.group(1)}>"))
        if not directive:
            checks += [("posix", m.group(1) + "()") for m in POSIX_CALLS.finditer(line)]
            checks += [("windows", m.group(1) + "()") for m in WINDOWS_CALLS.finditer(line)]
        for platform, what in checks:
            if not any(_tests(c, platform) for c in conditions):
                label = "POSIX-only" if platform == "posix" else "Windows-only"
                found.append(f"{name}:{number}: {label} {what} outside a platform guard")
    return found


SELF_TEST = [
    # (snippet, number of violations it must produce)
    ("#include <pthread.h>\n", 1),
    ("void f() { pthread_atfork(nullptr, nullptr, nullptr); }\n", 1),
    ("void f() {\n  madvise(p, n, MADV_FREE);\n}\n", 1),
    ("int n = GetActiveProcessorCount(0xffff);\n", 1),
    ("#include <windows.h>\n", 1),
    ("#if defined(__x86_64__)\n#include <unistd.h>\n#endif\n", 1),  # a processor test is no platform guard
    ("#if defined(__linux__) || defined(_WIN32)\nlong n = sysconf(1);\n#endif\n", 1),
    ("#ifdef _WIN32\n#else\n#endif\n#include <sched.h>\n", 1),  # after #endif the guard is gone
    ("#if defined(_WIN32)\nint n = sysconf(1);\n#endif\n", 1),  # POSIX call in the Windows branch
    ("#if !defined(_WIN32)\nint n = GetActiveProcessorCount(0);\n#endif\n", 1),
    ("// pthread_atfork(a, b, c) in a comment\n/* madvise(p) */ const char* s = \"fork()\";\n", 0),
    ("#if defined(__linux__)\n#include <sched.h>\nint n = sched_getaffinity(0, 0, 0);\n#endif\n", 0),
    ("#ifdef _WIN32\n#include <windows.h>\n#else\n#include <pthread.h>\nint r = pthread_atfork(0, 0, 0);\n#endif\n", 0),
    ("#if !defined(_WIN32) && __has_include(<sys/mman.h>)\n#include <sys/mman.h>\n#endif\n", 0),
    ("#if defined(MADV_FREE)\n  madvise(p, n, MADV_FREE);\n#endif\n", 0),
    ("#if defined(__linux__)\nint a;\n#elif defined(_WIN32)\nint n = GetActiveProcessorCount(0);\n#else\nlong m = sysconf(1);\n#endif\n", 0),
    ("#if defined(_WIN32)\nint a;\n#else\n#if defined(__x86_64__)\nlong m = sysconf(1);\n#endif\n#endif\n", 0),
]


def self_test() -> None:
    for snippet, expected in SELF_TEST:
        got = violations(snippet)
        assert len(got) == expected, f"self-test: expected {expected} violation(s), got {got} in:\n{snippet}"
    print(f"self-test: {len(SELF_TEST)} snippets flagged as expected")


def main() -> int:
    self_test()
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "csrc"
    files = sorted(p for p in root.rglob("*") if p.suffix in (".h", ".cpp", ".inc", ".cc", ".hpp"))
    found, uses = [], 0
    for path in files:
        text = path.read_text()
        found += violations(text, str(path))
        stripped = _strip_comments(text)
        uses += len(POSIX_CALLS.findall(stripped)) + len(WINDOWS_CALLS.findall(stripped))
        uses += sum(1 for m in re.finditer(r"#\s*include\s*<([^>]+)>", stripped)
                    if POSIX_HEADERS.fullmatch(m.group(1)) or WINDOWS_HEADERS.fullmatch(m.group(1)))
    for message in found:
        print(message)
    print(f"{len(files)} files under {root}: {uses} platform-specific includes and calls, {len(found)} unguarded")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
