"""CPU speed layers, applied by the engines (fit, sweep, landscape) behind one switch.

Model code is plain PyTorch (``nn.Tanh``, ``nn.Sequential``); the engines apply the layers
through :mod:`eoslab.speed.switch`, and only while :func:`enabled` is true (the default;
``EOSLAB_SPEED=0`` turns every layer off, with the same results to rounding):

* :mod:`~eoslab.speed.fast_tanh`: ``tanh`` through a fused sigmoid, :math:`2\\sigma(2x)-1`;
* :mod:`~eoslab.speed.heap`: keep freed memory in the process during a hot loop;
* :mod:`~eoslab.speed.stacked_mlp`: a feature-major forward of stacked copies of an MLP;
* :mod:`~eoslab.speed.linear_head`: the first affine layer once per direction;
* :mod:`~eoslab.speed.threads`: intra-op thread pinning.

Usage in an engine::

    from eoslab import speed

    with speed.accelerated(model):   # nn.Tanh -> fast tanh, retained heap; restored after
        ...
    forward = speed.stacked_forward(model, input_shape)   # None when off or not an MLP
"""

from eoslab.speed.switch import (
    ENV_VAR,
    accelerated,
    enabled,
    fast_tanh_mode,
    split_linear_head,
    stacked_forward,
)
from eoslab.speed.threads import single_thread

__all__ = ["ENV_VAR", "accelerated", "enabled", "fast_tanh_mode", "single_thread",
           "split_linear_head", "stacked_forward"]
