"""The work of ``python -m utilities.explain``: find the images, explain each, write PNGs and a CSV.

Each image gets one forward pass for its top classes (with ``top_k``) and one
CAM call for all its classes; each class gets one overlay PNG and one CSV
row. A file that cannot be used is recorded as :class:`Skipped` with the
reason, and the run goes on.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..cam import CAMMethod
from ..images import ImageLoadError, load_image
from ..models import LoadedModel
from ..plotting import CAM_COLORMAP, check_colormap, overlay_cam

__all__ = [
    "CSV_COLUMNS",
    "CSV_NAME",
    "ExplainUsageError",
    "FolderReport",
    "RELIABLE_IMAGE_SIDE",
    "Skipped",
    "check_output_folder",
    "explain_images",
    "find_images",
    "overlay_name",
    "shown",
]

#: Below this many pixels on the short side, the model's answer on an image is close to noise: the course's nine photos,
#: shrunk to a short side of 8, 12, 16 or 24 pixels, kept their full-size top class in 0 of 9 cases (32: 2 of 9;
#: 64: 5 of 9; measured with EfficientNet-Lite0 on 2026-12-04). Such images are explained with a note, not refused.
RELIABLE_IMAGE_SIDE = 32

#: Name of the CSV file written into the output folder.
CSV_NAME = "explanations.csv"

#: Columns of the CSV, one row per image and class.
CSV_COLUMNS = ("file", "class", "class_index", "probability", "layer", "method", "peak_row", "peak_column", "overlay")


class ExplainUsageError(ValueError):
    """Arguments that cannot work (a missing path, an output folder that holds inputs); nothing was done."""


@dataclass(frozen=True)
class Skipped:
    """A path that was not explained, and why."""

    path: Path
    reason: str


@dataclass
class FolderReport:
    """What a run did.

    Attributes:
        rows: the CSV rows written, as dicts keyed by :data:`CSV_COLUMNS`.
        skipped: the files and sub-folders not explained, with the reasons.
        csv_path: where the CSV was written.
    """

    rows: list[dict[str, object]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    csv_path: Path | None = None
    #: Files explained with a caveat (an image too small for the answer to mean much), with the caveat.
    notes: list[Skipped] = field(default_factory=list)

    @property
    def explained_files(self) -> list[str]:
        """The input files that got at least one overlay, in order."""
        return list(dict.fromkeys(str(row["file"]) for row in self.rows))


def find_images(paths: Sequence[str | Path], ignore: str | Path | None = None) -> tuple[list[Path], list[Skipped]]:
    """The files to explain: files given as paths, and the files directly inside given folders.

    Folders are not searched recursively: a sub-folder is reported as
    skipped (pass it as a path of its own to explain it), except ``ignore``
    (the output folder), which is passed over silently. Hidden files (names
    starting with ``.``, such as ``.DS_Store``) inside folders are passed over
    too. Every other file is returned, image or not: whether it can be read
    is found out when it is loaded. Links are followed: a link to a file is
    explained as that file, a link to a folder is reported like a sub-folder,
    a link to nothing is reported. A file met twice (given twice, or by a
    link and its target) is explained once and the second is reported.

    Args:
        paths: files and folders.
        ignore: a folder to pass over silently when found inside a folder.

    Returns:
        The files in the order given (a folder's files sorted by name), and
        the sub-folders skipped.

    Raises:
        ExplainUsageError: a path that does not exist.
    """
    ignored = Path(ignore).resolve() if ignore is not None else None
    files: dict[Path, Path] = {}  # resolved -> as given, so a file given twice is explained once
    skipped: list[Skipped] = []
    missing = [str(path) for path in paths if not Path(path).exists()]
    if missing:
        raise ExplainUsageError(f"No such file or folder: {', '.join(map(repr, missing))}.")
    def add(path: Path) -> None:
        if path.is_symlink() and not path.exists():
            skipped.append(Skipped(path, f"a link to {os.readlink(path)!r}, which does not exist"))
            return
        target = path.resolve()
        if target in files:  # the same file again: by another name, a link, or given twice
            link = " (a link to it)" if path.is_symlink() or files[target].is_symlink() else ""
            skipped.append(Skipped(path, f"the same file as {str(files[target])!r}{link}, explained once"))
            return
        files[target] = path

    for given in map(Path, paths):
        if not given.is_dir():
            add(given)
            continue
        for entry in sorted(given.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.resolve() != ignored:
                    what = "a link to a folder" if entry.is_symlink() else "a sub-folder"
                    skipped.append(Skipped(entry, f"{what}; folders are not searched recursively, pass it as a PATH of its own"))
                continue
            add(entry)  # a link to a file is explained as that file
    return list(files.values()), skipped


def check_output_folder(out: str | Path, inputs: Sequence[Path]) -> Path:
    """Check that writing into ``out`` cannot overwrite an input file.

    The rule is strict and simple: the output folder must not be a folder
    that holds any of the input files (nor a file itself). Outputs are written
    only into it, so no output name can then equal an input's.

    Args:
        out: the output folder; it need not exist yet.
        inputs: the files to be explained.

    Returns:
        ``out`` as a path.

    Raises:
        ExplainUsageError: ``out`` is an existing file, or holds an input file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExplainUsageError(f"--out {str(out)!r} is a file; give a folder (it is created if missing).")
    resolved = out.resolve()
    clashing = [str(path) for path in inputs if path.resolve().parent == resolved]
    if clashing:
        shown = ", ".join(map(repr, clashing[:3])) + (f" and {len(clashing) - 3} more" if len(clashing) > 3 else "")
        raise ExplainUsageError(
            f"--out {str(out)!r} holds input files ({shown}); outputs written there could overwrite them. "
            "Choose an output folder that holds none of the inputs, e.g. a new sub-folder."
        )
    return out


def _slug(text: str) -> str:
    """A file-name-safe form of a class name: ``"Egyptian cat"`` -> ``"egyptian_cat"``."""
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "class"


def shown(path: str | Path) -> str:
    """A path as text that any terminal and a UTF-8 CSV can hold: bytes that are not UTF-8 (a file name from another
    system) as ``\\xe9`` escapes, instead of an encoding error."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _printable(text: str) -> str:
    """``text`` for a file name: control characters and undecodable bytes become ``_``."""
    return "".join("_" if unicodedata.category(character)[0] == "C" else character for character in text)


def overlay_name(image: Path, class_name: str, taken: set[str]) -> str:
    """The PNG name for one image and class, unique among ``taken`` (which it joins).

    ``cat.jpg`` and ``Egyptian cat`` give ``cat_egyptian_cat.png``; a name
    already taken (``cat.jpg`` and ``cat.png`` in one run, or the same name in
    two folders) gets ``_2``, ``_3``, ... before the suffix.
    """
    base = f"{_printable(image.stem)}_{_slug(class_name)}"
    name, number = f"{base}.png", 1
    while name.lower() in taken:  # lower: case-insensitive file systems (macOS, Windows)
        number += 1
        name = f"{base}_{number}.png"
    taken.add(name.lower())
    return name


def _peak(cam: torch.Tensor) -> tuple[int, int]:
    """(row, column) of a map's maximum; the first one for ties (a flat map gives (0, 0))."""
    row, column = divmod(int(cam.argmax()), cam.shape[-1])
    return row, column


def explain_images(
    model: LoadedModel,
    method: CAMMethod,
    images: Sequence[Path],
    out: str | Path,
    classes: Sequence[int] | None = None,
    top_k: int = 1,
    progress: bool | None = None,
    cmap: str = CAM_COLORMAP,
) -> FolderReport:
    """Explain each image for some classes: overlay PNGs and one CSV in ``out``.

    Each overlay shows its map scaled by the map's own minimum and maximum.

    Args:
        model: the model (for preprocessing and class names).
        method: the CAM method, made for ``model`` and the layer to explain.
        images: the files; those that cannot be read as images (not an
            image, empty, damaged, too small) are skipped with the reason.
        out: the output folder, created if missing. Check it first with
            :func:`check_output_folder`; existing outputs of the same names
            are overwritten.
        classes: class indices to explain in every image; ``None``: each
            image's ``top_k`` most probable classes.
        top_k: how many of the most probable classes, without ``classes``.
        progress: show a progress bar; ``None``: only on a terminal.
        cmap: matplotlib colormap of the overlays (default
            :data:`~utilities.plotting.CAM_COLORMAP`).

    Returns:
        The rows written and the files skipped.

    Raises:
        ValueError: an unknown ``cmap`` (before anything is written).
    """
    check_colormap(cmap)  # an unknown name fails here, not once per image
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = FolderReport(csv_path=out / CSV_NAME)
    taken: set[str] = {CSV_NAME}
    with report.csv_path.open("w", newline="", encoding="utf-8") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for path in tqdm(images, desc="Explaining", unit="image", disable=None if progress is None else not progress):
            try:
                pixels = load_image(path)
            except ImageLoadError as error:
                report.skipped.append(Skipped(path, str(error)))
                continue
            try:
                rows = _explain_one(model, method, path, pixels, out, classes, top_k, taken, cmap)
            except Exception as error:  # noqa: BLE001 - one bad file must not stop a folder; reported with its type
                report.skipped.append(Skipped(path, f"could not be explained: {type(error).__name__}: {error}"))
                continue
            if min(pixels.shape[:2]) < RELIABLE_IMAGE_SIDE:
                report.notes.append(Skipped(path, f"explained, but at {pixels.shape[1]} x {pixels.shape[0]} pixels (width x height) it is "
                                            f"under {RELIABLE_IMAGE_SIDE} on a side: the model's answer is close to noise"))
            writer.writerows(rows)
            csv_file.flush()  # rows so far survive an interrupted run
            report.rows.extend(rows)
    return report


def _explain_one(
    model: LoadedModel,
    method: CAMMethod,
    path: Path,
    pixels: np.ndarray,
    out: Path,
    classes: Sequence[int] | None,
    top_k: int,
    taken: set[str],
    cmap: str,
) -> list[dict[str, object]]:
    inputs = model.preprocess(pixels).unsqueeze(0).to(model.device)
    if classes is None:
        with torch.inference_mode():
            classes = model.network(inputs)[0].topk(top_k).indices.tolist()
    result = method(inputs, list(classes), output_size=tuple(pixels.shape[:2]))
    rows = []
    for position, index in enumerate(result.class_indices):
        cam = result.map_for(index, model.class_names)
        name = overlay_name(path, result.class_names[position], taken)
        Image.fromarray(overlay_cam(pixels, cam, cmap=cmap)).save(out / name)
        row, column = _peak(cam)
        rows.append(
            {
                "file": shown(path),
                "class": result.class_names[position],
                "class_index": index,
                "probability": round(float(result.probabilities[position]), 6),
                "layer": result.layer,
                "method": result.method,
                "peak_row": row,
                "peak_column": column,
                "overlay": name,
            }
        )
    return rows
