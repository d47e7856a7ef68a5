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
from ._common import STAGES, Checker, CheckResult, as_tensor, cached, layer_gradients, max_difference, smaller_input, type_name

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
    differences = (cams - reference).abs()
    k = int(differences.flatten(1).amax(1).argmax())
    row, column = divmod(int(differences[k].argmax()), differences.shape[-1])
    return (f"the maps do not match Grad-CAM at layer4, and no known mistake gives them: the largest difference, "
            f"{float(differences[k, row, column]):.2f}, is in the map of {CLASSES[k]!r} at row {row}, column {column} "
            f"(yours {float(cams[k, row, column]):.2f}, Grad-CAM {float(reference[k, row, column]):.2f}). Compare your maps "
            "with grad_cam(model, image, class_names).maps, step by step.")


def _edge_classes(model: LoadedModel) -> dict[str, Any]:
    """Two classes at the edges of the text on the check photo, with their right maps (K, H, W).

    "all zero": a class with no positive evidence anywhere, whose Grad-CAM is 0 everywhere (max = min);
    "above 0": a class whose Grad-CAM is positive everywhere (its minimum above 0). Candidates come from
    the CAMs of all classes at layer4 (fc's weights times the activation; layer4 -> average pooling -> fc
    in both course models); each is kept only if its Grad-CAM, computed by gradients, is of that kind.
    """
    image = check_image()
    fc = getattr(model.network, "fc", None)
    if not isinstance(fc, torch.nn.Linear):
        return {"names": [], "kinds": [], "reference": torch.zeros(0)}
    outputs: dict[str, torch.Tensor] = {}
    handle = model.network.layer4.register_forward_hook(lambda _m, _i, out: outputs.__setitem__("A", out[0].detach().cpu()))
    try:
        with torch.inference_mode():
            model.network(model.preprocess(image).unsqueeze(0).to(model.device))
    finally:
        handle.remove()
    cams = torch.einsum("kc,chw->khw", fc.weight.detach().cpu().float(), outputs["A"].float()).flatten(1)
    chosen = {"all zero": int(cams.amax(1).argmin()), "above 0": int(cams.amin(1).argmax())}
    scores = {kind: (lambda logits, index=index: logits[0, index]) for kind, index in chosen.items()}
    activations, gradients = layer_gradients(model, image, ["layer4"], scores)
    names, kinds, maps = [], [], []
    for kind, index in chosen.items():
        raw = _gradcam(activations["layer4"], gradients[kind]["layer4"]).clamp(min=0)
        if (kind == "all zero" and float(raw.max()) == 0) or (kind == "above 0" and float(raw.min()) > 0.05 * float(raw.max())):
            names.append(model.class_names[index])
            kinds.append(kind)
            maps.append(raw)
    reference = _finish(torch.stack(maps), CHECK_IMAGE_SIZE) if maps else torch.zeros(0)
    return {"names": names, "kinds": kinds, "reference": reference}


#: A second photo, of odd height and width, and its classes.
SECOND_PHOTO, SECOND_SIZE, SECOND_CLASSES = "chelsea.jpg", (143, 215), ("tabby", "espresso")


def _second_photo() -> np.ndarray:
    photo = Image.fromarray(load_image(DATA_DIR / SECOND_PHOTO))
    return np.array(photo.resize(SECOND_SIZE[::-1], Image.Resampling.BILINEAR))


def _second_reference(model: LoadedModel) -> torch.Tensor:
    """Grad-CAM at layer4 of :data:`SECOND_CLASSES` on the second photo, (K, H, W) at its size."""
    indices = [model.class_index(name) for name in SECOND_CLASSES]
    scores = {str(k): (lambda logits, index=index: logits[0, index]) for k, index in enumerate(indices)}
    activations, gradients = layer_gradients(model, _second_photo(), ["layer4"], scores)
    raw = torch.stack([_gradcam(activations["layer4"], gradients[str(k)]["layer4"]) for k in range(len(indices))]).clamp(min=0)
    return _finish(raw, SECOND_SIZE)


def _check_second_photo(model: LoadedModel, cams_for_classes: Callable, checker: Checker) -> str:
    """The problem of cams_for_classes on a second photo of odd size, or ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    ok, answer = checker.call(cams_for_classes, model, _second_photo(), list(SECOND_CLASSES))
    if not ok:
        return ""  # the error is reported by the call
    cams = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
    what = f"on a second photo of odd size, {SECOND_SIZE[0]}x{SECOND_SIZE[1]}, with classes {list(SECOND_CLASSES)}"
    if cams is None or tuple(cams.shape) != (len(SECOND_CLASSES), *SECOND_SIZE):
        shape = tuple(cams.shape) if cams is not None else type_name(answer)
        return (f"{what}, cams_for_classes returned {shape}, expected {(len(SECOND_CLASSES), *SECOND_SIZE)}: take the "
                "size from the image you are given, image.shape[:2], nothing from the check's first photo or the notebook.")
    if not bool(torch.isfinite(cams).all()):
        return f"{what}, the maps contain NaN."
    reference = cached(model, "exercise a: second photo", lambda: _second_reference(model))
    difference = max_difference(normalize_cams(cams), reference)
    return "" if difference < TOLERANCE else f"{what}, the maps differ from Grad-CAM at layer4 by up to {difference:.2f}."


def _check_edges(model: LoadedModel, cams_for_classes: Callable, checker: Checker, maps_right: bool) -> tuple[str, str, str]:
    """Problems (NaN, normalisation, values) of cams_for_classes on an all-zero map and a map above 0; "" where right.

    ``maps_right``: whether its maps on the check's classes are right. Only then is a map that should be all zero
    judged (a wrong computation gives that class a map with a range), and the values compared.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    edges = cached(model, "exercise a: edges", lambda: _edge_classes(model))
    if not edges["names"]:
        return "", "", ""
    ok, answer = checker.call(cams_for_classes, model, check_image(), list(edges["names"]))
    cams = as_tensor(answer) if ok else None
    if cams is None or tuple(cams.shape) != tuple(edges["reference"].shape):
        return "", "", ""  # an error is reported by the call; a wrong form by the first call's checks
    nan = normalised = values = ""
    for k, (name, kind) in enumerate(zip(edges["names"], edges["kinds"])):
        cam = cams[k]
        if not bool(torch.isfinite(cam).all()):
            nan = nan or (f"the map of {name!r} contains NaN: on this photo the class has no positive evidence, so its "
                          "Grad-CAM is 0 everywhere (max = min = 0) and (x - min) / (max - min) divides 0 by 0. A map "
                          "with no range stays all zero (normalize_cams does that).")
            continue
        low, high = float(cam.min()), float(cam.max())
        if kind == "above 0" and low > 1e-3 and abs(high - 1) < 1e-3:
            normalised = normalised or (f"the map of {name!r} runs from {low:.2f} to 1, not from 0: its Grad-CAM is "
                                        "positive everywhere, and dividing by the maximum alone leaves the minimum above "
                                        "0. Subtract each map's own minimum, then divide by its range: (x - min) / (max - min).")
        elif kind == "all zero" and high > 1e-6 and maps_right:
            normalised = normalised or (f"the map of {name!r} is all zero before normalising (no positive evidence) but "
                                        f"yours reaches {high:.2f}: a map with no range stays all zero.")
        elif abs(low) > 1e-4 or (abs(high - 1) > 1e-4 and abs(high) > 1e-4):
            normalised = normalised or f"the map of {name!r} runs from {low:.3g} to {high:.3g}, not from 0 to 1."
        elif kind == "above 0" and maps_right and max_difference(normalize_cams(cam), edges["reference"][k]) >= TOLERANCE:
            values = values or (f"the map of {name!r} (positive everywhere on this photo) does not match Grad-CAM at "
                                "layer4.")
    return nan, normalised, values


def _check_maps(checker: Checker, model: LoadedModel, cams_for_classes: Callable) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
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
    cams = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
    if cams is None:
        hint = ", e.g. torch.from_numpy(...)" if isinstance(answer, np.ndarray) else ""
        checker.require("shape", False, f"cams_for_classes should return a torch tensor (K, H, W); it returns {type_name(answer)}{hint}.")
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
    # The same function on two classes at the edges of the text: an all-zero map, a map above 0.
    references = cached(model, "exercise a", lambda: _references(model))
    maps_right = bool(torch.isfinite(cams).all()) and max_difference(normalize_cams(cams), references["reference"]) < TOLERANCE
    edge_nan, edge_normalised, edge_values = _check_edges(model, cams_for_classes, checker, maps_right)
    finite = bool(torch.isfinite(cams).all())
    checker.require(
        "no NaN", finite and not edge_nan,
        edge_nan if finite else "the maps contain NaN (or infinity): a division by zero when normalising? An all-zero "
        "map has max = min; normalize_cams handles that case.",
    )
    if not finite or edge_nan:
        checker.skip(later[1:], "fix the NaN first")
        return
    low, high = cams.flatten(1).amin(1), cams.flatten(1).amax(1)
    each_normalised = bool(((low.abs() < 1e-4) & (((high - 1).abs() < 1e-4) | (high.abs() < 1e-4))).all())
    references = cached(model, "exercise a", lambda: _references(model))
    if each_normalised:
        problem = edge_normalised
    elif abs(float(low.min())) < 1e-4 and abs(float(high.max()) - 1) < 1e-4:
        problem = ("normalise each map on its own, by its own minimum and maximum: your maps share one scale, so only "
                   f"the strongest reaches 1 (their maxima: {', '.join(f'{float(h):.2f}' for h in high)}).")
    elif max_difference(cams, references["normalised first"]) < 1e-3:
        problem = _MISTAKES["normalised first"]
    else:
        problem = (f"each map should run from 0 to 1 (normalised by its own minimum and maximum); yours run from "
                   f"{float(low.min()):.3g} to {float(high.max()):.3g}.")
    checker.require("normalised", not problem, problem)
    # Compare the shapes of the maps whatever their scaling, so one mistake costs one check.
    comparable = normalize_cams(cams)
    matches = max_difference(comparable, references["reference"]) < TOLERANCE
    problem = _check_second_photo(model, cams_for_classes, checker) if matches else _diagnose_maps(comparable, references)
    checker.require("Grad-CAM at layer4", not problem and not edge_values, problem or edge_values)


# ----------------------------------------------------------------------------- dominant_class


def _split(width: int, height: int, how: str = "right") -> int:
    """Where a split puts the boundary between the halves: the right one, and the known off-by-ones and wrong axes."""
    return {
        "right": width // 2,
        "odd middle left": (width + 1) // 2,
        "one more": width // 2 + 1,
        "one less": width // 2 - 1,
        "third": width // 3,
        "height": height // 2,
    }[how]


def _halves(cams: torch.Tensor, by_rows: bool = False, split: str = "right") -> dict[str, torch.Tensor]:
    if by_rows:
        size = cams.shape[-2] // 2
        return {"left": cams[..., :size, :], "right": cams[..., size:, :]}
    boundary = _split(cams.shape[-1], cams.shape[-2], split)
    return {"left": cams[..., :boundary], "right": cams[..., boundary:]}


def _dominant(cams: torch.Tensor, names: list[str], reduce: str = "sum", by_rows: bool = False, pick: str = "max", split: str = "right") -> dict[str, Any]:
    answer = {}
    for half, part in _halves(cams, by_rows, split).items():
        values = part.flatten(-2).sum(-1) if reduce == "sum" else part.flatten(-2).amax(-1)
        if not values.numel() or part.shape[-1] == 0:
            answer[half] = None
            continue
        answer[half] = names[int(values.argmax() if pick == "max" else values.argmin())]
    return answer


def _boundary_cases(seed: int = 22) -> list[tuple[torch.Tensor, list[str]]]:
    """Generated maps whose answer changes if the boundary moves by one column, or is taken from the height.

    Odd and even widths, height unlike width: a class owns the last column of the left half, a heavier one
    the first column of the right half, a third the next column; weak noise everywhere else; one case has
    a map with a minimum above 0 and one an all-zero map.
    """
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for height, width in ((5, 7), (6, 9), (4, 10), (9, 13), (3, 8)):
        classes = 4
        cams = torch.rand(classes, height, width, generator=generator) * 0.02
        middle = width // 2
        cams[0, :, middle - 1] = 1.0  # the left half's heaviest column
        cams[1, :, middle] = 2.0  # the right half's heaviest
        if middle + 1 < width:
            cams[2, :, middle + 1] = 1.5
        cams[3] = 0.0  # a class with no mass at all
        cases.append((cams, [f"class {k} of {height}x{width}" for k in range(classes)]))
    shifted = cases[0][0].clone() + 0.05  # every map with a minimum above 0: still the most mass wins
    cases.append((shifted, [f"raised {k}" for k in range(shifted.shape[0])]))
    for cams, names in cases[:2]:  # the left half's last column the heaviest of all: it must not count for the right half
        heavy = cams.clone()
        heavy[0, :, cams.shape[-1] // 2 - 1] = 3.0
        cases.append((heavy, [f"heavy {name}" for name in names]))
    return cases


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
    tied = torch.zeros(3, 2, 6)
    tied[1, :, :3] = 0.5  # two classes with the same mass in the left half: the first in class_names wins
    tied[2, :, :3] = 0.5
    tied[0, :, 3:] = 0.2
    cases = [(plain, ["first", "second", "third"]), (peak, ["peak", "broad"]), (rows, ["top", "bottom"]), (graded, ["A", "B", "C"]),
             (tied, ["x", "tie one", "tie two"])]
    return cases + _boundary_cases()


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
    (lambda c, n: _dominant(c, n, split="height"),
     "the halves are split at half the height (cams.shape[1] or cams.shape[-2] is H): the width is the last dimension, "
     "W = cams.shape[-1], and the left half is the columns [:W // 2]."),
    (lambda c, n: _dominant(c, n, split="odd middle left"),
     "for an odd width the middle column went to the left half: the left half is the columns [:W // 2] (for W = 7, "
     "columns 0 to 2), the right half the rest, middle column included."),
    (lambda c, n: _dominant(c, n, split="one more"),
     "the left half has one column too many: it is the columns [:W // 2] (for W = 8, columns 0 to 3)."),
    (lambda c, n: _dominant(c, n, split="one less"),
     "the left half is one column short: it is the columns [:W // 2] (for W = 8, columns 0 to 3)."),
    (lambda c, n: _dominant(c, n, split="third"),
     "the boundary between the halves is not in the middle: the left half is the columns [:W // 2]."),
    (lambda c, n: {"left": _dominant(c, n)["left"], "right": _dominant(c, n, split="one less")["right"]},
     "the right half starts one column early, so the halves overlap: the right half is the columns [W // 2:]."),
]


def _diagnose_dominant(cases: list[tuple[torch.Tensor, list[str]]], answers: list[Any], what: str = "made-up maps") -> str:
    """The message for dominant_class's answers on some cases, empty if all are right."""
    for answer, (_, names) in zip(answers, cases):
        if not isinstance(answer, dict) or sorted(map(str, answer)) != ["left", "right"]:
            shown = repr(answer) if len(repr(answer)) < 80 else type_name(answer)
            return f"dominant_class should return a dict {{'left': name, 'right': name}}; got {shown}."
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
            return (f"on {what} of shape {tuple(cams.shape)} (K, H, W), dominant_class returned {answer}, expected "
                    f"{expected}: for each half (left = the columns [:W // 2]) the class with the largest sum of its map; "
                    "a tie goes to the class that comes first in class_names.")
        if not all(isinstance(value, str) for value in answer.values()):
            return (f"dominant_class's values should be the names as str, from class_names; got "
                    f"{', '.join(type_name(value) for value in answer.values())}.")
    return ""


def _check_dominant(checker: Checker, model: LoadedModel, dominant_class: Callable) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    cases = _synthetic_cases()
    answers = []
    for cams, names in cases:
        ok, answer = checker.call(dominant_class, cams.clone(), list(names))
        if not ok:
            checker.skip(["dominant on made-up maps", "dominant on real maps"], "dominant_class failed on made-up maps")
            return
        answers.append(answer)
    problem = _diagnose_dominant(cases, answers)
    made_up_failed = not checker.require("dominant on made-up maps", not problem, problem)
    real = cached(model, "exercise a", lambda: _references(model))["reference"]
    ok, answer = checker.call(dominant_class, real.clone(), list(CLASSES))
    if ok:
        # Real maps can be near ties (a random network's especially): any class within rounding of the largest mass is right.
        masses = {half: part.flatten(-2).double().sum(-1) for half, part in _halves(real).items()}
        near_top = isinstance(answer, dict) and sorted(answer) == ["left", "right"] and all(
            answer[half] in CLASSES and float(mass[CLASSES.index(answer[half])]) >= float(mass.max()) * (1 - 1e-4) - 1e-6
            for half, mass in masses.items()
        )
        if near_top:
            problem = ""
        elif made_up_failed:  # the cause is named above; say only that the real maps are affected too
            problem = f"on the Grad-CAM maps of the pair photo too, dominant_class returns {answer!r}."
        else:
            problem = _diagnose_dominant([(real, list(CLASSES))], [answer], what="Grad-CAM maps of the pair photo")
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
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    small = smaller_input(model)  # a quick check; the maps are computed the same way on smaller inputs
    checker = Checker("a", CHECK_COUNT, catch_not_implemented=_grading, models=[model, small])
    model = small
    _check_maps(checker, model, cams_for_classes)
    _check_dominant(checker, model, dominant_class)
    return checker.finish()
