"""The class on a real JupyterHub (make hub): two learners log in, get the course through nbgitpuller and run lesson 00.

The hub runs on a free loopback port in a temporary folder, with the proxy,
real single-user servers and the idle culler, as ``make hub`` starts it. The
learners log in through the hub's login form over HTTP; their servers are
started with the hub's REST API (the course's admin token), the course is
pulled into each home with the class link's nbgitpuller endpoint, and lesson
00 runs in a kernel of each server through jupyter_server's REST API and
websocket, both learners at once. Without Node.js or the proxy the tests skip
with the line that says what to install.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import hub  # noqa: E402 - scripts/hub.py

LEARNERS = ["ada", "ben"]
#: The learner who logs in through Chromium (a fresh one: the first click of the class link clones the course).
BROWSER_LEARNER = "cleo"
LESSON = f"{hub.COURSE_FOLDER}/{hub.FIRST_LESSON}"
#: Generous: both learners share two cores with whatever else the machine runs.
SERVER_READY_S = 240
CELL_LIMIT_S = 300


@pytest.fixture(scope="module")
def class_hub(tmp_path_factory):
    """A running hub for LEARNERS; stopped with every server and kernel at the end, whatever happened."""
    problem = hub.missing_proxy()
    if problem:
        pytest.skip(problem)
    if hub.course_branch() is None:
        pytest.skip("the repository has no git branch for nbgitpuller to clone (detached HEAD, no local branch)")
    for module in ("jupyterhub", "jupyterhub_idle_culler", "nbgitpuller", "websocket", "requests", "psutil"):
        pytest.importorskip(module, reason=f"{module} is missing: run `make test` to install the test extras")
    started = time.monotonic()
    # JupyterLab's application object in the page, for the browser test to run the lesson and read its outputs.
    running = hub.start(tmp_path_factory.mktemp("hub"), hub.free_port(), LEARNERS + [BROWSER_LEARNER],
                        server_args=("--LabApp.expose_app_in_browser=True",))
    print(f"hub ready after {time.monotonic() - started:.1f} s")
    try:
        yield running
    finally:
        hub.stop(running)


def api(running: hub.Hub, method: str, path: str, **kwargs):
    import requests

    response = requests.request(method, f"{running.url}/hub/api{path}", timeout=60,
                                headers={"Authorization": f"token {running.admin_token}"}, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def log_in(running: hub.Hub, name: str):
    """A browser-like session logged in through the hub's login form (with its XSRF token)."""
    import requests

    session = requests.Session()
    session.get(f"{running.url}/hub/login", timeout=60).raise_for_status()
    response = session.post(f"{running.url}/hub/login", allow_redirects=False, timeout=60,
                            data={"username": name, "password": "any", "_xsrf": session.cookies.get("_xsrf")})
    assert response.status_code == 302, f"{name}'s login was refused ({response.status_code})"
    home = session.get(f"{running.url}/hub/home", timeout=60)
    assert home.status_code == 200 and name in home.text, f"{name} is not logged in after the login form"
    return session


def wait_for_servers(running: hub.Hub, names: list[str]) -> dict[str, str]:
    """Each learner's server URL path once the hub says it is ready."""
    deadline = time.monotonic() + SERVER_READY_S
    ready: dict[str, str] = {}
    while len(ready) < len(names):
        for name in names:
            server = api(running, "GET", f"/users/{name}")["servers"].get("")
            if server and server["ready"]:
                ready[name] = server["url"]
        if time.monotonic() > deadline:
            raise AssertionError(f"servers not ready after {SERVER_READY_S} s: {sorted(set(names) - set(ready))}\n"
                                 + running.log()[-3000:])
        time.sleep(1)
    return ready


def pull_course(base: str, token: str) -> list[dict]:
    """Follow the class link's nbgitpuller event stream to its end; the events."""
    import requests

    events = []
    with requests.get(base + hub.class_link(branch=hub.course_branch(), api=True), stream=True, timeout=300,
                      headers={"Authorization": f"token {token}"}) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[len("data:"):]))
                if events[-1].get("phase") in ("finished", "error"):
                    break
    return events


def run_notebook(base: str, token: str, path: str) -> dict:
    """Run a notebook's code cells in a new kernel of a learner's server, over its REST API and websocket.

    Returns the errors (cell index, ename, evalue) and how many PNG figures the cells displayed.
    """
    import requests
    import websocket

    headers = {"Authorization": f"token {token}"}
    notebook = requests.get(f"{base}api/contents/{path}", headers=headers, timeout=60).json()["content"]
    # The kernel starts in the notebook's folder, as JupyterLab starts it: the lesson finds ../data from there.
    kernel = requests.post(f"{base}api/kernels", headers=headers, timeout=120,
                           json={"name": "python3", "path": path}).json()
    session = uuid.uuid4().hex
    socket = websocket.create_connection(
        f"{base.replace('http://', 'ws://')}api/kernels/{kernel['id']}/channels?session_id={session}",
        header=[f"Authorization: token {token}"], timeout=CELL_LIMIT_S)
    errors, figures = [], 0
    try:
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            msg_id = uuid.uuid4().hex
            socket.send(json.dumps({
                "header": {"msg_id": msg_id, "session": session, "username": "", "msg_type": "execute_request",
                           "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": cell["source"], "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True},
            }))
            replied = idle = False
            while not (replied and idle):
                raw = socket.recv()
                if isinstance(raw, bytes):
                    continue  # a message with binary buffers (a widget's state): never a reply or an error
                message = json.loads(raw)
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "error":
                    errors.append((index, content["ename"], content["evalue"]))
                elif kind in ("display_data", "execute_result") and "image/png" in content.get("data", {}):
                    figures += 1
                elif kind == "execute_reply":
                    replied = True
                    if content["status"] != "ok" and not any(error[0] == index for error in errors):
                        errors.append((index, content.get("ename", content["status"]), content.get("evalue", "")))
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
            if errors:
                break
    finally:
        socket.close()
        requests.delete(f"{base}api/kernels/{kernel['id']}", headers=headers, timeout=60)
    return {"errors": errors, "figures": figures}


def test_two_learners_log_in_get_the_course_and_run_lesson_00(class_hub):
    started = time.monotonic()
    for name in LEARNERS:
        log_in(class_hub, name)
    # Both servers start together, as a class's do at the start of a lesson.
    for name in LEARNERS:
        api(class_hub, "POST", f"/users/{name}/server")
    urls = wait_for_servers(class_hub, LEARNERS)
    print(f"servers ready after {time.monotonic() - started:.1f} s")
    tokens = {name: api(class_hub, "POST", f"/users/{name}/tokens", json={"note": "test_hub"})["token"]
              for name in LEARNERS}
    bases = {name: class_hub.url + urls[name] for name in LEARNERS}

    results: dict[str, dict | BaseException] = {}

    def learner(name: str) -> None:
        """One learner: the class link's pull, then lesson 00 (all learners at once, as in a class)."""
        try:
            events = pull_course(bases[name], tokens[name])
            assert events and events[-1]["phase"] == "finished", f"the pull did not finish: {events[-3:]}"
            assert (class_hub.directory / "home" / name / LESSON).is_file(), f"lesson 00 is not in {name}'s home"
            results[name] = run_notebook(bases[name], tokens[name], LESSON)
        except BaseException as error:  # reported by the assertions below, with the learner's name
            results[name] = error

    threads = [threading.Thread(target=learner, args=(name,)) for name in LEARNERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"course pulled and lesson 00 run for both learners after {time.monotonic() - started:.1f} s")
    for name in LEARNERS:
        result = results[name]
        assert not isinstance(result, BaseException), f"{name}: {result!r}"
        assert result["errors"] == [], f"{name}: lesson 00 failed: {result['errors']}"
        assert result["figures"] >= 1, f"{name}: lesson 00 showed no figure"


@pytest.fixture(scope="module")
def browser():
    from browser import open_browser

    yield from open_browser()


def test_a_learner_logs_in_through_the_login_page_and_runs_lesson_00_in_jupyterlab(class_hub, browser):
    """Chromium: the login form, the spawn page, the class link's pull, then lesson 00 open in JupyterLab."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(CELL_LIMIT_S * 1000)
    try:
        page.goto(f"{class_hub.url}/hub/login")
        page.fill("input[name=username]", BROWSER_LEARNER)
        page.fill("input[name=password]", "any")
        page.click("input[type=submit], button[type=submit]")
        # The server starts, opens on the class link, nbgitpuller clones the course and hands over to JupyterLab.
        page.wait_for_url(f"**/user/{BROWSER_LEARNER}/lab/tree/{LESSON}*")
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                               "window.jupyterapp.shell.currentWidget.sessionContext && "
                               "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                               "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel && "
                               "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                               polling=500)
        assert (class_hub.directory / "home" / BROWSER_LEARNER / LESSON).is_file()
        # Committed outputs cleared first, so that what is checked is this run's.
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
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
        errors = page.evaluate(
            """Array.from(window.jupyterapp.shell.currentWidget.content.model.cells)
                .flatMap((cell, index) => cell.type !== 'code' ? [] :
                    Array.from({length: cell.outputs.length}, (_, k) => cell.outputs.get(k))
                        .filter(output => output.type === 'error')
                        .map(output => `cell ${index}: ${output.toJSON().ename}: ${output.toJSON().evalue}`))"""
        )
        assert errors == []
        assert page.locator(".jp-OutputArea-output img").count() >= 3  # the figures were drawn
    finally:
        page.close()


def test_the_culler_runs_as_a_hub_service(class_hub):
    services = api(class_hub, "GET", "/services")
    assert "idle-culler" in services and services["idle-culler"]["command"], services


def test_a_port_in_use_is_one_line(monkeypatch, capsys):
    import socket

    # The port is checked before anything starts; the proxy and the branch are not what this test is about.
    monkeypatch.setattr(hub, "missing_proxy", lambda: None)
    monkeypatch.setattr(hub, "course_branch", lambda: "main")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert hub.main(["--port", str(port)]) == 1
    said = capsys.readouterr().err.strip()
    assert len(said.splitlines()) == 1 and f"Port {port}" in said and "--port" in said, said


def test_a_missing_proxy_is_one_line_saying_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(hub, "PROXY_PREFIX", tmp_path)
    assert hub.main(["--port", "0"]) == 1
    said = capsys.readouterr().err.strip()
    assert len(said.splitlines()) == 1 and "npm install" in said and "configurable-http-proxy" in said, said


def test_ci_installs_the_proxy_the_hub_asks_for():
    assert f"configurable-http-proxy@{hub.PROXY_VERSION}" in (ROOT / ".ci" / "run").read_text()


def test_the_class_list(tmp_path):
    names = tmp_path / "class.txt"
    names.write_text("# a class\nAda\n\nben  # second\nada\n")
    assert hub.read_class_list(names) == ["ada", "ben"]
    assert hub.read_class_list(None) == list(hub.DEFAULT_CLASS)
    names.write_text("ada\nnot a name\n")
    with pytest.raises(ValueError, match="line 2"):
        hub.read_class_list(names)
