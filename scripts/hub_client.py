"""A learner on ``make hub``, driven over HTTP: log in, start the server, pull the course, run a notebook.

What ``tests/test_hub.py`` and ``benchmarks/bench_hub.py`` do as a learner,
without a browser: the hub's login form (with its XSRF token), the hub's REST
API with the course's admin token (``scripts/hub.py`` makes it), the class
link's nbgitpuller event stream, and a notebook's code cells run one by one in
a kernel of the learner's server, through jupyter_server's REST API and its
kernel websocket.

Needs the test extras (``requests``, ``websocket-client``); ``missing()`` says
what is missing for a hub to run here, in one line.
"""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from pathlib import Path

import hub  # scripts/hub.py (this folder is on sys.path for whoever imports this module)

__all__ = ["LESSON", "api", "execute", "log_in", "missing", "pull_course", "run_notebook", "start_server",
           "user_token", "wait_for_servers"]

#: Lesson 00 in a learner's home, as the class link puts it there.
LESSON = f"{hub.COURSE_FOLDER}/{hub.FIRST_LESSON}"
#: Generous defaults: learners share the machine's cores with whatever else it runs.
SERVER_READY_S = 240
CELL_LIMIT_S = 300
HTTP_TIMEOUT_S = 60


def missing() -> str | None:
    """One line saying why a hub cannot run here (no Node.js or proxy, no git branch, no test extras); ``None``
    when it can."""
    problem = hub.missing_proxy()
    if problem:
        return problem
    if hub.course_branch() is None:
        return "the repository has no git branch for nbgitpuller to clone (detached HEAD, no local branch)"
    for module in ("jupyterhub", "jupyterhub_idle_culler", "nbgitpuller", "websocket", "requests", "psutil"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is missing: run `make test` to install the test extras"
    return None


def api(running: hub.Hub, method: str, path: str, **kwargs):
    """The hub's REST API with the admin token; the answer's JSON (``None`` when empty)."""
    import requests

    response = requests.request(method, f"{running.url}/hub/api{path}", timeout=HTTP_TIMEOUT_S,
                                headers={"Authorization": f"token {running.admin_token}"}, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def log_in(running: hub.Hub, name: str):
    """A browser-like session logged in through the hub's login form (with its XSRF token)."""
    import requests

    session = requests.Session()
    session.get(f"{running.url}/hub/login", timeout=HTTP_TIMEOUT_S).raise_for_status()
    response = session.post(f"{running.url}/hub/login", allow_redirects=False, timeout=HTTP_TIMEOUT_S,
                            data={"username": name, "password": "any", "_xsrf": session.cookies.get("_xsrf")})
    if response.status_code != 302:
        raise AssertionError(f"{name}'s login was refused ({response.status_code})")
    home = session.get(f"{running.url}/hub/home", timeout=HTTP_TIMEOUT_S)
    if not (home.status_code == 200 and name in home.text):
        raise AssertionError(f"{name} is not logged in after the login form")
    return session


def start_server(running: hub.Hub, name: str) -> None:
    """Ask the hub to start the learner's server (it answers before the server is ready)."""
    api(running, "POST", f"/users/{name}/server")


def user_token(running: hub.Hub, name: str, note: str = "hub_client") -> str:
    """A new API token of the learner's, for their server's REST API and websockets."""
    return api(running, "POST", f"/users/{name}/tokens", json={"note": note})["token"]


def wait_for_servers(running: hub.Hub, names: list[str], within: float = SERVER_READY_S) -> dict[str, str]:
    """Each learner's server URL path once the hub says it is ready; ``AssertionError`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    ready: dict[str, str] = {}
    while len(ready) < len(names):
        for name in names:
            if name in ready:
                continue
            server = api(running, "GET", f"/users/{name}")["servers"].get("")
            if server and server["ready"]:
                ready[name] = server["url"]
        if len(ready) == len(names):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"servers not ready after {within:.0f} s: {sorted(set(names) - set(ready))}\n"
                                 + running.log()[-3000:])
        time.sleep(1)
    return ready


def pull_course(base: str, token: str, repository: Path = hub.ROOT, branch: str | None = None,
                within: float = 300) -> list[dict]:
    """Follow the class link's nbgitpuller event stream (for ``repository``, this one by default) to its end; the
    events."""
    import requests

    events = []
    link = hub.class_link(repository, branch=branch or hub.course_branch(), api=True)
    with requests.get(base + link, stream=True, timeout=within,
                      headers={"Authorization": f"token {token}"}) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[len("data:"):]))
                if events[-1].get("phase") in ("finished", "error"):
                    break
    return events


def execute(socket, session: str, code: str) -> dict:
    """Run ``code`` in the kernel behind a websocket (``session``: the client's id) and wait until it is done.

    Returns its errors (ename, evalue), how many PNG figures it displayed, when (``time.monotonic()``) the first
    of them arrived (``None`` if none did), and its stream output as text.
    """
    msg_id = uuid.uuid4().hex
    socket.send(json.dumps({
        "header": {"msg_id": msg_id, "session": session, "username": "", "msg_type": "execute_request",
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    errors, figures, first_figure, text = [], 0, None, []
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
            errors.append((content["ename"], content["evalue"]))
        elif kind == "stream":
            text.append(content["text"])
        elif kind in ("display_data", "execute_result") and "image/png" in content.get("data", {}):
            figures += 1
            if first_figure is None:
                first_figure = time.monotonic()
        elif kind == "execute_reply":
            replied = True
            if content["status"] != "ok" and not errors:
                errors.append((content.get("ename", content["status"]), content.get("evalue", "")))
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return {"errors": errors, "figures": figures, "first_figure": first_figure, "text": "".join(text)}


def run_notebook(base: str, token: str, path: str, cell_limit: float = CELL_LIMIT_S, shut_down: bool = True) -> dict:
    """Run a notebook's code cells in a new kernel of a learner's server, over its REST API and websocket.

    Returns the errors (cell index, ename, evalue), how many PNG figures the cells displayed, the kernel's id, and
    when (``time.monotonic()``) the kernel was asked for, the first figure arrived (``None`` if none did) and the
    last cell was done. ``shut_down=False`` leaves the kernel running, as a learner's open tab does.
    """
    import requests
    import websocket

    headers = {"Authorization": f"token {token}"}
    response = requests.get(f"{base}api/contents/{path}", headers=headers, timeout=HTTP_TIMEOUT_S)
    response.raise_for_status()
    notebook = response.json()["content"]
    started = time.monotonic()
    # The kernel starts in the notebook's folder, as JupyterLab starts it: the lesson finds ../data from there.
    response = requests.post(f"{base}api/kernels", headers=headers, timeout=max(120, cell_limit),
                             json={"name": "python3", "path": path})
    response.raise_for_status()
    kernel = response.json()
    session = uuid.uuid4().hex
    socket = websocket.create_connection(
        f"{base.replace('http://', 'ws://')}api/kernels/{kernel['id']}/channels?session_id={session}",
        header=[f"Authorization: token {token}"], timeout=cell_limit)
    errors, figures, first_figure = [], 0, None
    try:
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            result = execute(socket, session, cell["source"])
            errors += [(index, ename, evalue) for ename, evalue in result["errors"]]
            figures += result["figures"]
            if first_figure is None:
                first_figure = result["first_figure"]
            if errors:
                break
        done = time.monotonic()
    finally:
        socket.close()
        if shut_down:
            requests.delete(f"{base}api/kernels/{kernel['id']}", headers=headers, timeout=HTTP_TIMEOUT_S)
    return {"errors": errors, "figures": figures, "kernel": kernel["id"], "started": started,
            "first_figure": first_figure, "done": done}
