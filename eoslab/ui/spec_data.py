"""What a Vega-Lite spec reads: its named datasets.

:class:`~eoslab.ui.base.LiveChart` lists them in the spec it sends, so the browser
(:mod:`eoslab.ui.vega_view`) knows which panels have nothing to draw.
"""

from __future__ import annotations

__all__ = ["named_data"]


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
