"""Each check accepts the solution and names typical mistakes."""

import re

import numpy as np
import pytest
import torch

from exercise_helpers import solution_namespace
from utilities import grad_cam, load_image, normalize_cams, upsample_cams
from utilities.checks import CHECK_COUNTS, check_a, check_b, check_c, check_d, grade


@pytest.fixture(scope="module")
def solutions():
    return {letter: solution_namespace(f"exercise_{letter}_") for letter in "abcd"}


def _problems(result):
    return "\n".join(result.problems)


def test_solutions_pass_every_check(solutions, lite_model):
    for letter, check, names in [
        ("a", check_a, ("cams_for_classes", "dominant_class")),
        ("b", check_b, ("explain_file", "explain_folder")),
        ("c", check_c, ("changed_preprocess", "new_top_class")),
        ("d", check_d, ("localisation_shares", "first_localised_stage")),
    ]:
        result = check(lite_model, *(solutions[letter][name] for name in names))
        assert result.correct, f"{letter}: {result}"
        assert len(result.passed) == CHECK_COUNTS[letter]


# --- a


def _layer_maps(model, image, classes, layer="layer4", normalise=True, upsample=True):
    raw = grad_cam(model, image, classes, layer=layer).raw
    maps = upsample_cams(raw, image.shape[:2]) if upsample else raw
    return normalize_cams(maps) if normalise else maps


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda m, i, c: _layer_maps(m, i, c, upsample=False), "upsample them to the image size"),
        (lambda m, i, c: _layer_maps(m, i, c, normalise=False), "normalised to \\[0, 1\\]"),
        (lambda m, i, c: _layer_maps(m, i, c, layer="layer3"), "these are the CAMs of layer3"),
        (lambda m, i, c: _layer_maps(m, i, c)[[2, 1, 0]], "belong to other classes"),
        (lambda m, i, c: _layer_maps(m, i, c) * torch.nan, "contain NaN"),
        (lambda m, i, c: _layer_maps(m, i, c)[:2], "one map per class"),
    ],
)
def test_check_a_names_the_mistake(solutions, lite_model, wrong, message):
    result = check_a(lite_model, wrong, solutions["a"]["dominant_class"])
    assert not result.correct
    assert re.search(message, _problems(result)), _problems(result)


def test_check_a_catches_swapped_halves(solutions, lite_model):
    def swapped(cams, names):
        answer = solutions["a"]["dominant_class"](cams, names)
        return {"left": answer["right"], "right": answer["left"]}

    result = check_a(lite_model, solutions["a"]["cams_for_classes"], swapped)
    assert "dominant_class gave the wrong answer" in _problems(result)


# --- b


def test_check_b_names_the_mistakes(solutions, lite_model):
    explain_file = solutions["b"]["explain_file"]

    def bgr(model, path):
        name, overlay = explain_file(model, path)
        return name, np.ascontiguousarray(overlay[..., ::-1])

    def input_sized(model, path):
        name, overlay = explain_file(model, path)
        return name, overlay[:224]

    def crashes(model, folder, output):
        for path in sorted(folder.iterdir()):
            load_image(path)
        return []

    def reports_nothing(model, folder, output):
        solutions["b"]["explain_folder"](model, folder, output)
        return []

    folder_ok = solutions["b"]["explain_folder"]
    assert "swapped (BGR" in _problems(check_b(lite_model, bgr, folder_ok))
    assert "of the image's size" in _problems(check_b(lite_model, input_sized, folder_ok))
    assert "crashed on a folder" in _problems(check_b(lite_model, explain_file, crashes))
    assert "explain_folder reported 0" in _problems(check_b(lite_model, explain_file, reports_nothing))


# --- c


def test_check_c_names_the_mistakes(solutions, lite_model):
    good = solutions["c"]["changed_preprocess"]
    assert "still says 'espresso'" in _problems(check_c(lite_model, lite_model.preprocess, "espresso"))
    assert "not an ImageNet class name" in _problems(check_c(lite_model, good, "jack o lantern pumpkin"))
    assert "float tensor (3, H, W)" in _problems(check_c(lite_model, lambda image: image, "espresso"))
    assert "not what the model predicts" in _problems(check_c(lite_model, good, "tabby"))
    fixed = good(load_image(solutions["c"]["DATA_DIR"] / "coffee.jpg"))
    assert "must transform its input" in _problems(check_c(lite_model, lambda image: fixed, solutions["c"]["new_top_class"]))


# --- d


def test_check_d_names_the_mistakes(solutions, lite_model):
    shares, first = solutions["d"]["localisation_shares"], solutions["d"]["first_localised_stage"]

    def outside(model, image, name, mask):
        return {stage: 1 - share for stage, share in shares(model, image, name, mask).items()}

    def missing(model, image, name, mask):
        return {stage: share for stage, share in shares(model, image, name, mask).items() if stage != "layer1"}

    def dict_order(values, threshold=0.6):
        return next((stage for stage, share in values.items() if share >= threshold), None)

    def never_none(values, threshold=0.6):
        return first(values, threshold) or "layer4"

    assert "shares *outside* the mask" in _problems(check_d(lite_model, outside, first))
    assert "with the keys layer1" in _problems(check_d(lite_model, missing, first))
    assert "go through the stages from layer1" in _problems(check_d(lite_model, shares, dict_order))
    assert "return None" in _problems(check_d(lite_model, shares, never_none))


# --- interactive versus grading


def test_unfinished_work_shows_its_hint_but_grading_scores_zero(lite_model):
    def stub(*args):
        raise NotImplementedError("use LayerRecorder")

    with pytest.raises(NotImplementedError, match="use LayerRecorder"):
        check_a(lite_model, stub, stub)
    result = grade("a", {"model": lite_model, "cams_for_classes": stub, "dominant_class": stub})
    assert result.passed == [] and "not implemented yet (use LayerRecorder)" in _problems(result)


def test_grading_reports_missing_names(lite_model):
    result = grade("d", {"model": lite_model})
    assert result.score == 0 and "does not define localisation_shares, first_localised_stage" in _problems(result)


def test_student_errors_are_reported_not_raised(solutions, lite_model):
    def broken(model, image, names):
        raise KeyError("oops")

    result = check_a(lite_model, broken, solutions["a"]["dominant_class"])
    assert "broken raised KeyError: 'oops'" in _problems(result)
