"""The examples in every public docstring run and print what they say."""

import doctest

import pytest

import logitloss
from logitloss import _binary_cross_entropy, _c_api, _config, _cross_entropy, _linear_cross_entropy, _softmax_family

MODULES = [_binary_cross_entropy, _c_api, _config, _cross_entropy, _linear_cross_entropy, _softmax_family]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, raise_on_error=False)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0


def test_every_public_function_has_an_example():
    missing = [name for name in logitloss.__all__ if callable(getattr(logitloss, name))
               and ">>>" not in (getattr(logitloss, name).__doc__ or "")]
    assert missing == []
