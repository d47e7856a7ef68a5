"""The two install paths (pip, conda) install the same pinned packages; `make lab` installs the course's JupyterLab defaults."""

import re
import shlex
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements):
    return {line.split("==")[0].strip().lower(): line.split("==")[1].strip() for line in requirements}


def test_environment_yml_and_pyproject_pin_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"][0] == "conda-forge"
    assert "defaults" not in environment["channels"]
    assert "prefix" not in environment
    assert environment["name"] == "gradcam-course"
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_side = _pins(line for line in pip_section if "==" in line)
    assert conda_side == pip_side
    assert "--editable ." in pip_section


def test_readme_names_the_conda_environment():
    assert "conda activate gradcam-course" in (ROOT / "README.md").read_text()


def test_torch_and_torchvision_are_the_known_good_pair():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"])
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")


def test_lab_settings_shut_a_notebooks_kernel_down_when_its_tab_closes(tmp_path):
    import importlib.util
    import json
    import sys

    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    existing = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    existing.parent.mkdir(parents=True)
    existing.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    written = json.loads(tasks.install_lab_settings(tmp_path).read_text())
    assert written["@jupyterlab/notebook-extension:tracker"]["kernelShutdown"] is True
    assert written["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}  # a teacher's own kept
    # every setting is one the installed JupyterLab defines (a renamed setting would be ignored silently)
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    for plugin, settings in json.loads((ROOT / "config" / "jupyterlab-overrides.json").read_text()).items():
        package, name = plugin.split(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        assert set(settings) <= set(schema["properties"]), plugin


def test_nbgraders_extensions_are_switched_off_for_learners(tmp_path):
    """nbgrader is installed for the grading tests; its extensions are named as the installed ones are."""
    import importlib.util
    import json
    import sys

    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    tasks.install_lab_settings(tmp_path)
    server = json.loads((tmp_path / "etc" / "jupyter" / "jupyter_server_config.d" / "zz_gradcam_course.json").read_text())
    installed = json.loads((Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json").read_text())
    switched_off = server["ServerApp"]["jpserver_extensions"]
    assert set(switched_off) == set(installed["ServerApp"]["jpserver_extensions"]) and not any(switched_off.values())
    page = json.loads((tmp_path / "etc" / "jupyter" / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {"@jupyter/nbgrader": True}
    assert (Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader").is_dir()


def test_binder_installs_the_same_pins_with_a_cpu_only_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [line.split("#")[0].strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    binder_pins = _pins(line for line in lines if "==" in line)
    assert binder_pins.pop("nbgitpuller")  # for the hub's git-pull links only
    assert binder_pins == _pins(project["dependencies"])
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "repo2docker runs postBuild only when it is executable"
    assert "install_lab_settings" in post_build.read_text() and "--no-deps --editable ." in post_build.read_text()
    start = ROOT / "binder" / "start"
    assert start.stat().st_mode & 0o111 and 'exec "$@"' in start.read_text()
    assert "GRADCAM_MODEL" in start.read_text() and "OMP_NUM_THREADS" in start.read_text()


def _command_lines(markdown: Path) -> list[tuple[int, str]]:
    """(line number, command) for each line of the fenced shell blocks (bash, bat) in a Markdown file."""
    commands, language = [], None
    for number, line in enumerate(markdown.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            language = None if language is not None else (stripped[3:] or "text")
            continue
        if language in ("bash", "bat") and stripped and not stripped.startswith("#"):
            commands.append((number, stripped.split("  #")[0].strip()))
    return commands


def test_the_documents_commands_run_as_written_from_a_fresh_shell():
    """Each command in the README's and the guide's shell blocks is a make target, a tasks.py command, or comes after
    the line saying how to enter the environment: never a bare `python -m` or `nbgrader` that a fresh shell lacks."""
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    tasks = set(re.findall(r'^\s+"([a-z-]+)": (?:lambda|None)', (ROOT / "tasks.py").read_text(), flags=re.MULTILINE))
    assert {"lab", "test", "explain", "grade"} <= targets and {"lab", "test", "explain"} <= tasks
    checked = 0
    for document in (ROOT / "README.md", ROOT / "exercises" / "TEACHER_GUIDE.md"):
        lines = document.read_text(encoding="utf-8").splitlines()
        for number, command in _command_lines(document):
            words = shlex.split(command)
            where = f"{document.name}:{number}: {command}"
            if words[0] == "make":
                assert words[1] in targets, where
                dry_run = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
                assert dry_run.returncode == 0, f"{where}\n{dry_run.stderr}"
            elif words[:2] == ["py", "tasks.py"]:
                assert words[2] in tasks, where
            elif words[0].startswith(".venv/"):
                assert (ROOT / words[0]).exists() or not (ROOT / ".venv").exists(), where
            else:  # nbgrader, jupyter, python: the section must say how to enter the environment before the command
                section_start = max(i for i, line in enumerate(lines[:number]) if line.startswith("## "))
                assert "activate" in "\n".join(lines[section_start:number]), f"{where}: say how to enter the environment first"
            checked += 1
    assert checked >= 10


def test_the_editable_install_prints_no_warning(tmp_path):
    """Set-up installs the course with `pip install --editable`; the course's own packaging must print no warning
    (pip shows the build backend's warnings even with --quiet). Installed into a bare environment of its own, so
    that the project's .venv is left as it is."""
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv: run `py tasks.py setup` first")
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    install = subprocess.run(
        [str(python), "-m", "pip", "--python", str(bare / "bin" / "python"), "install", "--quiet", "--no-deps",
         "--editable", str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    output = install.stdout + install.stderr
    assert "warning" not in output.lower(), output
    (pth,) = bare.rglob("__editable__.gradcam_course-*.pth")
    assert Path(pth.read_text().strip()) == ROOT, "the editable install must point at the project root"


def test_a_bare_make_lists_the_commands_and_starts_nothing():
    """`make` with no target prints every documented target; PYTHON=false makes any target that would run tasks.py fail."""
    bare = subprocess.run(["make", "PYTHON=false"], cwd=ROOT, capture_output=True, text=True)
    assert bare.returncode == 0, bare.stderr
    documented = set(re.findall(r"^([a-z][a-z-]*):.*## ", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    assert {"lab", "test", "setup"} <= documented
    assert {line.split()[1] for line in bare.stdout.splitlines() if line.strip().startswith("make ")} == documented
