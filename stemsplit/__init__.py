"""stemsplit: separate music into stems (vocals, drums, bass, other).

``stemsplit.Separator`` and ``stemsplit.StreamSeparator`` (real time) are the Python API (see
``stemsplit.api``). It is imported on first use, so ``import stemsplit`` stays light: the CLI and
the model files pay nothing for it.
"""

from stemsplit.version import __version__

_API = ("Separator", "StreamSeparator", "StemsplitError", "SeparateError")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from stemsplit import api

        return getattr(api, name)
    raise AttributeError(f"module 'stemsplit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
