"""Exercise c: one changed step of the preprocessing pipeline that changes the top class of the coffee photo."""

from __future__ import annotations

import contextlib
import copy
import difflib
import sys
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from ..classes import UnknownClassError
from ..images import DATA_DIR, load_image
from ..models import LoadedModel, make_preprocess
from ._common import Checker, CheckResult, cached, type_name

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "TIE_TOLERANCE", "changed_steps", "check_c"]

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
#: Classes whose logit is this close to the top one are tied with it (float rounding, which can
#: differ between machines): either name counts, and the original class among them counts as not changed.
TIE_TOLERANCE = 1e-4


def _flat_steps(pipeline: Any) -> list[Any]:
    steps = []
    for step in getattr(pipeline, "transforms", []):
        steps.extend(_flat_steps(step) if hasattr(step, "transforms") else [step])
    return steps


class Recording(list):
    """The steps a pipeline applied (what :func:`changed_steps` counts), and ``top``: the top-level ones, to replay."""

    top: list[Any]
    #: The steps that gave back their input unchanged (a no-op where they stand, e.g. a Resize before ToImage).
    unchanged: list[Any]


class FunctionalCall:
    """A step that a ``v2.Lambda`` applied by calling one of torchvision's functional transforms (``resize``, ...)."""

    def __init__(self, name: str) -> None:
        self.name = name  # "v2.functional.resize"

    def __repr__(self) -> str:
        return f"{self.name}(...)"


def _functional_name(code: Any) -> str:
    """``"v2.functional.resize"`` for the code of one of torchvision's functional transforms, else ``""``."""
    path = code.co_filename.replace("\\", "/")
    if "/torchvision/transforms/v2/functional/" in path:
        return f"v2.functional.{code.co_name}"
    if path.endswith("/torchvision/transforms/functional.py"):
        return f"transforms.functional.{code.co_name}"
    return ""


@contextlib.contextmanager
def _functionals_called_by_lambda(steps: "Recording") -> Iterator[None]:
    """While a ``v2.Lambda`` runs, record each functional transform that code outside torchvision calls (a step each).

    A profiler, not a patch: torchvision finds its kernels by the functions themselves, so they must stay as they are.
    The functionals they call in turn are called from inside torchvision and are not steps.
    """
    previous = sys.getprofile()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = _functional_name(frame.f_code)
            caller = frame.f_back
            if name and caller is not None and "/torchvision/" not in caller.f_code.co_filename.replace("\\", "/"):
                steps.append(FunctionalCall(name))

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


@contextlib.contextmanager
def recorded_steps() -> Iterator[Recording]:
    """Record the torchvision transforms applied while the block runs (a pipeline counts with its steps).

    This is how the check sees a student's pipeline step by step, whether ``changed_preprocess`` is a
    ``v2.Compose`` or a function that builds and applies one. A ``v2.Lambda`` counts as the transforms it
    calls, one step each, an object (``v2.Resize(32)``) or a function (``v2.functional.resize``): a Lambda
    that only resizes is one step, like ``v2.Resize``; one that resizes and turns gray is two. A Lambda that
    calls no transform (the student's own operation) is one step itself.
    """
    steps = Recording()
    steps.top = []
    steps.unchanged = []
    stack: list[Any] = []
    had_own = "__call__" in vars(v2.Transform)
    original = v2.Transform.__call__

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not stack or isinstance(stack[-1], v2.Lambda):
            steps.extend(_flat_steps(self) if hasattr(self, "transforms") else [self])
            if not stack:
                # A copy as applied now: the function may change the transform later (model.preprocess in place).
                try:
                    steps.top.append(copy.deepcopy(self))
                except Exception:  # noqa: BLE001 - a transform that cannot be copied is replayed as it is
                    steps.top.append(self)
        stack.append(self)
        try:
            if isinstance(self, v2.Lambda):
                before = len(steps)
                with _functionals_called_by_lambda(steps):
                    result = original(self, *args, **kwargs)
                # A Lambda counts as the transforms it called, not once more itself: they take the place of its own
                # entry (there since it was called, or since the pipeline holding it was).
                own = [k for k in range(before) if steps[k] is self]
                if own and len(steps) > before:
                    inner = steps[before:]
                    del steps[before:]
                    steps[own[-1]:own[-1] + 1] = inner
                return result
            result = original(self, *args, **kwargs)
            if len(args) == 1 and not kwargs and _same_value(args[0], result):
                steps.unchanged.append(self)
            return result
        finally:
            stack.pop()

    v2.Transform.__call__ = recording  # type: ignore[method-assign]
    try:
        yield steps
    finally:
        if had_own:
            v2.Transform.__call__ = original  # type: ignore[method-assign]
        else:
            del v2.Transform.__call__


def _same_value(before: Any, after: Any) -> bool:
    """Whether a step gave back what it was given: the same object, or an equal array or tensor of the same kind."""
    if after is before:
        return True
    if type(before) is not type(after) or not isinstance(before, (np.ndarray, torch.Tensor)):
        return False
    try:
        return before.shape == after.shape and before.dtype == after.dtype and bool((before == after).all())
    except Exception:  # noqa: BLE001 - values that cannot be compared count as changed
        return False


def _step_name(step: Any) -> str:
    name = " ".join(repr(step).split())
    if isinstance(step, v2.ToDtype) and "dtype" not in name:
        # torchvision's repr leaves the dtype out: ToDtype(torch.float16) would read as the original ToDtype(float32).
        name = name.replace("ToDtype(", f"ToDtype(dtype={step.dtype}, ", 1)
    return name


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
    if tensor.dtype != torch.float32:
        return (f"changed_preprocess returns {tensor.dtype} values; the network's weights are float32, so it cannot "
                "take them: return float32, as model.preprocess does (ToDtype(torch.float32, scale=True), or .float()).")
    if tensor.ndim == 3 and shape[0] == 1:
        return "changed_preprocess returns one channel; the network needs 3 (for gray: v2.Grayscale(num_output_channels=3))."
    if tensor.ndim != 3 or shape[0] != 3:
        return f"changed_preprocess should return a float tensor (3, H, W); got shape {shape}."
    return ""


def _check_steps(checker: Checker, reference: list[Any], steps: list[Any], outside: str) -> bool:
    """One step: compare the steps changed_preprocess applied with model.preprocess's, step by step.

    Args:
        reference: model.preprocess's steps, taken before the student's function ran.
        steps: the steps it applied.
        outside: a change found outside the steps (replaying them does not give its tensor), or "".

    Returns:
        Whether the pipeline is one changed step.
    """
    changes = changed_steps(reference, steps)
    if not steps:
        problem = ("changed_preprocess applied no torchvision transform: build it from the steps of "
                   "model.preprocess.transforms with one step changed, and apply them (v2.Compose(steps)(image)).")
    elif outside:
        problem = outside
    elif not changes:
        problem = ("changed_preprocess applies the same steps as model.preprocess: change one step, or add one "
                   "(your own operation as v2.Lambda).")
    elif len(changes) > 1:
        problem = (f"changed_preprocess differs from model.preprocess in {len(changes)} steps ({'; '.join(changes)}); "
                   "the task asks for exactly one changed step (each transform called inside a v2.Lambda is a step).")
    else:
        problem = ""
    return checker.require("one step changed", not problem, problem)


def _replayed(top: list[Any], photo: np.ndarray, seed: int) -> torch.Tensor | None:
    """What the top-level steps give on a fresh copy of the photo, with the same random seed; None if they fail."""
    torch.manual_seed(seed)
    try:
        value: Any = photo.copy()
        for step in top:
            value = step(value)
        return value if isinstance(value, torch.Tensor) else None
    except Exception:  # noqa: BLE001 - steps that cannot be replayed count as a change outside them
        return None


def _channels_last(tensor: Any) -> bool:
    """Whether a tensor holds an image with its channels last, (H, W, 3) or (H, W, 1)."""
    return isinstance(tensor, torch.Tensor) and tensor.ndim == 3 and tensor.shape[-1] in (1, 3) and tensor.shape[0] not in (1, 3)


def _random_step(checker: Checker, changed_preprocess: Callable, photo: np.ndarray, tensor: Any) -> bool:
    """Whether changed_preprocess gives another tensor on a second call on the same photo, under another random seed.

    A random step (a Random... transform, ElasticTransform, noise from torch.randn) leaves the class the model
    predicts undetermined. Errors and other kinds of results are judged elsewhere: not random.
    """
    if not isinstance(tensor, torch.Tensor):
        return False
    torch.manual_seed(12345)
    try:
        with recorded_steps():
            again = checker.quiet_call(changed_preprocess, photo.copy())
    finally:
        torch.manual_seed(0)
    if not isinstance(again, torch.Tensor) or again.shape != tensor.shape:
        return isinstance(again, torch.Tensor)
    return not torch.allclose(again.detach().float(), tensor.detach().float(), atol=1e-5)


def _outside_steps(tensor: Any, replayed: torch.Tensor | None) -> str:
    """A change made outside the steps: the student's tensor is not what its own steps give on the photo.

    A batch of one or a NumPy array is compared as the image it holds: its form is another check's business.
    """
    if isinstance(tensor, np.ndarray) and np.issubdtype(tensor.dtype, np.number):
        tensor = torch.from_numpy(tensor)
    if not isinstance(tensor, torch.Tensor):
        return ""
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if _channels_last(tensor):
        return ""  # the steps' tensor with its dimensions reordered: the shape check names it
    if replayed is not None and replayed.shape == tensor.shape and torch.allclose(replayed.float(), tensor.detach().float(), atol=1e-5):
        return ""
    return ("changed_preprocess returns something its steps do not give on the photo it was given: a change made "
            "outside the steps (to the photo, or a copy of it, before them; to the tensor after them) does not count. "
            "Make the change a step of the pipeline (your own operation as v2.Lambda).")


def _probes(photo: np.ndarray, output_shape: tuple[int, ...], grid: int = 4) -> list[tuple[str, np.ndarray]]:
    """Copies of the photo, each with one region's colours inverted: a strip along each edge, and each block of a grid.

    A strip is wider than one output pixel's share of the photo, so any resampling reads some of it.
    """
    height, width = photo.shape[:2]
    out_height, out_width = (output_shape[-2], output_shape[-1]) if len(output_shape) >= 2 else (height, width)
    # One output pixel's share of the photo (rounded up): every resampling reads some of it, a crop by a few pixels none.
    rows = min(height // 4, max(2, int(np.ceil(height / max(out_height, 1))), height // 100))
    columns = min(width // 4, max(2, int(np.ceil(width / max(out_width, 1))), width // 100))
    regions = {
        "top edge": (slice(0, rows), slice(None)),
        "bottom edge": (slice(height - rows, height), slice(None)),
        "left edge": (slice(None), slice(0, columns)),
        "right edge": (slice(None), slice(width - columns, width)),
    }
    for i in range(grid):
        for j in range(grid):
            regions[f"block ({i + 1}, {j + 1}) of a {grid}x{grid} grid"] = (
                slice(i * height // grid, (i + 1) * height // grid), slice(j * width // grid, (j + 1) * width // grid))
    probes = []
    for name, (rows_slice, columns_slice) in regions.items():
        probe = photo.copy()
        probe[rows_slice, columns_slice] = 255 - probe[rows_slice, columns_slice]
        probes.append((name, probe))
    return probes


def _padding_steps(steps: Sequence[Any] | None) -> list[str]:
    """The names of the steps that pad the image: v2.Pad, or a functional pad called inside a v2.Lambda."""
    padding = []
    for step in steps or []:
        if isinstance(step, v2.Pad) or (isinstance(step, FunctionalCall) and step.name.rsplit(".", 1)[-1].startswith("pad")):
            padding.append(_step_name(step))
    return padding


def _check_whole_photo(checker: Checker, changed_preprocess: Callable, photo: np.ndarray, tensor: Any, seed: int,
                       steps: Sequence[Any] | None = None) -> None:
    """The whole photo as it is: not cropped, padded, squashed or partly hidden; every region of it changes the input.

    ``steps``: the steps the first call applied (a padding step among them is named).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if not isinstance(tensor, torch.Tensor) or tensor.ndim < 2:
        checker.skip(["the whole photo, unaltered"], "need a tensor from changed_preprocess first")
        return
    if _channels_last(tensor):
        checker.skip(["the whole photo, unaltered"], "need an image tensor (3, H, W) first")
        return
    height, width = tensor.shape[-2:]
    expected_width = height * photo.shape[1] / photo.shape[0]
    problem = ""
    padding = _padding_steps(steps)
    if padding:
        problem = (f"your pipeline pads the photo ({padding[0]}): the input is {height}x{width}, the photo "
                   f"{photo.shape[0]}x{photo.shape[1]}. The network's input must keep the photo's aspect ratio and show "
                   "only the photo, so no padding (nor cropping or squashing): a border is not part of the picture. "
                   "Change another step.")
    elif abs(width - expected_width) > 1.5:
        problem = (f"the model no longer sees the whole photo as it is: the input is {height}x{width}, but the photo "
                   f"is {photo.shape[0]}x{photo.shape[1]} (another aspect ratio), so it was cropped, padded or squashed. "
                   "The network's input must keep the photo's aspect ratio: change a step of the preprocessing without "
                   "cropping, padding or squashing the photo.")
    unseen = []
    probes = _probes(photo, tuple(tensor.shape))
    own_steps = True  # whether the steps it applied, replayed on the probe, give what it returned: the steps ignore the photo
    for name, probe in probes:
        torch.manual_seed(seed)
        with recorded_steps() as steps:
            ok, answer = checker.call(changed_preprocess, probe)
        if not ok:
            return  # the error is reported; this check is not judged on a pipeline that fails on a photo
        if isinstance(answer, torch.Tensor) and answer.shape == tensor.shape and torch.equal(answer.detach(), tensor.detach()):
            if not unseen:
                replayed = _replayed(steps.top, probe, seed)
                own_steps = replayed is not None and replayed.shape == answer.shape and torch.equal(replayed, answer.detach())
            unseen.append(name)
    if problem:
        pass
    elif len(unseen) == len(probes) and own_steps:
        low, high = float(tensor.min()), float(tensor.max())
        constant = f" (every value is {low:.3g})" if low == high else ""
        problem = (f"the network's input no longer depends on the photo: your steps give the same tensor{constant} "
                   "whatever photo they are given, so a step replaces the image instead of changing it. The model must "
                   "still see the whole photo: change a step in a way that keeps the picture.")
    elif len(unseen) == len(probes):
        problem = ("changed_preprocess returns the same tensor whatever photo it is given: apply the steps to its "
                   "image argument, not to the notebook's photo.")
    elif unseen:
        edges = [name for name in unseen if "edge" in name]
        if edges:
            problem = (f"the model no longer sees the whole photo: inverting the colours along the photo's {edges[0]} does "
                       "not change the input at all, so that part is cut off (a crop, even one that keeps the aspect "
                       "ratio). Change a step without cropping.")
        else:
            problem = (f"the model no longer sees the whole photo: inverting the colours in {unseen[0]} does not change "
                       "the input at all, so that part is hidden (blacked out or replaced). Change a step that treats "
                       "the whole photo alike.")
    checker.require("the whole photo, unaltered", not problem, problem)


def _same_but_case(name: str, names: Sequence[str]) -> list[str]:
    """The names that equal ``name`` when case and surrounding spaces are ignored, but not exactly."""
    wanted = name.strip().lower()
    return [candidate for candidate in names if candidate.lower() == wanted and candidate != name]


def _logits(model: LoadedModel, tensor: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.network(tensor.unsqueeze(0).to(model.device))[0].float().cpu()


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
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    # A changed_preprocess that edits model.preprocess in place has done so before the check runs (the cell
    # before calls it). A pipeline one step away from the model's own (make_preprocess with its mean and
    # std, as load_model builds it) is taken as such an edit: put back, and said.
    canonical = make_preprocess(model.mean, model.std)
    edited = changed_steps(_flat_steps(canonical), _flat_steps(model.preprocess))
    if len(edited) == 1 and isinstance(getattr(model.preprocess, "transforms", None), list):
        model.preprocess.transforms[:] = list(canonical.transforms)
    checker = Checker("c", CHECK_COUNT, catch_not_implemented=_grading, models=[model])
    if len(edited) == 1:
        checker.note_side_effect(
            "preprocess", f"model.preprocess is not the model's own pipeline any more ({edited[0]}): a cell changed it in place "
            "(changed_preprocess?), so every later prediction changes. Leave model.preprocess as it is and build a new "
            "pipeline from a copy of its steps, list(model.preprocess.transforms). The check restored model.preprocess.")
    coffee = load_image(DATA_DIR / "coffee.jpg")
    # The baseline and the reference steps, taken before the student's code runs: nothing it does can change them.
    reference = _flat_steps(model.preprocess)
    original = cached(model, ("exercise c", _step_name(model.preprocess)), lambda: int(_logits(model, model.preprocess(coffee)).argmax()))
    original_name = model.class_names[original]
    given = coffee.copy()
    seed = 0
    torch.manual_seed(seed)
    with recorded_steps() as steps:
        ok, tensor = checker.call(changed_preprocess, given)
    predicted: list[str] = []
    one_change = False
    random_step = False
    if not ok:
        checker.skip(["returns one image tensor (3, H, W)", "one step changed", "the whole photo, unaltered", "changes the top class"],
                     "changed_preprocess must run first")
    else:
        problem = _describe_tensor(tensor, coffee)
        well_formed = checker.require("returns one image tensor (3, H, W)", not problem, problem)
        if not isinstance(tensor, (torch.Tensor, np.ndarray)):
            checker.skip(["one step changed"], "the steps can be compared once changed_preprocess returns a tensor")
        else:
            # A photo edited in place is reported as such (a side effect), not once more as a change outside the steps.
            outside = _outside_steps(tensor, _replayed(steps.top, coffee, seed)) if np.array_equal(given, coffee) else ""
            if not steps:
                # No step applied on this call: a result computed once and kept? Then it ignores its photo, which
                # the whole-photo check says; "applied no transform" would be a wrong guess.
                torch.manual_seed(seed)
                with recorded_steps() as other_steps:
                    other = checker.quiet_call(changed_preprocess, 255 - coffee)
                if not other_steps and isinstance(other, torch.Tensor) and isinstance(tensor, torch.Tensor) \
                        and other.shape == tensor.shape and torch.equal(other.detach(), tensor.detach()):
                    checker.skip(["one step changed"], "the steps can be compared once changed_preprocess applies them to its image argument")
                    steps = None
            if steps is not None:
                one_change = _check_steps(checker, reference, steps, outside)
        _check_whole_photo(checker, changed_preprocess, coffee, tensor, seed, steps)
        random_step = well_formed and _random_step(checker, changed_preprocess, coffee, tensor)
        if not well_formed:
            checker.skip(["changes the top class"], "need an image tensor (3, H, W) first")
        elif random_step:
            checker.require(
                "changes the top class", False,
                "changed_preprocess gives a different tensor each time it is called on the same photo: a random step "
                "(a Random... transform, ElasticTransform, noise from torch.randn...), so the class the model predicts "
                "changes from call to call and is not determined by your pipeline. Make the change deterministic "
                "(fixed parameters, p=1.0).")
        else:
            logits = _logits(model, tensor)
            probabilities = logits.softmax(dim=0)
            top = int(logits.argmax())
            # Classes whose logits equal the top one up to float rounding are tied: either may come out on another machine.
            predicted = [model.class_names[i] for i in torch.nonzero(logits >= logits[top] - TIE_TOLERANCE).flatten().tolist()]
            reference_names = {_step_name(step) for step in reference}
            idle = [step for step in (steps.unchanged if steps else []) if _step_name(step) not in reference_names]
            if idle:
                ending = (f": your step {_step_name(idle[0])} gives back its input unchanged where it stands (before ToImage, "
                          "v2's transforms pass a NumPy array through untouched), so it changes nothing. Put it where it "
                          "acts on the image tensor (after ToImage) before judging the change.")
            else:
                ending = ": this change barely matters to this model; try another candidate." if one_change else "."
            checker.require(
                "changes the top class", original_name not in predicted,
                f"with your pipeline the model's top class is still {original_name!r} ({float(probabilities[original]):.1%})" + ending,
            )
    # The class name.
    if new_top_class is None:
        problem = "new_top_class is still None: set it to the name (a str) of the class the model predicts with your pipeline."
    elif isinstance(new_top_class, bool) or not isinstance(new_top_class, (str, int, np.integer)):
        problem = f"new_top_class should be a class name (a str); it is {type_name(new_top_class)}."
    elif not isinstance(new_top_class, str):
        problem = (f"new_top_class is the number {int(new_top_class)}; give the class's name (a str), "
                   "as model.class_names lists it.")
    elif new_top_class in model.class_names or _same_but_case(new_top_class, model.class_names):
        problem = ""  # a real class; a name written in another case is judged with the prediction, below
    else:
        try:
            index = model.class_index(new_top_class)  # a synonym that only one class has ('tabby cat')
            problem = (f"new_top_class is {new_top_class!r}, which is not one of the model's class names but another "
                       f"name for {model.class_names[index]!r}: give the name exactly as model.class_names writes it.")
        except UnknownClassError as error:
            problem = f"new_top_class is not an ImageNet class name: {error}"
    real = checker.require("names a real class", not problem, problem)
    if real and random_step:
        checker.skip(["names the class the model predicts"], "need a pipeline that gives the same tensor at each call first")
    elif real and predicted:
        if new_top_class in predicted:
            problem = ""
        elif _same_but_case(new_top_class, predicted):
            # Exactly as the model writes it: ignoring case would confuse 'Cardigan' (a dog) with 'cardigan' (a sweater).
            problem = (f"new_top_class is {new_top_class!r}, but the model writes its top class "
                       f"{_same_but_case(new_top_class, predicted)[0]!r}: give the name exactly as model.class_names "
                       "writes it (case and spaces matter: 'Cardigan' is a dog, 'cardigan' a sweater), e.g. model.class_names[index].")
        else:
            problem = (f"{new_top_class!r} is a real class, but not what the model predicts with your pipeline: its top "
                       f"class is {predicted[0]!r}. Print its top classes and copy the name (or read it in code, "
                       "model.class_names[index]).")
        checker.require("names the class the model predicts", not problem, problem)
    else:
        checker.skip(["names the class the model predicts"], "need a working pipeline and a real class name first")
    return checker.finish()
