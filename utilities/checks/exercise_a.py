"""Exercise a: Grad-CAM by hand for several classes, and which class dominates which half of the photo."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..cam import normalize_cams, upsample_cams
from ..images import DATA_DIR, load_image
from ..models import LoadedModel
from ._common import STAGES, Checker, CheckResult, as_tensor, cached, layer_gradients, max_difference, smaller_input

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "CHECK_IMAGE_SIZE", "check_a"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    'shape',
    'no NaN',
    'normalised',
    'Grad-CAM at layer4',
    'dominant on made-up maps',
    'dominant on real maps',
)
CHECK_COUNT = len(CHECK_NAMES)
#: (H, W) of the check's photo: deliberately not the network input's size (224 x 448).
CHECK_IMAGE_SIZE = (176, 352)
CLASSES = ("espresso", "goldfish", "Egyptian cat")  # not the notebook's classes or order
TOLERANCE = 0.01  # largest pixel difference between two computations of the same map


def check_image() -> np.ndarray:
    """The two-object photo at :data:`CHECK_IMAGE_SIZE`."""
    photo = Image.fromarray(load_image(DATA_DIR / "cat_and_coffee.png"))
    return np.array(photo.resize(CHECK_IMAGE_SIZE[::-1], Image.Resampling.BILINEAR))  # writable, as torch prefers


def _gradcam(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    return (gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(dim=0)


def _finish(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return normalize_cams(upsample_cams(raw, size))


def _references(model: LoadedModel) -> dict[str, torch.Tensor]:
    """The right maps and the maps of each known mistake, (K, H, W) at the check image's size."""
    image = check_image()
    indices = [model.class_index(name) for name in CLASSES]
    with torch.inference_mode():
        top = int(model.network(model.preprocess(image).unsqueeze(0).to(model.device)).argmax())
    scores: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"sum": lambda logits: logits[0, indices].sum(), "top": lambda logits: logits[0, top]}
    for k, index in enumerate(indices):
        scores[f"logit{k}"] = lambda logits, index=index: logits[0, index]
        scores[f"probability{k}"] = lambda logits, index=index: logits.softmax(dim=1)[0, index]
        scores[f"position{k}"] = lambda logits, k=k: logits[0, k]
    activations, gradients = layer_gradients(model, image, STAGES, scores)
    a4 = activations["layer4"]

    def per_class(kind: str, layer: str = "layer4", combine: Callable = _gradcam) -> torch.Tensor:
        return torch.stack([combine(activations[layer], gradients[f"{kind}{k}"][layer]) for k in range(len(CLASSES))])

    logit4 = [gradients[f"logit{k}"]["layer4"] for k in range(len(CLASSES))]
    raw = per_class("logit").clamp(min=0)
    maps = {
        "reference": _finish(raw, CHECK_IMAGE_SIZE),
        "probabilities": _finish(per_class("probability").clamp(min=0), CHECK_IMAGE_SIZE),
        "positions": _finish(per_class("position").clamp(min=0), CHECK_IMAGE_SIZE),
        "sum": _finish(_gradcam(a4, gradients["sum"]["layer4"]).clamp(min=0).expand(len(CLASSES), -1, -1), CHECK_IMAGE_SIZE),
        "top": _finish(_gradcam(a4, gradients["top"]["layer4"]).clamp(min=0).expand(len(CLASSES), -1, -1), CHECK_IMAGE_SIZE),
        "accumulated": _finish(
            torch.stack([_gradcam(a4, sum(logit4[: k + 1])) for k in range(len(CLASSES))]).clamp(min=0), CHECK_IMAGE_SIZE
        ),
        "no ReLU": _finish(per_class("logit"), CHECK_IMAGE_SIZE),
        "ReLU per channel": _finish(
            torch.stack([(g.mean(dim=(1, 2))[:, None, None] * a4).clamp(min=0).sum(0) for g in logit4]), CHECK_IMAGE_SIZE
        ),
        "ReLU on gradients": _finish(torch.stack([_gradcam(a4, g.clamp(min=0)) for g in logit4]).clamp(min=0), CHECK_IMAGE_SIZE),
        "nearest": normalize_cams(F.interpolate(raw[:, None], size=CHECK_IMAGE_SIZE, mode="nearest")[:, 0]),
        "normalised first": upsample_cams(normalize_cams(raw), CHECK_IMAGE_SIZE),
    }
    for stage in STAGES[:-1]:
        maps[stage] = _finish(per_class("logit", stage).clamp(min=0), CHECK_IMAGE_SIZE)
    return maps


_EARLY_RELU = ("the ReLU is applied too early (to the gradients, the weights or each weighted channel): average the raw "
               "gradients into weights, sum the weighted channels, then apply the ReLU once, to the sum.")
_MISTAKES = {
    "probabilities": "these maps use the gradients of the softmax probabilities; Grad-CAM backpropagates each class's "
    "logit, the score before the softmax (logits[0, index]).",
    "positions": "these are the maps of classes 0, 1, 2 (the positions in class_names), not of the named classes: "
    "find each class's output with model.class_index(name).",
    "sum": "all maps are identical although the classes differ: one backward pass of the sum of the classes' logits "
    "mixes them. Backpropagate each class's own logit separately (retain_graph=True, notebook 3).",
    "top": "all maps are identical: each is the map of the model's top class. Backpropagate the logit of each class "
    "in class_names.",
    "accumulated": "the first map is right but the later ones are not: the gradients add up over the backward passes "
    "(a tensor's .grad accumulates). Use only the gradient of the current backward pass, e.g. LayerRecorder's gradients.",
    "no ReLU": "the negative parts are not cut off: apply the ReLU (clamp(min=0)) to the weighted sum of the channels, "
    "before upsampling and normalising.",
    "ReLU per channel": _EARLY_RELU,
    "ReLU on gradients": _EARLY_RELU,
    "nearest": "the maps are upsampled by nearest neighbour (blocky): upsample bilinearly, e.g. with upsample_cams.",
    "normalised first": "the maps are normalised before upsampling: upsample first, then normalise each map, so each "
    "runs exactly from 0 to 1.",
    "layer1": "these are the CAMs of layer1; the exercise asks for layer4.",
    "layer2": "these are the CAMs of layer2; the exercise asks for layer4.",
    "layer3": "these are the CAMs of layer3; the exercise asks for layer4.",
}


def _diagnose_maps(cams: torch.Tensor, references: dict[str, torch.Tensor]) -> str:
    """The most likely mistake behind maps that differ from the reference."""
    reference = references["reference"]
    for mistake, message in _MISTAKES.items():
        if max_difference(cams, references[mistake]) < TOLERANCE:
            return message
    for order in ([1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]):
        if max_difference(cams, reference[order]) < TOLERANCE:
            return "the maps are right but belong to other classes: keep them in the order of class_names."
    spread = cams.flatten(1)
    if max_difference(cams, cams[:1].expand_as(cams)) < TOLERANCE and float(spread.amax() - spread.amin()) > 0:
        return ("all maps are identical although the classes differ: each class needs its own backward pass of its "
                "own logit (retain_graph=True, notebook 3), and its own gradient.")
    right = [k for k in range(len(CLASSES)) if max_difference(cams[k], reference[k]) < TOLERANCE]
    if right:
        return (f"the map of {', '.join(CLASSES[k] for k in right)} is right, the others are not: does something "
                "carry over from one class to the next (gradients, a variable)?")
    return ("the maps do not match Grad-CAM at layer4: one forward pass; per class, the gradient of its logit at "
            "layer4; weights = mean gradient per channel; weighted sum of the channels; ReLU; bilinear upsampling; "
            "normalising each map.")


def _check_maps(checker: Checker, model: LoadedModel, cams_for_classes: Callable) -> None:
    image = check_image()
    height, width = CHECK_IMAGE_SIZE
    later = ["no NaN", "normalised", "Grad-CAM at layer4"]
    ok, answer = checker.call(cams_for_classes, model, image, list(CLASSES))
    if not ok:
        checker.skip(later, "cams_for_classes did not return maps")
        return
    if isinstance(answer, (list, tuple)) and answer and all(as_tensor(item) is not None for item in answer):
        checker.require("shape", False, "cams_for_classes returns a list of maps; return one tensor (K, H, W), e.g. torch.stack(maps).")
        checker.skip(later, "fix the form of the result first")
        return
    cams = as_tensor(answer)
    if cams is None:
        checker.require("shape", False, f"cams_for_classes should return a tensor (K, H, W), got {type(answer).__name__}.")
        checker.skip(later, "fix the form of the result first")
        return
    shape = tuple(cams.shape)
    input_size = tuple(model.preprocess(image).shape[-2:])
    if cams.ndim == 4 and shape[0] == 1:
        problem = f"the result has a batch dimension, shape {shape}; return (K, H, W) with K = {len(CLASSES)}, e.g. with [0] or squeeze(0)."
    elif cams.ndim != 3 or shape[0] != len(CLASSES):
        problem = f"expected one map per class, (K, H, W) with K = {len(CLASSES)}; got shape {shape}."
    elif shape[1:] == input_size and input_size != CHECK_IMAGE_SIZE:
        problem = (f"the maps are {shape[1]}x{shape[2]}, the network input's size; upsample them to the image's size, "
                   f"{height}x{width} (image.shape[:2]): images need not be the input's size.")
    elif shape[1:] == (width, height):
        problem = f"the maps are {shape[1]}x{shape[2]}, height and width swapped: image.shape[:2] is (H, W) = ({height}, {width})."
    elif shape[1:] != CHECK_IMAGE_SIZE:
        problem = f"the maps are {shape[1]}x{shape[2]}; upsample them to the image's size, {height}x{width} (image.shape[:2])."
    else:
        problem = ""
    if not checker.require("shape", not problem, problem):
        checker.skip(later, "fix the shape first")
        return
    finite = bool(torch.isfinite(cams).all())
    checker.require(
        "no NaN", finite,
        "the maps contain NaN (or infinity): a division by zero when normalising? An all-zero map has max = min; "
        "normalize_cams handles that case.",
    )
    if not finite:
        checker.skip(later[1:], "fix the NaN first")
        return
    low, high = cams.flatten(1).amin(1), cams.flatten(1).amax(1)
    each_normalised = bool(((low.abs() < 1e-4) & (((high - 1).abs() < 1e-4) | (high.abs() < 1e-4))).all())
    references = cached(model, "exercise a", lambda: _references(model))
    if each_normalised:
        problem = ""
    elif abs(float(low.min())) < 1e-4 and abs(float(high.max()) - 1) < 1e-4:
        problem = ("normalise each map on its own, by its own minimum and maximum: your maps share one scale, so only "
                   f"the strongest reaches 1 (their maxima: {', '.join(f'{float(h):.2f}' for h in high)}).")
    elif max_difference(cams, references["normalised first"]) < 1e-3:
        problem = _MISTAKES["normalised first"]
    else:
        problem = (f"each map should run from 0 to 1 (normalised by its own minimum and maximum); yours run from "
                   f"{float(low.min()):.3g} to {float(high.max()):.3g}.")
    checker.require("normalised", each_normalised, problem)
    # Compare the shapes of the maps whatever their scaling, so one mistake costs one check.
    comparable = normalize_cams(cams)
    matches = max_difference(comparable, references["reference"]) < TOLERANCE
    checker.require("Grad-CAM at layer4", matches, "" if matches else _diagnose_maps(comparable, references))


# ----------------------------------------------------------------------------- dominant_class


def _halves(cams: torch.Tensor, by_rows: bool = False) -> dict[str, torch.Tensor]:
    size = cams.shape[-2] if by_rows else cams.shape[-1]
    first, second = (cams[..., : size // 2, :], cams[..., size // 2 :, :]) if by_rows else (cams[..., : size // 2], cams[..., size // 2 :])
    return {"left": first, "right": second}


def _dominant(cams: torch.Tensor, names: list[str], reduce: str = "sum", by_rows: bool = False, pick: str = "max") -> dict[str, Any]:
    answer = {}
    for half, part in _halves(cams, by_rows).items():
        values = part.flatten(-2).sum(-1) if reduce == "sum" else part.flatten(-2).amax(-1)
        answer[half] = names[int(values.argmax() if pick == "max" else values.argmin())]
    return answer


def _synthetic_cases() -> list[tuple[torch.Tensor, list[str]]]:
    """Maps with a known answer, each telling one mistake apart."""
    plain = torch.zeros(3, 4, 8)
    plain[2, :, :4] = 1.0  # "third" fills the left half
    plain[0, :, 4:] = 1.0  # "first" fills the right half
    plain[1] = 0.3  # "second" is everywhere, weakly
    peak = torch.zeros(2, 6, 10)
    peak[0, 2, 1] = 1.0  # a single bright pixel on the left: the highest peak, little mass
    peak[1, :, :5] = 0.5  # broad and moderate on the left: the most mass
    peak[0, :, 5:] = 0.6
    rows = torch.zeros(2, 6, 6)
    rows[0, :3, :] = 1.0  # fills the top rows of both halves
    rows[1, 3:, :] = 0.8
    rows[1, :, :3] += 0.5  # and more mass in the left columns
    rows[0, :, 3:] += 0.4
    graded = torch.zeros(3, 4, 8)
    graded[:, :, :4] = torch.tensor([1.0, 0.5, 0.0])[:, None, None]  # a clear first, second and last class per half
    graded[:, :, 4:] = torch.tensor([0.2, 0.1, 0.9])[:, None, None]
    return [(plain, ["first", "second", "third"]), (peak, ["peak", "broad"]), (rows, ["top", "bottom"]), (graded, ["A", "B", "C"])]


_DOMINANT_MISTAKES: list[tuple[Callable[[torch.Tensor, list[str]], Any], str]] = [
    (lambda c, n: {h: v for h, v in zip(("left", "right"), reversed(list(_dominant(c, n).values())))},
     "left and right are swapped: the left half is the columns [:W // 2] (the last dimension), the right half the rest."),
    (lambda c, n: _dominant(c, n, reduce="max"),
     "this compares the maps' peak values; compare their mass, the sum of each map over the half."),
    (lambda c, n: _dominant(c, n, by_rows=True),
     "the photo is split into top and bottom: split the columns (the last dimension, width) into left and right."),
    (lambda c, n: _dominant(c, n, pick="min"), "this picks the class with the least mass in each half; pick the most."),
    (lambda c, n: {h: n.index(v) for h, v in _dominant(c, n).items()},
     "return class names, not their positions: {'left': name, 'right': name}."),
]


def _diagnose_dominant(cases: list[tuple[torch.Tensor, list[str]]], answers: list[Any], what: str = "made-up maps") -> str:
    """The message for dominant_class's answers on some cases, empty if all are right."""
    for answer, (_, names) in zip(answers, cases):
        if not isinstance(answer, dict) or sorted(answer) != ["left", "right"]:
            return f"dominant_class should return a dict {{'left': name, 'right': name}}; got {answer!r}."
        strangers = [value for value in answer.values() if value not in names]
        if strangers and not all(isinstance(value, int) for value in answer.values()):
            return (f"dominant_class returned {strangers[0]!r}, which is not among the class_names it was given "
                    f"({', '.join(names)}): use the class_names argument, not the notebook's CLASSES.")
    for wrong, message in _DOMINANT_MISTAKES:
        if all(answer == wrong(cams, names) for answer, (cams, names) in zip(answers, cases)):
            return message
    for answer, (cams, names) in zip(answers, cases):
        expected = _dominant(cams, names)
        if answer != expected:
            return (f"on {what} of shape {tuple(cams.shape)} for {names}, dominant_class returned {answer}, expected "
                    f"{expected}: for each half (left = columns [:W // 2]) sum each class's map and take the largest.")
    return ""


def _check_dominant(checker: Checker, model: LoadedModel, dominant_class: Callable) -> None:
    cases = _synthetic_cases()
    answers = []
    for cams, names in cases:
        ok, answer = checker.call(dominant_class, cams.clone(), list(names))
        if not ok:
            checker.skip(["dominant on made-up maps", "dominant on real maps"], "dominant_class failed on made-up maps")
            return
        answers.append(answer)
    problem = _diagnose_dominant(cases, answers)
    checker.require("dominant on made-up maps", not problem, problem)
    real = cached(model, "exercise a", lambda: _references(model))["reference"]
    ok, answer = checker.call(dominant_class, real.clone(), list(CLASSES))
    if ok:
        # Real maps can be near ties (a random network's especially): any class within rounding of the largest mass is right.
        masses = {half: part.flatten(-2).double().sum(-1) for half, part in _halves(real).items()}
        near_top = isinstance(answer, dict) and sorted(answer) == ["left", "right"] and all(
            answer[half] in CLASSES and float(mass[CLASSES.index(answer[half])]) >= float(mass.max()) * (1 - 1e-4) - 1e-6
            for half, mass in masses.items()
        )
        problem = "" if near_top else _diagnose_dominant([(real, list(CLASSES))], [answer], what="Grad-CAM maps of the pair photo")
        checker.require("dominant on real maps", not problem, problem or "dominant_class is wrong on the pair photo's maps.")


def check_a(model: LoadedModel, cams_for_classes: Callable, dominant_class: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise a: CAMs for arbitrary classes, and which class dominates which half.

    Args:
        model: the model the notebook uses.
        cams_for_classes: ``cams_for_classes(model, image, class_names)`` -> (K, H, W) maps.
        dominant_class: ``dominant_class(cams, class_names)`` -> {"left": name, "right": name}.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    checker = Checker("a", CHECK_COUNT, catch_not_implemented=_grading)
    model = smaller_input(model)  # a quick check; the maps are computed the same way on smaller inputs
    _check_maps(checker, model, cams_for_classes)
    _check_dominant(checker, model, dominant_class)
    return checker.result
