"""A JupyterHub for a class on this machine: ``make hub`` (or ``python tasks.py hub``).

Usage: ``python scripts/hub.py [--port 8000] [--class-list names.txt] [--dir build/hub]``.

It runs, all on 127.0.0.1:

- JupyterHub with configurable-http-proxy (from npm, in ``.hub/node_modules``);
- one real JupyterLab server per learner, as a process of this system account
  (``SimpleLocalProcessSpawner``), each with a home folder of its own,
  ``<dir>/home/<name>``;
- a test authenticator (``DummyAuthenticator``) that lets in the names of the
  class list, one a line, with any password: for trying the course out, never
  for a hub other people can reach;
- the course in each learner's home, delivered the way the teacher's guide
  tells a real hub to: an nbgitpuller link that clones this repository (its
  last commit, from a ``file://`` URL) the first time and pulls later commits
  without overwriting the learner's edits; a learner's server opens on that
  link, so logging in is enough;
- the JupyterLab settings of ``make lab`` (closing a tab shuts its kernel
  down), and the idle culler as a service of the hub, which stops a server
  left idle;
- nbgrader's exchange, ``<dir>/exchange``, and an nbgrader configuration,
  ``<dir>/nbgrader/nbgrader_config.py``, that every learner's server reads
  (through ``JUPYTER_CONFIG_PATH``): the exchange, the course id, and the
  learner's hub name as nbgrader's student id. All learners share one system
  account here, and nbgrader would otherwise name every submission after it.
  nbgrader's menus stay off, as in ``make lab``: learners fetch and submit with
  ``nbgrader`` in a terminal of their server (see the teacher's guide to turn
  the menus on).

It prints the hub's URL, the class link, the accounts and the teacher's nbgrader commands. The hub's files (its
database, cookie secret, generated ``jupyterhub_config.py``, the homes) stay in
``<dir>``. Stop it with Ctrl-C: the hub stops the proxy and every server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where ``.ci/run`` and the hint below install configurable-http-proxy (git-ignored).
sys.path.insert(0, str(ROOT))
import tasks  # noqa: E402 - the project's tasks.py: make lab's JupyterLab settings

PROXY_PREFIX = ROOT / ".hub"
PROXY_VERSION = "5.3.0"
PROXY_INSTALL = f"npm install --prefix .hub configurable-http-proxy@{PROXY_VERSION}"
DEFAULT_DIR = ROOT / "build" / "hub"
DEFAULT_CLASS = ("learner1", "learner2")
#: The folder in each home that the course is cloned into, and the lesson the class link opens.
COURSE_FOLDER = "gradcam-course"
FIRST_LESSON = "notebooks/00_quickstart.ipynb"
#: A server with no activity for this long is stopped by the culler (seconds).
CULL_TIMEOUT = 3600
#: nbgrader: the course id of ``make nbgrader-course`` (utilities.grading.nbgrader_course.DEFAULT_COURSE_ID; not
#: imported, since importing the course's utilities loads PyTorch), the exchange and the configuration's folder
#: inside the hub's folder, and the exercise the printed commands name.
NBGRADER_COURSE_ID = "gradcam-course"
EXCHANGE_FOLDER = "exchange"
NBGRADER_CONFIG_FOLDER = "nbgrader"
NBGRADER_EXAMPLE = "exercise_a"
#: Learners' names become folder names and URL parts: keep them to what every system and JupyterHub accept.
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")

__all__ = ["Hub", "class_link", "course_branch", "free_port", "missing_proxy", "nbgrader_config", "nbgrader_steps",
           "read_class_list", "start", "stop"]


def proxy_executable() -> Path:
    return PROXY_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"


def missing_proxy() -> str | None:
    """One line saying what to install when Node.js or the proxy is missing; ``None`` when both are there."""
    if shutil.which("node") is None:
        return ("JupyterHub's proxy needs Node.js: install it (Debian or Ubuntu: `apt-get install nodejs npm`), "
                f"then run `{PROXY_INSTALL}`")
    if not proxy_executable().exists():
        return f"JupyterHub's proxy is missing: run `{PROXY_INSTALL}` in {ROOT}"
    return None


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def read_class_list(path: Path | None) -> list[str]:
    """The learners' names from a text file, one a line (blank lines and ``#`` comments skipped); the default
    class of two when ``path`` is ``None``. Raises ``ValueError`` naming the first name that cannot be an account."""
    if path is None:
        return list(DEFAULT_CLASS)
    names = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        name = line.split("#", 1)[0].strip().lower()
        if not name:
            continue
        if not NAME.match(name):
            raise ValueError(f"{path}, line {number}: {name!r} cannot be an account name "
                             "(letters, digits, '.', '_' and '-', at most 32, starting with a letter or digit)")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"{path} names no learner")
    return names


def course_branch() -> str | None:
    """The branch the class link clones: the repository's current one; on a detached HEAD (some CI checkouts) the
    first local branch, since nbgitpuller clones a branch, not a commit; ``None`` when there is none."""
    def git(*arguments: str) -> list[str]:
        result = subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.split() if result.returncode == 0 else []

    current = git("rev-parse", "--abbrev-ref", "HEAD")
    if current and current[0] != "HEAD":
        return current[0]
    branches = git("for-each-ref", "--format=%(refname:short)", "refs/heads")
    return branches[0] if branches else None


def class_link(repository: Path = ROOT, branch: str | None = None, api: bool = False) -> str:
    """The nbgitpuller link that puts the course into a learner's home, relative to a server's URL.

    ``api=True`` gives nbgitpuller's event-stream endpoint, which pulls without a browser (the tests use it).
    ``depth=1``: each learner gets the last commit only, not the repository's whole history.
    """
    query = {"repo": repository.resolve().as_uri(), "targetpath": COURSE_FOLDER, "depth": "1"}
    if branch:
        query["branch"] = branch
    if not api:
        query["urlpath"] = f"lab/tree/{COURSE_FOLDER}/{FIRST_LESSON}"
    return ("git-pull/api?" if api else "git-pull?") + urllib.parse.urlencode(query)


def nbgrader_config(exchange: Path, course_id: str = NBGRADER_COURSE_ID) -> str:
    """The text of the hub's ``nbgrader_config.py``, read by every learner's server and by the teacher's commands."""
    return f'''"""nbgrader's settings on `make hub`, written by scripts/hub.py; regenerated at every start.

The learners' servers read it through JUPYTER_CONFIG_PATH; so do the teacher's nbgrader commands when
JUPYTER_CONFIG_PATH names this folder (the course folder's own nbgrader_config.py is read after it).
"""
import os

c = get_config()  # noqa: F821 - nbgrader defines it

c.Exchange.root = {str(exchange)!r}
c.CourseDirectory.course_id = {course_id!r}
# Every learner's server runs as the same system account on this hub, and nbgrader names a submission after
# the account unless it is given a student id: each learner's server has its own, the learner's hub name.
# (A hub with one system account per learner needs no such setting.) The teacher's commands run outside
# the hub's servers, without JUPYTERHUB_USER, so they see every learner.
if os.environ.get("JUPYTERHUB_USER"):
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
'''


def nbgrader_steps(directory: Path) -> str:
    """What a teacher runs for nbgrader on the hub in ``directory``: make the course, release, and later grade."""
    course, first = directory / "nbgrader-course", NBGRADER_EXAMPLE
    return "\n".join([
        f"nbgrader: exchange {directory / EXCHANGE_FOLDER}, course id {NBGRADER_COURSE_ID}. As the teacher, in {ROOT}:",
        f"  .venv/bin/python -m utilities.grading.nbgrader_course {course} --exercises {first[-1]}",
        f"  source .venv/bin/activate; export JUPYTER_CONFIG_PATH={directory / NBGRADER_CONFIG_FOLDER}; cd {course}",
        f"  nbgrader generate_assignment {first}; nbgrader release_assignment {first}",
        f"Learners, in a terminal of their server: nbgrader fetch_assignment {first}; later nbgrader submit {first}.",
        f"Then: nbgrader collect {first}; nbgrader autograde {first}; nbgrader generate_feedback {first}; "
        f"nbgrader release_feedback {first}",
        f"Learners: nbgrader fetch_feedback {first}.",
    ])


def hub_config(port: int, learners: list[str], admin_token: str, home: Path, cull_timeout: int,
               server_args: tuple[str, ...] = (), nbgrader: Path | None = None) -> str:
    """The text of a ``jupyterhub_config.py`` for the class (values written as Python literals).

    ``server_args`` go to every learner's server after the course's own (the browser test exposes JupyterLab's
    application object with them). ``nbgrader``: the folder of the learners' ``nbgrader_config.py``.
    """
    settings = {
        "port": port, "hub_port": free_port(), "proxy_api_port": free_port(), "learners": learners,
        "admin_token": admin_token, "home": str(home), "python": sys.executable,
        "proxy": str(proxy_executable()), "default_url": "/" + class_link(branch=course_branch()),
        # The culler looks at least twice per timeout, so that a short one (a test's) is kept to.
        "cull_timeout": cull_timeout, "cull_every": max(1, min(60, cull_timeout // 2)), "server_args": list(server_args),
        "nbgrader": str(nbgrader) if nbgrader else None,
    }
    return f'''"""Written by scripts/hub.py for `make hub`; regenerated at every start."""
import os

s = {settings!r}
c = get_config()  # noqa: F821 - JupyterHub defines it

# Everything on loopback: the hub, the proxy's public side and its API, the learners' servers.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = s["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{s['proxy_api_port']}}"
c.ConfigurableHTTPProxy.command = [s["proxy"]]

# A test authenticator: the class list's names, any password.
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set(s["learners"])

# Each learner's server is a process of this account, with a home folder of its own.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = s["home"] + "/{{username}}"
c.Spawner.cmd = [s["python"], "-m", "jupyterhub.singleuser"]
c.Spawner.args = (["--allow-root"] if os.geteuid() == 0 else []) + s["server_args"]
c.Spawner.http_timeout = 120  # a busy machine starts JupyterLab slowly
c.Spawner.start_timeout = 180
# Opening a server runs the class link: nbgitpuller clones (or updates) the course, then opens lesson 00 in JupyterLab.
c.Spawner.default_url = s["default_url"]
# As binder/start sets them in the course's image: the bundled model, and PyTorch's threads bounded per learner.
c.Spawner.environment = {{"GRADCAM_MODEL": "efficientnet_lite0", "OMP_NUM_THREADS": "2"}}
# nbgrader's settings for the learners' servers and their kernels: the exchange, the course, the student id.
if s["nbgrader"]:
    c.Spawner.environment["JUPYTER_CONFIG_PATH"] = s["nbgrader"]

# The course's own token for the tests and the teacher's scripts: the admin role.
c.JupyterHub.services = [
    {{"name": "course-admin", "api_token": s["admin_token"]}},
    {{"name": "idle-culler", "command": [s["python"], "-m", "jupyterhub_idle_culler",
                                       f"--timeout={{s['cull_timeout']}}", f"--cull-every={{s['cull_every']}}"]}},
]
c.JupyterHub.load_roles = [
    {{"name": "admin", "services": ["course-admin"]}},
    {{"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}},
]
'''


@dataclass
class Hub:
    """A running hub: its process, URL, the admin token, its folder and the learners."""

    process: subprocess.Popen
    url: str
    admin_token: str
    directory: Path
    learners: list[str]

    def log(self) -> str:
        return (self.directory / "jupyterhub.log").read_text(errors="replace")


def start(directory: Path, port: int, learners: list[str], cull_timeout: int = CULL_TIMEOUT,
          ready_within: float = 120.0, server_args: tuple[str, ...] = ()) -> Hub:
    """Start the hub in ``directory`` on ``port`` and wait until it answers; its output goes to jupyterhub.log.

    Raises ``RuntimeError`` with the log's end if it stops or does not answer in ``ready_within`` seconds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "home").mkdir(exist_ok=True)
    # nbgrader's exchange: every learner's server writes to it (all as this account here; on a real hub it is
    # world-writable, as nbgrader asks).
    exchange = directory / EXCHANGE_FOLDER
    exchange.mkdir(exist_ok=True)
    exchange.chmod(0o777)
    nbgrader = directory / NBGRADER_CONFIG_FOLDER
    nbgrader.mkdir(exist_ok=True)
    (nbgrader / "nbgrader_config.py").write_text(nbgrader_config(exchange))
    # The servers run from this environment: give it make lab's JupyterLab settings.
    tasks.install_lab_settings(Path(sys.prefix))
    token = secrets.token_hex(32)
    config = directory / "jupyterhub_config.py"
    config.write_text(hub_config(port, learners, token, directory / "home", cull_timeout, server_args, nbgrader))
    config.chmod(0o600)  # it holds the admin token
    # The environment's bin first: the hub starts the culler and the servers with this Python, and the proxy
    # with the first `node` on PATH.
    environment = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    command = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    with (directory / "jupyterhub.log").open("w") as log:
        # A session of its own, so that Ctrl-C in `make hub` reaches the hub once, through its parent.
        process = subprocess.Popen(command, cwd=directory, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    hub = Hub(process, f"http://127.0.0.1:{port}", token, directory, learners)
    deadline = time.monotonic() + ready_within
    while True:
        try:
            with urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=5) as response:
                json.load(response)
            return hub
        except (OSError, ValueError):
            if process.poll() is not None or time.monotonic() > deadline:
                stop(hub)
                raise RuntimeError("JupyterHub did not start:\n" + hub.log()[-3000:])
            time.sleep(0.5)


def _api(hub: Hub, method: str, path: str, timeout: float = 30) -> object:
    request = urllib.request.Request(f"{hub.url}/hub/api{path}", method=method,
                                     headers={"Authorization": f"token {hub.admin_token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


#: What the hub starts: the proxy, the culler, the learners' servers and their kernels.
_STARTED_BY_A_HUB = ("configurable-http-proxy", "jupyterhub_idle_culler", "jupyterhub.singleuser", "ipykernel_launcher")


def _started_processes(hub: Hub) -> list:
    """The hub's processes still running: its descendants, and any process it started that lost its parent (a
    kernel whose server was killed) and works in the hub's folder. Never anything else, such as a shell there."""
    import psutil  # the test extras; make hub's clean-up works without it, only less thoroughly

    found = {}
    try:
        found = {child.pid: child for child in psutil.Process(hub.process.pid).children(recursive=True)}
    except psutil.Error:
        pass
    inside = str(hub.directory)
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        cwd, command = process.info.get("cwd") or "", " ".join(process.info.get("cmdline") or [])
        if (cwd == inside or cwd.startswith(inside + os.sep)) and any(mark in command for mark in _STARTED_BY_A_HUB):
            found.setdefault(process.pid, process)
    found.pop(os.getpid(), None)
    return list(found.values())


def stop(hub: Hub, within: float = 60.0) -> None:
    """Stop every learner's server, then the hub (which stops the proxy and the culler); then end whatever the
    hub started that is still running (a server or kernel that did not stop)."""
    try:
        started = _started_processes(hub)
    except ImportError:
        started = None  # no psutil: the hub's own shutdown is all
    if hub.process.poll() is None:
        try:
            for user in _api(hub, "GET", "/users"):
                if user.get("servers"):
                    _api(hub, "DELETE", f"/users/{user['name']}/server")
        except (OSError, ValueError):
            pass  # the hub does not answer: its own shutdown below, then the sweep, stop what it started
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if not any(user.get("servers") for user in _api(hub, "GET", "/users")):
                    break
            except (OSError, ValueError):
                break
            time.sleep(0.5)
        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            hub.process.kill()
            hub.process.wait()
    if started is None:
        return
    import psutil

    known = {process.pid for process in started}
    started += [process for process in _started_processes(hub) if process.pid not in known]
    alive = [process for process in started if process.is_running()]
    for process in alive:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=10)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (0: a free one; default 8000)")
    parser.add_argument("--class-list", type=Path, help="a text file of learners' names, one a line "
                        f"(default: {', '.join(DEFAULT_CLASS)})")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"the hub's working folder (default: {DEFAULT_DIR.relative_to(ROOT)})")
    parser.add_argument("--cull-timeout", type=int, default=CULL_TIMEOUT, help="stop a server idle this many seconds (default: 3600)")
    arguments = parser.parse_args(argv)

    problem = missing_proxy()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        learners = read_class_list(arguments.class_list)
    except (OSError, ValueError) as error:
        print(f"Cannot read the class list: {error}", file=sys.stderr)
        return 1
    if course_branch() is None:
        print(f"{ROOT} has no git branch for nbgitpuller to clone: create one (`git switch -c course`)", file=sys.stderr)
        return 1
    port = arguments.port or free_port()
    if port_in_use(port):
        print(f"Port {port} on 127.0.0.1 is in use (another hub or server?): stop it, or choose another port, "
              f"e.g. `make hub ARGS='--port {port + 1}'` (or --port 0 for any free one)", file=sys.stderr)
        return 1
    directory = arguments.dir.resolve()
    print(f"Starting JupyterHub in {directory} ...", flush=True)
    began = time.monotonic()
    try:
        hub = start(directory, port, learners, arguments.cull_timeout)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"JupyterHub is ready after {time.monotonic() - began:.0f} s: {hub.url}/", flush=True)
    print(f"Accounts (any password): {', '.join(learners)}")
    print(f"Class link (clones or updates the course, then opens lesson 00): {hub.url}/hub/user-redirect/{class_link(branch=course_branch())}")
    print(f"Learners' homes: {directory / 'home'}; the hub's log: {directory / 'jupyterhub.log'}")
    print(nbgrader_steps(directory))
    print("Stop with Ctrl-C.", flush=True)
    # A `kill` (or a CI job's timeout) stops the class as Ctrl-C does: the hub runs in a session of its own,
    # so nothing else would stop it and its servers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while hub.process.poll() is None:
            time.sleep(1)
        print("JupyterHub stopped:\n" + hub.log()[-3000:], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Stopping the servers and the hub ...", flush=True)
        stop(hub)
        return 0


if __name__ == "__main__":
    sys.exit(main())
