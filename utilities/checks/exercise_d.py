"""Exercise d: the share of the Grad-CAM's mass on the object at each stage, and the first stage that reaches a threshold."""

from __future__ import annotations

import dataclasses

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..cam import grad_cam
from ..images import DATA_DIR, load_image
from ..models import LoadedModel
from ._common import STAGES, Checker, CheckResult, cached, smaller_input, type_name

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "check_d", "share"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    'one share per stage',
    'shares are fractions',
    'shares match Grad-CAM',
    'all-zero maps give share 0',
    'first stage on known shares',
    'threshold reached with >=, default 0.8',
)
CHECK_COUNT = len(CHECK_NAMES)
TARGET = "espresso"  # the notebook works on the cat
TOLERANCE = 0.02


def share(cam: torch.Tensor, mask: torch.Tensor) -> float:
    """The share of a map's mass inside a mask; 0 for an all-zero map."""
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else 0.0


def object_mask(height: int, width: int) -> np.ndarray:
    """The espresso: the right half without a margin next to the middle.

    Not the complement of the notebook's ``cat_mask``, so that using that mask is told apart from
    computing the share outside the mask.
    """
    mask = np.zeros((height, width), dtype=bool)
    mask[:, width // 2 + width // 8 :] = True
    return mask


class _AllZeroStages(nn.Module):
    """A tiny network with ResNet's stage names whose stages all output zeros: every Grad-CAM is all zero."""

    def __init__(self) -> None:
        super().__init__()
        for index, stride in enumerate((4, 2, 2, 2), start=1):
            convolution = nn.Conv2d(3, 3, kernel_size=stride, stride=stride)
            nn.init.constant_(convolution.weight, 0.0)
            nn.init.constant_(convolution.bias, -1.0)  # ReLU(-1) = 0 everywhere, still part of the graph
            setattr(self, f"layer{index}", nn.Sequential(convolution, nn.ReLU()))
        self.fc = nn.Linear(3, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _zero_model() -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel(network=_AllZeroStages().eval().requires_grad_(False), name="all-zero maps (a test network)")


def _references(model: LoadedModel, global_model: LoadedModel) -> dict[str, np.ndarray]:
    """Right shares and the shares of known mistakes, per stage."""
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    height, width = image.shape[:2]
    mask = torch.from_numpy(object_mask(height, width))
    left = torch.zeros(height, width, dtype=torch.bool)
    left[:, : width // 2] = True  # the notebook's cat_mask
    with torch.inference_mode():
        top = model.class_names[int(model.network(model.preprocess(image).unsqueeze(0)).argmax())]
    shares: dict[str, list[float]] = {
        key: [] for key in ("reference", "stretched", "outside", "cat_mask", "mean inside", "inside/outside", "top", "Egyptian cat", "global model")
    }
    for stage in STAGES:
        result = grad_cam(model, image, [TARGET, top, "Egyptian cat"], layer=stage)
        maps = result.maps
        cam = maps[0]
        shares["reference"].append(share(cam, mask))
        # Cells spread evenly over the photo (upsample_cams without centres, as written by hand in exercise a) are
        # the other convention notebook 4b compares; both are right answers.
        shares["stretched"].append(share(dataclasses.replace(result.select([0]), centres=None).maps[0], mask))
        shares["outside"].append(share(cam, ~mask))
        shares["cat_mask"].append(share(cam, left))
        shares["mean inside"].append(float(cam[mask].mean()))
        outside = float(cam[~mask].sum())
        shares["inside/outside"].append(float(cam[mask].sum()) / outside if outside > 0 else 0.0)
        shares["top"].append(share(maps[1], mask))
        shares["Egyptian cat"].append(share(maps[2], mask))
        shares["global model"].append(share(grad_cam(global_model, image, TARGET, layer=stage).maps[0], mask))
    references = {key: np.array(values) for key, values in shares.items()}
    references["top class name"] = np.array(top)
    return references


_MISTAKES = {
    "outside": "these are the shares *outside* the mask: sum the map where the mask is True.",
    "cat_mask": "these are the shares inside the notebook's cat_mask: use the object_mask argument.",
    "mean inside": "this is the mean of the map inside the mask; the share is the mass inside divided by the whole "
    "map's mass, cam[mask].sum() / cam.sum().",
    "inside/outside": "this divides the mass inside by the mass outside; divide by the whole map's mass, cam.sum().",
    "Egyptian cat": "these are the shares of 'Egyptian cat' (the notebook's class): explain the class_name you were given.",
    "top": "these are the shares of the model's top class ({top}): explain the class_name you were given.",
    "global model": "these shares come from the notebook's model: use the model argument.",
}


def _diagnose_shares(values: np.ndarray, references: dict[str, np.ndarray]) -> str:
    if np.ptp(values) < 1e-6 and np.ptp(references["reference"]) > TOLERANCE:
        return ("all four shares are equal: the map did not change with the stage. Compute each stage's map at that "
                "stage (grad_cam(..., layer=stage)).")
    for mistake, message in _MISTAKES.items():
        if np.allclose(values, references[mistake], atol=TOLERANCE):
            return message.format(top=repr(str(references["top class name"])))
    if np.allclose(values, references["reference"][::-1], atol=TOLERANCE):
        return "the shares belong to other stages: check which value goes with which key."
    reference = references["reference"]
    worst = int(np.abs(values - reference).argmax())
    return (f"the shares do not match, and no known mistake gives them: at {STAGES[worst]} yours is {values[worst]:.3f}, "
            f"the share of the normalised Grad-CAM's mass inside the mask is {reference[worst]:.3f}.")


def _check_shares(checker: Checker, model: LoadedModel, global_model: LoadedModel, localisation_shares: Callable) -> bool:
    """The shares on the pair photo; returns whether localisation_shares ran at all."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    later = ["shares are fractions", "shares match Grad-CAM"]
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    mask = object_mask(*image.shape[:2])
    ok, shares = checker.call(localisation_shares, model, image, TARGET, mask.copy())
    if not ok:
        checker.skip(later, "localisation_shares failed")
        return False
    if not isinstance(shares, Mapping):
        problem = f"localisation_shares should return a dict {{stage: share}}; got {type(shares).__name__}."
    elif sorted(map(str, shares)) != list(STAGES):
        problem = f"localisation_shares should return a dict with exactly the keys {', '.join(STAGES)}; got {sorted(map(str, shares))}."
    else:
        problem = ""
    if not checker.require("one share per stage", not problem, problem):
        checker.skip(later, "fix the form of localisation_shares' result first")
        return True
    kinds = [shares[stage] for stage in STAGES]
    odd = next((value for value in kinds if isinstance(value, bool) or not isinstance(value, (float, int, np.floating, np.integer))), None)
    if odd is not None:
        hint = ": convert with float(...)" if isinstance(odd, (torch.Tensor, np.ndarray)) else ""
        checker.require(later[0], False, f"each share should be a number (a float); localisation_shares returns {type_name(odd)}{hint}.")
        checker.skip(later[1:], "fix the shares' type first")
        return True
    try:
        values = np.array([float(shares[stage]) for stage in STAGES])
    except (TypeError, ValueError):
        checker.require(later[0], False, "each share should be a number (a float).")
        checker.skip(later[1:], "fix the shares' type first")
        return True
    in_range = bool(np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)))
    checker.require(later[0], in_range, f"shares must be numbers in [0, 1]; got {np.round(values, 3).tolist()}.")
    references = cached(model, "exercise d", lambda: _references(model, global_model))
    matches = bool(np.allclose(values, references["reference"], atol=TOLERANCE) or np.allclose(values, references["stretched"], atol=TOLERANCE))
    checker.require(later[1], matches, "" if matches else _diagnose_shares(values, references))
    return True


def _check_zero_maps(checker: Checker, localisation_shares: Callable) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = np.full((64, 96, 3), 128, dtype=np.uint8)
    mask = object_mask(64, 96)
    name = "all-zero maps give share 0"

    def explain(error: BaseException) -> str | None:
        if isinstance(error, ZeroDivisionError):
            return ("for an all-zero map, cam.sum() is 0 and localisation_shares divides by it: the share of a map "
                    "with no mass is 0, as the text says.")
        return None

    ok, shares = checker.call(localisation_shares, _zero_model(), image, TARGET, mask, explain=explain)
    if not ok:
        return
    try:
        values = np.array([float(shares[stage]) for stage in STAGES])
    except Exception:  # noqa: BLE001 - the form is judged on the real model's result
        checker.require(name, False, "on a model whose maps are all zero, localisation_shares did not return a share per stage.")
        return
    if np.isnan(values).any():
        problem = ("for an all-zero map, cam.sum() is 0 and your share is NaN: the share of a map with no mass is 0, "
                   "as the text says (check cam.sum() > 0 before dividing).")
    elif not np.all(values == 0):
        problem = (f"on a model whose maps are all zero, the shares should be 0 (no mass, none on the object); got "
                   f"{np.round(values, 3).tolist()}. Did you use the notebook's model instead of the model argument?")
    else:
        problem = ""
    checker.require(name, not problem, problem)


def _first_stage(shares: Mapping[str, float], threshold: float = 0.8, *, order: Any = STAGES, strict: bool = False) -> Any:
    for stage in order if order is not None else shares:
        if shares[stage] > threshold or (not strict and shares[stage] == threshold):
            return stage
    return None


_STAGE_MISTAKES: list[tuple[Callable[..., Any], str]] = [
    (lambda s, t=0.8: _first_stage(s, t, order=None),
     "first_localised_stage follows the dict's order; go through the stages from layer1 to layer4, whatever the dict's order."),
    (lambda s, t=0.8: _first_stage(s, t, strict=True),
     "a share equal to the threshold reaches it: compare with >=, not >."),
    (lambda s, t=0.8: _first_stage(s, 0.8),
     "first_localised_stage ignores its threshold argument (it always uses 0.8): compare with threshold."),
    (lambda s, t=0.8: max(STAGES, key=lambda stage: s[stage]) if max(s.values()) >= t else None,
     "this is the stage with the largest share; return the first stage (from layer1) whose share reaches the threshold."),
    (lambda s, t=0.8: next((stage for stage in reversed(STAGES) if s[stage] >= t), None),
     "this is the last stage that reaches the threshold; return the first, going from layer1 to layer4."),
    (lambda s, t=0.8: _first_stage(s, t) or "layer4",
     "when no stage reaches the threshold, return None."),
    (lambda s, t=0.8: _first_stage(s, t, order=STAGES[1:]),
     "first_localised_stage never looks at layer1: go through all four stages, from layer1 to layer4."),
]

#: (shares, threshold or None for the default, expected) with known answers, each telling mistakes apart.
STAGE_CASES: list[tuple[dict[str, float], float | None, str | None]] = [
    ({"layer1": 0.3, "layer2": 0.7, "layer3": 0.5, "layer4": 0.9}, 0.6, "layer2"),
    ({"layer4": 0.9, "layer3": 0.65, "layer2": 0.2, "layer1": 0.1}, 0.6, "layer3"),
    ({"layer1": 0.5, "layer2": 0.5, "layer3": 0.55, "layer4": 0.58}, 0.6, None),
    ({"layer1": 0.1, "layer2": 0.85, "layer3": 0.95, "layer4": 0.7}, 0.5, "layer2"),
]
THRESHOLD_CASES: list[tuple[dict[str, float], float | None, str | None]] = [
    ({"layer1": 0.2, "layer2": 0.8, "layer3": 0.85, "layer4": 0.95}, 0.8, "layer2"),
    ({"layer1": 0.3, "layer2": 0.5, "layer3": 0.7, "layer4": 0.9}, 0.45, "layer2"),
    ({"layer1": 0.3, "layer2": 0.5, "layer3": 0.7, "layer4": 0.9}, None, "layer4"),
    ({"layer1": 0.8, "layer2": 0.4, "layer3": 0.9, "layer4": 0.3}, None, "layer1"),  # layer1 reaches the default exactly
]


def _generated_stage_cases(seed: int = 22, count: int = 12) -> list[tuple[dict[str, float], float | None, str | None]]:
    """Seeded shares with a known answer: each stage first in turn (layer1 too), ties with the threshold, none, shuffled keys."""
    generator = np.random.default_rng(seed)
    cases: list[tuple[dict[str, float], float | None, str | None]] = []
    for index in range(count):
        threshold = float(np.round(generator.uniform(0.3, 0.9), 2))
        values = np.round(generator.uniform(0.0, threshold - 0.01, size=4), 2)
        first = index % 5  # 0..3: that stage reaches the threshold first; 4: none does
        if first < 4:
            values[first] = threshold if index % 2 else min(1.0, threshold + 0.05)  # equal to the threshold every other case
            values[first + 1:] = np.round(generator.uniform(0.0, 1.0, size=3 - first), 2)
        order = list(generator.permutation(STAGES))
        shares = {stage: float(values[STAGES.index(stage)]) for stage in order}
        expected = next((stage for stage in STAGES if shares[stage] >= threshold), None)
        cases.append((shares, threshold, expected))
    return cases


def _call_cases(checker: Checker, function: Callable, cases: list) -> list[Any] | None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    answers = []
    for shares, threshold, _ in cases:
        arguments = (dict(shares),) if threshold is None else (dict(shares), threshold)
        ok, answer = checker.call(function, *arguments)
        if not ok:
            return None
        answers.append(answer)
    return answers


def _describe_stages(cases: list, answers: list[Any]) -> str:
    for answer in answers:
        if answer is not None and not isinstance(answer, str):
            return f"first_localised_stage should return a stage's name (a str such as 'layer2') or None; it returns {type_name(answer)}."
    wrong = [(case, answer) for case, answer in zip(cases, answers) if answer != case[2]]
    if not wrong:
        return ""
    for mistake, message in _STAGE_MISTAKES:
        if all(answer == (mistake(s) if t is None else mistake(s, t)) for (s, t, _), answer in zip(cases, answers)):
            return message
    (shares, threshold, expected), answer = wrong[0]
    called = f"first_localised_stage({shares})" if threshold is None else f"first_localised_stage({shares}, {threshold})"
    rule = "the default threshold is 0.8; " if threshold is None else ""
    return (f"{called} returned {answer!r}; expected {expected!r}: {rule}the first stage from layer1 to layer4 whose "
            "share is >= the threshold, or None.")


def check_d(model: LoadedModel, localisation_shares: Callable, first_localised_stage: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise d: at which stage does a class first become localised?

    Args:
        model: the model the notebook uses.
        localisation_shares: ``localisation_shares(model, image, class_name, object_mask)`` -> {stage: share of
            the normalised Grad-CAM's mass inside the mask (0 for an all-zero map)} for layer1..layer4.
        first_localised_stage: ``first_localised_stage(shares, threshold=0.8)`` -> the first stage from layer1 to
            layer4 whose share is >= the threshold, or None.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    # Four CAMs per call: smaller inputs keep the check quick. The full-size model is kept to
    # recognise a function that uses the notebook's global model instead of its argument.
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    small = smaller_input(model)
    checker = Checker("d", CHECK_COUNT, catch_not_implemented=_grading, models=[model, small])
    if _check_shares(checker, small, model, localisation_shares):
        _check_zero_maps(checker, localisation_shares)
    else:
        checker.skip(["all-zero maps give share 0"], "localisation_shares must run first")
    for name, cases in (("first stage on known shares", STAGE_CASES + _generated_stage_cases()), ("threshold reached with >=, default 0.8", THRESHOLD_CASES)):
        answers = _call_cases(checker, first_localised_stage, cases)
        if answers is not None:
            problem = _describe_stages(cases, answers)
            checker.require(name, not problem, problem)
    return checker.finish()
