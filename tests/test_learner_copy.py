"""scripts/learner_copy.py: the learner's copy has lessons and exercises side by side, no solutions, and an update of
the course replaces only what the learner has not edited."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import learner_copy  # noqa: E402


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A small course (two lessons, one exercise, one data file) whose files a test can change."""
    sources = {part: tmp_path / "course" / part for part in learner_copy.SOURCES}
    for folder in sources.values():
        folder.mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "00_quickstart.ipynb", sources["lessons"])
    shutil.copy(ROOT / "notebooks" / "01_classifying_images.ipynb", sources["lessons"])
    shutil.copy(ROOT / "exercises" / "student" / "exercise_a_cams_for_classes.ipynb", sources["exercises"])
    shutil.copy(ROOT / "data" / "chelsea.jpg", sources["data"])
    monkeypatch.setattr(learner_copy, "SOURCES", sources)
    return sources


def _edit_first_code_cell(path: Path, text: str) -> None:
    notebook = json.loads(path.read_text())
    cell = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    cell["source"] = [text]
    path.write_text(json.dumps(notebook, indent=1))


def _run_cells(path: Path) -> None:
    """What running a notebook changes: outputs, execution counts, metadata; not the sources."""
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}], 7
    notebook["metadata"]["language_info"]["version"] = "3.99.0"
    path.write_text(json.dumps(notebook, indent=1))


def test_the_real_course_copy_has_lessons_exercises_and_data_and_no_solutions(tmp_path):
    report = learner_copy.sync(tmp_path / "mine", python_version="3.11.7")
    names = {Path(path).parts[0] for path in report.added}
    assert names == {"lessons", "exercises", "data"}
    assert (tmp_path / "mine" / "lessons" / "00_quickstart.ipynb").exists()
    assert (tmp_path / "mine" / "exercises" / "exercise_b_folder_of_images.ipynb").exists()
    copied = "\n".join(path.read_text(errors="ignore") for path in (tmp_path / "mine" / "exercises").iterdir())
    assert "### BEGIN SOLUTION" not in copied and not any("solution" in path for path in report.added)
    assert learner_copy.sync(tmp_path / "mine", python_version="3.11.7").lines() == []  # a second run: nothing to do


def test_lessons_read_data_from_the_folder_beside_them_in_the_copy(tmp_path):
    learner_copy.sync(tmp_path / "mine")
    assert (tmp_path / "mine" / "lessons" / ".." / "data" / "chelsea.jpg").exists()  # lessons use Path("..") / "data"


def test_notebooks_are_delivered_with_the_environments_python_and_nothing_else_changed(course, tmp_path):
    learner_copy.sync(tmp_path / "mine", python_version="3.12.1")
    delivered = json.loads((tmp_path / "mine" / "lessons" / "00_quickstart.ipynb").read_text())
    committed = json.loads((course["lessons"] / "00_quickstart.ipynb").read_text())
    assert delivered["metadata"]["language_info"]["version"] == "3.12.1"
    delivered["metadata"]["language_info"]["version"] = committed["metadata"]["language_info"]["version"]
    assert delivered == committed


def test_an_update_replaces_what_the_learner_ran_but_keeps_what_they_edited(course, tmp_path):
    mine = tmp_path / "mine"
    learner_copy.sync(mine)
    _run_cells(mine / "lessons" / "00_quickstart.ipynb")  # run, not edited
    _edit_first_code_cell(mine / "lessons" / "01_classifying_images.ipynb", "my own work")
    _edit_first_code_cell(mine / "exercises" / "exercise_a_cams_for_classes.ipynb", "my answer")
    # the teacher fixes both lessons; the exercise does not change
    for name in ("00_quickstart.ipynb", "01_classifying_images.ipynb"):
        _edit_first_code_cell(course["lessons"] / name, "the teacher's fix")
    report = learner_copy.sync(mine)
    assert report.updated == ["lessons/00_quickstart.ipynb"] and report.kept == ["lessons/01_classifying_images.ipynb"]
    assert "the teacher's fix" in (mine / "lessons" / "00_quickstart.ipynb").read_text()
    assert "my own work" in (mine / "lessons" / "01_classifying_images.ipynb").read_text()
    assert "the teacher's fix" in (mine / "lessons" / "01_classifying_images.course-update.ipynb").read_text()
    assert "my answer" in (mine / "exercises" / "exercise_a_cams_for_classes.ipynb").read_text()
    assert any("Kept your edited lessons/01_classifying_images.ipynb" in line for line in report.lines())
    # run again: nothing new to say; the learner's edits still there
    assert learner_copy.sync(mine).lines() == []
    assert "my own work" in (mine / "lessons" / "01_classifying_images.ipynb").read_text()


def test_a_file_the_learner_deleted_comes_back_and_one_the_course_dropped_stays(course, tmp_path):
    mine = tmp_path / "mine"
    learner_copy.sync(mine)
    (mine / "lessons" / "00_quickstart.ipynb").unlink()
    (course["data"] / "chelsea.jpg").unlink()
    report = learner_copy.sync(mine)
    assert report.added == ["lessons/00_quickstart.ipynb"] and (mine / "data" / "chelsea.jpg").exists()


def test_the_environments_python_version_is_read_from_pyvenv_cfg(tmp_path):
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n")
    assert learner_copy.environment_python_version(tmp_path) == "3.11.7"
    assert learner_copy.environment_python_version(tmp_path / "missing") is None


def test_committed_notebooks_are_in_the_form_jupyterlab_keeps():
    """JupyterLab writes the running kernel's kernelspec and language_info into a notebook it opens; anything else
    makes an untouched lesson 'changed' (tests/test_lab_browser.py opens and closes some in Chromium)."""
    from execute_notebooks import jupyterlab_metadata

    expected = jupyterlab_metadata()
    paths = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*/*.ipynb"))
    other_python = []
    for path in paths:
        metadata = json.loads(path.read_text())["metadata"]
        assert metadata.get("kernelspec") == expected["kernelspec"], f"{path.name}: run scripts/execute_notebooks.py"
        language = dict(metadata.get("language_info", {}))
        if language.get("version") != expected["language_info"]["version"]:
            other_python.append(path.name)
            language["version"] = expected["language_info"]["version"]
        assert language == expected["language_info"], f"{path.name}: run scripts/execute_notebooks.py"
    if other_python:  # make lab's copy writes the learner's version in; the committed files are for one Python
        pytest.skip(f"committed with Python {json.loads(paths[0].read_text())['metadata']['language_info']['version']}, "
                    f"this is {expected['language_info']['version']}: {len(other_python)} notebooks")
