"""Helpers for writing gradient tests with pytest.

``assert_gradients_close`` runs ``gradcheck`` and turns its failure into an
``AssertionError`` carrying the same readable report (output and input, worst entries), so
that pytest shows it as an ordinary test failure.
"""

from __future__ import annotations

from .gradcheck import GradcheckError, gradcheck

__all__ = ["assert_gradients_close"]


def assert_gradients_close(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False):
    """Assert that the gradients of ``fn`` at ``inputs`` match central finite differences.

    Same arguments and criterion as ``tg.gradcheck``
    (``|analytic - numerical| <= atol + rtol * |numerical|``); raises ``AssertionError``
    with gradcheck's report when some entry disagrees.
    """
    __tracebackhide__ = True
    try:
        gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol, fast_mode=fast_mode)
    except GradcheckError as e:
        raise AssertionError(str(e)) from None
