"""Wrong answers to exercise d: shares of the map on the object per stage, and the first stage reaching a threshold."""

from __future__ import annotations

import math
import numpy as np
import torch

from utilities import LayerRecorder, grad_cam, normalize_cams, upsample_cams

from .answers import RightAnswer, WrongAnswer

__all__ = ["RIGHT_D", "WRONG_D", "shares_function"]

STAGES = ["layer1", "layer2", "layer3", "layer4"]


def shares_function(
    *,
    layer: bool = True,
    mask_of=lambda mask, image: mask,
    share=lambda cam, mask: float(cam[mask].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else 0.0,
    class_of=lambda name: name,
    model_of=lambda model: model,
    keys=lambda stage: stage,
    result=dict,
):
    """localisation_shares as a student writes it, with one switch per mistake (the defaults are right)."""

    def localisation_shares(model, image, class_name, object_mask):
        mask = torch.as_tensor(mask_of(object_mask, image), dtype=torch.bool)
        values = {}
        for stage in STAGES:
            options = {"layer": stage} if layer else {}
            cam = grad_cam(model_of(model), image, class_of(class_name), **options).maps[0]
            values[keys(stage)] = share(cam, mask)
        return result(values)

    return localisation_shares


def _cat_mask(mask, image):
    left = np.zeros(image.shape[:2], dtype=bool)
    left[:, : image.shape[1] // 2] = True
    return left


def _raw_upsampled(model, image, class_name, layer):
    """The map before normalisation, at the image's size: result.raw upsampled by hand."""
    return upsample_cams(grad_cam(model, image, class_name, layer=layer).raw, image.shape[:2])[0]


def _evaluated(right):
    def localisation_shares(model, image, class_name, object_mask):
        model.network.eval()  # "to be safe", and left so
        return right(model, image, class_name, object_mask)

    return localisation_shares


def _stretched(model, image, class_name, object_mask):
    """The maps with their cells spread evenly (placement="stretch"), the mask as a NumPy array: right."""
    shares = {}
    for stage in STAGES:
        cam = grad_cam(model, image, class_name, layer=stage, placement="stretch").maps[0].numpy()
        total = cam.sum()
        shares[stage] = float(cam[np.asarray(object_mask)].sum() / total) if total > 0 else 0.0
    return shares


def _shares(**mistake):
    return lambda model, solution: {"localisation_shares": shares_function(**mistake)}


def _mask_in_place(right):
    def localisation_shares(model, image, class_name, object_mask):
        shares = right(model, image, class_name, object_mask)
        object_mask[:] = False  # "cleans up" the caller's mask
        return shares

    return localisation_shares


def _first(function):
    return lambda model, solution: {"first_localised_stage": function}


def _in_order(shares, threshold, compare=lambda share, threshold: share >= threshold, order=STAGES):
    return next((stage for stage in order if compare(shares[stage], threshold)), None)


def _unnormalised(model, image, class_name, object_mask):
    """Shares of the maps before normalisation."""
    mask = torch.as_tensor(object_mask)
    shares = {}
    for stage in STAGES:
        cam = _raw_upsampled(model, image, class_name, stage)
        total = float(cam.sum())
        shares[stage] = float(cam[mask].sum()) / total if total > 0 else 0.0
    return shares


def _popping(shares, threshold=0.8):
    """Takes the shares out of the caller's dict as it goes."""
    for stage in STAGES:
        if shares.pop(stage) >= threshold:
            return stage
    return None


def _by_position(shares, threshold=0.8):
    """Reads the shares by position, as if the dict were a list: a KeyError on every call, so both checks fail."""
    for position in range(4):
        if shares[position] >= threshold:
            return STAGES[position]
    return None


def _hand_written(score: str, relu: bool):
    """localisation_shares with Grad-CAM written by hand (LayerRecorder), from the logit or the softmax probability,
    with or without the ReLU; the cells spread evenly, normalised with normalize_cams."""

    def localisation_shares(model, image, class_name, object_mask):
        index, shares = model.class_index(class_name), {}
        for stage in STAGES:
            with LayerRecorder(model.network, stage) as recorder:
                logits = model.network(model.to_input(image))
            target = logits.softmax(dim=1)[0, index] if score == "probability" else logits[0, index]
            target.backward()
            gradient, activation = recorder.gradients[stage][0], recorder.activations[stage][0]
            raw = (gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(dim=0)
            raw = raw.clamp(min=0) if relu else raw
            cam = normalize_cams(upsample_cams(raw[None], tuple(image.shape[:2])))[0]
            mask = torch.as_tensor(object_mask)
            shares[stage] = float(cam[mask].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else 0.0
        return shares

    return lambda model, solution: {"localisation_shares": localisation_shares}


def _image_in_place(right):
    def localisation_shares(model, image, class_name, object_mask):
        np.minimum(image, 254, out=image)  # "avoids overflow at 255", in the caller's photo
        return right(model, image, class_name, object_mask)

    return localisation_shares


WRONG_D = [
    WrongAnswer("d", "the image clipped to 254 in place", r"localisation_shares changed the image it was given as argument 2 \(image\), in place",
                lambda model, solution: {"localisation_shares": _image_in_place(solution["localisation_shares"])}),
    WrongAnswer("d", "shares as np.float32", r"each share should be a number \(a float\); localisation_shares returns a NumPy float32, not a Python float: convert with float",
                _shares(share=lambda cam, mask: np.float32(float(cam[mask].sum()) / float(cam.sum())) if float(cam.sum()) > 0 else np.float32(0.0))),
    WrongAnswer("d", "share of an all-zero map as the int 0", r"on a model whose maps are all zero, the shares are right but not "
                r"floats: localisation_shares returns an int 0.*return 0\.0",
                _shares(share=lambda cam, mask: float(cam[mask].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else 0)),
    WrongAnswer("d", "first stage as numpy.str_ from an array of the names", r"returns the stage's name as a numpy\.str_.*return a plain str",
                _first(lambda shares, threshold=0.8: next((np.array(STAGES)[i] for i in range(4) if shares[STAGES[i]] >= threshold), None))),
    WrongAnswer("d", "maps not normalised (result.raw upsampled)", r"made-up network whose Grad-CAM is positive everywhere.*shares of "
                r"the maps before normalisation", lambda model, solution: {"localisation_shares": _unnormalised}),
    WrongAnswer("d", "the caller's dict of shares emptied", r"changed the dict of shares it was given as argument 1 \(shares\), in place "
                r"\(\{'layer1': .* became .*Work on a copy \(dict\(shares\)\)", _first(_popping)),
    WrongAnswer("d", "model.network.eval() called and left so", r"switched the network to eval mode.*left it there",
                lambda model, solution: {"localisation_shares": _evaluated(solution["localisation_shares"])}),
    WrongAnswer("d", "the dict read by position (shares[0]), the error said once", r"raised KeyError: 0$",
                _first(_by_position)),
    WrongAnswer("d", "layer=stage forgotten", r"all four shares are equal.*layer=stage", _shares(layer=False)),
    WrongAnswer("d", "the notebook's cat_mask instead of object_mask", r"inside the notebook's cat_mask", _shares(mask_of=_cat_mask)),
    WrongAnswer("d", "share outside the mask", r"shares \*outside\* the mask", _shares(mask_of=lambda mask, image: ~mask)),
    WrongAnswer("d", "mean of the map inside the mask", r"mean of the map inside the mask", _shares(share=lambda cam, mask: float(cam[mask].mean()))),
    WrongAnswer("d", "mass inside over mass outside", r"divides the mass inside by the mass outside",
                _shares(share=lambda cam, mask: float(cam[mask].sum() / cam[~mask].sum()))),
    WrongAnswer("d", "the top class instead of class_name", r"shares of (the model's top class|'Egyptian cat')", _shares(class_of=lambda name: None)),
    WrongAnswer("d", "'Egyptian cat' hard-coded", r"shares of 'Egyptian cat'", _shares(class_of=lambda name: "Egyptian cat")),
    WrongAnswer("d", "the notebook's model instead of the model argument", r"notebook's model",
                lambda model, solution: {"localisation_shares": shares_function(model_of=lambda given: model)}),
    WrongAnswer("d", "NaN for an all-zero map", r"share is NaN.*share of a map with no mass is 0",
                _shares(share=lambda cam, mask: float(cam[mask].sum() / cam.sum()))),
    WrongAnswer("d", "ZeroDivisionError for an all-zero map", r"divides by it: the share of a map with no mass is 0",
                _shares(share=lambda cam, mask: float(cam[mask].sum()) / float(cam.sum()))),
    WrongAnswer("d", "a list instead of a dict", r"should return a dict \{stage: share\}; got list", _shares(result=lambda values: list(values.values()))),
    WrongAnswer("d", "stage numbers as keys", r"exactly the keys layer1", _shares(keys=lambda stage: int(stage[-1]))),
    WrongAnswer("d", "shares in reversed stage order", r"belong to other stages",
                _shares(result=lambda values: dict(zip(STAGES, reversed(list(values.values())))))),
    WrongAnswer("d", "share > threshold", r"equal to the threshold reaches it: compare with >=",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, compare=lambda s, t: s > t))),
    WrongAnswer("d", "threshold hard-coded to 0.8", r"ignores its threshold argument",
                _first(lambda shares, threshold=0.8: _in_order(shares, 0.8))),
    WrongAnswer("d", "the dict's order", r"follows the dict's order",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, order=list(shares)))),
    WrongAnswer("d", "never None", r"when no stage reaches the threshold, return None",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold) or "layer4")),
    WrongAnswer("d", "the stage with the largest share", r"stage with the largest share",
                _first(lambda shares, threshold=0.8: max(STAGES, key=shares.get) if max(shares.values()) >= threshold else None)),
    WrongAnswer("d", "the last stage reaching the threshold", r"last stage that reaches the threshold",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, order=STAGES[::-1]))),
    WrongAnswer("d", "layer1 never looked at", r"never looks at layer1",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, order=STAGES[1:]))),
    WrongAnswer("d", "the stage's position instead of its name", r"should return a stage's name \(a str such as 'layer2'\) or None; it returns an int",
                _first(lambda shares, threshold=0.8: (lambda stage: None if stage is None else STAGES.index(stage))(_in_order(shares, threshold)))),
    WrongAnswer("d", "shares as tensors", r"each share should be a number \(a float\); localisation_shares returns a tensor \(float32\): convert with float",
                _shares(share=lambda cam, mask: cam[mask].sum() / cam.sum() if float(cam.sum()) > 0 else torch.tensor(0.0))),
    WrongAnswer("d", "the mask edited in place", r"localisation_shares changed the mask it was given as argument 4 \(object_mask\), in place",
                lambda model, solution: {"localisation_shares": _mask_in_place(solution["localisation_shares"])}),
    WrongAnswer("d", "default threshold 0.5", r"the default threshold is 0\.8",
                _first(lambda shares, threshold=0.5: _in_order(shares, threshold))),
]

WRONG_D += [
    # a fresh student's round 5: each failed with the generic message before
    WrongAnswer("d", "share of the pixels above 0.5 instead of mass", r"counts the pixels where the map is above 0\.5",
                lambda m, s: {"localisation_shares": shares_function(share=lambda cam, mask: float(((cam > 0.5) & mask).sum()) / max(float((cam > 0.5).sum()), 1.0))}),
    WrongAnswer("d", "largest value inside over largest overall", r"compares the map's largest value inside the mask",
                lambda m, s: {"localisation_shares": shares_function(share=lambda cam, mask: float(cam[mask].max()) / float(cam.max()) if float(cam.max()) > 0 else 0.0)}),
    WrongAnswer("d", "the mask mirrored left to right", r"inside the mask mirrored left to right",
                lambda m, s: {"localisation_shares": shares_function(mask_of=lambda mask, image: mask[:, ::-1].copy())}),
    WrongAnswer("d", "shares in percent", r"shares in percent: return fractions",
                lambda m, s: {"localisation_shares": shares_function(share=lambda cam, mask: 100 * float(cam[mask].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else 0.0)}),
    WrongAnswer("d", "Grad-CAM by hand from the softmax probability", r"gradients of the softmax probability.*backpropagates the class's logit",
                _hand_written("probability", relu=True)),
    WrongAnswer("d", "Grad-CAM by hand without the ReLU", r"without the ReLU, normalised from their negative minimum",
                _hand_written("logit", relu=False)),
]

def _on_the_grid(model, image, class_name, object_mask):
    """Grad-CAM at each stage's own cell grid, the mask sampled at the cells' nearest pixels: never upsampled."""
    with LayerRecorder(model.network, STAGES) as recorder:
        logits = model.network(model.to_input(image))
    logits[0, model.class_index(class_name)].backward()
    mask = torch.as_tensor(np.asarray(object_mask), dtype=torch.bool)
    height, width = mask.shape
    shares = {}
    for stage in STAGES:
        activation, gradient = recorder.activations[stage][0], recorder.gradients[stage][0]
        cam = normalize_cams((gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(0).clamp(min=0)[None].detach())[0]
        rows, columns = torch.arange(cam.shape[0]) * height // cam.shape[0], torch.arange(cam.shape[1]) * width // cam.shape[1]
        cells = mask[rows][:, columns]
        shares[stage] = float(cam[cells].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else 0.0
    return shares


_SHIFTED = dict(zip(STAGES, ["layer1", *STAGES[:-1]]))


def _shifted_shares(model, image, class_name, object_mask):
    """Each stage's share computed one stage too early (the stem's slot taken by layer1)."""
    mask = torch.as_tensor(np.asarray(object_mask), dtype=torch.bool)
    shares = {}
    for stage in STAGES:
        cam = grad_cam(model, image, class_name, layer=_SHIFTED[stage]).maps[0]
        shares[stage] = float(cam[mask].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else 0.0
    return shares

WRONG_D += [
    # a fresh student's round 5: failed with the generic message before
    WrongAnswer("d", "stages shifted by one (layer1's map under layer2's name)", r"shares belong to other stages \(at layer2 yours is layer1's share.*shifted by one",
                lambda m, s: {"localisation_shares": _shifted_shares}),
    WrongAnswer("d", "shares on the cell grid, the mask sampled down", r"computed on each stage's cell grid",
                lambda m, s: {"localisation_shares": _on_the_grid}),
]

RIGHT_D = [
    RightAnswer("d", "Grad-CAM written by hand with LayerRecorder, one forward pass per stage", _hand_written("logit", relu=True)),
    RightAnswer("d", "cells spread evenly, NumPy arithmetic", lambda model, solution: {"localisation_shares": _stretched}),
    RightAnswer("d", "first stage by sorting a copy of the dict", _first(lambda shares, threshold=0.8: next(
        (stage for stage, share in sorted(dict(shares).items()) if share >= threshold), None))),
]


def _stage_map(model, image, class_name, stage, mask):
    return grad_cam(model, image, class_name, layer=stage).maps[0]


def _grad_cam_shares(mask_of=lambda mask: mask, share_of=lambda value: value, cam_of=_stage_map):
    """localisation_shares with grad_cam per stage and one slip: in the mask, the share or the map made."""
    def localisation_shares(model, image, class_name, object_mask):
        mask = mask_of(np.asarray(object_mask, dtype=bool))
        shares = {}
        for stage in STAGES:
            cam = cam_of(model, image, class_name, stage, mask).detach().numpy()
            total = float(cam.sum())
            shares[stage] = share_of(float(cam[mask].sum()) / total) if total > 0 else 0.0
        return shares

    return lambda model, solution: {"localisation_shares": localisation_shares}


def _last_reached(shares, threshold=0.8):
    found = None
    for stage in STAGES:
        if shares[stage] >= threshold:
            found = stage
    return found


WRONG_D += [
    # a fresh student's round 6: passed the check before
    WrongAnswer("d", "the mask transposed when it is square", r"square, so a mask with its rows and columns swapped.*transposed",
                _grad_cam_shares(mask_of=lambda mask: mask.T if mask.shape[0] == mask.shape[1] else mask)),
    WrongAnswer("d", "shares rounded to 2 decimals", r"rounded to 2 decimals.*unrounded", _grad_cam_shares(share_of=lambda value: round(value, 2))),
    # round 6: a message that did not name the cause
    WrongAnswer("d", "result.maps without [0]: an extra leading dimension", r"extra leading dimension of size 1.*result\.maps\[0\]",
                _grad_cam_shares(cam_of=lambda model, image, name, stage, mask: grad_cam(model, image, name, layer=stage).maps)),
    WrongAnswer("d", "the last stage that reaches the threshold: one cause named",
                r"^(?!.*largest share)(?s:.*)last stage that reaches the threshold", _first(_last_reached)),
]


def _fixed_size(model, image, class_name, stage, mask):
    """grad_cam with output_size hard-coded to the notebook photo's size (224, 448)."""
    return grad_cam(model, image, class_name, layer=stage, output_size=(224, 448)).maps[0]


def _from_input_resized(model, image, class_name, stage, mask):
    """The map made from the preprocessed tensor (the network input's size), nearest-resized to the mask's size."""
    cam = grad_cam(model, model.to_input(image), class_name, layer=stage).maps[0]
    if tuple(cam.shape) != mask.shape:
        cam = torch.nn.functional.interpolate(cam[None, None], size=mask.shape, mode="nearest")[0, 0]
    return cam


def _truthy(shares, threshold=0.8):
    """A share of exactly 0.0 is falsy: it never counts, even with threshold=0."""
    for stage in STAGES:
        if shares.get(stage) and shares[stage] >= threshold:
            return stage
    return None


WRONG_D += [
    # a fresh student's round 8: passed the check before
    WrongAnswer("d", "output_size hard-coded to the photo's size", r"153x305 copy of the photo.*the map must have the image's size.*not with a fixed size",
                _grad_cam_shares(cam_of=_fixed_size)),
    WrongAnswer("d", "map made from the preprocessed tensor, nearest-resized", r"153x305 copy of the photo.*the map must have the image's size.*preprocessed tensor",
                _grad_cam_shares(cam_of=_from_input_resized)),
    WrongAnswer("d", "a share of 0.0 skipped by a truthiness test (threshold 0)", r"threshold=0.*0\.0 is falsy.*>= threshold", _first(_truthy)),
    # round 8: messages that did not name the cause
    WrongAnswer("d", "stage numbers as keys, shown as ints", r"got \[1, 2, 3, 4\]: the keys must be the stage names as str",
                _shares(keys=lambda stage: int(stage[-1]))),
    WrongAnswer("d", "the mask cast to uint8 and used as an index", r"integer-mask indexing.*Index with the boolean mask",
                _grad_cam_shares(mask_of=lambda mask: mask.astype(np.uint8))),
]

WRONG_D += [
    # a fresh student's round 8: a share just below the threshold counted as reaching it
    WrongAnswer("d", "shares rounded to 2 decimals before the comparison", r"a share just below the threshold counts as reaching it.*round\(share, 2\)",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, lambda share, t: round(share, 2) >= t))),
    WrongAnswer("d", "the threshold compared with a tolerance of 0.01", r"a share just below the threshold counts as reaching it.*tolerance",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, lambda share, t: share >= t - 0.01))),
    WrongAnswer("d", "math.isclose with rel_tol=1e-2 as 'equal to the threshold'", r"returned 'layer1'|a share just below the threshold",
                _first(lambda shares, threshold=0.8: _in_order(shares, threshold, lambda share, t: share >= t or math.isclose(share, t, rel_tol=1e-2)))),
]


def _half_precision(model, image, class_name, object_mask):
    """Each map and its sums in float16."""
    mask = torch.as_tensor(np.asarray(object_mask, dtype=bool))
    shares = {}
    for stage in STAGES:
        cam = grad_cam(model, image, class_name, layer=stage).maps[0].half()
        total = float(cam.sum())
        shares[stage] = float(cam[mask].sum()) / total if total > 0 else 0.0
    return shares


def _mask_trimmed_while_computing(model, image, class_name, object_mask):
    """Drops the mask's last column in place at each stage: the later shares use another mask."""
    shares = {}
    for stage in STAGES:
        object_mask[:, -1] = False
        cam = grad_cam(model, image, class_name, layer=stage).maps[0].numpy()
        total = float(cam.sum())
        shares[stage] = float(cam[np.asarray(object_mask, dtype=bool)].sum()) / total if total > 0 else 0.0
    return shares


_KEPT_SHARES: dict = {}


def _kept_by_class(model, image, class_name, object_mask):
    """Shares kept by class name: another image, mask or model gets the first call's shares."""
    if class_name not in _KEPT_SHARES:
        _KEPT_SHARES[class_name] = _stage_shares(model, image, class_name, object_mask)
    return dict(_KEPT_SHARES[class_name])


def _stage_shares(model, image, class_name, object_mask):
    mask = np.asarray(object_mask, dtype=bool)
    shares = {}
    for stage in STAGES:
        cam = grad_cam(model, image, class_name, layer=stage).maps[0].numpy()
        total = float(cam.sum())
        shares[stage] = float(cam[mask].sum()) / total if total > 0 else 0.0
    return shares


def _integer_indices(model, image, class_name, object_mask):
    """The mask and the whole map both indexed with integer arrays, cam[mask.astype(int)] / cam[ones(int)]."""
    shares = {}
    for stage in STAGES:
        cam = grad_cam(model, image, class_name, layer=stage).maps[0].numpy().astype(np.float64)
        total = cam.sum()
        ones = np.ones_like(object_mask, dtype=int)
        shares[stage] = float(cam[np.asarray(object_mask).astype(int)].sum() / cam[ones].sum()) if total > 0 else 0.0
    return shares


WRONG_D += [
    # a fresh student's round 10: passed the check before (within its former tolerance, 1e-3)
    WrongAnswer("d", "maps and sums in float16", r"right to about 3 digits only.*low precision",
                lambda model, solution: {"localisation_shares": _half_precision}),
    # round 10: messages that did not name the cause
    WrongAnswer("d", "the mask trimmed in place while the shares are computed", r"changes object_mask in place while it computes them",
                lambda model, solution: {"localisation_shares": _mask_trimmed_while_computing}),
    WrongAnswer("d", "shares kept by class name (stale for another image)", r"exactly the shares it returned for the notebook's photo",
                lambda model, solution: {"localisation_shares": _kept_by_class}),
    WrongAnswer("d", "mask and whole map indexed with integer arrays", r"integer-mask indexing",
                lambda model, solution: {"localisation_shares": _integer_indices}),
]


WRONG_D += [
    # a fresh student's round 11: passed the check before, or got a message that named another cause
    WrongAnswer("d", "share compared in float32", r"less than float32's spacing.*compared in float32",
                _first(lambda shares, threshold=0.8: next((stage for stage in STAGES if np.float32(shares[stage]) >= threshold), None))),
    WrongAnswer("d", "None as the share of an all-zero map", r"returned None as a share: the share of a map with no mass is 0\.0",
                _shares(share=lambda cam, mask: float(cam[mask].sum()) / float(cam.sum()) if float(cam.sum()) > 0 else None)),
    WrongAnswer("d", "the left half hard-coded, not object_mask", r"the left half of the photo \(or its columns \[:W // 2\] written by hand\)",
                _shares(mask_of=lambda mask, image: np.arange(image.shape[1])[None, :].repeat(image.shape[0], 0) < image.shape[1] // 2)),
    WrongAnswer("d", "keys capitalised ('Layer1')", r"the names in another case",
                _shares(keys=lambda stage: stage.capitalize())),
]


_KEPT_BY_SHAPE: dict = {}


def _kept_by_shape(model, image, class_name, object_mask):
    """Shares kept by model, class name and image shape: another image of the same size gets the first call's shares."""
    key = (id(model), class_name, tuple(np.shape(image)))
    if key not in _KEPT_BY_SHAPE:
        _KEPT_BY_SHAPE[key] = _stage_shares(model, image, class_name, object_mask)
    return dict(_KEPT_BY_SHAPE[key])


WRONG_D += [
    # a fresh student's round 11 (its w60): passed the check before
    WrongAnswer("d", "shares kept by image shape (stale for another image of that size)",
                r"exactly the shares it returned for the photo: a result kept from an earlier call \(a cache keyed by the image's shape",
                lambda model, solution: {"localisation_shares": _kept_by_shape}),
]


def _at_input_size(model, image, class_name, object_mask):
    """Maps at the network input's size (output_size), the mask resized to it by nearest neighbour."""
    size = tuple(model.to_input(image).shape[-2:])
    mask = torch.nn.functional.interpolate(torch.as_tensor(np.asarray(object_mask))[None, None].float(), size=size,
                                           mode="nearest")[0, 0] > 0.5
    shares = {}
    for stage in STAGES:
        cam = grad_cam(model, image, class_name, layer=stage, output_size=size).maps[0]
        total = float(cam.sum())
        shares[stage] = float(cam[mask].sum()) / total if total > 0 else 0.0
    return shares


def _training_forward_first(model, image, class_name, object_mask):
    """A forward pass in training mode first, then eval(): the batch-norm statistics have changed."""
    model.network.train()
    with torch.no_grad():
        model.network(model.to_input(image))
    model.network.eval()
    return _stage_shares(model, image, class_name, object_mask)


WRONG_D += [
    # round 11: messages that named another cause
    WrongAnswer("d", "share formatted to 6 decimals ('%.6f') before the comparison", r"rounded to 6 decimals before the comparison",
                _first(lambda shares, threshold=0.8: next((stage for stage in STAGES if float("%.6f" % shares[stage]) >= threshold), None))),
    WrongAnswer("d", "maps at the network input's size, the mask resized to it", r"a mask of every other column.*at another size than the image's",
                lambda model, solution: {"localisation_shares": _at_input_size}),
    WrongAnswer("d", "a forward pass in training mode first (batch-norm statistics changed)",
                r"changed the network \(its weights or batch-norm statistics, see above\) before computing them",
                lambda model, solution: {"localisation_shares": _training_forward_first}),
]


def _kept_by(key_of):
    """The right shares, kept per ``key_of(model, image, class_name, object_mask)``: a cache that misses an argument."""
    kept = {}

    def build(model, solution):
        right = solution["localisation_shares"]

        def localisation_shares(model, image, class_name, object_mask):
            key = key_of(model, image, class_name, object_mask)
            if key not in kept:
                kept[key] = right(model, image, class_name, object_mask)
            return kept[key]

        return {"localisation_shares": localisation_shares}

    return build


def _bounding_box(mask):
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = np.zeros_like(mask)
    box[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] = True
    return box


WRONG_D += [
    # round 12: a cache that misses an argument, a mask read by its columns, box or flipped, whole percents
    WrongAnswer("d", "shares kept per image and class (a second mask gets the first mask's shares)",
                r"another mask.*a result kept from an earlier call \(a cache keyed by the image or the class, not the mask\)",
                _kept_by(lambda model, image, class_name, mask: (np.asarray(image).tobytes(), class_name))),
    WrongAnswer("d", "shares kept per image, class and mask (another model gets the first model's shares)",
                r"another network.*a cache not keyed by the model",
                _kept_by(lambda model, image, class_name, mask: (np.asarray(image).tobytes(), class_name, np.asarray(mask).tobytes()))),
    WrongAnswer("d", "the mask flipped upside down", r"another mask, an ellipse.*the mask flipped or transposed",
                _grad_cam_shares(mask_of=lambda mask: mask[::-1])),
    WrongAnswer("d", "the mask's columns only (a band of whole columns)", r"another mask, an ellipse.*not its columns or rows alone",
                _grad_cam_shares(mask_of=lambda mask: np.broadcast_to(mask.any(axis=0), mask.shape))),
    WrongAnswer("d", "the mask's bounding box", r"another mask, an ellipse.*its bounding box", _grad_cam_shares(mask_of=_bounding_box)),
    WrongAnswer("d", "compared in whole percents", r"compared in whole percents",
                _first(lambda shares, threshold=0.8: next((stage for stage in STAGES if int(shares[stage] * 100) >= int(threshold * 100)), None))),
]

WRONG_D += [
    # a fresh student's round 15 (its w50): a cache keyed by the model's name, which another network can share
    WrongAnswer("d", "shares kept per model name, image, class and mask (another network of that name)",
                r"another network.*a cache not keyed by the model",
                _kept_by(lambda model, image, class_name, mask: (model.name, np.asarray(image).tobytes(), class_name,
                                                                 np.asarray(mask).tobytes()))),
]


def _kept_by_array(model, solution):
    """The right shares, kept per id(image) alone (a cache of its own for each build): the same array changed in place
    gets the first call's shares."""
    right, kept = solution["localisation_shares"], {}

    def localisation_shares(model, image, class_name, object_mask):
        if id(image) not in kept:
            kept[id(image)] = right(model, image, class_name, object_mask)
        return dict(kept[id(image)])

    return {"localisation_shares": localisation_shares}


def _freezes_weights(model, solution):
    """requires_grad_(False) on every weight "to save memory", left so."""
    right = solution["localisation_shares"]

    def localisation_shares(model, image, class_name, object_mask):
        model.network.requires_grad_(False)
        return right(model, image, class_name, object_mask)

    return {"localisation_shares": localisation_shares}


def _running_mean(model, solution):
    """The mean of the shares over all calls so far ("smoothing"): a list kept between calls."""
    right, history = solution["localisation_shares"], []

    def localisation_shares(model, image, class_name, object_mask):
        history.append(right(model, image, class_name, object_mask))
        return {stage: float(np.mean([shares[stage] for shares in history])) for stage in STAGES}

    return {"localisation_shares": localisation_shares}


WRONG_D += [
    # a fresh student's round 16: passed the check (w23, w53), or a message that named another cause (w42)
    WrongAnswer("d", "shares kept by id(image) (the same array changed in place)",
                r"mirrored, in place.*new arrays of the same values get other shares.*a cache keyed by id\(image\)",
                _kept_by_array),
    WrongAnswer("d", "requires_grad switched off on the network's weights and left so",
                r"switched off requires_grad of the network's weights.*put each flag back", _freezes_weights),
    WrongAnswer("d", "a running mean of the shares over all calls",
                r"other shares than it did then.*something kept between calls(?!.*notebook's model)", _running_mean),
]

WRONG_D += [
    # round 18 (w58) and a hole it showed: every call of the check asked for espresso, so class_name was never tried
    WrongAnswer("d", "class_name lower-cased ('Cardigan', the dog, becomes 'cardigan', the sweater)",
                r"class_name 'Cardigan'.*shares of 'cardigan', the sweater.*case was changed",
                _shares(class_of=str.lower)),
    WrongAnswer("d", "'espresso' hard-coded (the notebook's class)",
                r"class_name 'Cardigan'.*exactly the shares it returned for 'espresso': class_name is not used",
                _shares(class_of=lambda name: "espresso")),
]


def _threshold_named_t(shares, t=0.8):
    for stage in STAGES:
        if shares[stage] >= t:
            return stage
    return None


WRONG_D += [
    # round 19 (its w68): the threshold's parameter named otherwise; every call of the check gave it by position
    WrongAnswer("d", "the threshold's parameter named t, not threshold",
                r"cannot be called as first_localised_stage\(shares, threshold=0\.6\).*name its parameter threshold",
                _first(_threshold_named_t)),
]
