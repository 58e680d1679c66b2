"""The examples in every public docstring run and print what they say."""

import doctest

import pytest

import logitloss
import logitloss.calibration
from logitloss import (
    _binary_cross_entropy,
    _c_api,
    _config,
    _contrastive,
    _cross_entropy,
    _divergence,
    _entropy,
    _linear_cross_entropy,
    _softmax_family,
)
from logitloss.calibration import _binning, _temperature

MODULES = [_binary_cross_entropy, _c_api, _config, _contrastive, _cross_entropy, _divergence, _entropy,
           _linear_cross_entropy, _softmax_family,
           _binning, _temperature]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, raise_on_error=False)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0


@pytest.mark.parametrize("package", [logitloss, logitloss.calibration], ids=lambda p: p.__name__)
def test_every_public_function_has_an_example(package):
    missing = [name for name in package.__all__ if callable(getattr(package, name))
               and not isinstance(getattr(package, name), type)
               and ">>>" not in (getattr(package, name).__doc__ or "")]
    assert missing == []
