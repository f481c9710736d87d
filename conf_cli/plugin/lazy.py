"""Plugin parts imported only when first used, so that loading a plugin stays cheap.

A plugin registers a :class:`LazyFactory` in place of a source or sink factory whose module pulls in heavy
libraries (PyAV, numpy, a GUI toolkit). The registry and ``conf plugins`` read only the ``name``, ``kind``
and ``description`` given here; the first use of anything else (``open``, ``list_devices`` ...) imports
the module, builds the real factory and hands on to it. A ``conf server``, which opens no devices, then
never imports them.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any


class LazyFactory:
    """Stands for ``module.attribute()`` (a factory class, instantiated without arguments) until used."""

    def __init__(self, module: str, attribute: str, *, name: str, kind: str, description: str = "") -> None:
        self.name = name
        self.kind = kind
        self.description = description
        self.module = module
        self.attribute = attribute
        self._target: Any = None
        self._lock = threading.Lock()  # sources are opened from worker threads

    def load(self) -> Any:
        """The real factory, imported and built on first call."""
        with self._lock:
            if self._target is None:
                self._target = getattr(importlib.import_module(self.module), self.attribute)()
            return self._target

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes not set in __init__: everything the real factory does.
        if attribute.startswith("__") or attribute in ("module", "attribute", "_target", "_lock"):
            raise AttributeError(attribute)
        return getattr(self.load(), attribute)

    def __repr__(self) -> str:
        state = "loaded" if self._target is not None else "not loaded yet"
        return f"<LazyFactory {self.name!r}: {self.module}.{self.attribute}, {state}>"
