"""logsumexp, softmax and log_softmax, forward and backward: drop-ins for scipy.special.

Thin wrappers: argument handling, validation and the kernels all run in the compiled module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _core



def logsumexp(
    a: ArrayLike,
    axis: int | tuple[int, ...] | None = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    *,
    return_grad: bool = False,
) -> Any:
    """Compute ``log(sum(b * exp(a)))`` over `axis` without overflow or underflow.

    A drop-in for :func:`scipy.special.logsumexp` with SciPy's semantics and precision (the
    maximal terms are pulled out of the sum, so ``logsumexp([0, -40])`` is 4.25e-18, not 0),
    computed in one fused SIMD pass.

    Parameters
    ----------
    a : array_like
        Input (real floating, integer or bool; integers and bool compute in float64, float16 and
        bfloat16 in float32 and are returned in their own dtype).
    axis : None or int or tuple of ints, optional
        Axes to reduce; None (default) reduces all of them.
    b : array_like, optional
        Weights broadcast with `a`; may be negative. Where ``b == 0`` the term is dropped even if
        `a` is inf or nan there.
    keepdims : bool, optional
        Keep reduced axes with length 1.
    return_sign : bool, optional
        Return ``(log|s|, sign(s))`` instead of nan for a negative sum.
    return_grad : bool, keyword-only
        Also return d result / d a, ``sign * b * exp(a - result)``, computed in the same call.
        It has `a`'s shape: where `b` broadcasts `a` to a larger shape, the contributions of
        the broadcast copies are summed (as torch's autograd does).

    Returns
    -------
    res : ndarray or scalar
        The result; a NumPy scalar of the result dtype for a full reduction.
    sgn : ndarray or scalar
        With `return_sign`: the sign, in {-1, 0, +1}.
    grad : ndarray
        With `return_grad`: the gradient, the shape of `a`.

    Raises
    ------
    TypeError
        Complex, object, string or datetime input.
    numpy.exceptions.AxisError
        An axis out of range.
    ValueError
        A repeated axis, or `b` that does not broadcast with `a`.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> float(logitloss.logsumexp([0.0, -40.0]))
    4.248354255291589e-18
    >>> logitloss.logsumexp(np.log([[1.0, 3.0], [2.0, 2.0]]), axis=1)
    array([1.38629436, 1.38629436])
    >>> value, grad = logitloss.logsumexp(np.zeros(4, np.float32), return_grad=True)
    >>> grad
    array([0.25, 0.25, 0.25, 0.25], dtype=float32)
    """
    return _core.logsumexp(a, axis, b, keepdims, return_sign, return_grad)


def softmax(x: ArrayLike, axis: int | tuple[int, ...] | None = None, *, out: np.ndarray | None = None) -> Any:
    """Compute ``exp(x) / sum(exp(x))`` along `axis`.

    A drop-in for :func:`scipy.special.softmax`: an all ``-inf`` slice gives nan, any ``+inf``
    gives an all-nan slice. Each element is within 4 eps of exact.

    Parameters
    ----------
    x : array_like
        Input.
    axis : None or int or tuple of ints, optional
        Axes to normalize over; None (default) normalizes over all elements.
    out : ndarray, keyword-only, optional
        Array to write the result into (the shape of `x` and the result dtype); returned. It may
        be `x` itself (in place), but no other view overlapping `x`.

    Returns
    -------
    ndarray
        The softmax, the shape of `x`.

    Raises
    ------
    ValueError
        `axis` has length 0, or `out` has the wrong shape, is read-only or overlaps `x`.
    TypeError
        Complex or non-numeric input, or `out` of the wrong dtype.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logitloss.softmax(np.log([1.0, 3.0]))
    array([0.25, 0.75])
    """
    return _core.softmax(x, axis, out)


def log_softmax(x: ArrayLike, axis: int | tuple[int, ...] | None = None, *, out: np.ndarray | None = None) -> Any:
    """Compute ``x - logsumexp(x)`` along `axis`.

    A drop-in for :func:`scipy.special.log_softmax` (all ``-inf`` gives nan, ``[inf, 1]`` gives
    ``[nan, -inf]``), and more accurate: ``log_softmax([0, -40])[0]`` is -4.25e-18, not 0.

    Parameters
    ----------
    x : array_like
        Input.
    axis : None or int or tuple of ints, optional
        Axes to normalize over; None (default) normalizes over all elements.
    out : ndarray, keyword-only, optional
        Array to write the result into (the shape of `x` and the result dtype); returned. It may
        be `x` itself (in place), but no other view overlapping `x`.

    Returns
    -------
    ndarray
        The log-softmax, the shape of `x`.

    Raises
    ------
    ValueError
        `axis` has length 0, or `out` has the wrong shape, is read-only or overlaps `x`.
    TypeError
        Complex or non-numeric input, or `out` of the wrong dtype.

    Examples
    --------
    >>> import logitloss
    >>> logitloss.log_softmax([0.0, -40.0])
    array([-4.24835426e-18, -4.00000000e+01])
    """
    return _core.log_softmax(x, axis, out)


def logsumexp_backward(
    grad_output: ArrayLike,
    a: ArrayLike,
    axis: int | tuple[int, ...] | None = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    *,
    result: ArrayLike | None = None,
) -> np.ndarray:
    """Gradient of :func:`logsumexp` with respect to `a`, times an upstream gradient.

    ``grad_output * b * exp(a - logsumexp(a))``, broadcast over the reduced axes (for all
    ``-inf`` slices nan, as torch), and summed over the axes along which `b` broadcast `a`.

    Parameters
    ----------
    grad_output : array_like
        Upstream gradient, the shape of the forward result (with the same `keepdims`).
    a, axis, b, keepdims
        As given to the forward call.
    result : array_like, keyword-only, optional
        The forward result (``return_sign=False``); skips recomputing it. The gradient is then
        exactly as accurate as `result`.

    Returns
    -------
    ndarray
        The gradient, the shape of `a`.

    Raises
    ------
    ValueError
        `grad_output` or `result` that does not match the forward result's shape.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logitloss.logsumexp_backward(2.0, np.log([1.0, 3.0]))
    array([0.5, 1.5])
    """
    return _core.logsumexp_backward(grad_output, a, axis, b, keepdims, result)


def softmax_backward(grad_output: ArrayLike, output: ArrayLike, axis: int | tuple[int, ...] | None = None) -> Any:
    """Gradient through :func:`softmax`: ``output * (g - sum(g * output, axis))``.

    Parameters
    ----------
    grad_output : array_like
        Upstream gradient g, the shape of `output`.
    output : array_like
        The forward result ``softmax(x, axis)``.
    axis : None or int or tuple of ints, optional
        The forward call's axis.

    Returns
    -------
    ndarray
        d loss / d x.

    Raises
    ------
    ValueError
        `grad_output` and `output` of different shapes.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logitloss.softmax_backward(np.array([1.0, 0.0]), np.array([0.25, 0.75]))
    array([ 0.1875, -0.1875])
    """
    return _core.softmax_backward(grad_output, output, axis)


def log_softmax_backward(grad_output: ArrayLike, output: ArrayLike, axis: int | tuple[int, ...] | None = None) -> Any:
    """Gradient through :func:`log_softmax`: ``g - exp(output) * sum(g, axis)``.

    Parameters
    ----------
    grad_output : array_like
        Upstream gradient g, the shape of `output`.
    output : array_like
        The forward result ``log_softmax(x, axis)``.
    axis : None or int or tuple of ints, optional
        The forward call's axis.

    Returns
    -------
    ndarray
        d loss / d x.

    Raises
    ------
    ValueError
        `grad_output` and `output` of different shapes.

    Examples
    --------
    >>> import numpy as np, logitloss
    >>> logitloss.log_softmax_backward(np.array([1.0, 0.0]), np.log([0.25, 0.75]))
    array([ 0.75, -0.75])
    """
    return _core.log_softmax_backward(grad_output, output, axis)
