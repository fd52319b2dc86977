"""Caxton: an actor runtime that deploys, supervises, hot-reloads and sandboxes agents."""

__version__ = "0.1.0"

__all__ = ["__version__"]
