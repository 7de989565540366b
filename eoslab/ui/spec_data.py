"""What a Vega-Lite spec reads: its named datasets, and those its continuous scales need.

:class:`~eoslab.ui.base.LiveChart` lists both in the spec it sends, so the browser
(:mod:`eoslab.ui.vega_view`) knows when a figure has nothing to draw.
"""

from __future__ import annotations

__all__ = ["named_data", "scaled_data"]

_SCALED = ("quantitative", "temporal")


def scaled_data(spec, data: str | None = None) -> list[str]:
    """The named datasets a continuous scale of the spec is computed from.

    A mark encoding a quantitative or temporal field of an empty dataset gives Vega a scale
    with no extent ("Infinite extent"); a figure is therefore not drawn during a run until
    each of these has rows (see :mod:`eoslab.ui.vega_view`).

    >>> scaled_data({"layer": [{"data": {"name": "a"}, "mark": "line",
    ...     "encoding": {"x": {"field": "s", "type": "quantitative"}}},
    ...     {"data": {"name": "note"}, "mark": "text", "encoding": {"x": {"value": 4}}}]})
    ['a']
    """
    found: set[str] = set()
    if isinstance(spec, list):
        for item in spec:
            found.update(scaled_data(item, data))
        return sorted(found)
    if not isinstance(spec, dict):
        return []
    own = spec.get("data")
    if isinstance(own, dict):
        data = own.get("name") if "values" not in own else None
    for channel in (spec.get("encoding") or {}).values():
        if (data and isinstance(channel, dict) and "field" in channel
                and channel.get("type") in _SCALED):
            found.add(data)
    for key in ("layer", "hconcat", "vconcat", "concat", "spec"):
        if key in spec:
            found.update(scaled_data(spec[key], data))
    return sorted(found)


def named_data(spec) -> list[str]:
    """The names of the named data sources (``{"data": {"name": ...}}``) of a spec.

    >>> named_data({"hconcat": [{"data": {"name": "a"}}, {"data": {"values": []}}]})
    ['a']
    """
    names: list[str] = []
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and "name" in data and "values" not in data:
                names.append(data["name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return list(dict.fromkeys(sorted(names)))
