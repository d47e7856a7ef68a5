"""Exercise c: one changed step of the preprocessing pipeline that changes the top class of the coffee photo."""

from __future__ import annotations

import contextlib
import difflib
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torchvision.transforms import v2

from ..classes import UnknownClassError
from ..images import DATA_DIR, load_image
from ..models import LoadedModel
from ._common import Checker, CheckResult, cached

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "TIE_MARGIN", "changed_steps", "check_c"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    'returns one image tensor (3, H, W)',
    'one step changed',
    'the whole photo, unaltered',
    'changes the top class',
    'names a real class',
    'names the class the model predicts',
)
CHECK_COUNT = len(CHECK_NAMES)
#: Classes whose probability is this close to the top one count as predicted too: a tie
#: can fall either way on another machine.
TIE_MARGIN = 0.01


def _flat_steps(pipeline: Any) -> list[Any]:
    steps = []
    for step in getattr(pipeline, "transforms", []):
        steps.extend(_flat_steps(step) if hasattr(step, "transforms") else [step])
    return steps


@contextlib.contextmanager
def recorded_steps() -> Iterator[list[Any]]:
    """Record the torchvision transforms applied at the top level while the block runs (a pipeline counts with its steps).

    This is how the check sees a student's pipeline step by step, whether ``changed_preprocess`` is a
    ``v2.Compose`` or a function that builds and applies one.
    """
    steps: list[Any] = []
    depth = 0
    had_own = "__call__" in vars(v2.Transform)
    original = v2.Transform.__call__

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal depth
        if depth == 0:
            steps.extend(_flat_steps(self) if hasattr(self, "transforms") else [self])
        depth += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            depth -= 1

    v2.Transform.__call__ = recording  # type: ignore[method-assign]
    try:
        yield steps
    finally:
        if had_own:
            v2.Transform.__call__ = original  # type: ignore[method-assign]
        else:
            del v2.Transform.__call__


def _step_name(step: Any) -> str:
    return " ".join(repr(step).split())


def changed_steps(reference: list[Any], steps: list[Any]) -> list[str]:
    """The differences between two lists of steps, one description per changed step.

    Replacing a step, leaving one out and adding one each count as one change.
    """
    before, after = [_step_name(s) for s in reference], [_step_name(s) for s in steps]
    changes = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        old, new = before[i1:i2], after[j1:j2]
        for k in range(max(len(old), len(new))):
            if k < len(old) and k < len(new):
                changes.append(f"{old[k]} -> {new[k]}")
            elif k < len(old):
                changes.append(f"left out {old[k]}")
            else:
                changes.append(f"added {new[k]}")
    return changes


def _describe_tensor(tensor: Any, image: np.ndarray) -> str:
    if not isinstance(tensor, torch.Tensor):
        kind = "a NumPy array" if isinstance(tensor, np.ndarray) else f"a {type(tensor).__name__}"
        return f"changed_preprocess should return a float tensor (3, H, W) like model.preprocess; it returns {kind}."
    shape = tuple(tensor.shape)
    if tensor.ndim == 4 and shape[0] == 1:
        return (f"changed_preprocess returns a batch, shape {shape}; return one image (3, H, W) like model.preprocess: "
                "the notebook adds the batch dimension itself (unsqueeze(0)).")
    if not tensor.dtype.is_floating_point:
        return f"changed_preprocess returns {tensor.dtype} values; the network needs float: keep the ToDtype step."
    if tensor.ndim == 3 and shape[0] == 1:
        return "changed_preprocess returns one channel; the network needs 3 (for gray: v2.Grayscale(num_output_channels=3))."
    if tensor.ndim != 3 or shape[0] != 3:
        return f"changed_preprocess should return a float tensor (3, H, W); got shape {shape}."
    return ""


def _check_steps(checker: Checker, model: LoadedModel, steps: list[Any]) -> None:
    """One step: compare the steps changed_preprocess applied with model.preprocess's, step by step."""
    changes = changed_steps(_flat_steps(model.preprocess), steps)
    if not steps:
        problem = ("changed_preprocess applied no torchvision transform: build it from the steps of "
                   "model.preprocess.transforms with one step changed, and apply them (v2.Compose(steps)(image)).")
    elif not changes:
        problem = ("changed_preprocess applies the same steps as model.preprocess; a change made outside the steps "
                   "(to the photo, or to the tensor afterwards) does not count: change one step, or add one "
                   "(your own operation as v2.Lambda).")
    elif len(changes) > 1:
        problem = (f"changed_preprocess differs from model.preprocess in {len(changes)} steps ({'; '.join(changes)}); "
                   "the task asks for exactly one changed step.")
    else:
        problem = ""
    checker.require("one step changed", not problem, problem)


def _check_whole_photo(checker: Checker, photo: np.ndarray, given: np.ndarray, tensor: Any) -> None:
    """The photo stays as it is: not edited in place, not cropped, not squashed."""
    if not isinstance(tensor, torch.Tensor) or tensor.ndim < 2:
        checker.skip(["the whole photo, unaltered"], "need a tensor from changed_preprocess first")
        return
    height, width = tensor.shape[-2:]
    expected_width = height * photo.shape[1] / photo.shape[0]
    if not np.array_equal(given, photo):
        problem = "changed_preprocess changed the photo it was given: change a step of the pipeline, leave the photo as it is."
    elif abs(width - expected_width) > 1.5:
        problem = (f"the model no longer sees the whole photo as it is: the input is {height}x{width}, but the photo "
                   f"is {photo.shape[0]}x{photo.shape[1]}. Change a step of the preprocessing, without cropping "
                   "or squashing the photo.")
    else:
        problem = ""
    checker.require("the whole photo, unaltered", not problem, problem)


def check_c(model: LoadedModel, changed_preprocess: Callable, new_top_class: Any, *, _grading: bool = False) -> CheckResult:
    """Exercise c: a pipeline with one changed step that changes the top class of the coffee photo.

    Args:
        model: the model the notebook uses.
        changed_preprocess: ``changed_preprocess(image)`` -> float tensor (3, H, W): the steps of
            ``model.preprocess`` with exactly one step (a torchvision transform) replaced, left out or added.
        new_top_class: the class the model then predicts, as an ImageNet class name.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    checker = Checker("c", CHECK_COUNT, catch_not_implemented=_grading)
    coffee = load_image(DATA_DIR / "coffee.jpg")
    original = cached(model, "exercise c", lambda: model.predict(coffee, top_k=1)[0][0])
    given = coffee.copy()
    with recorded_steps() as steps:
        ok, tensor = checker.call(changed_preprocess, given)
    probabilities = None
    predicted: list[str] = []
    if not ok:
        checker.skip(["returns one image tensor (3, H, W)", "one step changed", "the whole photo, unaltered", "changes the top class"],
                     "changed_preprocess must run first")
    else:
        problem = _describe_tensor(tensor, coffee)
        if checker.require("returns one image tensor (3, H, W)", not problem, problem):
            with torch.inference_mode():
                probabilities = model.network(tensor.unsqueeze(0).to(model.device)).softmax(dim=1)[0].cpu()
        _check_steps(checker, model, steps)
        _check_whole_photo(checker, coffee, given, tensor)
        if probabilities is None:
            checker.skip(["changes the top class"], "need an image tensor (3, H, W) first")
        else:
            top = float(probabilities.max())
            predicted = [model.class_names[i] for i in torch.nonzero(probabilities >= top - TIE_MARGIN).flatten().tolist()]
            checker.require(
                "changes the top class", original not in predicted,
                f"with your pipeline the model still says {original!r} ({top:.0%}): this change barely matters to this "
                "model; try another candidate.",
            )
    # The class name.
    if new_top_class is None:
        problem = "new_top_class is still None: set it to the name (a str) of the class the model predicts with your pipeline."
    elif isinstance(new_top_class, bool) or not isinstance(new_top_class, (str, int, np.integer)):
        problem = f"new_top_class should be a class name (a str); it is a {type(new_top_class).__name__}."
    elif not isinstance(new_top_class, str):
        problem = (f"new_top_class is the number {int(new_top_class)}; give the class's name (a str), "
                   "as model.class_names lists it.")
    else:
        try:
            model.class_index(new_top_class)
            problem = ""
        except UnknownClassError as error:
            problem = f"new_top_class is not an ImageNet class name: {error}"
    if checker.require("names a real class", not problem, problem) and predicted:
        index = model.class_index(new_top_class)
        checker.require(
            "names the class the model predicts", index in [model.class_index(name) for name in predicted],
            f"{new_top_class!r} is a real class, but not what the model predicts with your pipeline: print its top "
            "classes and copy the name.",
        )
    else:
        checker.skip(["names the class the model predicts"], "need a working pipeline and a real class name first")
    return checker.result
