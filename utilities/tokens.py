"""Layer outputs that are grids without being laid out (N, C, h, w): transformer tokens and channels-last maps.

A CAM needs a layer's output as channels over a grid of cells. Convolutional
networks give that directly, (N, C, h, w). Two other layouts carry the same
information and are turned into it here, as pytorch-grad-cam's
``reshape_transform`` does, but found from the shapes instead of written by
hand:

- **tokens**, (N, T, D): a vision transformer's patch tokens, one per cell
  of an h x w grid (row by row), after ``skip`` leading tokens that belong to
  no cell (ViT's class token; DeiT's distillation token). The grid is the
  factorisation of ``T - skip`` whose aspect ratio matches the input's.
- **channels last**, (N, h, w, C): a Swin transformer's stages in torchvision.
  A 4-D output is read this way only when its dims 1 and 2 have the input's
  aspect ratio and its dims 2 and 3 do not, so that an ordinary (N, C, h, w)
  map is never misread.

In both cases every cell is a patch of the input at a fixed stride, so the
cells are spread evenly over the image (their centres are the patch centres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["MAX_SKIPPED_TOKENS", "SpatialLayout", "spatial_layout", "to_spatial"]

#: Leading tokens that may precede the patch tokens (class, distillation and register tokens).
MAX_SKIPPED_TOKENS = 8
#: How far a channels-last grid's aspect ratio may stray from the input's (as a ratio): an input whose sides are not
#: multiples of the stride gives a grid a little off (Swin pads).
_ASPECT_TOLERANCE = 0.15
#: The same for tokens, stricter: the number of leading tokens is guessed too, and a loose match would find a grid in
#: almost any count (197 tokens of a 1:2 input: 7 leading and 10 x 19); transformers take exact multiples of the patch.
_TOKEN_ASPECT_TOLERANCE = 0.03


@dataclass(frozen=True)
class SpatialLayout:
    """How a layer's output maps onto a grid of cells.

    Attributes:
        kind: ``"nchw"`` (a convolutional map), ``"tokens"`` or ``"nhwc"``.
        height: rows of cells.
        width: columns of cells.
        skip: leading tokens that belong to no cell (``"tokens"`` only).
    """

    kind: Literal["nchw", "tokens", "nhwc"]
    height: int
    width: int
    skip: int = 0


def _aspect_error(height: int, width: int, input_size: tuple[int, int]) -> float:
    return abs(math.log((height / width) / (input_size[0] / input_size[1])))


def _token_grid(count: int, input_size: tuple[int, int]) -> tuple[int, int] | None:
    """(h, w) with h * w == count and the input's aspect ratio, or None."""
    best = None
    for height in range(1, count + 1):
        if count % height:
            continue
        width = count // height
        error = _aspect_error(height, width, input_size)
        if error <= math.log(1 + _TOKEN_ASPECT_TOLERANCE) and (best is None or error < best[0]):
            best = (error, height, width)
    return None if best is None else best[1:]


def spatial_layout(shape: tuple[int, ...], input_size: tuple[int, int]) -> SpatialLayout | None:
    """The grid a layer output of ``shape`` lies on, for an input of ``input_size`` (H, W); ``None`` if none.

    Args:
        shape: the output's shape, batch first.
        input_size: the network input's (H, W) in pixels.

    Returns:
        The layout; ``None`` for outputs with no grid of more than one cell
        (pooled features, logits, a sequence with no factorisation of the
        input's aspect ratio).
    """
    if len(shape) == 4:
        _, first, second, third = shape
        tolerance = math.log(1 + _ASPECT_TOLERANCE)
        channels_last = first * second > 1 and _aspect_error(first, second, input_size) <= tolerance
        if second * third > 1 and (_aspect_error(second, third, input_size) <= tolerance or not channels_last):
            return SpatialLayout("nchw", second, third)
        if channels_last:
            return SpatialLayout("nhwc", first, second)
        return None
    if len(shape) == 3:
        tokens = shape[1]
        for skip in range(0, min(MAX_SKIPPED_TOKENS, tokens - 2) + 1):
            grid = _token_grid(tokens - skip, input_size)
            if grid is not None and grid[0] * grid[1] > 1:
                return SpatialLayout("tokens", *grid, skip=skip)
    return None


def to_spatial(output: torch.Tensor, layout: SpatialLayout) -> torch.Tensor:
    """A layer output (or its gradient) as (N, C, h, w), following ``layout``.

    Args:
        output: the tensor, batch first, in the layout's shape.
        layout: from :func:`spatial_layout`.

    Returns:
        A view or a copy laid out (N, C, h, w).
    """
    if layout.kind == "nchw":
        return output
    if layout.kind == "nhwc":
        return output.permute(0, 3, 1, 2)
    cells = output[:, layout.skip :]  # (N, h * w, D), row by row
    return cells.transpose(1, 2).reshape(output.shape[0], output.shape[2], layout.height, layout.width)
