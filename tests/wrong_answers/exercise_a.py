"""Wrong answers to exercise a: hand-written Grad-CAM, and which class dominates which half."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from utilities import LayerRecorder, LoadedModel, normalize_cams, upsample_cams

from .answers import WrongAnswer

__all__ = ["WRONG_A", "hand_cams"]


def hand_cams(
    model: LoadedModel,
    image: Any,
    class_names: list[str],
    *,
    layer: str = "layer4",
    score: str = "logit",
    relu: str = "sum",
    size: str = "image",
    upsample: str = "bilinear",
    normalise: str = "each",
    accumulate: bool = False,
    retain_graph: bool = True,
    no_grad: bool = False,
) -> torch.Tensor:
    """Grad-CAM as a student writes it, with one switch per mistake (the defaults are right)."""
    inputs = model.to_input(image)
    with LayerRecorder(model.network, layer) as recorder, torch.set_grad_enabled(not no_grad):
        logits = model.network(inputs)
    activation = recorder.activations[layer][0]
    indices = [model.class_index(name) for name in class_names]
    if score == "top":
        indices = [int(logits.argmax())] * len(indices)
    if score == "positions":
        indices = list(range(len(indices)))
    total = None
    maps = []
    for index in indices:
        if score == "sum":
            target = logits[0, [model.class_index(name) for name in class_names]].sum()
        elif score == "probability":
            target = logits.softmax(dim=1)[0, index]
        else:
            target = logits[0, index]
        target.backward(retain_graph=retain_graph)
        gradient = recorder.gradients[layer][0]
        total = gradient if total is None else total + gradient
        if accumulate:  # like reading a .grad that is never zeroed
            gradient = total
        if relu == "gradients":
            gradient = gradient.clamp(min=0)
        weighted = gradient.mean(dim=(1, 2))[:, None, None] * activation
        if relu == "channels":
            weighted = weighted.clamp(min=0)
        cam = weighted.sum(dim=0)
        maps.append(cam if relu == "none" else cam.clamp(min=0))
    maps = torch.stack(maps).detach()
    height, width = image.shape[:2]
    target_size = {"image": (height, width), "input": tuple(inputs.shape[-2:]), "swapped": (width, height)}.get(size)
    if normalise == "first":
        maps = normalize_cams(maps)
    if target_size is not None:
        mode = {"bilinear": "bilinear", "nearest": "nearest"}[upsample]
        maps = F.interpolate(maps[:, None], size=target_size, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))[:, 0]
    if normalise == "each":
        maps = normalize_cams(maps)
    elif normalise == "global":
        maps = (maps - maps.min()) / (maps.max() - maps.min())
    return maps


def _cams(**mistake: Any):
    def cams_for_classes(model, image, class_names):
        return hand_cams(model, image, class_names, **mistake)

    return lambda model, solution: {"cams_for_classes": cams_for_classes}


def _dominant(function):
    return lambda model, solution: {"dominant_class": function}


def _sums(cams, by_rows=False):
    size = cams.shape[-2] if by_rows else cams.shape[-1]
    if by_rows:
        return cams[..., : size // 2, :].sum(dim=(-2, -1)), cams[..., size // 2 :, :].sum(dim=(-2, -1))
    return cams[..., : size // 2].sum(dim=(-2, -1)), cams[..., size // 2 :].sum(dim=(-2, -1))


WRONG_A = [
    WrongAnswer("a", "maps upsampled to the network input's size", r"the network input's size; upsample them to the image's size", _cams(size="input")),
    WrongAnswer("a", "maps not upsampled", r"upsample them to the image's size", _cams(size=None)),
    WrongAnswer("a", "height and width swapped", r"height and width swapped", _cams(size="swapped")),
    WrongAnswer("a", "a batch dimension left", r"batch dimension", lambda m, s: {"cams_for_classes": lambda model, image, names: hand_cams(model, image, names)[None]}),
    WrongAnswer("a", "a list of maps", r"list of maps.*torch\.stack", lambda m, s: {"cams_for_classes": lambda model, image, names: list(hand_cams(model, image, names))}),
    WrongAnswer("a", "0/0 in the normalisation", r"contain NaN", lambda m, s: {"cams_for_classes": lambda model, image, names: hand_cams(model, image, names) * torch.tensor(float("nan"))}),
    WrongAnswer("a", "no normalisation", r"each map should run from 0 to 1", _cams(normalise="none")),
    WrongAnswer("a", "one normalisation over all maps", r"normalise each map on its own", _cams(normalise="global")),
    WrongAnswer("a", "normalised before upsampling", r"normalised before upsampling", _cams(normalise="first")),
    WrongAnswer("a", "layer3 instead of layer4", r"CAMs of layer3", _cams(layer="layer3")),
    WrongAnswer("a", "layer2 instead of layer4", r"CAMs of layer2", _cams(layer="layer2")),
    WrongAnswer("a", "maps in the wrong order", r"belong to other classes", lambda m, s: {"cams_for_classes": lambda model, image, names: hand_cams(model, image, names[::-1])}),
    WrongAnswer("a", "class positions instead of class indices", r"classes 0, 1, 2 \(the positions", _cams(score="positions")),
    WrongAnswer("a", "one backward pass of the sum of the logits", r"all maps are identical.*sum of the classes' logits", _cams(score="sum")),
    WrongAnswer("a", "the top class's map for every class", r"all maps are identical: each is the map of the model's top class", _cams(score="top")),
    WrongAnswer("a", "gradients accumulated over classes", r"the first map is right.*add up", _cams(accumulate=True)),
    WrongAnswer("a", "probabilities instead of logits", r"softmax probabilities.*logit", _cams(score="probability")),
    WrongAnswer("a", "ReLU on each weighted channel before the sum", r"ReLU is applied too early", _cams(relu="channels")),
    WrongAnswer("a", "no ReLU", r"negative parts are not cut off", _cams(relu="none")),
    WrongAnswer("a", "ReLU on the gradients", r"ReLU is applied too early \(to the gradients", _cams(relu="gradients")),
    WrongAnswer("a", "nearest-neighbour upsampling", r"nearest neighbour", _cams(upsample="nearest")),
    WrongAnswer("a", "no retain_graph", r"retain_graph=True.*notebook 3", _cams(retain_graph=False)),
    WrongAnswer("a", "forward pass under torch.no_grad", r"outside torch\.no_grad", _cams(no_grad=True)),
    WrongAnswer("a", "dominant_class: halves swapped", r"left and right are swapped",
                _dominant(lambda cams, names: {"left": names[int(_sums(cams)[1].argmax())], "right": names[int(_sums(cams)[0].argmax())]})),
    WrongAnswer("a", "dominant_class: peak instead of mass", r"peak values.*mass",
                _dominant(lambda cams, names: {"left": names[int(cams[..., : cams.shape[-1] // 2].amax(dim=(-2, -1)).argmax())],
                                               "right": names[int(cams[..., cams.shape[-1] // 2 :].amax(dim=(-2, -1)).argmax())]})),
    WrongAnswer("a", "dominant_class: top and bottom instead of left and right", r"split the columns",
                _dominant(lambda cams, names: {"left": names[int(_sums(cams, True)[0].argmax())], "right": names[int(_sums(cams, True)[1].argmax())]})),
    WrongAnswer("a", "dominant_class: argmin", r"least mass",
                _dominant(lambda cams, names: {"left": names[int(_sums(cams)[0].argmin())], "right": names[int(_sums(cams)[1].argmin())]})),
    WrongAnswer("a", "dominant_class: indices instead of names", r"return class names, not their positions",
                _dominant(lambda cams, names: {"left": int(_sums(cams)[0].argmax()), "right": int(_sums(cams)[1].argmax())})),
    WrongAnswer("a", "dominant_class: the notebook's CLASSES", r"not among the class_names.*notebook's CLASSES",
                _dominant(lambda cams, names: {"left": "Egyptian cat", "right": "espresso"})),
    WrongAnswer("a", "dominant_class: a tuple instead of a dict", r"should return a dict",
                _dominant(lambda cams, names: (names[int(_sums(cams)[0].argmax())], names[int(_sums(cams)[1].argmax())]))),
]
