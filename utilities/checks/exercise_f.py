"""Exercise f: whether a model relies on a box, measured from Grad-CAM maps alone (lesson 10's stamp share).

The check is differential: it runs the student's ``box_reliance`` and a reference on the same generated,
seeded inputs and compares the results. The inputs are chosen so that each known mistake gives a different
answer: a made-up network whose ``layer4`` map is the image's brightness (class "light") or darkness (class
"dark") per 8 x 8 cell, images of different sizes, boxes of odd and even sides, at the border and covering the
whole image, an all-black or all-white image whose map is zero everywhere, lists and arrays of boxes; and the
notebook's own model on four stamped scenes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import re
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..cam import grad_cam, normalize_cams, upsample_cams
from ..models import LoadedModel
from ..planted import CLASSES, SCENE_SIZE, STAMP_SIZE, make_scenes
from ._common import Checker, CheckResult, cached, shown_name, smaller_input, training_copy, type_name, watched_inputs

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "KEYS", "box_reliance_reference", "check_f", "made_up_model"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    "the result's keys and types",
    "share of mass in the box",
    "chance",
    "empty maps",
    "median, above chance and ratio",
)
CHECK_COUNT = len(CHECK_NAMES)
#: The keys of box_reliance's dict.
KEYS = ("shares", "chance", "median", "above_chance", "ratio", "empty")
PLACEMENTS = ("centres", "stretch")
LIGHT, DARK = "light", "dark"
_RTOL, _ATOL = 1e-4, 1e-6


# ----------------------------------------------------------------------------- the made-up network


class _BrightnessNetwork(nn.Module):
    """ResNet's names on a network whose ``layer4`` map is known: the mean brightness of each 8 x 8 patch.

    ``layer4`` has two channels, + and - the patch's mean (of the normalised input); ``fc`` is the identity, so
    Grad-CAM of class "light" is ReLU(brightness) / (h w) and of class "dark" ReLU(-brightness) / (h w).
    """

    def __init__(self, scale: float = 1.0, swapped: bool = False) -> None:
        super().__init__()
        self.layer1, self.layer2, self.layer3 = nn.Identity(), nn.Identity(), nn.Identity()
        self.layer4 = nn.Conv2d(3, 2, kernel_size=8, stride=8)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.layer4.weight.copy_(torch.stack([torch.ones(3, 8, 8), -torch.ones(3, 8, 8)]) / 192)
            self.layer4.bias.zero_()
            self.fc.weight.copy_((torch.eye(2).flip(0) if swapped else torch.eye(2)) * scale)
            self.fc.bias.copy_(torch.tensor([0.5, -0.5]) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@functools.cache
def made_up_model(scale: float = 1.0) -> LoadedModel:
    """The made-up network, classes ("light", "dark"), inputs with a short side of 32 pixels.

    ``scale`` multiplies its outputs, and so its Grad-CAM maps: :data:`TINY` gives maps tiny but not zero.
    """
    return LoadedModel.wrap(_BrightnessNetwork(scale), [LIGHT, DARK], mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32,
                            name="a made-up network", pretrained=False)


@functools.cache
def other_model() -> LoadedModel:
    """:func:`made_up_model` with fc's rows swapped: its class "dark" map is the image's brightness, class "light"'s its
    darkness. The same images and class names as the made-up network, other maps: a result kept per image is caught.

    Its default Grad-CAM layer (``target_layer``) is layer3, as a model's can be: grad_cam without ``layer=`` explains
    that one, not the contract's layer4."""
    return LoadedModel.wrap(_BrightnessNetwork(swapped=True), [LIGHT, DARK], mean=(0.5,) * 3, std=(0.25,) * 3,
                            input_size=32, name="a made-up network", pretrained=False,  # the same name: only the model tells them apart
                            target_layer="layer3")


#: The case of :func:`made_up_cases` whose first images are run again on :func:`other_model` (two: a quick call).
OTHER_MODEL_CASE, OTHER_MODEL_IMAGES = 1, 2


def _other_case() -> dict[str, Any]:
    case = made_up_cases()[OTHER_MODEL_CASE]
    return {**case, "images": case["images"][:OTHER_MODEL_IMAGES], "boxes": case["boxes"][:OTHER_MODEL_IMAGES]}


#: Far below any threshold a student might pick (1e-12, np.isclose's 1e-8), far above float32's smallest number.
TINY = 1e-30


def _image(rng: np.random.Generator, height: int, width: int, blob: float, background: tuple[float, float],
           radius: tuple[float, float] = (4, 9)) -> np.ndarray:
    """A ramp with noise and one round blob (brighter for blob > 0, darker for blob < 0)."""
    rows, columns = np.mgrid[:height, :width].astype(np.float64)
    base = rng.uniform(*background) + rng.uniform(-0.6, 0.6) * (rows - height / 2) + rng.uniform(-0.6, 0.6) * (columns - width / 2)
    centre = rng.uniform(0.2, 0.8, 2) * (height, width)
    radius = rng.uniform(*radius)
    spot = blob * np.exp(-((rows - centre[0]) ** 2 + (columns - centre[1]) ** 2) / (2 * radius**2))
    channels = [base + spot + rng.normal(0, 5, (height, width)) + rng.uniform(-8, 8) for _ in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).round().astype(np.uint8)


def made_up_cases() -> list[dict[str, Any]]:
    """The generated inputs of the made-up network: (what, images, boxes, class name), seeded."""
    rng = np.random.default_rng(10)
    sizes = [(40, 56), (48, 48), (33, 61), (64, 40), (52, 52), (36, 90)]
    light = [_image(rng, h, w, 70, (140, 175)) for h, w in sizes[:5]] + [np.zeros((*sizes[5], 3), dtype=np.uint8)]
    light_boxes = [
        (9, 5, 16, 14),     # odd sides, 7 wide, 9 high
        (40, 40, 48, 48),   # even sides, at the right and bottom border
        (0, 0, 5, 11),      # at the left and top border, taller than wide
        (3, 20, 37, 31),    # wide and flat
        (0, 0, 52, 52),     # the whole image
        (30, 10, 41, 17),   # on the all-black image: its map is zero everywhere
    ]
    dark = np.stack([_image(rng, 64, 64, -170, (150, 170), (8, 13)) for _ in range(4)] + [np.full((64, 64, 3), 230, dtype=np.uint8)])
    dark[2, 20:44, 24:40] = 20  # a dark bar across a box's edge
    dark[3] = 200
    dark[3, :32, :32] = 127  # barely darker than the middle grey: a map whose total mass is below 1
    dark_boxes = np.array([(20, 3, 27, 48), (56, 0, 64, 13), (26, 18, 39, 31), (3, 0, 20, 13), (10, 10, 18, 18)])
    # boxes of very different areas whose shares lie between their own chance and the others' (median, mean, first
    # image's): each way of comparing with the wrong chance gives a different above_chance
    spread = np.random.default_rng(16)
    spread_images = [_image(spread, 64, 64, 90, (110, 150), (5, 12)) for _ in range(7)]
    spread_boxes = [(0, 0, 64, 24), (40, 40, 48, 48), (16, 16, 48, 48), (4, 44, 20, 60), (50, 6, 58, 14), (8, 8, 40, 24),
                    (30, 2, 36, 10)]
    # a share just above its chance (0.25): rounding it first, or comparing with >= and a margin, says "not above";
    # an image 300 px wide with a box beyond column 255 (integers of 8 bits wrap around there); and an all-black
    # image whose box is the whole image (empty map: share 0.0, not 1.0)
    grey = np.full((64, 64, 3), 200, dtype=np.uint8)
    grey[:4, :8] = 201  # a little brighter inside the box (0, 0, 32, 32)
    edge_rng = np.random.default_rng(23)
    wide = np.clip(150 + edge_rng.normal(0, 6, (40, 300, 3)), 0, 255).round().astype(np.uint8)
    wide[12:30, 266:286] = 225  # a bright patch inside the box, so that most of the map's mass is there
    edges = [grey, wide, np.zeros((24, 40, 3), dtype=np.uint8)]
    edge_boxes = [(0, 0, 32, 32), (262, 9, 291, 31), (0, 0, 40, 24)]
    return [
        {"what": "a list of six made-up images of different sizes, class 'light', boxes as a list of tuples",
         "images": light, "boxes": light_boxes, "class": LIGHT},
        {"what": "five made-up 64x64 images as one array, class 'dark', boxes as an (N, 4) array",
         "images": dark, "boxes": dark_boxes, "class": DARK},
        {"what": f"one made-up image (a list of one) on a network whose outputs are {TINY:g} times as large, so its map is "
                 "tiny but not zero, class 'light'",
         "images": light[:1], "boxes": light_boxes[:1], "class": LIGHT, "scale": TINY},
        {"what": "seven made-up 64x64 images with boxes of very different areas, class 'light'",
         "images": spread_images, "boxes": spread_boxes, "class": LIGHT},
        {"what": "three made-up images, class 'light': a grey one whose share is just above its chance (0.25), one 40x300 "
                 "with a box at columns 262 to 291, and an all-black one whose box is the whole image",
         "images": edges, "boxes": edge_boxes, "class": LIGHT},
    ]


def notebook_case(model: LoadedModel) -> dict[str, Any]:
    """Four stamped scenes for the notebook's model, with the stamps' boxes."""
    scenes = make_scenes(40, seed=77, stamp_on=CLASSES[1], stamp_share=1.0)
    chosen = np.flatnonzero(scenes.stamped)[:4]
    names = list(model.class_names)
    class_name = CLASSES[1] if CLASSES[1] in names else names[0]
    return {"what": f"four stamped scenes, the notebook's model, class {class_name!r}",
            "images": [scenes.images[i] for i in chosen], "boxes": [tuple(int(v) for v in scenes.stamp_boxes[i]) for i in chosen],
            "class": class_name}


# ----------------------------------------------------------------------------- the reference


def _box(box: Any) -> tuple[int, int, int, int]:
    left, top, right, bottom = (int(v) for v in box)
    return left, top, right, bottom


def _mass_share(cam: np.ndarray, box: tuple[int, int, int, int]) -> float:
    left, top, right, bottom = box
    total = float(cam.sum())
    return float(cam[top:bottom, left:right].sum()) / total if total > 0 else 0.0


def summary(shares: np.ndarray, chance: np.ndarray) -> dict[str, Any]:
    """median, above_chance, ratio of per-image shares and chances, as the contract defines them."""
    median = float(np.median(shares))
    return {"median": median, "above_chance": float(np.mean(shares > chance)), "ratio": median / float(np.median(chance))}


def box_reliance_reference(model: LoadedModel, images: Sequence[np.ndarray], boxes: Any, class_name: str,
                           placement: str = "centres") -> dict[str, Any]:
    """The contract's answer (the solution's, written independently)."""
    shares, chance, empty = [], [], 0
    for image, box in zip(images, boxes):
        result = grad_cam(model, image, class_name, layer="layer4")
        cam = upsample_cams(result.raw, result.image_size, result.centres if placement == "centres" else None)[0]
        cam = cam.double().numpy()
        left, top, right, bottom = _box(box)
        empty += int(cam.sum() <= 0)
        shares.append(_mass_share(cam, (left, top, right, bottom)))
        chance.append((right - left) * (bottom - top) / (image.shape[0] * image.shape[1]))
    shares_array, chance_array = np.array(shares), np.array(chance)
    return {"shares": shares_array, "chance": chance_array, **summary(shares_array, chance_array), "empty": empty}


def _maps(model: LoadedModel, case: dict[str, Any]) -> dict[str, Any]:
    """Per image: the placed maps (both placements), float64, and the sizes; the maps of known mistakes on demand."""
    placed: dict[str, list[np.ndarray]] = {placement: [] for placement in PLACEMENTS}
    inputs, raws = [], []
    for image in case["images"]:
        result = grad_cam(model, image, case["class"], layer="layer4")
        placed["centres"].append(upsample_cams(result.raw, result.image_size, result.centres)[0].double().numpy())
        placed["stretch"].append(upsample_cams(result.raw, result.image_size, None)[0].double().numpy())
        inputs.append(tuple(model.preprocess(image).shape[-2:]))
        raws.append(result)

    def variant(name: str) -> dict[str, list[np.ndarray]]:
        """The placed maps (both placements) of a known mistake: "top class", "class <name>", "layer3", "(W, H)",
        "BGR"; "cells" (one entry, the raw cell grid)."""
        if name == "cells":
            return {"cells": [result.raw[0].double().numpy() for result in raws]}
        if name in ("nearest", "(W, H) transposed"):
            cams = [torch.nn.functional.interpolate(own.raw[None].float(), size=tuple(own.image_size), mode="nearest")[0, 0]
                    if name == "nearest" else upsample_cams(own.raw, tuple(own.image_size)[::-1], None)[0].T
                    for own in raws]
            cams = [cam.double().numpy() for cam in cams]
            return {placement: cams for placement in PLACEMENTS}
        maps: dict[str, list[np.ndarray]] = {placement: [] for placement in PLACEMENTS}
        for image, own in zip(case["images"], raws):
            if name == "(W, H)":
                result, size = own, tuple(own.image_size)[::-1]
            else:
                target = (None if name == "top class" else name[len("class "):] if name.startswith("class ")
                          else case["class"])
                shown = np.ascontiguousarray(np.asarray(image)[..., ::-1]) if name == "BGR" else image
                with contextlib.redirect_stderr(io.StringIO()):  # layer3 of the made-up network has no cell centres
                    result = grad_cam(model, shown, target, layer="layer3" if name == "layer3" else "layer4")
                size = result.image_size
            maps["centres"].append(upsample_cams(result.raw, size, result.centres)[0].double().numpy())
            maps["stretch"].append(upsample_cams(result.raw, size, None)[0].double().numpy())
        return maps

    boxes = [_box(box) for box in case["boxes"]]
    sizes = [tuple(image.shape[:2]) for image in case["images"]]
    empty = np.array([float(cam.sum()) <= 0 for cam in placed["centres"]])
    chance = np.array([(r - l) * (b - t) / (h * w) for (l, t, r, b), (h, w) in zip(boxes, sizes)])
    return {"placed": placed, "inputs": inputs, "boxes": boxes, "sizes": sizes, "empty": empty, "chance": chance,
            "variant": functools.cache(variant), "class": case["class"], "classes": list(model.class_names)}


# ----------------------------------------------------------------------------- known mistakes


def _pixels(cam: np.ndarray, box: tuple[int, int, int, int]) -> float:
    left, top, right, bottom = box
    positive = cam > 0
    return float(positive[top:bottom, left:right].sum()) / float(positive.sum()) if positive.any() else 0.0


def _area(cam: np.ndarray, box: tuple[int, int, int, int]) -> float:
    left, top, right, bottom = box
    return (right - left) * (bottom - top) / cam.size


def _over_outside(cam: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The mass in the box over the mass outside it; NaN (any answer) where nothing is outside."""
    left, top, right, bottom = box
    inside, total = float(cam[top:bottom, left:right].sum()), float(cam.sum())
    return inside / (total - inside) if total - inside > 1e-9 * total else float("nan")


_XYWH = ("the boxes are read as (x, y, width, height), right = left + box[2] and bottom = top + box[3]: a box is (left, "
         "top, right, bottom), its corners, cam[top:bottom, left:right], and its area is (right - left) * (bottom - top).")


def _wrapped(box: tuple[int, int, int, int]) -> tuple[int, ...]:
    """The box as 8-bit integers give it: each coordinate modulo 256 (np.uint8; np.int8 the same past 255)."""
    return tuple(int(v) for v in np.asarray(box, dtype=np.int64).astype(np.uint8))


_WRAPPED = ("the boxes' coordinates wrapped around: stored as 8-bit integers (np.int8 or np.uint8), a column of 262 becomes "
            "6; keep the coordinates as Python ints (int(v)) or a wide integer type, as the boxes were given.")

#: mistake -> (share of one map in one box, message)
_SHARE_MISTAKES: dict[str, tuple[Callable[[np.ndarray, tuple], float], str]] = {
    "pixels": (_pixels, "the shares count the box's pixels where the map is above 0, over all such pixels: the share is of the "
               "map's mass, the sum of the map's values in the box over the sum of all its values."),
    "area": (_area, "the shares equal each box's share of the image's area (chance): the share is of the map's mass, the sum of "
             "the map's values inside the box over the sum of all its values, not the box's share of the pixels."),
    "normalised": (lambda cam, box: _mass_share(normalize_cams(torch.from_numpy(cam)[None])[0].numpy(), box),
                   "the shares are of the map normalised to [0, 1] (result.maps, map_for or normalize_cams): normalising "
                   "subtracts the map's minimum, which changes its mass; measure the raw map, upsample_cams(result.raw, "
                   "...), as lesson 10 does."),
    "transposed": (lambda cam, box: _mass_share(cam, (box[1], box[0], box[3], box[2])),
                   "the box is read transposed, cam[left:right, top:bottom]: a box is (left, top, right, bottom), left and "
                   "right are columns (x), top and bottom rows (y); the map is indexed [row, column], "
                   "cam[top:bottom, left:right]."),
    "inclusive": (lambda cam, box: _mass_share(cam, (box[0], box[1], box[2] + 1, box[3] + 1)),
                  "the box includes its right column and bottom row, cam[top:bottom + 1, left:right + 1]: right and bottom "
                  "are exclusive, as in Python's slices and scenes.stamp_boxes: cam[top:bottom, left:right]."),
    "not divided": (lambda cam, box: float(cam[box[1]:box[3], box[0]:box[2]].sum()),
                    "the shares are the map's mass inside the box, not divided by the map's total mass: the share is "
                    "the mass in the box over the mass of the whole map, between 0 and 1."),
    "outside": (lambda cam, box: 1 - _mass_share(cam, box) if cam.sum() > 0 else 0.0,
                "the shares are of the mass outside the box: the share is the mass inside the box over the whole map's."),
    "above mean": (lambda cam, box: _mass_share(np.clip(cam - cam.mean(), 0, None), box),
                   "the shares are of the map less its mean, clipped at 0 (only the above-average pixels kept): that "
                   "changes where the mass is; measure the raw map, cam[top:bottom, left:right].sum() / cam.sum()."),
    "over outside": (_over_outside, "the shares divide the mass inside the box by the mass outside it: the share is the mass "
                     "inside the box over the whole map's mass, cam[top:bottom, left:right].sum() / cam.sum(), between 0 and 1."),
    "xywh": (lambda cam, box: _mass_share(cam, (box[0], box[1], box[0] + box[2], box[1] + box[3])), _XYWH),
    "8-bit": (lambda cam, box: _mass_share(cam, _wrapped(box)), _WRAPPED),
    **{f"rounded {digits}": ((lambda cam, box, digits=digits: round(_mass_share(cam, box), digits)),
                             f"the shares are rounded to {digits} decimal{'s' if digits > 1 else ''}: return them as "
                             "computed, the mass in the box over the total mass; round only when you print them.")
       for digits in (1, 2, 3)},
}

#: mistake -> (chance of one box in one image, given the box, the image's (H, W) and the network input's (h, w), message)
_CHANCE_MISTAKES: dict[str, tuple[Callable[[tuple, tuple, tuple], float], str]] = {
    "scene": (lambda box, size, inputs: (box[2] - box[0]) * (box[3] - box[1]) / SCENE_SIZE**2,
              f"the chance is the box's area over {SCENE_SIZE} x {SCENE_SIZE} pixels, the scenes' size, whatever the image: "
              "divide by the area of the image you were given, its height times its width."),
    "input": (lambda box, size, inputs: (box[2] - box[0]) * (box[3] - box[1]) / (inputs[0] * inputs[1]),
              "the chance is computed on the wrong grid: the box's area over the network input's size "
              "(model.preprocess(image), resized): the box and the map are in the image's pixels, so divide by the "
              "image's height times its width."),
    "inclusive": (lambda box, size, inputs: (box[2] - box[0] + 1) * (box[3] - box[1] + 1) / (size[0] * size[1]),
                  "the chance counts the box's right column and bottom row, (right - left + 1) * (bottom - top + 1): right "
                  "and bottom are exclusive, so the box has (right - left) * (bottom - top) pixels."),
    "xywh": (lambda box, size, inputs: box[2] * box[3] / (size[0] * size[1]), _XYWH),
    "8-bit": (lambda box, size, inputs: ((lambda l, t, r, b: (r - l) * (b - t))(*_wrapped(box))) / (size[0] * size[1]),
              _WRAPPED),
    "box only": (lambda box, size, inputs: (box[2] - box[0]) * (box[3] - box[1]),
                 "the chance is the box's area in pixels, not divided by the image's area: it is the box's share of the "
                 "image's area, between 0 and 1."),
}


def _lower_median(values: np.ndarray) -> float:
    return float(np.sort(values)[(len(values) - 1) // 2]) if len(values) else float("nan")


def _upper_median(values: np.ndarray) -> float:
    return float(np.sort(values)[len(values) // 2]) if len(values) else float("nan")


def _medians(shares: np.ndarray, chance: np.ndarray, empty: np.ndarray) -> dict[str, tuple[float, str]]:
    full = ~empty
    return {
        "mean": (float(np.mean(shares)), "the median is a mean: the contract asks for the median share over the images "
                 "(np.median), which one map with most of its mass in the box does not drag up."),
        "lower": (_lower_median(shares), "the median of an even number of shares is the lower of the two middle values "
                  "(torch.median does this): the contract asks for np.median's, the average of the two."),
        "empties left out": (float(np.median(shares[full])) if full.any() else float("nan"),
                             "the median leaves the empty maps out: an empty map counts with share 0.0 in the median, "
                             "in above_chance and in the ratio."),
        "upper": (_upper_median(shares), "the median of an even number of shares is the upper of the two middle values "
                  "(sorted(shares)[n // 2]): the contract asks for np.median's, the average of the two."),
    }


def _aboves(shares: np.ndarray, chance: np.ndarray, empty: np.ndarray) -> dict[str, tuple[float, str]]:
    full = ~empty
    return {
        **{f"rounded {digits}": (float(np.mean(np.round(shares, digits) > chance)),
                                 f"above_chance compares the shares rounded to {digits} decimal{'s' if digits > 1 else ''} "
                                 "with chance: a share just above its chance (0.25008 against 0.25) rounds to it and no "
                                 "longer counts; compare the shares as computed, shares > chance.")
           for digits in (3, 2, 1)},
        "at least": (float(np.mean(shares >= chance)), "above_chance counts a share equal to chance (>=), as for a box "
                     "covering the whole image, whose share and chance are both 1: count shares strictly above (>)."),
        "count": (float(np.sum(shares > chance)), "above_chance is a count of images: it is the share of the images, "
                  "between 0 and 1 (the count divided by the number of images)."),
        "empties left out": (float(np.mean(shares[full] > chance[full])) if full.any() else float("nan"),
                             "above_chance leaves the empty maps out: an empty map counts, with share 0.0, which is not "
                             "above chance; divide by the number of all images."),
        "mean chance": (float(np.mean(shares > np.mean(chance))), "above_chance compares every share with the mean "
                        "chance: compare each image's share with its own box's chance."),
        "median chance": (float(np.mean(shares > np.median(chance))), "above_chance compares every share with the median "
                          "chance: compare each image's share with its own box's chance, shares > chance element by element."),
        "first chance": (float(np.mean(shares > chance[0])), "above_chance compares every share with the first image's "
                         "chance (chance[0]): compare each image's share with its own box's chance, shares > chance "
                         "element by element."),
        "half": (float(np.mean(shares > 0.5)), "above_chance compares every share with 0.5, a fixed value: compare each "
                 "image's share with its own box's chance, shares > chance element by element."),
        "lesson chance": (float(np.mean(shares > STAMP_SIZE**2 / SCENE_SIZE**2)), "above_chance compares every share with "
                          f"one fixed chance, a {STAMP_SIZE} x {STAMP_SIZE} stamp's share of a {SCENE_SIZE} x {SCENE_SIZE} "
                          "scene: compare each image's share with its own box's chance, shares > chance element by element."),
    }


def _ratios(shares: np.ndarray, chance: np.ndarray, empty: np.ndarray) -> dict[str, tuple[float, str]]:
    median = float(np.median(shares))
    full = ~empty
    return {
        "empties left out": (median / float(np.median(chance[full])) if full.any() else float("nan"),
                             "ratio divides by the median chance of the images whose map is not empty: an empty map "
                             "counts everywhere, so divide the median share by the median of all N chances."),
        "per image": (float(np.median(shares / chance)), "ratio is the median of each image's share / chance: the contract "
                      "asks for the median share divided by the median chance."),
        "mean": (float(np.mean(shares)) / float(np.mean(chance)), "ratio divides the mean share by the mean chance: the "
                 "contract asks for the median share divided by the median chance."),
        "first chance": (median / float(chance[0]), "ratio divides the median share by the first image's chance "
                         "(chance[0]): divide by the median chance over all the images."),
        "mean chance": (median / float(np.mean(chance)), "ratio divides the median share by the mean chance: divide by the "
                        "median chance."),
        "mean share": (float(np.mean(shares)) / float(np.median(chance)), "ratio divides the mean share by the median "
                       "chance: divide the median share (answer['median']) by the median chance."),
        "inverted": (float(np.median(chance)) / median if median else float("inf"),
                     "ratio is upside down, chance / share: it is the median share divided by the median chance (above 1: "
                     "more mass on the box than an even spread puts there)."),
    }


# ----------------------------------------------------------------------------- reading and judging an answer


def _close(answer: np.ndarray, right: np.ndarray) -> bool:
    return answer.shape == right.shape and bool(np.all(np.abs(answer - right) <= _RTOL * np.abs(right) + _ATOL))


def _array(value: Any) -> np.ndarray | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        array = _array(value)
        return float(array) if array is not None and array.ndim == 0 else None
    except (TypeError, ValueError):
        return None


def _parse(answer: Any, count: int) -> tuple[dict[str, Any] | None, str]:
    """(the answer's values as float64 arrays and floats, "") or (None, what is wrong with its form)."""
    expected = ", ".join(repr(key) for key in KEYS)
    if not isinstance(answer, dict):
        return None, f"box_reliance should return a dict with the keys {expected}; it returns {type_name(answer)}."
    missing = [key for key in KEYS if key not in answer]
    if missing:
        return None, (f"the dict box_reliance returns lacks {', '.join(repr(key) for key in missing)}: the contract's keys are "
                      f"{expected} (extra keys are fine).")
    parsed: dict[str, Any] = {}
    for key in ("shares", "chance"):
        value = answer[key]
        array = _array(value)
        if array is None or array.shape != (count,):
            shape = "" if array is None else f" of shape {array.shape}"
            squeezed = (" np.squeeze (or .item()) turns the array of one image into a 0-d array: keep the shape (N,), "
                        "also for N = 1." if array is not None and array.shape == () and count == 1 else "")
            return None, (f"answer[{key!r}] should hold one number per image, a NumPy float array of shape ({count},) for "
                          f"{count} image{'s' if count != 1 else ''}; it is {type_name(value)}{shape}.{squeezed}")
        if isinstance(value, (list, tuple)):
            return None, (f"answer[{key!r}] is {type_name(value)}: the contract asks for a NumPy float array of shape (N,) "
                          f"(np.array({key}, dtype=float)), which the notebook's later cells compute with.")
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            return None, (f"answer[{key!r}] is {type_name(value)}: the contract asks for a NumPy float array of shape (N,) "
                          f"(np.array({key}, dtype=float)).")
        parsed[f"{key} dtype"] = value.dtype
        parsed[key] = array
    for key in ("median", "above_chance", "ratio"):
        value = answer[key]
        number = _number(value)
        if number is None:
            return None, f"answer[{key!r}] should be one number (a float); it is {type_name(value)}."
        if not isinstance(value, float):  # a Python float, or NumPy's float64, which is one
            return None, (f"answer[{key!r}] is {type_name(value)}, not a float as the contract asks: a 0-d array, a "
                          f"float32 or a tensor behaves differently in later code (printing, json, comparisons); "
                          f"return float(...).")
        parsed[key] = number
    value = answer["empty"]
    empty = _number(value)
    if empty is None or empty != empty or empty != int(empty):
        return None, f"answer['empty'] should be the number of all-zero maps, an int; it is {type_name(value)}."
    if not isinstance(value, int) or isinstance(value, bool):
        return None, (f"answer['empty'] is {type_name(value)}, not an int as the contract asks (a count of maps): "
                      "return int(...).")
    parsed["empty"] = int(empty)
    return parsed, ""


def _matches(answer: np.ndarray, values: np.ndarray) -> bool:
    """Whether the answer is the values where they are numbers (NaN: any answer)."""
    known = ~np.isnan(values)
    return answer.shape == values.shape and _close(answer[known], values[known])


def _shares_of(share: Callable, cams: list[np.ndarray], maps: dict) -> np.ndarray:
    """The shares of the non-empty maps (those of the right class's map), by ``share``."""
    return np.array([share(cam, box) for cam, box, e in zip(cams, maps["boxes"], maps["empty"]) if not e])


def _cell_box(box: tuple, size: tuple, grid: tuple, how: str) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    if how == "//8":
        return left // 8, top // 8, -(-right // 8), -(-bottom // 8)
    if how == "all //8":
        return left // 8, top // 8, right // 8, bottom // 8
    rows, columns = grid[0] / size[0], grid[1] / size[1]
    if how == "scaled round":
        return round(left * columns), round(top * rows), round(right * columns), round(bottom * rows)
    return (int(np.floor(left * columns)), int(np.floor(top * rows)), int(np.ceil(right * columns)),
            int(np.ceil(bottom * rows)))


#: a mistake in the map itself -> message (the maps from _maps' variant)
_MAP_MISTAKES = {
    "layer3": "the shares are of Grad-CAM at layer3: the contract asks for layer4's maps, grad_cam(model, image, "
              "class_name, layer='layer4'), as lesson 10 measures them.",
    "(W, H)": "the maps are upsampled to (width, height), the image's size reversed: upsample_cams takes (H, W), "
              "result.image_size as it is, so that the map lies on the image's pixels and cam[top:bottom, left:right] "
              "is the box.",
    "nearest": "the maps are upsampled by nearest neighbour (F.interpolate(..., mode='nearest')), each cell a block of "
               "equal values: the contract measures the map upsampled as upsample_cams does it, "
               "upsample_cams(result.raw, result.image_size, result.centres)[0], whose values change smoothly between the "
               "cells' centres.",
    "(W, H) transposed": "the maps are upsampled to (width, height), the image's size reversed, then transposed (.T) back "
                         "to (H, W): the transpose swaps the cells' rows and columns, so the map no longer lies on the "
                         "image. Upsample to result.image_size as it is, (H, W): upsample_cams(result.raw, "
                         "result.image_size, result.centres)[0], with no transpose.",
    "BGR": "the images are given to Grad-CAM with their channels reversed (BGR, image[..., ::-1]): the images are RGB, as "
           "the model was trained on them; pass them as they are.",
}


def _order(results: list[tuple[dict, dict, dict]], rights: list[np.ndarray]) -> str:
    """How answers holding the right values are ordered: "reversed", "sorted" or "in another order"."""
    if all(_close(p["shares"], right[::-1]) for (_c, _m, p), right in zip(results, rights)):
        return "in the reverse order of the images"
    if all(np.all(np.diff(p["shares"]) >= 0) or np.all(np.diff(p["shares"]) <= 0) for _c, _m, p in results):
        return "sorted"
    return "in another order"


def _digits(answer: float, right: float) -> tuple[str, str]:
    """The two numbers with as many significant digits as it takes to tell them apart (4 at least)."""
    for digits in range(4, 18):
        shown = f"{answer:.{digits}g}", f"{right:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _shares_problem(results: list[tuple[dict, dict, dict]]) -> tuple[str, str, list[np.ndarray] | None]:
    """(mistake, message, the empty maps the mistake gives per case or None) of the shares of the non-empty maps over
    every case; ("", "", None) if right (either placement)."""
    def explains(share: Callable, source: Callable[[dict], dict]) -> str:
        """The placement under which ``share`` of the maps ``source`` gives explains every case ("" if none)."""
        for placement in PLACEMENTS:
            if all(_matches(p["shares"][~m["empty"]], _shares_of(share, source(m)[placement], m)) for _c, m, p in results):
                return placement
        return ""

    if explains(_mass_share, lambda m: m["placed"]):
        return "", "", None
    for mistake, (share, message) in _SHARE_MISTAKES.items():
        if explains(share, lambda m: m["placed"]):
            return mistake, message, None
    # the map of another class (every image's share, an empty map's too): the top class's, or per case one class
    def full(cams: list[np.ndarray], maps: dict) -> np.ndarray:
        return np.array([_mass_share(cam, box) for cam, box in zip(cams, maps["boxes"])])

    def empties(cams: list[np.ndarray]) -> np.ndarray:
        return np.array([float(cam.sum()) <= 0 for cam in cams])

    for placement in PLACEMENTS:
        if all(_close(p["shares"], full(m["variant"]("top class")[placement], m)) for _c, m, p in results):
            return "top class", ("the shares are of the top class's map, not of class_name's: pass class_name to grad_cam "
                                 "as the target (grad_cam(model, image, class_name, layer='layer4')), not None."), [
                empties(m["variant"]("top class")[placement]) for _c, m, _p in results]
    used, wrong = [], ""
    for case, maps, parsed in results:
        names = [maps["class"]] + [name for name in maps["classes"] if name != maps["class"]]
        for name in names:
            variant = maps["placed"] if name == maps["class"] else maps["variant"](f"class {name}")
            placement = next((placement for placement in PLACEMENTS
                              if _close(parsed["shares"], full(variant[placement], maps))), "")
            if placement:
                used.append(empties(variant[placement]))
                # A class whose maps are all empty here matches any all-zero answer: evidence only from another input.
                if name != maps["class"] and not wrong and not empties(variant[placement]).all():
                    wrong = f"on {case['what']}, the shares are of class {name!r}'s map, not of class_name's ({maps['class']!r})"
                break
        else:
            break
    if len(used) == len(results) and wrong:
        return "class", (wrong + ": give grad_cam the class_name you were given, grad_cam(model, image, class_name, "
                         "layer='layer4'), a name of this model's classes (model.class_names), not an index from another "
                         "list (such as CLASSES)."), used
    for mistake, message in _MAP_MISTAKES.items():
        placement = explains(_mass_share, lambda m, mistake=mistake: m["variant"](mistake))
        if placement:
            return mistake, message, [np.array([float(cam.sum()) <= 0 for cam in m["variant"](mistake)[placement]])
                                      for _c, m, _p in results]
    # each image's share right under one placement or the other, but not all under the same one
    if all(np.all([any(abs(answer - _mass_share(m["placed"][placement][i], m["boxes"][i]))
                       <= _RTOL * abs(_mass_share(m["placed"][placement][i], m["boxes"][i])) + _ATOL for placement in PLACEMENTS)
                   for i, answer in enumerate(p["shares"]) if not m["empty"][i]]) for _c, m, p in results):
        return "mixed placements", ("some shares are measured on the map placed at the cells' centres (result.centres), "
                                    "others on the map stretched evenly (None): use the same placement for every image, "
                                    "upsample_cams(result.raw, result.image_size, result.centres)[0]."), None
    for how in ("//8", "all //8", "scaled", "scaled round"):
        if all(_close(p["shares"][~m["empty"]], np.array([
                _mass_share(cells, _cell_box(box, size, cells.shape, how))
                for cells, box, size, e in zip(m["variant"]("cells")["cells"], m["boxes"], m["sizes"], m["empty"]) if not e]))
               for _c, m, p in results):
            return "cells", ("the shares are measured on the raw cell grid (result.raw), with the box turned into cells: a "
                             "cell covers parts of the box and parts outside it, so the share is not the box's. Upsample the "
                             "map to the image's pixels first, upsample_cams(result.raw, result.image_size, "
                             "result.centres)[0], and take cam[top:bottom, left:right]."), None
    for placement in PLACEMENTS:
        rights = [np.array([_mass_share(cam, box) for cam, box in zip(m["placed"][placement], m["boxes"])]) for _c, m, _p in results]
        if all(_close(np.sort(p["shares"]), np.sort(right)) for (_c, _m, p), right in zip(results, rights)):
            return "sorted", (f"the shares are {_order(results, rights)}, not in the order of the images, so shares[i] no "
                              "longer belongs to images[i] and boxes[i]. Return them in the images' order (sort a copy, or "
                              "leave the sorting to np.median)."), None
    stale = _stale_map(results)
    if stale:
        return "stale", stale, None
    for case, maps, parsed in results:
        right = np.array([_mass_share(cam, box) for cam, box in zip(maps["placed"]["centres"], maps["boxes"])])
        for i, (answer, value, empty) in enumerate(zip(parsed["shares"], right, maps["empty"])):
            total = float(maps["placed"]["centres"][i].sum())
            if not empty and answer == 0 and value > 0 and total < 1e-3:
                return "threshold", (f"on {case['what']}, image {i}: your share is 0, but its map's total mass is {total:.3g}, tiny "
                                     "but not zero, and its share is {:.4g}. A map is empty only when its total mass is "
                                     "exactly 0 (the raw map is >= 0): a threshold (total < 1e-3, max < 1e-6) treats a map "
                                     "of small values as empty, and the scale of a raw map says nothing about where its "
                                     "mass is.".format(value)), None
            if not empty and not abs(answer - value) <= _RTOL * abs(value) + _ATOL:
                left, top, right_edge, bottom = maps["boxes"][i]
                height, width = maps["sizes"][i]
                yours, its = _digits(answer, value)
                dtype = parsed.get("shares dtype")
                if dtype is not None and dtype.itemsize < 8 and abs(answer - value) <= 1e-2 * abs(value):
                    return "precision", (f"on {case['what']}, image {i}: your share is {yours}, the map's mass in the box over "
                                         f"its total mass is {its}. Your shares are {dtype} ({np.finfo(dtype).precision} "
                                         "significant digits or fewer): compute and return them in float64, "
                                         "np.array(shares, dtype=float)."), None
                return "generic", (f"on {case['what']}, image {i} ({height}x{width}, box (left, top, right, bottom) = "
                                   f"{(left, top, right_edge, bottom)}): your share is {yours}, the map's mass in the box "
                                   f"over its total mass is {its}. Use Grad-CAM of class_name at layer4, upsampled "
                                   "raw to the image's size (upsample_cams(result.raw, result.image_size, result.centres)[0]), "
                                   "and cam[top:bottom, left:right].sum() / cam.sum()."), None
    return "generic", "the shares differ from the map's mass in the box over its total mass.", None


def _stale_map(results: list[tuple[dict, dict, dict]]) -> str:
    """The message for shares measured on the map of another image (a map kept from an earlier image or call, a cache
    keyed by id(image), the position or the size); "" if no wrong share is explained so."""
    others = [(case, i, cam) for case, maps, _p in results for i, cam in enumerate(maps["placed"]["centres"])
              if float(cam.sum()) > 0]
    for case, maps, parsed in results:
        for i, answer in enumerate(parsed["shares"]):
            own = maps["placed"]["centres"][i]
            right = _mass_share(own, maps["boxes"][i])
            if maps["empty"][i] and answer == 0 or abs(answer - right) <= _RTOL * abs(right) + _ATOL:
                continue
            for other_case, j, cam in others:
                if cam is own or (cam.shape == own.shape and np.array_equal(cam, own)):
                    continue
                value = _mass_share(cam, maps["boxes"][i])
                if value > 0 and abs(answer - value) <= _RTOL * abs(value) + _ATOL:
                    yours, its = _digits(answer, right)
                    where = "the same call" if other_case is case else f"an earlier call ({other_case['what']})"
                    return (f"on {case['what']}, image {i}: your share is {yours} where its own map gives {its}; {yours} is "
                            f"the share of the box in the map of another image, image {j} of {where}: a map kept from "
                            "another image (a cache keyed by id(image), the image's position or size, which Python reuses "
                            "for other images?). Compute each image's map from the image itself, in each call, with no "
                            "cache.")
            return ""
    return ""


def _chance_problem(results: list[tuple[dict, dict, dict]]) -> str:
    if all(_close(p["chance"], m["chance"]) for _c, m, p in results):
        return ""
    for _mistake, (chance, message) in _CHANCE_MISTAKES.items():
        if all(_close(p["chance"], np.array([chance(box, size, inputs) for box, size, inputs in zip(m["boxes"], m["sizes"], m["inputs"])]))
               for _c, m, p in results):
            return message
    if all(_close(np.sort(p["chance"]), np.sort(m["chance"])) for _c, m, p in results):
        order = ("in the reverse order of the images" if all(_close(p["chance"], m["chance"][::-1]) for _c, m, p in results)
                 else "in another order than the images")
        return (f"the chances are {order}: chance[i] is the share of images[i]'s area that boxes[i] covers; keep the "
                "images' order.")
    if all(_close(p["chance"], p["shares"]) for _c, m, p in results):
        return "answer['chance'] holds the shares again: chance is each box's share of its image's area, (right - left) * (bottom - top) / (H * W)."
    for case, maps, parsed in results:
        for i, (answer, value) in enumerate(zip(parsed["chance"], maps["chance"])):
            if not abs(answer - value) <= _RTOL * abs(value) + _ATOL:
                height, width = maps["sizes"][i]
                yours, its = _digits(answer, value)
                return (f"on {case['what']}, image {i} ({height}x{width}, box {maps['boxes'][i]}): your chance is {yours}, "
                        f"the box's share of the image's area is {its}: (right - left) * (bottom - top) / (H * W).")
    return "the chances differ from each box's share of its image's area."


def _summary_problem(results: list[tuple[dict, dict, dict]]) -> str:
    """The summary judged on the answer's own shares and chances (those of the reference if they are not finite)."""
    problems = []
    for key, variants in (("median", _medians), ("above_chance", _aboves), ("ratio", _ratios)):
        # a known mistake must give the answer on every case where it is wrong; one that gives it on every case
        # (where it happens to be right too) is preferred
        wrong_cases, all_cases = [], []
        for _case, maps, parsed in results:
            shares = parsed["shares"] if np.isfinite(parsed["shares"]).all() else np.nan_to_num(parsed["shares"], nan=0.0)
            chance = parsed["chance"] if np.isfinite(parsed["chance"]).all() and (parsed["chance"] > 0).all() else maps["chance"]
            right = summary(shares, chance)[key]
            if parsed[key] != parsed[key]:
                continue
            if key == "ratio" and _close(np.array(parsed[key]), np.array(parsed["median"] / float(np.median(chance)))):
                continue  # the answer's own median over the median chance: a wrong median is reported as such
            entry = (_case, parsed[key], right, variants(shares, chance, maps["empty"]))
            all_cases.append(entry)
            # right from the right shares (the answer's own were found wrong, e.g. rounded to float16): no second cause
            from_right = [summary(np.array([_mass_share(cam, box) for cam, box in zip(maps["placed"][placement], maps["boxes"])]),
                                  chance)[key] for placement in PLACEMENTS]
            if not _close(np.array(parsed[key]), np.array(right)) and not any(
                    _close(np.array(parsed[key]), np.array(value)) for value in from_right):
                wrong_cases.append(entry)
        if not wrong_cases:
            continue
        names = list(wrong_cases[0][3])
        def explains(name: str, cases: list) -> bool:
            return all(_close(np.array(answer), np.array(found_variants[name][0])) for _c, answer, _r, found_variants in cases)

        found = ([wrong_cases[0][3][name][1] for name in names if explains(name, all_cases)]
                 + [wrong_cases[0][3][name][1] for name in names if explains(name, wrong_cases)]
                 + [wrong_cases[0][3][name][1] for name in names if explains(name, wrong_cases[:1])])
        case, answer, right, _v = wrong_cases[0]
        yours, its = _digits(answer, right)
        problems.append(found[0] if found else f"answer[{key!r}] is {yours} where the contract gives {its} from your "
                        f"own shares and chances ({case['what']}).")
    return " ".join(problems)


def _empty_problem(results: list[tuple[dict, dict, dict]], used: list[np.ndarray] | None = None, ordered: bool = True) -> str:
    """What is wrong with the empty maps' shares and count; ``used``: per case, which maps are empty under the mistake
    the shares were found to have (a different map); ``ordered``: False when the shares are out of the images' order."""
    for case, maps, parsed in results:
        values = [parsed["shares"], parsed["chance"], *(np.array(parsed[key]) for key in ("median", "above_chance", "ratio"))]
        if not all(np.isfinite(value).all() for value in values):
            return ("the result holds NaN (or infinity) where a map is zero everywhere (here on an all-black or all-white "
                    "image): its total mass is 0, and 0 / 0 is NaN. The contract gives such a map share 0.0 and counts it "
                    "in answer['empty']; then the median, above_chance and ratio stay numbers.")
    for index, (case, maps, parsed) in enumerate(results):
        if used is not None:  # the maps the answer used (those of the mistake already reported)
            maps = {**maps, "empty": used[index]}
        empties = parsed["shares"][maps["empty"]] if ordered else np.array([])
        if len(empties) and not np.allclose(empties, 0.0):
            return (f"on {case['what']}, a map that is zero everywhere has share {float(empties[0]):.4g}: the contract gives it "
                    "share 0.0 (no mass, so none in the box).")
        if parsed["empty"] > int(maps["empty"].sum()) and any(
                float(cam.sum()) < 1e-3 for cam, e in zip(maps["placed"]["centres"], maps["empty"]) if not e):
            return (f"on {case['what']}, answer['empty'] is {parsed['empty']}, but {int(maps['empty'].sum())} of the "
                    f"{len(maps['empty'])} maps are zero everywhere: a map of tiny values (total mass below 1e-3) is not "
                    "empty. Count the maps whose total mass is exactly 0, not below a threshold.")
        if parsed["empty"] != int(maps["empty"].sum()):
            return (f"on {case['what']}, answer['empty'] is {parsed['empty']}, but {int(maps['empty'].sum())} of the "
                    f"{len(maps['empty'])} maps are zero everywhere: count the maps whose total mass is 0.")
    return ""


def _references(model: LoadedModel, case: dict[str, Any]) -> dict[str, Any]:
    return _maps(model, case)


def _explain(box_reliance: Callable, count: int = 0, earlier: int = 0) -> Callable[[BaseException], str | None]:
    """Messages for the errors of known mistakes (None: the generic message).

    ``count``: the number of images of the call; ``earlier``: how many the check's earlier calls gave in all.
    """

    def explain(error: BaseException) -> str | None:
        try:
            source = inspect.getsource(box_reliance)
        except (OSError, TypeError):
            source = ""
        if isinstance(error, ZeroDivisionError) and "//" in source:
            return (f"box_reliance raised ZeroDivisionError ({error}): your code uses integer division (//), and "
                    "(right - left) * (bottom - top) // (H * W) is 0 for every box smaller than its image, so the median "
                    "chance is 0 and the ratio divides by it. The chance is a fraction: divide with /.")
        if isinstance(error, ValueError) and "inhomogeneous" in str(error):
            return (f"box_reliance raised ValueError ({error}): the images can have different sizes, and an array "
                    "(np.asarray(images), np.stack) needs them all of one size. Take them one by one, for image, box in "
                    "zip(images, boxes); a list or an (N, H, W, 3) array both work that way.")
        sizes = re.search(r"broadcast together with shapes \((\d+),?\) \((\d+),?\)", str(error))
        if isinstance(error, ValueError) and sizes and count and count in (int(sizes[1]), int(sizes[2])) \
                and max(int(sizes[1]), int(sizes[2])) > count:
            more = max(int(sizes[1]), int(sizes[2]))
            kept = (f"{more} is these {count} plus the {earlier} images of the check's earlier calls: " if earlier and more - count == earlier
                    else "if the extra values are from earlier calls, ")
            return (f"box_reliance raised ValueError ({str(error).strip()}): this call has {count} images, but one of its arrays holds "
                    f"{more} values: {kept}a list (of shares or chances) is kept between calls and grows with each (a list "
                    "at module level, a default argument such as shares=[], or an attribute). Start new lists inside the "
                    "function at each call.")
        if isinstance(error, ValueError) and "values to unpack" in str(error):
            return (f"box_reliance raised ValueError ({error}): boxes holds one box per image, N rows of 4 numbers (left, "
                    "top, right, bottom), a list of N tuples or an (N, 4) array. Read it in that form, zip(images, boxes); "
                    "its transpose (np.asarray(boxes).T) is 4 x N, one row per coordinate.")
        return None

    return explain


def _where_changed(before: Any, after: Any) -> str:
    """Where two arrays (or lists of arrays) first differ, with the values there; "" if nowhere found."""
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return f"its length went from {len(before)} to {len(after)}"
        for i, (first, second) in enumerate(zip(before, after)):
            where = _where_changed(first, second)
            if where:
                return f"image {i}: {where}"
        return ""
    if isinstance(before, np.ndarray) and isinstance(after, np.ndarray):
        if before.shape != after.shape or before.dtype != after.dtype:
            return f"its shape or type went from {before.shape} {before.dtype} to {after.shape} {after.dtype}"
        differ = np.argwhere(before != after)
        if not len(differ):
            return ""
        shown = before.ndim - 1 if before.ndim >= 3 and before.shape[-1] in (1, 3, 4) else before.ndim
        at = tuple(int(v) for v in differ[0][:shown])
        old, new = before[at], after[at]
        return (f"at [{', '.join(str(v) for v in at)}] {np.array2string(np.asarray(old))} became "
                f"{np.array2string(np.asarray(new))}, {len({tuple(d[:shown]) for d in differ})} place(s) in all")
    return ""


def check_f(model: LoadedModel, box_reliance: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise f: ``box_reliance(model, images, boxes, class_name)`` against the contract, on generated inputs.

    Args:
        model: the model the notebook trained (any classifier with ``layer4`` works).
        box_reliance: the student's function; see the notebook's contract.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    toy, tiny = made_up_model(), made_up_model(TINY)
    small = smaller_input(model, SCENE_SIZE)  # the scenes' own size: a quick check for any model
    checker = Checker("f", CHECK_COUNT, catch_not_implemented=_grading, models=[model, small, toy, tiny])
    removed_hook = []

    @functools.wraps(box_reliance)
    def with_hook(*args: Any) -> Any:
        """The first call: with a harmless forward hook of the check's own on layer4, which must still be there after."""
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        layer = args[0].network.layer4
        hook = layer.register_forward_hook(lambda _module, _inputs, _output: None)
        try:
            return box_reliance(*args)
        finally:
            if hook.id not in layer._forward_hooks:
                removed_hook.append(True)
            hook.remove()

    toy_cases = made_up_cases()
    cases = [(made_up_model(case.get("scale", 1.0)), case) for case in toy_cases] + [(small, notebook_case(small))]
    results, changed_cases, first_call = [], {}, None
    for index, (owner, case) in enumerate(cases):
        maps = (_toy_maps(index) if index < len(toy_cases)
                else cached(small, ("exercise f", repr(small.preprocess)), lambda: _maps(small, case)))
        images = [np.array(image) for image in case["images"]] if isinstance(case["images"], list) else case["images"].copy()
        boxes = list(case["boxes"]) if isinstance(case["boxes"], list) else case["boxes"].copy()
        args = (owner, images, boxes, case["class"])
        first_call = args if first_call is None else first_call  # kept alive: no new array takes the ids of its images
        # the inputs are watched here, to say where an image changed (the start of an array may not show it)
        watched = watched_inputs(args, box_reliance)
        originals = [np.array(image) for image in images] if isinstance(images, list) else None
        explain_error = _explain(box_reliance, len(case["boxes"]), sum(len(earlier["boxes"]) for _, earlier in cases[:index]))
        edited_first: list[str] = []

        def explain(error: BaseException, images: Any = images, originals: Any = originals,
                    explain_error: Callable = explain_error, edited_first: list = edited_first) -> str | None:
            """An error raised after the function changed the images in place: the change, the likely cause, first."""
            where = _where_changed(originals, [np.asarray(image) for image in images]) if originals is not None else ""
            if not where:
                return explain_error(error)
            edited_first.append(where)
            text = (str(error).splitlines()[0] if str(error) else "").split(". ")[0].rstrip(".")
            return (f"box_reliance changed the images it was given as argument 2 in place ({where}), and then raised "
                    f"{type(error).__name__} ({text}): the error comes from the changed images, not from the images as "
                    "given (uint8, 0 to 255, which grad_cam takes as they are). Leave the caller's images as they were: "
                    "convert a copy, if anything, and give grad_cam the image itself.")

        ok, answer = checker.call(with_hook if index == 0 else box_reliance, *args, explain=explain, watch_inputs=False)
        if removed_hook and index == 0:
            checker.note_side_effect("hooks removed", "box_reliance removed a forward hook on model.network.layer4 that was "
                                     "there before the call (the check put one there; clearing layer4._forward_hooks or "
                                     "remove_all_hooks does it): it belongs to whoever registered it, whose recording stops "
                                     "working. Remove only the hooks your function registers, by their handles "
                                     "(handle.remove()).")
        name = shown_name(box_reliance, missing="box_reliance")
        for item in watched:
            change = item.change()
            if not change:
                continue
            if item.position == 1:
                # judged on the images as the function left them too: what it computed from its own edit is no
                # second mistake
                edited = [np.array(image) for image in images] if isinstance(images, list) else np.array(images)
                if all(len(np.asarray(image).shape) == 3 for image in edited):
                    changed_cases[index] = {**case, "images": edited}
            if item.position == 1 and originals is not None and edited_first:
                item.restore()
                continue  # said with the error it caused
            if item.position == 1 and originals is not None:
                where = _where_changed(originals, [np.asarray(image) for image in images]) or change
                copy = ("Loop over the list (for image, box in zip(images, boxes)) instead of taking items out of it "
                        "(pop, remove, del), or work on a copy of the list, list(images)," if where.startswith("its length") else
                        "Work on a copy (image.copy())")
                message = (f"{name} changed the images it was given as argument 2 ({item.parameter or 'images'}), in place "
                           f"({where}): the caller's images change with it, and their data is lost. {copy} and leave the "
                           "argument as it was.")
            elif isinstance(item.value, np.ndarray) and change == "its values":
                message = item.message(name, f"its values, {_where_changed(item.before, item.value)}")
            else:
                message = item.message(name, change)
            checker.note_side_effect(f"argument {item.position + 1}", message)
            item.restore()
        if not ok:
            checker.skip(CHECK_NAMES, "box_reliance must run first")
            return checker.finish()
        parsed, problem = _parse(answer, len(case["boxes"]))
        if parsed is None:
            checker.require(CHECK_NAMES[0], False, f"on {case['what']}: {problem}")
            checker.skip(CHECK_NAMES[1:], "fix the result's form first")
            return checker.finish()
        if index in changed_cases:
            edited = _maps(owner, changed_cases[index])
            if not _shares_problem([(case, maps, parsed)])[0] == "" and _shares_problem([(case, edited, parsed)])[0] == "":
                maps = edited
        results.append((case, maps, parsed))
    # The same function on a network in training mode: it must leave the mode as it found it.
    first = made_up_cases()[0]
    checker.keeps_mode(box_reliance, training_copy(toy), first["images"][:2], first["boxes"][:2], first["class"],
                       gradients=True)
    checker.require(CHECK_NAMES[0], True, "")
    mistake, problem, used = _shares_problem(results)
    if not mistake:
        mistake, problem = _other_model_problem(checker, box_reliance)
    if not mistake and first_call is not None:
        mistake, problem = _same_arrays_problem(checker, box_reliance, first_call)
    if not mistake:
        mistake, problem = _other_class_problem(checker, box_reliance, small, results[-1])
    checker.require(CHECK_NAMES[1], not mistake, problem)
    chance = _chance_problem(results)
    if mistake == "stale" and chance:
        chance = problem  # the chance from the size of another image's map: the same cause, said once
    checker.require(CHECK_NAMES[2], not chance, chance)
    empty = _empty_problem(results, used, ordered=mistake != "sorted")
    if mistake == "stale" and empty:
        empty = problem
    checker.require(CHECK_NAMES[3], not empty, empty)
    summary_problem = _summary_problem(results)
    checker.require(CHECK_NAMES[4], not summary_problem, summary_problem)
    return checker.finish()


def _other_model_problem(checker: Checker, box_reliance: Callable) -> tuple[str, str]:
    """The same images and class as an earlier call, on :func:`other_model`, whose maps differ: ("", "") if the shares
    are its maps', else (mistake, message)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    case = _other_case()
    images = case["images"].copy()
    answer = checker.quiet_call(box_reliance, other_model(), images, case["boxes"].copy(), case["class"], watch_inputs=False)
    parsed, _form = _parse(answer, len(case["boxes"])) if answer is not None else (None, "")
    if parsed is None or not np.array_equal(images, case["images"]):
        # an error, another form or images changed in place on a second call: the calls that judge results report those
        return "", ""
    right, first = _other_maps(), _toy_maps(OTHER_MODEL_CASE)
    if any(_close(parsed["shares"], np.array([_mass_share(cam, box) for cam, box in zip(right["placed"][placement], right["boxes"])]))
           for placement in PLACEMENTS):
        return "", ""
    before = [np.array([_mass_share(cam, box) for cam, box in zip(first["placed"][placement], first["boxes"])])[:OTHER_MODEL_IMAGES]
              for placement in PLACEMENTS]
    if any(_close(parsed["shares"], shares) for shares in before):
        return "stale", (f"called again with images, boxes and class as before (the first {OTHER_MODEL_IMAGES} of "
                         f"{case['what']}) but another model of the same name and classes "
                         "(a made-up network whose maps differ: class 'dark' there is the images' brightness), box_reliance "
                         "returned the first model's shares: a result kept from an earlier call, cached by the images and "
                         "the class (and the model's name?) but not the model itself? The notebook measures a second model on the same images: compute "
                         "the maps with the model each call is given, with no cache.")
    default = right["variant"]("layer3")
    if any(_close(parsed["shares"], np.array([_mass_share(cam, box) for cam, box in zip(default[placement], right["boxes"])]))
           for placement in PLACEMENTS):
        return "default layer", (f"on the first {OTHER_MODEL_IMAGES} of {case['what']} again, but with another model whose "
                                 "default Grad-CAM layer (its target_layer) is 'layer3', the shares are those of layer3's "
                                 "maps: grad_cam without layer= explains the model's default layer, which is layer4 only "
                                 "on some models. The contract asks for layer4: grad_cam(model, image, class_name, "
                                 "layer='layer4').")
    i = int(np.argmax(np.abs(parsed["shares"] - np.array([_mass_share(cam, box) for cam, box in zip(right["placed"]["centres"], right["boxes"])]))))
    yours, its = _digits(float(parsed["shares"][i]), _mass_share(right["placed"]["centres"][i], right["boxes"][i]))
    return "other model", (f"on the first {OTHER_MODEL_IMAGES} of {case['what']} again, but with another model (a made-up network whose class 'dark' map is "
                           f"the images' brightness), image {i}: your share is {yours}, the map's mass in the box over its "
                           f"total mass is {its}. Use the model you are given for the maps: grad_cam(model, image, "
                           "class_name, layer='layer4'), nothing kept from another call or model.")


def _mirrored_shares(images: Sequence[np.ndarray], boxes: Any, class_name: str) -> list[np.ndarray]:
    """The right shares of the first made-up case's images mirrored left to right, one array per placement."""
    key = (tuple(image.tobytes() for image in images), tuple(_box(box) for box in boxes), class_name)
    if key not in _MIRRORED:
        maps = _maps(made_up_model(), {"images": [np.array(image) for image in images], "boxes": boxes, "class": class_name})
        _MIRRORED[key] = [np.array([_mass_share(cam, box) for cam, box in zip(maps["placed"][placement], maps["boxes"])])
                          for placement in PLACEMENTS]
    return _MIRRORED[key]


_MIRRORED: dict[Any, list[np.ndarray]] = {}


def _same_arrays_problem(checker: Checker, box_reliance: Callable, first_call: tuple) -> tuple[str, str]:
    """The first call's list of images again, each array mirrored left to right in place (then put back): ("", "") if
    the shares are the mirrored images', else (mistake, message).

    The check kept the list and its arrays alive since the first call, so a result kept by the array objects (a cache
    keyed by id(image) or id(images)) gives the first call's shares; only then, new arrays of the same pixels tell it
    from a result kept by something else (the images' sizes or positions).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    model, images, boxes, class_name = first_call
    if not isinstance(images, list) or not all(isinstance(image, np.ndarray) and image.ndim == 3 for image in images):
        return "", ""  # the first call changed the list (reported there)
    case = made_up_cases()[0]
    first = _toy_maps(0)
    judged = ~np.asarray(first["empty"])  # an empty map's share is judged by a check of its own; mirrored, still empty
    before = [np.array([_mass_share(cam, box) for cam, box in zip(first["placed"][placement], first["boxes"])])[judged]
              for placement in PLACEMENTS]
    for image in images:
        image[...] = image[:, ::-1].copy()
    try:
        rights = [right[judged] for right in _mirrored_shares(images, boxes, class_name)]

        def shares(answer: Any) -> np.ndarray | None:
            parsed = _parse(answer, len(boxes))[0] if answer is not None else None
            return None if parsed is None else parsed["shares"][judged]

        answer = shares(checker.quiet_call(box_reliance, model, images, boxes, class_name, watch_inputs=False))
        if answer is None or any(_close(answer, right) for right in rights):
            return "", ""  # an error or another form on a second call: the calls that judge results report those
        what = (f"called again with the images of the first call ({case['what']}), each mirrored left to right in place "
                "(the check mirrored the arrays it gave before, in the same list)")
        if any(_close(answer, old) for old in before):
            # New arrays get the right shares, or those of arrays freed since whose ids they take: not the old ones.
            again = shares(checker.quiet_call(box_reliance, model, [image.copy() for image in images], list(boxes),
                                              class_name, watch_inputs=False))
            if again is not None and not any(_close(again, old) for old in before):
                return "stale", (f"{what}, box_reliance returned the shares of the images before the mirroring, though new "
                                 "arrays of the same pixels get other shares: a result kept from an earlier call by "
                                 "the array objects (a cache keyed by id(image) or id(images)): the same array changed "
                                 "in place, or a new array that takes the id of one freed before (Python reuses ids), "
                                 "gets an old result. Compute each image's map from the image itself, in each call, "
                                 "with no cache.")
            what += ", and on new arrays of the same pixels" if again is not None else ""
            return "stale", (f"{what}, box_reliance returned the shares of the images "
                             "before the mirroring: a result kept from an earlier call (a cache keyed by the images' sizes "
                             "or positions, not their pixels?). Compute each image's map from the image itself, in each "
                             "call, with no cache.")
        j = int(np.argmax(np.abs(answer - rights[0])))
        i = int(np.flatnonzero(judged)[j])
        yours, its = _digits(float(answer[j]), float(rights[0][j]))
        return "stale", (f"{what}, image {i}: your share is {yours}, the mirrored image's map gives {its}, though the "
                         "first call was right: do the shares depend on something kept from an earlier call? Compute "
                         "each image's map from the image itself, in each call.")
    finally:
        for image in images:
            image[...] = image[:, ::-1].copy()


def _other_class_problem(checker: Checker, box_reliance: Callable, model: LoadedModel,
                         result: tuple[dict, dict, dict]) -> tuple[str, str]:
    """The notebook case's images again, asked about the model's other class: ("", "") if the shares are that class's."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    case, maps, _parsed = result
    others = [name for name in model.class_names if name != case["class"]]
    if not others or len(model.class_names) > 10:
        return "", ""
    other = others[0]
    images = [np.array(image) for image in case["images"]]
    answer = checker.quiet_call(box_reliance, model, images, list(case["boxes"]), other, watch_inputs=False)
    parsed, _form = _parse(answer, len(case["boxes"])) if answer is not None else (None, "")
    if parsed is None:
        return "", ""  # an error or another form on a second call: the calls that judge results report those
    right = maps["variant"](f"class {other}")
    rights = [np.array([_mass_share(cam, box) for cam, box in zip(right[placement], maps["boxes"])]) for placement in PLACEMENTS]
    if any(_close(parsed["shares"], shares) for shares in rights):
        return "", ""
    i = int(np.argmax(np.abs(parsed["shares"] - rights[0])))
    yours, its = _digits(float(parsed["shares"][i]), float(rights[0][i]))
    first = [np.array([_mass_share(cam, box) for cam, box in zip(maps["placed"][placement], maps["boxes"])]) for placement in PLACEMENTS]
    kept = any(_close(parsed["shares"], shares) for shares in first)
    return "other class", (f"on {case['what'].replace(repr(case['class']), repr(other))} (the same images, asked about the "
                           f"model's other class), image {i}: your share is {yours}, the share of the map of class {other!r} is {its}"
                           + (f"; yours are the shares of class {case['class']!r}, asked about before: is the class taken "
                              "from the model's class names, or kept from an earlier call, rather than from class_name?"
                              if kept else ".")
                           + " Use the class you are given: grad_cam(model, image, class_name, layer='layer4').")


@functools.cache
def _other_maps() -> dict[str, Any]:
    return _maps(other_model(), _other_case())


@functools.cache
def _toy_maps(index: int) -> dict[str, Any]:
    case = made_up_cases()[index]
    return _maps(made_up_model(case.get("scale", 1.0)), case)
