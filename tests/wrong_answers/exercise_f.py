"""Wrong answers to exercise f: Grad-CAM's share of mass in a box against chance, over a set of images."""

from __future__ import annotations

import numpy as np
import torch

from utilities import grad_cam, normalize_cams, upsample_cams
from utilities.planted import CLASSES

from .answers import RightAnswer, WrongAnswer

__all__ = ["RIGHT_F", "WRONG_F", "reliance_function"]


def _placed(model, image, class_name, normalised=False, stretch=False, top_class=False):
    result = grad_cam(model, image, None if top_class else class_name, layer="layer4")
    cam = upsample_cams(result.raw, result.image_size, None if stretch else result.centres)[0]
    return normalize_cams(cam[None])[0] if normalised else cam


def _in_box(cam, left, top, right, bottom):
    return float(cam[top:bottom, left:right].sum())


def reliance_function(
    *,
    map_of=_placed,
    share_of=lambda cam, box, total: _in_box(cam, *box) / total,
    empty_share=0.0,
    chance_of=lambda box, image, model: (box[2] - box[0]) * (box[3] - box[1]) / (image.shape[0] * image.shape[1]),
    median_of=lambda shares: float(np.median(shares)),
    above_of=lambda shares, chance: float(np.mean(shares > chance)),
    ratio_of=lambda shares, chance: float(np.median(shares)) / float(np.median(chance)),
    count_empty=True,
    before=lambda model, images, boxes: None,
):
    """box_reliance as a student writes it, with one switch per mistake (the defaults are right)."""

    def box_reliance(model, images, boxes, class_name):
        before(model, images, boxes)
        shares, chance, empty = [], [], 0
        for image, box in zip(images, boxes):
            box = tuple(int(v) for v in box)
            cam = map_of(model, image, class_name)
            total = float(cam.sum())
            if total > 0:
                shares.append(share_of(cam, box, total))
            else:
                shares.append(empty_share)
                empty += 1
            chance.append(chance_of(box, image, model))
        shares, chance = np.array(shares), np.array(chance)
        return {"shares": shares, "chance": chance, "median": median_of(shares), "above_chance": above_of(shares, chance),
                "ratio": ratio_of(shares, chance), "empty": empty if count_empty else 0}

    return box_reliance


def _map(layer="layer4", size=lambda result: result.image_size, image=lambda image: image, target=lambda name: name,
         stretch=lambda result: False):
    """A map_of with one switch per mistake in the map itself (the defaults are right)."""

    def map_of(model, picture, class_name):
        result = grad_cam(model, image(picture), target(class_name), layer=layer)
        return upsample_cams(result.raw, size(result), None if stretch(result) else result.centres)[0]

    return map_of


def _cells(model, image, class_name):
    """The raw cell grid, the box turned into cells by // 8 (a share_of sees the grid as its map)."""
    return grad_cam(model, image, class_name, layer="layer4").raw[0]


def _cell_share(cam, box, total):
    left, top, right, bottom = box
    return float(cam[top // 8:-(-bottom // 8), left // 8:-(-right // 8)].sum()) / total


def _to_float_in_place(model, images, boxes):
    for i in range(len(images)):
        images[i] = np.asarray(images[i]).astype(np.float32) / 255.0


def _f(**mistake):
    return lambda model, solution: {"box_reliance": reliance_function(**mistake)}


def _pixels(cam, box, total):
    positive = cam > 0
    left, top, right, bottom = box
    return float(positive[top:bottom, left:right].sum()) / float(positive.sum())


def _edits_boxes(model, images, boxes):
    boxes[0] = (0, 0, 1, 1)  # "clipped" to the image, in the caller's list


def _edits_images(model, images, boxes):
    images[0][0, 0] = 0


def _changed(function, **changes):
    def box_reliance(model, images, boxes, class_name):
        answer = function(model, images, boxes, class_name)
        return {key: changes[key](value) if key in changes else value for key, value in answer.items()}

    return box_reliance


def _changed_with(function, **changes):
    """Keys recomputed from the whole answer."""
    def box_reliance(model, images, boxes, class_name):
        answer = function(model, images, boxes, class_name)
        return {**answer, **{key: change(answer) for key, change in changes.items()}}

    return box_reliance


def _threshold(function):
    """Maps whose total is below 1e-3 counted as empty, share 0.0 (the rest from the right answer)."""

    def box_reliance(model, images, boxes, class_name):
        answer = function(model, images, boxes, class_name)
        shares, empty = np.array(answer["shares"], dtype=float), 0
        for i, image in enumerate(images):
            result = grad_cam(model, image, class_name, layer="layer4")
            total = float(upsample_cams(result.raw, result.image_size, result.centres)[0].sum())
            if total < 1e-3:
                shares[i], empty = 0.0, empty + 1
        median = float(np.median(shares))
        return {**answer, "shares": shares, "median": median, "above_chance": float(np.mean(shares > answer["chance"])),
                "ratio": median / float(np.median(answer["chance"])), "empty": empty}

    return box_reliance


def _integer_chance(model, images, boxes, class_name):
    shares, chance = [], []
    for image, (left, top, right, bottom) in zip(images, boxes):
        result = grad_cam(model, image, class_name, layer="layer4")
        cam = upsample_cams(result.raw, result.image_size, result.centres)[0]
        total = float(cam.sum())
        shares.append(float(cam[top:bottom, left:right].sum()) / total if total > 0 else 0.0)
        chance.append((right - left) * (bottom - top) // (image.shape[0] * image.shape[1]))
    shares, chance = np.array(shares), np.array(chance, dtype=float)
    median = float(np.median(shares))
    return {"shares": shares, "chance": chance, "median": median, "above_chance": float(np.mean(shares > chance)),
            "ratio": median / float(np.median(chance)), "empty": int(np.sum(shares == 0))}


def _trains(model, images, boxes):
    model.network.train()


def _without_nan_guard():
    """The share divided by the total whatever it is: 0 / 0 gives NaN (a NumPy warning, not an error)."""

    def box_reliance(model, images, boxes, class_name):
        shares, chance = [], []
        for image, (left, top, right, bottom) in zip(images, boxes):
            cam = _placed(model, image, class_name).numpy().astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                shares.append(cam[top:bottom, left:right].sum() / cam.sum())
            chance.append((right - left) * (bottom - top) / (image.shape[0] * image.shape[1]))
        shares, chance = np.array(shares), np.array(chance)
        empty = int(np.isnan(shares).sum())
        return {"shares": shares, "chance": chance, "median": float(np.median(shares)),
                "above_chance": float(np.mean(shares > chance)),
                "ratio": float(np.median(shares)) / float(np.median(chance)), "empty": empty}

    return box_reliance


def _torch_version(model, images, boxes, class_name):
    """Right, written with torch and a boolean mask, returning tensors and NumPy scalars."""
    shares, chance, empty = [], [], 0
    for image, box in zip(images, boxes):
        left, top, right, bottom = (int(v) for v in box)
        result = grad_cam(model, image, class_name, layer="layer4")
        cam = upsample_cams(result.raw, result.image_size, result.centres)[0]
        mask = torch.zeros_like(cam, dtype=torch.bool)
        mask[top:bottom, left:right] = True
        total = cam.sum()
        empty += int(total == 0)
        shares.append(cam[mask].sum() / total if total > 0 else torch.tensor(0.0))
        chance.append(mask.float().mean())
    shares, chance = torch.stack(shares).double(), torch.stack(chance).double()
    median = shares.quantile(0.5)
    return {"shares": shares.numpy(), "chance": chance.numpy(), "median": median.item(),
            "above_chance": (shares > chance).double().mean().item(), "ratio": (median / chance.quantile(0.5)).item(),
            "empty": empty, "maps": "not asked for"}


WRONG_F = [
    # the share
    WrongAnswer("f", "share of the box's pixels where the map is positive", r"count the box's pixels where the map is above 0",
                _f(share_of=_pixels)),
    WrongAnswer("f", "mass of the normalised map", r"normalised to \[0, 1\].*normalising subtracts the map's minimum",
                _f(map_of=lambda model, image, name: _placed(model, image, name, normalised=True))),
    WrongAnswer("f", "box transposed, cam[left:right, top:bottom]", r"the box is read transposed",
                _f(share_of=lambda cam, box, total: _in_box(cam, box[1], box[0], box[3], box[2]) / total)),
    WrongAnswer("f", "right and bottom inclusive in the share", r"includes its right column and bottom row",
                _f(share_of=lambda cam, box, total: _in_box(cam, box[0], box[1], box[2] + 1, box[3] + 1) / total)),
    WrongAnswer("f", "mass in the box not divided by the total", r"not divided by the map's total mass",
                _f(share_of=lambda cam, box, total: _in_box(cam, *box))),
    WrongAnswer("f", "a class index from CLASSES (another class of this model)", r"\A(?!.*zero everywhere).*the shares are of class '\w+''s map, not of class_name's",
                _f(map_of=_map(target=lambda name: CLASSES.index(name) if name in CLASSES else 1))),
    WrongAnswer("f", "the top class's map", r"the top class's map, not of class_name's",
                _f(map_of=lambda model, image, name: _placed(model, image, name, top_class=True))),
    WrongAnswer("f", "the top class's map, no follow-on about empty maps", r"\A(?!.*zero everywhere).*the top class's map",
                _f(map_of=_map(target=lambda name: None))),
    WrongAnswer("f", "layer3 instead of layer4", r"Grad-CAM at layer3", _f(map_of=_map(layer="layer3"))),
    WrongAnswer("f", "size given to upsample_cams as (W, H)", r"upsampled to \(width, height\), the image's size reversed",
                _f(map_of=_map(size=lambda result: tuple(result.image_size)[::-1]))),
    WrongAnswer("f", "measured on the raw cell grid", r"measured on the raw cell grid",
                _f(map_of=_cells, share_of=_cell_share)),
    WrongAnswer("f", "mass in the box over the mass outside it", r"divide the mass inside the box by the mass outside it",
                _f(share_of=lambda cam, box, total: _in_box(cam, *box) / (total - _in_box(cam, *box)) if total > _in_box(cam, *box) else 1.0)),
    WrongAnswer("f", "shares rounded to 2 decimals", r"rounded to 2 decimals",
                _f(share_of=lambda cam, box, total: round(_in_box(cam, *box) / total, 2))),
    WrongAnswer("f", "map clipped at its mean", r"less its mean, clipped at 0",
                _f(share_of=lambda cam, box, total: _in_box(torch.clamp(cam - cam.mean(), min=0), *box)
                   / float(torch.clamp(cam - cam.mean(), min=0).sum()))),
    WrongAnswer("f", "boxes read as (x, y, width, height)", r"\A(?!.*your chance is).*read as \(x, y, width, height\)",
                _f(share_of=lambda cam, box, total: _in_box(cam, box[0], box[1], box[0] + box[2], box[1] + box[3]) / total,
                   chance_of=lambda box, image, model: box[2] * box[3] / (image.shape[0] * image.shape[1]))),
    WrongAnswer("f", "images turned to float in place, no follow-on", r"\A(?!.*your share is)(?!.*zero everywhere).*changed the images "
                r"it was given as argument 2 \(images\), in place", _f(before=_to_float_in_place)),
    WrongAnswer("f", "images stacked with np.asarray", r"an array \(np\.asarray\(images\), np\.stack\) needs them all of one size",
                _f(before=lambda model, images, boxes: np.asarray(images))),
    # chance
    WrongAnswer("f", "chance computed for 64 x 64 scenes", r"over 64 x 64 pixels, the scenes' size",
                _f(chance_of=lambda box, image, model: (box[2] - box[0]) * (box[3] - box[1]) / 64**2)),
    WrongAnswer("f", "chance on the network input's grid", r"chance is computed on the wrong grid",
                _f(chance_of=lambda box, image, model: (box[2] - box[0]) * (box[3] - box[1]) / np.prod(model.preprocess(image).shape[-2:]))),
    WrongAnswer("f", "chance with right and bottom inclusive", r"chance counts the box's right column and bottom row",
                _f(chance_of=lambda box, image, model: (box[2] - box[0] + 1) * (box[3] - box[1] + 1) / (image.shape[0] * image.shape[1]))),
    # empty maps
    WrongAnswer("f", "NaN for an all-zero map", r"holds NaN \(or infinity\) where a map is zero everywhere", lambda model, solution: {"box_reliance": _without_nan_guard()}),
    WrongAnswer("f", "empty maps not counted", r"answer\['empty'\] is 0, but \d of the", _f(count_empty=False)),
    WrongAnswer("f", "share 1.0 for an empty map", r"a map that is zero everywhere has share 1: the contract gives it share 0.0", _f(empty_share=1.0)),
    # the summary
    WrongAnswer("f", "mean instead of median", r"the median is a mean", _f(median_of=lambda shares: float(np.mean(shares)))),
    WrongAnswer("f", "torch.median (lower middle value)", r"lower of the two middle values \(torch\.median",
                _f(median_of=lambda shares: float(torch.median(torch.from_numpy(shares))))),
    WrongAnswer("f", "median without the empty maps", r"the median leaves the empty maps out",
                _f(median_of=lambda shares: float(np.median(shares[shares > 0])))),
    WrongAnswer("f", "above chance with >=", r"counts a share equal to chance \(>=\)",
                _f(above_of=lambda shares, chance: float(np.mean(shares >= chance)))),
    WrongAnswer("f", "above chance against the median chance", r"compares every share with the median chance",
                _f(above_of=lambda shares, chance: float(np.mean(shares > np.median(chance))))),
    WrongAnswer("f", "above chance against the mean chance", r"compares every share with the mean chance",
                _f(above_of=lambda shares, chance: float(np.mean(shares > np.mean(chance))))),
    WrongAnswer("f", "above chance against the first image's chance", r"compares every share with the first image's chance",
                _f(above_of=lambda shares, chance: float(np.mean(shares > chance[0])))),
    WrongAnswer("f", "above chance against 0.5", r"compares every share with 0\.5, a fixed value",
                _f(above_of=lambda shares, chance: float(np.mean(shares > 0.5)))),
    WrongAnswer("f", "ratio over the first image's chance", r"ratio divides the median share by the first image's chance",
                _f(ratio_of=lambda shares, chance: float(np.median(shares)) / float(chance[0]))),
    WrongAnswer("f", "above chance as a count", r"above_chance is a count of images",
                _f(above_of=lambda shares, chance: float(np.sum(shares > chance)))),
    WrongAnswer("f", "ratio as the median of per-image ratios", r"ratio is the median of each image's share / chance",
                _f(ratio_of=lambda shares, chance: float(np.median(shares / chance)))),
    WrongAnswer("f", "ratio upside down", r"ratio is upside down", _f(ratio_of=lambda shares, chance: float(np.median(chance) / np.median(shares)))),
    # the result's form and side effects
    WrongAnswer("f", "a tuple instead of the dict", r"box_reliance should return a dict with the keys 'shares'.*it returns a tuple",
                lambda model, solution: {"box_reliance": lambda *args: tuple(solution["box_reliance"](*args).values())}),
    WrongAnswer("f", "a key named differently", r"lacks 'above_chance'",
                lambda model, solution: {"box_reliance": lambda *args: {("above" if k == "above_chance" else k): v
                                                                           for k, v in solution["box_reliance"](*args).items()}}),
    WrongAnswer("f", "the caller's list of boxes edited", r"box_reliance changed the list it was given as argument 3 \(boxes\)",
                _f(before=_edits_boxes)),
    WrongAnswer("f", "an image edited in place", r"box_reliance changed the images it was given as argument 2 \(images\), in place \(image 0: at \[0, 0\]",
                _f(before=_edits_images)),
    WrongAnswer("f", "empty by a threshold on the total", r"tiny but not zero.*a threshold",
                lambda model, solution: {"box_reliance": _threshold(solution["box_reliance"])}),
    WrongAnswer("f", "layer4's forward hooks cleared", r"removed a forward hook on model\.network\.layer4",
                _f(before=lambda model, images, boxes: model.network.layer4._forward_hooks.clear())),
    WrongAnswer("f", "np.squeeze on the shares", r"np\.squeeze",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], shares=np.squeeze, chance=np.squeeze)}),
    WrongAnswer("f", "shares and chance as lists", r"answer\['shares'\] is a list: the contract asks for a NumPy float array",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], shares=lambda v: list(v), chance=lambda v: list(v))}),
    WrongAnswer("f", "upper middle value as the median", r"upper of the two middle values",
                _f(median_of=lambda shares: float(np.sort(shares)[len(shares) // 2]))),
    WrongAnswer("f", "ratio of the mean share to the median chance", r"ratio divides the mean share by the median chance",
                _f(ratio_of=lambda shares, chance: float(np.mean(shares)) / float(np.median(chance)))),
    WrongAnswer("f", "shares returned sorted", r"\A(?!.*zero everywhere).*the shares are sorted, not in the order of the images",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], shares=np.sort)}),
    WrongAnswer("f", "chance with integer division", r"ZeroDivisionError.*integer division \(//\)",
                lambda model, solution: {"box_reliance": _integer_chance}),
    WrongAnswer("f", "boxes read as 4 x N", r"4 x N",
                lambda model, solution: {"box_reliance": lambda m, images, boxes, name: solution["box_reliance"](m, images, np.asarray(boxes).T, name)}),
    WrongAnswer("f", "the network left in training mode", r"box_reliance left the network in training mode", _f(before=_trains)),
    # round 12's student: types the contract names, inputs at the edges, messages
    WrongAnswer("f", "the median as a 0-d array", r"answer\['median'\] is a NumPy array \(float64\), not a float",
                _f(median_of=lambda shares: np.array(np.median(shares)))),
    WrongAnswer("f", "the median as a float32", r"answer\['median'\] is a float32, not a float",
                _f(median_of=lambda shares: np.float32(np.median(shares)))),
    WrongAnswer("f", "the empty count as a NumPy integer", r"answer\['empty'\] is an int64, not an int",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], empty=np.int64)}),
    WrongAnswer("f", "the empty count as a float", r"answer\['empty'\] is a float, not an int",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], empty=float)}),
    WrongAnswer("f", "shares and chance as tensors", r"answer\['shares'\] is a tensor \(float64\): the contract asks for a NumPy float array",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], shares=torch.from_numpy, chance=torch.from_numpy)}),
    WrongAnswer("f", "shares rounded to 3 decimals before comparing with chance", r"above_chance compares the shares rounded to 3 decimals",
                _f(above_of=lambda shares, chance: float(np.mean(np.round(shares, 3) > chance)))),
    WrongAnswer("f", "boxes as 8-bit integers (coordinates above 127 wrap around)", r"wrapped around: stored as 8-bit integers",
                lambda model, solution: {"box_reliance": lambda m, images, boxes, name: solution["box_reliance"](
                    m, images, [tuple(int(v) for v in box) for box in np.asarray(boxes).astype(np.int8)], name)}),
    WrongAnswer("f", "a box covering the whole image given share 1.0 without looking at the map", r"zero everywhere has share 1",
                _f(empty_share=1.0)),
    WrongAnswer("f", "empty when the largest cell is below 1e-12", r"tiny but not zero",
                _f(map_of=lambda model, image, name: _placed(model, image, name) * (_placed(model, image, name).max() >= 1e-12))),
    WrongAnswer("f", "the last maps kept on the network", r"set attributes on the network \(model\.network\.last_maps\)",
                _f(before=lambda model, images, boxes: setattr(model.network, "last_maps", list(images)))),
    WrongAnswer("f", "shares and chances in the reverse order", r"shares are in the reverse order of the images.*chances are in the reverse order",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], shares=lambda v: v[::-1], chance=lambda v: v[::-1])}),
    WrongAnswer("f", "ratio over the median chance of the non-empty maps only", r"ratio divides by the median chance of the images whose map is not empty",
                lambda model, solution: {"box_reliance": _changed_with(solution["box_reliance"], ratio=lambda a: a["median"] / float(np.median(a["chance"][a["shares"] > 0])))}),
    WrongAnswer("f", "shares in float16", r"Your shares are float16(?!.*(>=|where the contract gives))",
                lambda model, solution: {"box_reliance": _changed(solution["box_reliance"], shares=lambda v: v.astype(np.float16))}),
]

def _kept_map(key_of):
    """Placed maps cached by ``key_of(model, image, class_name)``: a key that leaves something out gives stale maps."""
    def answer(model, solution):
        kept = {}

        def map_of(model, image, class_name):
            key = key_of(model, image, class_name)
            if key not in kept:
                kept[key] = _placed(model, image, class_name)
            return kept[key]

        return {"box_reliance": reliance_function(map_of=map_of)}

    return answer


def _to_float_unscaled_in_place(model, images, boxes):
    """The caller's list of images turned into float arrays (0 to 255), in place."""
    if isinstance(images, list):
        for i, image in enumerate(images):
            images[i] = np.asarray(image, dtype=np.float32)


def _popping(model, solution):
    right = solution["box_reliance"]

    def box_reliance(model, images, boxes, class_name):
        taken = []
        while isinstance(images, list) and images:
            taken.append(images.pop(0))  # the caller's list is emptied
        return right(model, taken if isinstance(images, list) else images, boxes, class_name)

    return {"box_reliance": box_reliance}


WRONG_F += [
    # a student's round (s14): passed the check (a cache that ignores the model), or a message naming another cause or
    # fix (a cache by id(image) shown as numbers only, the library's advice for an error the in-place change caused, a
    # copy of an image for a list emptied)
    WrongAnswer("f", "maps cached by the image's bytes and the class, whatever the model",
                r"another model.*returned the first model's shares.*not the model",
                _kept_map(lambda model, image, name: (np.ascontiguousarray(image).tobytes(), name))),
    WrongAnswer("f", "maps cached by id(image)", r"map of another image.*a map kept from another image.*no cache",
                _kept_map(lambda model, image, name: id(image))),
    WrongAnswer("f", "the caller's images turned into floats in place", r"^box_reliance changed the images .* in place .*then raised",
                _f(before=_to_float_unscaled_in_place)),
    WrongAnswer("f", "the caller's list emptied with pop(0)", r"its length went from 6 to 0.*Loop over the list(?!.*image\.copy)",
                _popping),
    WrongAnswer("f", "maps upsampled by nearest neighbour", r"upsampled by nearest neighbour",
                _f(map_of=lambda model, image, name: (lambda result: torch.nn.functional.interpolate(
                    result.raw[None].float(), size=tuple(result.image_size), mode="nearest")[0, 0])(
                    grad_cam(model, image, name, layer="layer4")))),
    WrongAnswer("f", "maps upsampled to (W, H), then transposed", r"the image's size reversed, then transposed",
                _f(map_of=lambda model, image, name: (lambda result: upsample_cams(
                    result.raw, tuple(result.image_size)[::-1], None)[0].T)(grad_cam(model, image, name, layer="layer4")))),
]

WRONG_F += [
    # a student's round (s15): passed the check (a cache keyed by the model's name; the class taken from the model)
    WrongAnswer("f", "maps cached by the model's name, the image's bytes and the class",
                r"another model of the same name.*returned the first model's shares",
                _kept_map(lambda model, image, name: (model.name, np.ascontiguousarray(image).tobytes(), name))),
]

RIGHT_F = [
    RightAnswer("f", "torch, a boolean mask and quantile, converted at the end", lambda model, solution: {"box_reliance": _torch_version}),
    RightAnswer("f", "cells spread evenly (the other placement)",
                _f(map_of=lambda model, image, name: _placed(model, image, name, stretch=True))),
]

def _kept_with_image(model, solution):
    """Placed maps cached by id(model), id(image) and the class, the image kept with its map (so no other image takes
    its id): only the same array changed in place gets a stale map."""
    kept = {}

    def map_of(model, image, class_name):
        key = (id(model), id(image), class_name)
        if key not in kept:
            kept[key] = (image, _placed(model, image, class_name))
        return kept[key][1]

    return {"box_reliance": reliance_function(map_of=map_of)}


WRONG_F += [
    # a fresh student's round 16 (its w28): passed the check (maps cached by id(model), id(image) and the class)
    WrongAnswer("f", "maps cached by id(model), id(image) and the class (the same arrays changed in place)",
                r"mirrored left to right in place.*new arrays of the same pixels get other shares.*a cache keyed by id\(image\)",
                _kept_with_image),
]


WRONG_F += [
    # round 19 (its w37): no layer=, so grad_cam explains the model's default layer (layer4 on the notebook's models)
    WrongAnswer("f", "grad_cam without layer= (the model's default layer, not always layer4)",
                r"default Grad-CAM layer \(its target_layer\) is 'layer3'.*layer='layer4'",
                lambda m, s: {"box_reliance": reliance_function(map_of=_map(layer=None))}),
]


def _one_dict(solution):
    """The right numbers, written into one dict that every call updates and returns."""
    kept: dict = {}

    def box_reliance(model, images, boxes, class_name):
        kept.update(solution["box_reliance"](model, images, boxes, class_name))
        return kept

    return box_reliance


WRONG_F += [
    # round 20 (its w63): the same dict returned by every call, so an earlier result changes with the next call
    WrongAnswer("f", "one dict updated and returned by every call", r"box_reliance returned results that its later calls changed",
                lambda m, s: {"box_reliance": _one_dict(s)}),
]


def _zero_grad_first(solution):
    def box_reliance(model, images, boxes, class_name):
        model.network.zero_grad(set_to_none=True)  # "clean up" first
        return solution["box_reliance"](model, images, boxes, class_name)

    return box_reliance


WRONG_F += [
    # round 21 (its w69): zero_grad() on the model, which clears a training loop's gradients
    WrongAnswer("f", "model.network.zero_grad() before the maps", r"cleared the gradients stored in the network's weights \(\.grad\)",
                lambda m, s: {"box_reliance": _zero_grad_first(s)}),
]
