"""Headless Chromium for report tests (Debian's chromium package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--virtual-time-budget=15000"]


def available() -> bool:
    return CHROMIUM is not None


def _run(page: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra,
                               page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def dump_dom(page: Path) -> str:
    """The page's DOM after its scripts ran."""
    return _run(page, "--dump-dom")


def screenshot(page: Path, png: Path, size: str = "1400,4000") -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, f"--screenshot={png.resolve()}", f"--window-size={size}")
