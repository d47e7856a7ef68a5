"""The class on a real JupyterHub (make hub): two learners log in, get the course through nbgitpuller and run lesson 00.

The hub runs on a free loopback port in a temporary folder, with the proxy,
real single-user servers and the idle culler, as ``make hub`` starts it. The
learners log in through the hub's login form over HTTP; their servers are
started with the hub's REST API (the course's admin token), the course is
pulled into each home with the class link's nbgitpuller endpoint, and lesson
00 runs in a kernel of each server through jupyter_server's REST API and
websocket, both learners at once. A second pull of the class link, after the
teacher commits to a clone of the course, keeps a learner's edit; on a hub of
its own with a culler timeout of a few seconds, an idle learner's server is
stopped and its process ends. nbgrader's exchange runs a whole round for
exercise a: the teacher makes the course folder and runs its commands; three
learners fetch, answer (the solution, a wrong answer, nothing) and submit, each
in a kernel of their own server; the teacher collects, autogrades and releases
feedback, which each learner fetches. Without Node.js or the proxy the tests
skip with the line that says what to install.
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
import hub_client  # noqa: E402 - scripts/hub_client.py: a learner over HTTP, shared with benchmarks/bench_hub.py
from hub_client import api, execute, log_in, pull_course, run_notebook, wait_for_servers  # noqa: E402
from browser import error_outputs, open_browser, run_all_cells  # noqa: E402 - tests/browser.py

LEARNERS = ["ada", "ben"]
#: The learner who logs in through Chromium (a fresh one: the first click of the class link clones the course).
BROWSER_LEARNER = "cleo"
#: The learner whose edits a second pull of the class link must keep (a server of their own, so no other test's
#: order matters).
PULLING_LEARNER = "dana"
#: The learner left idle on a hub of their own whose culler stops a server after IDLE_S seconds.
IDLE_LEARNER = "eve"
#: The learners of nbgrader's exchange, and what each hands in: exercise a's solution, a wrong answer, nothing.
GRADED_LEARNERS = {"fay": "solution", "gus": "wrong", "hal": "untouched"}
ASSIGNMENT = "exercise_a"
ASSIGNMENT_NOTEBOOK = "exercise_a_cams_for_classes.ipynb"
MAX_POINTS = 6  # exercise a's checks (utilities.checks.CHECK_COUNTS["a"])
#: The wrong answer: the solution's Grad-CAM maps, with the two halves swapped in dominant_class (4 of 6 checks).
WRONG_MARK = "a mistake: the halves swapped"
WRONG_DOMINANT_CLASS = f'''def dominant_class(cams, class_names):
    """For each half of the photo, the class whose map has the most mass there ({WRONG_MARK})."""
    width = cams.shape[-1]
    halves = {{"left": cams[..., width // 2 :], "right": cams[..., : width // 2]}}
    return {{half: class_names[int(part.sum(dim=(-2, -1)).argmax())] for half, part in halves.items()}}'''
#: Generous: nbgrader runs each submission's checks (a CNN) on two shared cores.
NBGRADER_LIMIT_S = 900
IDLE_S = 5
#: Generous: the culler looks every IDLE_S // 2 seconds, but a busy machine stops a server slowly.
CULLED_WITHIN_S = 120
LESSON = hub_client.LESSON
#: Generous: learners share two cores with whatever else the machine runs.
CELL_LIMIT_S = hub_client.CELL_LIMIT_S


def skip_without_a_hub() -> None:
    """Skip, saying what to install, where the hub cannot run: no Node.js or proxy, no branch, no test extras."""
    problem = hub_client.missing()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def class_hub(tmp_path_factory):
    """A running hub for LEARNERS; stopped with every server and kernel at the end, whatever happened."""
    skip_without_a_hub()
    started = time.monotonic()
    # JupyterLab's application object in the page, for the browser test to run the lesson and read its outputs.
    running = hub.start(tmp_path_factory.mktemp("hub"), hub.free_port(),
                        LEARNERS + [BROWSER_LEARNER, PULLING_LEARNER, *GRADED_LEARNERS],
                        server_args=("--LabApp.expose_app_in_browser=True",))
    print(f"hub ready after {time.monotonic() - started:.1f} s")
    try:
        yield running
    finally:
        hub.stop(running)


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
        events = pull_course(bases[name], tokens[name])
        assert events and events[-1]["phase"] == "finished", f"the pull did not finish: {events[-3:]}"
        assert (class_hub.directory / "home" / name / LESSON).is_file(), f"lesson 00 is not in {name}'s home"
        results[name] = run_notebook(bases[name], tokens[name], LESSON)

    each_learner(learner, LEARNERS)
    print(f"course pulled and lesson 00 run for both learners after {time.monotonic() - started:.1f} s")
    for name in LEARNERS:
        result = results[name]
        assert result["errors"] == [], f"{name}: lesson 00 failed: {result['errors']}"
        assert result["figures"] >= 1, f"{name}: lesson 00 showed no figure"


@pytest.fixture(scope="module")
def browser():
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
        run_all_cells(page)
        errors = error_outputs(page)
        assert errors == []
        assert page.locator(".jp-OutputArea-output img").count() >= 3  # the figures were drawn
    finally:
        page.close()


def test_the_culler_runs_as_a_hub_service(class_hub):
    services = api(class_hub, "GET", "/services")
    assert "idle-culler" in services and services["idle-culler"]["command"], services


@pytest.fixture
def idle_hub(tmp_path):
    """A hub whose culler stops a server idle for IDLE_S seconds (the class hub's hour would outlast the suite)."""
    skip_without_a_hub()
    running = hub.start(tmp_path / "hub", hub.free_port(), [IDLE_LEARNER], cull_timeout=IDLE_S)
    try:
        yield running
    finally:
        hub.stop(running)


def test_the_culler_stops_an_idle_learners_server_and_its_process_ends(idle_hub):
    import psutil

    log_in(idle_hub, IDLE_LEARNER)
    api(idle_hub, "POST", f"/users/{IDLE_LEARNER}/server")
    wait_for_servers(idle_hub, [IDLE_LEARNER])
    # The spawner's state (the admin token may read it) holds the server's process id: LocalProcessSpawner's pid.
    pid = api(idle_hub, "GET", f"/users/{IDLE_LEARNER}")["servers"][""]["state"]["pid"]
    assert psutil.pid_exists(pid)
    # Nothing touches the server from here on: only the culler can stop it.
    deadline = time.monotonic() + CULLED_WITHIN_S
    while api(idle_hub, "GET", f"/users/{IDLE_LEARNER}")["servers"]:
        assert time.monotonic() < deadline, (f"the idle server still runs after {CULLED_WITHIN_S} s\n"
                                             + idle_hub.log()[-3000:])
        time.sleep(1)
    # The hub logs who stopped it: the culler's service, not the fixture or another test.
    assert any("DELETE" in line and f"/users/{IDLE_LEARNER}/server" in line and "idle-culler" in line
               for line in idle_hub.log().splitlines()), idle_hub.log()[-3000:]

    def ended() -> bool:
        """Gone, or a zombie waiting for the hub to read its exit status: either way it holds no memory."""
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 30
    while not ended():
        assert time.monotonic() < deadline, f"the culled server's process {pid} still runs"
        time.sleep(0.5)


def git(directory: Path, *arguments: str) -> str:
    import subprocess

    # A fixed author: the test machine's git may have none configured.
    return subprocess.run(["git", "-c", "user.name=Teacher", "-c", "user.email=teacher@example.org", *arguments],
                          cwd=directory, check=True, capture_output=True, text=True).stdout


def append_markdown(notebook: dict, text: str) -> dict:
    notebook["cells"].append({"cell_type": "markdown", "metadata": {}, "source": text})
    return notebook


def test_a_second_pull_keeps_the_learners_edits_and_brings_the_teachers_change(class_hub, tmp_path):
    """nbgitpuller's promise: the teacher's later commits arrive, the learner's own edits stay."""
    import requests

    # The course's source is a clone, so the teacher's commit below never touches this repository.
    branch = hub.course_branch()
    source = tmp_path / "course"
    git(tmp_path, "clone", "--quiet", "--branch", branch, str(hub.ROOT), str(source))
    log_in(class_hub, PULLING_LEARNER)
    api(class_hub, "POST", f"/users/{PULLING_LEARNER}/server")
    base = class_hub.url + wait_for_servers(class_hub, [PULLING_LEARNER])[PULLING_LEARNER]
    token = api(class_hub, "POST", f"/users/{PULLING_LEARNER}/tokens", json={"note": "test_hub"})["token"]
    headers = {"Authorization": f"token {token}"}
    try:
        events = pull_course(base, token, source, branch)
        assert events and events[-1]["phase"] == "finished", f"the first pull did not finish: {events[-3:]}"

        # The learner saves lesson 00 with a cell of their own, as JupyterLab saves it (the contents API).
        mine = "My own notes on lesson 00."
        url = f"{base}api/contents/{LESSON}"
        notebook = requests.get(url, headers=headers, timeout=60).json()["content"]
        requests.put(url, headers=headers, timeout=60, json={"type": "notebook", "format": "json",
                                                             "content": append_markdown(notebook, mine)}
                     ).raise_for_status()

        # The teacher changes another lesson and commits it.
        changed = "notebooks/01_classifying_images.ipynb"
        theirs = "A correction from the teacher."
        lesson = source / changed
        lesson.write_text(json.dumps(append_markdown(json.loads(lesson.read_text()), theirs), indent=1) + "\n")
        git(source, "commit", "--quiet", "-am", "Correct lesson 01")

        events = pull_course(base, token, source, branch)
        assert events and events[-1]["phase"] == "finished", f"the second pull did not finish: {events[-3:]}"
        home = class_hub.directory / "home" / PULLING_LEARNER
        assert mine in (home / LESSON).read_text(), "the second pull lost the learner's edit of lesson 00"
        assert theirs in (home / hub.COURSE_FOLDER / changed).read_text(), "the teacher's change did not arrive"
    finally:
        # One server fewer for the rest of the module's tests (the fixture's stop would get it anyway).
        api(class_hub, "DELETE", f"/users/{PULLING_LEARNER}/server")


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


def teacher_commands(course: Path) -> dict[str, list[str]]:
    """Make the course folder for exercise a as the teacher's guide says; the nbgrader commands it prints, by step."""
    import subprocess

    made = subprocess.run([sys.executable, "-m", "utilities.grading.nbgrader_course", str(course), "--exercises", "a"],
                          cwd=ROOT, capture_output=True, text=True, timeout=NBGRADER_LIMIT_S)
    assert made.returncode == 0, made.stdout + made.stderr
    # The course's id is the one the hub gives its learners' servers.
    assert f"c.CourseDirectory.course_id = {hub.NBGRADER_COURSE_ID!r}" in (course / "nbgrader_config.py").read_text()
    commands = {}
    for line in made.stdout.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["nbgrader"]:
            commands[words[1]] = words
    return commands


def as_teacher(running: hub.Hub, command: list[str], course: Path) -> str:
    """An nbgrader command of the course, run in the course folder as the teacher: with the hub's nbgrader
    settings (its exchange), outside any learner's server."""
    import os
    import subprocess

    environment = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTERHUB_")}
    environment.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                       JUPYTER_CONFIG_PATH=str(running.directory / hub.NBGRADER_CONFIG_FOLDER), OMP_NUM_THREADS="1")
    assert command[0] == "nbgrader"
    done = subprocess.run([sys.executable, "-m", "nbgrader", *command[1:]], cwd=course, env=environment,
                          capture_output=True, text=True, timeout=NBGRADER_LIMIT_S)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def each_learner(work, names: list[str]) -> None:
    """``work(name)`` for every learner at once, as a class works; the first failure is raised, with its name."""
    failures: dict[str, BaseException] = {}

    def one(name: str) -> None:
        try:
            work(name)
        except BaseException as error:  # raised below, with the learner's name
            failures[name] = error

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, error in failures.items():
        raise AssertionError(f"{name}: {error!r}") from error


class LearnerKernel:
    """One kernel of a learner's server, over its REST API and websocket, that runs nbgrader as a learner's
    terminal would: in their home, with their server's environment."""

    def __init__(self, base: str, token: str):
        import requests
        import websocket

        self.base, self.headers, self.session = base, {"Authorization": f"token {token}"}, uuid.uuid4().hex
        response = requests.post(f"{base}api/kernels", headers=self.headers, timeout=120, json={"name": "python3"})
        response.raise_for_status()
        self.id = response.json()["id"]
        self.socket = websocket.create_connection(
            f"{base.replace('http://', 'ws://')}api/kernels/{self.id}/channels?session_id={self.session}",
            header=[f"Authorization: token {token}"], timeout=NBGRADER_LIMIT_S)

    def nbgrader(self, *arguments: str) -> str:
        code = ("import subprocess, sys\n"
                f"done = subprocess.run([sys.executable, '-m', 'nbgrader', *{list(arguments)!r}], "
                "capture_output=True, text=True)\n"
                "print(done.stdout + done.stderr)\n"
                "assert done.returncode == 0, done.returncode\n")
        result = execute(self.socket, self.session, code)
        assert result["errors"] == [], f"nbgrader {' '.join(arguments)}: {result['errors']}\n{result['text']}"
        return result["text"]

    def close(self) -> None:
        import requests

        self.socket.close()
        requests.delete(f"{self.base}api/kernels/{self.id}", headers=self.headers, timeout=60)


def answer_cells(kind: str) -> dict[str, str]:
    """The code answer cells a learner writes in, by grade id: the solution's, or the wrong answer."""
    import nbformat

    if kind == "untouched":
        return {}
    solution = nbformat.read(ROOT / "exercises" / "solution" / ASSIGNMENT_NOTEBOOK, as_version=4)
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in solution.cells
               if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}
    assert sorted(answers) == ["a_cams_for_classes", "a_dominant_class"], sorted(answers)
    if kind == "wrong":
        answers["a_dominant_class"] = WRONG_DOMINANT_CLASS
    return answers


def test_nbgraders_exchange_releases_collects_grades_and_returns_feedback_to_each_learner(class_hub, tmp_path):
    """The teacher releases exercise a; three learners fetch, answer and submit through their own servers; the
    teacher collects, autogrades and releases feedback; each learner fetches their own."""
    import requests
    from nbgrader.api import Gradebook

    started = time.monotonic()
    names = list(GRADED_LEARNERS)
    # The learners log in while the teacher prepares the assignment.
    for name in names:
        log_in(class_hub, name)
        api(class_hub, "POST", f"/users/{name}/server")
    course = tmp_path / "nbgrader-course"
    commands = teacher_commands(course)
    for step in ("generate_assignment", "release_assignment"):
        as_teacher(class_hub, commands[step], course)
    assert (class_hub.directory / hub.EXCHANGE_FOLDER / hub.NBGRADER_COURSE_ID / "outbound" / ASSIGNMENT
            / ASSIGNMENT_NOTEBOOK).is_file()
    print(f"released after {time.monotonic() - started:.1f} s")

    urls = wait_for_servers(class_hub, names)
    bases = {name: class_hub.url + urls[name] for name in names}
    tokens = {name: api(class_hub, "POST", f"/users/{name}/tokens", json={"note": "test_hub"})["token"] for name in names}
    kernels: dict[str, LearnerKernel] = {}

    def hand_in(name: str) -> None:
        """A learner fetches the assignment, writes their answers in and submits, through their own server."""
        kind = GRADED_LEARNERS[name]
        kernels[name] = LearnerKernel(bases[name], tokens[name])
        kernels[name].nbgrader("fetch_assignment", ASSIGNMENT)
        # The learner writes the answers in and saves, as JupyterLab saves (the contents API).
        url = f"{bases[name]}api/contents/{ASSIGNMENT}/{ASSIGNMENT_NOTEBOOK}"
        headers = {"Authorization": f"token {tokens[name]}"}
        response = requests.get(url, headers=headers, timeout=60)
        response.raise_for_status()
        notebook, answers = response.json()["content"], answer_cells(kind)
        for cell in notebook["cells"]:
            grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell["source"] = answers.pop(grade_id)
        assert answers == {}, f"the released notebook lacks the cells {sorted(answers)}"
        if kind != "untouched":
            requests.put(url, headers=headers, timeout=60,
                         json={"type": "notebook", "format": "json", "content": notebook}).raise_for_status()
        kernels[name].nbgrader("submit", ASSIGNMENT)

    try:
        each_learner(hand_in, names)
        inbound = sorted(path.name.split("+")[0] for path in
                         (class_hub.directory / hub.EXCHANGE_FOLDER / hub.NBGRADER_COURSE_ID / "inbound").iterdir())
        assert inbound == sorted(names), f"the exchange's submissions are named {inbound}, not after the learners"
        print(f"fetched, answered and submitted after {time.monotonic() - started:.1f} s")

        for step in ("collect", "autograde", "generate_feedback", "release_feedback"):
            as_teacher(class_hub, commands[step], course)
            print(f"{step} done after {time.monotonic() - started:.1f} s")
        each_learner(lambda name: kernels[name].nbgrader("fetch_feedback", ASSIGNMENT), names)
    finally:
        for kernel in kernels.values():
            kernel.close()
        for name in names:  # the rest of the module's tests need no more servers
            api(class_hub, "DELETE", f"/users/{name}/server")
    print(f"feedback fetched after {time.monotonic() - started:.1f} s")

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=hub.NBGRADER_COURSE_ID) as gradebook:
        scores = {name: gradebook.find_submission(ASSIGNMENT, name).score for name in names}
        assert {gradebook.find_submission(ASSIGNMENT, name).max_score for name in names} == {MAX_POINTS}
    print(f"scores: {scores}")
    assert scores["fay"] == MAX_POINTS
    assert 0 < scores["gus"] < MAX_POINTS  # the swapped halves fail two checks: 4 of 6
    assert scores["hal"] == 0

    homes = {name: class_hub.directory / "home" / name for name in names}
    for name, home in homes.items():
        feedback = list((home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT_NOTEBOOK.replace('.ipynb', '.html')}"))
        assert len(feedback) == 1, f"{name}'s feedback: {feedback}"
        text = feedback[0].read_text()
        own = f"(Score: {scores[name]:.1f} / {MAX_POINTS:.1f})"
        assert own in text, f"{name}'s feedback does not show their score {own}"
        others = {f"(Score: {scores[other]:.1f} / {MAX_POINTS:.1f})" for other in names if scores[other] != scores[name]}
        assert not any(score in text for score in others), f"{name}'s feedback shows another learner's score"
    # Nothing of another learner's submission in a learner's home: not their name, not their answers.
    # The solver's dominant_class (the wrong answer has the solver's Grad-CAM maps, not this line), the wrong one.
    solution_line = answer_cells("solution")["a_dominant_class"].splitlines()[3].strip()
    assert solution_line.startswith("halves = ") and solution_line not in WRONG_DOMINANT_CLASS
    marks = {"fay": solution_line, "gus": WRONG_MARK}
    for name, home in homes.items():
        for path in home.rglob("*"):
            if not path.is_file():
                continue
            relative = str(path.relative_to(home))
            assert not any(other in relative.split("/") or f"{other}+" in relative for other in names if other != name), relative
            text = path.read_text(errors="replace")
            for other, mark in marks.items():
                if other != name:
                    assert mark not in text, f"{name}'s {relative} holds {other}'s answer"
    print(f"the exchange round took {time.monotonic() - started:.1f} s")


def test_the_teacher_guide_says_what_make_hub_sets_up_for_nbgrader(tmp_path):
    """The guide's paragraph on nbgrader under make hub names the folders, settings and commands hub.py uses."""
    guide = (ROOT / "exercises" / "TEACHER_GUIDE.md").read_text(encoding="utf-8")
    section = guide[guide.index("**On `make hub`.**"):]
    section = " ".join(section[:section.index("\n\n")].split())
    folder = hub.DEFAULT_DIR.relative_to(ROOT).as_posix()
    config = hub.nbgrader_config(tmp_path / "exchange")
    for setting in ("c.Exchange.root", "c.CourseDirectory.student_id", "JUPYTERHUB_USER"):
        assert setting in section and setting in config, setting
    assert f"`{folder}/{hub.EXCHANGE_FOLDER}`" in section
    assert f"`{folder}/{hub.NBGRADER_CONFIG_FOLDER}/nbgrader_config.py`" in section
    assert f"course id `{hub.NBGRADER_COURSE_ID}`" in section
    # The servers read it through JUPYTER_CONFIG_PATH; the teacher's printed commands set the same.
    written = hub.hub_config(8000, ["ada"], "token", tmp_path / "home", 60, nbgrader=tmp_path / "nbgrader")
    assert 'c.Spawner.environment["JUPYTER_CONFIG_PATH"] = s["nbgrader"]' in written
    steps = hub.nbgrader_steps(hub.DEFAULT_DIR)
    assert f"export JUPYTER_CONFIG_PATH={folder}/{hub.NBGRADER_CONFIG_FOLDER}" in section
    assert f"export JUPYTER_CONFIG_PATH={hub.DEFAULT_DIR / hub.NBGRADER_CONFIG_FOLDER}" in steps
    assert f"`{folder}/nbgrader-course`" in section and str(hub.DEFAULT_DIR / "nbgrader-course") in steps
    for command in ("fetch_assignment", "submit", "fetch_feedback"):
        assert f"`nbgrader {command} {hub.NBGRADER_EXAMPLE}`" in section
        assert f"nbgrader {command} {hub.NBGRADER_EXAMPLE}" in steps
    for command in ("generate_assignment", "release_assignment", "collect", "autograde", "generate_feedback",
                    "release_feedback"):
        assert f"nbgrader {command} {hub.NBGRADER_EXAMPLE}" in steps and f"nbgrader {command} exercise_a" in guide
