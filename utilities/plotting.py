"""Figures: image lists, CAM overlays, feature-map grids and CAM grids.

Everything is RGB (matplotlib's order); nothing here uses OpenCV.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .cam import CamResult, normalize_cams, upsample_cams
from .classes import check_class_names
from .images import ImageLike, load_image, to_rgb_uint8

__all__ = [
    "DISPLAY_OVERSAMPLING",
    "display_shape",
    "overlay_cam",
    "show_cam",
    "show_cams",
    "show_feature_maps",
    "visualize_image_list",
]


def _as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def _displayable(image: ImageLike) -> np.ndarray:
    """An RGB uint8 image, or a 2-D float map to show with a colormap."""
    if isinstance(image, (np.ndarray, torch.Tensor)):
        array = _as_numpy(image)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim == 2:
            return array.astype(np.float32)
        if array.ndim == 3 and np.issubdtype(array.dtype, np.floating) and (array.min() < 0 or array.max() > 1):
            # A normalised network input: stretch to [0, 1] for display only.
            array = (array - array.min()) / max(float(array.max() - array.min()), 1e-12)
            return to_rgb_uint8(torch.from_numpy(array) if isinstance(image, torch.Tensor) else array)
        return to_rgb_uint8(image)
    return load_image(image)


def _value_limits(values: np.ndarray) -> dict[str, float]:
    """imshow limits that show a map constant up to float rounding as one flat colour.

    Autoscaling would stretch last-bit differences (from summation order) over
    the whole colormap and draw a pattern that is not there.
    """
    low, high = float(values.min()), float(values.max())
    if high - low > 1e-6 * max(abs(low), abs(high), 1e-30):
        return {}
    margin = max(abs(high), 1e-12)
    return {"vmin": low - margin, "vmax": high + margin}


def _symmetric_limits(values: np.ndarray) -> dict[str, float]:
    """imshow limits centred at zero: -max|values| .. +max|values| (never an empty range)."""
    largest = max(float(np.abs(values).max()), 1e-12)
    return {"vmin": -largest, "vmax": largest}


def _grid(count: int, ncols: int | None, size: float) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(count, ncols or min(count, 5)))
    nrows = math.ceil(count / ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    axes_list = list(axes.ravel())
    for axis in axes_list[count:]:
        axis.axis("off")
    return figure, axes_list[:count]


def visualize_image_list(
    images: ImageLike | Sequence[ImageLike],
    titles: str | Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 3.0,
    cmap: str | None = None,
    signed: bool = False,
    colorbar: bool = False,
) -> Figure:
    """Show images side by side in a grid.

    Args:
        images: one image or a list: paths, PIL images, arrays (H, W) or
            (H, W, C), or tensors (C, H, W). 2-D arrays are shown with ``cmap``
            and their own value range; normalised 3-channel tensors are
            stretched to [0, 1] for display.
        titles: one title per image.
        ncols: images per row (default: up to 5).
        size: inches per image.
        cmap: colormap for 2-D arrays (default ``"gray"``, or ``"RdBu_r"``
            when ``signed``).
        signed: show each 2-D array on a scale centred at zero, from
            -max|map| to +max|map| of that array, for maps with both signs.
        colorbar: add a colorbar next to each 2-D array.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: the number of titles differs from the number of images.
    """
    cmap = cmap or ("RdBu_r" if signed else "gray")
    single = isinstance(images, (str, np.ndarray, torch.Tensor)) or not isinstance(images, Sequence)
    image_list = [images] if single else list(images)
    title_list = [titles] if isinstance(titles, str) else list(titles) if titles is not None else [None] * len(image_list)
    if len(title_list) != len(image_list):
        raise ValueError(f"Got {len(image_list)} images but {len(title_list)} titles.")
    figure, axes = _grid(len(image_list), ncols, size)
    for axis, image, title in zip(axes, image_list, title_list):
        shown = _displayable(image)
        if shown.ndim == 2:
            limits = _symmetric_limits(shown) if signed else _value_limits(shown)
            drawn = axis.imshow(shown, cmap=cmap, **limits)
            if colorbar:
                figure.colorbar(drawn, ax=axis, fraction=0.046, pad=0.04)
        else:
            axis.imshow(_resized_pixels(shown, display_shape(shown.shape[:2], axis)), extent=_image_extent(shown.shape[:2]))
        axis.set_title(title or "")
        axis.axis("off")
    figure.tight_layout()
    return figure


#: Figures draw images at up to this many image pixels per screen pixel of
#: their axes: 2 keeps them sharp on high-density screens and in figures saved
#: at twice the screen's resolution. Larger images are downscaled first, so a
#: phone photo costs a figure what the figure can show, not its 12 megapixels.
DISPLAY_OVERSAMPLING = 2.0


def display_shape(shape: tuple[int, int], ax: Axes | None = None) -> tuple[int, int]:
    """The (height, width) at which an image of ``shape`` is drawn into ``ax``.

    The image's own shape when the axes show every pixel (at
    :data:`DISPLAY_OVERSAMPLING` image pixels per screen pixel), otherwise
    scaled down to that, keeping the aspect ratio. Without axes: those of
    :func:`show_cam`'s own figure.

    Args:
        shape: the image's (height, width).
        ax: the axes it will be drawn into.

    Returns:
        (height, width), each at least 1 and at most the image's.
    """
    height, width = int(shape[0]), int(shape[1])
    if ax is None:
        dpi = plt.rcParams["figure.dpi"]
        box_width, box_height = _CAM_FIGURE_WIDTH * dpi, _CAM_FIGURE_WIDTH * dpi * height / width
    else:
        box = ax.get_window_extent()
        box_width, box_height = box.width, box.height
    if box_width <= 0 or box_height <= 0:
        return height, width
    # imshow fits the image into the box at one scale; downscale to DISPLAY_OVERSAMPLING times that scale.
    scale = min(1.0, DISPLAY_OVERSAMPLING * min(box_width / width, box_height / height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resized_pixels(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """RGB uint8 (H, W, 3) resized to ``shape`` with antialiasing, in uint8 (no float copy of the image)."""
    if tuple(shape) == pixels.shape[:2]:
        return pixels
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0)  # channels-last view
    resized = F.interpolate(tensor, size=tuple(shape), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].permute(1, 2, 0).contiguous().numpy()


def _cam_on_image_grid(cam: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """A 2-D map as float32 of ``shape``, bilinear with pixel centres aligned (antialiased when shrinking)."""
    cam = torch.as_tensor(_as_numpy(cam)).float()
    if cam.ndim != 2:
        raise ValueError(f"A CAM is a 2-D map, got shape {tuple(cam.shape)}.")
    if torch.isnan(cam).any():
        raise ValueError("The CAM contains NaN; normalise with utilities.normalize_cams, which never divides by zero.")
    if tuple(cam.shape) != tuple(shape):
        shrinking = shape[0] < cam.shape[0] or shape[1] < cam.shape[1]
        cam = F.interpolate(cam[None, None], size=tuple(shape), mode="bilinear", align_corners=False, antialias=shrinking)[0, 0]
    return cam.numpy()


def _colours(cmap: str, cam: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A colormap's colour table (N, 3), float32 times ``scale``, and each value's row in it.

    The rows are those matplotlib picks for values in [0, 1]: min(floor(N value), N - 1).
    """
    colormap = colormaps[cmap]
    table = colormap(np.arange(colormap.N))[:, :3].astype(np.float32) * np.float32(scale)
    values = np.clip(cam, 0.0, 1.0)
    values *= colormap.N
    rows = np.minimum(values, colormap.N - 1).astype(np.uint8 if colormap.N <= 256 else np.int32)
    return table, rows


def overlay_cam(image: ImageLike, cam: np.ndarray | torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a CAM, coloured with a matplotlib colormap, onto its image.

    Works at the image's full resolution (this is what gets saved), in
    bands of rows, so that a 12-megapixel photo needs little more memory
    than the image and the result: the map's colours come from the colormap's
    table of (usually 256) colours, never as a float RGBA copy of the whole image.

    Args:
        image: the image the CAM belongs to.
        cam: a 2-D map in [0, 1], any size (resized bilinearly to the image).
        alpha: weight of the colour map; 0 shows only the image.
        cmap: matplotlib colormap name.

    Returns:
        An RGB uint8 array of the image's size.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}.")
    pixels = image if _is_rgb_uint8(image) else load_image(image)
    colours, indices = _colours(cmap, _cam_on_image_grid(cam, pixels.shape[:2]), 255.0 * alpha)
    blended = np.empty_like(pixels)
    band = max(1, _BAND_PIXELS // pixels.shape[1])
    for top in range(0, pixels.shape[0], band):
        rows = slice(top, top + band)
        values = pixels[rows].astype(np.float32)
        values *= np.float32(1.0 - alpha)
        values += np.take(colours, indices[rows], axis=0)  # twice as fast as colours[indices[rows]]
        np.rint(values, out=values)
        blended[rows] = np.clip(values, 0, 255, out=values)
    return blended


#: Pixels per band of rows in :func:`overlay_cam` (3 MB of float32 RGB, which stays in the CPU's cache).
_BAND_PIXELS = 1 << 18

#: Width in inches of the figure :func:`show_cam` makes.
_CAM_FIGURE_WIDTH = 5.0


def _is_rgb_uint8(image: object) -> bool:
    return isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3


def _image_extent(shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """imshow's extent for the full-size image, so that axes keep the image's pixel coordinates when it is downscaled."""
    height, width = shape
    return (-0.5, width - 0.5, height - 0.5, -0.5)


def show_cam(
    image: ImageLike,
    cam: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    cmap: str = "jet",
    colorbar: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draw a CAM over its image, with an optional colorbar for the CAM's values.

    The image and the map are drawn at the size the axes can show (see
    :func:`display_shape`): a phone photo is downscaled first, and a small
    map is upsampled only to that size. The axes keep the image's own pixel
    coordinates, so boxes and points drawn on them land where they belong.

    Args:
        image: the image.
        cam: a 2-D map in [0, 1], any size.
        alpha: opacity of the map.
        cmap: matplotlib colormap name.
        colorbar: add a colorbar.
        title: axes title.
        ax: axes to draw into (default: a new figure).

    Returns:
        The axes.
    """
    pixels = image if _is_rgb_uint8(image) else load_image(image)
    full_shape = pixels.shape[:2]
    if ax is None:
        _, ax = plt.subplots(figsize=(_CAM_FIGURE_WIDTH, _CAM_FIGURE_WIDTH * full_shape[0] / full_shape[1]))
    shape = display_shape(full_shape, ax)
    cam = _cam_on_image_grid(cam, shape)
    extent = _image_extent(full_shape)
    ax.imshow(_resized_pixels(pixels, shape), extent=extent)
    layer = ax.imshow(cam, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, extent=extent)
    if colorbar:
        ax.figure.colorbar(layer, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title or "")
    ax.axis("off")
    return ax


def show_feature_maps(
    activation: torch.Tensor | np.ndarray,
    count: int = 16,
    order: str = "strongest",
    ncols: int = 8,
    size: float = 1.6,
    cmap: str | None = None,
    title: str | None = None,
    signed: bool = False,
) -> Figure:
    """A grid of a layer's feature maps (channels).

    Args:
        activation: (C, H, W), or (1, C, H, W) for a batch of one.
        count: how many channels to show.
        order: ``"strongest"`` (highest mean activation first), ``"magnitude"``
            (highest mean absolute activation first) or ``"index"``.
        ncols: maps per row.
        size: inches per map.
        cmap: colormap (default ``"viridis"``, or ``"RdBu_r"`` when ``signed``).
        title: figure title.
        signed: for maps with both signs: all shown maps share one scale
            centred at zero (-max|value| .. +max|value| over the shown maps),
            with one colorbar. Without it, each map is stretched from its own
            minimum to its own maximum and there is no colorbar.

    Returns:
        The matplotlib figure.
    """
    cmap = cmap or ("RdBu_r" if signed else "viridis")
    maps = _as_numpy(activation)
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise ValueError(f"Expected feature maps (C, H, W), got shape {maps.shape}.")
    if order not in ("strongest", "magnitude", "index"):
        raise ValueError(f"order must be 'strongest', 'magnitude' or 'index', got {order!r}.")
    if order == "strongest":
        channels = np.argsort(-maps.mean(axis=(1, 2)), kind="stable")
    elif order == "magnitude":
        channels = np.argsort(-np.abs(maps).mean(axis=(1, 2)), kind="stable")
    else:
        channels = np.arange(len(maps))
    channels = channels[: min(count, len(maps))]
    figure, axes = _grid(len(channels), ncols, size)
    limits = _symmetric_limits(maps[channels]) if signed else {}
    for axis, channel in zip(axes, channels):
        drawn = axis.imshow(maps[channel], cmap=cmap, **limits)
        axis.set_title(f"channel {channel}", fontsize=8)
        axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if signed:
        figure.colorbar(drawn, ax=axes, fraction=0.02, pad=0.01)
    return figure


def show_cams(
    image: ImageLike,
    result: CamResult,
    ncols: int | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    size: float = 3.0,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """One CAM overlay per class of a :class:`~utilities.cam.CamResult`, titled with class and probability.

    Args:
        image: the image the CAMs belong to.
        result: the CAMs.
        ncols: overlays per row (default: up to 5).
        alpha: opacity of the maps.
        cmap: colormap.
        size: inches per overlay.
        class_names: all the model's class names, by class index, to title
            the overlays with; by default the names in ``result`` (those of
            the model or the ``class_names`` it was computed with).

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: ``class_names`` too short for the result's class indices.
    """
    if class_names is None:
        titles = list(result.class_names)
    else:
        names = check_class_names(class_names)
        missing = [index for index in result.class_indices if index >= len(names)]
        if missing:
            raise ValueError(
                f"class_names has {len(names)} names, but the result holds class index {missing[0]}; "
                "pass all the model's class names, one per output, in output order."
            )
        titles = [names[index] for index in result.class_indices]
    pixels = load_image(image)
    figure, axes = _grid(len(result), ncols, size)
    for position, axis in enumerate(axes):
        title = f"{titles[position]} ({float(result.probabilities[position]):.1%})"
        # Each map upsampled only to the size drawn, not all of result.maps at the image's size.
        cam = normalize_cams(upsample_cams(result.raw[position : position + 1], display_shape(pixels.shape[:2], axis)))[0]
        show_cam(pixels, cam, alpha=alpha, cmap=cmap, colorbar=False, title=title, ax=axis)
    figure.suptitle(f"{result.method} at {result.layer}")
    figure.tight_layout()
    return figure
