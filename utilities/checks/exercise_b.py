"""Exercise b: one file's class and overlay; a folder of files, some of them not images."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..cam import grad_cam
from ..images import DATA_DIR, load_image
from ..models import LoadedModel
from ..plotting import CAM_COLORMAP, overlay_cam
from ._common import Checker, CheckResult, cached, describe_error, smaller_input

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "check_b", "describe_overlay"]

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
NOT_IMAGES = ("broken.png", "notes.txt")
SUBFOLDER = "holiday"


def _reference(model: LoadedModel, source: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(top class, photo, heat map alone) for a photo in the data folder."""
    image = load_image(DATA_DIR / source)
    result = grad_cam(model, image)
    return result.class_names[0], image, overlay_cam(image, result.maps[0], alpha=1.0)


def reference(model: LoadedModel, source: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Cached :func:`_reference`."""
    return cached(model, ("exercise b", source), lambda: _reference(model, source))


def _fit(overlay: np.ndarray, image: np.ndarray, heat: np.ndarray) -> tuple[float, float]:
    """Blend weight alpha and mean residual of overlay ~ (1 - alpha) * image + alpha * heat."""
    difference = overlay.astype(np.float64) - image
    direction = heat.astype(np.float64) - image
    alpha = float((difference * direction).sum() / max((direction * direction).sum(), 1e-9))
    return alpha, float(np.abs(difference - alpha * direction).mean())


def describe_overlay(overlay: np.ndarray, image: np.ndarray, heat: np.ndarray, what: str = "the overlay") -> str:
    """Empty if ``overlay`` blends the heat map into the image in RGB, else what is wrong with it.

    Args:
        overlay: (H, W, 3) array, uint8 or float in [0, 1].
        image: the photo, RGB uint8.
        heat: the reference heat map alone (``overlay_cam`` with alpha 1 and its default
            colormap, :data:`~utilities.plotting.CAM_COLORMAP`), RGB uint8.
        what: how to call the overlay in the message.
    """
    pixels = overlay.astype(np.float64)
    if overlay.dtype.kind == "f" and pixels.max() <= 1.0:
        pixels = pixels * 255.0  # judge a float overlay's colours; its type is another check's business
    alpha, residual = _fit(pixels, image, heat)
    swapped_alpha, swapped_residual = _fit(pixels[..., ::-1], image, heat)
    if residual < 3 and 0.15 <= alpha <= 0.85:
        return ""
    if swapped_residual < 3 and swapped_residual < residual:
        return f"{what}'s colours are in BGR order: keep RGB (no [..., ::-1], no cv2 without converting)."
    if np.abs(pixels - image).mean() < 2:
        return f"{what} is the photo itself, with no heat map: blend the Grad-CAM into it with overlay_cam."
    if residual < 3 and alpha > 0.85:
        return f"{what} shows only the heat map: blend it with the photo (overlay_cam's alpha below 1)."
    if residual < 3:
        return f"the heat map in {what} is barely visible (alpha {alpha:.2f}): use overlay_cam's default alpha, 0.5."
    return (f"the heat map in {what} is not the Grad-CAM of the model's top class at layer4 (normalised to [0, 1], "
            f"coloured by overlay_cam with its default colormap, {CAM_COLORMAP!r}).")


def _check_file(checker: Checker, model: LoadedModel, explain_file: Callable) -> None:
    later = ["predicted class", "overlay size and type", "overlay shows the CAM in RGB"]
    path = DATA_DIR / "coffee.jpg"
    ok, answer = checker.call(explain_file, model, path)
    if not ok:
        checker.skip(later, "explain_file failed")
        return
    top, image, heat = reference(model, "coffee.jpg")
    problem = ""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        problem = f"explain_file should return two things, (class name, overlay); got {type(answer).__name__}."
    elif isinstance(answer[1], str) and not isinstance(answer[0], str):
        problem = "explain_file returns (overlay, class name); return them the other way round: (class name, overlay)."
    elif not isinstance(answer[0], str):
        problem = (f"the class should be given by its name (a str, e.g. from grad_cam's result.class_names), "
                   f"not a {type(answer[0]).__name__}.")
    elif not isinstance(answer[1], np.ndarray):
        problem = f"the overlay should be a NumPy array (H, W, 3), as overlay_cam returns; got {type(answer[1]).__name__}."
    if not checker.require("returns class and overlay", not problem, problem):
        checker.skip(later, "fix the form of explain_file's result first")
        return
    name, overlay = answer
    checker.require("predicted class", name == top, f"explain_file says {name!r}, which is not the model's top class for this photo.")
    right_size = overlay.shape == image.shape
    if right_size and overlay.dtype == np.uint8:
        problem = ""
    elif right_size:
        problem = f"the overlay has the right size but is {overlay.dtype}: return RGB uint8 (0 to 255), as overlay_cam does."
    elif overlay.ndim == 3 and overlay.shape[:2] == image.shape[:2]:
        problem = f"the overlay has {overlay.shape[2]} channels; return RGB, 3 channels."
    else:
        problem = (f"the overlay is {'x'.join(map(str, overlay.shape[:2]))}; make it the image's size, "
                   f"{image.shape[0]}x{image.shape[1]} (photos need not be the network input's size).")
    checker.require("overlay size and type", not problem, problem)
    if right_size:
        problem = describe_overlay(overlay, image, heat)
        checker.require("overlay shows the CAM in RGB", not problem, problem)
    else:
        checker.skip(later[-1:], "the overlay's colours can be checked once it has the image's size")


def _make_folder(root: Path) -> Path:
    folder = root / "photos"
    (folder / SUBFOLDER).mkdir(parents=True)
    for name, source in IMAGES.items():
        if name.endswith(".png") and not source.endswith(".png"):
            Image.open(DATA_DIR / source).save(folder / name)  # same pixels, another format and name
        else:
            (folder / name).write_bytes((DATA_DIR / source).read_bytes())
    (folder / SUBFOLDER / "beach.jpg").write_bytes((DATA_DIR / "coffee.jpg").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"")
    return folder


def _describe_report(reported: Any, folder: Path) -> str:
    if reported is None:
        return "explain_folder returns None: return the list of names of the files that are not images (empty if there are none)."
    if isinstance(reported, (str, Path)) or not hasattr(reported, "__iter__"):
        return f"explain_folder should return a list of file names; got {type(reported).__name__}."
    items = list(reported)
    names = [Path(str(item)).name for item in items]
    if sorted(str(item) for item in items) == sorted(NOT_IMAGES):
        return ""
    if sorted(names) == sorted(NOT_IMAGES):
        return "return the files' names (path.name, a str such as 'notes.txt'), not their paths."
    if SUBFOLDER in names:
        return f"explain_folder reported the sub-folder {SUBFOLDER!r}: skip sub-folders, they are neither explained nor reported."
    wrongly = sorted(set(names) & set(IMAGES))
    if wrongly:
        return (f"explain_folder reported {', '.join(wrongly)}, which is an image (a file name need not end in .jpg or .png): "
                "report only the files load_image cannot read.")
    missing = sorted(set(NOT_IMAGES) - set(names))
    if missing:
        what = f"{missing[0]} is not an image but was" if len(missing) == 1 else f"{' and '.join(missing)} are not images but were"
        return (f"{what} not reported: try to load every file and report those that load_image refuses "
                "(ImageLoadError), whatever their extension.")
    return f"explain_folder reported {sorted(names)}; expected exactly the files that are not images, {sorted(NOT_IMAGES)}."


def _describe_saved(model: LoadedModel, output: Path) -> str:
    written = sorted(p.name for p in output.rglob("*") if p.is_file()) if output.exists() else []
    expected = sorted(f"{name}_cam.png" for name in IMAGES)
    if written == expected:
        for name, source in IMAGES.items():
            _, image, heat = reference(model, source)
            try:
                saved = np.asarray(Image.open(output / f"{name}_cam.png").convert("RGB"))
            except Exception:  # noqa: BLE001 - an unreadable file is reported below
                return f"{name}_cam.png is not a readable PNG image."
            if saved.shape != image.shape:
                return f"{name}_cam.png is {saved.shape[0]}x{saved.shape[1]}; save the overlay at its image's size, {image.shape[0]}x{image.shape[1]}."
            problem = describe_overlay(saved, image, heat, what=f"the saved {name}_cam.png")
            if problem:
                return problem
        return ""
    if "cat_cam.png" in written:
        return ("cat.jpg and cat.png both became cat_cam.png, one overwriting the other: name each overlay after the "
                "full file name, <file name>_cam.png (cat.jpg_cam.png).")
    if any(SUBFOLDER in name or "beach" in name for name in written):
        return f"explain_folder explained a photo inside the sub-folder {SUBFOLDER!r}: explain only the files directly in the folder."
    return (f"expected one overlay per image, {', '.join(expected)}, in output_folder; found "
            f"{', '.join(written) if written else 'none'}.")


def _check_folder(checker: Checker, model: LoadedModel, explain_folder: Callable) -> None:
    later = ["reports the files that are not images", "one overlay per image, named after its file", "saved overlays show the CAM in RGB"]
    with tempfile.TemporaryDirectory() as temporary:
        folder = _make_folder(Path(temporary))
        output = Path(temporary) / "results" / "overlays"  # does not exist yet, nor does its parent

        def explain(error: BaseException) -> str | None:
            if isinstance(error, (FileNotFoundError, OSError)) and "results" in str(error):
                return ("explain_folder could not save into output_folder, which does not exist yet: create it first, "
                        "Path(output_folder).mkdir(parents=True, exist_ok=True).")
            if isinstance(error, IsADirectoryError) or SUBFOLDER in str(error):
                return f"explain_folder crashed on the sub-folder {SUBFOLDER!r}: skip sub-folders (path.is_file())."
            return ("explain_folder crashed on a folder with a text file and an empty file: "
                    + describe_error(explain_folder, error) + " Catch ImageLoadError and report the file instead.")

        ok, reported = checker.call(explain_folder, model, folder, output, explain=explain)
        if not ok:
            checker.skip(later, "explain_folder must first run through the whole folder")
            return
        problem = _describe_report(reported, folder)
        checker.require(later[0], not problem, problem)
        problem = _describe_saved(model, output)
        names_ok = not problem or not problem.startswith(("cat.jpg and", "explain_folder explained", "expected one"))
        checker.require(later[1], names_ok, problem)
        if names_ok:
            checker.require(later[2], not problem, problem)
        else:
            checker.skip(later[2:], "the saved overlays can be checked once they have the right names")


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
    checker = Checker("b", CHECK_COUNT, catch_not_implemented=_grading)
    model = smaller_input(model)  # five CAMs per check; the functions work the same on smaller inputs
    _check_file(checker, model, explain_file)
    _check_folder(checker, model, explain_folder)
    return checker.result
