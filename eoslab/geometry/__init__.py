"""The geometry layer: where the weights are and what the loss looks like around them.

``directions`` (random, filter-normalised, eigen- and gradient directions), ``landscape``
(one- and two-dimensional slices), ``plane`` (the plane through three weight vectors) and
``curves`` (Bézier and polygonal curves between two solutions).
"""
