"""Write your own differentiable op and check it with gradcheck and gradcheck_graph.

gradcheck compares an op's analytic Jacobian with central finite differences.
gradcheck_graph walks a whole recorded graph and names the first node whose gradient
rule is wrong, with the file and line that created it.

Run:  python examples/07_custom_function_gradcheck.py
"""

import numpy as np

import tinygrad_init as tg
from tinygrad_init.autograd import Function


class Softsign(Function):
    """x / (1 + |x|), with derivative 1 / (1 + |x|)^2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + x.abs())

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / (1 + x.abs()) ** 2


class BrokenSoftsign(Softsign):
    """The same forward with a wrong derivative: the square is missing."""

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / (1 + x.abs())


x = tg.tensor(np.random.default_rng(0).normal(size=(4, 3)), dtype=np.float64, requires_grad=True)
print("Softsign passes gradcheck:", tg.gradcheck(Softsign.apply, (x,)))
print(
    "BrokenSoftsign passes gradcheck:",
    tg.gradcheck(BrokenSoftsign.apply, (x,), raise_exception=False),
)

# Inside a bigger computation, gradcheck_graph points at the culprit.
w = tg.tensor(np.random.default_rng(1).normal(size=(3, 3)), dtype=np.float64, requires_grad=True)
with tg.autograd.detect_anomaly():  # records where each op was created
    out = BrokenSoftsign.apply(x @ w).tanh().sum()
try:
    tg.gradcheck_graph(out)
except tg.GradcheckError as error:
    print("\ngradcheck_graph found it:\n" + str(error))
