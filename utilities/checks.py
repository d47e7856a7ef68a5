"""Checks for the exercise notebooks.

Each ``check_*`` runs a student's functions on inputs of its own choosing
(other classes, other images, synthetic maps, broken files) and returns a
:class:`CheckResult`: "correct", or one message per failed check that names
the mistake without giving the answer away. :func:`grade` runs the same checks
on the names a notebook defined, for the grading command.

A student's ``NotImplementedError`` (an unfinished exercise) is let through,
so the notebook shows its hint; any other error inside a student's function
fails that check with the error's message.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .cam import grad_cam
from .classes import UnknownClassError, class_index
from .images import DATA_DIR, load_image
from .models import LoadedModel
from .plotting import overlay_cam

__all__ = ["CHECK_COUNTS", "EXERCISES", "CheckResult", "check_a", "check_b", "check_c", "check_d", "grade"]

STAGES = ("layer1", "layer2", "layer3", "layer4")

#: Number of checks per exercise.
CHECK_COUNTS = {"a": 6, "b": 6, "c": 5, "d": 4}


@dataclass
class CheckResult:
    """Outcome of one exercise's checks.

    Attributes:
        exercise: the exercise's letter.
        total: number of checks.
        passed: names of the checks that passed.
        problems: one message per failed check.
    """

    exercise: str
    total: int
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Share of checks passed, 0 to 1."""
        return len(self.passed) / self.total

    @property
    def correct(self) -> bool:
        return len(self.passed) == self.total

    def __str__(self) -> str:
        if self.correct:
            return f"Exercise {self.exercise}: correct ({self.total}/{self.total} checks pass)."
        lines = [f"Exercise {self.exercise}: {len(self.passed)}/{self.total} checks pass. Not yet:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)

    __repr__ = __str__


class _Checker:
    """Collects check outcomes; ``with checker.check(name):`` fails the check on any error but NotImplementedError."""

    def __init__(self, exercise: str, total: int, catch_not_implemented: bool) -> None:
        self.result = CheckResult(exercise, total)
        self.catch_not_implemented = catch_not_implemented

    def require(self, name: str, condition: bool, problem: str) -> bool:
        if condition:
            self.result.passed.append(name)
        else:
            self.result.problems.append(problem)
        return condition

    def call(self, name: str, function: Callable, *args: Any) -> tuple[bool, Any]:
        """Call a student's function; a failure counts against check ``name``."""
        try:
            return True, function(*args)
        except NotImplementedError as error:
            if not self.catch_not_implemented:
                raise
            self.result.problems.append(f"{getattr(function, '__name__', 'a function')} is not implemented yet ({error}).")
        except Exception as error:  # noqa: BLE001 - any student error is reported, not raised
            self.result.problems.append(
                f"{getattr(function, '__name__', 'your function')} raised {type(error).__name__}: {error}"
            )
        return False, None

    def skip(self, names: list[str], reason: str) -> None:
        """Count checks that cannot run as failed, once, with the reason."""
        self.result.problems.append(reason + f" ({len(names)} check{'s' if len(names) > 1 else ''} skipped)")


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu()
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
        return torch.from_numpy(np.asarray(value, dtype=np.float32))
    return None


def _half_masks(height: int, width: int) -> dict[str, torch.Tensor]:
    left = torch.zeros(height, width, dtype=torch.bool)
    left[:, : width // 2] = True
    return {"left": left, "right": ~left}


# ----------------------------------------------------------------------------- exercise a


def check_a(model: LoadedModel, cams_for_classes: Callable, dominant_class: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise a: CAMs for arbitrary classes, and which class dominates which half.

    Args:
        model: the model the notebook uses.
        cams_for_classes: ``cams_for_classes(model, image, class_names)`` -> (K, H, W) maps.
        dominant_class: ``dominant_class(cams, class_names)`` -> {"left": name, "right": name}.
    """
    checker = _Checker("a", CHECK_COUNTS["a"], catch_not_implemented=_grading)
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    height, width = image.shape[:2]
    classes = ["espresso", "goldfish", "Egyptian cat"]  # not the notebook's classes or order
    reference = grad_cam(model, image, classes)
    ok, answer = checker.call("shape", cams_for_classes, model, image, classes)
    cams = _as_tensor(answer) if ok else None
    if ok and cams is None:
        checker.require("shape", False, f"cams_for_classes should return a tensor or array (K, H, W), got {type(answer).__name__}.")
    if cams is not None:
        shape_ok = cams.ndim == 3 and cams.shape[0] == len(classes) and tuple(cams.shape[1:]) == (height, width)
        if cams.ndim != 3 or cams.shape[0] != len(classes):
            problem = f"expected one map per class, (K, H, W) with K = {len(classes)}; got shape {tuple(cams.shape)}."
        else:
            problem = f"the maps are {cams.shape[1]}x{cams.shape[2]}; upsample them to the image size, {height}x{width}."
        checker.require("shape", shape_ok, problem)
        finite = not torch.isnan(cams).any()
        checker.require("no NaN", finite, "the maps contain NaN: is there a division by zero when normalising?")
        if shape_ok and finite:
            low, high = cams.flatten(1).amin(1), cams.flatten(1).amax(1)
            normalised = bool(((low.abs() < 1e-4) & (((high - 1).abs() < 1e-4) | (high.abs() < 1e-4))).all())
            checker.require(
                "normalised", normalised,
                f"each map should be normalised to [0, 1]; values run from {float(low.min()):.3g} to {float(high.max()):.3g}.",
            )
            matches = torch.allclose(cams, reference.maps, atol=2e-3)
            problem = "the maps do not match Grad-CAM at layer4 (weights = mean gradient, weighted sum, ReLU, bilinear upsampling, normalising)."
            if not matches:
                for stage in STAGES[:-1]:
                    if torch.allclose(cams, grad_cam(model, image, classes, layer=stage).maps, atol=2e-3):
                        problem = f"these are the CAMs of {stage}; the exercise asks for layer4."
                for order in ([1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]):
                    if torch.allclose(cams, reference.maps[order], atol=2e-3):
                        problem = "the maps are right but belong to other classes: keep them in the order of class_names."
            checker.require("Grad-CAM at layer4", matches, problem)
        else:
            checker.skip(["normalised", "Grad-CAM at layer4"], "fix the shape and NaN problems first")
    elif not ok:
        checker.skip(["no NaN", "normalised", "Grad-CAM at layer4"], "cams_for_classes did not return maps")
    # dominant_class: first on synthetic maps with a known answer, then on the real maps.
    synthetic = torch.zeros(3, 4, 8)
    synthetic[2, :, :4] = 1.0  # class 2 fills the left half
    synthetic[0, :, 4:] = 1.0  # class 0 fills the right half
    synthetic[1] = 0.3  # class 1 is everywhere, weakly
    names = ["first", "second", "third"]
    ok, answer = checker.call("dominant on synthetic maps", dominant_class, synthetic, names)
    if ok:
        checker.require(
            "dominant on synthetic maps", answer == {"left": "third", "right": "first"},
            "on maps where one class clearly fills each half, dominant_class gave the wrong answer: "
            "return {'left': name, 'right': name}, comparing each class's map mass in that half.",
        )
    ok, answer = checker.call("dominant on real maps", dominant_class, reference.maps, classes)
    if ok:
        masks = _half_masks(height, width)
        expected = {half: classes[int((reference.maps * mask).sum(dim=(1, 2)).argmax())] for half, mask in masks.items()}
        checker.require("dominant on real maps", answer == expected, "on Grad-CAM maps of the pair photo, dominant_class gives a wrong half.")
    return checker.result


# ----------------------------------------------------------------------------- exercise b


def check_b(model: LoadedModel, explain_file: Callable, explain_folder: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise b: one file's class and overlay; a folder of files, some of them not images.

    Args:
        model: the model the notebook uses.
        explain_file: ``explain_file(model, path)`` -> (class name, RGB uint8 overlay of the image's size).
        explain_folder: ``explain_folder(model, folder, output_folder)`` -> names of the files that are not images.
    """
    checker = _Checker("b", CHECK_COUNTS["b"], catch_not_implemented=_grading)
    path = DATA_DIR / "coffee.jpg"
    image = load_image(path)
    ok, answer = checker.call("returns class and overlay", explain_file, model, path)
    if ok:
        valid = isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str) and isinstance(answer[1], np.ndarray)
        checker.require("returns class and overlay", valid, "explain_file should return (class name, overlay as a NumPy array).")
        if valid:
            name, overlay = answer
            top = model.predict(image, top_k=1)[0][0]
            checker.require("predicted class", name == top, f"explain_file says {name!r}, which is not the model's top class for this photo.")
            size_ok = overlay.shape == image.shape and overlay.dtype == np.uint8
            checker.require(
                "overlay size and type", size_ok,
                f"the overlay should be RGB uint8 of the image's size {image.shape}; got {overlay.shape} {overlay.dtype}.",
            )
            if size_ok:
                reference = overlay_cam(image, grad_cam(model, image).maps[0], alpha=0.5).astype(np.int16)
                as_is = np.abs(overlay.astype(np.int16) - reference).mean()
                swapped = np.abs(overlay[..., ::-1].astype(np.int16) - reference).mean()
                differs = np.abs(overlay.astype(np.int16) - image).mean() > 2
                problem = "the overlay shows no heat map: blend the coloured CAM into the image."
                if differs and swapped < as_is:
                    problem = "the overlay's colours look swapped (BGR instead of RGB)."
                checker.require("overlay shows the CAM in RGB", differs and as_is <= swapped, problem)
            else:
                checker.skip(["overlay shows the CAM in RGB"], "fix the overlay's size first")
        else:
            checker.skip(["predicted class", "overlay size and type", "overlay shows the CAM in RGB"], "explain_file's result has the wrong form")
    else:
        checker.skip(["predicted class", "overlay size and type", "overlay shows the CAM in RGB"], "explain_file failed")
    with tempfile.TemporaryDirectory() as temporary:
        folder, output = Path(temporary) / "photos", Path(temporary) / "overlays"
        folder.mkdir()
        for name in ("cat.jpg", "espresso.jpg"):
            (folder / name).write_bytes((DATA_DIR / ("chelsea.jpg" if name == "cat.jpg" else "coffee.jpg")).read_bytes())
        (folder / "notes.txt").write_text("not an image")
        (folder / "broken.png").write_bytes(b"")
        ok, reported = checker.call("survives bad files", explain_folder, model, folder, output)
        if ok:
            reported_names = sorted(Path(str(item)).name for item in (reported or []))
            checker.require(
                "reports the files that are not images", reported_names == ["broken.png", "notes.txt"],
                f"the folder holds 2 files that are not images; explain_folder reported {len(reported_names)}"
                f"{' (including an image)' if set(reported_names) & {'cat.jpg', 'espresso.jpg'} else ''}.",
            )
            written = sorted(output.glob("*.png")) if output.exists() else []
            readable = []
            for file in written:
                try:
                    readable.append(load_image(file).shape)
                except Exception:  # noqa: BLE001 - an unreadable overlay simply does not count
                    pass
            sizes = sorted(load_image(folder / name).shape for name in ("cat.jpg", "espresso.jpg"))
            checker.require(
                "one overlay per image", sorted(readable) == sizes,
                f"expected 2 overlays (PNG, each of its image's size) in the output folder, found {len(readable)} usable.",
            )
        else:
            checker.skip(["reports the files that are not images", "one overlay per image"], "explain_folder crashed on a folder with a text file and an empty file")
    return checker.result


# ----------------------------------------------------------------------------- exercise c


def check_c(model: LoadedModel, changed_preprocess: Callable, new_top_class: str, *, _grading: bool = False) -> CheckResult:
    """Exercise c: a change to the preprocessing that changes the top class of the coffee photo.

    Args:
        model: the model the notebook uses.
        changed_preprocess: ``changed_preprocess(image)`` -> float tensor (3, H, W), like ``model.preprocess``.
        new_top_class: the class the model then predicts, as an ImageNet class name.
    """
    checker = _Checker("c", CHECK_COUNTS["c"], catch_not_implemented=_grading)
    coffee, cat = load_image(DATA_DIR / "coffee.jpg"), load_image(DATA_DIR / "chelsea.jpg")
    original = model.predict(coffee, top_k=1)[0][0]
    ok, tensor = checker.call("returns an input tensor", changed_preprocess, coffee)
    if ok:
        valid = isinstance(tensor, torch.Tensor) and tensor.dtype.is_floating_point and tensor.ndim in (3, 4) and tensor.shape[-3] == 3
        checker.require(
            "returns an input tensor", valid,
            f"changed_preprocess should return a float tensor (3, H, W) like model.preprocess; got "
            f"{type(tensor).__name__}{' ' + str(tuple(tensor.shape)) + ' ' + str(tensor.dtype) if isinstance(tensor, torch.Tensor) else ''}.",
        )
        if valid:
            batch = tensor if tensor.ndim == 4 else tensor.unsqueeze(0)
            with torch.inference_mode():
                predicted = model.class_names[int(model.network(batch.to(model.device)).argmax())]
            checker.require("changes the top class", predicted != original, f"with your preprocessing, the model still says {original!r}.")
            _, other = checker.call("uses its input", changed_preprocess, cat)
            uses_input = isinstance(other, torch.Tensor) and (other.shape != tensor.shape or not torch.equal(other, tensor))
            checker.require("uses its input", uses_input, "changed_preprocess gives the same tensor for another photo: it must transform its input.")
        else:
            checker.skip(["changes the top class", "uses its input"], "the preprocessing result has the wrong form")
            predicted = None
    else:
        checker.skip(["changes the top class", "uses its input"], "changed_preprocess failed")
        predicted = None
    try:
        class_index(new_top_class, model.class_names)
        exists = isinstance(new_top_class, str)
        problem = ""
    except (UnknownClassError, TypeError) as error:
        exists, problem = False, f"new_top_class is not an ImageNet class name: {error}"
    checker.require("names a real class", exists, problem)
    if exists and predicted is not None:
        checker.require(
            "names the class the model predicts", model.class_index(new_top_class) == model.class_index(predicted),
            f"{new_top_class!r} is a real class, but not what the model predicts with your preprocessing; check it in code.",
        )
    else:
        checker.skip(["names the class the model predicts"], "need a working preprocessing and a real class name first")
    return checker.result


# ----------------------------------------------------------------------------- exercise d


def check_d(model: LoadedModel, localisation_shares: Callable, first_localised_stage: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise d: at which stage does a class first become localised?

    Args:
        model: the model the notebook uses.
        localisation_shares: ``localisation_shares(model, image, class_name, object_mask)`` -> {stage: share of
            the normalised Grad-CAM's mass inside the mask} for layer1..layer4.
        first_localised_stage: ``first_localised_stage(shares, threshold)`` -> the first stage whose share
            reaches the threshold, or None.
    """
    checker = _Checker("d", CHECK_COUNTS["d"], catch_not_implemented=_grading)
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    mask = _half_masks(*image.shape[:2])["right"]
    target = "espresso"  # the notebook works on the cat
    ok, shares = checker.call("one share per stage", localisation_shares, model, image, target, mask.numpy())
    if ok:
        valid = isinstance(shares, Mapping) and sorted(shares) == list(STAGES)
        checker.require("one share per stage", valid, f"localisation_shares should return a dict with the keys {', '.join(STAGES)}.")
        if valid:
            values = np.array([float(shares[stage]) for stage in STAGES])
            in_range = bool(np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)))
            checker.require("shares are fractions", in_range, f"shares must be numbers in [0, 1]; got {np.round(values, 3).tolist()}.")
            reference = []
            for stage in STAGES:
                cam = grad_cam(model, image, target, layer=stage).maps[0]
                reference.append(float(cam[mask].sum() / cam.sum()))
            reference = np.array(reference)
            matches = bool(np.allclose(values, reference, atol=0.02))
            problem = "the shares do not match the normalised Grad-CAM mass inside the mask at each stage."
            if np.allclose(values, 1 - reference, atol=0.02):
                problem = "these look like the shares *outside* the mask."
            elif np.allclose(values, reference[::-1], atol=0.02):
                problem = "the shares belong to other stages: check which value goes with which key."
            checker.require("shares match Grad-CAM", matches, problem)
        else:
            checker.skip(["shares are fractions", "shares match Grad-CAM"], "localisation_shares' result has the wrong form")
    else:
        checker.skip(["shares are fractions", "shares match Grad-CAM"], "localisation_shares failed")
    cases = [
        ({"layer1": 0.3, "layer2": 0.7, "layer3": 0.5, "layer4": 0.9}, 0.6, "layer2"),
        ({"layer4": 0.9, "layer3": 0.65, "layer2": 0.2, "layer1": 0.1}, 0.6, "layer3"),
        ({"layer1": 0.5, "layer2": 0.5, "layer3": 0.55, "layer4": 0.58}, 0.6, None),
    ]
    answers = []
    for synthetic, threshold, _ in cases:
        ok, answer = checker.call("first stage on known shares", first_localised_stage, synthetic, threshold)
        if not ok:
            break
        answers.append(answer)
    if len(answers) == len(cases):
        wrong = [expected for (_, _, expected), answer in zip(cases, answers) if answer != expected]
        problem = "on shares with a known answer, first_localised_stage is wrong"
        if None in wrong:
            problem += ": when no stage reaches the threshold, return None"
        elif answers[1] == "layer4":
            problem += ": go through the stages from layer1 to layer4, whatever the dict's order"
        checker.require("first stage on known shares", not wrong, problem + ".")
    return checker.result


#: Exercise letter -> (check function, names the notebook must define, in the check's argument order).
EXERCISES: dict[str, tuple[Callable[..., CheckResult], tuple[str, ...]]] = {
    "a": (check_a, ("model", "cams_for_classes", "dominant_class")),
    "b": (check_b, ("model", "explain_file", "explain_folder")),
    "c": (check_c, ("model", "changed_preprocess", "new_top_class")),
    "d": (check_d, ("model", "localisation_shares", "first_localised_stage")),
}


def grade(exercise: str, namespace: Mapping[str, Any]) -> CheckResult:
    """Run an exercise's checks on the names a notebook defined; never raises for a student's mistake.

    Args:
        exercise: ``"a"`` .. ``"d"``.
        namespace: the notebook's globals.

    Returns:
        The result; missing names or unfinished functions score zero for the checks that need them.
    """
    check, names = EXERCISES[exercise]
    missing = [name for name in names if name not in namespace]
    total = CHECK_COUNTS[exercise]
    if missing:
        return CheckResult(exercise, total, problems=[f"the notebook does not define {', '.join(missing)}."])
    try:
        return check(*(namespace[name] for name in names), _grading=True)
    except Exception as error:  # noqa: BLE001 - the grader must go on with the next exercise
        return CheckResult(exercise, total, problems=[f"the checks could not run: {type(error).__name__}: {error}"])
