"""The playground: any data, model, loss and optimiser, live (see :mod:`.app`).

from eoslab.ui.playground import Playground
Playground()                                    # the built-in problems
Playground(model=net, data=(x, y), loss="mse", optimizer=opt)   # your own module
"""

__all__ = ["Playground"]


def __getattr__(name: str):
    if name == "Playground":
        from eoslab.ui.playground.app import Playground

        return Playground
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
