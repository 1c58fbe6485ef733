"""A real headless Chromium for the HTML report: load a page, read back its DOM, console and a screenshot.

The page writes ``… — N tiles, E errors`` into its title once loaded, so ``--dump-dom`` says what it
showed; ``--enable-logging=stderr`` carries the console, where a script error or a blocked request (the
page's Content-Security-Policy forbids any network) would appear.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find() -> str | None:
    for n in NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


def need() -> str:
    exe = find()
    if exe is None:
        pytest.skip("no chromium: install Debian's `chromium` package (apt-get install -y chromium; .ci/run does)")
    return exe


def _run(exe: str, args: list[str], profile: str) -> subprocess.CompletedProcess:
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-default-browser-check", f"--user-data-dir={profile}",
            "--virtual-time-budget=10000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": profile})


def load(page: Path, screenshot: Path) -> dict:
    """DOM, title counts, console errors and a screenshot of ``page`` (a file)."""
    exe = need()
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = _run(exe, ["--enable-logging=stderr", "--v=0", "--dump-dom", url], profile)
        shot = _run(exe, ["--window-size=1280,1600", "--hide-scrollbars", f"--screenshot={screenshot}", url], profile)
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r"<title>[^<]*— (\d+) tiles, (\d+) errors</title>", dom.stdout)
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Refused to" in ln
               or "Uncaught" in ln]
    print(f"\nscreenshot of {page}: {screenshot}")
    return {"dom": dom.stdout, "tiles": int(m.group(1)) if m else None, "errors": int(m.group(2)) if m else None,
            "console": console, "screenshot_ok": shot.returncode == 0 and screenshot.is_file()
            and screenshot.stat().st_size > 0}
