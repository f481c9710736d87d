"""conf's version, in a module of its own so that any part of conf can read it without the plugin API."""

__version__ = "0.1.0"
