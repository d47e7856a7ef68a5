"""Wrong answers to exercise a: hand-written Grad-CAM, and which class dominates which half."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from utilities import LayerRecorder, LoadedModel, grad_cam, normalize_cams, remove_all_hooks, upsample_cams
from utilities.receptive_field import cell_centres

from .answers import RightAnswer, WrongAnswer

__all__ = ["RIGHT_A", "WRONG_A", "hand_cams"]


def hand_cams(
    model: LoadedModel,
    image: Any,
    class_names: list[str],
    *,
    layer: str = "layer4",
    score: str = "logit",
    relu: str = "sum",
    weights: str = "mean",
    size: str = "image",
    upsample: str = "bilinear",
    placement: str = "stretch",
    normalise: str = "each",
    accumulate: bool = False,
    retain_graph: bool = True,
    no_grad: bool = False,
    gradient_of: str = "recorder",
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
        elif score == "minus mean":  # "how much more than the average class"
            target = logits[0, index] - logits[0].mean()
        elif score == "negative":  # evidence against the class
            target = -logits[0, index]
        else:
            target = logits[0, index]
        if gradient_of == "activations":  # the gradient with respect to the recorder's (detached) activation
            gradient = torch.autograd.grad(target, recorder.activations[layer], retain_graph=retain_graph)[0][0]
        else:
            target.backward(retain_graph=retain_graph)
            gradient = recorder.gradients[layer][0]
        total = gradient if total is None else total + gradient
        if accumulate:  # like reading a .grad that is never zeroed
            gradient = total
        if relu == "gradients":
            gradient = gradient.clamp(min=0)
        if weights == "gradients only":  # the gradients alone, averaged over the channels: the activations never used
            cam = gradient.mean(dim=0)
        else:
            channel_weights = {"mean": lambda g: g.mean(dim=(1, 2))[:, None, None], "one": lambda g: g.mean()}[weights](gradient)
            weighted = channel_weights * activation
            if relu == "channels":
                weighted = weighted.clamp(min=0)
            cam = weighted.sum(dim=0)
        maps.append(cam.abs() if relu == "abs" else cam if relu in ("none", "after upsampling") else cam.clamp(min=0))
    maps = torch.stack(maps).detach()
    height, width = image.shape[:2]
    target_size = {"image": (height, width), "input": tuple(inputs.shape[-2:]), "swapped": (width, height)}.get(size)
    if normalise == "first":
        maps = normalize_cams(maps)
    if target_size is not None:
        if placement in ("centres", "image centres"):  # each cell at its receptive-field centre, as grad_cam draws it
            # "image centres": the centres computed for the image's size instead of the network input's
            centres_for = target_size if placement == "image centres" else tuple(inputs.shape[-2:])
            maps = upsample_cams(maps, target_size, cell_centres(model.network, layer, centres_for))
        else:
            mode = {"bilinear": "bilinear", "nearest": "nearest", "align_corners": "bilinear"}[upsample]
            options = {"align_corners": upsample == "align_corners"} if mode == "bilinear" else {}
            maps = F.interpolate(maps[:, None], size=target_size, mode=mode, **options)[:, 0]
    if relu == "after upsampling":
        maps = maps.clamp(min=0)
    if normalise == "each":
        maps = normalize_cams(maps)
    elif normalise == "global":
        maps = (maps - maps.min()) / (maps.max() - maps.min())
    elif normalise == "by hand":  # each map by its own range, with no case for a map with no range
        low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
        maps = (maps - low) / (high - low)
    elif normalise == "epsilon":  # the range guarded by an epsilon instead of a case of its own
        low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
        maps = (maps - low) / (high - low + 1e-3)
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

def _sorted_names(model, image, class_names):
    """Sorts the caller's list of class names in place ("to be tidy"), and explains them in that order."""
    class_names.sort()
    return hand_cams(model, image, class_names)


def _evaluated(model, image, class_names):
    """Puts the network in eval mode "to be safe", and leaves it there."""
    model.network.eval()
    return hand_cams(model, image, class_names)


def _evaluated_and_put_back(model, image, class_names):
    """Eval mode for the computation, the caller's mode afterwards: right."""
    was = model.network.training
    model.network.eval()
    try:
        return hand_cams(model, image, class_names)
    finally:
        model.network.train(was)


def _clean_hooks_first(model, image, class_names):
    """Removes every hook first, against hooks piling up (notebook 2), and with them the caller's."""
    remove_all_hooks(model.network)
    return hand_cams(model, image, class_names)


def _leaves_a_hook(model, image, class_names):
    """A bare forward hook, never removed, beside the recorder."""
    model.network.layer4.register_forward_hook(lambda module, inputs, output: None)
    return hand_cams(model, image, class_names)


def _library(model, image, class_names):
    """The library's Grad-CAM, which the text asks not to use."""
    return grad_cam(model, image, class_names).maps


def _copied_names(model, image, class_names):
    """Works on a copy of the list it sorts, and keeps the caller's order: right."""
    order = sorted(range(len(class_names)), key=lambda k: class_names[k])
    names = [class_names[k] for k in order]
    maps = hand_cams(model, image, names)
    return maps[torch.argsort(torch.tensor(order))]


def _set_of_names(model, image, class_names):
    """De-duplicates the class names with a set, which loses their order.

    A set's order changes with Python's hash seed; the order here is a fixed stand-in for it (by digest),
    not the caller's order for the check's classes.
    """
    names = sorted(set(class_names), key=lambda name: hashlib.md5(name.encode()).hexdigest())
    return hand_cams(model, image, names)


def _forward_per_class(model, image, class_names):
    """One forward pass per class (each class's map from a graph of its own): right maps, the network run K times."""
    return torch.cat([hand_cams(model, image, [name]) for name in class_names])


def _maps_from(combine):
    """cams_for_classes as in notebook 4, each class's map made by ``combine(gradient, activation)`` at layer4."""

    def cams_for_classes(model, image, class_names):
        with LayerRecorder(model.network, "layer4") as recorder:
            logits = model.network(model.to_input(image))
        maps = []
        for name in class_names:
            logits[0, model.class_index(name)].backward(retain_graph=True)
            maps.append(combine(recorder.gradients["layer4"][0], recorder.activations["layer4"][0]).clamp(min=0))
        return normalize_cams(upsample_cams(torch.stack(maps), image.shape[:2]))

    return cams_for_classes


# Each cell weighted by its own gradient (HiResCAM): the same map as Grad-CAM where the head averages the cells.
_gradient_times_activation = _maps_from(lambda gradient, activation: (gradient * activation).sum(dim=0))


def _still_in_graph(model, image, class_names):
    """The right maps, still attached to the autograd graph (the weights multiply the recorded gradient's graph)."""
    maps = hand_cams(model, image, class_names)
    return maps + 0 * model.to_input(image).requires_grad_(True).sum()


def _numpy_names(cams, class_names):
    """The names as numpy.str_, taken from a NumPy array of class_names."""
    names = np.array(class_names)
    return {"left": names[int(_sums(cams)[0].argmax())], "right": names[int(_sums(cams)[1].argmax())]}


def _share_of_own_map(cams, class_names):
    """The class whose map has the largest share of its own mass in the half (mass in the half / whole mass)."""
    total = cams.sum(dim=(-2, -1)).clamp(min=1e-12)
    left, right = _sums(cams)
    return {"left": class_names[int((left / total).argmax())], "right": class_names[int((right / total).argmax())]}


def _fixed_size(model, image, class_names):
    """Maps upsampled to one fixed size (the size of the photo the student tried first), not image.shape[:2]."""
    maps = hand_cams(model, image, class_names, size=None, normalise="none")
    return normalize_cams(upsample_cams(maps, (176, 352)))


WRONG_A = [
    # side effects on what the function is given
    WrongAnswer("a", "the caller's list of class names sorted in place",
                r"changed the list of class names it was given as argument 3 \(class_names\), in place \(\['espresso', 'goldfish', "
                r"'Egyptian cat'\] became .*Work on a copy \(list\(class_names\)\)",
                lambda m, s: {"cams_for_classes": _sorted_names}),
    WrongAnswer("a", "model.network.eval() called and left so", r"switched the network to eval mode \(model\.network\.eval\(\)\) and "
                r"left it there.*The check put the network back in training mode",
                lambda m, s: {"cams_for_classes": _evaluated}),
    WrongAnswer("a", "every hook removed first (remove_all_hooks)", r"removed hooks that were on the network before the call.*"
                r"The check put them back\.",
                lambda m, s: {"cams_for_classes": _clean_hooks_first}),
    WrongAnswer("a", "a bare hook left beside the recorder", r"left 1 hook on the network after a call.*The check removed it\.",
                lambda m, s: {"cams_for_classes": _leaves_a_hook}),
    # what the text forbids
    WrongAnswer("a", "utilities' grad_cam instead of the steps", r"calls utilities' grad_cam .*which the text asks you not to use",
                lambda m, s: {"cams_for_classes": _library}),
    # mistakes with a message of their own (a differential diagnosis against the maps each mistake gives)
    WrongAnswer("a", "an epsilon in the normalisation's denominator", r"they peak at 0\.9\d+.*an epsilon added to the denominator",
                _cams(normalise="epsilon")),
    WrongAnswer("a", "gradients taken with respect to the recorder's detached activations",
                r"not part of the graph: LayerRecorder's activations are detached copies", _cams(gradient_of="activations")),
    WrongAnswer("a", "each logit minus the mean logit as the score", r"each class's logit minus the mean of all logits",
                _cams(score="minus mean")),
    WrongAnswer("a", "abs instead of the ReLU", r"turned positive \(abs\) instead of cut off", _cams(relu="abs")),
    WrongAnswer("a", "upsampled with align_corners=True", r"upsampled with align_corners=True", _cams(upsample="align_corners")),
    WrongAnswer("a", "the ReLU after upsampling", r"the ReLU comes after upsampling", _cams(relu="after upsampling")),
    WrongAnswer("a", "one weight for all channels", r"every channel gets the same weight", _cams(weights="one")),
    WrongAnswer("a", "the gradients alone, activations never used", r"gradients alone \(averaged over the channels\), without the activations",
                _cams(weights="gradients only")),
    WrongAnswer("a", "class names de-duplicated with set(), order lost", r"belong to other classes: keep them in the order of class_names "
                r"\(a set\(\)", lambda m, s: {"cams_for_classes": _set_of_names}),
    WrongAnswer("a", "dominant_class: share of its own map instead of mass", r"share of its own map.*compare the mass itself",
                _dominant(_share_of_own_map)),
    WrongAnswer("a", "only the first 4 class names kept", r"on a second photo of odd size, 143x215.*returned 4 maps for 5 class names.*"
                r"one map per item of class_names", lambda m, s: {"cams_for_classes": lambda model, image, names: hand_cams(model, image, names[:4])}),
    WrongAnswer("a", "the size hard-coded", r"on a second photo of odd size, 143x215.*take the size from the image you are given",
                lambda m, s: {"cams_for_classes": _fixed_size}),
    WrongAnswer("a", "hand-written (x - min) / (max - min) without a guard", r"the map of '[^']+' contains NaN.*no positive evidence.*divides 0 by 0",
                _cams(normalise="by hand")),
    WrongAnswer("a", "normalised by the maximum alone", r"runs from 0\.\d\d to 1, not from 0.*dividing by the maximum alone",
                _cams(normalise="max only")),
    WrongAnswer("a", "a NumPy array returned", r"should return a torch tensor \(K, H, W\); it returns a NumPy array \(float32\), e\.g\. torch\.from_numpy",
                lambda m, s: {"cams_for_classes": lambda model, image, names: hand_cams(model, image, names).numpy()}),
    WrongAnswer("a", "the network left in training mode", r"left the network in training mode.*The check put the network back in eval mode",
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
    WrongAnswer("a", "dominant_class: sums the maps in place", r"dominant_class changed the maps it was given as argument 1 \(cams\), in place \(its values\)",
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
    WrongAnswer("a", "forward pass under torch.no_grad", r"the forward pass ran under torch\.no_grad\(\)", _cams(no_grad=True)),
    WrongAnswer("a", "dominant_class: sigmoid of each value before the sum", r"a small peak \(4 pixels at 1\) and a broad low plateau.*"
                r"changed before they are summed.*The mass is the plain sum of the map's values",
                _dominant(lambda cams, names: {"left": names[int(_sums(torch.sigmoid(cams))[0].argmax())],
                                               "right": names[int(_sums(torch.sigmoid(cams))[1].argmax())]})),
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

WRONG_A += [
    # cases the text now decides (a fresh student's round 4): each passed the checks before
    WrongAnswer("a", "one forward pass per class", r"ran the network (3 times for 3|5 times for 5) classes: the text asks for one forward pass",
                lambda m, s: {"cams_for_classes": _forward_per_class}),
    WrongAnswer("a", "gradient x activation (HiResCAM) instead of mean-gradient weights",
                r"whose head takes the maximum over the cells.*gradient x activation summed over the channels \(HiResCAM\)",
                lambda m, s: {"cams_for_classes": _gradient_times_activation}),
    WrongAnswer("a", "the maps returned still attached to the autograd graph", r"still attached to the autograd graph \(requires_grad=True\)",
                lambda m, s: {"cams_for_classes": _still_in_graph}),
    WrongAnswer("a", "dominant_class: names as numpy.str_", r"plain str; got a str_, a str_ \(a NumPy array of the names gives numpy\.str_",
                _dominant(_numpy_names)),
]

def _weighted(weights):
    """cams_for_classes whose channel weights come from ``weights(gradient, activation)`` instead of the mean gradient."""
    combine = lambda gradient, activation: (weights(gradient, activation)[:, None, None] * activation).sum(dim=0)  # noqa: E731
    return lambda model, solution: {"cams_for_classes": _maps_from(combine)}


def _bgr(model, image, class_names):
    """The photo given to the network in BGR order."""
    return hand_cams(model, np.ascontiguousarray(image[..., ::-1]), class_names)


WRONG_A += [
    # a fresh student's round 5: each failed, with a message that did not name the cause
    WrongAnswer("a", "channel weights: the largest gradient value", r"weight each channel by the largest value of its gradient",
                _weighted(lambda g, a: g.amax(dim=(1, 2)))),
    WrongAnswer("a", "channel weights: the mean of the activations", r"all maps are identical.*channel weights come from that gradient alone",
                _weighted(lambda g, a: a.mean(dim=(1, 2)))),
    WrongAnswer("a", "the photo given to the network in BGR order", r"colour channels reversed \(BGR", lambda m, s: {"cams_for_classes": _bgr}),
    WrongAnswer("a", "the negative logit backpropagated", r"negative of each class's logit", _cams(score="negative")),
]

WRONG_A += [
    # a fresh student's round 5: passed the check before
    WrongAnswer("a", "maps returned as float16", r"returns float16 maps; the text asks for float32",
                lambda m, s: {"cams_for_classes": lambda model, image, class_names: hand_cams(model, image, class_names).half()}),
]

RIGHT_A = [
    RightAnswer("a", "cells placed at their receptive-field centres (cell_centres), as grad_cam draws them",
                _cams(placement="centres")),
    RightAnswer("a", "eval mode for the computation, the caller's mode put back", lambda m, s: {"cams_for_classes": _evaluated_and_put_back}),
    RightAnswer("a", "class names sorted on a copy, maps put back in the caller's order", lambda m, s: {"cams_for_classes": _copied_names}),
]


def _deduplicated_names(model, image, class_names):
    """Drops repeated class names (dict.fromkeys keeps the order): fewer maps than names."""
    return hand_cams(model, image, list(dict.fromkeys(class_names)))


def _fresh_centres(model, image, class_names):
    """Cells at their receptive-field centres, computed afresh (the cache cleared): cell_centres runs the network once."""
    cell_centres.cache_clear()
    return hand_cams(model, image, class_names, placement="centres")


WRONG_A += [
    # a fresh student's round 6: passed the check before
    WrongAnswer("a", "repeated class names dropped", r"given a class name twice.*drops repeated names",
                lambda m, s: {"cams_for_classes": _deduplicated_names}),
    # round 6: a message that did not name the cause
    WrongAnswer("a", "dominant_class: names lower-cased", r"in another case or with other spaces",
                _dominant(lambda cams, names: {"left": names[int(_sums(cams)[0].argmax())].lower(),
                                               "right": names[int(_sums(cams)[1].argmax())].lower()})),
]

RIGHT_A += [
    RightAnswer("a", "receptive-field centres computed afresh by cell_centres (its own forward pass is not the student's)",
                lambda m, s: {"cams_for_classes": _fresh_centres}),
]


def _outside_recorder(model, image, class_names):
    """The forward pass re-run for each class after the LayerRecorder block: no hooks there, so no graph."""
    inputs = model.to_input(image)
    with LayerRecorder(model.network, "layer4") as recorder:
        model.network(inputs)
    maps = []
    for name in class_names:
        logits = model.network(inputs)
        logits[0, model.class_index(name)].backward()
        gradient, activation = recorder.gradients["layer4"][0], recorder.activations["layer4"][0]
        maps.append((gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(0).clamp(min=0))
    return normalize_cams(upsample_cams(torch.stack(maps).detach(), tuple(image.shape[:2])))


def _alphabetical_ties(cams, class_names):
    """The most mass per half, a tie broken by the names' alphabetical order (argmax over sorted(names))."""
    left, right = _sums(cams)
    names = list(class_names)
    order = sorted(names)
    return {half: order[int(np.argmax([float(sums[names.index(name)]) for name in order]))]
            for half, sums in (("left", left), ("right", right))}


WRONG_A += [
    # a fresh student's round 8: passed the check before
    WrongAnswer("a", "dominant_class: ties broken alphabetically", r"tie rule is that the class that comes first in class_names wins",
                _dominant(_alphabetical_ties)),
    # round 8: a message that did not name the cause
    WrongAnswer("a", "forward pass outside the LayerRecorder block", r"forward pass must run inside the with block, where the hooks are",
                lambda m, s: {"cams_for_classes": _outside_recorder}),
]


def _scaled(factor):
    """Right maps times a constant factor (a unit slip after normalising)."""
    return lambda model, solution: {"cams_for_classes": lambda model, image, class_names: hand_cams(model, image, class_names) * factor}


def _by_sum(model, image, class_names):
    """Each upsampled map divided by its sum (its mass) instead of normalised by its range."""
    maps = hand_cams(model, image, class_names, normalise="none")
    return maps / maps.sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def _squeezed(model, image, class_names):
    """.squeeze() at the end: (H, W) for a single class."""
    return hand_cams(model, image, class_names).squeeze()


_KEPT_MAPS: dict = {}


def _cached_by_names(model, image, class_names):
    """Maps kept by the tuple of class names: another photo with the same names gets the first photo's maps."""
    key = tuple(class_names)
    if key not in _KEPT_MAPS:
        _KEPT_MAPS[key] = hand_cams(model, image, class_names)
    return _KEPT_MAPS[key].clone()


def _rounded_masses(cams, class_names):
    """Each half's masses rounded to whole numbers before the argmax."""
    left, right = _sums(cams)
    return {"left": class_names[int(left.round().argmax())], "right": class_names[int(right.round().argmax())]}


def _best_from_zero(cams, class_names):
    """The best mass starts at 0: a class must have a mass above 0 to win (wrong where every mass is negative)."""
    answer = {}
    for half, sums in zip(("left", "right"), _sums(cams)):
        best, name = 0.0, class_names[0]
        for k, value in enumerate(sums.tolist()):
            if value > best:
                best, name = value, class_names[k]
        answer[half] = name
    return answer


def _guard_for_zero_only(model, image, class_names):
    """(x - min) / (max - min) with a case for an all-zero map (max == 0) only: a constant positive map is 0 / 0."""
    maps = hand_cams(model, image, class_names, normalise="none")
    low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
    return torch.where(high == 0, torch.zeros_like(maps), (maps - low) / (high - low))


def _global_minimum(model, image, class_names):
    """The smallest value of all the maps subtracted, each map divided by its own maximum after that."""
    maps = hand_cams(model, image, class_names, normalise="none")
    maps = maps - maps.min()
    return maps / maps.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def _zeroed_if_any_empty(model, image, class_names):
    """Every map zeroed as soon as one map is all zero (a guard on the whole tensor)."""
    maps = hand_cams(model, image, class_names)
    return torch.zeros_like(maps) if bool((maps.flatten(1).amax(1) == 0).any()) else maps


def _next_index(model, image, class_names):
    """Each class's index plus 1 (an off-by-one): the maps of the next classes."""
    inputs = model.to_input(image)
    with LayerRecorder(model.network, "layer4") as recorder:
        logits = model.network(inputs)
    maps = []
    for name in class_names:
        logits[0, model.class_index(name) + 1].backward(retain_graph=True)
        gradient, activation = recorder.gradients["layer4"][0], recorder.activations["layer4"][0]
        maps.append((gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(0).clamp(min=0))
    return normalize_cams(upsample_cams(torch.stack(maps).detach(), tuple(image.shape[:2])))


WRONG_A += [
    # a fresh student's round 10: passed the check before
    WrongAnswer("a", "normalised maps times 1e-5 (a unit slip)", r"each map is the right map times 1e-05", _scaled(1e-5)),
    WrongAnswer("a", "each map divided by its sum, not normalised", r"each map is divided by its sum",
                lambda m, s: {"cams_for_classes": _by_sum}),
    WrongAnswer("a", ".squeeze() drops K = 1", r"the class dimension is dropped when K = 1",
                lambda m, s: {"cams_for_classes": _squeezed}),
    WrongAnswer("a", "maps kept by the class names (stale on another photo)", r"a result kept from an earlier call with the same class names",
                lambda m, s: {"cams_for_classes": _cached_by_names}),
    WrongAnswer("a", "dominant_class: masses rounded to whole numbers", r"masses are rounded to whole numbers", _dominant(_rounded_masses)),
    WrongAnswer("a", "dominant_class: best mass starts at 0", r"every mass in the (left|right) half is negative", _dominant(_best_from_zero)),
    WrongAnswer("a", "guard for an all-zero map only: a constant positive map is NaN",
                r"whenever max = min, not only when the map is all zero", lambda m, s: {"cams_for_classes": _guard_for_zero_only}),
    # round 10: messages that did not name the cause
    WrongAnswer("a", "the minimum of all maps subtracted, each map's own maximum", r"the minimum subtracted is one shared by all the maps",
                lambda m, s: {"cams_for_classes": _global_minimum}),
    WrongAnswer("a", "every map zeroed if one map is all zero", r"the all-zero map zeroes the others",
                lambda m, s: {"cams_for_classes": _zeroed_if_any_empty}),
    WrongAnswer("a", "all-zero maps returned", r"maps that are 0 everywhere, for every class and network",
                lambda m, s: {"cams_for_classes": lambda model, image, class_names: torch.zeros(len(class_names), *image.shape[:2])}),
    WrongAnswer("a", "each class index plus 1", r"the Grad-CAMs of other classes.*off by \+1", lambda m, s: {"cams_for_classes": _next_index}),
    WrongAnswer("a", "normalised maps halved", r"each map is the right map times 0.5", _scaled(0.5)),
]


def _bfloat16_sum(model, image, class_names):
    """The weighted sum of the channels in bfloat16, cast back to float32: close, but not float32's map."""
    inputs = model.to_input(image)
    with LayerRecorder(model.network, "layer4") as recorder:
        logits = model.network(inputs)
    maps = []
    for name in class_names:
        logits[0, model.class_index(name)].backward(retain_graph=True)
        gradient, activation = recorder.gradients["layer4"][0], recorder.activations["layer4"][0]
        weighted = gradient.mean(dim=(1, 2))[:, None, None].bfloat16() * activation.bfloat16()
        maps.append(weighted.sum(0).float().clamp(min=0))
    return normalize_cams(upsample_cams(torch.stack(maps).detach(), tuple(image.shape[:2])))


def _half_masses(cams, class_names):
    """Each half's masses summed in float16: large masses lose precision or overflow to inf."""
    left, right = _sums(torch.as_tensor(cams).half())
    return {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())]}


def _middle_skipped(cams, class_names):
    """The right half starts at (W + 1) // 2: for an odd width the middle column is in neither half."""
    width = cams.shape[-1]
    left, right = cams[..., : width // 2].sum(dim=(-2, -1)), cams[..., (width + 1) // 2 :].sum(dim=(-2, -1))
    return {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())]}


def _with_masses(cams, class_names):
    """The right answer with the masses as extra keys."""
    left, right = _sums(cams)
    return {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())],
            "left_mass": left.tolist(), "right_mass": right.tolist()}


def _near_tie(cams, class_names):
    """Masses within a relative 1e-3 of the largest treated as a tie: the first such class wins."""
    answer = {}
    for half, masses in zip(("left", "right"), _sums(cams)):
        best = masses.max()
        answer[half] = next(name for name, mass in zip(class_names, masses.tolist())
                            if math.isclose(mass, float(best), rel_tol=1e-3))
    return answer


WRONG_A += [
    # a fresh student's round 11: passed the check before, or got a message that named another cause
    WrongAnswer("a", "dominant_class: masses summed in float16", r"the masses lose precision, as in float16", _dominant(_half_masses)),
    WrongAnswer("a", "weighted sum in bfloat16, cast back", r"a step changes them slightly. A step in low precision \(float16 or bfloat16",
                lambda m, s: {"cams_for_classes": _bfloat16_sum}),
    WrongAnswer("a", "dominant_class: the middle column of an odd width in neither half", r"the middle column is in neither half",
                _dominant(_middle_skipped)),
    WrongAnswer("a", "dominant_class: the masses returned as extra keys", r"it has the extra keys \['left_mass', 'right_mass'\]",
                _dominant(_with_masses)),
    WrongAnswer("a", "dominant_class: masses within 0.1% treated as tied", r"a relative difference of .* treated as a tie",
                _dominant(_near_tie)),
]


_KEPT_BY_SHAPE: dict = {}


def _cached_by_shape(model, image, class_names):
    """Maps kept by the model, the class names and the image's shape: another photo of the same size gets stale maps."""
    key = (id(model), tuple(class_names), tuple(image.shape))
    if key not in _KEPT_BY_SHAPE:
        _KEPT_BY_SHAPE[key] = hand_cams(model, image, class_names)
    return _KEPT_BY_SHAPE[key].clone()


def _cached_by_id():
    """Maps kept by id(image) and the class names: the same array changed in place (or a new one given a freed
    array's id) gets stale maps (a fresh cache for each test)."""
    kept = {}

    def cams_for_classes(model, image, class_names):
        key = (id(image), tuple(class_names))
        if key not in kept:
            kept[key] = hand_cams(model, image, class_names)
        return kept[key].clone()

    return cams_for_classes


def _fails_after_first_call():
    """Maps right on the first call; every later call raises, as a list of maps kept between calls makes
    torch.stack fail (a fresh state for each test)."""
    calls = []

    def cams_for_classes(model, image, class_names):
        calls.append(len(class_names))
        if len(calls) > 1:
            raise RuntimeError("stack expects each tensor to be equal size, but got [4, 6] at entry 0 and [3, 5] at entry 3")
        return hand_cams(model, image, class_names)

    return cams_for_classes


def _wide_guard(model, image, class_names):
    """A map whose range is below 1e-2 set to all zero, instead of only a map with no range."""
    maps = hand_cams(model, image, class_names, normalise="none")
    low, high = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
    return torch.where(high - low > 1e-2, (maps - low) / (high - low).clamp(min=1e-2), torch.zeros_like(maps))


WRONG_A += [
    # a fresh student's round 11 (its w88 and w93): passed the check before
    WrongAnswer("a", "maps kept by model, class names and image shape (stale on another photo of that size)",
                r"returns the maps it returned for the unmirrored photo.*a cache keyed by the image's shape",
                lambda m, s: {"cams_for_classes": _cached_by_shape}),
    # round 16 (its w38, w62, w63): an error on a later call was recorded but cost no check
    WrongAnswer("a", "maps right on the first call, an error on every later call",
                r"raised RuntimeError: stack expects each tensor to be equal size",
                lambda m, s: {"cams_for_classes": _fails_after_first_call()}),
    # round 15 (its w30): passed the check before
    WrongAnswer("a", "maps kept by id(image) and class names (stale for the same array changed in place)",
                # Its stale maps show on the same array changed in place, or sooner, where a new array takes the id of
                # one freed earlier in the check (of another size).
                r"(though a new array of the same pixels gets the right maps|maps of another image's size).*a cache keyed by id\(image\)",
                lambda m, s: {"cams_for_classes": _cached_by_id()}),
    WrongAnswer("a", "maps with a range below 1e-2 set to zero", r"its map is all zero: a guard for 'no range' that is too wide",
                lambda m, s: {"cams_for_classes": _wide_guard}),
]


def _weak_values_dropped(cams, class_names):
    """Values below 0.2 set to 0 before the masses are summed."""
    left, right = _sums(torch.where(cams < 0.2, torch.zeros_like(cams), cams))
    return {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())]}


WRONG_A += [
    # round 11: messages that named another cause, or were cut off
    WrongAnswer("a", "dominant_class: values below 0.2 dropped before summing", r"values below a cut-off \(0\.2 here\)",
                _dominant(_weak_values_dropped)),
    WrongAnswer("a", "receptive-field centres for the image's size", r"Here the centres are for the image's size, \(176, 352\)",
                _cams(placement="image centres")),
]


_KEPT_BY_PIXELS: dict = {}
_KEPT_ANSWERS: dict = {}


def _cached_by_pixels(model, image, class_names):
    """Maps kept by the class names and the image's pixels, not the model: another network gets the first one's maps."""
    key = (tuple(class_names), np.asarray(image).tobytes(), np.asarray(image).shape)
    if key not in _KEPT_BY_PIXELS:
        _KEPT_BY_PIXELS[key] = hand_cams(model, image, class_names)
    return _KEPT_BY_PIXELS[key].clone()


def _dominant_kept_by_shape(cams, class_names):
    """dominant_class kept by the class names and the maps' shape: other maps of that shape get the first answer."""
    key = (tuple(class_names), tuple(cams.shape))
    if key not in _KEPT_ANSWERS:
        left, right = _sums(cams)
        _KEPT_ANSWERS[key] = {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())]}
    return dict(_KEPT_ANSWERS[key])


WRONG_A += [
    # round 12: caches that miss an argument
    WrongAnswer("a", "maps kept by class names and pixels, not the model (another network gets stale maps)",
                r"given another network.*a cache keyed by the image and the names, not the model",
                lambda m, s: {"cams_for_classes": _cached_by_pixels}),
    WrongAnswer("a", "dominant_class kept by class names and the maps' shape", r"mirrored left to right.*a cache keyed by the class names or the maps' shape",
                _dominant(_dominant_kept_by_shape)),
]


def _small_values_zeroed(model, image, class_names):
    """Values below 0.02 of the normalised maps set to 0 ("denoising")."""
    maps = hand_cams(model, image, class_names)
    return torch.where(maps < 0.02, torch.zeros_like(maps), maps)


def _top_class_for_others(model, image, class_names):
    """Two classes looked up by name, every other name given the top class's map (a fallback)."""
    with torch.no_grad():
        top = model.class_names[int(model.network(model.to_input(image)).argmax())]
    return hand_cams(model, image, [name if name in ("espresso", "Egyptian cat") else top for name in class_names])


WRONG_A += [
    # round 12: messages that named another cause
    WrongAnswer("a", "every class but two given the top class's map", r"the Grad-CAMs of other classes",
                lambda m, s: {"cams_for_classes": _top_class_for_others}),
    WrongAnswer("a", "small values of the maps set to 0", r"except where Grad-CAM is small: there yours are 0",
                lambda m, s: {"cams_for_classes": _small_values_zeroed}),
]


_KEPT_BY_NAME: dict = {}


def _cached_by_model_name(model, image, class_names):
    """Maps kept by the model's name, the image's bytes and the class names: another network of the same name gets them."""
    key = (model.name, np.asarray(image).tobytes(), tuple(class_names))
    if key not in _KEPT_BY_NAME:
        _KEPT_BY_NAME[key] = hand_cams(model, image, class_names)
    return _KEPT_BY_NAME[key].clone()


WRONG_A += [
    # a fresh student's round 15 (its d/w50, the same kind here): a cache keyed by the model's name
    WrongAnswer("a", "maps kept by the model's name, the image and the class names (another network of that name)",
                r"given another network.*a cache keyed by the image and the names, not the model",
                lambda m, s: {"cams_for_classes": _cached_by_model_name}),
]


def _in_chunks_of_three(model, image, class_names):
    """One forward pass for each three classes: right maps, but the notebook's four classes take two passes."""
    return torch.cat([hand_cams(model, image, class_names[start:start + 3]) for start in range(0, len(class_names), 3)])


def _dominant_kept_by_tensor():
    """dominant_class kept by id(cams): the same tensor changed in place gets the old answer (a fresh cache per test)."""
    kept = {}

    def dominant_class(cams, class_names):
        if id(cams) not in kept:
            left, right = _sums(cams)
            kept[id(cams)] = {"left": class_names[int(left.argmax())], "right": class_names[int(right.argmax())]}
        return dict(kept[id(cams)])

    return dominant_class


def _layer4_hooks_cleared(model, image, class_names):
    """Right maps; then every forward hook of layer4 cleared 'to clean up', the caller's too."""
    maps = hand_cams(model, image, class_names)
    model.network.layer4._forward_hooks.clear()
    return maps


WRONG_A += [
    # round 17 (its w70, w73, w65): passed the check before
    WrongAnswer("a", "one forward pass for each three classes", r"ran the network 2 times for 5 classes",
                lambda m, s: {"cams_for_classes": _in_chunks_of_three}),
    WrongAnswer("a", "dominant_class kept by id(cams) (the same tensor changed in place)",
                # on the same tensor mirrored in place, or sooner, where a new tensor takes a freed one's id
                r"a cache keyed by the tensor object, id\(cams\)|a result kept from an earlier call \(a cache, e.g. keyed by id\(cams\)",
                lambda m, s: {"dominant_class": _dominant_kept_by_tensor()}),
    WrongAnswer("a", "layer4's forward hooks cleared after the maps (the caller's hooks go too)",
                r"removed hooks that were on the network before the call", lambda m, s: {"cams_for_classes": _layer4_hooks_cleared}),
]


class _CaseBlindModel:
    """The model with class_index looking names up without their case (the last of two such names wins)."""

    def __init__(self, model):
        self._model = model
        self._lower = {name.lower(): index for index, name in enumerate(model.class_names)}

    def class_index(self, name):
        return self._lower[name.lower()]

    def __getattr__(self, name):
        return getattr(self._model, name)


WRONG_A += [
    # round 20 (its w56): classes looked up by lower-cased name; 'Cardigan' (the dog) then gets 'cardigan' (the sweater)
    WrongAnswer("a", "classes looked up without their case", r"given the classes \['Cardigan', 'cardigan'\].*name\.lower\(\)",
                lambda m, s: {"cams_for_classes": lambda model, image, class_names: hand_cams(_CaseBlindModel(model), image, class_names)}),
]
