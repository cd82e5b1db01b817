"""stemsplit: separate music into stems (vocals, drums, bass, other)."""

__version__ = "0.1.0"
