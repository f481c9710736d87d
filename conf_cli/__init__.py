"""conf: a command-line conferencing toolkit."""

__version__ = "0.1.0"
