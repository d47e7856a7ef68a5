"""The checks accept the solutions, let unfinished work show its hint, and report errors briefly.

Each check's diagnoses of wrong answers are tested in ``test_wrong_answers.py``.
"""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from exercise_helpers import one_thread, solution_namespace  # noqa: F401 - one_thread is an autouse fixture
from utilities.checks import CHECK_COUNTS, check_a, check_b, check_c, check_d, grade
from utilities.checks._common import describe_error
from utilities.checks.exercise_c import changed_steps, recorded_steps

CHECKS = [
    ("a", check_a, ("cams_for_classes", "dominant_class")),
    ("b", check_b, ("explain_file", "explain_folder")),
    ("c", check_c, ("changed_preprocess", "new_top_class")),
    ("d", check_d, ("localisation_shares", "first_localised_stage")),
]


@pytest.fixture(scope="module")
def solutions():
    return {letter: solution_namespace(f"exercise_{letter}_") for letter in "abcd"}


def test_solutions_pass_every_check(solutions, lite_model):
    for letter, check, names in CHECKS:
        result = check(lite_model, *(solutions[letter][name] for name in names))
        assert result.correct, f"{letter}: {result}"
        assert len(result.passed) == CHECK_COUNTS[letter]


def test_checks_that_need_no_trained_model_pass_the_solutions_on_resnet50_too(solutions):
    from utilities import load_model

    resnet = load_model("resnet50_untrained")
    for letter, check, names in CHECKS:
        if letter in "ad":  # b and c are cheap to trust: they call the same library functions per model
            functions = [solutions[letter][name] for name in names]
            assert check(resnet, *functions).correct, letter


def test_one_step_is_counted_step_by_step(lite_model):
    steps = list(lite_model.preprocess.transforms)
    assert changed_steps(steps, steps) == []
    assert changed_steps(steps, [steps[0], v2.Resize(32), *steps[2:]]) == [f"{' '.join(repr(steps[1]).split())} -> {' '.join(repr(v2.Resize(32)).split())}"]
    assert len(changed_steps(steps, steps[:3])) == 1
    assert len(changed_steps(steps, [steps[0], v2.Resize(64), steps[2]])) == 2


def test_recorded_steps_see_a_pipeline_and_leave_torchvision_as_it_was(lite_model):
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    before = v2.Transform.__call__
    with recorded_steps() as steps:
        v2.Compose([v2.Compose(list(lite_model.preprocess.transforms)[:2]), v2.ToDtype(torch.float32, scale=True)])(image)
    assert [type(step).__name__ for step in steps] == ["ToImage", "Resize", "ToDtype"]
    assert v2.Transform.__call__ is before


def test_errors_from_deep_inside_torch_become_a_short_hint():
    def cams_for_classes():
        pass

    message = describe_error(cams_for_classes, RuntimeError("Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values ..."))
    assert message.startswith("cams_for_classes raised RuntimeError: the second backward pass") and "retain_graph=True" in message
    assert len(describe_error(cams_for_classes, ValueError("x" * 1000))) < 220


# --- interactive versus grading


def test_unfinished_work_shows_its_hint_but_grading_scores_zero(lite_model):
    def stub(*args):
        raise NotImplementedError("use LayerRecorder")

    with pytest.raises(NotImplementedError, match="use LayerRecorder"):
        check_a(lite_model, stub, stub)
    result = grade("a", {"model": lite_model, "cams_for_classes": stub, "dominant_class": stub})
    assert result.passed == [] and "not implemented yet (use LayerRecorder)" in "\n".join(result.problems)


def test_grading_reports_missing_names(lite_model):
    result = grade("d", {"model": lite_model})
    assert result.score == 0 and "does not define localisation_shares, first_localised_stage" in "\n".join(result.problems)


def test_student_errors_are_reported_not_raised(solutions, lite_model):
    def broken(model, image, names):
        raise KeyError("oops")

    result = check_a(lite_model, broken, solutions["a"]["dominant_class"])
    assert "broken raised KeyError: 'oops'" in "\n".join(result.problems)
