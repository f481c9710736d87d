"""The capture plugin registers every source and sink through the entry point, like a third party's."""

from __future__ import annotations

import sys

from conf_cli.plugin.registry import create_registry
from conf_cli.testing.processes import run_conf

SOURCES = {"pattern", "tone", "file", "camera", "screen", "audio"}
SINKS = {"recorder", "preview", "speaker", "window", "control"}


def test_registry_has_every_source_and_sink() -> None:
    registry = create_registry()
    assert set(registry.sources) >= SOURCES
    assert set(registry.sinks) >= SINKS
    for name in SOURCES:
        factory = registry.sources[name]
        assert factory.name == name and factory.kind in ("audio", "video", "screen") and factory.description
    assert registry.sources["audio"].kind == "audio" and registry.sources["screen"].kind == "screen"
    assert registry.sinks["recorder"].consumes == "encoded" and registry.sinks["preview"].consumes == "frames"
    assert registry.sinks["control"].consumes == "frames"
    assert set(registry.injectors) == {"pynput"} and registry.injectors["pynput"].description


def test_loading_the_plugin_imports_no_device_library() -> None:
    code = (
        "import sys; from conf_cli.plugin.registry import create_registry; create_registry(); "
        "print(sorted(m for m in ('mss', 'sounddevice', 'pynput', 'pygame') if m in sys.modules))"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin"}
    )
    assert result.stdout.strip() == "[]"


def test_conf_plugins_lists_capture_and_its_hooks() -> None:
    result = run_conf("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("│ capture "))
    block = [lines[first]]
    for line in lines[first + 1 :]:  # the row's continuation lines have an empty first column
        cells = line.split("│")
        if len(cells) < 3 or cells[1].strip():
            break
        block.append(line)
    hooks = {cell.split("│")[2].strip() for cell in block}
    assert {"conf_register_sources", "conf_register_sinks", "conf_register_injectors"} <= hooks
    assert "conf_capture" in "".join(block)
    assert "sources: audio, camera, file, pattern, screen, tone" in result.stdout
    assert "sinks: control, preview, recorder, speaker" in result.stdout
    assert "injectors: pynput" in result.stdout
