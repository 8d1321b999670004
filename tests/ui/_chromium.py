"""Headless Chromium for the UI tests: load a page, return its DOM after scripts ran.

Each call uses a fresh profile directory and its own process session, and the
whole session is killed afterwards, so no browser process outlives a test.
"""

from __future__ import annotations

import contextlib
import html.parser
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def require_chromium() -> None:
    """Skip with the fix when Debian's chromium is not installed (`make chromium`)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed: run 'make chromium' (make test does)")


def dump_dom(url: str, timeout: float = 60.0, flags: tuple[str, ...] = ()) -> str:
    """The serialized DOM of `url` as Chromium rendered it (`flags`: more switches)."""
    require_chromium()
    with tempfile.TemporaryDirectory(prefix="sparkctl-chromium-") as profile:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, *flags, f"--user-data-dir={profile}", "--dump-dom", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return out.decode("utf-8", errors="replace")


class Links(html.parser.HTMLParser):
    """Collects the anchors of a page: (href, class, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self._open: list[list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            values = dict(attrs)
            self._open = [[values.get("href") or "", values.get("class") or "", ""]]

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[0][2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            href, cls, text = self._open[0]
            self.links.append((href, cls, text.strip()))
            self._open = None


def links_of(dom: str) -> list[tuple[str, str, str]]:
    """(href, class, text) of every anchor in `dom`."""
    parser = Links()
    parser.feed(dom)
    return parser.links


def screenshot(
    url: str, path: str, width: int = 1300, height: int = 1400, timeout: float = 60.0
) -> None:
    """Save a PNG of `url` as Chromium renders it (window `width` x `height`)."""
    require_chromium()
    with tempfile.TemporaryDirectory(prefix="sparkctl-chromium-") as profile:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--hide-scrollbars", f"--window-size={width},{height}",
             f"--user-data-dir={profile}", f"--screenshot={path}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    if not os.path.exists(path):
        raise AssertionError(f"chromium saved no screenshot of {url}")
