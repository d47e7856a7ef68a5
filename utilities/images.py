"""Reading images of any common kind as RGB uint8 arrays."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union
from urllib.parse import urlparse

import numpy as np
import tifffile
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["DATA_DIR", "ImageLike", "ImageLoadError", "MIN_IMAGE_SIDE", "load_image", "to_rgb_uint8"]

ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image, torch.Tensor]

#: The course's example images (see data/README.md).
DATA_DIR = Path(__file__).resolve().parents[1] / "data"

#: Images with a side shorter than this carry too little to classify.
MIN_IMAGE_SIDE = 8

# "https://...", "ftp://...": a scheme and "://" (a Windows path "C:\\..." has no "//").
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class ImageLoadError(ValueError):
    """An image that cannot be read or used; the message names the source and the problem."""


def _composite_on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # Transparent pixels carry arbitrary colour values; show them as white paper.
    weight = alpha[..., None]
    return colour * weight + (1.0 - weight)


def _uint8_as_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 to (H, W, 3) uint8 in integer arithmetic: no float copy of the image.

    Returns the array itself when it already is C-contiguous RGB.
    """
    channels = array.shape[-1]
    if channels in (2, 4):
        # round((colour * alpha + 255 * (255 - alpha)) / 255), exactly as the float formula with values / 255;
        # at most 255 * 255 + 127, so uint16 holds it.
        alpha = array[..., -1:].astype(np.uint16)
        blended = array[..., :-1] * alpha
        blended += (255 - alpha) * 255 + 127
        blended //= 255
        array = blended.astype(np.uint8)
    if array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def to_rgb_uint8(array: np.ndarray | torch.Tensor, source: str = "the array") -> np.ndarray:
    """Convert an image array to RGB uint8 of shape (H, W, 3).

    Accepted layouts: (H, W) grayscale, (H, W, 1), (H, W, 2) grayscale +
    alpha, (H, W, 3) RGB, (H, W, 4) RGBA; torch tensors may also be (C, H, W).
    Accepted values: uint8; uint16 (scaled by 255/65535); bool; other integers
    within 0..255; floats within [0, 1]. Alpha is composited onto a white
    background, so transparent parts look like white paper, not black.

    Args:
        array: the image.
        source: how to name the image in error messages.

    Returns:
        A new (H, W, 3) uint8 array.

    Raises:
        ImageLoadError: a layout, value range or size that is not an image.
    """
    array = _checked_layout(array, source)
    converted = _converted(array, source)
    return converted.copy() if np.may_share_memory(converted, array) else converted


def _checked_layout(array: np.ndarray | torch.Tensor, source: str) -> np.ndarray:
    """The image as a 3-D (H, W, C) NumPy array (a view where possible), or an error that says what is wrong."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[-1] not in (1, 2, 3, 4):
            array = array.permute(1, 2, 0)  # torchvision layout (C, H, W)
        array = array.numpy()
    array = np.asarray(array)
    if array.size == 0:
        raise ImageLoadError(f"{source} has no pixels (shape {array.shape}); if it is a file, it may be damaged.")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = " It looks channel-first; pass array.transpose(1, 2, 0)."
        elif array.ndim == 4:
            hint = " It looks like a batch; pass one image, e.g. array[0]."
        raise ImageLoadError(
            f"{source} has shape {array.shape}; an image is (H, W) or (H, W, C) with C in 1..4.{hint}"
        )
    height, width = array.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageLoadError(
            f"{source} is {height}x{width} pixels; an image needs at least "
            f"{MIN_IMAGE_SIDE} pixels on each side to be classified."
        )
    return array


def _converted(array: np.ndarray, source: str) -> np.ndarray:
    """The checks and conversions of :func:`to_rgb_uint8`, for a 3-D array; may return ``array`` itself.

    uint8 images (what files hold) are converted in integer arithmetic; other
    types through float32, never float64, so a phone photo costs no more
    than a few of its own size.
    """
    if array.dtype == np.uint8:
        return _uint8_as_rgb(array)
    if array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif array.dtype == np.uint16:
        values = array / np.float32(65535.0)
    elif np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageLoadError(
                f"{source} has {array.dtype} values from {low} to {high}; integer images must be within "
                "0..255 (or uint16 for 16-bit). Convert it, e.g. to uint16 or to floats in [0, 1]."
            )
        values = array.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ImageLoadError(f"{source} contains NaN or infinite values.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ImageLoadError(
                f"{source} has float values from {low:.3g} to {high:.3g}; float images must be within [0, 1]. "
                "Rescale it, e.g. (image - image.min()) / (image.max() - image.min())."
            )
        values = array.astype(np.float32, copy=False)
    else:
        raise ImageLoadError(f"{source} has dtype {array.dtype}, which is not an image type.")
    if values.shape[-1] in (2, 4):
        values = _composite_on_white(values[..., :-1], values[..., -1])
    if np.may_share_memory(values, array):
        values = values * np.float32(255.0)
    else:
        values *= np.float32(255.0)  # a copy already: scale it in place
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    rgb = values.astype(np.uint8)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def _pil_to_array(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    elif image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    elif image.mode == "I":
        array = np.asarray(image)
        # PIL opens 16-bit grayscale PNGs as 32-bit "I".
        return array.astype(np.uint16) if array.min() >= 0 and array.max() <= 65535 else array
    return np.asarray(image)


def _read_file(path: Path) -> np.ndarray:
    label = f"'{path}'"
    if not path.exists():
        raise ImageLoadError(f"No image at {label}: the file does not exist (working directory: {Path.cwd()}).")
    if path.is_dir():
        raise ImageLoadError(f"{label} is a directory, not an image file.")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{label} is an empty file (0 bytes).")
    try:
        with Image.open(path) as opened:
            return _pil_to_array(opened)
    except (UnidentifiedImageError, OSError, ValueError) as pil_error:
        if path.suffix.lower() in (".tif", ".tiff"):
            # PIL has no 16-bit RGB; tifffile reads every TIFF that microscopes and scanners write.
            try:
                return np.asarray(tifffile.imread(path))
            except Exception as tiff_error:  # noqa: BLE001 - reported below
                raise ImageLoadError(f"Cannot read {label} as a TIFF image: {tiff_error}") from None
        raise ImageLoadError(f"Cannot read {label} as an image: {pil_error}") from None


def load_image(image: ImageLike) -> np.ndarray:
    """Load an image as RGB uint8, from a file or from memory.

    Files: PNG, JPEG, TIFF and anything else PIL reads, 8 or 16 bits, with
    their EXIF rotation applied. Arrays and PIL images: grayscale, RGB,
    RGBA, 16-bit and float [0, 1] (see :func:`to_rgb_uint8`). Grayscale is
    repeated into three channels; alpha is composited onto white.

    Args:
        image: a path, a PIL image, a NumPy array or a torch tensor.

    Returns:
        An (H, W, 3) uint8 array.

    Raises:
        ImageLoadError: a missing, empty, unreadable or unusable image; the
            message names the path and what is wrong. A URL (``https://...``)
            is not downloaded: the message says how to save it as a file first.
    """
    if isinstance(image, str) and _URL.match(image.strip()):
        url = image.strip()
        file_name = Path(urlparse(url).path).name or "image.jpg"
        raise ImageLoadError(
            f"{url!r} is a URL; images are not downloaded here. Save the image as a file first (in a browser: "
            f"right-click, 'Save image as'; in a terminal: curl -L -o {file_name} '{url}') and pass its path, "
            f"e.g. load_image('{file_name}')."
        )
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        # The decoded array is ours: convert it without the defensive copy of to_rgb_uint8 (a phone photo is 36 MB),
        # unless it is read-only (NumPy arrays over PIL's bytes are).
        pixels = _converted(_checked_layout(_read_file(path), f"'{path}'"), f"'{path}'")
        return pixels if pixels.flags.writeable else pixels.copy()
    if isinstance(image, Image.Image):
        return to_rgb_uint8(_pil_to_array(image), source="the PIL image")
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return to_rgb_uint8(image)
    raise ImageLoadError(
        f"Cannot use a {type(image).__name__} as an image; pass a file path, a PIL image, a NumPy array or a tensor."
    )
