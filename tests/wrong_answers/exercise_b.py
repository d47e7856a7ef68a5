"""Wrong answers to exercise b: one file's class and overlay, a folder of files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from utilities import ImageLoadError, grad_cam, load_image, overlay_cam

from .answers import WrongAnswer

__all__ = ["WRONG_B", "folder_explainer"]


def _explain(model, path, *, alpha=0.5, raw=False):
    image = load_image(path)
    result = grad_cam(model, image)
    return result.class_names[0], overlay_cam(image, result.raw[0] if raw else result.maps[0], alpha=alpha)


def folder_explainer(
    *,
    save: Callable[[np.ndarray, np.ndarray], np.ndarray] = lambda image, overlay: overlay,
    name: Callable[[Path], str] = lambda path: f"{path.name}_cam.png",
    report: Callable[[Path], Any] = lambda path: path.name,
    files: Callable[[Path], list[Path]] = lambda folder: sorted(p for p in folder.iterdir() if p.is_file()),
    catch: tuple = (ImageLoadError,),
    make_folder: bool = True,
    returns_list: bool = True,
    report_errors: bool = True,
) -> Callable:
    """explain_folder as a student writes it, with one switch per mistake (the defaults are right)."""

    def explain_folder(model, folder, output_folder):
        output_folder = Path(output_folder)
        if make_folder:
            output_folder.mkdir(parents=True, exist_ok=True)
        not_images = []
        for path in files(Path(folder)):
            try:
                image = load_image(path)
                _, overlay = _explain(model, path)
            except catch:
                if report_errors:
                    not_images.append(report(path))
                continue
            Image.fromarray(np.ascontiguousarray(save(image, overlay))).save(output_folder / name(path))
        return not_images if returns_list else None

    return explain_folder


def _file(function):
    return lambda model, solution: {"explain_file": function}


def _folder(**mistake):
    return lambda model, solution: {"explain_folder": folder_explainer(**mistake)}


def _by_extension(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


WRONG_B = [
    WrongAnswer("b", "overlay in BGR order", r"colours are in BGR order",
                _file(lambda model, path: (lambda n, o: (n, np.ascontiguousarray(o[..., ::-1])))(*_explain(model, path)))),
    WrongAnswer("b", "the photo instead of the overlay", r"is the photo itself",
                _file(lambda model, path: (_explain(model, path)[0], load_image(path)))),
    WrongAnswer("b", "a float overlay in [0, 1]", r"right size but is float64",
                _file(lambda model, path: (lambda n, o: (n, o / 255.0))(*_explain(model, path)))),
    WrongAnswer("b", "overlay at the network input's size", r"make it the image's size",
                _file(lambda model, path: (lambda n, o: (n, np.asarray(Image.fromarray(o).resize((336, 224)))))(*_explain(model, path)))),
    WrongAnswer("b", "(overlay, name) order", r"other way round",
                _file(lambda model, path: _explain(model, path)[::-1])),
    WrongAnswer("b", "class index instead of name", r"by its name \(a str",
                _file(lambda model, path: (grad_cam(model, load_image(path)).class_indices[0], _explain(model, path)[1]))),
    WrongAnswer("b", "raw, unnormalised CAM in the overlay", r"not the Grad-CAM of the model's top class",
                _file(lambda model, path: _explain(model, path, raw=True))),
    WrongAnswer("b", "only the heat map (alpha 1)", r"shows only the heat map",
                _file(lambda model, path: _explain(model, path, alpha=1.0))),
    WrongAnswer("b", "saved overlays in BGR order", r"saved cat\.jpg_cam\.png's colours are in BGR order",
                _folder(save=lambda image, overlay: overlay[..., ::-1])),
    WrongAnswer("b", "the photo saved instead of the overlay", r"saved cat\.jpg_cam\.png is the photo itself",
                _folder(save=lambda image, overlay: image)),
    WrongAnswer("b", "overlays named after the stem", r"both became cat_cam\.png",
                _folder(name=lambda path: f"{path.stem}_cam.png")),
    WrongAnswer("b", "paths reported instead of names", r"names \(path\.name.*not their paths",
                _folder(report=lambda path: str(path))),
    WrongAnswer("b", "no try/except: crashes on a text file", r"crashed on a folder with a text file.*Catch ImageLoadError",
                _folder(catch=())),
    WrongAnswer("b", "files chosen by extension", r"notes\.txt is not an image but was not reported.*whatever their extension",
                _folder(files=_by_extension)),
    WrongAnswer("b", "sub-folders reported as not images", r"reported the sub-folder 'holiday'",
                _folder(files=lambda folder: sorted(folder.iterdir()))),
    WrongAnswer("b", "photos in sub-folders explained too", r"inside the sub-folder 'holiday'",
                _folder(files=lambda folder: sorted(p for p in folder.rglob("*") if p.is_file()))),
    WrongAnswer("b", "output folder not created", r"does not exist yet: create it first",
                _folder(make_folder=False)),
    WrongAnswer("b", "returns None", r"returns None: return the list",
                _folder(returns_list=False)),
    WrongAnswer("b", "errors swallowed silently", r"broken\.png and notes\.txt are not images but were not reported",
                _folder(catch=(Exception,), report_errors=False)),
]
