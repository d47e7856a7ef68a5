"""The interactive parts in a real browser: JupyterLab in headless Chromium runs lessons 00 and 05 and drives the picker.

JupyterLab runs from the project's environment on the learner's copy that make
lab serves (so nothing it autosaves touches the committed notebooks), and checks
that opening and closing a lesson or an exercise changes nothing; without the static-figure
switch, so the picker is the live ipywidgets one a learner gets.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import error_outputs, open_browser, require_chromium, run_all_cells

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import learner_copy  # noqa: E402 - scripts/learner_copy.py
from hub import free_port  # noqa: E402 - scripts/hub.py

ROOT = Path(__file__).resolve().parents[1]
RUN_LIMIT_MS = 300_000  # a whole notebook, on a slow shared machine
WIDGET_LIMIT_MS = 60_000  # one redraw of the picker


_ROOTS: dict[tuple[str, str], Path] = {}


def lab_root(lab: tuple[str, str]) -> Path:
    """The folder the lab fixture's JupyterLab serves."""
    return _ROOTS[lab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving the learner's copy of the course, as make lab does; yields (url, token)."""
    require_chromium()
    root = tmp_path_factory.mktemp("lab")
    # The learner's copy that make lab serves: lessons and exercises side by side, the data beside them.
    learner_copy.sync(root / "my-course", learner_copy.environment_python_version(Path(sys.prefix)))
    port, token = free_port(), secrets.token_hex(16)
    environment = {key: value for key, value in os.environ.items() if key != "GRADCAM_NONINTERACTIVE"}
    environment["GRADCAM_MODEL"] = "efficientnet_lite0"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root / 'my-course'}", "--expose-app-in-browser",
        "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = (root / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=root, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        _ROOTS[(url, token)] = root / "my-course"
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    yield from open_browser()


def _open_and_run_all(browser, lab, name: str):
    """Open a notebook in JupyterLab, run all its cells, wait until the kernel is idle; returns the page."""
    url, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(RUN_LIMIT_MS)
    page.goto(f"{url}/lab/tree/{name}?reset&token={token}")  # reset: no other notebook restored from the workspace
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel")
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'")
    run_all_cells(page)
    return page


@pytest.mark.parametrize(
    "name", ["lessons/00_quickstart.ipynb", "lessons/01_classifying_images.ipynb", "exercises/exercise_a_cams_for_classes.ipynb"]
)
def test_a_lesson_opened_and_closed_without_running_is_not_changed(browser, lab, name):
    """No 'Save changes?' on close: on a hub, a saved copy would keep the student's version and stop the teacher's
    fixes from arriving through nbgitpuller. The committed form must be the form JupyterLab keeps."""
    url, token = lab
    path = Path(lab_root(lab)) / name
    before = path.read_bytes()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(RUN_LIMIT_MS)
    page.goto(f"{url}/lab/tree/{name}?reset&token={token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'")
    # JupyterLab writes the kernel's language and spec into the notebook's metadata when their replies arrive:
    # wait for both replies, then for the handlers JupyterLab attached to them before ours.
    page.evaluate("""async () => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        await kernel.info;
        await kernel.spec;
        await new Promise(resolve => setTimeout(resolve, 100));
    }""")
    dirty = page.evaluate("window.jupyterapp.shell.currentWidget.context.model.dirty")
    changed = page.evaluate("JSON.stringify(window.jupyterapp.shell.currentWidget.context.model.metadata)")
    assert not dirty, f"{name} is marked changed on opening; its metadata in JupyterLab: {changed}"
    page.evaluate("window.jupyterapp.commands.execute('application:close-all')")
    # Either the notebook closes, or JupyterLab asks to save it first.
    page.wait_for_function("!document.querySelector('.jp-NotebookPanel') || document.querySelector('.jp-Dialog')")
    assert page.locator(".jp-Dialog").count() == 0  # no 'Save changes?' dialog
    page.close()
    assert path.read_bytes() == before


def test_lesson_00_runs_in_the_browser_without_errors(browser, lab):
    page = _open_and_run_all(browser, lab, "lessons/00_quickstart.ipynb")
    assert error_outputs(page) == []
    assert page.locator(".jp-OutputArea-output img").count() >= 3  # the figures were drawn
    page.close()


def test_the_class_picker_in_lesson_05_follows_its_controls(browser, lab):
    page = _open_and_run_all(browser, lab, "lessons/05_cams_for_any_class.ipynb")
    assert error_outputs(page) == []
    page.set_default_timeout(WIDGET_LIMIT_MS)
    # JupyterLab renders only the cells in view: bring the picker's cell there.
    page.evaluate(
        """async () => {
            const notebook = window.jupyterapp.shell.currentWidget.content;
            const index = Array.from(notebook.model.cells).findIndex(cell => cell.sharedModel.getSource().includes('cam_picker(model'));
            notebook.activeCellIndex = index;
            await notebook.scrollToItem(index, 'start');
        }"""
    )
    panel = page.evaluate("window.jupyterapp.shell.currentWidget.id")  # JupyterLab may restore 00's tab too
    picker = page.locator(f"[id='{panel}'] .jp-Cell.jp-mod-active .jp-OutputArea-output").first
    picker.scroll_into_view_if_needed()
    caption = picker.locator("div.widget-label")  # the Label widget (the controls' labels are <label> elements)
    figure = picker.locator(".widget-output img")

    def state() -> tuple[str, str]:
        return caption.inner_text(), figure.get_attribute("src")

    def changed_from(before: tuple[str, str]) -> tuple[str, str]:
        page.wait_for_function(
            "([element, src]) => element.querySelector('.widget-output img') && element.querySelector('.widget-output img').src !== src",
            arg=[picker.element_handle(), before[1]],
        )
        return state()

    start = state()
    assert start[0].startswith("Grad-CAM: ") and "at layer4" in start[0] and start[1]

    # another class, typed into the class box (the pair's top class is espresso)
    class_box = picker.locator("input[list]")
    class_box.fill("Egyptian cat")
    class_box.press("Enter")
    cat = changed_from(start)
    assert cat[0].startswith("Grad-CAM: Egyptian cat (") and "at layer4" in cat[0]

    # another layer
    picker.locator(".widget-dropdown select").select_option("layer3")
    layer3 = changed_from(cat)
    assert layer3[0].startswith("Grad-CAM: Egyptian cat (") and "at layer3" in layer3[0]

    # another opacity, with the keyboard on the slider's handle
    picker.locator(".noUi-handle").focus()
    for _ in range(4):
        page.keyboard.press("ArrowLeft")
    # each key press redraws; wait for the last (the caption gives the raw maximum between layer and opacity)
    caption.filter(has_text=re.compile(r"at layer3, raw max [^,]+, opacity 0\.30")).wait_for()
    page.wait_for_timeout(500)
    lighter = changed_from(layer3)
    assert re.search(r"at layer3, raw max [^,]+, opacity 0\.30$", lighter[0]), lighter[0]
    page.close()
