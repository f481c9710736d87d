"""Packages from the npm registry for the browser tests, fetched once into ``build/npm`` of the checkout.

A test that needs a client library no one here wrote (a WHIP/WHEP client, say) asks for it by name and
exact version; ``npm install`` fetches it the first time (the set-up installs node and npm with Chromium:
``scripts/setup-system.sh --browser``), and later runs use what is there. Pages served by the tests load
it from that folder, never from a CDN.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / "build" / "npm"
INSTALL_TIMEOUT = 300.0


def npm_unavailable() -> str | None:
    if shutil.which("npm") is None:
        return "npm is not installed: run scripts/setup-system.sh --browser (make test does)"
    return None


def npm_package(name: str, version: str) -> Path:
    """The folder of npm package ``name`` at ``version``, installed under :data:`CACHE` if it is not."""
    folder = CACHE / f"{name.replace('/', '_')}-{version}"
    package = folder / "node_modules" / name
    if not (package / "package.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(folder),
             f"{name}@{version}"],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
    return package
