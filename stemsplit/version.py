"""The package version, in a module of its own: modules that need only the version import it
from here, not from the package (whose ``__getattr__`` loads the Python API)."""

__version__ = "0.1.0"
