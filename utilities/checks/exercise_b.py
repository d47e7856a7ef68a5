"""Exercise b: one file's class and overlay; a folder of files, some of them not images."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import io
import os
import struct
import tempfile
import threading
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..cam import grad_cam
from ..images import DATA_DIR, ImageLoadError, load_image
from ..models import LoadedModel
from ..plotting import CAM_COLORMAP, check_colormap, overlay_cam
from ._common import Checker, CheckResult, cached, describe_error, smaller_input, training_copy, type_name
from .exercise_e import _unfinished, made_up_image, made_up_model

__all__ = ["ALPHA", "CHECK_COUNT", "CHECK_NAMES", "PNG_SIGNATURE", "NetworkFailure", "check_b", "describe_overlay", "image_kinds"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    'returns class and overlay',
    'predicted class',
    'overlay size and type',
    'overlay shows the CAM in RGB',
    'reports the files that are not images',
    'one overlay per image, named after its file',
    'saved overlays show the CAM in RGB',
)
CHECK_COUNT = len(CHECK_NAMES)
#: The check's folder: file name -> what it holds. Sub-folder "holiday" is added separately.
IMAGES = {"cat.jpg": "chelsea.jpg", "cat.png": "coffee.jpg", "scan": "camera.png"}
NOT_IMAGES = ("broken.png", "notes.txt", "half.jpg")  # half.jpg: a JPEG cut in half, which PIL's verify() lets through
SUBFOLDER = "holiday"
#: overlay_cam's default blend weight, which the text asks for; the fit of a right overlay is exact to rounding.
ALPHA = 0.5
ALPHA_TOLERANCE = 0.03
STALE = "camera.png"  # an earlier run's file in the output folder
#: A file of the user's own in an output folder that exists already: it must survive the run.
KEEP = "my notes.txt"
GONE = "holiday.jpg_cam.png"  # an earlier run's overlay whose photo is gone from the folder
#: The first bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The share of a saved overlay's pixels that may differ from every right drawing by more than rounding. Right drawings
#: (result.maps[0]; result.raw normalised by hand with centres=; cells spread evenly) differ from one another only where
#: a map value falls on the other side of a colour boundary, by a neighbouring row of the colormap: counted as right,
#: they leave 0% unexplained; JPEG compression, even at quality 100, leaves 25% and more.
LOSSY_SHARE = 0.01
#: How far a pixel may be from the rounded blend of the photo with its right colour, or a neighbouring colour of the
#: colormap (rounding is 0.5; float32 or float64 blends round differently by one level at most).
LOSSY_LEVELS = 1.0
#: How many rows of the colormap on either side of the right colour a right drawing may land on.
COLOUR_ROWS = 3


def image_kinds(root: Path) -> dict[str, Path]:
    """Image files of the kinds load_image reads that a plain PIL ``open().convert("RGB")`` misreads.

    Written into ``root``: description -> path.
    """
    root.mkdir(parents=True, exist_ok=True)
    kinds = {}
    photo = Image.open(DATA_DIR / "chelsea.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the file holds the photo on its side
    path = root / "rotated.jpg"
    photo.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    kinds["a JPEG with an EXIF rotation"] = path
    gray = np.asarray(Image.open(DATA_DIR / "camera.png").convert("L").resize((160, 160)), dtype=np.uint16) * 257
    path = root / "scan16.tif"
    Image.fromarray(gray.astype(np.uint16)).save(path)  # 16 bits per pixel, 0..65535
    kinds["a 16-bit grayscale TIFF"] = path
    rgba = np.dstack([np.asarray(Image.open(DATA_DIR / "coffee.jpg").convert("RGB").resize((240, 160))), np.full((160, 240), 255, np.uint8)])
    rgba[:, :120, 3] = 0  # the left half transparent (its colours are still in the file)
    path = root / "cutout.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    kinds["a PNG with transparent parts (RGBA)"] = path
    return kinds


def _reference(model: LoadedModel, path: Path) -> tuple[str, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(top class, photo as load_image reads it, the right heat maps alone) for an image file.

    Two heat maps are right: cells placed at their receptive-field centres (``grad_cam``'s default) and cells
    spread evenly (``upsample_cams`` without centres, as written by hand in exercise a); notebook 4b compares them.
    """
    image = load_image(path)
    result = grad_cam(model, image)
    stretched = dataclasses.replace(result, centres=None)  # the same cells, spread evenly: no second Grad-CAM
    # The layer-resolution map normalised and stretched by overlay_cam itself (no centres), as its docstring allows:
    # on a small image it differs from the maps upsampled by grad_cam by a few colour rows.
    raw = result.raw[0]
    small = (raw - raw.min()) / (raw.max() - raw.min()).clamp(min=1e-12)
    # And that map drawn by overlay_cam at the cells' receptive-field centres (centres=result.centres): on a tiny image
    # it differs from grad_cam's own upsampling by a few colour rows in many pixels.
    return result.class_names[0], image, (overlay_cam(image, result.maps[0], alpha=1.0), overlay_cam(image, stretched.maps[0], alpha=1.0),
                                          overlay_cam(image, small, alpha=1.0), overlay_cam(image, small, alpha=1.0, centres=result.centres))


def reference(model: LoadedModel, source: str | Path) -> tuple[str, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Cached :func:`_reference` of a file (a name in the data folder, or a path), by its contents."""
    path = DATA_DIR / source if isinstance(source, str) else source
    key = hashlib.sha1(path.read_bytes()).hexdigest()
    return cached(model, ("exercise b", key), lambda: _reference(model, path))


def _fit(overlay: np.ndarray, image: np.ndarray, heat: np.ndarray) -> tuple[float, float]:
    """Blend weight alpha and mean residual of overlay ~ (1 - alpha) * image + alpha * heat."""
    difference = overlay.astype(np.float64) - image
    direction = heat.astype(np.float64) - image
    alpha = float((difference * direction).sum() / max((direction * direction).sum(), 1e-9))
    return alpha, float(np.abs(difference - alpha * direction).mean())


_MAXIMUM_ONLY = ("the heat map is normalised by its maximum only (raw / raw.max()): its minimum is not moved to 0, so "
                 "on every image whose map's smallest cell is above 0 the colours are off. Blend result.maps[0], which is "
                 "normalised by its minimum and maximum to [0, 1].")


def _normalisation_alternatives(model: LoadedModel, image: np.ndarray, right: Any = None) -> dict[str, np.ndarray]:
    """Heat maps alone (alpha 1) of the known normalisation mistakes for one image: message -> heat map."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    right = grad_cam(model, image) if right is None else right
    raw = right.raw[0]
    return {
        "the heat map is the raw Grad-CAM (result.raw), not normalised: blend result.maps[0], which runs from 0 to 1.":
            overlay_cam(image, raw, alpha=1.0),
        _MAXIMUM_ONLY: overlay_cam(image, raw / raw.max().clamp(min=1e-12), alpha=1.0),
    }


def _alternatives(model: LoadedModel, source: str | Path) -> dict[str, np.ndarray]:
    """Heat maps alone (alpha 1) of the known mistakes for one file: message -> heat map."""
    path = DATA_DIR / source if isinstance(source, str) else source
    image = load_image(path)
    right = grad_cam(model, image)
    second = model.predict(image, top_k=2)[1][0]
    wrong = {
        **_normalisation_alternatives(model, image, right),
        "the heat map is the Grad-CAM of layer3; the text asks for layer4, grad_cam's default.":
            overlay_cam(image, grad_cam(model, image, layer="layer3").maps[0], alpha=1.0),
        f"the heat map is the Grad-CAM of the model's second class ({second!r}), not of its top class.":
            overlay_cam(image, grad_cam(model, image, second).maps[0], alpha=1.0),
    }
    # The blocks inside layer4 but its last (whose output is layer4's): a layer named one level too deep.
    layer4 = dict(model.network.named_modules()).get("layer4")
    blocks = [name for name, _ in layer4.named_children()][:-1] if isinstance(layer4, torch.nn.Sequential) else []
    for block in blocks:
        wrong[f"the heat map is the Grad-CAM of layer4.{block}, a block inside layer4; the text asks for layer4 itself, "
              "grad_cam's default (layer='layer4', or no layer at all)."] = overlay_cam(image, grad_cam(model, image, layer=f"layer4.{block}").maps[0], alpha=1.0)
    # The layer's map normalised and stretched to the photo's size by hand with nearest-neighbour: a block per cell.
    raw = right.raw[0].detach().cpu().numpy()
    small = (raw - raw.min()) / max(float(raw.max() - raw.min()), 1e-12)
    rows, columns = (np.arange(n) * m // n for n, m in zip(image.shape[:2], small.shape))
    wrong["the heat map is layer4's map stretched to the photo's size by hand with nearest-neighbour (one flat block per "
          "cell), not by grad_cam's upsampling: blend result.maps[0] as it is."] = overlay_cam(image, small[rows][:, columns], alpha=1.0)
    # The photo shrunk before grad_cam (to what the network is often said to see, 224 rows), the map stretched back.
    height, width = image.shape[:2]
    for rows, resample, how in ((224, Image.Resampling.BILINEAR, "bilinear"), (224, Image.Resampling.BICUBIC, "bicubic"),
                                (224, Image.Resampling.LANCZOS, "Lanczos")):
        if height > rows:
            small = np.asarray(Image.fromarray(image).resize((max(1, round(width * rows / height)), rows), resample))
            wrong[f"the heat map is the Grad-CAM of the photo shrunk to {rows} rows before grad_cam (a {how} resize, with "
                  "PIL?), not of the image as load_image reads it, which the text asks for: give grad_cam that image at its "
                  "own size (the model's preprocessing resizes it) and blend result.maps[0]."] = overlay_cam(
                image, grad_cam(model, small).maps[0], alpha=1.0)
    for name in ("jet", "viridis", "magma", "hot", "gray"):
        if name != CAM_COLORMAP:
            wrong[f"the heat map is coloured with the colormap {name!r}: use overlay_cam's default, {CAM_COLORMAP!r}."] = (
                overlay_cam(image, right.maps[0], alpha=1.0, cmap=name))
    return wrong


def alternatives(model: LoadedModel, source: str | Path) -> Callable[[], dict[str, np.ndarray]]:
    """Cached :func:`_alternatives`, computed when first called."""
    path = DATA_DIR / source if isinstance(source, str) else source
    key = hashlib.sha1(path.read_bytes()).hexdigest()
    return lambda: cached(model, ("exercise b: mistakes", key), lambda: _alternatives(model, path))


def describe_overlay(
    overlay: np.ndarray,
    image: np.ndarray,
    heat: np.ndarray | Sequence[np.ndarray],
    what: str = "the overlay",
    alternatives: Callable[[], dict[str, np.ndarray]] | None = None,
) -> str:
    """Empty if ``overlay`` blends the heat map into the image in RGB, else what is wrong with it.

    Args:
        overlay: (H, W, 3) array, uint8 or float in [0, 1].
        image: the photo, RGB uint8.
        heat: the reference heat map alone (``overlay_cam`` with alpha 1 and its default
            colormap, :data:`~utilities.plotting.CAM_COLORMAP`), RGB uint8; or several right ones,
            the first of which the messages compare with.
        what: how to call the overlay in the message.
        alternatives: the heat maps of known mistakes (message -> heat map), computed only if needed.
    """
    pixels = overlay.astype(np.float64)
    if overlay.dtype.kind == "f" and pixels.max() <= 1.0:
        pixels = pixels * 255.0  # judge a float overlay's colours; its type is another check's business
    heats = [heat] if isinstance(heat, np.ndarray) else list(heat)
    for right in heats:
        alpha, residual = _fit(pixels, image, right)
        if residual < 3 and abs(alpha - ALPHA) <= ALPHA_TOLERANCE:
            return ""
    heat = heats[0]
    alpha, residual = _fit(pixels, image, heat)
    swapped_alpha, swapped_residual = _fit(pixels[..., ::-1], image, heat)
    if swapped_residual < 3 and swapped_residual < residual:
        return f"{what}'s colours are in BGR order: keep RGB (no [..., ::-1], no cv2 without converting)."
    if np.abs(pixels - image).mean() < 2:
        return f"{what} is the photo itself, with no heat map: blend the Grad-CAM into it with overlay_cam."
    if residual < 3 and alpha > 0.85:
        return f"{what} shows only the heat map: blend it with the photo (overlay_cam's alpha below 1)."
    if residual < 3:
        return f"the heat map in {what} is blended with alpha {alpha:.2f}: use overlay_cam's default alpha, {ALPHA}, as the text asks."
    for message, wrong in (alternatives() if alternatives else {}).items():
        if wrong.shape == pixels.shape and _fit(pixels, image, wrong)[1] < 3:
            return f"in {what}, {message}"
    gray = np.asarray(Image.fromarray(image).convert("L"), dtype=np.float64)[..., None].repeat(3, axis=2)
    for base in (gray, image.astype(np.float64).mean(axis=2, keepdims=True).repeat(3, axis=2)):
        if any(_fit(pixels, base, right)[1] < 3 for right in heats):
            return (f"{what} blends the right heat map onto a grayscale copy of the photo: blend it onto the photo in colour, "
                    "as load_image reads it (overlay_cam(image, ...)).")
    return _photo_change(pixels, image, heats, what) or _map_change(pixels, image, heats) or (
        f"the heat map in {what} is not the Grad-CAM of the model's top class at layer4 (normalised to [0, 1], "
        f"coloured by overlay_cam with its default colormap, {CAM_COLORMAP!r}).")


def _map_values(overlay: np.ndarray, image: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """The heat map's values (0 to 1) an overlay shows at some pixels: its colours, unblended, read back on the colormap."""
    colormap = check_colormap(CAM_COLORMAP)
    table = colormap(np.arange(colormap.N))[:, :3] * 255.0
    colour = (overlay.reshape(-1, 3)[sample].astype(np.float64) - (1 - ALPHA) * image.reshape(-1, 3)[sample]) / ALPHA
    distances = ((colour[:, None, :] - table[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1) / (colormap.N - 1)


def _map_change(pixels: np.ndarray, image: np.ndarray, heats: Sequence[np.ndarray]) -> str:
    """What was done to a right heat map, read back from the overlay's colours: "" if nothing recognisable."""
    if pixels.shape != image.shape:
        return ""
    sample = np.random.default_rng(0).choice(image.shape[0] * image.shape[1], min(4000, image.shape[0] * image.shape[1]), replace=False)
    # The reference heat map is the colormap's colours alone (alpha 1): read with no photo under it.
    right = _map_values(heats[0].astype(np.float64) * ALPHA + (1 - ALPHA) * image, image, sample)
    yours = _map_values(pixels, image, sample)
    if float(np.abs(yours - right).mean()) < 0.02:
        return ""
    bins = np.clip((right * 10).astype(int), 0, 9)
    medians = [float(np.median(yours[bins == b])) for b in range(10) if (bins == b).sum() >= 5]
    # How far the colours are from a function of the right map's value alone (the median of yours in fine bins of it):
    # near 0 for a change of each value (a power, a threshold), larger for a change of where the values are.
    fine = np.clip((right * 50).astype(int), 0, 49)
    predicted = np.zeros_like(yours)
    for b in np.unique(fine):
        predicted[fine == b] = np.median(yours[fine == b])
    spread = float(np.abs(yours - predicted).mean())
    if len(medians) >= 4 and spread < 0.02 and all(later <= earlier + 0.03 for earlier, later in zip(medians, medians[1:])):
        return ("the heat map's values are reversed, high where the right map is low (1 - map, or a reversed colormap "
                f"such as '{CAM_COLORMAP}_r'?): where the right map is near 1, yours is {medians[-1]:.2f}. Blend "
                "result.maps[0] as it is, with overlay_cam's default colormap.")
    if len(medians) >= 4 and spread >= 0.02 and all(later >= earlier - 0.03 for earlier, later in zip(medians, medians[1:])):
        # No cause found (the known ones are tried before): say what differs, and guess no cause.
        return ("the heat map is close to the Grad-CAM of the model's top class at layer4, but it is not that map with "
                "its values changed: it differs in where its values lie. Blend result.maps[0] of grad_cam(model, image), "
                "with the image as load_image reads it, as it is.")
    if len(medians) >= 4 and all(later >= earlier - 0.03 for earlier, later in zip(medians, medians[1:])):
        middle = float(np.median(yours[np.abs(right - 0.5) < 0.05])) if (np.abs(right - 0.5) < 0.05).sum() >= 5 else None
        example = f" (where the right map is 0.5, yours is {middle:.2f})" if middle is not None else ""
        return ("the heat map's values were changed after grad_cam by a function of each value that keeps their order "
                f"(a power, a threshold, a clip or a rescaling?){example}: blend result.maps[0] as it is, overlay_cam "
                "colours it.")
    quantiles = np.linspace(0.05, 0.95, 19)
    if float(np.abs(np.quantile(yours, quantiles) - np.quantile(right, quantiles)).max()) < 0.08:
        return ("the heat map has the right values but in other places (transposed, flipped, rotated or shifted?): blend "
                "result.maps[0] as it is, (H, W) in the photo's orientation, with no .T, flip or roll.")
    return ""


def _swapped_size(model: LoadedModel, saved: np.ndarray, image: np.ndarray, label: str) -> str:
    """The message if a saved overlay is the Grad-CAM computed for the photo's size with height and width swapped."""
    height, width = image.shape[:2]
    if height == width:
        return ""
    swapped = grad_cam(model, image, output_size=(width, height)).maps[0]
    heat = overlay_cam(image, swapped, alpha=1.0)
    if float((_unexplained(saved, image, [heat]) > LOSSY_LEVELS).mean()) <= LOSSY_SHARE:
        return (f"the saved {label} is the Grad-CAM computed for a "
                f"{width}x{height} output, the photo's height and width swapped (output_size=(W, H)?), then stretched "
                f"to {height}x{width}: sizes are (height, width), image.shape[:2].")
    return ""


def _photo_change(pixels: np.ndarray, image: np.ndarray, heats: Sequence[np.ndarray], what: str) -> str:
    """The message if the right heat map is blended onto a resampled (resized, blurred) copy of the photo, else ""."""
    if pixels.shape != image.shape:
        return ""
    from PIL import ImageFilter

    heat = heats[0].astype(np.float64)
    right = np.abs(pixels - ((1 - ALPHA) * image + ALPHA * heat)).mean()
    photo = Image.fromarray(image)
    height, width = image.shape[:2]
    resampled = [photo.resize((max(1, round(width * f)), max(1, round(height * f)))).resize((width, height)) for f in (0.95, 0.7, 0.4)]
    for blurred in (photo.filter(ImageFilter.GaussianBlur(0.5)), photo.filter(ImageFilter.BoxBlur(1)), *resampled):
        residual = np.abs(pixels - ((1 - ALPHA) * np.asarray(blurred, dtype=np.float64) + ALPHA * heat)).mean()
        if residual < 0.7 * right:
            return (f"the heat map in {what} is right, but the photo under it is not the photo as load_image reads it: it "
                    "was resampled (resized to another size and back, or blurred) before the blend. Blend at the photo's "
                    "own size: overlay_cam(image, result.maps[0]) with the image load_image returned.")
    def detail(picture: np.ndarray) -> float:
        """The fine detail in a picture: the mean size of its Laplacian (resampling and blurring lower it)."""
        laplacian = 4 * picture[1:-1, 1:-1] - picture[:-2, 1:-1] - picture[2:, 1:-1] - picture[1:-1, :-2] - picture[1:-1, 2:]
        return float(np.abs(laplacian).mean())

    if height > 2 and width > 2:
        yours, expected = detail(pixels), detail((1 - ALPHA) * image + ALPHA * heat)
        if yours < 0.75 * expected:
            return (f"{what} was made at another size and resized to the photo's size (the photo and the heat map "
                    "resampled together, a downscale of a large photo?): make the overlay at the photo's own size, "
                    "overlay_cam(image, result.maps[0]) with the image load_image returned, however large.")
    return ""


#: What a plain PIL read does to each kind of :func:`image_kinds`' files that load_image does not.
_PLAIN_READ = {"a JPEG with an EXIF rotation": "the photo on its side, its EXIF rotation not applied",
               "a 16-bit grayscale TIFF": "its 16-bit values clipped at 255, not scaled to 8 bits",
               "a PNG with transparent parts (RGBA)": "its transparent parts black, not white"}

_EVERY_IMAGE = "\0every image: "  # marks a kind's problem that is a mistake in the map, whatever the file

_READ_WITH_LOAD_IMAGE = ("read images with load_image: it applies the EXIF rotation, scales 16-bit values to 8 bits, "
                        "and puts transparent parts on white, as grad_cam expects")


def _form_problem(answer: Any) -> str:
    """What is wrong with the form of explain_file's result, or ""."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return f"explain_file should return two things, (class name, overlay); it returns {type_name(answer)}."
    if not isinstance(answer, tuple):
        return (f"explain_file returns a {type(answer).__name__}, [class name, overlay]: return a tuple, "
                "(class_name, overlay), as the text asks (return class_name, overlay).")
    if isinstance(answer[1], str) and not isinstance(answer[0], str):
        return "explain_file returns (overlay, class name); return them the other way round: (class name, overlay)."
    if not isinstance(answer[0], str):
        return (f"the class should be given by its name (a str, e.g. from grad_cam's result.class_names), "
                f"not {type_name(answer[0])}.")
    if isinstance(answer[0], np.str_):
        # As in exercise a: a plain str, the name itself (json.dumps and every str method agree on it).
        return (f"explain_file returns the class name as a numpy.str_ ({answer[0]!r}), which a NumPy array of the names "
                "gives: return a plain str, the name as grad_cam's result.class_names[0] or model.class_names holds it.")
    if not isinstance(answer[1], np.ndarray):
        hint = ": convert with .numpy()" if hasattr(answer[1], "numpy") else ""
        return f"the overlay should be a NumPy array (H, W, 3), as overlay_cam returns; it is {type_name(answer[1])}{hint}."
    return ""


def _size_problem(overlay: np.ndarray, image: np.ndarray, what: str = "the overlay") -> str:
    right_size = overlay.shape == image.shape
    if right_size and overlay.dtype == np.uint8:
        return ""
    if right_size:
        return f"{what} has the right size but is {overlay.dtype}: return RGB uint8 (0 to 255), as overlay_cam does."
    if overlay.ndim == 3 and overlay.shape[:2] == image.shape[:2]:
        return f"{what} has {overlay.shape[2]} channels; return RGB, 3 channels."
    return (f"{what} is {'x'.join(map(str, overlay.shape[:2]))}; make it the image's size, "
            f"{image.shape[0]}x{image.shape[1]} (photos need not be the network input's size).")


def _check_file(checker: Checker, model: LoadedModel, explain_file: Callable) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    later = ["predicted class", "overlay size and type", "overlay shows the CAM in RGB"]
    path = DATA_DIR / "coffee.jpg"
    ok, answer = checker.call(explain_file, model, path)
    if not ok:
        checker.skip(later, "explain_file failed")
        return
    top, image, heat = reference(model, "coffee.jpg")
    problem = _form_problem(answer)
    if not checker.require("returns class and overlay", not problem, problem):
        checker.skip(later, "fix the form of explain_file's result first")
        return
    name, overlay = answer
    first_overlay = overlay.copy() if isinstance(overlay, np.ndarray) else None
    favoured_problem = _favoured_class_problem(checker, model, explain_file, path)
    # The same function on other kinds of image files; a kind judged wrong once is not judged again.
    with tempfile.TemporaryDirectory() as temporary:
        # A network in training mode, to see that explain_file leaves it so (a tiny one, which the mode does not change).
        toy = Path(temporary) / "toy.png"
        Image.fromarray(made_up_image()).save(toy)
        checker.keeps_mode(explain_file, training_copy(made_up_model()), toy)
        # A file of its own (another name and other pixels): a result cached from the call above cannot answer for it.
        zero_file = Path(temporary) / "zero map.png"
        Image.fromarray(np.ascontiguousarray(made_up_image()[::-1])).save(zero_file)
        zero_problem = _zero_map_problem(checker, explain_file, zero_file)
        kinds = []
        for kind, kind_path in image_kinds(Path(temporary)).items():
            kind_ok, kind_answer = checker.call(explain_file, model, kind_path)
            if not kind_ok:
                checker.skip(later, f"explain_file failed on {kind} ({kind_path.name}), which load_image reads")
                return
            if _form_problem(kind_answer):
                continue
            # The file as a plain PIL read gives it: an answer that matches it did not read with load_image.
            naive = np.asarray(Image.open(kind_path).convert("RGB"))
            kinds.append((kind, kind_path.name, kind_answer, reference(model, kind_path), naive))
        # Another photo of the same name in another folder: the answer must come from the file's contents.
        twin = Path(temporary) / "another folder" / path.name
        twin.parent.mkdir()
        _copy("chelsea.jpg", twin)
        twin_ok, twin_answer = checker.call(explain_file, model, twin)
        twin_top = reference(model, twin)[0]
        twin_problem = ""
        if twin_ok and not _form_problem(twin_answer) and twin_answer[0] != twin_top and twin_answer[0] == name:
            twin_problem = (f"explain_file says {name!r} for another photo also named {path.name} (in another folder), whose "
                            f"top class is {twin_top!r}: it gave the first file's answer again (a cache keyed by the file's "
                            "name?). Two files of the same name in different folders are different images: explain each "
                            "file from its contents.")
        if twin_ok and not twin_problem and not _form_problem(twin_answer):
            # The same path once more, its contents replaced by the first photo's: a result kept by the path shows.
            _copy(path, twin)
            again = checker.quiet_call(explain_file, model, twin)
            first_top = reference(model, path)[0]
            if isinstance(again, tuple) and not _form_problem(again) and again[0] == twin_answer[0] != first_top:
                twin_problem = (f"explain_file says {again[0]!r} again for {twin.name} after its contents were replaced by "
                                f"another photo's (whose top class is {first_top!r}): a result kept by the file's path from "
                                "an earlier call (functools.cache or lru_cache on explain_file?). A file can change between "
                                "calls: read and explain it on every call.")
    failed: set[str] = set()

    @functools.cache
    def naive_reference(index: int) -> tuple[str, np.ndarray]:
        """(top class, heat map alone) of a kind's file as a plain PIL read gives it: only to name a cause."""
        naive = kinds[index][4]
        result = grad_cam(model, naive)
        return result.class_names[0], overlay_cam(naive, result.maps[0], alpha=1.0)

    def first_kind_problem(judge: Callable[[Any, Any, tuple], str], misread: Callable[[Any, Any, int], bool]) -> str:
        """The first kind a judge finds wrong: the problem, and its cause (load_image only where the answer matches
        what a plain PIL read of the file gives)."""
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        for index, (kind, file_name, (kind_name, kind_overlay), expected, _naive) in enumerate(kinds):
            if kind in failed:
                continue
            problem = judge(kind_name, kind_overlay, expected)
            if problem and problem.startswith(_EVERY_IMAGE):
                # A mistake in the map itself, not in how this file was read: its cause first, then where it shows.
                failed.add(kind)
                return f"{problem[len(_EVERY_IMAGE):]} (It shows on {kind}, {file_name}.)"
            if problem:
                failed.add(kind)
                if not misread(kind_name, kind_overlay, index):
                    return f"on {kind} ({file_name}): {problem}."
                # The cause is named once; later checks say only where else it shows.
                cause = _READ_WITH_LOAD_IMAGE if not any(_READ_WITH_LOAD_IMAGE in p for p in checker.result.problems) else "the same cause as above"
                return f"on {kind} ({file_name}): {problem}; {cause}."
        return ""

    def name_problem(n: Any, o: Any, e: tuple) -> str:
        if n == e[0]:
            return ""
        if isinstance(n, str) and n.strip().lower() == e[0].lower():
            return (f"explain_file says {n!r}, the model's top class is {e[0]!r}: return the class name exactly as the model "
                    "gives it (grad_cam's result.class_names[0]), no change of case or spaces")
        return f"explain_file says {n!r}, the model's top class is {e[0]!r}"

    def size_problem(n: Any, o: Any, e: tuple) -> str:
        if not _size_problem(o, e[1]):
            return ""
        text = f"the overlay is {o.shape[0]}x{o.shape[1]}, the image {e[1].shape[0]}x{e[1].shape[1]}"
        if o.shape[:2] == e[1].shape[:2][::-1]:
            return text + " (the photo on its side: its EXIF rotation was not applied)"
        if o.shape[:2] == e[1].shape[:2]:
            return text + f" ({_size_problem(o, e[1])})"
        return text + ": make the overlay exactly the image's size, no crop and no resize"

    @functools.cache
    def kind_alternatives(index: int) -> dict[str, np.ndarray]:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        return _normalisation_alternatives(model, kinds[index][3][1])

    def overlay_problem(n: Any, o: Any, e: tuple) -> str:
        if o.shape != e[1].shape:
            return ""
        found = describe_overlay(o, e[1], e[2])
        if not found:
            return ""
        index = next(i for i, kind in enumerate(kinds) if kind[3] is e)
        naive = kinds[index][4]
        if naive.shape == o.shape and (misread_overlay(n, o, index) or not describe_overlay(o, naive, e[2])):
            return ("the overlay shows the file as a plain PIL read gives it (Image.open(...).convert('RGB'): "
                    f"{_PLAIN_READ.get(kinds[index][0], 'not as load_image reads it')}), under the heat map")
        for message, wrong in kind_alternatives(index).items():
            if wrong.shape == o.shape and _fit(o.astype(np.float64), e[1], wrong)[1] < 3:
                return _EVERY_IMAGE + "in the overlay, " + message
        return "the overlay does not show the photo as load_image reads it, blended with the Grad-CAM of its top class: " + found.rstrip(".")

    def misread_overlay(n: Any, o: Any, index: int) -> bool:
        naive = kinds[index][4]
        return o.shape == naive.shape and (not describe_overlay(o, naive, naive_reference(index)[1])
                                           or not describe_overlay(o, naive, kinds[index][3][2]))

    problem = (f"explain_file says {name!r}, which is not the model's top class for this photo ({top!r})." if name != top else
               first_kind_problem(name_problem, lambda n, o, index: n == naive_reference(index)[0]) or twin_problem
               or favoured_problem)
    checker.require("predicted class", not problem, problem)
    reused = (first_overlay is not None and first_overlay.shape == overlay.shape and not np.array_equal(first_overlay, overlay))
    problem = ("the overlay explain_file returned for coffee.jpg changed when explain_file was called again on other "
               "images: it returns the same array every time (a buffer kept between calls, filled in place?). Return a "
               "new array from each call." if reused else "") or _size_problem(overlay, image) or first_kind_problem(
        size_problem, lambda n, o, index: (isinstance(o, np.ndarray) and o.shape[:2] == kinds[index][4].shape[:2]
                                           != kinds[index][3][1].shape[:2]))
    checker.require("overlay size and type", not problem, problem)
    if overlay.shape == image.shape:
        problem = describe_overlay(overlay, image, heat, alternatives=alternatives(model, "coffee.jpg")) or first_kind_problem(
            overlay_problem, misread_overlay) or zero_problem
        checker.require("overlay shows the CAM in RGB", not problem, problem)
    else:
        checker.skip(later[-1:], "the overlay's colours can be checked once it has the image's size")


def _zero_map_model() -> LoadedModel:
    """The made-up network of exercise e with fc's weights zeroed: the top class comes from the bias alone, and its
    Grad-CAM is zero everywhere (a map with no range, max = min)."""
    toy = made_up_model()
    network = copy.deepcopy(toy.network)
    with torch.no_grad():
        network.fc.weight.zero_()
    return dataclasses.replace(toy, network=network, name="a made-up network whose maps are zero everywhere")


def _zero_map_problem(checker: Checker, explain_file: Callable, path: Path) -> str:
    """The message if explain_file's overlay is wrong where the top class's Grad-CAM is zero everywhere, else ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    zero = _zero_map_model()
    raised: list[BaseException] = []

    @functools.wraps(explain_file)
    def calling(*args: Any) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        try:
            return explain_file(*args)
        except Exception as error:  # noqa: BLE001 - named in the message below
            raised.append(error)
            return None

    answer = checker.quiet_call(calling, zero, path)
    what = "for a made-up network whose Grad-CAM of the top class is zero everywhere (a map with no range, max = min), "
    cause = ("scaling by (x - min) / (max - min) divides 0 by 0 there (NaN). A map with max = min is 0 everywhere, as "
             "grad_cam's result.maps and normalize_cams give it; use them, or guard the division.")
    if raised:
        return f"{what}explain_file raised {type(raised[0]).__name__} ({_sentence(str(raised[0]))[:200]}): {cause}"
    if _form_problem(answer) or not isinstance(answer[1], np.ndarray):
        return ""  # another form: the calls that judge results say so
    _top, image, heats = reference(zero, path)
    overlay = answer[1]
    if overlay.shape == image.shape and not describe_overlay(overlay, image, heats):
        return ""
    return f"{what}explain_file's overlay is not the photo under the colour map's lowest colour: {cause}"


def _favouring(model: LoadedModel, index: int, path: Path) -> LoadedModel:
    """A copy of the model whose fc bias makes class ``index`` the top class for the image at ``path``, by 2 logits.

    The maps of every class stay the same (the bias adds nothing to a cell): an answer that picks the class from the
    maps, or that leaves a class out, shows.
    """
    network = copy.deepcopy(model.network)
    with torch.no_grad():
        logits = network(model.preprocess(load_image(path))[None])[0]
        network.fc.bias[index] += float(logits.max() - logits[index]) + 2.0
    return dataclasses.replace(model, network=network)


def _favoured_class_problem(checker: Checker, model: LoadedModel, explain_file: Callable, path: Path) -> str:
    """The message if explain_file does not name a top class that only fc's bias makes top (the last class, and the
    one before it), else ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if not isinstance(getattr(model.network, "fc", None), torch.nn.Linear) or model.network.fc.bias is None:
        return ""
    said = {}
    last, before_last = len(model.class_names) - 1, len(model.class_names) - 2
    for index in (last, before_last):  # the one before the last only to tell the causes apart
        answer = checker.quiet_call(explain_file, _favouring(model, index, path), path)
        said[index] = answer[0] if isinstance(answer, tuple) and len(answer) == 2 else None
        if said[index] is None:
            return ""  # it failed, or returned something else: the calls that judge results say so
        if said[index] == model.class_names[index] and index == last:
            return ""
    if said[before_last] == model.class_names[before_last]:
        return (f"for a copy of the model whose fc bias makes the last class, {model.class_names[last]!r} (index {last}), the "
                f"top class of {path.name}, explain_file says {said[last]!r}: the last class is never named (a slice "
                "logits[:999], or range(999)?). Take the top class over all the logits.")
    return (f"for a copy of the model whose fc bias makes {model.class_names[before_last]!r} the top class of {path.name} "
            f"(the maps are those of the model: a bias adds nothing to a cell), explain_file says {said[before_last]!r}: "
            "the top class is the largest logit, bias included (grad_cam's result.class_names[0], or the argmax of "
            "model.network's output), not the class with the largest map.")


@dataclass
class _Folder:
    """One folder the check gives explain_folder, and what a right answer does with it.

    Attributes:
        what: how the messages name this folder.
        folder: the folder; output: the output folder.
        images: file name -> path of its contents, for every image directly in the folder.
        not_images: names of the files that are not images.
        as_str: pass both folders as str instead of Path.
        contents: the input folder's files before the call; kept: the user's own files in the output folder.
    """

    what: str
    folder: Path
    output: Path
    images: dict[str, Path]
    not_images: tuple[str, ...]
    as_str: bool = False
    #: Every file under ``folder`` (relative path -> its bytes' digest), taken before the call: it may only read them.
    contents: dict[str, str] = field(default_factory=dict)
    #: Files of the user's own in ``output`` before the call (name -> bytes): they must survive.
    kept: dict[str, bytes] = field(default_factory=dict)
    #: What is special about a file (name -> "a 24x24 PNG"), for the messages: the cause a wrong answer trips on.
    notes: dict[str, str] = field(default_factory=dict)
    #: The sub-folders directly in ``folder`` (hidden ones and symbolic links to folders included): never reported.
    subfolders: tuple[str, ...] = ()
    #: The permissions of an output folder that exists before the call (``st_mode``), which the call must leave.
    output_mode: int | None = None

    def about(self, name: str) -> str:
        """``name``, with what is special about it if anything."""
        return f"{name} ({self.notes[name]})" if name in self.notes else name


def _copy(source: str | Path, target: Path) -> Path:
    path = DATA_DIR / source if isinstance(source, str) else source
    if target.suffix.lower() == ".png" and path.suffix.lower() != ".png":
        Image.open(path).save(target, format="PNG")  # same pixels, another format and name
    else:
        target.write_bytes(path.read_bytes())
    return target


def _make_folders(root: Path) -> list[_Folder]:
    """The folders of the check: the broken-files one, one of unusual names, one of images only, an empty one."""
    first = root / "photos"
    (first / SUBFOLDER).mkdir(parents=True)
    images = {name: _copy(source, first / name) for name, source in IMAGES.items()}
    _copy("coffee.jpg", first / SUBFOLDER / "beach.jpg")
    (first / "notes.txt").write_text("not an image")
    (first / "broken.png").write_bytes(b"")
    whole = (DATA_DIR / "coffee.jpg").read_bytes()
    (first / "half.jpg").write_bytes(whole[: len(whole) // 2])  # truncated: load_image refuses it
    folders = [_Folder("the check's folder (a text file, an empty file, a truncated JPEG, a sub-folder)", first, root / "results" / "overlays",
                       images, NOT_IMAGES, subfolders=(SUBFOLDER,))]

    # Hidden files, upper-case names, an overlay an earlier run left in the folder (an image like any other),
    # given as str, with an output folder that exists already and holds a stale overlay to overwrite.
    second = root / "second"
    second.mkdir()
    images = {
        "PHOTO.JPG": _copy("coffee.jpg", second / "PHOTO.JPG"),
        ".hidden.png": _copy("chelsea.jpg", second / ".hidden.png"),
    }
    earlier = second / "cat.jpg_cam.png"
    Image.fromarray(overlay_cam(load_image(DATA_DIR / "chelsea.jpg"), np.linspace(0, 1, 300 * 451).reshape(300, 451))).save(earlier)
    images[earlier.name] = earlier
    (second / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    output = root / "second overlays"
    output.mkdir()
    _copy(STALE, output / "PHOTO.JPG_cam.png")  # from an earlier run: must be replaced
    (output / KEEP).write_text("the user's own file, which has nothing to do with the overlays")
    _copy(STALE, output / GONE)  # an earlier run's overlay of a photo no longer in the folder: not this run's to delete
    folders.append(_Folder("a folder with hidden files, upper-case names and an overlay from an earlier run, given as str "
                           f"(output_folder exists already, with a file of the user's, {KEEP!r}, and an earlier run's "
                           f"overlay of a photo no longer there, {GONE!r})", second, output, images,
                           (".DS_Store",), as_str=True, kept={name: (output / name).read_bytes() for name in (KEEP, GONE)}))
    third = root / "only images"
    third.mkdir()
    Image.open(DATA_DIR / "coffee.jpg").save(third / "icon.ico", sizes=[(128, 128)])  # a format load_image reads, imghdr does not
    # A file named like one of the first folder's, other contents: a result kept by file name between calls shows.
    folders.append(_Folder("a folder of images only", third, root / "third overlays",
                           {"cat.jpg": _copy("coffee.jpg", third / "cat.jpg"), "icon.ico": third / "icon.ico"}, (),
                           notes={"cat.jpg": "the coffee photo, named like the cat photo of the check's first folder"}))
    fourth = root / "empty"
    fourth.mkdir()
    folders.append(_Folder("an empty folder", fourth, root / "fourth overlays", {}, ()))
    folders.append(_generated_folder(root, GENERATED_SEED))
    folders.append(_many_files_folder(root))
    for case in folders:
        # A time in the past, so that any write to an input file shows, even one with the same bytes in the same instant.
        for path in case.folder.rglob("*"):
            if path.is_file():
                os.utime(path, ns=(PAST_NS, PAST_NS))
        case.contents = _contents(case.folder)
        case.output_mode = case.output.stat().st_mode if case.output.is_dir() else None
    return folders


#: The user's file in the folder that stands where an overlay would be saved (:func:`_make_faults`): it must survive.
OBSTACLE_FILE = "kept.txt"


def _obstacle_problem(faults: list[_Fault]) -> str:
    """The message if explain_folder deleted the folder that stood where an overlay would go, else ""."""
    for fault in faults:
        if not fault.network_fails and not (fault.output / f"{fault.file}_cam.png" / OBSTACLE_FILE).is_file():
            return (f"explain_folder deleted the folder {fault.file}_cam.png that stood in output_folder where "
                    f"{fault.file}'s overlay goes, with a file of the user's in it: delete nothing in output_folder (no "
                    "shutil.rmtree). When an overlay cannot be saved, let the error reach the caller.")
    return ""


def _relative_output_problem(checker: Checker, explain_folder: Callable, model: LoadedModel, folder: Path, root: Path) -> str:
    """The message if explain_folder does not save into a relative output_folder under the working directory, else ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if threading.current_thread() is not threading.main_thread():
        return ""  # the working directory is the process's: another thread's relative paths would move with it
    working = (root / "working directory").resolve()
    working.mkdir()
    files = sorted(path.name for path in folder.iterdir())
    if not files:
        return ""  # an earlier call deleted the folder's files: the names check says so
    name = f"{files[0]}_cam.png"
    previous = os.getcwd()
    os.chdir(working)
    try:
        if Path.cwd() != working:
            return ""  # os.chdir replaced or ignored (a test's monkeypatch): no relative path may land elsewhere
        checker.quiet_call(explain_folder, model, folder, RELATIVE_OUTPUT)
    finally:
        os.chdir(previous)
    if (working / RELATIVE_OUTPUT / name).is_file():
        return ""
    elsewhere = sorted(path.parent for path in root.rglob(name) if path.parent.name == RELATIVE_OUTPUT)
    if not elsewhere:
        return ""  # it saved nothing: the other folders' checks say why
    return (f"given output_folder as a relative path, {RELATIVE_OUTPUT!r}, explain_folder saved into {elsewhere[0]}, not "
            f"into {working / RELATIVE_OUTPUT} (under the working directory, {working}): use Path(output_folder) as it is "
            "given; a relative path is relative to the working directory, not to folder or its parent.")


#: The relative output folder the check gives explain_folder, from a working directory of its own.
RELATIVE_OUTPUT = "relative overlays"


#: The seed of the generated folder's pictures (:func:`_generated_folder`).
GENERATED_SEED = 2026
#: The generated folder's photo over 1000 px on a side: (height, width); and the size of its file, over 5 MB.
WIDE_SIZE = (112, 4200)
BIG_FILE_BYTES = 5_300_000
#: The size of the generated folder's large file that is not an image (sparse: it takes no disk space).
SPARSE_BYTES = 64 * 2**20
#: The size of the generated folder's large image file: a small PNG followed by zeros (sparse, no disk space), which
#: PIL never reads (it stops at the PNG's end): above any limit on the file size a function might set for images.
LARGE_IMAGE_BYTES = 200 * 2**20
#: How many files the folder of many files holds: more than a limit such as "the first 500 files".
MANY_FILES = 510


def _png_with_chunk(pixels: np.ndarray, kind: bytes, payload: bytes, good_crc: bool = True) -> bytes:
    """A PNG of ``pixels`` with one more chunk before IEND (ancillary if ``kind`` starts in lower case)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    end = data.rfind(b"IEND") - 4
    crc = zlib.crc32(kind + payload) ^ (0 if good_crc else 0xFFFF)
    return data[:end] + struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc & 0xFFFFFFFF) + data[end:]


def _textured(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like picture: chelsea resized, with fine noise from ``rng`` (so resampling it shows)."""
    photo = np.asarray(Image.open(DATA_DIR / "chelsea.jpg").convert("RGB").resize((width, height)), dtype=np.int16)
    return np.clip(photo + rng.integers(-40, 41, photo.shape), 0, 255).astype(np.uint8)


def _generated_folder(root: Path, seed: int) -> _Folder:
    """A folder made from a seed with the edges of what the text allows: every file in it that load_image reads is
    an image, whatever its size, name, duplicates or way of being in the folder (a symbolic link)."""
    rng = np.random.default_rng(seed)
    folder = root / "generated"
    folder.mkdir()
    images: dict[str, Path] = {}
    notes: dict[str, str] = {}

    def add(name: str, data: bytes, note: str) -> None:
        (folder / name).write_bytes(data)
        images[name], notes[name] = folder / name, note

    height, width = WIDE_SIZE
    wide = _png_with_chunk(_textured(rng, height, width), b"prVt", bytes(BIG_FILE_BYTES))  # a private chunk PIL skips
    add("wide.png", wide, f"a {height}x{width} photo, {width} px wide, in a file of {len(wide) / 1e6:.1f} MB")
    add("Straße im Mai é.png", _png_with_chunk(_textured(rng, 72, 200), b"tEXt", b"Comment\0x"),
        "a name with spaces and letters that are not ASCII")
    add("comment.png", _png_with_chunk(_textured(rng, 90, 60), b"tEXt", b"Comment\0made by a scanner", good_crc=False),
        "a PNG whose ancillary tEXt chunk has a wrong checksum: PIL's verify() refuses it, load_image reads it")
    add("copy.png", (folder / "Straße im Mai é.png").read_bytes(), "a copy of 'Straße im Mai é.png', byte for byte")
    buffer = io.BytesIO()
    Image.fromarray(_textured(rng, 24, 24)).save(buffer, format="PNG")
    add("tiny.png", buffer.getvalue(), "a 24x24 PNG")
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), rng.integers(0, 256, 3), np.uint8)).save(buffer, format="PNG", optimize=True)
    # Its name starts and ends with a space: a name .strip()ped on the way names no file.
    add(" dot .png", buffer.getvalue(), f"a 16x16 PNG of {len(buffer.getvalue())} bytes, its name starting with a space")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "photo.png"
    Image.fromarray(_textured(rng, 64, 96)).save(target)
    try:
        (folder / "link.png").symlink_to(target)
        images["link.png"], notes["link.png"] = target, "a symbolic link to a photo in another folder"
    except OSError:  # no symbolic links on this file system: the other files still count
        pass
    (folder / "résumé.txt").write_text("not an image")
    not_images = ["résumé.txt"]
    # Two files whose names differ in case only: two files (the check runs on a file system that tells them apart).
    (folder / "README.txt").write_text("not an image either")
    if not (folder / "readme.txt").exists():
        (folder / "readme.txt").write_text("a third file that is not an image")
        not_images += ["README.txt", "readme.txt"]
        notes["readme.txt"] = notes["README.txt"] = "two files whose names differ in upper and lower case only"
    else:  # a file system that ignores case: one file
        not_images.append("README.txt")
    # A large file that is an image: a PNG, then zeros up to LARGE_IMAGE_BYTES (sparse), which load_image reads.
    buffer = io.BytesIO()
    Image.fromarray(_textured(rng, 48, 64)).save(buffer, format="PNG")
    add("scan.png", buffer.getvalue(), f"a 48x64 PNG in a file of {LARGE_IMAGE_BYTES // 2**20} MB, zeros after the image "
        "data that load_image never reads")
    with open(folder / "scan.png", "r+b") as large:
        large.truncate(LARGE_IMAGE_BYTES)
    # A large file that is not an image, sparse, so it costs no disk: it counts like any other file.
    with open(folder / "backup.bin", "wb") as sparse:
        sparse.truncate(SPARSE_BYTES)
    not_images.append("backup.bin")
    notes["backup.bin"] = f"a file of {SPARSE_BYTES // 2**20} MB"
    # Sub-folders that are easy to mistake for files: a hidden one, and a symbolic link to a folder.
    subfolders = [".git"]
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]\n")
    try:
        (folder / "album").symlink_to(elsewhere, target_is_directory=True)
        subfolders.append("album")
    except OSError:
        pass
    return _Folder("a folder made by the check (a photo 4200 px wide in a file over 5 MB, a 200 MB file that is an image, a "
                   "64 MB file that is not, "
                   "tiny images, a copy, symbolic links to a photo and to a folder, a hidden sub-folder, names with spaces (one "
                   "starting with one), "
                   "letters that are not ASCII or that differ in case only)", folder, root / "generated overlays",
                   images, tuple(not_images), notes=notes, subfolders=tuple(subfolders))


def _many_files_folder(root: Path) -> _Folder:
    """A folder of more files than a limit such as "the first 500" lets through; none of them an image (cheap)."""
    folder = root / "many files"
    folder.mkdir()
    names = tuple(f"empty {index:03d}.txt" for index in range(MANY_FILES))
    first = folder / names[0]
    first.write_bytes(b"")
    for name in names[1:]:
        # Hard links to one empty file: hundreds of new files cost a second on some file systems, links a few ms.
        try:
            os.link(first, folder / name)
        except OSError:  # no hard links here: empty files of their own
            (folder / name).write_bytes(b"")
    return _Folder(f"a folder of {MANY_FILES} empty files", folder, root / "many files overlays", {}, names)


#: Of a file larger than twice this, :func:`_contents` digests the first and last this many bytes.
_DIGESTED_END = 2**20

#: The modification time the check gives its input files (1 January 2020).
PAST_NS = 1_577_836_800 * 10**9


def _contents(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under a folder, by relative path, with a digest of its bytes and its modification time (ns)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            status = os.stat(path)
            # An empty file needs no reading (the folder of many files holds hundreds); of a large one (the sparse
            # file), its two ends: a write shows there or in the modification time.
            if status.st_size > 2 * _DIGESTED_END:
                with open(path, "rb") as file:
                    head = file.read(_DIGESTED_END)
                    file.seek(-_DIGESTED_END, os.SEEK_END)
                    digest = hashlib.sha1(head + file.read()).hexdigest()
            else:
                digest = hashlib.sha1(path.read_bytes() if status.st_size else b"").hexdigest()
            found[str(path.relative_to(folder))] = (digest, status.st_mtime_ns)
    return found


class NetworkFailure(RuntimeError, ValueError):
    """The error the check makes the network raise for an image: not an unreadable image, so it must reach the caller.

    A RuntimeError (what a network that fails raises) and a ValueError (the base of ImageLoadError), so that catching
    either of them too broadly shows.
    """


class NetworkPermissionError(PermissionError):
    """A network failure that is an OSError (a weight file on a network drive that cannot be read): it must reach the
    caller too, so that catching OSError or PermissionError along with ImageLoadError shows."""


class PlainNetworkFailure(RuntimeError):
    """Only a RuntimeError: told apart from :class:`NetworkFailure`, it shows which base a too broad except catches."""


@dataclass
class _Fault:
    """A folder on which explain_folder meets an error that is not an unreadable image, and must let it through.

    Attributes:
        what: the failure, for the message ("the check made the network fail on wide.png").
        folder: the folder; output: the output folder.
        file: the file the failure belongs to.
        network_fails: the network raises :class:`NetworkFailure` in every forward pass of the call
            (else saving fails: a folder has the overlay's name in ``output``).
    """

    what: str
    folder: Path
    output: Path
    file: str
    network_fails: bool
    #: The error the network raises.
    error: type = NetworkFailure


def _make_faults(root: Path) -> list[_Fault]:
    """Two folders with one image each: the network fails on it; saving its overlay fails."""
    first = root / "network fails"
    first.mkdir(parents=True)
    _copy("chelsea.jpg", first / "wide.png")
    (first / "notes.txt").write_text("not an image")
    second = root / "saving fails"
    second.mkdir()
    _copy("coffee.jpg", second / "one.jpg")
    output = root / "saving fails overlays"
    (output / "one.jpg_cam.png").mkdir(parents=True)  # a folder where the overlay should go: the file cannot be written
    (output / "one.jpg_cam.png" / OBSTACLE_FILE).write_text("a file of the user's, in a folder that has an overlay's name")
    return [
        _Fault("the check made the network fail on wide.png", first, root / "network fails overlays", "wide.png", True),
        _Fault("saving one.jpg's overlay failed (the check put a folder named one.jpg_cam.png in output_folder, so the file "
               "cannot be written: an OSError)", second, output, "one.jpg", False),
        _Fault("the check made the network fail on wide.png with a PermissionError (an OSError, as reading a model's "
               "file from a network drive raises)", first, root / "network fails overlays 2", "wide.png", True,
               NetworkPermissionError),
    ]


def _with_failing_network(function: Callable, network: torch.nn.Module, failed: list[bool], error: type = NetworkFailure) -> Callable:
    """The function, with every forward pass of ``network`` raising ``error`` while it runs (noted in ``failed``)."""

    def fail(module: torch.nn.Module, inputs: Any) -> None:
        failed.append(True)
        raise error("the network failed on this image (an error the check causes on purpose)")

    @functools.wraps(function)
    def failing(*args: Any) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        handle = network.register_forward_pre_hook(fail)
        try:
            return function(*args)
        finally:
            handle.remove()

    return failing


def _hidden_error(checker: Checker, model: LoadedModel, explain_folder: Callable, faults: list[_Fault], saves: bool,
                  stale_kept: bool = False) -> str:
    """The message if explain_folder hides an error that is not an unreadable image (it must propagate), else "".

    ``saves``: whether it saved the right overlays in the other folders; only then does a save that cannot fail
    (no save at all) not count as a hidden error. ``stale_kept``: whether it left an earlier run's overlay in place
    (it skips an image whose overlay exists, so a folder in the overlay's place makes no save fail).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    for fault in faults:
        if not fault.network_fails and not saves:
            continue  # a function that saves nothing, or elsewhere, meets no failure to hide: the names check says so
        failed: list[bool] = []
        function = _with_failing_network(explain_folder, model.network, failed, fault.error) if fault.network_fails else explain_folder
        ok, reported = checker.call(function, model, fault.folder, fault.output, expected=lambda error: not isinstance(error, ImageLoadError))
        if not ok:
            continue  # the error reached the caller, as it should (or, if it is an ImageLoadError, it was reported as a crash)
        if fault.network_fails and not failed:
            continue  # it never ran the network on the image: no failure to hide (the other checks say what it skipped)
        if not fault.network_fails and not (fault.output / f"{fault.file}_cam.png").is_dir():
            continue  # the function deleted what was in output_folder: the user's file in another folder tells that
        if not fault.network_fails and stale_kept:
            continue  # it skips an image whose overlay exists already (it kept an earlier run's overlay): no save failed
        names = [Path(str(item)).name for item in reported] if isinstance(reported, (list, tuple, set)) else []
        went_on = "reported it as not an image" if fault.file in names else "went on without it"
        what = fault.what
        if not fault.network_fails:
            what += ("; the save's OSError was caught (an except OSError, IOError or Exception around the save, or a "
                     "try that holds the save too)")
        elif fault.error is NetworkFailure:
            # Which too broad except: a failure that is a RuntimeError only tells ValueError (ImageLoadError's base) apart.
            plain: list[bool] = []
            plain_ok, _ = checker.call(_with_failing_network(explain_folder, model.network, plain, PlainNetworkFailure), model,
                                       fault.folder, Path(str(fault.output) + " plain"), expected=lambda error: True)
            what += (" with an error that is both a RuntimeError and a ValueError; one that is only a RuntimeError reached "
                     "the caller, so the except catches ValueError, ImageLoadError's base class, which is far more than "
                     "unreadable images" if not plain_ok else
                     "; one that is only a RuntimeError was hidden too, so the except catches RuntimeError (or "
                     "Exception), not only ImageLoadError")
        return (f"explain_folder hid an error that was not an unreadable image: {what}, and explain_folder {went_on}. "
                "Catch ImageLoadError only (except ImageLoadError:), around loading the image, so that any other error "
                "(the network failing, a full disk) reaches the caller.")
    return ""


def _describe_report(reported: Any, case: _Folder) -> str:
    where = f" (for {case.what})"
    if reported is None:
        return "explain_folder returns None: return the list of names of the files that are not images (empty if there are none)" + where + "."
    if not isinstance(reported, list):
        return f"explain_folder should return a list of file names (str); it returns {type_name(reported)}{where}."
    names = [Path(str(item)).name for item in reported]
    expected = sorted(case.not_images)
    if sorted(names) == expected and not all(isinstance(item, str) for item in reported):
        return f"return the files' names as str (path.name, such as 'notes.txt'), not {type_name(next(i for i in reported if not isinstance(i, str)))}."
    if sorted(str(item) for item in reported) == expected:
        return ""
    if sorted(names) == expected:
        return "return the files' names (path.name, a str such as 'notes.txt'), not their paths."
    folders = [name for name in names if name in case.subfolders]
    if folders:
        kind = {".git": " (a hidden one)", "album": " (a symbolic link to a folder)"}.get(folders[0], "")
        return (f"explain_folder reported the sub-folder {folders[0]!r}{kind}{where}: skip sub-folders, they are neither "
                "explained nor reported (path.is_dir() is True for hidden folders and for links to folders too).")
    wrongly = sorted(set(names) & set(case.images))
    if case.not_images and set(names) == set(case.images):
        return (f"explain_folder returned the names of the images ({', '.join(wrongly)}){where}, not of the files that "
                f"are not images ({', '.join(expected[:3])}{', ...' if len(expected) > 3 else ''}): return the names of the "
                "files load_image refuses (ImageLoadError).")
    if len(case.images) > 1 and set(names) >= set(case.images) | set(case.not_images):
        return (f"explain_folder reported every file as not an image, the images too ({', '.join(wrongly)}){where}: "
                "load_image was given a path without its folder? os.listdir (and os.scandir's .name) give names only; "
                "load them from the folder, Path(folder) / name, not from the working directory.")
    if wrongly and any(name in case.notes for name in wrongly):
        noted = [case.about(name) for name in wrongly if name in case.notes]
        return (f"explain_folder reported {' and '.join(noted)} as not {'an image' if len(noted) == 1 else 'images'}{where}, "
                f"but load_image reads {'it: it is an' if len(noted) == 1 else 'them: they are'} "
                f"image{'s' if len(noted) > 1 else ''}. Whether a file is an image is for load_image alone to decide (size, checksums, duplicates or the "
                "way the file is in the folder do not matter): report only the files for which it raises ImageLoadError.")
    if wrongly:
        return (f"explain_folder reported {', '.join(wrongly)}, which {'is an image' if len(wrongly) == 1 else 'are images'}"
                f"{where}: report only the files load_image "
                "cannot read, whatever their names (extension, case, a leading dot) or formats (an .ico icon is an image too): load_image "
                "decides, not imghdr or a list of extensions.")
    present = set(case.images) | set(case.not_images) | set(case.subfolders) | set(case.contents)
    strangers = sorted({name for name in names if name not in present})
    repeated = sorted({name for name in names if names.count(name) > 1})
    stripped = {name: original for name in strangers for original in present if original != name and original.strip() == name}
    if stripped:
        name, original = next(iter(stripped.items()))
        return (f"explain_folder reported {name!r}{where}: the file is {original!r}, its name with the spaces at its ends "
                "taken off (.strip()), which names no file. Use path.name exactly as it is, to open the file and to "
                "report it.")
    # A file of a sub-folder has its name among the folder's contents, under the sub-folder's path.
    nested = {name: relative for name in strangers for relative in case.contents
              if Path(relative).name == name and Path(relative).parent != Path(".")}
    if nested:
        name, relative = next(iter(nested.items()))
        return (f"explain_folder reported {name!r}{where}, a file inside a sub-folder ({relative}): it looked into the "
                "sub-folders (rglob, os.walk, glob('**')). Explain and report only the files directly in the folder.")
    if (strangers or repeated) and set(case.not_images) <= set(names):
        return (f"explain_folder reported {_listed(strangers or repeated)}{where}, "
                + ("names of files that are not in this folder: names kept from an earlier call (a list kept between "
                   "calls: a module-level list, or a default argument such as reported=[]). Start a new list in each call."
                   if strangers else
                   "names more than once: report each file once. Either a name is added twice in one call (two appends "
                   "for one file, or a second loop over the folder), or the list is kept between calls (a module-level "
                   "list, or a default argument such as reported=[]; start a new list in each call)."))
    missing = sorted(set(case.not_images) - set(names))
    stems = {Path(name).stem: name for name in case.not_images}
    if names and all(name in stems and name != stems[name] for name in names):
        return (f"explain_folder returned {sorted(str(item) for item in reported)}{where}: the names without their "
                f"extensions (path.stem); return the full file names, such as {stems[names[0]]!r} (path.name).")
    if missing and sorted(name.lower() for name in names) == sorted(name.lower() for name in expected):
        changed = next(name for name in names if name not in expected)
        return (f"explain_folder returned {changed!r}{where}, the name of a file in another case: return path.name "
                "exactly as it is, upper and lower case kept.")
    if len(missing) > 3 and len(names) <= 1 and len({case.contents.get(name, ("", 0))[0] for name in expected}) == 1:
        return (f"explain_folder reported {len(names)} of the {len(expected)} files that are not images{where}: they are "
                "all empty, so byte for byte the same. Does it skip a file whose bytes it has seen already (a duplicate)? "
                "Every file directly in the folder counts, copies too: try to load each one.")
    if len(missing) > 3:
        return (f"explain_folder reported {len(names)} of the {len(expected)} files that are not images{where}; "
                f"{len(missing)} were not reported ({', '.join(missing[:2])}, ...): does it stop after a number of files, "
                "or skip some? Every file directly in the folder counts: try to load each one, and report those that "
                "load_image refuses.")
    twins = [name for name in missing if name.lower() in {other.lower() for other in names}]
    if twins:
        return (f"explain_folder did not report {twins[0]!r}, but reported a name that differs from it in upper and lower case "
                f"only{where}: those are two files (README.txt and readme.txt), each to report under its own name. Does it "
                "key or deduplicate the names by name.lower()?")
    if missing:
        missing = [case.about(name) for name in missing]
        what = f"{missing[0]} is not an image but was" if len(missing) == 1 else f"{' and '.join(missing)} are not images but were"
        return (f"{what} not reported{where} (explain_folder returned {sorted(str(item) for item in reported)}): try to load "
                "every file and report those that load_image refuses (ImageLoadError), whatever their names or sizes.")
    return (f"explain_folder reported {_listed(sorted(names))}{where}; expected exactly the files that are not images, "
            f"{_listed(expected)}.")


def _listed(names: Sequence[str], limit: int = 8) -> str:
    """A list of names for a message: the first ``limit`` and how many more."""
    shown = ", ".join(repr(name) for name in names[:limit])
    return f"[{shown}{f', ... ({len(names) - limit} more)' if len(names) > limit else ''}]"


def _describe_names(case: _Folder) -> str:
    """What is wrong with the names of the files explain_folder wrote, or ""."""
    now = _contents(case.folder)
    added = sorted(set(now) - set(case.contents))
    if added:
        return (f"explain_folder wrote {added[0]} into the folder it reads (for {case.what}): save the overlays into "
                "output_folder, and only there.")
    touched = sorted(name for name, (digest, _) in case.contents.items() if name not in now or now[name][0] != digest)
    if touched:
        how = "deleted" if touched[0] not in now else "changed"
        return (f"explain_folder {how} {touched[0]} in the folder it was given (for {case.what}): it only reads the files "
                "there; leave them as they are.")
    rewritten = sorted(name for name, (_, mtime) in case.contents.items() if now[name][1] != mtime)
    if rewritten:
        return (f"explain_folder wrote to {rewritten[0]} in the folder it was given (for {case.what}): its bytes are the "
                "same, but its modification time changed (a touch(), os.utime or a write of the same bytes). The function "
                "only reads the files there: tools that sync or back up the folder see the file as changed. Leave the "
                "input files as they are.")
    if case.output_mode is not None and case.output.is_dir() and case.output.stat().st_mode != case.output_mode:
        return (f"explain_folder changed the permissions of output_folder, which existed before the call (for {case.what}): "
                f"{oct(case.output_mode & 0o7777)} -> {oct(case.output.stat().st_mode & 0o7777)} (a chmod?). It is the "
                "user's folder: save into it and leave everything else as it was.")
    for name, content in case.kept.items():
        target = case.output / name
        if not target.is_file() or target.read_bytes() != content:
            how = "deleted" if not target.is_file() else "changed"
            whose = "an earlier run's overlay of a photo no longer in the folder" if name == GONE else "a file of the user's"
            return (f"explain_folder {how} {name!r}, {whose} that was in output_folder before the call (for "
                    f"{case.what}): output_folder may hold other files; save the overlays into it and delete nothing "
                    "(no shutil.rmtree: Path(output_folder).mkdir(parents=True, exist_ok=True) is all it needs).")
    written = sorted(str(p.relative_to(case.output)) for p in case.output.rglob("*")
                     if p.is_file() and str(p.relative_to(case.output)) not in case.kept) if case.output.exists() else []
    expected = sorted(f"{name}_cam.png" for name in case.images)
    if not case.output.exists():
        return f"explain_folder did not create output_folder (for {case.what}): create it, even when there is nothing to save."
    if written == expected:
        return ""
    nested = [name for name in written if Path(name).parent != Path(".")]
    if nested:
        return (f"explain_folder saved {nested[0]} into a sub-folder of output_folder (for {case.what}): save every overlay "
                f"directly in output_folder, as output_folder / f\"{{path.name}}_cam.png\" ({Path(nested[0]).name}).")
    if "cat_cam.png" in written:
        return ("cat.jpg and cat.png both became cat_cam.png, one overwriting the other: name each overlay after the "
                "full file name, <file name>_cam.png (cat.jpg_cam.png).")
    if any(SUBFOLDER in name or "beach" in name for name in written):
        return f"explain_folder explained a photo inside the sub-folder {SUBFOLDER!r}: explain only the files directly in the folder."
    missing = sorted(set(expected) - set(written))
    extra = sorted(set(written) - set(expected))
    found = (f"for {case.what}, expected one overlay per image, {', '.join(expected) or 'none'}; found "
             f"{', '.join(written) if written else 'none'}")
    for_not_images = [name for name in extra if name in {f"{other}_cam.png" for other in case.not_images}]
    if for_not_images:
        source = for_not_images[0][: -len("_cam.png")]
        empty = " (an empty file)" if (case.output / for_not_images[0]).stat().st_size == 0 else ""
        return (f"explain_folder wrote an overlay for a file that is not an image: {for_not_images[0]}{empty}, for "
                f"{source}, which load_image refuses (for {case.what}). Write a file only for the images, once the image "
                "is explained: open or create the output file after explain_file returned, not before.")
    case_only = [name for name in extra if name.lower() in {e.lower() for e in expected}]
    if case_only:
        return (found + f" ({case_only[0]} differs from an expected name in upper and lower case only: keep the file "
                "name exactly as it is, and the suffix _cam.png in lower case).")
    unusual = [name for name in missing if not name.isascii() or " " in name]
    if unusual and extra and len(extra) >= len(missing):
        return (found + f" ({unusual[0]} is missing, and {extra[0]} is there instead: keep the file name exactly as it is, "
                "spaces and letters that are not ASCII included, then _cam.png).")
    if extra and len(extra) >= len(missing):
        return (found + f" ({extra[0]} is not named as the text asks: name each overlay <file name>_cam.png, the full file "
                "name, extension included, then _cam.png, e.g. cat.jpg_cam.png).")
    noted = [name for name in missing if name[: -len("_cam.png")] in case.notes]
    if noted:
        source = noted[0][: -len("_cam.png")]
        return found + (f" ({noted[0]} is missing: {case.about(source)} is an image that load_image reads, so it gets "
                        "its overlay like any other; whatever its size, name, bytes or way of being in the folder).")
    return found + (f" ({missing[0]} is missing: every file that load_image reads is an image, whatever its name)"
                    if missing else "") + "."


def _unexplained(saved: np.ndarray, image: np.ndarray, heats: Sequence[np.ndarray]) -> np.ndarray:
    """Per pixel, how far a saved overlay is from the nearest right drawing (levels, the largest over R, G, B).

    A right drawing blends the photo with the reference's colour at that pixel, or with a colour up to
    :data:`COLOUR_ROWS` rows away in the colormap (a map value on the other side of a colour boundary, which
    another right way of drawing the same map gives): the documented drawings differ by no more.
    """
    colormap = check_colormap(CAM_COLORMAP)
    table = colormap(np.arange(colormap.N))[:, :3] * 255.0
    codes = np.rint(table).astype(np.int64) @ np.array([65536, 256, 1])
    order = np.argsort(codes, kind="stable")
    pixels, photo = saved.astype(np.float64).reshape(-1, 3), image.astype(np.float64).reshape(-1, 3)
    best = np.full(len(pixels), np.inf)
    rows = []
    for heat in heats:
        # Each pixel's row in the colour table (the reference's heat map alone holds exactly the table's colours).
        wanted = heat.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1])
        rows.append(order[np.clip(np.searchsorted(codes[order], wanted), 0, len(codes) - 1)])
    # The reference colours first, on every pixel; the neighbouring rows only where those leave a pixel unexplained
    # (the same minimum, for a fraction of the work).
    for first, steps in ((True, (0,)), (False, tuple(range(-COLOUR_ROWS, COLOUR_ROWS + 1)))):
        where = np.arange(len(pixels)) if first else np.flatnonzero(best > LOSSY_LEVELS)
        for heat_rows in rows[:1] if first else rows:
            for step in steps:
                colour = table[np.clip(heat_rows[where] + step, 0, colormap.N - 1)]
                best[where] = np.minimum(best[where], np.abs(pixels[where] - ((1 - ALPHA) * photo[where] + ALPHA * colour)).max(axis=1))
    return best.reshape(saved.shape[:2])


_MODES = {"P": "a palette PNG (mode 'P', at most 256 colours)", "L": "a grayscale PNG (mode 'L')",
          "LA": "a grayscale PNG (mode 'LA')", "1": "a black-and-white PNG (mode '1')", "I": "a 32-bit grayscale PNG (mode 'I')",
          "I;16": "a 16-bit grayscale PNG (mode 'I;16')"}


def _describe_saved(model: LoadedModel, case: _Folder, own: Callable[[Path], Any] | None = None,
                    skipped: Sequence[str] = (), overlay_wrong: bool = False,
                    notebook_model: LoadedModel | None = None) -> str:
    """What is wrong with the contents of the overlays explain_folder saved, or "".

    Args:
        own: the student's explain_file on a path, to compare a saved overlay with the overlay it was made from.
        notebook_model: the notebook's model (the check gives explain_folder a smaller copy): saved overlays of its
            Grad-CAM name a function that uses the notebook's global model instead of its argument.
    """
    for name, source in case.images.items():
        target = case.output / f"{name}_cam.png"
        if case.as_str and target.read_bytes() == (DATA_DIR / STALE).read_bytes() and name in skipped:
            return (f"{name} was not explained: with an empty output_folder, explain_folder wrote no {target.name} either "
                    f"(for {case.what}; here an earlier run's {target.name} hid that). Every file that load_image reads is "
                    "an image, whatever its name (upper-case extension, leading dot): try to load every file.")
        if case.as_str and target.read_bytes() == (DATA_DIR / STALE).read_bytes():
            return (f"{target.name}, left in output_folder by an earlier run, was not replaced: save every overlay, "
                    "overwriting an older file of the same name (do not skip an image whose overlay exists already).")
        if not target.read_bytes().startswith(PNG_SIGNATURE):
            return (f"{target.name} is not a PNG file (its first bytes are not PNG's signature): save the overlay as PNG, "
                    "e.g. Image.fromarray(overlay).save(path) with a path ending in .png, or format='PNG'.")
        _, image, heat = reference(model, source)
        try:
            with Image.open(target) as opened:
                mode = opened.mode
                # An alpha channel that is opaque everywhere (plt.imsave writes one) draws the same picture: accepted.
                transparent = "transparency" in opened.info or (
                    "A" in mode and int(np.asarray(opened.getchannel("A")).min()) < 255)
                saved = np.asarray(opened.convert("RGB"))
        except Exception:  # noqa: BLE001 - an unreadable file is reported as such
            return f"{target.name} is not a readable PNG image."
        if mode in _MODES and saved.shape == image.shape and describe_overlay(saved, image, heat):
            return (f"the saved {target.name} is {_MODES[mode]}, which loses the overlay's colours (a convert('{mode[0]}') "
                    "on the way?): the heat map itself is not the problem. Save the RGB uint8 overlay as it is: "
                    "Image.fromarray(overlay).save(path).")
        if transparent:
            return (f"the saved {target.name} is partly transparent (a PNG of mode {mode!r} whose alpha is below 255 in "
                    "places): the overlay is an opaque RGB picture, and a viewer shows the page behind it through the "
                    "transparent pixels. Save the RGB uint8 overlay as it is, an RGB PNG: Image.fromarray(overlay).save(path).")
        if mode not in ("RGB", "RGBA"):
            return (f"the saved {target.name} is {_MODES.get(mode, f'a PNG of mode {mode!r}')}, which does not hold every "
                    "colour of the overlay exactly (a quantize() or convert() on the way?): save the RGB uint8 overlay as "
                    "it is, Image.fromarray(overlay).save(path): an RGB PNG (an RGBA one opaque everywhere, as plt.imsave "
                    "writes, holds the same colours and is accepted too).")
        if saved.shape != image.shape:
            kept = (f" For {case.about(name)}, in {case.what}: is an overlay kept by the file's name from an earlier call? "
                    "Explain each file of each call anew." if name in case.notes else "")
            return (f"{target.name} is {saved.shape[0]}x{saved.shape[1]}; save the overlay at its image's size, "
                    f"{image.shape[0]}x{image.shape[1]}.{kept}")
        problem = describe_overlay(saved, image, heat, what=f"the saved {target.name}", alternatives=alternatives(model, source))
        if problem and notebook_model is not None and notebook_model is not model and not describe_overlay(
                saved, image, reference(notebook_model, source)[2]):
            problem = (f"the saved {target.name} shows the Grad-CAM of the notebook's model, not of the model explain_folder "
                       "is given (the check gives it another): use the model argument, and pass it on to explain_file.")
        # PNG is lossless: the saved file holds a right drawing of the overlay exactly, up to rounding and the colour
        # boundaries on which right drawings differ. Where it does not, it is compared with the student's own
        # explain_file overlay of the same file: a saved copy of a wrong overlay is a wrong heat map, named as such;
        # a file that differs from its own overlay in many pixels went through a lossy step.
        closest = None if problem else _unexplained(saved, image, [heat] if isinstance(heat, np.ndarray) else heat)
        if closest is not None and float((closest > LOSSY_LEVELS).mean()) <= LOSSY_SHARE:
            continue
        # A wrong overlay: first, whether it is of the class explain_file names (the student's own call, only now).
        answer = own(case.folder / name) if own is not None else None
        top = reference(model, source)[0]
        if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str) and answer[0] != top:
            return (f"for {case.about(name)} (in {case.what}), explain_file says {answer[0]!r}, but the model's top class "
                    f"is {top!r}: the overlay saved for it shows the Grad-CAM of another class. Explain the class the model "
                    "gives the image as load_image reads it (grad_cam's default target), with no other input or average.")
        if problem:
            return problem + (f" ({case.about(name)}, in {case.what}.)" if name in case.notes else "")
        heats = [heat] if isinstance(heat, np.ndarray) else list(heat)
        changed = _photo_change(saved.astype(np.float64), image, heats, f"the saved {target.name}") or _map_change(
            saved.astype(np.float64), image, heats) or _swapped_size(model, saved, image, target.name)
        if changed:
            return changed + (f" ({case.about(name)}, in {case.what}.)" if name in case.notes else "")
        overlay = answer[1] if isinstance(answer, (tuple, list)) and len(answer) == 2 else None
        if isinstance(overlay, np.ndarray) and overlay.shape == saved.shape:
            copy = np.abs(saved.astype(np.float64) - overlay.astype(np.float64)).max(axis=2)
            if float((copy > LOSSY_LEVELS).mean()) <= LOSSY_SHARE and overlay_wrong:
                return (f"the saved {target.name} is the overlay explain_file returns for it, whose heat map is not right: "
                        "the same cause as above.")
            if float((copy > LOSSY_LEVELS).mean()) <= LOSSY_SHARE:
                return (f"the heat map in the saved {target.name} (the overlay explain_file returns for it) is not exactly "
                        f"the Grad-CAM of the model's top class: {100 * float((closest > LOSSY_LEVELS).mean()):.0f}% of its "
                        f"pixels differ from the right overlay by more than rounding (by up to {int(np.ceil(closest.max()))} "
                        "levels). Blend result.maps[0], which is normalised by its minimum and maximum to [0, 1].")
            closest = copy
        return (f"the saved {target.name} differs from the overlay by more than rounding in {100 * float((closest > LOSSY_LEVELS).mean()):.0f}% "
                f"of its pixels (by up to {int(np.ceil(closest.max()))} levels): it went through a lossy step on its way, "
                "JPEG compression (a save as JPEG, or an io.BytesIO in JPEG, before the PNG)? Save the uint8 overlay "
                "itself as PNG, which is lossless: Image.fromarray(overlay).save(path).")
    return ""


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _crash_message(error: BaseException, case: _Folder, explain_folder: Callable, non_image: str = "") -> str:
    """What a crash of explain_folder on one of the check's folders means, named by its cause (``non_image``: what
    explain_file does wrong with a file that is not an image, if anything)."""
    frames = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    if any(("concurrent" + os.sep) in name or name.endswith(("threading.py", "pool.py")) for name in frames):
        return (f"explain_folder crashed on {case.what} with a {type(error).__name__} raised in a thread of a pool: several "
                "grad_cam calls ran at once on the one model: grad_cam records layer4 with hooks on the shared "
                "network, so concurrent calls mix each other's activations and gradients. Explain the files one after another.")
    if isinstance(error, FileExistsError):
        return ("explain_folder crashed because output_folder exists already (from an earlier run): create it "
                "with Path(output_folder).mkdir(parents=True, exist_ok=True).")
    if isinstance(error, (FileNotFoundError, OSError)) and "results" in str(error):
        return ("explain_folder could not save into output_folder, which does not exist yet: create it first, "
                "Path(output_folder).mkdir(parents=True, exist_ok=True).")
    if isinstance(error, IsADirectoryError) or SUBFOLDER in str(error):
        return f"explain_folder crashed on the sub-folder {SUBFOLDER!r}: skip sub-folders (path.is_file())."
    if case.as_str and isinstance(error, (AttributeError, TypeError)) and "str" in str(error):
        return ("explain_folder was given folder and output_folder as str and " + describe_error(explain_folder, error)
                + " Accept both str and Path: Path(folder), Path(output_folder).")
    if isinstance(error, TypeError) and "Cannot handle this data type" in str(error):
        return (f"explain_folder crashed saving an overlay (for {case.what}): " + _sentence(describe_error(explain_folder, error))
                + " PIL saves only uint8 images: the overlay must be RGB uint8 (0 to 255), as overlay_cam returns it "
                "(see explain_file's result).")
    if isinstance(error, ImageLoadError):
        return (f"explain_folder crashed on {case.what}: " + _sentence(describe_error(explain_folder, error))
                + " Catch ImageLoadError and report the file instead.")
    if non_image:
        # explain_file returned something for a file that is not an image: explain_folder crashed using it.
        return f"explain_folder crashed on {case.what}: " + _sentence(describe_error(explain_folder, error)) + " The cause: " + non_image
    return f"explain_folder crashed on {case.what}: " + describe_error(explain_folder, error)


_RAISED = object()


def _non_image_problem(checker: Checker, model: LoadedModel, explain_file: Callable, root: Path) -> str:
    """What explain_file does with a file that is not an image (bytes generated from a seed): "" if ImageLoadError
    reaches the caller, as explain_folder relies on."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    path = root / "not an image" / "data.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(13).integers(0, 256, 2000, dtype=np.uint8).tobytes())

    def probe(model: LoadedModel, path: Path) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        try:
            return explain_file(model, path)
        except ImageLoadError:
            return _RAISED
        except Exception as error:  # noqa: BLE001 - named in the message
            return error

    outcome = checker.quiet_call(probe, model, path)
    if outcome is _RAISED:
        return ""
    if isinstance(outcome, BaseException):
        return (f"on a file that is not an image ({path.name}, random bytes), explain_file raised {type(outcome).__name__}, not "
                "load_image's ImageLoadError: let ImageLoadError reach the caller, which catches it to report the file.")
    return (f"on a file that is not an image ({path.name}, random bytes), explain_file returned {type_name(outcome)} instead of "
            "raising: it caught load_image's ImageLoadError itself. Let ImageLoadError reach the caller (explain_folder "
            "catches it and reports the file); a caller given a result for a non-image fails far from the cause.")


def _check_folder(checker: Checker, model: LoadedModel, explain_folder: Callable, explain_file: Callable | None = None,
                  notebook_model: LoadedModel | None = None) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    later = ["reports the files that are not images", "one overlay per image, named after its file", "saved overlays show the CAM in RGB"]
    with tempfile.TemporaryDirectory() as temporary:
        cases = _make_folders(Path(temporary))
        # Once, before the folders: what explain_file does with a file that is not an image names the cause of a crash.
        non_image = _non_image_problem(checker, model, explain_file, Path(temporary)) if explain_file is not None else ""
        reports = []
        for case in cases:
            arguments = (str(case.folder), str(case.output)) if case.as_str else (case.folder, case.output)
            ok, reported = checker.call(explain_folder, model, *arguments,
                                        explain=lambda error, case=case: _crash_message(error, case, explain_folder, non_image))
            if not ok:
                checker.skip(later, "explain_folder must first run through every folder of the check")
                return
            reports.append(reported)
        # Errors that are not unreadable images must reach the caller; and a network in training mode stays so.
        names_right = not any(_describe_names(case) for case in cases)
        stale_kept = any(case.as_str and (case.output / name).is_file() and (case.output / name).read_bytes() == (DATA_DIR / STALE).read_bytes()
                         for case in cases for name in (f"{image}_cam.png" for image in case.images))
        faults = _make_faults(Path(temporary) / "faults")
        hidden = _hidden_error(checker, model, explain_folder, faults, names_right, stale_kept)
        skipped: list[str] = []
        if stale_kept:
            # An earlier run's overlay left in place: did the function skip the overlay that exists, or the image itself?
            fresh = Path(temporary) / "fresh overlays"
            for case in cases:
                if case.as_str:
                    checker.quiet_call(explain_folder, model, str(case.folder), str(fresh))
                    skipped = [name for name in case.images if not (fresh / f"{name}_cam.png").is_file()]
        toy = Path(temporary) / "toy"
        toy.mkdir()
        Image.fromarray(made_up_image()).save(toy / "toy.png")
        checker.keeps_mode(explain_folder, training_copy(made_up_model()), toy, Path(temporary) / "toy overlays")
        # The same, with a network that fails: the error reaches the caller, and the mode must be put back all the same.
        failing = training_copy(made_up_model())
        before = [module.training for module in failing.network.modules()]
        checker.quiet_call(_with_failing_network(explain_folder, failing.network, []), failing, toy, Path(temporary) / "toy overlays 2")
        if [module.training for module in failing.network.modules()] != before:
            checker.note_side_effect("mode", "when the network failed (an error that must reach the caller, as it did), "
                                     "explain_folder left a network given in training mode in eval mode: it switches the "
                                     "mode back only after a loop that ends normally. Put it back in a finally block "
                                     "(try: ... finally: network.train(was_training)).")
        relative = _relative_output_problem(checker, explain_folder, made_up_model(), toy, Path(temporary))
        problem = next((found for found in (_describe_report(r, c) for r, c in zip(reports, cases)) if found), "") or hidden or non_image
        checker.require(later[0], not problem, problem)
        problem = next((found for found in map(_describe_names, cases) if found), "") or _obstacle_problem(faults) or relative
        if checker.require(later[1], not problem, problem):
            own = (lambda path: checker.quiet_call(explain_file, model, path)) if explain_file is not None else None
            overlay_wrong = "overlay shows the CAM in RGB" not in checker.result.passed
            problem = next((found for found in (_describe_saved(model, c, own, skipped, overlay_wrong, notebook_model) for c in cases) if found), "")
            problem = problem or _toy_overlay_problem(Path(temporary) / "toy overlays", toy / "toy.png")
            checker.require(later[2], not problem, problem)
        else:
            checker.skip(later[2:], "the saved overlays can be checked once they have the right names")


def _toy_overlay_problem(output: Path, source: Path) -> str:
    """What is wrong with the overlay explain_folder saved for the made-up network's folder, or "".

    That call was given a made-up network (in training mode, which changes nothing it computes): its overlay must show
    that network's Grad-CAM, not another model's.
    """
    saved = output / f"{source.name}_cam.png"
    if not saved.is_file():
        return ""  # a missing or misnamed overlay is judged on the check's own folders
    toy = made_up_model()
    _, image, heat = reference(toy, source)
    try:
        with Image.open(saved) as opened:
            pixels = np.asarray(opened.convert("RGB"))
    except Exception:  # noqa: BLE001 - an unreadable file is judged on the check's own folders
        return ""
    if pixels.shape != image.shape or not describe_overlay(pixels, image, heat):
        return ""
    return (f"given a made-up network (a model of the check's own) and a folder with one image, explain_folder saved "
            f"{saved.name} with a heat map that is not that network's Grad-CAM: does it explain with another model than "
            "the one it is given (the notebook's, or one kept from an earlier call)? Use the model argument for every file.")


def check_b(model: LoadedModel, explain_file: Callable, explain_folder: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise b: one file's class and overlay; a folder of files, some of them not images.

    Args:
        model: the model the notebook uses.
        explain_file: ``explain_file(model, path)`` -> (class name, RGB uint8 overlay of the image's size).
        explain_folder: ``explain_folder(model, folder, output_folder)`` -> names of the files that are not images;
            saves ``<file name>_cam.png`` for every image directly in ``folder``.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    small = smaller_input(model)  # five CAMs per check; the functions work the same on smaller inputs
    checker = Checker("b", CHECK_COUNT, catch_not_implemented=_grading, models=[model, small])
    notebook_model, model = model, small
    try:
        _check_file(checker, model, explain_file)
        _check_folder(checker, model, explain_folder, explain_file, notebook_model)
    except NotImplementedError:
        raise  # an unfinished function: the notebook shows its hint
    except Exception as error:  # noqa: BLE001 - the check reports, it never raises an error of its own
        _unfinished(checker, CHECK_NAMES, error)
    return checker.finish()
