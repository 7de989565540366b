"""Reading Vega-Lite specs in tests (tests/ is on sys.path through its conftest)."""


def marks(spec):
    """Every (mark type, data name) pair in a (nested) spec."""
    found = []

    def walk(node, data=None):
        if isinstance(node, dict):
            data = node.get("data", {}).get("name", data) if isinstance(node.get("data"), dict) \
                else data
            if "mark" in node:
                mark = node["mark"]
                found.append((mark if isinstance(mark, str) else mark["type"], data))
            for key in ("layer", "hconcat", "vconcat", "concat"):
                for child in node.get(key, []):
                    walk(child, data)

    walk(spec)
    return found
