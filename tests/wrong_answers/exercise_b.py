"""Wrong answers to exercise b: one file's class and overlay, a folder of files."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from utilities import ImageLoadError, grad_cam, load_image, overlay_cam

from .answers import RightAnswer, WrongAnswer

__all__ = ["RIGHT_B", "WRONG_B", "folder_explainer"]


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
    make_folder: bool | str = True,
    returns_list: bool = True,
    report_errors: bool = True,
    exist_ok: bool = True,
    as_path: bool = True,
    overwrite: bool = True,
    image_format: str | None = None,
    result: Callable[[list], Any] = lambda names: names,
    fresh_output: bool = False,
    save_in_try: bool = False,
    skip_existing: bool = False,
    clear_the_way: bool = False,
) -> Callable:
    """explain_folder as a student writes it, with one switch per mistake (the defaults are right)."""

    def explain_folder(model, folder, output_folder):
        if as_path:
            output_folder = Path(output_folder)
        if fresh_output:  # "start from a clean folder": deletes whatever the user had there
            shutil.rmtree(output_folder, ignore_errors=True)
        if make_folder is True:
            Path(output_folder).mkdir(parents=True, exist_ok=exist_ok)
        not_images = []
        for path in files(Path(folder)):
            if skip_existing and (Path(output_folder) / name(path)).exists():  # "already done": an earlier run's overlay stays
                continue
            try:
                image = load_image(path)
                _, overlay = _explain(model, path)
                if save_in_try:
                    Image.fromarray(np.ascontiguousarray(save(image, overlay))).save(output_folder / name(path), format=image_format)
                    continue
            except catch:
                if report_errors:
                    not_images.append(report(path))
                continue
            target = output_folder / name(path)
            if make_folder == "when saving":  # made with the first overlay: a folder without images gets none
                Path(output_folder).mkdir(parents=True, exist_ok=True)
            if clear_the_way and Path(target).is_dir():  # whatever stands where the overlay goes, deleted
                shutil.rmtree(target)
            if overwrite or not Path(target).exists():
                Image.fromarray(np.ascontiguousarray(save(image, overlay))).save(target, format=image_format)
        return result(not_images) if returns_list else None

    return explain_folder


def _file(function):
    return lambda model, solution: {"explain_file": function}


def _folder(**mistake):
    return lambda model, solution: {"explain_folder": folder_explainer(**mistake)}


def _by_extension(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _pil_reader(model, path):
    """explain_file reading the file with PIL instead of load_image."""
    image = np.asarray(Image.open(path).convert("RGB"))
    result = grad_cam(model, image)
    return result.class_names[0], overlay_cam(image, result.maps[0])


def _explain_with(model, path, **options):
    """explain_file with grad_cam's or overlay_cam's options changed."""
    image = load_image(path)
    cmap = options.pop("cmap", None)
    result = grad_cam(model, image, **options)
    return result.class_names[0], overlay_cam(image, result.maps[0], **({"cmap": cmap} if cmap else {}))


def _evaluated(model, path):
    """explain_file putting the network in eval mode "to be safe", and leaving it there."""
    model.network.eval()
    return _explain(model, path)


def _re_raising(model, folder, output_folder):
    """Catches every error, reports the unreadable files and raises the others again: right."""
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    not_images = []
    for path in sorted(Path(folder).iterdir()):
        if path.is_dir():
            continue
        try:
            _, overlay = _explain(model, path)
        except Exception as error:
            if not isinstance(error, ImageLoadError):
                raise
            not_images.append(path.name)
        else:
            Image.fromarray(overlay).save(output_folder / (path.name + "_cam.png"), format="PNG")
    return not_images


def _verified_by_pil(model, folder, output_folder):
    """Decides what is an image with PIL's verify() instead of load_image: a truncated JPEG passes verify()."""
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    not_images = []
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        try:
            with Image.open(path) as opened:
                opened.verify()
        except Exception:  # noqa: BLE001 - the student's catch-all around verify()
            not_images.append(path.name)
            continue
        _, overlay = _explain(model, path)
        Image.fromarray(overlay).save(output / f"{path.name}_cam.png")
    return not_images


def _clears_old_overlays(model, folder, output_folder):
    """Deletes every *_cam.png in output_folder first ("stale results"), then explains the folder."""
    for old in Path(output_folder).glob("*_cam.png") if Path(output_folder).is_dir() else []:
        old.unlink()
    return folder_explainer()(model, folder, output_folder)


WRONG_B = [
    # a fresh student's round 5: both passed before
    WrongAnswer("b", "images told apart by PIL's verify() instead of load_image", r"half\.jpg.*ImageLoadError",
                lambda model, solution: {"explain_folder": _verified_by_pil}),
    WrongAnswer("b", "every older *_cam.png deleted from output_folder first", r"deleted 'holiday\.jpg_cam\.png', an earlier run's overlay",
                lambda model, solution: {"explain_folder": _clears_old_overlays}),
    # what explain_folder may not do to the folders, the files and the model
    WrongAnswer("b", "output_folder deleted and made again (shutil.rmtree)", r"explain_folder deleted 'my notes\.txt', a file of the user's "
                r"that was in output_folder before the call.*no shutil\.rmtree", _folder(fresh_output=True)),
    WrongAnswer("b", "the overlays saved into the folder it reads", r"explain_folder wrote \S+ into the folder it reads",
                _folder(name=lambda path: str(path.parent / f"{path.name}_cam.png"))),  # an absolute path: output_folder is ignored
    WrongAnswer("b", "explain_file puts the network in eval mode and leaves it so", r"switched the network to eval mode.*left it there",
                _file(_evaluated)),
    # errors that are not unreadable images must reach the caller
    WrongAnswer("b", "except Exception: every error taken for an unreadable image", r"explain_folder hid an error that was not an unreadable "
                r"image: the check made the network fail on wide\.png.*reported it as not an image.*Catch ImageLoadError only",
                _folder(catch=(Exception,))),
    WrongAnswer("b", "saving inside the try, OSError caught too", r"explain_folder hid an error that was not an unreadable image: saving "
                r"one\.jpg's overlay failed.*Catch ImageLoadError only", _folder(catch=(ImageLoadError, OSError), save_in_try=True)),
    WrongAnswer("b", "float overlays saved (PIL cannot)", r"crashed saving an overlay.*PIL saves only uint8 images: the overlay must be RGB uint8",
                _folder(save=lambda image, overlay: overlay / 255.0)),
    WrongAnswer("b", "the overlay in the jet colormap", r"coloured with the colormap 'jet': use overlay_cam's default, 'inferno'",
                _file(lambda model, path: _explain_with(model, path, cmap="jet"))),
    WrongAnswer("b", "the overlay of layer3", r"the heat map is the Grad-CAM of layer3; the text asks for layer4",
                _file(lambda model, path: _explain_with(model, path, layer="layer3"))),
    WrongAnswer("b", "explain_file reads with PIL's open().convert('RGB')", r"on a 16-bit grayscale TIFF \(scan16\.tif\).*read images with load_image.*on a JPEG with an EXIF rotation \(rotated\.jpg\).*EXIF rotation was not applied",
                _file(_pil_reader)),
    WrongAnswer("b", "overlay with alpha 0.3", r"blended with alpha 0\.30: use overlay_cam's default alpha, 0\.5",
                _file(lambda model, path: _explain(model, path, alpha=0.3))),
    WrongAnswer("b", "overlay as a tensor", r"the overlay should be a NumPy array.*it is a tensor \(uint8\): convert with \.numpy\(\)",
                _file(lambda model, path: (lambda n, o: (n, __import__("torch").from_numpy(o)))(*_explain(model, path)))),
    WrongAnswer("b", "a set of names returned", r"should return a list of file names \(str\); it returns a set",
                _folder(result=set)),
    WrongAnswer("b", "Path objects as names", r"names as str \(path\.name.*not a PosixPath",
                _folder(report=lambda path: Path(path.name))),
    WrongAnswer("b", "JPEG bytes saved as *_cam.png", r"cat\.jpg_cam\.png is not a PNG file.*PNG's signature",
                _folder(image_format="JPEG")),
    WrongAnswer("b", "output_folder used as given (a str)", r"given folder and output_folder as str.*Path\(folder\), Path\(output_folder\)",
                _folder(as_path=False)),
    WrongAnswer("b", "exist_ok dropped", r"output_folder exists already \(from an earlier run\).*exist_ok=True",
                _folder(exist_ok=False)),
    WrongAnswer("b", "hidden files skipped", r"\.DS_Store is not an image but was not reported \(for a folder with hidden files",
                _folder(files=lambda folder: sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")))),
    WrongAnswer("b", "an earlier run's overlays skipped", r"cat\.jpg_cam\.png_cam\.png is missing",
                _folder(files=lambda folder: sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith("_cam.png")))),
    WrongAnswer("b", "existing overlays not overwritten", r"PHOTO\.JPG_cam\.png, left in output_folder by an earlier run, was not replaced",
                _folder(overwrite=False)),
    WrongAnswer("b", "images whose overlay exists skipped before explaining", r"^(?!.*hid an error).*PHOTO\.JPG_cam\.png, left in "
                r"output_folder by an earlier run, was not replaced.*do not skip an image whose overlay exists",
                _folder(skip_existing=True)),
    WrongAnswer("b", "os.listdir names without their folder", r"reported every file as not an image, the images too.*without its folder",
                _folder(files=lambda folder: [Path(entry) for entry in sorted(os.listdir(folder)) if (folder / entry).is_file()])),
    WrongAnswer("b", "None when every file is an image", r"returns None.*\(for a folder of images only\)",
                _folder(result=lambda names: names or None)),

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
    WrongAnswer("b", "raw, unnormalised CAM in the overlay", r"in the overlay, the heat map is the raw Grad-CAM \(result\.raw\), not normalised",
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
    WrongAnswer("b", "no try/except: crashes on a text file", r"crashed on the check's folder \(a text file.*raised ImageLoadError.*Catch ImageLoadError and report the file",
                _folder(catch=())),
    WrongAnswer("b", "files chosen by extension", r"notes\.txt is not an image but was not reported.*whatever their names",
                _folder(files=_by_extension)),
    WrongAnswer("b", "sub-folders reported as not images", r"reported the sub-folder 'holiday'",
                _folder(files=lambda folder: sorted(folder.iterdir()))),
    WrongAnswer("b", "photos in sub-folders explained too", r"inside the sub-folder 'holiday'",
                _folder(files=lambda folder: sorted(p for p in folder.rglob("*") if p.is_file()))),
    WrongAnswer("b", "output folder not created", r"does not exist yet: create it first",
                _folder(make_folder=False)),
    WrongAnswer("b", "returns None", r"returns None: return the list",
                _folder(returns_list=False)),
    WrongAnswer("b", "errors swallowed silently", r"broken\.png and half\.jpg and notes\.txt are not images but were not reported",
                _folder(catch=(Exception,), report_errors=False)),
]

def _through_jpeg(image, overlay):
    """The overlay compressed as JPEG in memory, then saved as PNG: the colours of the JPEG."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(overlay).save(buffer, "JPEG", quality=75)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _touching(model, folder, output_folder):
    """Right, but it rewrites each input file with its own bytes ("mark as processed"): its modification time changes."""
    not_images = folder_explainer()(model, folder, output_folder)
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            path.write_bytes(path.read_bytes())
    return not_images


WRONG_B += [
    # a fresh student's round 5: passed the check before
    WrongAnswer("b", "overlay saved through JPEG compression, then as PNG", r"went through a lossy step.*JPEG compression",
                _folder(save=_through_jpeg)),
    WrongAnswer("b", "input files rewritten with the same bytes", r"wrote to \S+ in the folder it was given.*modification time changed",
                lambda m, s: {"explain_folder": _touching}),
    WrongAnswer("b", "class name lower-cased", r"exactly as the model gives it",
                _file(lambda model, path: (lambda name, overlay: (name.lower(), overlay))(*_explain(model, path)))),
]

def _sniffed(model, folder, output_folder):
    """Image-ness decided by content sniffing of a few formats (imghdr's list): files it does not know are reported
    without asking load_image, so an icon (.ico), which load_image reads, is reported as not an image."""
    signatures = (b"\xff\xd8", b"\x89PNG", b"GIF8", b"II*\x00", b"MM\x00*", b"BM", b"RIFF")
    known = folder_explainer(files=lambda f: sorted(p for p in f.iterdir() if p.is_file() and p.read_bytes()[:4].startswith(signatures)))
    reported = known(model, folder, output_folder)
    return sorted(reported + [p.name for p in Path(folder).iterdir() if p.is_file() and not p.read_bytes()[:4].startswith(signatures)])


_BY_NAME: dict = {}


def _cached_by_name(model, path):
    """explain_file with a cache keyed by the file's name: another folder's file of the same name gets the first answer."""
    key = (id(model), Path(path).name)
    if key not in _BY_NAME:
        _BY_NAME[key] = _explain(model, path)
    return _BY_NAME[key]


def _raw_centres(model, path):
    """Right: result.raw normalised by hand (min and max), placed with centres=result.centres, as overlay_cam documents."""
    image = load_image(path)
    result = grad_cam(model, image)
    raw = result.raw[0]
    return result.class_names[0], overlay_cam(image, (raw - raw.min()) / (raw.max() - raw.min() + 1e-12), centres=result.centres)


def _palette(model, folder, output_folder):
    """Right overlays, saved as palette PNGs "to save space": convert('P') keeps at most 256 colours."""
    not_images = folder_explainer()(model, folder, output_folder)
    for path in Path(folder).iterdir():
        target = Path(output_folder) / f"{path.name}_cam.png"
        if path.is_file() and target.is_file():
            Image.open(target).convert("P").save(target)
    return not_images


def _gray_base(model, path):
    image = load_image(path)
    gray = np.asarray(Image.fromarray(image).convert("L").convert("RGB"))
    return grad_cam(model, image).class_names[0], overlay_cam(gray, grad_cam(model, image).maps[0])


def _into_subfolder(model, folder, output_folder):
    """Each folder's overlays in a sub-folder of output_folder named after it."""
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    return folder_explainer()(model, folder, Path(output_folder) / Path(folder).name)


WRONG_B += [
    # a fresh student's round 6: passed the check, or got a message that did not name the cause
    WrongAnswer("b", "image-ness by content sniffing (imghdr's formats)", r"reported icon\.ico, which is an image.*not imghdr",
                lambda m, s: {"explain_folder": _sniffed}),
    WrongAnswer("b", "explain_file cached by file name", r"another photo also named coffee\.jpg.*a cache keyed by the file's name",
                _file(_cached_by_name)),
    WrongAnswer("b", "overlay saved as a palette PNG", r"is a palette PNG \(mode 'P'",
                lambda m, s: {"explain_folder": _palette}),
    WrongAnswer("b", "heat map blended onto a grayscale photo", r"the overlay blends the right heat map onto a grayscale copy",
                _file(_gray_base)),
    WrongAnswer("b", "overlays saved into a sub-folder of output_folder", r"into a sub-folder of output_folder",
                lambda m, s: {"explain_folder": _into_subfolder}),
    WrongAnswer("b", "names reported without extensions", r"returned \['broken', 'half', 'notes'\].*without their extensions",
                _folder(report=lambda path: path.stem)),
    WrongAnswer("b", "overlays named <file name>.cam.png", r"cat\.jpg\.cam\.png is not named as the text asks",
                _folder(name=lambda path: f"{path.name}.cam.png")),
]

def _empty_file_first(model, folder, output_folder):
    """The output file created before the image is explained: an empty overlay left for each non-image."""
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    not_images = []
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        target = output / f"{path.name}_cam.png"
        with open(target, "wb") as handle:
            try:
                _, overlay = _explain(model, path)
            except ImageLoadError:
                not_images.append(path.name)
                continue
            Image.fromarray(overlay).save(handle, format="PNG")
    return not_images


def _changes_directory(right):
    def explain_folder(model, folder, output_folder):
        output_folder = Path(output_folder).resolve()
        os.chdir(folder)  # "so that the names are short", and never changed back
        return right(model, ".", output_folder)

    return explain_folder


def _maximum_only(model, path):
    """The raw map divided by its maximum only (its minimum not moved to 0)."""
    image = load_image(path)
    raw = grad_cam(model, image).raw[0]
    return grad_cam(model, image).class_names[0], overlay_cam(image, raw / raw.max())


WRONG_B += [
    # a fresh student's round 8: passed the check, or got a message that did not name the cause
    WrongAnswer("b", "overlays saved as half-transparent RGBA PNGs", r"cat\.jpg_cam\.png is partly transparent \(a PNG of mode 'RGBA'",
                _folder(save=lambda image, overlay: np.dstack([overlay, np.full(overlay.shape[:2], 128, np.uint8)]))),
    WrongAnswer("b", "explain_folder changes the working directory and leaves it", r"changed the working directory \(os\.chdir\).*left it there",
                lambda m, s: {"explain_folder": _changes_directory(s["explain_folder"])}),
    WrongAnswer("b", "the output file created before explaining: an empty overlay for each non-image",
                r"wrote an overlay for a file that is not an image: broken\.png_cam\.png \(an empty file\), for broken\.png, which load_image refuses",
                lambda m, s: {"explain_folder": _empty_file_first}),
    WrongAnswer("b", "the raw map normalised by its maximum only", r"the heat map is normalised by its maximum only \(raw / raw\.max\(\)\).*"
                r"\(It shows on a 16-bit grayscale TIFF, scan16\.tif\.\)",
                _file(_maximum_only)),
]

def _folder_with(explain: Callable, *, refuse: Callable[[Path], bool] = lambda path: False,
                 report: Callable[[Path, list], list] = lambda path, names: names + [path.name]) -> Callable:
    """explain_folder around a given explain_file, reporting the files ``refuse`` picks without loading them."""

    def explain_folder(model, folder, output_folder):
        output = Path(output_folder)
        output.mkdir(parents=True, exist_ok=True)
        not_images = []
        for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
            if refuse(path):
                not_images = report(path, not_images)
                continue
            try:
                _, overlay = explain(model, path)
            except ImageLoadError:
                not_images = report(path, not_images)
                continue
            Image.fromarray(overlay).save(output / f"{path.name}_cam.png", format="PNG")
        return not_images

    return explain_folder


def _both(explain: Callable, **options) -> Callable:
    return lambda model, solution: {"explain_file": explain, "explain_folder": _folder_with(explain, **options)}


def _downscaled(model, path):
    """Photos over 1000 px on a side downscaled before Grad-CAM, the overlay resized back up."""
    image = load_image(path)
    height, width = image.shape[:2]
    scale = 1000 / max(height, width)
    if scale >= 1:
        return _explain(model, path)
    small = np.asarray(Image.fromarray(image).resize((round(width * scale), round(height * scale))))
    result = grad_cam(model, small)
    return result.class_names[0], np.asarray(Image.fromarray(overlay_cam(small, result.maps[0])).resize((width, height)))


def _swapped_size(model, path):
    """grad_cam's output_size given as (W, H); overlay_cam stretches the map back."""
    image = load_image(path)
    result = grad_cam(model, image, output_size=image.shape[1::-1])
    return result.class_names[0], overlay_cam(image, result.maps[0])


def _transformed(change: Callable) -> Callable:
    def explain_file(model, path):
        image = load_image(path)
        result = grad_cam(model, image)
        return result.class_names[0], overlay_cam(image, change(result.maps[0]))

    return explain_file


def _on_a_small_copy(model, path):
    """The overlay blended on a 224x224 copy of the photo, then resized to the photo's size."""
    image = load_image(path)
    result = grad_cam(model, image, output_size=(224, 224))
    small = np.asarray(Image.fromarray(image).resize((224, 224)))
    return result.class_names[0], np.asarray(Image.fromarray(overlay_cam(small, result.maps[0])).resize(image.shape[1::-1]))


def _small_in_pixels(path):
    try:
        with Image.open(path) as opened:
            return min(opened.size) < 32
    except Exception:  # noqa: BLE001 - load_image decides about the rest
        return False


def _skip_seen_bytes(folder):
    """The files of a folder, each content once: a file whose bytes were seen already in this call is skipped."""
    seen, kept = set(), []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.read_bytes() not in seen:
            seen.add(path.read_bytes())
            kept.append(path)
    return kept


def _verify_first(path):
    """PIL's verify() as a first filter, load_image for the rest."""
    try:
        with Image.open(path) as opened:
            opened.verify()
        return False
    except Exception:  # noqa: BLE001 - the student's catch-all around verify()
        return True


WRONG_B += [
    # a student who had not seen the checks (session s10): passed the check, or got a message that did not name the cause
    WrongAnswer("b", "OSError caught with ImageLoadError around explaining", r"fail on wide\.png with a PermissionError \(an OSError.*"
                r"Catch ImageLoadError only", _folder(catch=(ImageLoadError, OSError))),
    WrongAnswer("b", "ValueError caught with ImageLoadError", r"only a RuntimeError reached the caller, so the except catches ValueError, "
                r"ImageLoadError's base class", _folder(catch=(ImageLoadError, ValueError))),
    WrongAnswer("b", "PIL's verify() as a first filter, load_image for the rest",
                r"reported comment\.png \(a PNG whose ancillary tEXt chunk has a wrong checksum.*as not an image", _both(_explain, refuse=_verify_first)),
    WrongAnswer("b", "files over 5 MB skipped", r"scan\.png_cam\.png is missing: scan\.png \(a 48x64 PNG in a file of 200 MB",
                _folder(files=lambda folder: sorted(p for p in folder.iterdir() if p.is_file() and p.stat().st_size <= 5_000_000))),
    WrongAnswer("b", "only the first 500 files", r"reported 500 of the 510 files that are not images.*stop after a number of files",
                _folder(files=lambda folder: sorted(p for p in folder.iterdir() if p.is_file())[:500])),
    WrongAnswer("b", "photos over 1000 px downscaled, the overlay resized back up",
                r"wide\.png_cam\.png was made at another size and resized to the photo's size", _both(_downscaled)),
    WrongAnswer("b", "output names sanitised (spaces to _, letters that are not ASCII dropped)",
                r"(Straße im Mai é| dot )\.png_cam\.png is missing, and .* is there instead: keep the file name exactly as it is",
                _folder(name=lambda path: "".join(c for c in path.name.replace(" ", "_") if c.isascii()) + "_cam.png")),
    WrongAnswer("b", "symbolic links skipped", r"link\.png_cam\.png is missing: link\.png \(a symbolic link",
                _folder(files=lambda folder: sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink()))),
    WrongAnswer("b", "images under 32 px reported as not images", r"reported  dot \.png \(a 16x16 PNG of \d+ bytes, its name starting with a space\) and tiny\.png \(a 24x24 PNG\) "
                r"as not images", _both(_explain, refuse=_small_in_pixels)),
    WrongAnswer("b", "files under 100 bytes reported as not images without load_image", r"reported  dot \.png \(a 16x16 PNG of \d+ bytes, its name starting with a space\) as not an image",
                _both(_explain, refuse=lambda path: path.stat().st_size < 100)),
    WrongAnswer("b", "files whose bytes were seen already skipped", r"they are all empty, so byte for byte the same.*duplicate",
                lambda model, solution: {"explain_folder": folder_explainer(files=_skip_seen_bytes)}),
    WrongAnswer("b", "explain_file returns a list", r"explain_file returns a list, \[class name, overlay\]: return a tuple",
                _file(lambda model, path: list(_explain(model, path)))),
    WrongAnswer("b", "grad_cam's output_size as (W, H)", r"the photo's height and width swapped \(output_size=\(W, H\)\?\)", _both(_swapped_size)),
    WrongAnswer("b", "the map transposed", r"the heat map has the right values but in other places \(transposed",
                _both(_transformed(lambda cam: cam.T))),
    WrongAnswer("b", "the map squared", r"changed after grad_cam by a function of each value that keeps their order.*"
                r"where the right map is 0\.5, yours is 0\.2\d", _both(_transformed(lambda cam: cam ** 2))),
    WrongAnswer("b", "the overlay blended on a 224x224 copy of the photo, resized back", r"the photo under it is not the photo as "
                r"load_image reads it: it was resampled", _both(_on_a_small_copy)),
    WrongAnswer("b", "the names reported in lower case", r"returned '\.ds_store'.*the name of a file in another case",
                _folder(report=lambda path: path.name.lower())),
    WrongAnswer("b", "the names of the images returned instead of the non-images", r"returned the names of the images \(cat\.jpg, cat\.png, scan\)",
                lambda model, solution: {"explain_folder": _images_instead(solution["explain_folder"])}),
]


def _images_instead(right):
    def explain_folder(model, folder, output_folder):
        not_images = right(model, folder, output_folder)
        return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and p.name not in not_images)

    return explain_folder


def _walked(model, folder, output_folder):
    """Right: next(os.walk(folder)) for the files (unsorted), each overlay saved through an open file handle."""
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    root, _, files = next(os.walk(folder))
    failed = []
    for name in files:
        try:
            overlay = _explain(model, os.path.join(root, name))[1]
        except ImageLoadError:
            failed.append(name)
        else:
            with open(Path(output_folder, name + "_cam.png"), "wb") as handle:
                Image.fromarray(overlay).save(handle, format="PNG")
    return failed


def _png_bytes(model, folder, output_folder):
    """Right: os.scandir, the PNG written to an io.BytesIO, then Path.write_bytes."""
    import io

    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    failed = []
    for entry in os.scandir(folder):
        if entry.is_dir():
            continue
        try:
            overlay = _explain(model, entry.path)[1]
        except ImageLoadError:
            failed.append(entry.name)
            continue
        buffer = io.BytesIO()
        Image.fromarray(overlay).save(buffer, format="PNG")
        (output / (entry.name + "_cam.png")).write_bytes(buffer.getvalue())
    return failed



def _swallows_load_error(model, path):
    """explain_file that catches ImageLoadError itself and returns (None, None)."""
    try:
        return _explain(model, path)
    except ImageLoadError:
        return None, None


def _folder_of_swallowing(model, folder, output_folder):
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    not_images = []
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        _, overlay = _swallows_load_error(model, path)
        if overlay is None:
            not_images.append(path.name)
            continue
        Image.fromarray(overlay).save(output / f"{path.name}_cam.png")
    return not_images


def _nearest_stretch(model, path):
    """The raw map normalised and stretched by hand with nearest-neighbour (no interpolation, no centres)."""
    image = load_image(path)
    result = grad_cam(model, image)
    raw = result.raw[0].detach().cpu().numpy()
    small = (raw - raw.min()) / max(float(raw.max() - raw.min()), 1e-12)
    rows = np.arange(image.shape[0]) * small.shape[0] // image.shape[0]
    columns = np.arange(image.shape[1]) * small.shape[1] // image.shape[1]
    return result.class_names[0], overlay_cam(image, small[rows][:, columns])


_BY_NAME_ONLY: dict = {}


def _cached_by_name_only(model, path):
    """explain_file with a cache keyed by the file's name alone (not the model): another model's call gets it too."""
    if Path(path).name not in _BY_NAME_ONLY:
        _BY_NAME_ONLY[Path(path).name] = _explain(model, path)
    return _BY_NAME_ONLY[Path(path).name]


def _deleting_inputs(right):
    """explain_folder that deletes each image once its overlay is saved ("moves the work along")."""

    def explain_folder(model, folder, output_folder):
        reported = right(model, folder, output_folder)
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and path.name not in reported:
                path.unlink()
        return reported

    return explain_folder


def _first_block(model, path):
    """Grad-CAM at the first block inside layer4 (layer4.0), not layer4 itself."""
    image = load_image(path)
    result = grad_cam(model, image, layer="layer4.0")
    return result.class_names[0], overlay_cam(image, result.maps[0])


def _shrunk_first(model, path):
    """The photo shrunk to 224 rows with PIL before grad_cam, the map overlaid on the full photo."""
    image = load_image(path)
    height, width = image.shape[:2]
    small = np.asarray(Image.fromarray(image).resize((max(1, round(width * 224 / height)), 224), Image.BILINEAR))
    result = grad_cam(model, small)
    return result.class_names[0], overlay_cam(image, result.maps[0])


def _photo_under_read_by_pil(model, path):
    """The model run on load_image's photo, the overlay drawn on a plain PIL read of the file."""
    result = grad_cam(model, load_image(path))
    return result.class_names[0], overlay_cam(np.asarray(Image.open(path).convert("RGB")), result.maps[0])


WRONG_B += [
    # a fresh student's round 11: passed the check, or a message naming another cause
    WrongAnswer("b", "explain_file catches ImageLoadError and returns (None, None)",
                r"not an image \(data\.bin, random bytes\), explain_file returned a tuple instead of raising",
                lambda model, solution: {"explain_file": _swallows_load_error, "explain_folder": _folder_of_swallowing}),
    WrongAnswer("b", "the map inverted (1 - map)", r"values are reversed, high where the right map is low \(1 - map",
                _both(_transformed(lambda cam: 1 - cam))),
    WrongAnswer("b", "the map stretched by hand with nearest-neighbour", r"stretched to the photo's size by hand with nearest-neighbour",
                _both(_nearest_stretch)),
    WrongAnswer("b", "explain_file returns (None, None) for a non-image, explain_folder uses it and crashes",
                r"explain_folder raised AttributeError.*The cause: on a file that is not an image.*explain_file returned a tuple "
                r"instead of raising", _both(_swallows_load_error)),
    WrongAnswer("b", "explain_folder deletes each image once explained", r"explain_folder deleted cat\.jpg in the folder it was given",
                lambda model, solution: {"explain_folder": _deleting_inputs(solution["explain_folder"])}),
    WrongAnswer("b", "explain_file cached by file name alone (not by model)",
                r"\A(?!.*divides 0 by 0).*a cache keyed by the file's name", _file(_cached_by_name_only)),
    WrongAnswer("b", "Grad-CAM at layer4.0, a block inside layer4", r"the heat map is the Grad-CAM of layer4\.0, a block inside layer4",
                _both(_first_block)),
    WrongAnswer("b", "the photo shrunk to 224 rows with PIL before grad_cam", r"Grad-CAM of the photo shrunk to 224 rows before grad_cam",
                _both(_shrunk_first)),
    WrongAnswer("b", "the save's OSError caught", r"the save's OSError was caught",
                _folder(catch=(ImageLoadError, OSError), save_in_try=True)),
    WrongAnswer("b", "the photo under the overlay read with PIL", r"16-bit grayscale TIFF.*plain PIL read gives it.*clipped at 255",
                _file(_photo_under_read_by_pil)),
]

RIGHT_B = [
    RightAnswer("b", "next(os.walk(folder)), unsorted, saved through an open file handle", lambda m, s: {"explain_folder": _walked}),
    RightAnswer("b", "os.scandir, the PNG through io.BytesIO and write_bytes", lambda m, s: {"explain_folder": _png_bytes}),
    RightAnswer("b", "overlays saved with plt.imsave (an opaque RGBA PNG)",
                _folder(save=lambda image, overlay: np.dstack([overlay, np.full(overlay.shape[:2], 255, np.uint8)]))),
    RightAnswer("b", "result.raw normalised by hand, drawn with centres=result.centres", _file(_raw_centres)),
    RightAnswer("b", "every error caught, the unreadable files reported, the others raised again", lambda m, s: {"explain_folder": _re_raising}),
    RightAnswer("b", "grad_cam with the cells spread evenly (placement='stretch')",
                _file(lambda model, path: _explain_with(model, path, placement="stretch"))),
]


def _top_class_from_maps(model, path):
    """The class whose Grad-CAM has the largest sum, instead of the largest logit (fc's bias left out)."""
    image = load_image(path)
    sums = grad_cam(model, image, list(range(len(model.class_names)))).raw.flatten(1).sum(1)
    name = model.class_names[int(sums.argmax())]
    return name, overlay_cam(image, grad_cam(model, image, name).maps[0])


def _without_the_last_class(model, path):
    """The top class over logits[:999]: the last class can never be named."""
    image = load_image(path)
    with torch.no_grad():
        logits = model.network(model.preprocess(image)[None])[0]
    name = model.class_names[int(logits[:-1].argmax())]
    return name, overlay_cam(image, grad_cam(model, image, name).maps[0])


_BUFFER: dict[str, np.ndarray] = {}


def _into_one_buffer(model, path):
    """Every overlay written into one array kept between calls: a later call changes an earlier result."""
    name, overlay = _explain(model, path)
    buffer = _BUFFER.get("overlay")
    if buffer is None or buffer.shape != overlay.shape:
        buffer = _BUFFER["overlay"] = np.empty_like(overlay)
    buffer[...] = overlay
    return name, buffer


def _not_hidden(folder: Path) -> list[Path]:
    """Sub-folders skipped by a leading dot only: a hidden one is 'a file'; and links to folders too."""
    return sorted(p for p in folder.iterdir() if not (p.is_dir() and not p.is_symlink() and not p.name.startswith(".")))


def _shrunk_over(limit: int) -> Callable:
    """Photos over ``limit`` px on a side shrunk before Grad-CAM, the overlay drawn on the photo from the shrunk map."""

    def explain_file(model, path):
        image = load_image(path)
        scale = limit / max(image.shape[:2])
        if scale >= 1:
            return _explain(model, path)
        small = np.asarray(Image.fromarray(image).resize((round(image.shape[1] * scale), round(image.shape[0] * scale))))
        result = grad_cam(model, small)
        heat = np.asarray(Image.fromarray(result.maps[0].numpy().astype(np.float32)).resize(image.shape[1::-1], Image.BILINEAR))
        return result.class_names[0], overlay_cam(image, heat)

    return explain_file


def _relative_to_folder(model, folder, output_folder):
    """A relative output_folder joined to the input folder's parent, not the working directory."""
    output = Path(output_folder)
    if not output.is_absolute():
        output = Path(folder).parent / output
    return folder_explainer()(model, folder, output)


def _mode_back_after_the_loop(model, folder, output_folder):
    """eval() for the run, the mode put back after the loop but not in a finally: a failing network leaves it in eval."""
    was_training = model.network.training
    model.network.eval()
    names = folder_explainer()(model, folder, output_folder)
    model.network.train(was_training)
    return names


WRONG_B += [
    # a fresh student's round 12: passed the check
    WrongAnswer("b", "the top class from the largest summed map, not the largest logit",
                r"fc bias makes 'ear' the top class of coffee\.jpg.*not the class with the largest map", _both(_top_class_from_maps)),
    WrongAnswer("b", "the top class over logits[:999]", r"the last class is never named \(a slice logits\[:999\]",
                _both(_without_the_last_class)),
    WrongAnswer("b", "one overlay buffer returned by every call", r"changed when explain_file was called again.*a buffer kept between calls",
                _file(_into_one_buffer)),
    WrongAnswer("b", "no output folder when there is nothing to save", r"did not create output_folder \(for an empty folder\)",
                _folder(make_folder="when saving")),
    WrongAnswer("b", "hidden sub-folders and links to folders taken for files", r"reported the sub-folder '\.git' \(a hidden one\)",
                _folder(files=_not_hidden)),
    WrongAnswer("b", "the names of non-images deduplicated in lower case", r"did not report 'README\.txt'.*name\.lower\(\)",
                _folder(result=lambda names: sorted({name.lower(): name for name in names}.values()))),
    WrongAnswer("b", "files over 50 MB skipped", r"backup\.bin \(a file of 64 MB\) is not an image but was not reported",
                _folder(files=lambda folder: sorted(p for p in folder.iterdir() if p.is_file() and p.stat().st_size < 50 * 2**20))),
    WrongAnswer("b", "photos over 4000 px shrunk before Grad-CAM", r"wide\.png \(a 112x4200 photo",
                _both(_shrunk_over(4000))),
    WrongAnswer("b", "a relative output_folder joined to the folder's parent", r"relative path, 'relative overlays'.*not to folder or its parent",
                lambda m, s: {"explain_folder": _relative_to_folder}),
    WrongAnswer("b", "an obstacle in output_folder deleted with rmtree", r"deleted the folder one\.jpg_cam\.png.*no shutil\.rmtree",
                _folder(clear_the_way=True)),
    WrongAnswer("b", "the mode put back after the loop, not in a finally", r"when the network failed.*in eval mode.*finally",
                lambda m, s: {"explain_folder": _mode_back_after_the_loop}),
]


def _opened_up(model, folder, output_folder):
    """output_folder made writable for everyone (chmod 777) "so that the save cannot fail"."""
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    os.chmod(output_folder, 0o777)
    return folder_explainer()(model, folder, output_folder)


WRONG_B += [
    WrongAnswer("b", "output_folder's permissions changed (chmod 777)", r"changed the permissions of output_folder.*0o777",
                lambda m, s: {"explain_folder": _opened_up}),
]


def _unguarded_min_max(model, path):
    """The raw map scaled by (x - min) / (max - min) by hand, with no guard: 0 / 0 (NaN) for a map with no range."""
    image = load_image(path)
    result = grad_cam(model, image)
    raw = result.raw[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = (raw - raw.min()) / (raw.max() - raw.min())
    return result.class_names[0], overlay_cam(image, scaled)


WRONG_B += [
    # round 12: a map with no range
    WrongAnswer("b", "the raw map scaled by hand with no guard (NaN for a map with no range)",
                r"Grad-CAM of the top class is zero everywhere.*divides 0 by 0 there", _file(_unguarded_min_max)),
]


def _accumulating(right):
    """The names gathered in one list kept between calls (a module-level list): every call's names pile up."""
    reported = []

    def explain_folder(model, folder, output_folder):
        reported.extend(right(model, folder, output_folder))
        return reported

    return explain_folder


WRONG_B += [
    WrongAnswer("b", "the names gathered in a list kept between calls", r"\A(?!.{3000}).*names kept from an earlier call \(a list kept between calls",
                lambda m, s: {"explain_folder": _accumulating(s["explain_folder"])}),
]


WRONG_B += [
    # round 17 (its w73): names .strip()ped on the way (no name in the check's folders started with a space)
    WrongAnswer("b", "the file names stripped of spaces at their ends before opening and reporting",
                r"explain_folder reported 'dot \.png' .*the file is ' dot \.png', its name with the spaces at its ends taken off",
                _folder(files=lambda folder: sorted(folder / p.name.strip() for p in folder.iterdir() if p.is_file()),
                        catch=(ImageLoadError, OSError))),
]

WRONG_B += [
    # found by freezing each argument to the notebook's value: explain_folder passes the notebook's model on
    WrongAnswer("b", "explain_folder explains with the notebook's global model, not its model argument",
                r"shows the Grad-CAM of the notebook's model, not of the model explain_folder is given",
                lambda m, s: {"explain_folder": lambda model, folder, output_folder: s["explain_folder"](m, folder, output_folder)}),
]


WRONG_B += [
    # round 19 (its w51): files over 32 MB reported as not images without trying to load them
    WrongAnswer("b", "files over 32 MB reported as not images (a size limit instead of load_image)",
                r"explain_folder reported scan\.png \(a 48x64 PNG in a file of 200 MB.*load_image reads it: it is an image",
                lambda m, s: {"explain_folder": _folder_with(s["explain_file"], refuse=lambda path: path.stat().st_size > 32 * 2**20)}),
]


def _path_cached(explain):
    """explain_file with functools.cache on (model, path): a file whose contents change keeps its first answer."""
    return functools.cache(lambda model, path: explain(model, path))


_BY_NAME: dict = {}


def _kept_by_name(explain):
    """explain_file keeping each file's answer by its name in a dict shared by every call (and every folder)."""

    def explain_file(model, path):
        if path.name not in _BY_NAME:
            _BY_NAME[path.name] = explain(model, path)
        return _BY_NAME[path.name]

    return explain_file


WRONG_B += [
    # round 20 (its w42, w55): results kept by the file's path, or by its name across folders and calls
    WrongAnswer("b", "explain_file cached by (model, path) with functools.cache",
                r"again for coffee\.jpg after its contents were replaced.*functools\.cache or lru_cache",
                lambda m, s: {"explain_file": _path_cached(s["explain_file"])}),
    WrongAnswer("b", "explain_folder keeping overlays by file name in a dict shared by every call",
                r"cat\.jpg_cam\.png is 300x451.*is an overlay kept by the file's name from an earlier call",
                lambda m, s: (_BY_NAME.clear(), {"explain_folder": _folder_with(_kept_by_name(s["explain_file"]))})[1]),
]


WRONG_B += [
    # round 21 (its w37): the class name as a numpy.str_ (a NumPy array of the names): exercise a rejects it too
    WrongAnswer("b", "the class name as a numpy.str_", r"returns the class name as a numpy\.str_",
                lambda m, s: {"explain_file": lambda model, path: (np.str_(s["explain_file"](model, path)[0]), s["explain_file"](model, path)[1])}),
]
