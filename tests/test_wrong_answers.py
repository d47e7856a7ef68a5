"""Every plausible wrong answer in ``wrong_answers`` fails its check, and the message names its cause."""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from exercise_helpers import one_thread, solution_namespace  # noqa: F401 - one_thread is an autouse fixture
from utilities.checks import EXERCISES
from wrong_answers import RIGHT_ANSWERS, WRONG_ANSWERS, RightAnswer, WrongAnswer


def _key(value: Any) -> Any:
    """A hashable stand-in for an argument: contents for arrays and files, the network and input size for a model."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.shape, str(value.dtype), hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()
    if isinstance(value, Path):
        return hashlib.sha1(value.read_bytes()).hexdigest() if value.is_file() else str(value)
    if hasattr(value, "network") and hasattr(value, "preprocess"):
        return id(value.network), repr(value.preprocess)
    if isinstance(value, (list, tuple)):
        return tuple(_key(item) for item in value)
    return value


def _memoised(function: Callable) -> Callable:
    """The solution's function, computed once per distinct input: most wrong answers replace only the other one."""
    memory: dict = {}

    @functools.wraps(function)
    def remembered(*args):
        key = _key(args)
        if key not in memory:
            # The arguments are kept with the result: a model's key holds its network's id, which a network made
            # later could reuse once this one is gone (the checks build networks of their own per call).
            memory[key] = (args, function(*args))
        return copy.deepcopy(memory[key][1])

    return remembered


# The solution functions without side effects; explain_folder writes files, so it always runs.
MEMOISED = {"cams_for_classes", "explain_file", "localisation_shares", "class_activation_maps"}


@pytest.fixture(scope="module")
def solutions(lite_model):
    # The solution's functions, with the tests' model: each answer replaces only what it gets wrong.
    namespaces = {}
    for letter in "abcdef":
        namespace = {**solution_namespace(f"exercise_{letter}_"), "model": lite_model}
        namespaces[letter] = {name: _memoised(value) if name in MEMOISED else value for name, value in namespace.items()}
    return namespaces


def test_the_suite_is_large_and_covers_every_exercise():
    assert len(WRONG_ANSWERS) >= 45
    assert {wrong.exercise for wrong in WRONG_ANSWERS} == set(EXERCISES)
    assert len({(wrong.exercise, wrong.mistake) for wrong in WRONG_ANSWERS}) == len(WRONG_ANSWERS)
    assert {right.exercise for right in RIGHT_ANSWERS} == set(EXERCISES)
    assert len({(right.exercise, right.how) for right in RIGHT_ANSWERS}) == len(RIGHT_ANSWERS)


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=[f"{w.exercise}: {w.mistake}" for w in WRONG_ANSWERS])
def test_the_check_fails_and_names_the_cause(wrong: WrongAnswer, solutions, lite_model):
    check, names = EXERCISES[wrong.exercise]
    namespace = {**solutions[wrong.exercise], **wrong.build(lite_model, solutions[wrong.exercise])}
    result = check(*(namespace[name] for name in names))
    problems = "\n".join(result.problems)
    assert not result.correct, f"{wrong.mistake!r} passed the check"
    assert re.search(wrong.message, problems, re.DOTALL), f"{wrong.mistake!r}: expected /{wrong.message}/, got:\n{problems}"
    assert all(problem.strip() for problem in result.problems), "an empty message"
    assert len(set(result.problems)) == len(result.problems), f"a message said twice:\n{problems}"
    assert "Traceback" not in problems and "File \"" not in problems


@pytest.mark.parametrize("right", RIGHT_ANSWERS, ids=[f"{r.exercise}: {r.how}" for r in RIGHT_ANSWERS])
def test_a_right_answer_written_differently_passes(right: RightAnswer, solutions, lite_model):
    check, names = EXERCISES[right.exercise]
    namespace = {**solutions[right.exercise], **right.build(lite_model, solutions[right.exercise])}
    result = check(*(namespace[name] for name in names))
    assert result.correct, f"{right.how!r} failed:\n{result}"
