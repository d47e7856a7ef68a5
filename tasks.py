"""Set up the project and run it: ``python tasks.py lab`` or ``python tasks.py test``.

Works on Linux, macOS and Windows with nothing but Python 3.10+. The first
run creates a virtual environment in ``.venv`` and installs the project with
its test extras; later runs reuse it, and reinstall only when
``pyproject.toml`` has changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.parse
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "scripts"))
import learner_copy  # noqa: E402 - scripts/learner_copy.py, standard library only
VENV = ROOT / ".venv"
STAMP = VENV / "installed-pyproject.sha256"
#: JupyterLab defaults for the course: closing a notebook's tab shuts its kernel down, so a learner who moves on to
#: the next notebook does not keep the last one's 0.8-1.1 GB (see README, "Memory").
LAB_OVERRIDES = ROOT / "config" / "jupyterlab-overrides.json"


def venv_executable(name: str) -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / folder / f"{name}{suffix}"


def ensure_environment() -> Path:
    """Create and fill .venv if needed; return its Python."""
    python = venv_executable("python")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing the project and its dependencies (a few minutes the first time) ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    install_cpu_torch(python)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--editable", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)
    return python


#: PyTorch's own index of CPU-only wheels. On Linux the package index's torch is the CUDA build (about 4 GB more on
#: disk, none of it used by a course that runs on the CPU); macOS and Windows wheels on the package index are CPU-only.
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def pinned(package: str) -> str:
    """``package==version`` as pinned in pyproject.toml (read with a regex: tomllib needs Python 3.11)."""
    match = re.search(rf'"({re.escape(package)}==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    if match is None:
        raise SystemExit(f"pyproject.toml pins no version of {package}")
    return match.group(1)


def reachable(url: str, seconds: float = 5.0) -> bool:
    """Whether ``url``'s host answers within ``seconds`` (offline, behind a firewall: no, at once or after the wait)."""
    host = urllib.parse.urlsplit(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=seconds):
            return True
    except OSError:
        return False


def install_cpu_torch(python: Path) -> None:
    """On Linux, install the CPU-only torch and torchvision from PyTorch's index when it can be reached.

    The project's install that follows finds them satisfied and keeps them. Where the index cannot be reached
    (offline mirrors, CI) this returns after at most a few seconds and the package index's build is installed.
    Set ``GRADCAM_TORCH=default`` to skip this and take the package index's build everywhere.
    """
    if not sys.platform.startswith("linux") or os.environ.get("GRADCAM_TORCH") == "default":
        return
    if not reachable(CPU_TORCH_INDEX):
        print(f"{CPU_TORCH_INDEX} cannot be reached: installing the package index's torch (on Linux the CUDA build).",
              flush=True)
        return
    print("Installing the CPU-only torch and torchvision from PyTorch's index ...", flush=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--index-url", CPU_TORCH_INDEX,
               pinned("torch"), pinned("torchvision")]
    if subprocess.run(command).returncode != 0:
        print("The CPU-only build could not be installed; falling back to the package index's build.", flush=True)


NBGRADER_SERVER_EXTENSIONS = ("formgrader", "validate_assignment", "assignment_list", "course_list")


def install_lab_settings(prefix: Path) -> Path:
    """Merge the course's JupyterLab defaults into ``prefix``'s overrides.json (JupyterLab reads it at start).

    Settings a user changes in JupyterLab's Settings Editor still win: overrides only change the defaults.
    Also switches off nbgrader's server and JupyterLab extensions in this environment.
    """
    target = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    current = json.loads(target.read_text()) if target.exists() else {}
    for plugin, settings in json.loads(LAB_OVERRIDES.read_text()).items():
        current.setdefault(plugin, {}).update(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(current, indent=2) + "\n")
    # nbgrader is installed for the grading tests; its menus are for teachers on a hub, not for learners.
    # A later file in config.d overrides only the keys it names.
    server = prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "zz_gradcam_course.json"
    server.parent.mkdir(parents=True, exist_ok=True)
    extensions = {f"nbgrader.server_extensions.{name}": False for name in NBGRADER_SERVER_EXTENSIONS}
    server.write_text(json.dumps({"ServerApp": {"jpserver_extensions": extensions}}, indent=2) + "\n")
    page = prefix / "etc" / "jupyter" / "labconfig" / "page_config.json"
    page_config = json.loads(page.read_text()) if page.exists() else {}
    page_config.setdefault("disabledExtensions", {})["@jupyter/nbgrader"] = True
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(json.dumps(page_config, indent=2) + "\n")
    return target


def root_flags() -> list[str]:
    """JupyterLab refuses to run as root (containers, some CI machines) unless told to."""
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def main(argv: list[str]) -> int:
    commands = {
        "lab": lambda python: [str(python), "-m", "jupyter", "lab", str(learner_copy.DEFAULT_TARGET), *root_flags(), *argv[1:]],
        # Two workers (pytest-xdist): much of the suite waits on kernels starting, browsers and servers, so two at a
        # time on 2 cores takes far less than one; conftest.py keeps each notebook's cells on one worker.
        "test": lambda python: [str(python), "-m", "pytest", "-n", "2", "--dist", "loadfile", *argv[1:]],
        "bench": lambda python: [str(python), str(ROOT / "benchmarks" / "bench_cam.py"), *argv[1:]],
        "bench-photo": lambda python: [str(python), str(ROOT / "benchmarks" / "bench_phone_photo.py"), *argv[1:]],
        "bench-memory": lambda python: [str(python), str(ROOT / "benchmarks" / "bench_notebook_memory.py"), *argv[1:]],
        "bench-grading": lambda python: [str(python), str(ROOT / "benchmarks" / "bench_grading.py"), *argv[1:]],
        "bench-hub": lambda python: [str(python), str(ROOT / "benchmarks" / "bench_hub.py"), *argv[1:]],
        "mutation": lambda python: [str(python), "-m", "utilities.grading.mutation", *argv[1:]],
        "grade": lambda python: [str(python), "-m", "utilities.grading", *argv[1:]],
        "nbgrader-course": lambda python: [str(python), "-m", "utilities.grading.nbgrader_course", *argv[1:]],
        "no-answers": lambda python: [str(python), str(ROOT / "scripts" / "strip_answers.py"), str(ROOT / "notebooks"), *argv[1:]],
        "explain": lambda python: [str(python), "-m", "utilities.explain", *argv[1:]],
        "site": lambda python: [str(python), str(ROOT / "scripts" / "build_site.py"), *argv[1:]],
        "hub": lambda python: [str(python), str(ROOT / "scripts" / "hub.py"), *argv[1:]],
        "setup": None,
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python tasks.py {{{'|'.join(commands)}}} [arguments]", file=sys.stderr)
        return 2
    python = ensure_environment()
    if commands[argv[0]] is None:
        return 0
    if argv[0] == "lab":
        install_lab_settings(VENV)
        # The learner works in a copy (lessons and exercises side by side, no solutions): an update of the course
        # never overwrites their edits, and git never sees them.
        report = learner_copy.sync(learner_copy.DEFAULT_TARGET, learner_copy.environment_python_version(VENV))
        for line in report.lines():
            print(line, flush=True)
    # explain, grade and nbgrader-course read or write the paths they are given, so these are relative to where
    # the command was called from.
    cwd = None if argv[0] in ("explain", "grade", "nbgrader-course") else ROOT
    return subprocess.run(commands[argv[0]](python), cwd=cwd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
