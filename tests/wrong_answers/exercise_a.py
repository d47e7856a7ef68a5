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
    elif normalise == "by hand":  # each map by its own range, with no case for a map with no range
        low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
        maps = (maps - low) / (high - low)
    elif normalise == "max only":  # divided by the maximum, guarded against 0, without subtracting the minimum
        maps = maps / maps.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)
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


def _split_at(boundary):
    """dominant_class splitting the columns at ``boundary(width, cams)`` instead of width // 2."""

    def dominant_class(cams, class_names):
        cut = boundary(cams.shape[-1], cams)
        return {"left": class_names[int(cams[..., :cut].sum(dim=(-2, -1)).argmax())],
                "right": class_names[int(cams[..., cut:].sum(dim=(-2, -1)).argmax())]}

    return _dominant(dominant_class)


def _dominant_in_place(cams, class_names):
    cams.clamp_(max=0.5)  # caps the maps in place, the caller's too
    left, right = _sums(cams)
    return {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())]}


_dominant_in_place.__name__ = "dominant_class"

def _fixed_size(model, image, class_names):
    """Maps upsampled to one fixed size (the size of the photo the student tried first), not image.shape[:2]."""
    maps = hand_cams(model, image, class_names, size=None, normalise="none")
    return normalize_cams(upsample_cams(maps, (176, 352)))


WRONG_A = [
    WrongAnswer("a", "the size hard-coded", r"on a second photo of odd size, 143x215.*take the size from the image you are given",
                lambda m, s: {"cams_for_classes": _fixed_size}),
    WrongAnswer("a", "hand-written (x - min) / (max - min) without a guard", r"the map of '[^']+' contains NaN.*no positive evidence.*divides 0 by 0",
                _cams(normalise="by hand")),
    WrongAnswer("a", "normalised by the maximum alone", r"runs from 0\.\d\d to 1, not from 0.*dividing by the maximum alone",
                _cams(normalise="max only")),
    WrongAnswer("a", "a NumPy array returned", r"should return a torch tensor \(K, H, W\); it returns a NumPy array \(float32\), e\.g\. torch\.from_numpy",
                lambda m, s: {"cams_for_classes": lambda model, image, names: hand_cams(model, image, names).numpy()}),
    WrongAnswer("a", "the network left in training mode", r"left the network in training mode.*The check put it back",
                lambda m, s: {"cams_for_classes": lambda model, image, names: (model.network.train(), hand_cams(model, image, names))[1]}),
    WrongAnswer("a", "dominant_class: the middle column of an odd width on the left ((W + 1) // 2)", r"for an odd width the middle column went to the left half",
                _split_at(lambda width, cams: (width + 1) // 2)),
    WrongAnswer("a", "dominant_class: one column too many on the left", r"left half has one column too many",
                _split_at(lambda width, cams: width // 2 + 1)),
    WrongAnswer("a", "dominant_class: one column short on the left", r"left half is one column short",
                _split_at(lambda width, cams: width // 2 - 1)),
    WrongAnswer("a", "dominant_class: width taken from cams.shape[1] (the height)", r"split at half the height \(cams\.shape\[1\]",
                _split_at(lambda width, cams: cams.shape[1] // 2)),
    WrongAnswer("a", "dominant_class: a tie goes to the last class", r"a tie goes to the class that comes first in class_names",
                _dominant(lambda cams, names: {half: names[len(names) - 1 - int(part.sum(dim=(-2, -1)).flip(0).argmax())]
                                               for half, part in (("left", cams[..., : cams.shape[-1] // 2]), ("right", cams[..., cams.shape[-1] // 2 :]))})),
    WrongAnswer("a", "dominant_class: a set of names", r"should return a dict \{'left': name, 'right': name\}; got \{",
                _dominant(lambda cams, names: {names[int(_sums(cams)[0].argmax())], names[int(_sums(cams)[1].argmax())]})),
    WrongAnswer("a", "dominant_class: sums the maps in place", r"dominant_class changed the tensor it was given as argument 1, in place",
                _dominant(_dominant_in_place)),

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
