"""The README's examples of cross_entropy's logit options (section "Temperature, soft-capping, z-loss") run
and give the values their comments state: each expression line followed by a ``# [...]`` comment is
evaluated and compared (to the comment's 4 decimals)."""

from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest

import logitloss

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Temperature, soft-capping, z-loss"


def section_blocks():
    text = README.read_text(encoding="utf-8")
    if SECTION not in text:
        pytest.skip("README not in this checkout")
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_option_examples_give_their_stated_values():
    blocks = section_blocks()
    assert blocks, "the section has no example"
    checked = 0
    for block in blocks:
        namespace = {"np": np, "logitloss": logitloss}
        lines = block.splitlines()
        for k, line in enumerate(lines):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            following = lines[k + 1].strip() if k + 1 < len(lines) else ""
            statement = line
            # a statement continued on the next lines (an open parenthesis)
            j = k
            while statement.count("(") > statement.count(")"):
                j += 1
                statement += "\n" + lines[j]
                following = lines[j + 1].strip() if j + 1 < len(lines) else ""
            if line.startswith(" "):
                continue  # a continuation line, run with its statement
            if following.startswith("# ["):
                stated = ast.literal_eval(following[2:].split(":", 1)[0].strip())
                got = eval(statement, namespace)  # noqa: S307 - the README's own example
                np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(stated, np.float64), rtol=0,
                                           atol=5e-5, err_msg=statement)
                checked += 1
            else:
                exec(statement, namespace)  # noqa: S102
    assert checked >= 4
