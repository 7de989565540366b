"""The forward pass of ``C`` stacked copies of a plain MLP, feature-major, as batched products.

A sweep (:mod:`eoslab.core.sweep`) trains ``C`` copies of one ``nn.Sequential`` of ``Linear``
layers and elementwise activations on the *same* inputs.  With the copies' weights stacked
(``W_l`` of shape ``(C, o_l, i_l)``, biases ``(C, o_l)``), keeping the activations
feature-major, ``H_l`` of shape ``(C, o_l, n)``, makes every layer one batched product
whose operands are already laid out for it:

.. math::

    H_1 = \\phi\\big(\\operatorname{reshape}_{C}([W_1^{(1)}; \\dots; W_1^{(C)}]\\, X^\\top)
    + b_1\\big), \\qquad H_l = \\phi\\big(W_l H_{l-1} + b_l\\big), \\qquad
    f_c(X) = (W_L H_{L-1} + b_L)_c^\\top .

The first layer is a *single* matrix product (``addmm``) of all copies' weights, stacked
into one ``(C o_1, i)`` matrix, with the shared :math:`X^\\top`; the others are ``baddbmm``
of ``(C, o, i)`` by ``(C, i, n)``, the bias written into the output first.  The result
is, copy for copy, ``model(X)`` with that copy's parameters (up to the order of
floating-point sums), and autograd through it gives each copy's gradient of a sum of
per-copy losses (the copies do not interact).

Why not ``vmap(functional_call)``: its batching rule for ``Linear`` with batched weights
and an unbatched input runs example-major ``bmm`` of ``(C, n, i)`` by ``(C, i, o)``
operands, which CPU BLAS libraries handle poorly for narrow outputs; the feature-major
products here are several times faster at chapter sizes (``benchmarks/README.md``).  Any
model that is not a plain MLP (:func:`stacked_forward` returns ``None``) keeps the
general ``vmap`` path.  The sweep consults it through
:func:`eoslab.speed.switch.stacked_forward`, which returns ``None`` with the switch off.

Example:
    >>> import torch
    >>> from torch.func import stack_module_state
    >>> nets = [torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
    ...                             torch.nn.Linear(4, 2)) for _ in range(5)]
    >>> params, _ = stack_module_state(nets)
    >>> forward = stacked_forward(nets[0], (3,))
    >>> x = torch.randn(7, 3)
    >>> out = forward(params, x)
    >>> out.shape, bool(torch.allclose(out[2], nets[2](x), atol=1e-6))
    (torch.Size([5, 7, 2]), True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["ELEMENTWISE", "stacked_forward"]

#: Activations that act elementwise, so they apply to feature-major activations unchanged.
ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.ELU, nn.Identity, nn.LeakyReLU, nn.Sigmoid, nn.GELU,
               nn.Softplus, nn.SiLU, nn.Hardtanh)


def _plan(model: nn.Module) -> list | None:
    """``[(kind, index, module)]`` for a plain MLP, ``None`` for anything else."""
    if type(model) is not nn.Sequential or any(True for _ in model.buffers()):
        return None
    plan, seen_linear = [], False
    for index, module in enumerate(model):
        if type(module) is nn.Linear:
            plan.append(("linear", str(index), module))
            seen_linear = True
        elif isinstance(module, ELEMENTWISE) and not any(True for _ in module.parameters()):
            plan.append(("act", str(index), module))
        elif (type(module) is nn.Flatten and index == 0 and module.start_dim == 1
              and module.end_dim == -1):
            plan.append(("flatten", str(index), module))
        else:
            return None
    return plan if seen_linear else None


def stacked_forward(model: nn.Module, input_shape: tuple[int, ...]
                    ) -> Callable[[dict, torch.Tensor], torch.Tensor] | None:
    """``forward(params, x) -> (C, n, outputs)`` for stacked copies of ``model``, or ``None``.

    ``model`` qualifies when it is an ``nn.Sequential`` of ``nn.Linear`` layers (with or
    without bias) and parameter-free elementwise activations (:data:`ELEMENTWISE`), with an
    optional leading ``nn.Flatten()``, and has no buffers; ``input_shape`` (one example's)
    must be flat unless the ``Flatten`` comes first.  ``params`` maps the model's
    parameter names to tensors stacked along a new leading copy dimension (as
    ``torch.func.stack_module_state`` gives); ``x`` of shape ``(n, ...)`` is shared by all
    copies.  The module's own ``forward`` is never called; only its structure is read.
    """
    plan = _plan(model)
    if plan is None or (len(tuple(input_shape)) != 1 and plan[0][0] != "flatten"):
        return None

    def forward(params: dict, x: torch.Tensor) -> torch.Tensor:
        h, shared = x, True  # shared: h is (n, features), the same for every copy
        for kind, index, module in plan:
            if kind == "flatten":
                h = h.flatten(1)
            elif kind == "act":
                h = module(h)
            else:
                h = _linear(params[index + ".weight"], params.get(index + ".bias"), h, shared)
                shared = False
        return h.transpose(1, 2).contiguous()  # a plan has a Linear, so h is per copy

    return forward


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, h: torch.Tensor,
            shared: bool) -> torch.Tensor:
    """``W h + b`` per copy; ``h`` is ``(n, i)`` shared by all copies or ``(C, i, n)``."""
    if not shared:  # baddbmm writes the bias into the output, then adds the product
        return torch.bmm(weight, h) if bias is None else torch.baddbmm(bias.unsqueeze(2),
                                                                         weight, h)
    copies, outputs, inputs = weight.shape
    stacked = weight.reshape(copies * outputs, inputs)
    out = stacked @ h.T if bias is None else torch.addmm(bias.reshape(-1, 1), stacked, h.T)
    return out.view(copies, outputs, -1)
