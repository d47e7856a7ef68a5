"""Exercise a: Grad-CAM by hand for several classes, and which class dominates which half of the photo."""

from __future__ import annotations

import contextlib
import copy
import itertools
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..cam import CAMMethod, normalize_cams, upsample_cams
from ..images import DATA_DIR, load_image
from ..models import LoadedModel
from ..receptive_field import CellCentres, cell_centres
from ._common import (
    STAGES,
    Checker,
    CheckResult,
    as_tensor,
    cached,
    elementwise_from,
    gradcam_from,
    largest_gradient_from,
    layer_gradients,
    max_difference,
    recorded_calls,
    smaller_input,
    training_copy,
    type_name,
)
from .exercise_e import made_up_image, made_up_model

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "CHECK_IMAGE_SIZE", "READY_MADE", "check_a"]

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
#: Largest pixel difference of a right answer's maps from the reference: float32 reorderings (einsum or a sum, sum or
#: mean of the gradients, another placement's rounding) give at most about 1e-6; a bfloat16 weighted sum 5e-3.
PRECISION_TOLERANCE = 1e-4
#: What the text asks not to use (it would do the exercise): every CAM method of utilities, grad_cam included,
#: runs CAMMethod.__call__, however it was imported.
READY_MADE = {"utilities' grad_cam (or another of its CAM methods)": (CAMMethod, "__call__")}
#: What the messages call cams_for_classes' and dominant_class's arguments.
_MAPS_ARGUMENTS = {2: "the list of class names"}
_DOMINANT_ARGUMENTS = {0: "the maps", 1: "the list of class names"}


def check_image() -> np.ndarray:
    """The two-object photo at :data:`CHECK_IMAGE_SIZE`."""
    photo = Image.fromarray(load_image(DATA_DIR / "cat_and_coffee.png"))
    return np.array(photo.resize(CHECK_IMAGE_SIZE[::-1], Image.Resampling.BILINEAR))  # writable, as torch prefers


def _centres(model: LoadedModel, image: np.ndarray, layer: str = "layer4") -> CellCentres | None:
    """The layer's receptive-field centres for this image's network input, or None where they cannot be found."""
    try:
        return cell_centres(model.network, layer, tuple(model.preprocess(image).shape[-2:]))
    except ValueError:
        return None


def _placed(raw: torch.Tensor, size: tuple[int, int], centres: CellCentres | None) -> list[torch.Tensor]:
    """The maps upsampled both ways the text accepts: cells spread evenly (upsample_cams) and at their centres (grad_cam)."""
    return [upsample_cams(raw, size)] + ([upsample_cams(raw, size, centres)] if centres is not None else [])


def _finish(raw: torch.Tensor, size: tuple[int, int], centres: CellCentres | None) -> list[torch.Tensor]:
    return [normalize_cams(placed) for placed in _placed(raw, size, centres)]


def _closest(cams: torch.Tensor, candidates: Sequence[torch.Tensor]) -> float:
    """The largest pixel difference to the nearest of several right renderings (the two placements)."""
    return min((max_difference(cams, candidate) for candidate in candidates), default=float("inf"))


def _references(model: LoadedModel) -> dict[str, list[torch.Tensor]]:
    """The right maps and the maps of each known mistake, (K, H, W) at the check image's size.

    Each is a list of renderings: one per placement of the cells the text accepts (where the mistake
    does not fix the upsampling itself). An answer is diagnosed by the rendering it matches.
    """
    image = check_image()
    indices = [model.class_index(name) for name in CLASSES]
    with torch.inference_mode():
        top = int(model.network(model.preprocess(image).unsqueeze(0).to(model.device)).argmax())
    scores: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "sum": lambda logits: logits[0, indices].sum(),
        "top": lambda logits: logits[0, top],
        "mean": lambda logits: logits[0].mean(),
    }
    for k, index in enumerate(indices):
        scores[f"logit{k}"] = lambda logits, index=index: logits[0, index]
        scores[f"probability{k}"] = lambda logits, index=index: logits.softmax(dim=1)[0, index]
        scores[f"log-probability{k}"] = lambda logits, index=index: logits.log_softmax(dim=1)[0, index]
        scores[f"position{k}"] = lambda logits, k=k: logits[0, k]
    # Only the class logits are needed at every stage (the wrong-layer mistakes); the other scores, at layer4.
    activations, gradients = layer_gradients(model, image, STAGES, scores, deep=[f"logit{k}" for k in range(len(CLASSES))])
    a4 = activations["layer4"]
    size = CHECK_IMAGE_SIZE
    centres = _centres(model, image)

    def per_class(kind: str, layer: str = "layer4", combine: Callable = gradcam_from) -> torch.Tensor:
        return torch.stack([combine(activations[layer], gradients[f"{kind}{k}"][layer]) for k in range(len(CLASSES))])

    def each(weights: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Maps from each class's layer4 gradient by another rule."""
        return torch.stack([weights(g) for g in logit4])

    logit4 = [gradients[f"logit{k}"]["layer4"] for k in range(len(CLASSES))]
    signed = per_class("logit")
    raw = signed.clamp(min=0)
    mean4 = gradients["mean"]["layer4"]
    maps = {
        "reference": _finish(raw, size, centres),
        "raw": _placed(raw, size, centres),  # not normalised: what a scale slip divides by
        "probabilities": _finish(per_class("probability").clamp(min=0), size, centres),
        "log-probabilities": _finish(per_class("log-probability").clamp(min=0), size, centres),
        "minus the mean logit": _finish(each(lambda g: gradcam_from(a4, g - mean4)).clamp(min=0), size, centres),
        "positions": _finish(per_class("position").clamp(min=0), size, centres),
        "sum": _finish(gradcam_from(a4, gradients["sum"]["layer4"]).clamp(min=0).expand(len(CLASSES), -1, -1), size, centres),
        "top": _finish(gradcam_from(a4, gradients["top"]["layer4"]).clamp(min=0).expand(len(CLASSES), -1, -1), size, centres),
        "accumulated": _finish(
            torch.stack([gradcam_from(a4, sum(logit4[: k + 1])) for k in range(len(CLASSES))]).clamp(min=0), size, centres
        ),
        "no ReLU": _finish(signed, size, centres),
        "abs": _finish(signed.abs(), size, centres),
        "ReLU after upsampling": [normalize_cams(placed.clamp(min=0)) for placed in _placed(signed, size, centres)],
        "ReLU per channel": _finish(each(lambda g: (g.mean(dim=(1, 2))[:, None, None] * a4).clamp(min=0).sum(0)), size, centres),
        "ReLU on gradients": _finish(each(lambda g: gradcam_from(a4, g.clamp(min=0))).clamp(min=0), size, centres),
        "one weight": _finish(each(lambda g: g.mean() * a4.sum(0)).clamp(min=0), size, centres),
        "gradients only": _finish(each(lambda g: g.mean(dim=0)).clamp(min=0), size, centres),
        "weights per cell": _finish(each(lambda g: (g.mean(dim=0) * a4).sum(0)).clamp(min=0), size, centres),
        "gradient times activation": _finish(each(lambda g: elementwise_from(a4, g)).clamp(min=0), size, centres),
        "max gradient": _finish(each(lambda g: largest_gradient_from(a4, g)).clamp(min=0), size, centres),
        "negative logit": _finish((-signed).clamp(min=0), size, centres),
        "nearest": [normalize_cams(F.interpolate(raw[:, None], size=size, mode="nearest")[:, 0])],
        "align_corners": [normalize_cams(F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=True)[:, 0])],
        "normalised first": [placed for placed in _placed(normalize_cams(raw), size, centres)],
    }
    for stage in STAGES[:-1]:
        maps[stage] = _finish(per_class("logit", stage).clamp(min=0), size, _centres(model, image, stage))
    # The photo given to the network in BGR order (a cv2 habit): the maps of another input.
    bgr = np.ascontiguousarray(image[..., ::-1])
    logit_scores = {f"logit{k}": scores[f"logit{k}"] for k in range(len(CLASSES))}
    bgr_activations, bgr_gradients = layer_gradients(model, bgr, ["layer4"], logit_scores)
    maps["BGR"] = _finish(torch.stack([gradcam_from(bgr_activations["layer4"], bgr_gradients[score]["layer4"])
                                       for score in logit_scores]).clamp(min=0), size, centres)
    return maps


_EARLY_RELU = ("the ReLU is applied too early (to the gradients, the weights or each weighted channel): average the raw "
               "gradients into weights, sum the weighted channels, then apply the ReLU once, to the sum.")
_CONTRAST = ("Grad-CAM backpropagates each class's own logit, logits[0, index], with nothing subtracted: a score that "
             "subtracts the other classes explains what tells this class apart from them, another map.")
_GRADIENTS_ONLY = ("the maps are made of the gradients alone (averaged over the channels), without the activations: Grad-CAM "
                   "weights each channel of the activation by the mean of its gradient over the cells and sums them, "
                   "(gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(dim=0).")
_MISTAKES = {
    "probabilities": "these maps use the gradients of the softmax probabilities; Grad-CAM backpropagates each class's "
    "logit, the score before the softmax (logits[0, index]).",
    "log-probabilities": "these maps use the gradients of the log-probabilities (log_softmax), which subtract the other "
    "classes' logits weighted by their probabilities. " + _CONTRAST,
    "minus the mean logit": "these maps explain each class's logit minus the mean of all logits. " + _CONTRAST,
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
    "abs": "the negative parts are turned positive (abs) instead of cut off: Grad-CAM's ReLU sets them to 0 "
    "(clamp(min=0)); negative values are evidence against the class.",
    "ReLU after upsampling": "the ReLU comes after upsampling: apply it to the weighted sum at layer4's resolution, "
    "then upsample (bilinear interpolation of a signed map spreads its negative cells into the positive ones).",
    "ReLU per channel": _EARLY_RELU,
    "ReLU on gradients": _EARLY_RELU,
    "one weight": "every channel gets the same weight (the mean of the whole gradient): each channel c needs its own "
    "weight, the mean of its gradient over the cells, gradient.mean(dim=(1, 2)) for a gradient (C, h, w).",
    "gradients only": _GRADIENTS_ONLY,
    "weights per cell": "the gradient is averaged over the channels, which gives a weight per cell: average it over the "
    "cells (the last two dimensions), which gives one weight per channel.",
    "gradient times activation": "each cell is weighted by its own gradient (gradient * activation, summed over the "
    "channels, which is HiResCAM): Grad-CAM weights each channel by its gradient averaged over the cells.",
    "max gradient": "each channel is weighted by the largest value of its gradient; Grad-CAM weights it by the mean "
    "of its gradient over the cells, gradient.mean(dim=(1, 2)).",
    "negative logit": "these maps explain the negative of each class's logit (evidence against the class, a "
    "counterfactual map): backpropagate the logit itself, logits[0, index].",
    "BGR": "these are the maps of the photo with its colour channels reversed (BGR, a cv2 habit): give the network the "
    "image as it is given, in RGB order (model.to_input(image) or model.preprocess(image)).",
    "nearest": "the maps are upsampled by nearest neighbour (blocky): upsample bilinearly, e.g. with upsample_cams.",
    "align_corners": "the maps are upsampled with align_corners=True, which pins the corner cells to the image's corner "
    "pixels: upsample with upsample_cams (bilinear, align_corners=False), which spreads the cells evenly over the pixels.",
    "normalised first": "the maps are normalised before upsampling: upsample first, then normalise each map, so each "
    "runs exactly from 0 to 1.",
    "layer1": "these are the CAMs of layer1; the exercise asks for layer4.",
    "layer2": "these are the CAMs of layer2; the exercise asks for layer4.",
    "layer3": "these are the CAMs of layer3; the exercise asks for layer4.",
}


_OTHER_ORDER = ("the maps are right but belong to other classes: keep them in the order of class_names (a set() or "
                "sorted() of the names loses it).")


def _reordered(cams: torch.Tensor, references: Sequence[torch.Tensor]) -> bool:
    """Whether the maps are right maps in another order (and not right in the given one)."""
    if cams.ndim != 3 or not bool(torch.isfinite(cams).all()) or _closest(cams, references) < TOLERANCE:
        return False
    comparable = normalize_cams(cams)
    return any(_closest(comparable, [right[list(order)] for right in references]) < TOLERANCE
               for order in itertools.permutations(range(cams.shape[0])) if list(order) != list(range(cams.shape[0])))


_OUTSIDE_RECORDER = ("{name} raised {kind}: the score has no gradient although the forward pass ran with gradients on. "
                     "A forward pass ran outside `with LayerRecorder(...)`: the forward pass must run inside the with "
                     "block, where the hooks are (the model's weights are frozen, so outside it the logits have no graph "
                     "to backpropagate); the same happens to a score computed from a detached tensor (LayerRecorder's "
                     "activations are detached copies). Run the one forward pass inside the with block and backpropagate "
                     "the logits it returned, each class's logit with retain_graph=True.")


_CENTRES_SIZE = ("{name} raised ValueError: {error} Here the centres are for the image's size, {size} "
                 "(image.shape[:2]), but the maps come from the network input: compute the centres for its size, "
                 "cell_centres(model.network, 'layer4', tuple(inputs.shape[-2:])). The two sizes agree only for an image "
                 "of the network input's size.")


@contextlib.contextmanager
def _graphless_forwards(network: torch.nn.Module) -> Iterator[list[bool]]:
    """Notes each forward pass of ``network`` that ran with gradients on yet returned logits without a graph.

    The course's networks have frozen weights: only inside LayerRecorder, whose hooks put the recorded layers into the
    graph, does a forward pass give logits to backpropagate. A global hook, so the network's own hooks stay as they are.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    found: list[bool] = []

    def note(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        if (module is network and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
                and isinstance(output, torch.Tensor) and not output.requires_grad):
            found.append(True)

    handle = torch.nn.modules.module.register_module_forward_hook(note)
    try:
        yield found
    finally:
        handle.remove()


def _call_maps(checker: Checker, cams_for_classes: Callable, model: LoadedModel, *args: Any, **options: Any) -> tuple[bool, Any]:
    """checker.call of cams_for_classes, an error from a forward pass outside LayerRecorder named as such."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    network = getattr(model, "network", None)
    with _graphless_forwards(network) as found:

        def explain(error: BaseException) -> str | None:
            __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
            if found and "does not require grad" in str(error):
                return _OUTSIDE_RECORDER.format(name=getattr(cams_for_classes, "__name__", "cams_for_classes"),
                                                kind=type(error).__name__)
            image_size = tuple(getattr(args[0], "shape", ())[:2]) if args else ()
            if (isinstance(error, ValueError) and "cells but the centres are for" in str(error)
                    and f"at a {image_size} input" in str(error)):
                return _CENTRES_SIZE.format(name=getattr(cams_for_classes, "__name__", "cams_for_classes"), error=error,
                                            size=image_size)
            return None

        return checker.call(cams_for_classes, model, *args, explain=explain, **options)


def _one_weight_or_gradients(model: LoadedModel, cams_for_classes: Callable, checker: Checker) -> str:
    """Tells "one weight for all channels" from "the gradients alone", whose maps agree where both are all zero.

    Where the gradient at layer4 is the same in every cell (layer4 -> average pooling -> fc), both are 0 for a
    class whose mean gradient is negative; for the class with the largest mean fc weight they differ.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    fc = getattr(model.network, "fc", None)
    if not isinstance(fc, torch.nn.Linear) or float(fc.weight.detach().mean(1).max()) <= 0:
        return _MISTAKES["one weight"]
    index = int(fc.weight.detach().mean(1).argmax())
    name = model.class_names[index]
    image = check_image()
    activations, gradients = layer_gradients(model, image, ["layer4"], {"c": lambda logits: logits[0, index]})
    g, a4 = gradients["c"]["layer4"], activations["layer4"]
    one_weight = _finish((g.mean() * a4.sum(0)).clamp(min=0)[None], CHECK_IMAGE_SIZE, _centres(model, image))
    ok, answer = _call_maps(checker, cams_for_classes, model, image, [name], described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok and isinstance(answer, torch.Tensor) else None
    if cams is None or tuple(cams.shape) != tuple(one_weight[0].shape) or not bool(torch.isfinite(cams).all()):
        return _MISTAKES["one weight"]
    if _closest(normalize_cams(cams), one_weight) < TOLERANCE:
        return _MISTAKES["one weight"]
    return _GRADIENTS_ONLY if _gradients_only(cams_for_classes, checker) else _ALL_ZERO


_ALL_ZERO = ("cams_for_classes returns maps that are 0 everywhere, for every class and network, also where Grad-CAM is "
             "not: nothing of the activations or the gradients reaches them (a torch.zeros(...) never filled in, or the "
             "computed maps not returned?). Return the normalised weighted sums themselves.")


def _gradients_only(cams_for_classes: Callable, checker: Checker) -> bool:
    """Whether, where its maps are all zero on the course's heads, cams_for_classes gives the gradients' maps on a head
    whose gradient differs from cell to cell (max pooling): there the gradients alone make a map, an empty function none.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    toy, image = max_pooling_model(), made_up_image()
    names = list(CLASSES)
    ok, answer = _call_maps(checker, cams_for_classes, toy, image, names, described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok and isinstance(answer, torch.Tensor) else None
    if cams is None or not bool(torch.isfinite(cams).all()):
        return True
    return float(cams.abs().max()) > 0


def _all_class_cells(model: LoadedModel) -> dict[str, Any]:
    """Every class's Grad-CAM at layer4 on the check photo, on the cell grid (fc's weights times the activation, which is
    Grad-CAM up to a factor where layer4 -> average pooling -> fc), or nothing where the head is not so."""
    fc = getattr(model.network, "fc", None)
    layer4 = getattr(model.network, "layer4", None)
    if not isinstance(fc, torch.nn.Linear) or layer4 is None:
        return {}
    image = check_image()
    outputs: dict[str, torch.Tensor] = {}
    handle = layer4.register_forward_hook(lambda _m, _i, out: outputs.__setitem__("A", out[0].detach().cpu()))
    try:
        with torch.inference_mode():
            model.network(model.preprocess(image).unsqueeze(0).to(model.device))
    finally:
        handle.remove()
    raw = torch.einsum("kc,chw->khw", fc.weight.detach().cpu().float(), outputs["A"].float()).clamp(min=0)
    return {"raw": raw, "cells": normalize_cams(raw), "centres": _centres(model, image)}


def _other_classes(model: LoadedModel, cams: torch.Tensor) -> str:
    """Where each map is the Grad-CAM of another class than its name's (an index slip): which, else ""."""
    classes = cached(model, "exercise a: all classes", lambda: _all_class_cells(model))
    if not classes or cams.ndim != 3 or cams.shape[0] != len(CLASSES):
        return ""
    cells = classes["cells"]
    pooled = normalize_cams(F.adaptive_avg_pool2d(cams[:, None].float(), tuple(cells.shape[-2:]))[:, 0])
    found = []
    for k in range(len(CLASSES)):
        nearest = (cells - pooled[k]).abs().flatten(1).amax(1).argsort()[:3].tolist()
        match = next((c for c in nearest if _closest(cams[k:k + 1], _finish(classes["raw"][c:c + 1], CHECK_IMAGE_SIZE,
                                                                              classes["centres"])) < TOLERANCE), None)
        if match is None:
            return ""
        found.append(match)
    own = [model.class_index(name) for name in CLASSES]
    if found == own:
        return ""
    pairs = "; ".join(f"the map for {name!r} (index {index}) is that of {model.class_names[c]!r} (index {c})"
                      for name, index, c in zip(CLASSES, own, found) if c != index)
    offsets = {c - index for c, index in zip(found, own)}
    shift = f": each index is off by {offsets.pop():+d}" if len(offsets) == 1 else ""
    return (f"the maps are the Grad-CAMs of other classes ({pairs}){shift}. Backpropagate the logit of each named class, "
            "logits[0, model.class_index(name)], with no offset.")


def _zeroed_where_small(cams: torch.Tensor, references: Sequence[torch.Tensor]) -> str:
    """The message for maps that are Grad-CAM's except for small values set to 0 (a threshold), or ""."""
    best = min(references, key=lambda candidate: max_difference(cams, candidate))
    if best.shape != cams.shape:
        return ""
    differ = (cams - best).abs() > 1e-5
    if not bool(differ.any()) or not bool((cams[differ] == 0).all()):
        return ""
    return (f"the maps are Grad-CAM's except where Grad-CAM is small: there yours are 0 (Grad-CAM up to "
            f"{float(best[differ].max()):.2g}). A threshold that zeroes small values (or cells) changes the map: the text "
            "asks for Grad-CAM's map as it is, normalised, with nothing cut off.")


def _diagnose_maps(cams: torch.Tensor, references: dict[str, list[torch.Tensor]], model: LoadedModel | None = None) -> str:
    """The most likely mistake behind maps that differ from the reference: the known mistake whose maps they are."""
    reference = references["reference"]
    for mistake, message in _MISTAKES.items():
        if _closest(cams, references[mistake]) < TOLERANCE:
            return message
    for order in ([1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]):
        if _closest(cams, [right[order] for right in reference]) < TOLERANCE:
            return _OTHER_ORDER
    spread = cams.flatten(1)
    if max_difference(cams, cams[:1].expand_as(cams)) < TOLERANCE and float(spread.amax() - spread.amin()) > 0:
        return ("all maps are identical although the classes differ: what tells them apart is each class's own "
                "gradient. Does every class get its own backward pass of its own logit (retain_graph=True, notebook 3), "
                "and do the channel weights come from that gradient alone (its mean over the cells, nothing of the "
                "activations, no softmax over channels)?")
    other = _other_classes(model, cams) if model is not None else ""
    if other:
        return other
    right = [k for k in range(len(CLASSES)) if _closest(cams[k], [r[k] for r in reference]) < TOLERANCE]
    if right and len(right) < len(CLASSES):
        wrong = [k for k in range(len(CLASSES)) if k not in right]
        best = min(reference, key=lambda candidate: max_difference(cams[wrong], candidate[wrong]))
        differences = (cams - best).abs()
        differences[right] = 0
        k = int(differences.flatten(1).amax(1).argmax())
        row, column = divmod(int(differences[k].argmax()), differences.shape[-1])
        return (f"the maps of {' and '.join(repr(CLASSES[i]) for i in right)} are right, but not that of "
                f"{' and '.join(repr(CLASSES[i]) for i in wrong)} (the largest difference, {float(differences[k, row, column]):.2f}, "
                f"is in the map of {CLASSES[k]!r} at row {row}, column {column}: yours {float(cams[k, row, column]):.2f}, "
                f"Grad-CAM {float(best[k, row, column]):.2f}). What differs between the classes? Each class needs its own "
                "backward pass of its own logit, nothing carried over from the class before, and the same steps; compare "
                f"that map with grad_cam(model, image, [{CLASSES[k]!r}]).maps step by step.")
    zeroed = _zeroed_where_small(cams, reference)
    if zeroed:
        return zeroed
    best = min(reference, key=lambda candidate: max_difference(cams, candidate))
    differences = (cams - best).abs()
    k = int(differences.flatten(1).amax(1).argmax())
    row, column = divmod(int(differences[k].argmax()), differences.shape[-1])
    return (f"the maps do not match Grad-CAM at layer4, nor any mistake the check knows: the largest difference, "
            f"{float(differences[k, row, column]):.2f}, is in the map of {CLASSES[k]!r} at row {row}, column {column} "
            f"(yours {float(cams[k, row, column]):.2f}, Grad-CAM {float(best[k, row, column]):.2f}). Compare your maps "
            "with grad_cam(model, image, class_names).maps in a cell of your own, step by step.")


def _edge_classes(model: LoadedModel) -> dict[str, Any]:
    """Two classes at the edges of the text on the check photo, with their right maps (K, H, W) in both placements.

    "all zero": a class with no positive evidence anywhere, whose Grad-CAM is 0 everywhere (max = min);
    "above 0": a class whose Grad-CAM is positive everywhere (its minimum above 0). Candidates come from
    the CAMs of all classes at layer4 (fc's weights times the activation; layer4 -> average pooling -> fc
    in both course models); each is kept only if its Grad-CAM, computed by gradients, is of that kind.
    """
    image = check_image()
    fc = getattr(model.network, "fc", None)
    if not isinstance(fc, torch.nn.Linear):
        return {"names": [], "kinds": [], "reference": []}
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
        raw = gradcam_from(activations["layer4"], gradients[kind]["layer4"]).clamp(min=0)
        if (kind == "all zero" and float(raw.max()) == 0) or (kind == "above 0" and float(raw.min()) > 0.05 * float(raw.max())):
            names.append(model.class_names[index])
            kinds.append(kind)
            maps.append(raw)
    reference = _finish(torch.stack(maps), CHECK_IMAGE_SIZE, _centres(model, image)) if maps else []
    return {"names": names, "kinds": kinds, "reference": reference}


#: A second photo, of odd height and width, and its classes.
#: Five classes: a set() of the names keeps their order only 1 time in 120 (the order of a set of str changes with
#: the process's hash seed), so an answer that loses the order cannot pass by chance.
SECOND_PHOTO, SECOND_SIZE, SECOND_CLASSES = "chelsea.jpg", (143, 215), ("tabby", "espresso", "goldfish", "tiger cat", "wallet")


def _second_photo() -> np.ndarray:
    photo = Image.fromarray(load_image(DATA_DIR / SECOND_PHOTO))
    return np.array(photo.resize(SECOND_SIZE[::-1], Image.Resampling.BILINEAR))


def _flipped_second_photo() -> np.ndarray:
    """The second photo mirrored left to right: another image of the same shape, so the same size and dtype."""
    return np.ascontiguousarray(_second_photo()[:, ::-1])


def _raw_gradcams(model: LoadedModel, image: np.ndarray, names: Sequence[str]) -> torch.Tensor:
    """Grad-CAM's cells at layer4 of each class in ``names`` (each from its logit), before the ReLU: (K, h, w)."""
    scores = {str(k): (lambda logits, index=model.class_index(name): logits[0, index]) for k, name in enumerate(names)}
    activations, gradients = layer_gradients(model, image, ["layer4"], scores)
    return torch.stack([gradcam_from(activations["layer4"], gradients[str(k)]["layer4"]) for k in range(len(names))])


def _second_reference(model: LoadedModel, names: Sequence[str] = SECOND_CLASSES, flipped: bool = False) -> list[torch.Tensor]:
    """Grad-CAM at layer4 of ``names`` on the second photo (``flipped``: mirrored left to right), (K, H, W) at its size,
    in both placements."""
    photo = _flipped_second_photo() if flipped else _second_photo()
    return _finish(_raw_gradcams(model, photo, names).clamp(min=0), SECOND_SIZE, _centres(model, photo))


def _check_second_photo(model: LoadedModel, cams_for_classes: Callable, checker: Checker, first: torch.Tensor | None = None) -> str:
    """The problem of cams_for_classes on a second photo of odd size, or "".

    ``first``: its maps of :data:`CLASSES` on the check photo. The second photo is also given :data:`CLASSES` again:
    a result kept from an earlier call with the same names (a cache keyed by them) shows there.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    photo = _second_photo()  # kept: mirrored in place later, the same array object (a cache keyed by id(image))
    ok, answer = _call_maps(checker, cams_for_classes, model, photo, list(SECOND_CLASSES), described=_MAPS_ARGUMENTS)
    if not ok:
        return ""  # the error is reported by the call
    passes = checker.forward_passes  # with 5 classes: passes in chunks of a few classes show here
    cams = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
    what = f"on a second photo of odd size, {SECOND_SIZE[0]}x{SECOND_SIZE[1]}, with classes {list(SECOND_CLASSES)}"
    if cams is None or tuple(cams.shape) != (len(SECOND_CLASSES), *SECOND_SIZE):
        shape = tuple(cams.shape) if cams is not None else type_name(answer)
        if cams is not None and cams.dim() == 3 and tuple(cams.shape[1:]) == SECOND_SIZE:
            return (f"{what}, cams_for_classes returned {shape[0]} maps for {len(SECOND_CLASSES)} class names, shape "
                    f"{shape}, expected {(len(SECOND_CLASSES), *SECOND_SIZE)}: return one map per item of class_names, "
                    "K = len(class_names), however many it has (no fixed number of classes, nothing from the notebook's "
                    "CLASSES).")
        return (f"{what}, cams_for_classes returned {shape}, expected {(len(SECOND_CLASSES), *SECOND_SIZE)}: take the "
                "size from the image you are given, image.shape[:2], nothing from the check's first photo or the notebook.")
    if not bool(torch.isfinite(cams).all()):
        return f"{what}, the maps contain NaN."
    reference = cached(model, "exercise a: second photo", lambda: _second_reference(model))
    if _reordered(cams, reference):
        return _OTHER_ORDER
    difference = _closest(normalize_cams(cams), reference)
    if difference >= TOLERANCE:
        return f"{what}, the maps differ from Grad-CAM at layer4 by up to {difference:.2f}."
    if passes > 1:
        return (f"{what}, cams_for_classes ran the network {passes} times for {len(SECOND_CLASSES)} classes: the text asks "
                "for one forward pass for all classes, however many. Run it once inside LayerRecorder, then "
                "backpropagate each class's logit through that one graph (retain_graph=True, notebook 3).")
    ok, again = _call_maps(checker, cams_for_classes, model, _second_photo(), list(CLASSES), described=_MAPS_ARGUMENTS)
    if not ok:
        return ""  # the error is reported by the call
    again = as_tensor(again) if isinstance(again, torch.Tensor) else None
    what = f"on a second photo, {SECOND_SIZE[0]}x{SECOND_SIZE[1]}, with the classes of the first call, {list(CLASSES)}"
    if again is not None and first is not None and again.shape == first.shape and torch.equal(again, first):
        return (f"{what}, cams_for_classes returns the maps it returned for the first photo: a result kept from an earlier "
                "call with the same class names (a cache keyed by the names) does not depend on the image. Compute the "
                "maps from the image you are given at each call.")
    if again is None or tuple(again.shape) != (len(CLASSES), *SECOND_SIZE) or not bool(torch.isfinite(again).all()):
        shape = tuple(again.shape) if again is not None else "no tensor"
        # Its maps of this photo were of the right size a call before: maps of another size are another image's.
        kept = (": maps of another image's size, though this photo's were right with other classes a call before, so a "
                "result kept from an earlier call (a cache keyed by id(image) gives them: Python gives a new array the "
                "id of one freed before, so this photo got an old photo's maps). Compute the maps from the image you "
                "are given at each call." if again is not None and again.dim() == 3 and tuple(again.shape[1:]) != SECOND_SIZE else ".")
        return f"{what}, cams_for_classes returned {shape}, expected finite maps {(len(CLASSES), *SECOND_SIZE)}{kept}"
    reference = cached(model, "exercise a: second photo, first classes", lambda: _second_reference(model, CLASSES))
    difference = _closest(normalize_cams(again), reference)
    if difference >= TOLERANCE:
        return (f"{what}, the maps differ from Grad-CAM at layer4 by up to {difference:.2f}: do the maps depend on "
                "something kept from an earlier call?")
    return _check_same_shape(model, cams_for_classes, checker, cams, photo)


def _mirrored_photo_problem(model: LoadedModel, cams_for_classes: Callable, checker: Checker, earlier: torch.Tensor,
                            what: str, kept: str, hint: str, image: np.ndarray | None = None) -> tuple[str, torch.Tensor | None]:
    """(the problem or "", the maps) of cams_for_classes with ``model`` on the mirrored second photo and
    :data:`SECOND_CLASSES`.

    ``earlier``: its maps of an earlier call; the same maps again finish the message with ``kept`` (a result kept
    from that call), a difference from Grad-CAM with ``hint`` (its ``{difference}`` filled in). ``image``: the
    mirrored photo to give (a new array if None).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = _flipped_second_photo() if image is None else image
    ok, answer = _call_maps(checker, cams_for_classes, model, image, list(SECOND_CLASSES), described=_MAPS_ARGUMENTS)
    if not ok:
        return "", None  # the error is reported by the call
    cams = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
    if cams is not None and cams.shape == earlier.shape and torch.equal(cams, earlier):
        return f"{what}, cams_for_classes returns the maps it returned {kept}", cams
    if cams is None or tuple(cams.shape) != (len(SECOND_CLASSES), *SECOND_SIZE) or not bool(torch.isfinite(cams).all()):
        shape = tuple(cams.shape) if cams is not None else type_name(answer)
        return f"{what}, cams_for_classes returned {shape}, expected finite maps {(len(SECOND_CLASSES), *SECOND_SIZE)}.", cams
    reference = cached(model, "exercise a: second photo mirrored", lambda: _second_reference(model, flipped=True))
    difference = _closest(normalize_cams(cams), reference)
    return ("" if difference < TOLERANCE else f"{what}, the maps differ from {hint.format(difference=difference)}"), cams


def _check_same_shape(model: LoadedModel, cams_for_classes: Callable, checker: Checker, earlier: torch.Tensor,
                      photo: np.ndarray) -> str:
    """The problem of cams_for_classes on another image of the second photo's shape (the photo mirrored), then with
    another network on that image, or "".

    ``earlier``: its maps of :data:`SECOND_CLASSES` on the second photo ``photo``. The same model, names, shape and
    dtype, other pixels: ``photo`` itself mirrored in place, so a result kept from an earlier call by the array
    (a cache keyed by id(image)) or by the image's shape shows here, told apart by a new array of those pixels;
    then the same image and names with another network: a cache not keyed by the model.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    photo[...] = photo[:, ::-1].copy()
    what = (f"on the second photo mirrored left to right (the check mirrored, in place, the array it gave before, "
            f"{SECOND_SIZE[0]}x{SECOND_SIZE[1]}), with the same classes {list(SECOND_CLASSES)}")
    hint = ("Grad-CAM at layer4 by up to {difference:.2f}: do the maps depend on something kept from an earlier call of "
            "the same image size?")
    problem, mirrored = _mirrored_photo_problem(model, cams_for_classes, checker, earlier, what, "", hint, image=photo)
    if mirrored is not None and mirrored.shape == earlier.shape and torch.equal(mirrored, earlier):
        # The old maps again: kept by the array object, or by its shape? A new array of the same pixels tells.
        _, again = _mirrored_photo_problem(model, cams_for_classes, checker, earlier, what, "", hint)
        if again is not None and again.shape == earlier.shape and torch.equal(again, earlier):
            return (f"{what}, and on a new array of those pixels, cams_for_classes returns the maps it returned for the "
                    "unmirrored photo: a result kept from an earlier call (a cache keyed by the image's shape or size, "
                    "not its pixels) is given for another image of that size. Compute the maps from the image you are "
                    "given at each call.")
        return (f"{what}, cams_for_classes returns the maps it returned for the unmirrored photo, though a new array "
                "of the same pixels gets the right maps: a result kept from an earlier call by the array object (a "
                "cache keyed by id(image); Python also gives a new array the id of one freed before, so another photo "
                "gets an old photo's maps). Compute the maps from the image you are given at each call.")
    if problem or mirrored is None:
        return problem
    other = cached(model, "exercise a: other network", lambda: _other_network(model))
    return _mirrored_photo_problem(
        other, cams_for_classes, checker, mirrored,
        "given another network (a copy of the model with fc's rows moved, so other maps for the same class names) on "
        f"the mirrored second photo with the classes {list(SECOND_CLASSES)}",
        "for the model: a result kept from an earlier call (a cache keyed by the image and the names, not the model). "
        "Compute the maps with the model you are given at each call.",
        "that network's Grad-CAM at layer4 by up to {difference:.2f}: does the function use the notebook's model instead "
        "of the one it is given?")[0]


def _other_network(model: LoadedModel) -> LoadedModel:
    """A copy of the model whose ``fc`` rows are moved down by one: another network with the same classes and shapes."""
    network = copy.deepcopy(model.network)
    with torch.no_grad():
        network.fc.weight.copy_(network.fc.weight.roll(1, dims=0))
    return replace(model, network=network)  # the same name: a cache keyed by the model's name is not keyed by the model


class _MaxPoolingHead(torch.nn.Module):
    """The made-up network of exercise e with the maximum over the cells instead of their mean, then a batch norm
    (eval mode: one scale per channel, as some heads have), before ``fc``.

    There the gradient at ``layer4`` differs from cell to cell, so Grad-CAM (one weight per channel, the mean of its
    gradient) and gradient x activation (HiResCAM) differ; after global average pooling they give the same map. And the
    mean gradient is no longer fc's weight times one factor for all channels: the original CAM's weights (fc.weight[k])
    give another map.
    """

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.layer3, self.layer4, self.fc = body.layer3, body.layer4, body.fc
        self.maxpool = torch.nn.AdaptiveMaxPool2d(1)
        channels = self.fc.in_features
        self.norm = torch.nn.BatchNorm1d(channels).eval()
        with torch.no_grad():
            self.norm.weight.copy_(torch.linspace(0.25, 2.0, channels).roll(channels // 3))
            self.norm.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(torch.flatten(self.maxpool(self.layer4(self.layer3(x))), 1)))


def max_pooling_model() -> LoadedModel:
    """:func:`made_up_model` with :class:`_MaxPoolingHead`: the same weights, the same preprocessing."""
    toy = made_up_model()  # a copy of its network: what a student's function does to this one stays here
    return replace(toy, network=_MaxPoolingHead(copy.deepcopy(toy.network)).eval(), name="a made-up network with max pooling")


class _ConstantMapNetwork(torch.nn.Module):
    """A tiny network with ResNet's stage names whose layer4 is 1 in every cell: each class's Grad-CAM is one value.

    layer4's weights are 0 and its bias 1; fc's weights are multiples of 1/8 and the input 32 x 32 (2 x 2 cells), so
    the map and its bilinear upsampling to 32 x 32 are exactly constant: max = min > 0.
    """

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.layer3 = torch.nn.AvgPool2d(4)
        self.layer4 = torch.nn.Conv2d(3, 5, kernel_size=4, stride=4)
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(5, 1000)
        with torch.no_grad():
            self.layer4.weight.zero_()
            self.layer4.bias.fill_(1.0)
            self.fc.weight.copy_(torch.round(torch.randn(1000, 5, generator=generator) * 8) / 8)
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.layer4(self.layer3(x))), 1))


def _check_constant_map(cams_for_classes: Callable, checker: Checker) -> str:
    """The problem of cams_for_classes where a class's Grad-CAM is the same positive value everywhere, or "".

    The text: never NaN. max = min there, with max > 0, so a guard for the all-zero map alone divides 0 by 0.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    toy = made_up_model()
    network = _ConstantMapNetwork().eval().requires_grad_(False)
    toy = replace(toy, network=network, name="a made-up network whose maps are constant")
    image = np.ascontiguousarray(made_up_image()[:32, :32])
    index = int(network.fc.weight.sum(1).argmax())  # the largest constant
    ok, answer = _call_maps(checker, cams_for_classes, toy, image, [toy.class_names[index]], described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok and isinstance(answer, torch.Tensor) else None
    if cams is None or cams.numel() == 0 or bool(torch.isfinite(cams).all()):
        return ""  # an error is reported by the call; a wrong form by the first call's checks
    return ("on a small network of the check's own where a class's Grad-CAM is the same positive value everywhere "
            "(max = min > 0), its map contains NaN: (x - min) / (max - min) divides 0 by 0 whenever max = min, not only "
            "when the map is all zero. Give every map with no range a case of its own (normalize_cams does).")


#: The raw range (max - min) the check gives one map on :func:`weak_class_model`: small but far above float32's
#: rounding, so only a guard or an epsilon of about this size changes the map.
WEAK_RANGE = 1e-4


def weak_class_model() -> tuple[LoadedModel, list[str]]:
    """:func:`made_up_model` with one class's ``fc`` row scaled so that its raw Grad-CAM on :func:`made_up_image` has a
    range of :data:`WEAK_RANGE`, and the class names to ask for: a class of ordinary range, then the weak one.

    Scaling a class's weights scales its gradient, hence its raw map: its normalised map is unchanged.
    """
    toy = made_up_model()
    network = copy.deepcopy(toy.network)
    image = made_up_image()
    indices = [toy.class_index(name) for name in CLASSES]
    raw = _raw_gradcams(toy, image, CLASSES).clamp(min=0)
    ranges = raw.flatten(1).amax(1) - raw.flatten(1).amin(1)
    strong, weak = (int(k) for k in ranges.argsort(descending=True)[:2])  # both above 0 on this network and image
    with torch.no_grad():
        network.fc.weight[indices[weak]] *= WEAK_RANGE / float(ranges[weak])
    return replace(toy, network=network, name="a made-up network with a weak class"), [CLASSES[strong], CLASSES[weak]]


def _check_weak_class(cams_for_classes: Callable, checker: Checker) -> str:
    """The problem of cams_for_classes where a class's raw Grad-CAM has a small range (:data:`WEAK_RANGE`), or "".

    The text: only a map with no range (max = min) is a case of its own; every other map is scaled to [0, 1].
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    toy, names = weak_class_model()
    image = made_up_image()
    ok, answer = _call_maps(checker, cams_for_classes, toy, image, list(names), described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok and isinstance(answer, torch.Tensor) else None
    size = tuple(image.shape[:2])
    if cams is None or tuple(cams.shape) != (len(names), *size) or not bool(torch.isfinite(cams).all()):
        return ""  # an error is reported by the call; a wrong form or NaN by the other checks
    right = _finish(_raw_gradcams(toy, image, names).clamp(min=0), size, _centres(toy, image))
    difference = _closest(cams[1:], [r[1:] for r in right])
    if difference < TOLERANCE or _closest(cams[:1], [r[:1] for r in right]) >= TOLERANCE:
        return ""  # right, or wrong on this network for the class of ordinary range too: not a matter of the range
    what = (f"on a small network of the check's own where the Grad-CAM of {names[1]!r} is weak (its range before "
            f"normalising, max - min, is only {WEAK_RANGE:g}, but above 0)")
    if float(cams[1].abs().max()) == 0:
        return (f"{what}, its map is all zero: a guard for 'no range' that is too wide (max - min compared with a "
                "threshold such as 1e-2, or an epsilon) sets weak maps to 0. Only a map with max = min is a case of its "
                "own; scale every other map to [0, 1] by its own range, however small (normalize_cams does).")
    return (f"{what}, its map differs from Grad-CAM by up to {difference:.2f} (it peaks at {float(cams[1].max()):.3g}): "
            "a threshold or an epsilon of the size of the range changes it. Divide by max - min itself, and give only a "
            "map with max = min a case of its own (normalize_cams does).")


#: Two ImageNet classes whose names differ only in case (a dog breed and a sweater): a lookup that ignores case mixes them.
CASE_PAIR = ("Cardigan", "cardigan")


def _case_pair_problem(cams_for_classes: Callable, checker: Checker) -> str:
    """The problem of cams_for_classes given two class names that differ only in case, or ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    toy, image = made_up_model(), made_up_image()
    # fc's two rows made positive, so that neither class's map is all zero (one that is could not tell the mistake).
    network = copy.deepcopy(toy.network)
    with torch.no_grad():
        for name in CASE_PAIR:
            network.fc.weight[toy.class_index(name)].abs_()
    toy = replace(toy, network=network)
    ok, answer = _call_maps(checker, cams_for_classes, toy, image, list(CASE_PAIR), described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok and isinstance(answer, torch.Tensor) else None
    size = tuple(image.shape[:2])
    if cams is None or tuple(cams.shape) != (len(CASE_PAIR), *size) or not bool(torch.isfinite(cams).all()):
        return ""  # an error or another form: the other calls judge those
    right = _finish(_raw_gradcams(toy, image, CASE_PAIR).clamp(min=0), size, _centres(toy, image))
    comparable = normalize_cams(cams)
    if _closest(comparable, right) < TOLERANCE:
        return ""
    # Case-blind lookups: both names give the same class (either one), or the two are swapped.
    mixed = [maps[list(order)] for maps in right for order in ((0, 0), (1, 1), (1, 0))]
    if _closest(comparable, mixed) >= TOLERANCE:
        return ""  # another mistake: the other calls name it
    return (f"given the classes {list(CASE_PAIR)} (a dog breed and a sweater: two ImageNet classes whose names differ only "
            "in case), on the check's made-up network, the maps are not those two classes' Grad-CAMs: is the class looked "
            "up without its case (name.lower())? Look each name up exactly as written, model.class_index(name).")


def _check_max_pooling_head(cams_for_classes: Callable, checker: Checker) -> str:
    """The problem of cams_for_classes on a network whose head takes the maximum over the cells, or "".

    Its list of class names gives one name twice: one map per item of class_names, the repeated one too.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    toy, image = max_pooling_model(), made_up_image()
    names = [*CLASSES, CLASSES[0]]
    ok, answer = _call_maps(checker, cams_for_classes, toy, image, list(names), described=_MAPS_ARGUMENTS)
    if not ok:
        return ""  # the error is reported by the call
    cams = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
    size = tuple(image.shape[:2])
    if cams is not None and cams.ndim == 3 and cams.shape[0] == len(set(names)) != len(names):
        return (f"given a class name twice, {names}, cams_for_classes returned {cams.shape[0]} maps for {len(names)} "
                "names: it drops repeated names. Return one map per item of class_names, K = len(class_names), in their "
                "order, a name given twice with its map twice: the caller pairs maps and names by position.")
    what = ("on a small network of the check's own whose head takes the maximum over the cells (not their mean), then "
            "a batch norm (one scale per channel) before fc")
    if cams is None or tuple(cams.shape) != (len(names), *size) or not bool(torch.isfinite(cams).all()):
        shape = tuple(cams.shape) if cams is not None else type_name(answer)
        return f"{what}, with classes {names}, cams_for_classes returned {shape}, expected finite maps {(len(names), *size)}."
    scores = {str(k): (lambda logits, index=toy.class_index(name): logits[0, index]) for k, name in enumerate(names)}
    activations, gradients = layer_gradients(toy, image, ["layer4"], scores)
    a4, centres = activations["layer4"], _centres(toy, image)
    each = [gradients[str(k)]["layer4"] for k in range(len(names))]

    def maps_by(combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        return _finish(torch.stack([combine(a4, g) for g in each]).clamp(min=0), size, centres)

    right = maps_by(gradcam_from)
    comparable = normalize_cams(cams)
    if _closest(comparable, right) < TOLERANCE:
        return ""
    if _closest(comparable, maps_by(elementwise_from)) < TOLERANCE:
        return (f"{what}, your maps are gradient x activation summed over the channels (HiResCAM), not Grad-CAM: at "
                "layer4 of the course's models the two agree only because global average pooling gives every cell the "
                "same gradient. Grad-CAM weights each channel by its gradient averaged over the cells, "
                "gradient.mean(dim=(1, 2)).")
    weights = toy.network.fc.weight.detach()
    original = _finish(torch.stack([torch.einsum("c,chw->hw", weights[toy.class_index(name)], a4) for name in names])
                       .clamp(min=0), size, centres)
    if _closest(comparable, original) < TOLERANCE:
        return (f"{what}, your maps weight each channel by fc's weight for the class (the original CAM, Zhou et al.), not "
                "by the gradient: the two agree up to one factor only where layer4 is followed by pooling and fc alone. "
                "Grad-CAM weights each channel by the mean of its gradient over the cells, gradient.mean(dim=(1, 2)).")
    if _closest(comparable, maps_by(largest_gradient_from)) < TOLERANCE:
        return (f"{what}, your maps weight each channel by the largest value of its gradient: at layer4 of the course's "
                "models every cell has the same gradient, so the largest value is the mean, but not on other heads. "
                "Grad-CAM weights each channel by the mean of its gradient over the cells, gradient.mean(dim=(1, 2)).")
    return (f"{what}, the maps differ from Grad-CAM by up to {_closest(comparable, right):.2f}: does your code assume "
            "something of the course's models (their head, their size) that the text does not give?")


def _one_class(model: LoadedModel, cams_for_classes: Callable, checker: Checker) -> tuple[str, torch.Tensor | None]:
    """cams_for_classes given a single class name: (the problem with its shape or "", its maps where they are well formed).

    The name is the class whose Grad-CAM is positive everywhere (of :func:`_edge_classes`), so that its map alone can be
    compared with the same map computed next to an all-zero one; else the first of :data:`CLASSES`.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    edges = cached(model, "exercise a: edges", lambda: _edge_classes(model))
    name = edges["names"][edges["kinds"].index("above 0")] if "above 0" in edges["kinds"] else CLASSES[0]
    ok, answer = _call_maps(checker, cams_for_classes, model, check_image(), [name], described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok and isinstance(answer, torch.Tensor) else None
    if not ok or cams is None:
        return "", None
    expected = (1, *CHECK_IMAGE_SIZE)
    if tuple(cams.shape) == expected:
        return "", cams
    if tuple(cams.shape) == CHECK_IMAGE_SIZE:
        return (f"given one class name, [{name!r}], cams_for_classes returns shape {tuple(cams.shape)}, not {expected}: "
                "the class dimension is dropped when K = 1 (a .squeeze() removes every dimension of size 1). Keep one map "
                "per class name, (K, H, W) for K = 1 too: remove only a batch dimension, with squeeze(0) or [0]."), None
    return (f"given one class name, [{name!r}], cams_for_classes returns shape {tuple(cams.shape)}, expected {expected}: "
            "one map per item of class_names, K = len(class_names), for a single name too."), None


def _check_edges(model: LoadedModel, cams_for_classes: Callable, checker: Checker, maps_right: bool,
                 alone: torch.Tensor | None = None) -> tuple[str, str, str]:
    """Problems (NaN, normalisation, values) of cams_for_classes on an all-zero map and a map above 0; "" where right.

    ``maps_right``: whether its maps on the check's classes are right. Only then is a map that should be all zero
    judged (a wrong computation gives that class a map with a range), and the values compared.
    ``alone``: its maps for the class above 0 given alone (:func:`_one_class`), or None: what the same map is without the
    all-zero one beside it tells a minimum or a guard shared by the maps from one missing.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    edges = cached(model, "exercise a: edges", lambda: _edge_classes(model))
    if not edges["names"]:
        return "", "", ""
    ok, answer = _call_maps(checker, cams_for_classes, model, check_image(), list(edges["names"]), described=_MAPS_ARGUMENTS)
    cams = as_tensor(answer) if ok else None
    if cams is None or tuple(cams.shape) != tuple(edges["reference"][0].shape):
        return "", "", ""  # an error is reported by the call; a wrong form by the first call's checks
    if _reordered(cams, edges["reference"]):
        return "", "", _OTHER_ORDER  # the maps of the classes are right, but swapped: not a normalisation problem
    nan = normalised = values = ""
    others = {kind: name for name, kind in zip(edges["names"], edges["kinds"])}
    for k, (name, kind) in enumerate(zip(edges["names"], edges["kinds"])):
        cam = cams[k]
        if not bool(torch.isfinite(cam).all()):
            nan = nan or (f"the map of {name!r} contains NaN: on this photo the class has no positive evidence, so its "
                          "Grad-CAM is 0 everywhere (max = min = 0) and (x - min) / (max - min) divides 0 by 0. A map "
                          "with no range stays all zero (normalize_cams does that).")
            continue
        low, high = float(cam.min()), float(cam.max())
        right_alone = (kind == "above 0" and alone is not None and bool(torch.isfinite(alone).all())
                       and _closest(alone, [r[k:k + 1] for r in edges["reference"]]) < TOLERANCE)
        if kind == "above 0" and low > 1e-3 and abs(high - 1) < 1e-3 and right_alone and "all zero" in others:
            normalised = normalised or (f"the map of {name!r} runs from {low:.2f} to 1 when {others['all zero']!r} (whose "
                                        "Grad-CAM is 0 everywhere) is in the same call, and from 0 to 1 when it is alone: "
                                        "the minimum subtracted is one shared by all the maps (the whole tensor's), not "
                                        "each map's own. Subtract each map's own minimum, then divide by its own range: "
                                        "(x - min) / (max - min) per map, e.g. cams.amin(dim=(1, 2), keepdim=True).")
        elif kind == "above 0" and low > 1e-3 and abs(high - 1) < 1e-3:
            normalised = normalised or (f"the map of {name!r} runs from {low:.2f} to 1, not from 0: its Grad-CAM is "
                                        "positive everywhere, and dividing by the maximum alone leaves the minimum above "
                                        "0. Subtract each map's own minimum, then divide by its range: (x - min) / (max - min).")
        elif kind == "above 0" and high == 0 and maps_right and right_alone and "all zero" in others:
            values = values or (f"the map of {name!r} is all zero when {others['all zero']!r} (whose Grad-CAM is 0 "
                                "everywhere) is in the same call, and right when it is alone: the all-zero map zeroes the "
                                "others. Normalise each map on its own: one map with no range (max = min) must not change "
                                "another map.")
        elif kind == "above 0" and high == 0 and maps_right:
            values = values or (f"the map of {name!r} is all zero, but its Grad-CAM at layer4 is positive everywhere on "
                                "this photo.")
        elif kind == "all zero" and high > 1e-6 and maps_right:
            normalised = normalised or (f"the map of {name!r} is all zero before normalising (no positive evidence) but "
                                        f"yours reaches {high:.2f}: a map with no range stays all zero.")
        elif abs(low) > 1e-4 or (abs(high - 1) > 1e-4 and high != 0):
            normalised = normalised or f"the map of {name!r} runs from {low:.3g} to {high:.3g}, not from 0 to 1."
        elif kind == "above 0" and maps_right and _closest(normalize_cams(cam), [r[k] for r in edges["reference"]]) >= TOLERANCE:
            values = values or (f"the map of {name!r} (positive everywhere on this photo) does not match Grad-CAM at "
                                "layer4.")
    return nan, normalised, values


def _scale_slip(cams: torch.Tensor, references: dict[str, list[torch.Tensor]], low: torch.Tensor, high: torch.Tensor) -> str:
    """What scales the maps, where each is the right map times a factor of its own (its minimum at 0); "" if they are not.

    Differential: the factors are measured against the right maps, then compared with what each slip gives: one
    factor for all maps, a division by one constant or by each map's sum instead of its range, an epsilon in the
    denominator. A factor of 1e-5 is a slip like any other: only a map whose Grad-CAM is all zero may stay all zero.
    """
    if bool((low.abs() > 1e-4 * high.abs().clamp(min=1e-12)).any()) or not bool((high > 0).all()):
        return ""
    for right, raw in zip(references["reference"], references["raw"]):
        peaks = right.flatten(1).amax(1)
        if not bool((peaks > 0).all()):
            continue
        factors = high / peaks
        if float((cams - right * factors[:, None, None]).abs().max()) > 1e-3 * float(factors.max()):
            continue
        shown = ", ".join(f"{float(h):.3g}" for h in high)
        ranges = raw.flatten(1).amax(1) - raw.flatten(1).amin(1)
        sums = raw.flatten(1).sum(1)
        divisors = ranges / factors  # what each raw map was divided by

        def same(values: torch.Tensor, tolerance: float) -> bool:
            return float(values.max() - values.min()) <= tolerance * float(values.abs().max())

        constant = (f"each map is the right map times {float(factors.mean()):.3g} (they peak at {shown}): the maps are "
                    "normalised, then scaled by one more constant factor. Return (x - min) / (max - min) itself, so each "
                    "map runs from exactly 0 to 1.")
        if same(factors, 1e-6):
            return constant
        if same(divisors, 1e-3) and abs(float(divisors.mean()) - 1) < 1e-3:
            return (f"the maps are not normalised: each map should run from 0 to 1, but these are Grad-CAM's raw maps "
                    f"(they peak at {shown}). Normalise each map by its own minimum and maximum, (x - min) / (max - min).")
        spread = lambda values: float(values.max() - values.min())  # noqa: E731
        if (same(divisors - ranges, 0.02) and float((divisors - ranges).min()) > 0
                and spread(divisors - ranges) < spread(divisors)):  # one epsilon added, not one constant
            return (f"each map should reach 1, but they peak at {shown}: an epsilon added to the denominator, "
                    "(x - min) / (max - min + eps), scales every map down, the more the smaller its range. Divide by "
                    "max - min, and give a map with no range (max = min) a case of its own: it stays all zero "
                    "(normalize_cams does both).")
        if same(divisors, 1e-3):
            return (f"the maps peak at {shown}: they are Grad-CAM's raw maps divided by one constant ({float(divisors.mean()):.3g}) "
                    "instead of each by its own range. Normalise each map: (x - min) / (max - min), so it runs from 0 to 1.")
        if same(divisors / sums, 0.05):
            return (f"the maps peak at {shown}: each map is divided by its sum (its total mass), which makes the masses "
                    "equal, not the peaks 1. Normalise each map by its own minimum and maximum: (x - min) / (max - min).")
        if same(factors, 1e-3):
            return constant
        return (f"the maps have Grad-CAM's shape but peak at {shown}, not 1: each is scaled by a factor of its own. "
                "Normalise each map by its own minimum and maximum: (x - min) / (max - min).")
    return ""


def _global_of_size(function: Callable, size: tuple[int, ...]) -> str:
    """The name of a global array of (H, W) ``size`` that the function's code reads (not one of its arguments), or ""."""
    code = getattr(function, "__code__", None)
    names: set[str] = set()
    stack = [code] if code is not None else []
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(const for const in current.co_consts if hasattr(const, "co_names"))
    arguments = set(code.co_varnames[:code.co_argcount]) if code is not None else set()
    for name in sorted(names - arguments):
        value = getattr(function, "__globals__", {}).get(name)
        if isinstance(value, np.ndarray) and value.ndim >= 2 and tuple(value.shape[:2]) == tuple(size):
            return name
    return ""


def _check_maps(checker: Checker, model: LoadedModel, cams_for_classes: Callable, ready_made: list[str]) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = check_image()
    height, width = CHECK_IMAGE_SIZE
    later = ["no NaN", "normalised", "Grad-CAM at layer4"]
    ok, answer = _call_maps(checker, cams_for_classes, model, image, list(CLASSES), described=_MAPS_ARGUMENTS)
    forward_passes = checker.forward_passes
    if not ok:
        checker.skip(later, "cams_for_classes did not return maps")
        return
    # Maps in the order of a class list the function reordered in place: that side effect is the one cause to name.
    reordered = 2 in checker.changed_arguments
    # A network in training mode, to see that cams_for_classes leaves it so (a tiny one, whose maps the mode does not change).
    checker.keeps_mode(cams_for_classes, training_copy(made_up_model()), made_up_image(), list(CLASSES))
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
    elif shape[1:] != CHECK_IMAGE_SIZE and (name := _global_of_size(cams_for_classes, shape[1:])):
        problem = (f"the maps are {shape[1]}x{shape[2]}, the size of the notebook's {name!r}, not of the image the check "
                   f"gave ({height}x{width}): cams_for_classes reads the notebook's variable {name!r} instead of its own "
                   "image argument. Inside the function use its own parameter, the image passed in.")
    elif shape[1:] != CHECK_IMAGE_SIZE:
        problem = f"the maps are {shape[1]}x{shape[2]}; upsample them to the image's size, {height}x{width} (image.shape[:2])."
    else:
        problem = ""
    alone = None
    if not problem:
        problem, alone = _one_class(model, cams_for_classes, checker)
    if not problem and answer.dtype != torch.float32:
        # Right values, wrong contract: judged here, and the values still judged below.
        dtype = str(answer.dtype).replace("torch.", "")
        problem = (f"cams_for_classes returns {dtype} maps; the text asks for float32, the dtype of the network's "
                   f"activations and gradients{' (float16 keeps only about 3 significant digits)' if dtype in ('float16', 'bfloat16') else ''}: "
                   "return the maps in float32, with no .half(), .double() or dtype= on the way.")
        checker.require("shape", False, problem)
    elif not problem and answer.requires_grad:
        # Right values, wrong contract: judged here, and the values still judged below.
        problem = ("cams_for_classes returns maps still attached to the autograd graph (requires_grad=True): the "
                   "caller's cams.numpy() fails and the whole network's graph stays in memory. Return them detached: "
                   ".detach() the result, or compute the weighted sum under torch.no_grad() after the backward passes.")
        checker.require("shape", False, problem)
    elif not checker.require("shape", not problem, problem):
        checker.skip(later, "fix the shape first")
        return
    # The same function on two classes at the edges of the text: an all-zero map, a map above 0.
    references = cached(model, "exercise a", lambda: _references(model))
    maps_right = bool(torch.isfinite(cams).all()) and _closest(normalize_cams(cams), references["reference"]) < TOLERANCE
    edge_nan, edge_normalised, edge_values = _check_edges(model, cams_for_classes, checker, maps_right, alone)
    if not edge_nan and bool(torch.isfinite(cams).all()):
        # Judged where each map is normalised on its own: a normalisation over all maps is named below, once.
        peaks, floors = cams.flatten(1).amax(1), cams.flatten(1).amin(1)
        if bool(((floors.abs() < 1e-4) & (((peaks - 1).abs() < 1e-4) | (peaks == 0))).all()):
            edge_nan = _check_constant_map(cams_for_classes, checker)
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
    each_normalised = bool(((low.abs() < 1e-4) & (((high - 1).abs() < 1e-4) | (high == 0))).all())
    if each_normalised:
        problem = edge_normalised
    elif abs(float(low.min())) < 1e-4 and abs(float(high.max()) - 1) < 1e-4 and not bool(((high - 1).abs() < 1e-4).all()):
        problem = ("normalise each map on its own, by its own minimum and maximum: your maps share one scale, so only "
                   f"the strongest reaches 1 (their maxima: {', '.join(f'{float(h):.2f}' for h in high)}).")
    elif _closest(cams, references["normalised first"]) < 1e-5:
        # Tight: with a minimum of 0, maps normalised before upsampling are the right maps scaled down a little,
        # as an epsilon in the denominator makes them; each has its own factor.
        problem = _MISTAKES["normalised first"]
    elif slip := _scale_slip(cams, references, low, high):
        problem = slip
    else:
        # Name the first map that is not normalised, with its own range (the ranges of all maps together can be 0 to 1).
        k = int((((low.abs() < 1e-4) & (((high - 1).abs() < 1e-4) | (high == 0))) == 0).nonzero()[0])
        problem = (f"each map should run from 0 to 1 (normalised by its own minimum and maximum); the map of "
                   f"{CLASSES[k]!r} runs from {float(low[k]):.3g} to {float(high[k]):.3g}.")
    if not problem and maps_right:
        problem = _check_weak_class(cams_for_classes, checker)
    checker.require("normalised", not problem, problem)
    # Compare the shapes of the maps whatever their scaling, so one mistake costs one check.
    comparable = normalize_cams(cams)
    closest = _closest(comparable, references["reference"])
    matches = closest < TOLERANCE
    problem = _check_second_photo(model, cams_for_classes, checker, cams) if matches else _diagnose_maps(comparable, references, model)
    if matches and not problem and closest > PRECISION_TOLERANCE:
        problem = _zeroed_where_small(comparable, references["reference"])
        if not problem:
            problem = (f"the maps are close to Grad-CAM's but differ by up to {closest:.2g}, more than float32 rounding gives "
                       "(at most about 1e-6): a step changes them slightly. A step in low precision (float16 or bfloat16, "
                       ".half(), autocast) does this, and so does an extra step on the map (a blur, a second resize); "
                       "compute in float32 all the way, with the steps of the text only.")
    if matches and not problem:
        problem = _check_max_pooling_head(cams_for_classes, checker)
    if matches and not problem:
        problem = _case_pair_problem(cams_for_classes, checker)
    if matches and not problem and forward_passes > 1:
        problem = (f"cams_for_classes ran the network {forward_passes} times for {len(CLASSES)} classes: the text asks "
                   "for one forward pass for all classes. Run it once inside LayerRecorder, then backpropagate each "
                   "class's logit through that one graph (retain_graph=True, notebook 3).")
    if problem == _MISTAKES["one weight"]:
        problem = _one_weight_or_gradients(model, cams_for_classes, checker)
    if reordered and problem == _OTHER_ORDER:
        problem = ""
    if reordered and edge_values == _OTHER_ORDER:
        edge_values = ""
    if ready_made:
        problem = (f"cams_for_classes calls {ready_made[0]}, which the text asks you not to use: it does the whole "
                   "computation for you. Write the steps yourself: LayerRecorder, one backward pass per class, weights, "
                   "weighted sum, ReLU, upsample_cams, normalize_cams (notebook 4).")
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
        values = part.flatten(-2).sum(-1) if reduce != "max" else part.flatten(-2).amax(-1)
        if reduce == "share":  # each class's mass in the half as a share of its own map's mass
            values = values / cams.flatten(-2).sum(-1).clamp(min=1e-12)
        if not values.numel() or part.shape[-1] == 0:
            answer[half] = None
            continue
        if pick == "alphabetical":  # the most mass, a tie broken by the names' alphabetical order
            answer[half] = max(sorted(names), key=lambda name: float(values[names.index(name)]))
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


def _generated_cases(seed: int = 31, count: int = 6) -> list[tuple[torch.Tensor, list[str]]]:
    """Seeded random maps at the edges of the text: masses below 1 that differ by less than 1 (any rounding merges
    them), and every third case signed maps whose masses are all negative (the largest mass is the one nearest 0)."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for i in range(count):
        classes, height, width = 3 + i % 3, 3 + i % 4, 4 + (3 * i) % 7
        cams = torch.rand(classes, height, width, generator=generator) * (0.8 / (height * width))
        if i % 3 == 2:
            cams = cams - 0.05
        cases.append((cams, [f"generated {i}, class {k}" for k in range(classes)]))
    return cases


def _large_cases(seed: int = 47) -> list[tuple[torch.Tensor, list[str]]]:
    """Seeded photo-sized maps whose half-masses are large: around 2e4 and apart by less than float16's spacing
    there (16), and above 65504, where float16 overflows to inf. Values are multiples of 1/4, so float32 sums them
    exactly in any order; a sum in float16 or bfloat16 ties them, and the first class wins."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    size = 400 + 16 * int(torch.randint(0, 3, (1,), generator=generator))  # a left mass of size * size / 8, a multiple of 16
    cams = torch.zeros(3, size, size)
    half = size // 2
    cams[:2, :, :half] = 0.25
    extra = 1 + int(torch.randint(0, 6, (1,), generator=generator))  # 1..6 more mass: within float16's spacing
    cams[1, 0, :4 * extra] += 0.25
    cams[2, :, half:] = 0.25
    cams[0, :, half:] = 0.25
    cams[2, 1, half:half + 4 * extra] += 0.25  # on the right the last class is ahead by as little
    cases.append((cams, ["near tie a", "near tie b", "near tie c"]))
    size = 600 + 2 * int(torch.randint(0, 20, (1,), generator=generator))
    half = size // 2
    big = torch.zeros(3, size, size)
    low, high = 0.5, 0.5 + 0.25 * (1 + int(torch.randint(0, 3, (1,), generator=generator)))
    big[0, :, :half] = low  # masses far above 65504: inf in float16
    big[2, :, :half] = high
    big[1, :, half:] = high
    big[0, :, half:] = low
    cases.append((big, ["huge x", "huge y", "huge z"]))
    return cases


def _rounded_masses(cams: torch.Tensor, names: list[str]) -> dict[str, str] | None:
    """dominant_class with each half's masses rounded to whole numbers before the argmax (defined on maps >= 0)."""
    if bool((cams < 0).any()):
        return None
    return {half: names[int(part.flatten(-2).sum(-1).round().argmax())] for half, part in _halves(cams).items()}


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
    share = torch.zeros(2, 4, 6)
    share[0] = 0.5  # everywhere: the most mass in the left half
    share[1, :, :3] = 0.4  # on the left half only: less mass there, but all of its own map's mass (the largest share)
    unsorted_tie = torch.zeros(3, 2, 6)
    unsorted_tie[0, :, :3] = 0.5  # a tie in the left half whose first name in class_names sorts last alphabetically
    unsorted_tie[1, :, :3] = 0.5
    unsorted_tie[2, :, 3:] = 0.2
    faint = torch.zeros(2, 8, 8)
    faint[0, :, :4] = 0.1  # faint over the whole left half: the most mass there (3.2), though every value is small
    faint[1, :2, :2] = 0.5  # bright on a few pixels: less mass (2.0)
    faint[1, :, 4:] = 0.15  # on the right the faint one is the other class (4.8 against 3.6)
    faint[0, :3, 4:6] = 0.6
    cases = [(plain, ["first", "second", "third"]), (peak, ["peak", "broad"]), (rows, ["top", "bottom"]), (graded, ["A", "B", "C"]),
             (tied, ["x", "tie one", "tie two"]), (share, ["everywhere", "left only"]), (unsorted_tie, ["zebra", "apple", "mango"]),
             (faint, ["faint wide", "bright small"])]
    return cases + _boundary_cases() + _generated_cases() + _large_cases() + _transform_cases()


#: The names of :func:`_transform_cases`' classes: an answer wrong on those maps alone weighs the values before the sum.
_TRANSFORM_NAMES = ("small peak", "low plateau", "nothing")


def _transform_cases() -> list[tuple[torch.Tensor, list[str]]]:
    """Maps where a small high peak and a broad low plateau have masses a few percent apart, the plateau ahead in one
    half and the peak in the other, at two scales: any per-pixel transform before the sum other than the identity (up
    to a factor and a constant) changes the answer in one half, a convex one (exp, a square, a softmax over the
    classes) where the plateau wins, a concave one (sigmoid above 0, log1p, a square root) where the peak wins."""
    cases = []
    for scale, plateau_left, plateau_right in ((1.0, 0.26, 0.24), (0.5, 0.13, 0.12), (4.0, 1.04, 0.96)):
        cams = torch.zeros(3, 8, 16)
        for start, level in ((0, plateau_left), (8, plateau_right)):
            cams[0, 1:3, start + 1:start + 3] = scale  # 4 pixels: mass 4 * scale
            cams[1, 4:8, start + 4:start + 8] = level  # 16 pixels: mass 16 * level, 4 % above or below
        cases.append((cams, list(_TRANSFORM_NAMES)))
    return cases


_DOMINANT_MISTAKES: list[tuple[Callable[[torch.Tensor, list[str]], Any], str]] = [
    (lambda c, n: {h: v for h, v in zip(("left", "right"), reversed(list(_dominant(c, n).values())))},
     "left and right are swapped: the left half is the columns [:W // 2] (the last dimension), the right half the rest."),
    (lambda c, n: _dominant(c, n, reduce="max"),
     "this compares the maps' peak values; compare their mass, the sum of each map over the half."),
    (lambda c, n: _dominant(c, n, by_rows=True),
     "the photo is split into top and bottom: split the columns (the last dimension, width) into left and right."),
    (lambda c, n: _dominant(c, n, reduce="share") if bool((c.flatten(1).sum(1) > 0).all()) else None,
     "this compares each class's share of its own map (its mass in the half divided by its whole map's mass); compare "
     "the mass itself, the sum of each map over the half: a map spread over the whole photo can outweigh one that lies "
     "in the half only."),
    (lambda c, n: _dominant(c, n, pick="alphabetical"),
     "a tie goes to the class that comes first in alphabetical order here: the tie rule is that the class that comes "
     "first in class_names wins (class_names ['zebra', 'apple', ...] with equal masses: 'zebra'). Keep class_names' "
     "order (no sorted() of the names), e.g. class_names[int(values.argmax())]."),
    (lambda c, n: _dominant(c, n, pick="min"), "this picks the class with the least mass in each half; pick the most."),
    (_rounded_masses,
     "the masses are rounded to whole numbers before they are compared: masses that differ by less than 1 become ties "
     "(the first class wins them). Compare the sums themselves, unrounded (no int(), round() or .long())."),
    *[(lambda c, n, cut=cut: _dominant(torch.where(c < cut, torch.zeros_like(c), c), n),
       f"values below a cut-off ({cut:g} here) are set to 0 before the masses are summed: weak values count too. The mass "
       "is the sum of the whole map over the half, every value included (no threshold).") for cut in (0.1, 0.2, 0.3, 0.5)],
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
    (lambda c, n: {"left": _dominant(c, n)["left"], "right": _dominant(c, n, split="odd middle left")["right"]},
     "for an odd width the middle column is in neither half: the right half starts at (W + 1) // 2 here. The left half "
     "is the columns [:W // 2], the right half the rest, [W // 2:], middle column included."),
    (lambda c, n: {"left": _dominant(c, n)["left"], "right": _dominant(c, n, split="one less")["right"]},
     "the right half starts one column early, so the halves overlap: the right half is the columns [W // 2:]."),
]


def _diagnose_dominant(cases: list[tuple[torch.Tensor, list[str]]], answers: list[Any], what: str = "made-up maps") -> str:
    """The message for dominant_class's answers on some cases, empty if all are right."""
    for index, (answer, (_, names)) in enumerate(zip(answers, cases)):
        if isinstance(answer, dict) and {"left", "right"} < set(answer):
            extra = sorted((key for key in answer if key not in ("left", "right")), key=repr)
            return (f"dominant_class should return a dict with exactly the keys 'left' and 'right'; it has the extra keys "
                    f"{extra!r}: leave them out.")
        if not isinstance(answer, dict) or sorted(map(str, answer)) != ["left", "right"]:
            shown = repr(answer) if len(repr(answer)) < 80 else type_name(answer)
            return f"dominant_class should return a dict {{'left': name, 'right': name}}; got {shown}."
        strangers = [value for value in answer.values() if value not in names]
        recased = [name for name in names if isinstance(strangers[0], str) and name != strangers[0]
                   and name.strip().lower() == strangers[0].strip().lower()] if strangers else []
        if recased:
            return (f"dominant_class returned {strangers[0]!r}, the class name {recased[0]!r} in another case or with other "
                    "spaces: return the items of class_names exactly as they are given (no .lower(), .title() or .strip()).")
        earlier = [k for k in range(index) if strangers and strangers[0] in cases[k][1]]
        if strangers and earlier and all(value in cases[earlier[0]][1] for value in answer.values()):
            return (f"dominant_class returned {strangers[0]!r}, which is not among the class_names it was given "
                    f"({', '.join(names)}) but was among those of an earlier call ({', '.join(cases[earlier[0]][1])}): a "
                    "result kept from an earlier call (a cache, e.g. keyed by id(cams): Python gives a new tensor the "
                    "id of one freed before). Compute the answer from the maps and names of each call.")
        if strangers and not all(isinstance(value, int) for value in answer.values()):
            return (f"dominant_class returned {strangers[0]!r}, which is not among the class_names it was given "
                    f"({', '.join(names)}): use the class_names argument, not the notebook's CLASSES.")
    for wrong, message in _DOMINANT_MISTAKES:
        # A mistake that is undefined on a case (None: a share of an all-zero map) is judged on the other cases.
        expected = [wrong(cams, names) for cams, names in cases]
        if any(e is not None for e in expected) and all(e is None or answer == e for answer, e in zip(answers, expected)):
            return message
    for answer, (cams, names) in zip(answers, cases):
        expected = _dominant(cams, names)
        if answer != expected:
            wrong_half = next(half for half in ("left", "right") if answer.get(half) != expected[half])
            masses = _halves(cams)[wrong_half].flatten(-2).sum(-1)
            top = float(masses.double().abs().max())
            if top > 2048 and answer.get(wrong_half) in names:
                return (f"on made-up maps of shape {tuple(cams.shape)} (K, H, W), whose masses in the {wrong_half} half are "
                        f"large ({float(masses.min()):.6g} to {float(masses.max()):.6g}), dominant_class returned {answer}, "
                        f"expected {expected}: the masses lose precision, as in float16 or bfloat16 (float16 has spacing "
                        "16 around 2e4 and overflows to inf above 65504, a tie the first class wins). Sum the maps in "
                        "float32, the dtype they come in (no .half(), float16 or bfloat16).")
            chosen = answer.get(wrong_half)
            if chosen in names and float(masses.max()) != 0:
                gap = float(masses.max() - masses[names.index(chosen)]) / abs(float(masses.max()))
                if 0 < gap < 1e-2 and names.index(chosen) < names.index(expected[wrong_half]):
                    return (f"on {what} of shape {tuple(cams.shape)} (K, H, W), dominant_class returned {answer}, "
                            f"expected {expected}: in the {wrong_half} half {chosen!r} has {float(masses[names.index(chosen)]):.6g} "
                            f"and {expected[wrong_half]!r} {float(masses.max()):.6g}, a relative difference of {gap:.2g}, "
                            "treated as a tie. Only exactly equal masses tie: compare the sums with no tolerance "
                            "(no isclose, rtol or rounding).")
            if tuple(names) == _TRANSFORM_NAMES:
                masses = {half: [float(m) for m in part.flatten(-2).sum(-1)[:2]] for half, part in _halves(cams).items()}
                return (f"on made-up maps of shape {tuple(cams.shape)} (K, H, W) where a small peak (4 pixels at "
                        f"{float(cams[0].max()):g}) and a broad low plateau (16 pixels) have masses a few percent apart "
                        f"(left: {masses['left'][0]:g} against {masses['left'][1]:g}, right: {masses['right'][0]:g} "
                        f"against {masses['right'][1]:g}), dominant_class returned {answer}, expected {expected}: the "
                        "values seem to be changed before they are summed (each pixel weighed by some function of its "
                        "value, e.g. exp, sigmoid, a power or a softmax over the classes). The mass is the plain sum of "
                        "the map's values over the half, cams[k, :, :W // 2].sum().")
            negative = (f" (every mass in the {wrong_half} half is negative here, from {float(masses.min()):.3g} to "
                        f"{float(masses.max()):.3g}: the largest is the one nearest 0, and no mass needs to be above 0 to win)"
                        if bool((masses < 0).all()) else "")
            return (f"on {what} of shape {tuple(cams.shape)} (K, H, W), dominant_class returned {answer}, expected "
                    f"{expected}: for each half (left = the columns [:W // 2]) the class with the largest sum of its map"
                    f"{negative}; a tie goes to the class that comes first in class_names.")
        if not all(type(value) is str for value in answer.values()):
            numpy_names = any(isinstance(value, np.str_) for value in answer.values())
            return (f"dominant_class's values should be the items of class_names themselves, plain str; got "
                    f"{', '.join(type_name(value) for value in answer.values())}"
                    + (" (a NumPy array of the names gives numpy.str_, which prints as np.str_('...')): index class_names "
                       "itself, class_names[int(index)]." if numpy_names else "."))
    return ""


def _half_masses(cams: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each class's mass in each half of real maps, in float64."""
    return {half: part.flatten(-2).double().sum(-1) for half, part in _halves(cams).items()}


def _near_top(answer: Any, cams: torch.Tensor) -> bool:
    """Whether dominant_class's answer on real maps (of :data:`CLASSES`) names, in each half, a class within rounding
    of the largest mass: real maps can be near ties (a random network's especially)."""
    return isinstance(answer, dict) and sorted(answer) == ["left", "right"] and all(
        answer[half] in CLASSES and float(mass[CLASSES.index(answer[half])]) >= float(mass.max()) * (1 - 1e-4) - 1e-6
        for half, mass in _half_masses(cams).items())


def _check_dominant(checker: Checker, model: LoadedModel, dominant_class: Callable) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    cases = _synthetic_cases()
    answers = []
    for cams, names in cases:
        ok, answer = checker.call(dominant_class, cams.clone(), list(names), described=_DOMINANT_ARGUMENTS)
        if not ok:
            checker.skip(["dominant on made-up maps", "dominant on real maps"], "dominant_class failed on made-up maps")
            return
        answers.append(answer)
    problem = _diagnose_dominant(cases, answers)
    made_up_failed = not checker.require("dominant on made-up maps", not problem, problem)
    real = cached(model, "exercise a", lambda: _references(model))["reference"][0]
    given = real.clone()  # kept: mirrored in place later, the same tensor object (a cache keyed by id(cams))
    ok, answer = checker.call(dominant_class, given, list(CLASSES), described=_DOMINANT_ARGUMENTS)
    if ok:
        if _near_top(answer, real):
            problem = ""
        elif made_up_failed:  # the cause is named above; say only that the real maps are affected too
            problem = f"on the Grad-CAM maps of the pair photo too, dominant_class returns {answer!r}."
        else:
            problem = _diagnose_dominant([(real, list(CLASSES))], [answer], what="Grad-CAM maps of the pair photo")
        if not problem:
            # The same names and shape, the maps mirrored: a result kept by names or shape shows here.
            # Given in the first call's tensor, mirrored in place: a result kept by the tensor object shows too.
            mirrored = real.flip(-1)
            given.copy_(mirrored)
            ok, again = checker.call(dominant_class, given, list(CLASSES), described=_DOMINANT_ARGUMENTS)
            expected = {half: CLASSES[int(mass.argmax())] for half, mass in _half_masses(mirrored).items()}
            if ok and not _near_top(again, mirrored):
                kept = ("the class names or the maps' shape")
                if again == answer and not made_up_failed:
                    # Kept by the tensor object, or by names or shape? A new tensor of the same maps tells.
                    fresh = checker.quiet_call(dominant_class, mirrored.clone(), list(CLASSES))
                    kept = ("the tensor object, id(cams): the same tensor changed in place, or a new one that takes the id "
                            "of one freed before, gets an old answer" if _near_top(fresh, mirrored) else kept)
                problem = (f"on the pair photo's maps mirrored left to right (the check mirrored, in place, the tensor it "
                           f"gave before: the same class names and shape, other maps), dominant_class returns {again!r}, "
                           f"expected {expected!r}"
                           + (f": the answer it gave for the unmirrored maps, a result kept from an earlier call (a cache "
                              f"keyed by {kept}). Compute it from the maps at each call."
                              if again == answer and not made_up_failed else
                              ", the same answer as for the unmirrored maps." if again == answer else "."))
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
    with recorded_calls(READY_MADE) as ready_made:
        _check_maps(checker, model, cams_for_classes, ready_made)
    _check_dominant(checker, model, dominant_class)
    return checker.finish()
