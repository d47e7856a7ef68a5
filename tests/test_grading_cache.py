"""Results kept by notebook content: the same notebook is not graded twice, a changed one or a changed grader is."""

from __future__ import annotations

from utilities.grading.cache import ResultCache, grader_fingerprint
from utilities.grading.runner import NotebookResult, Status


def test_the_key_follows_the_notebook_the_exercise_and_the_grader(tmp_path):
    notebook = tmp_path / "exercise_a_x.ipynb"
    notebook.write_text('{"cells": []}')
    cache = ResultCache(tmp_path / "cache", "grader 1")
    key = cache.key(notebook, "a")
    assert cache.key(notebook, "a") == key
    assert cache.key(notebook, "b") != key
    assert ResultCache(tmp_path / "cache", "grader 2").key(notebook, "a") != key
    notebook.write_text('{"cells": [1]}')
    assert cache.key(notebook, "a") != key


def test_a_kept_result_comes_back_marked_as_cached(tmp_path):
    cache = ResultCache(tmp_path / "cache", "grader")
    result = NotebookResult("a", "exercise_a_x.ipynb", Status.TIMED_OUT, problems=["a cell ran longer than 3 s"], output="x", output_size=9)
    assert cache.get("k") is None
    cache.put("k", result)
    kept = cache.get("k")
    assert kept is not None and kept.cached and not result.cached
    kept.cached = False
    assert kept == result


def test_a_grader_failure_is_not_kept_and_a_broken_entry_is_ignored(tmp_path):
    cache = ResultCache(tmp_path / "cache", "grader")
    cache.put("k", NotebookResult("a", "n.ipynb", Status.NOT_RUN, problems=["the notebook could not be run: ..."]))
    assert cache.get("k") is None
    (tmp_path / "cache" / "broken.json").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache" / "broken.json").write_text("{ half written")
    assert cache.get("broken") is None


def test_the_fingerprint_changes_with_the_settings_and_the_model():
    base = grader_fingerprint({"timeout": 300, "model": "efficientnet_lite0"})
    assert grader_fingerprint({"timeout": 300, "model": "efficientnet_lite0"}) == base
    assert grader_fingerprint({"timeout": 10, "model": "efficientnet_lite0"}) != base
    assert grader_fingerprint({"timeout": 300, "model": "resnet50"}) != base
