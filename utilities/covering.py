"""Covering tests beside a map: notebooks 0b, 0c and 0d.

A map's **content** in a box is read in logits: at ``layer4`` of the course
models (which feed only global average pooling and the linear ``fc``) a
map's cells before its ReLU add up to the class's logit minus ``fc``'s bias,
so the cells drawn in a box, each counted by the part of its drawn area that
lies inside, are the map's account of what the box adds to the logit. A
**covering test** paints the box over and reads the change of the logit.

Boxes are ``(left, top, right, bottom)`` in the photo's pixels; a "box" in the
functions below is a list of such rectangles, read as one region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter

from .cam import CamResult, upsample_cams
from .images import ImageLike, load_image
from .models import LoadedModel

__all__ = ["BLUR_RADIUS", "FILLS", "Box", "box_area", "cell_parts", "cell_share", "content_in", "covering_table", "logits_of", "paint", "pixel_change"]

Box = Sequence[tuple[int, int, int, int]]

#: The ways :func:`paint` fills a box.
FILLS = ("mean", "blur", "black")

#: The Gaussian blur's radius (its standard deviation, in photo pixels) of the "blur" fill.
BLUR_RADIUS = 20


_DRAWN: dict = {}  # the last grid's drawn cells, keyed by its shape, image size and centres


def _drawn_cells(result: CamResult) -> torch.Tensor:
    """Each cell drawn alone, (h * w, H, W): drawing is linear, so one row of an identity matrix gives its drawn weight."""
    h, w = result.raw.shape[1:]
    centres = result.centres
    key = (h, w, tuple(result.image_size),
           None if centres is None else (tuple(centres.rows), tuple(centres.columns), tuple(centres.input_size)))
    if key not in _DRAWN:
        _DRAWN.clear()  # keep one grid: the tensor is h * w photo-sized maps
        _DRAWN[key] = upsample_cams(torch.eye(h * w).reshape(h * w, h, w), result.image_size, centres)
    return _DRAWN[key]


def cell_parts(result: CamResult, box: Box) -> torch.Tensor:
    """Each cell's part of its drawn weight that lies inside the box, as an (h, w) grid (0: all outside, 1: all inside)."""
    drawn = _drawn_cells(result)
    mask = torch.zeros(result.image_size)
    for x0, y0, x1, y1 in box:
        mask[y0:y1, x0:x1] = 1
    return ((drawn * mask).sum(dim=(1, 2)) / drawn.sum(dim=(1, 2))).reshape(result.raw.shape[1:])


def content_in(result: CamResult, box: Box) -> list[float]:
    """Each map's content in the box, in logits: every cell's value (``result.raw``) times its part inside.

    Counted by cells, not pixels: the figures draw the cells at some edges of
    the photo over fewer pixels than the others (which edges depends on the
    model's padding, notebook 4b), and this split gives every cell its full weight.
    """
    part = cell_parts(result, box).flatten()
    return [float(cells.flatten() @ part) for cells in result.raw]


def cell_share(result: CamResult, box: Box) -> float:
    """The box's share of the cells, counted as :func:`content_in` counts: what a map with all cells equal puts there."""
    return float(cell_parts(result, box).mean())


def box_area(box: Box, image_size: tuple[int, int]) -> float:
    """The box's share of the photo's pixels (its rectangles must not overlap)."""
    return sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in box) / (image_size[0] * image_size[1])


def paint(image: ImageLike, box: Box, fill: str = "mean") -> np.ndarray:
    """The photo with the box painted over.

    Args:
        image: the photo.
        box: the rectangles to paint.
        fill: ``"mean"``, the photo's mean colour, flat; ``"blur"``, the
            same place in the whole photo blurred by a Gaussian of radius
            :data:`BLUR_RADIUS` pixels (edges and texture go, colours and
            large shapes stay); or ``"black"``, flat black.
    """
    image = load_image(image).copy()
    if fill == "mean":
        source = np.broadcast_to(image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), image.shape)
    elif fill == "black":
        source = np.zeros_like(image)
    elif fill == "blur":
        source = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))
    else:
        raise ValueError(f"fill must be one of {FILLS}, not {fill!r}")
    for x0, y0, x1, y1 in box:
        image[y0:y1, x0:x1] = source[y0:y1, x0:x1]
    return image


def pixel_change(image: ImageLike, box: Box, fill: str = "mean") -> float:
    """How much painting changes the box: the mean absolute change of its pixels' channels, on the 0..255 scale."""
    image = load_image(image)
    painted = paint(image, box, fill)
    inside = np.zeros(image.shape[:2], dtype=bool)
    for x0, y0, x1, y1 in box:
        inside[y0:y1, x0:x1] = True
    return float(np.abs(painted.astype(np.int16) - image.astype(np.int16))[inside].mean())


@torch.inference_mode()
def logits_of(model: LoadedModel, image: ImageLike, names: Sequence[str]) -> tuple[list[float], str]:
    """The logits of some classes, and the top class."""
    logits = model.network(model.to_input(image))[0]
    return [float(logits[model.class_index(name)]) for name in names], model.class_names[int(logits.argmax())]


def covering_table(
    model: LoadedModel,
    image: ImageLike,
    result: CamResult,
    boxes: dict[str, Box],
    fills: Sequence[str] = ("mean", "blur"),
    show: bool = True,
) -> dict[str, dict]:
    """For each box: its area, the maps' content there and each logit's change when the box is painted, per fill.

    Prints (unless ``show`` is false) a first line with each class's logit
    minus ``fc``'s bias beside the sum of its map's cells, then one row per
    box: its share of the pixels and of the cells, how much each fill changes
    its pixels, and for each class the map's content and the change with each
    fill; last, the boxes whose painting changes the photo's top class.

    Returns:
        ``{label: {"map": [per class], "area": share of the pixels, "cells": share of the cells,
        "pixels": {fill: change}, "covered": {fill: [per class]}, "top": {fill: class}}}``.
    """
    names = result.class_names
    photo = load_image(image)
    before, top_before = logits_of(model, photo, names)
    bias = model.network.fc.bias
    rows = {}
    for label, box in boxes.items():
        part = cell_parts(result, box).flatten()
        row = {"map": [float(cells.flatten() @ part) for cells in result.raw], "area": box_area(box, result.image_size), "cells": float(part.mean())}
        row["pixels"] = {fill: pixel_change(photo, box, fill) for fill in fills}
        row["covered"], row["top"] = {}, {}
        for fill in fills:
            after, row["top"][fill] = logits_of(model, paint(photo, box, fill), names)
            row["covered"][fill] = [a - b for a, b in zip(after, before)]
        rows[label] = row
    if show:
        print("logit - bias, and the sum of the map's cells: "
              + ", ".join(f"{name} {float(score - bias[index]):.2f} and {float(cells.sum()):.2f}"
                          for name, score, index, cells in zip(names, result.scores, result.class_indices, result.raw)))
        group = 7 * (1 + len(fills))
        print(f"{'':<35}" + f"{'pixel change':>{6 * len(fills)}}" + "".join(f"  {name[:group]:>{group}}" for name in names))
        print(f"{'box':<24}{'area':>5}{'cells':>6}" + "".join(f"{fill:>6}" for fill in fills)
              + (f"  {'map':>7}" + "".join(f"{fill:>7}" for fill in fills)) * len(names))
        for label, row in rows.items():
            print(f"{label:<24}{row['area']:>5.0%}{row['cells']:>6.0%}" + "".join(f"{row['pixels'][fill]:>6.1f}" for fill in fills)
                  + "".join(f"  {row['map'][k]:>+7.2f}" + "".join(f"{row['covered'][fill][k]:>+7.2f}" for fill in fills) for k in range(len(names))))
        changed = [f"{label} -> {' / '.join(row['top'][fill] for fill in fills)}" for label, row in rows.items()
                   if any(row["top"][fill] != top_before for fill in fills)]
        print(f"top class {top_before}; covering changes it ({' / '.join(fills)}): " + ("; ".join(changed) or "nowhere"))
    return rows
