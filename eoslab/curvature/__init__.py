"""The curvature layer: Hessian-vector products and what they measure.

``objective`` is the loss as a pure function of a parameter dict; ``hessian`` the HVP
operator on it; ``eigen`` Lanczos, ``eigen_batched`` Lanczos of many stacked copies at
once; ``trace`` Hutchinson and Hutch++;
``spectrum`` stochastic Lanczos quadrature; ``sharpness`` the probes used while training;
``sharpness_notions`` batch, directional and worst-case sharpness; ``scale_invariance``
spherical sharpness and effective step sizes of scale-invariant networks.
"""
