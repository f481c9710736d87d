"""LazyFactory: a plugin part whose module is imported on first use."""

from __future__ import annotations

import subprocess
import sys

from conf_cli.plugin.lazy import LazyFactory


def test_metadata_needs_no_import_and_use_loads_the_real_factory() -> None:
    factory = LazyFactory("fractions", "Fraction", name="half", kind="video", description="d")
    assert (factory.name, factory.kind, factory.description) == ("half", "video", "d")
    assert "not loaded yet" in repr(factory)
    assert factory.limit_denominator(10) == 0  # Fraction() is 0; the call goes to the real object
    assert factory.load() is factory.load()
    assert "loaded" in repr(factory)


def test_the_capture_plugin_loads_without_pyav_when_its_parts_are_lazy() -> None:
    """Every registered part must still describe itself exactly as its real factory does."""
    code = (
        "import sys\n"
        "from conf_cli.plugin.lazy import LazyFactory\n"
        "from conf_cli.plugin.registry import registry\n"
        "r = registry()\n"
        "parts = [f for f in (*r.sources.values(), *r.sinks.values()) if isinstance(f, LazyFactory)]\n"
        "print(len(parts), 'av' in sys.modules)\n"
        "for f in parts:\n"
        "    real = f.load()\n"
        "    assert (real.name, real.kind, real.description) == (f.name, f.kind, f.description), f\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    count, av_loaded = result.stdout.split()
    if int(count):  # plugins that register lazy parts must not import PyAV at load time
        assert av_loaded == "False"
