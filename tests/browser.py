"""A headless Chromium for the browser tests, or a skip that says how to get one.

Chromium comes from the operating system's packages (Playwright's own browser
download is not used): on Debian or Ubuntu, ``apt-get install chromium``;
elsewhere set ``CHROMIUM`` to the browser's executable. ``.ci/run`` installs it
when it is missing.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

INSTALL_HINT = (
    "the browser tests need Chromium: on Debian or Ubuntu run `apt-get install chromium` "
    "(or set CHROMIUM to a Chromium or Chrome executable)"
)


def chromium_path() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else the first of the usual names on ``PATH``."""
    candidates = [os.environ.get("CHROMIUM")] + [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    return next((path for path in candidates if path and Path(path).exists()), None)


def require_chromium() -> str:
    """The executable, or skip the test with the install hint."""
    path = chromium_path()
    if path is None:
        pytest.skip(INSTALL_HINT)
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is missing: run `make test` to install it")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on a free local port; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def launch(playwright, executable: str):
    """Headless Chromium; without a sandbox when running as root (containers, CI), which Chromium requires."""
    arguments = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=executable, args=arguments)


def open_browser() -> Iterator[object]:
    """A headless Chromium for a module's tests (``yield from`` it in a fixture), or a skip with the install hint."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright, executable)
        yield chromium
        chromium.close()


def run_all_cells(page) -> None:
    """In the notebook open in JupyterLab on ``page`` (its kernel idle): clear the outputs, run every cell, wait.

    Committed outputs and execution counts are cleared first, so that what a test checks is this run's. Done when
    every code cell has an execution count and the kernel is idle again.
    """
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(
        "Array.from(window.jupyterapp.shell.currentWidget.content.model.cells).every(cell => cell.type !== 'code' || cell.executionCount === null)"
    )
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const cells = Array.from(panel.content.model.cells).filter(cell => cell.type === 'code');
            return panel.sessionContext.session.kernel.status === 'idle'
                && cells.every(cell => cell.executionCount !== null);
        }""",
        polling=500,
    )


def error_outputs(page) -> list[str]:
    """The text of every error output (a traceback) in the notebook open in JupyterLab on ``page``."""
    return page.evaluate(
        """Array.from(window.jupyterapp.shell.currentWidget.content.model.cells)
            .flatMap((cell, index) => cell.type !== 'code' ? [] :
                Array.from({length: cell.outputs.length}, (_, k) => cell.outputs.get(k))
                    .filter(output => output.type === 'error')
                    .map(output => `cell ${index}: ${output.toJSON().ename}: ${output.toJSON().evalue}`))"""
    )
