"""CPU speed layers, applied by the engines (fit, sweep, landscape) and never by model code.

``fast_tanh`` (tanh through a fused sigmoid), ``heap`` (keep freed memory in the process),
``stacked_mlp`` (a feature-major forward of stacked copies), ``linear_head`` (the first
affine layer once per direction) and ``threads`` (intra-op thread pinning).
"""
