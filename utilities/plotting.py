"""Figures: image lists, CAM overlays, feature-map grids and CAM grids.

Everything is RGB (matplotlib's order); nothing here uses OpenCV.

Maps are coloured with :data:`CAM_COLORMAP` (``"inferno"``) unless a
``cmap`` is given: a perceptually uniform colormap whose lightness rises
steadily with the value, so that it draws no bands the map does not have, and
the order of values survives a greyscale print and colour-vision deficiency.
``cmap="jet"`` gives the colours of much of the CAM literature.
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
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from .cam import CamResult, normalize_cams, upsample_cams
from .receptive_field import CellCentres, place_maps
from .classes import check_class_names
from .images import ImageLike, load_image, to_rgb_uint8

__all__ = [
    "CAM_COLORMAP",
    "DISPLAY_OVERSAMPLING",
    "MIN_PANEL_INCHES",
    "OWN_RANGE_LABEL",
    "check_colormap",
    "display_shape",
    "format_probability",
    "overlay_cam",
    "show_cam",
    "show_cams",
    "show_cell_blocks",
    "show_feature_maps",
    "visualize_image_list",
]


#: The colormap of every class activation map drawn by this package (overlays,
#: :func:`show_cam`, :func:`show_cams`, the widgets and ``python -m
#: utilities.explain``). "inferno" is perceptually uniform: equal steps in value
#: look like equal steps in colour, so it draws no edges that the map does not
#: have (``jet`` does: its lightness peaks at cyan and yellow). Its CIELAB
#: lightness rises monotonically from 0 (black, the map's lowest value) to 98
#: (pale yellow, its highest), so the order of values is the same in a
#: greyscale print and for readers with a colour-vision deficiency. Over a
#: photo, low values darken it and high values lighten it, instead of tinting
#: it with a hue. Pass ``cmap="jet"`` to compare with the literature's figures.
CAM_COLORMAP = "inferno"

#: The narrowest a map panel is drawn, in inches: below it, the structure of a
#: map and a two-line title cannot be read. :func:`show_cams` refuses smaller panels.
MIN_PANEL_INCHES = 2.5

#: :func:`show_cams`' galleries are at most this wide by default (a notebook's
#: output area at 100 dpi), so that a notebook does not shrink the panels to fit.
_GALLERY_WIDTH = 12.0

#: The label of the colorbar of maps each scaled to [0, 1] by its own minimum
#: and maximum (:func:`~utilities.cam.normalize_cams`): the colours say nothing
#: about how large a map is next to another.
OWN_RANGE_LABEL = "each map scaled to its own range\n(0 = its minimum, 1 = its maximum)"


def check_colormap(name: str) -> Colormap:
    """The matplotlib colormap called ``name``.

    Args:
        name: a colormap name, e.g. ``"inferno"`` (:data:`CAM_COLORMAP`) or ``"jet"``.

    Returns:
        The colormap.

    Raises:
        ValueError: no colormap has that name; the message suggests near names.
    """
    try:
        return colormaps[name]
    except KeyError as error:  # matplotlib's message lists near names
        raise ValueError(
            f"Unknown colormap {name!r}: {error.args[0] if error.args else ''} Give a matplotlib colormap name, "
            f"e.g. {CAM_COLORMAP!r} (the default) or 'jet'."
        ) from None


def format_probability(probability: float) -> str:
    """A probability as a percentage that does not round a small one to zero.

    One decimal from 0.1 % up (``"42.8%"``), two significant digits below
    (``"0.047%"``), so that a class with little probability is not shown as
    ``"0.0%"``.

    Args:
        probability: a probability in [0, 1].

    Returns:
        The percentage as text.
    """
    probability = float(probability)
    if probability >= 0.001 or probability == 0.0:
        return f"{probability:.1%}"
    return f"{100 * probability:.2g}%"


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


def _grid(
    count: int, ncols: int | None, size: float, aspect: float = 1.0, title_lines: int = 1, extra_height: float = 0.0
) -> tuple[Figure, list[Axes]]:
    """A grid of ``count`` axes, ``size`` inches wide and ``size * aspect`` tall each, with room for their titles.

    Sizing the rows by the images' aspect (height / width) leaves no band of
    empty space between rows of wide images; ``extra_height`` inches are added
    for a suptitle.
    """
    ncols = max(1, min(count, ncols or min(count, 5)))
    nrows = math.ceil(count / ncols)
    row_height = size * aspect + 0.25 * title_lines + 0.25  # the titles' lines and the layout's padding
    figure, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, row_height * nrows + extra_height), squeeze=False)
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
    suptitle: str | None = None,
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
        suptitle: a title over the whole figure, e.g. to say how maps are
            scaled (added before the layout, so that it has its own room).

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
    shown_list = [_displayable(image) for image in image_list]
    aspect = max(shown.shape[0] / shown.shape[1] for shown in shown_list)
    title_lines = max((title.count("\n") + 1 for title in title_list if title), default=0)
    figure, axes = _grid(len(shown_list), ncols, size, aspect, title_lines, 0.4 if suptitle else 0.0)
    for axis, shown, title in zip(axes, shown_list, title_list):
        if shown.ndim == 2:
            limits = _symmetric_limits(shown) if signed else _value_limits(shown)
            drawn = axis.imshow(shown, cmap=cmap, **limits)
            if colorbar:
                figure.colorbar(drawn, ax=axis, fraction=0.046, pad=0.04)
        else:
            axis.imshow(_resized_pixels(shown, display_shape(shown.shape[:2], axis)), extent=_image_extent(shown.shape[:2]))
        axis.set_title(title or "")
        axis.axis("off")
    if suptitle:
        figure.suptitle(suptitle)
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


def _cam_on_image_grid(cam: np.ndarray | torch.Tensor, shape: tuple[int, int], centres: CellCentres | None = None) -> np.ndarray:
    """A 2-D map as float32 of ``shape``: placed at ``centres`` when it is a map of those cells, else bilinear
    with pixel centres aligned (antialiased when shrinking)."""
    cam = torch.as_tensor(_as_numpy(cam)).float()
    if cam.ndim != 2:
        raise ValueError(f"A CAM is a 2-D map, got shape {tuple(cam.shape)}.")
    if torch.isnan(cam).any():
        raise ValueError("The CAM contains NaN; normalise with utilities.normalize_cams, which never divides by zero.")
    if centres is not None and tuple(cam.shape) == (len(centres.rows), len(centres.columns)):
        return place_maps(cam[None], centres, shape)[0].numpy()
    if tuple(cam.shape) != tuple(shape):
        shrinking = shape[0] < cam.shape[0] or shape[1] < cam.shape[1]
        cam = F.interpolate(cam[None, None], size=tuple(shape), mode="bilinear", align_corners=False, antialias=shrinking)[0, 0]
    return cam.numpy()


def _colours(cmap: str, cam: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A colormap's colour table (N, 3), float32 times ``scale``, and each value's row in it.

    The rows are those matplotlib picks for values in [0, 1]: min(floor(N value), N - 1).
    """
    colormap = check_colormap(cmap)
    table = colormap(np.arange(colormap.N))[:, :3].astype(np.float32) * np.float32(scale)
    values = np.clip(cam, 0.0, 1.0)
    values *= colormap.N
    rows = np.minimum(values, colormap.N - 1).astype(np.uint8 if colormap.N <= 256 else np.int32)
    return table, rows


def overlay_cam(
    image: ImageLike,
    cam: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    cmap: str = CAM_COLORMAP,
    centres: CellCentres | None = None,
) -> np.ndarray:
    """Blend a CAM, coloured with a matplotlib colormap, onto its image.

    Works at the image's full resolution (this is what gets saved), in
    bands of rows, so that a 12-megapixel photo needs little more memory
    than the image and the result: the map's colours come from the colormap's
    table of (usually 256) colours, never as a float RGBA copy of the whole image.

    Args:
        image: the image the CAM belongs to.
        cam: a 2-D map in [0, 1], any size (resized bilinearly to the image).
        alpha: weight of the colour map; 0 shows only the image.
        cmap: matplotlib colormap name (default :data:`CAM_COLORMAP`).
        centres: the cells' receptive-field centres (``result.centres``), for a map at the layer's
            resolution (``result.raw``): each cell's value is then drawn at its centre
            (:func:`~utilities.receptive_field.place_maps`). Without them a small map is stretched evenly.

    Returns:
        An RGB uint8 array of the image's size.

    Raises:
        ValueError: ``alpha`` outside [0, 1], an unknown ``cmap``, or a map
            that is not 2-D or holds NaN.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}.")
    pixels = image if _is_rgb_uint8(image) else load_image(image)
    colours, indices = _colours(cmap, _cam_on_image_grid(cam, pixels.shape[:2], centres), 255.0 * alpha)
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
    cmap: str = CAM_COLORMAP,
    colorbar: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    colorbar_label: str | None = None,
    centres: CellCentres | None = None,
) -> Axes:
    """Draw a CAM over its image, with an optional colorbar for the CAM's values.

    The image and the map are drawn at the size the axes can show (see
    :func:`display_shape`): a phone photo is downscaled first, and a small
    map is upsampled only to that size. The axes keep the image's own pixel
    coordinates, so boxes and points drawn on them land where they belong.

    The colorbar shows the colormap's own colours at full opacity: the colour
    each value adds to the photo, not the blend (which depends on the photo).

    Args:
        image: the image.
        cam: a 2-D map in [0, 1], any size.
        alpha: opacity of the map.
        cmap: matplotlib colormap name (default :data:`CAM_COLORMAP`).
        colorbar: add a colorbar.
        title: axes title.
        ax: axes to draw into (default: a new figure, 5 inches wide).
        colorbar_label: the colorbar's label, e.g. :data:`OWN_RANGE_LABEL`
            for a map normalised by its own minimum and maximum.
        centres: as for :func:`overlay_cam`: place a map at the layer's resolution at its cells' centres.

    Returns:
        The axes.
    """
    check_colormap(cmap)  # before a figure is made
    pixels = image if _is_rgb_uint8(image) else load_image(image)
    full_shape = pixels.shape[:2]
    if ax is None:
        _, ax = plt.subplots(figsize=(_CAM_FIGURE_WIDTH, _CAM_FIGURE_WIDTH * full_shape[0] / full_shape[1]))
    shape = display_shape(full_shape, ax)
    cam = _cam_on_image_grid(cam, shape, centres)
    extent = _image_extent(full_shape)
    ax.imshow(_resized_pixels(pixels, shape), extent=extent)
    ax.imshow(cam, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, extent=extent)
    if colorbar:
        # From the colormap, not from the blended layer: its alpha would make the bar pale.
        bar = ax.figure.colorbar(_unit_scale(cmap), ax=ax, fraction=0.046, pad=0.04)
        if colorbar_label:
            bar.set_label(colorbar_label)
    ax.set_title(title or "")
    ax.axis("off")
    return ax


def _unit_scale(cmap: str) -> ScalarMappable:
    """The colormap on the scale 0 to 1, opaque, for a colorbar."""
    return ScalarMappable(norm=Normalize(vmin=0.0, vmax=1.0), cmap=check_colormap(cmap))


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
    figure, axes = _grid(len(channels), ncols, size, maps.shape[1] / maps.shape[2], 1, 0.4 if title else 0.0)
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
    cmap: str = CAM_COLORMAP,
    size: float = 3.0,
    class_names: Sequence[str] | None = None,
    colorbar: bool = True,
    raw_max: bool = True,
) -> Figure:
    """A gallery: one CAM overlay per class of a :class:`~utilities.cam.CamResult`.

    Each map is scaled to [0, 1] by its own minimum and maximum, so equal
    colours in two panels need not mean equal values. The figure says so: each
    panel is titled with its class, probability and the map's raw maximum
    (``result.raw``, at the layer's resolution, before scaling), and one
    colorbar for all panels is labelled :data:`OWN_RANGE_LABEL`. A map whose
    values are all zero stays all zero (the colormap's lowest colour).

    Args:
        image: the image the CAMs belong to.
        result: the CAMs.
        ncols: overlays per row (default: as many as fit in 12 inches, at most 4
            at the default size).
        alpha: opacity of the maps.
        cmap: matplotlib colormap name (default :data:`CAM_COLORMAP`).
        size: width of each overlay in inches, at least :data:`MIN_PANEL_INCHES`.
        class_names: all the model's class names, by class index, to title
            the overlays with; by default the names in ``result`` (those of
            the model or the ``class_names`` it was computed with).
        colorbar: add the shared colorbar.
        raw_max: add each map's raw maximum to its title.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: ``class_names`` too short for the result's class indices,
            or ``size`` below :data:`MIN_PANEL_INCHES`.
    """
    check_colormap(cmap)  # before a figure is made
    if size < MIN_PANEL_INCHES:
        raise ValueError(
            f"size={size} inches per map is too small to read; use at least {MIN_PANEL_INCHES}. "
            "For many maps, use more rows instead: a smaller ncols, or result.select(...) to show fewer."
        )
    if class_names is None:
        names = list(result.class_names)
    else:
        all_names = check_class_names(class_names)
        missing = [index for index in result.class_indices if index >= len(all_names)]
        if missing:
            raise ValueError(
                f"class_names has {len(all_names)} names, but the result holds class index {missing[0]}; "
                "pass all the model's class names, one per output, in output order."
            )
        names = [all_names[index] for index in result.class_indices]
    titles = [f"{name} ({format_probability(p)})" for name, p in zip(names, result.probabilities.tolist())]
    if raw_max:
        maxima = result.raw.flatten(1).amax(dim=1).tolist() if len(result) else []
        titles = [f"{title}\nraw max {maximum:#.3g}" for title, maximum in zip(titles, maxima)]
    pixels = load_image(image)
    count = len(result)
    ncols = max(1, min(count, ncols or max(1, int(_GALLERY_WIDTH // size))))
    figure, axes, bar_axes = _gallery(count, ncols, size, pixels.shape[0] / pixels.shape[1], 2 if raw_max else 1, colorbar)
    for position, axis in enumerate(axes):
        # Each map upsampled only to the size drawn, not all of result.maps at the image's size.
        cam = normalize_cams(upsample_cams(result.raw[position : position + 1], display_shape(pixels.shape[:2], axis), result.centres))[0]
        show_cam(pixels, cam, alpha=alpha, cmap=cmap, colorbar=False, title=titles[position], ax=axis)
    figure.suptitle(f"{result.method} at {result.layer}")
    if bar_axes is not None:
        bar = figure.colorbar(_unit_scale(cmap), cax=bar_axes, orientation="horizontal")
        bar.set_ticks([0.0, 0.5, 1.0])
        bar.set_label(OWN_RANGE_LABEL)
    return figure


def _gallery(
    count: int, ncols: int, size: float, aspect: float, title_lines: int, colorbar: bool
) -> tuple[Figure, list[Axes], Axes | None]:
    """A figure of ``count`` panels ``size`` inches wide and ``size * aspect`` tall, with room for titles.

    Laid out by hand, in inches, so that every panel is exactly ``size`` wide
    and no band of empty space is left: a layout engine would size the panels
    from the figure instead. Under the panels, a colorbar about 3 inches long.

    Returns:
        The figure, the panels' axes (in order, the first ones of
        ``figure.axes``) and the colorbar's axes (``None`` without one).
    """
    nrows = math.ceil(count / ncols)
    points = 1 / 72  # inches per point

    def font_size(setting: str) -> float:
        return FontProperties(size=plt.rcParams[setting]).get_size_in_points() * points

    # Text heights: about one font size a line, and a little for the title's pad above the image.
    title_height = title_lines * 1.05 * font_size("axes.titlesize") + 3 * points
    suptitle_text = 1.2 * font_size("figure.titlesize") + 0.08  # and a gap under it
    bar_thickness, gap, margin = 0.12, 0.1, 0.05
    # tick marks and labels, and the two-line label, under the bar; 0.2 inches of space above it
    bar_labels = 8 * points + 1.2 * font_size("xtick.labelsize") + 2.4 * font_size("axes.labelsize")
    bar_block = (bar_labels + bar_thickness + 0.2) if colorbar else 0.0
    panel_height = size * aspect
    width = ncols * size + (ncols - 1) * gap + 2 * margin
    content = nrows * (title_height + panel_height) + (nrows - 1) * gap + bar_block + margin
    # suptitle() puts its text's top at 98 % of the figure's height (also when called again on the figure)
    height = (content + suptitle_text) / 0.98
    suptitle_height = height - content
    figure = plt.figure(figsize=(width, height))
    axes = []
    for position in range(count):
        row, column = divmod(position, ncols)
        left = margin + column * (size + gap)
        top = suptitle_height + row * (title_height + panel_height + gap) + title_height
        axes.append(figure.add_axes((left / width, 1 - (top + panel_height) / height, size / width, panel_height / height)))
    bar_axes = None
    if colorbar:
        bar_width = min(3.0, width - 2 * margin)
        bottom = margin + bar_labels
        bar_axes = figure.add_axes(((width - bar_width) / 2 / width, bottom / height, bar_width / width, bar_thickness / height))
    return figure, axes, bar_axes


def show_cell_blocks(
    ax: Axes,
    colours: np.ndarray,
    centres: CellCentres,
    image_shape: tuple[int, int],
    hatched: np.ndarray | None = None,
) -> Axes:
    """Draw one coloured block per cell of a layer, on the axes of the photo it belongs to.

    Each block is one cell stride wide and high and centred on the cell's
    receptive-field centre (nearest-neighbour: one value per cell, no
    interpolation), so the blocks lie where the cells look, not on an even
    split of the photo. The axes take the photo's pixel coordinates; what
    reaches past the photo is cut off, and the photo's outline is drawn in grey.

    Args:
        ax: the axes to draw on.
        colours: (h, w, 3) RGB values in [0, 1], one colour per cell.
        centres: the cells' receptive-field centres, in network-input pixels
            (``CamResult.centres``).
        image_shape: (height, width) of the photo, in pixels.
        hatched: optional (h, w) booleans: cells to hatch.

    Returns:
        The axes.

    Raises:
        ValueError: ``colours`` or ``hatched`` do not have one entry per cell.
    """
    height, width = image_shape
    scale_y, scale_x = height / centres.input_size[0], width / centres.input_size[1]
    rows_y, columns_x = np.asarray(centres.rows) * scale_y, np.asarray(centres.columns) * scale_x
    half_y, half_x = centres.stride[0] * scale_y / 2, centres.stride[1] * scale_x / 2
    colours = np.asarray(colours)
    cells = (len(rows_y), len(columns_x))
    if colours.shape[:2] != cells or (hatched is not None and np.shape(hatched) != cells):
        raise ValueError(f"one colour (and hatch flag) per cell needed: the layer has {cells[0]} x {cells[1]} cells, "
                         f"got colours {colours.shape[:2]}" + ("" if hatched is None else f" and hatched {np.shape(hatched)}"))
    ax.imshow(colours, interpolation="nearest",
              extent=(columns_x[0] - half_x, columns_x[-1] + half_x, rows_y[-1] + half_y, rows_y[0] - half_y))
    if hatched is not None:
        for row, column in zip(*np.nonzero(hatched)):
            ax.add_patch(plt.Rectangle((columns_x[column] - half_x, rows_y[row] - half_y), 2 * half_x, 2 * half_y,
                                       fill=False, hatch="///", edgecolor="black", linewidth=0))
    ax.add_patch(plt.Rectangle((0, 0), width, height, fill=False, edgecolor="grey", linewidth=1))  # the photo's outline
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    return ax
