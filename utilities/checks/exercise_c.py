"""Exercise c: one changed step of the preprocessing pipeline that changes the top class of the coffee photo."""

from __future__ import annotations

import contextlib
import copy
import difflib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2

from ..classes import UnknownClassError
from ..images import DATA_DIR, load_image
from ..models import LoadedModel, make_preprocess
from ._common import _HOOK_EXTRAS, _HOOK_KINDS, Checker, CheckResult, cached, type_name

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
    #: Each v2.Lambda applied: (the Lambda, its input, its output, the functional transforms it called).
    lambdas: list[tuple[Any, Any, Any, list[Any]]]
    #: The Lambdas whose function edits its input in place (set by :func:`with_second_changes`).
    in_place: list[Any] = []
    #: What each transform object called directly inside a v2.Lambda was given: (the transform, its input).
    given_to: list[tuple[Any, Any]] = []


class FunctionalCall:
    """A step applied by calling one of torchvision's functional transforms (``resize``, ...), in a ``v2.Lambda`` or not.

    With the call's frame, it keeps the function and its other arguments, to apply it again to another image.
    """

    def __init__(self, name: str, frame: Any = None) -> None:
        self.name = name  # "v2.functional.resize"
        self.function: Callable | None = None
        self.arguments: dict[str, Any] = {}
        self.given: Any = None  # the image it was called on
        if frame is not None:
            module = v2.functional if name.startswith("v2.") else None
            function = getattr(module, frame.f_code.co_name, None) if module is not None else None
            code = frame.f_code
            parameters = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
            if getattr(function, "__code__", None) is code and parameters:
                self.function = function
                self.arguments = {p: frame.f_locals[p] for p in parameters[1:] if p in frame.f_locals}
                self.given = frame.f_locals.get(parameters[0])

    def __call__(self, value: Any) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        if self.function is None:
            raise TypeError(f"{self.name} cannot be applied again")
        return self.function(value, **self.arguments)

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
                steps.append(FunctionalCall(name, frame))

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
    steps.lambdas = []
    steps.given_to = []
    stack: list[Any] = []
    had_own = "__call__" in vars(v2.Transform)
    original = v2.Transform.__call__

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        if not stack or isinstance(stack[-1], v2.Lambda):
            if stack and args:
                steps.given_to.append((self, args[0]))
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
                if len(args) == 1 and not kwargs:
                    steps.lambdas.append((self, args[0], result, list(steps[before:])))
                if own and len(steps) > before:
                    inner = steps[before:]
                    del steps[before:]
                    steps[own[-1]:own[-1] + 1] = inner
                return result
            if args and not hasattr(self, "transforms") and _channels_last_image(args[0]):
                # A photo's layout (H, W, 3) read as (C, H, W): a resize would make hundreds of channels of a huge
                # size (gigabytes). Stopped before it runs: a check must not hang or fill the memory.
                raise ValueError(f"a {type(self).__name__} step got shape {tuple(args[0].shape)}, channels last; "
                                 "steps take (3, H, W): use v2.ToImage()")
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


def _channels_last_image(value: Any) -> bool:
    """Whether a step's input is an image tensor with its channels last, (H, W, 1 or 3), H more than 4."""
    return (isinstance(value, torch.Tensor) and value.ndim == 3 and value.shape[-1] in (1, 3)
            and value.shape[0] > 4 and value.shape[1] > 4)


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


def _generated_inputs() -> list[Any]:
    """Images a step is tried on to tell what it does: a photo array, uint8 and float image tensors, small and large."""
    generator = torch.Generator().manual_seed(11)
    small = torch.randint(0, 256, (3, 37, 53), generator=generator, dtype=torch.uint8)
    large = torch.randint(0, 256, (3, 300, 410), generator=generator, dtype=torch.uint8)
    return [large.permute(1, 2, 0).numpy().copy(), small, large, small.float() / 255, large.float() / 255]


def _outputs(step: Any, inputs: Sequence[Any]) -> list[Any]:
    """What a step gives on each generated input (None where it fails), with a fixed random seed."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    outputs = []
    for value in inputs:
        torch.manual_seed(0)
        try:
            with torch.no_grad():
                out = step(value.copy() if isinstance(value, np.ndarray) else value.clone())
        except Exception:  # noqa: BLE001 - a step that fails on an input is told apart by that
            out = None
        outputs.append(out)
    return outputs


def _same_outputs(first: Sequence[Any], second: Sequence[Any], lenient: bool = False) -> bool:
    """Whether two steps gave the same on every generated input (both failing counts as the same), one at least given.

    ``lenient``: an input on which one of them fails is left out (a functional transform refuses a NumPy array that
    a transform object passes through untouched).
    """
    given = False
    for a, b in zip(first, second):
        if a is None or b is None:
            if (a is None) != (b is None) and not lenient:
                return False
            continue
        if type(a) is not type(b) or not isinstance(a, (torch.Tensor, np.ndarray)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype or not bool((a == b).all()):
            return False
        given = True
    return given


def _behaviour_names(reference: list[Any], steps: list[Any]) -> list[str]:
    """The names of the steps, a step that does what a step of the reference does named as that one.

    Steps are judged by what they do to generated images, not by how they are written: ``v2.Resize(224)``
    built afresh is the model's ``Resize(224)`` however its repr spells the interpolation.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    names = [_step_name(step) for step in steps]
    known = {_step_name(step) for step in reference}
    candidates = [step for step in reference if isinstance(step, v2.Transform) and not isinstance(step, v2.Lambda)]
    inputs: list[Any] | None = None
    cache: dict[int, list[Any]] = {}
    state = torch.random.get_rng_state()
    try:
        for k, step in enumerate(steps):
            function = isinstance(step, FunctionalCall) and step.function is not None
            if names[k] in known or not (function or isinstance(step, v2.Transform)) or isinstance(step, v2.Lambda):
                continue
            inputs = inputs if inputs is not None else _generated_inputs()
            mine = _outputs(step, inputs)
            for candidate in candidates:
                if id(candidate) not in cache:
                    cache[id(candidate)] = _outputs(candidate, inputs)
                if _same_outputs(mine, cache[id(candidate)], lenient=function):
                    names[k] = _step_name(candidate)
                    break
    finally:
        torch.random.set_rng_state(state)
    return names


def changed_steps(reference: list[Any], steps: list[Any]) -> list[str]:
    """The differences between two lists of steps, one description per changed step.

    Replacing a step, leaving one out and adding one each count as one change. A step that does on generated
    images what a step of the reference does counts as that step.
    """
    before, after = [_step_name(s) for s in reference], _behaviour_names(reference, steps)
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


def _missing_step(error: BaseException, reference: Sequence[Any], steps: Sequence[Any]) -> str | None:
    """The message for an error that comes of a step of model.preprocess missing (ToDtype: a float step gets uint8)."""
    wanted = [step for step in reference if isinstance(step, v2.ToDtype)]
    if not wanted or "float" not in str(error) or any(isinstance(step, v2.ToDtype) for step in steps) or not steps:
        return None
    return (f"changed_preprocess raised {type(error).__name__}: {error} Your pipeline has no {_step_name(wanted[0])} step "
            f"(the steps it applied: {', '.join(type(step).__name__ for step in steps)}), so {type(steps[-1]).__name__} gets "
            "the image's uint8 values. The step you replaced or left out is the one that turns them into floats: "
            "keep it, and change another step.")


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
    nan = int(torch.isnan(tensor.detach()).sum())
    if nan:
        return (f"changed_preprocess gives NaN (not a number) on the coffee photo: {nan} of the input's {tensor.numel()} "
                "values are NaN, a division of 0 by 0 (or a NaN in the values divided). The network's input must be a "
                "number everywhere: change the step that divides.")
    return ""


class SecondChange:
    """A further change of a ``v2.Lambda`` that makes more changes than it is counted for: a step of its own."""

    def __init__(self, lambda_step: Any, changes: Sequence[str] = ()) -> None:
        self.lambda_step = lambda_step
        self.changes = list(changes)  # what the Lambda does, in words: "resizes the image", "changes its colours", ...

    def __repr__(self) -> str:
        return f"a further change inside {_step_name(self.lambda_step)}"


#: The words for each kind of change a Lambda's own function can make.
_GEOMETRIC, _COLOUR, _SCALE = "moves or resizes the pixels", "changes its colours", "changes the scale of its values"
_MOVES = "moves the pixels besides resizing them"
_CROPS = "crops the image before resizing it"


def _cropped_before_resizing(given: Any, inner: Sequence[Any], given_to: Sequence[tuple[Any, Any]]) -> str:
    """Whether a Lambda's resize is given a part of the Lambda's own image (a crop, even by one pixel, before it).

    Found on the image the Lambda got (the photo itself, at its own size: a crop by a share of the size, 1 %, is
    no crop at all on a small image): the resize's input is a block of that image, cut at an edge or in the middle.
    Returns the crop in words ("its resize is given rows 4 to 395 and columns 6 to 593 of the 400x600 image"), or "".
    """
    if not isinstance(given, torch.Tensor) or given.ndim < 3:
        return ""
    height, width = given.shape[-2:]
    for step in inner:
        name = step.name.rsplit(".", 1)[-1] if isinstance(step, FunctionalCall) else ""
        if not (isinstance(step, v2.Resize) or name.startswith("resize")):
            continue
        value = step.given if isinstance(step, FunctionalCall) else next((v for s, v in given_to if s is step), None)
        if not isinstance(value, torch.Tensor) or value.ndim < 3 or value.shape[-3] != given.shape[-3]:
            continue
        rows, columns = value.shape[-2:]
        if (rows, columns) == (height, width) or rows > height or columns > width or min(rows, columns) < 1:
            continue
        image, part = given.detach().double(), value.detach().double()
        for top in dict.fromkeys((0, (height - rows) // 2, (height - rows + 1) // 2, height - rows)):
            for left in dict.fromkeys((0, (width - columns) // 2, (width - columns + 1) // 2, width - columns)):
                if torch.equal(image[..., top:top + rows, left:left + columns], part):
                    return (f"its resize is given rows {top} to {top + rows - 1} and columns {left} to "
                            f"{left + columns - 1} of the {height}x{width} image it gets")
    return ""


def _against_shuffle(run: Callable, image: torch.Tensor, generator: torch.Generator) -> str | None:
    """What the function does to a random shuffle of the pixels: "kept" (it commutes with it: a pointwise function),
    "moved" (it does not: a flip, crop or shift), "other size" (its output is not the image's size), None (it fails)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    height, width = image.shape[-2:]
    order = torch.randperm(height * width, generator=generator)
    shuffle = lambda x: x.flatten(-2)[..., order].reshape(x.shape)  # noqa: E731
    plain, shuffled = run(image), run(shuffle(image))
    if not (isinstance(plain, torch.Tensor) and isinstance(shuffled, torch.Tensor)):
        return None
    if plain.shape != shuffled.shape or plain.shape[-2:] != image.shape[-2:]:
        return "other size"
    moved = (shuffle(plain).double() - shuffled.double()).abs().max()
    tolerance = 1.0 if not plain.dtype.is_floating_point else 1e-4 * max(1.0, float(plain.double().abs().max()))
    return "kept" if float(moved) <= tolerance else "moved"


def _moves_besides_resizing(run: Callable, given: torch.Tensor, result: torch.Tensor, generator: torch.Generator,
                            integer: bool) -> bool:
    """Whether a function that resizes also moves the pixels (a flip, a crop, a shift), found on a generated image.

    Given an image of its own output's size, a resize to a size gives that size back and is the identity there (it
    commutes with a random shuffle of the pixels); a resize by a factor gives the size scaled by the same factor
    (within rounding). A crop or a pad gives another size; a flip or a shift does not commute with the shuffle.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    (height, width), (out_height, out_width) = given.shape[-2:], result.shape[-2:]
    if min(out_height, out_width) < 2:
        return False
    noise = torch.randint(1, 255, (given.shape[0], out_height, out_width), generator=generator).to(torch.float32)
    image = noise.to(given.dtype) if integer else (noise / 255).to(given.dtype)
    again = run(image)
    if not isinstance(again, torch.Tensor) or again.ndim != 3:
        return False  # a function that fails on another image is judged elsewhere
    size = tuple(again.shape[-2:])
    if size == (out_height, out_width):
        return _against_shuffle(run, image, generator) == "moved"
    by_factor = (abs(size[0] - out_height * out_height / height) <= 1 and abs(size[1] - out_width * out_width / width) <= 1)
    return not by_factor


def _lambda_changes(lambda_step: Any, given: Any, result: Any, seed: int = 5) -> list[str]:
    """The kinds of change a Lambda's own function makes, found differentially on images generated from a seed.

    Geometric: it gives another size, or it does not commute with a random shuffle of the pixels (a pointwise
    function does, a flip, crop or resize does not). Colours: on an image of one colour its output's channels are
    not in the input's proportions (another order, gray, a posterize). Scale: on that image its values are not
    the input's in the output's convention (uint8 0..255, float 0..1), e.g. x.float() keeps 0..255 in float.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if not (isinstance(given, torch.Tensor) and isinstance(result, torch.Tensor) and given.ndim == 3 and result.ndim == 3
            and given.shape[0] == 3 and min(given.shape[-2:]) > 1):
        return []
    generator = torch.Generator().manual_seed(seed)
    integer = not given.dtype.is_floating_point
    changes = []

    def run(image: torch.Tensor) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        # On a copy: a function that edits its input in place (x.div_) would change the check's own images.
        try:
            with torch.no_grad():
                return lambda_step.lambd(image.clone())
        except Exception:  # noqa: BLE001 - a function that fails on another image is judged elsewhere
            return None

    if tuple(given.shape[-2:]) != tuple(result.shape[-2:]):
        changes.append(_GEOMETRIC)
        if _moves_besides_resizing(run, given, result, generator, integer):
            changes.append(_MOVES)
    else:
        noise = torch.randint(1, 255, tuple(given.shape), generator=generator).to(torch.float32)
        image = noise.to(given.dtype) if integer else (noise / 255).to(given.dtype)
        if _against_shuffle(run, image, generator) in ("moved", "other size"):
            changes.append(_GEOMETRIC)
    def on_colour(values: list[float]) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """The function on an image of one colour (0..255 values): the output's median per channel, the colour in the
        output's convention (0..255 for an integer output, 0..1 for a float one), and the output's rounding (1 level for
        an integer output); None where it gives no image (3, H, W)."""
        colour = torch.tensor(values)
        uniform = colour[:, None, None].expand(given.shape).clone()
        out = run(uniform.to(given.dtype) if integer else (uniform / 255).to(given.dtype))
        if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != 3:
            return None
        if out.dtype.is_floating_point:
            return out.detach().double().flatten(1).median(dim=1).values, colour.double() / 255, 0.0
        return out.detach().double().flatten(1).median(dim=1).values, colour.double(), 1.0

    mid = on_colour([96.0, 144.0, 200.0])
    if mid is None:
        return changes + [_COLOUR]
    seen, wanted, _ = mid
    if float(seen.abs().sum()) == 0 or float((seen / seen.mean() - wanted / wanted.mean()).abs().max()) > 0.02:
        changes.append(_COLOUR)
    # A posterize or a gamma changes the mean too: with the colours changed, only a large factor (x.float(): 255) is a scale.
    if float(seen.abs().sum()) > 0 and abs(float((seen.mean() / wanted.mean()).log())) > (2.3 if _COLOUR in changes else 0.05):
        changes.append(_SCALE)
    # Dark and bright colours too: a clamp or a threshold changes only values near the ends (clamp(min=60), clamp(0, 200)).
    # Each must come out as the mid colour did: in the output's convention, times the same factor (a scale, if any).
    factor = float(seen.mean() / wanted.mean()) if float(wanted.mean()) > 0 else 0.0
    for extreme in ([12.0, 24.0, 6.0], [252.0, 214.0, 236.0]):
        if _COLOUR in changes or factor <= 0:
            break
        found = on_colour(extreme)
        if found is None:
            changes.append(_COLOUR)
            break
        here, expected, rounding = found
        if float((here - factor * expected).abs().max()) > 0.02 * float((factor * expected).abs().max()) + rounding:
            changes.append(_COLOUR)
    return changes


def _edits_in_place(lambda_step: Any, given: Any) -> bool:
    """Whether a Lambda's function changes the tensor it is given (x.div_, x[...] = ...), tried on a copy of its input."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if not isinstance(given, torch.Tensor):
        return False
    image = given.detach().clone()
    try:
        with torch.no_grad():
            lambda_step.lambd(image)
    except Exception:  # noqa: BLE001 - a function that fails is judged elsewhere
        return False
    return not (image.shape == given.shape and torch.equal(image, given.detach()))


def with_second_changes(steps: Any) -> Any:
    """The steps, each Lambda that makes more changes than it is counted for followed by its further changes (steps).

    A Lambda counts as the transforms it calls, or as one step if it calls none; each kind of change its function
    makes (geometric, colours, scale) beyond that count is a step of its own.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    extra: list[tuple[Any, Any, list[str], int]] = []  # (the step it follows, the Lambda, its changes, how many more)
    in_place = [lambda_step for lambda_step, given, _, _ in getattr(steps, "lambdas", []) if _edits_in_place(lambda_step, given)]
    if isinstance(steps, Recording):
        steps.in_place = in_place
    for lambda_step, given, result, inner in getattr(steps, "lambdas", []):
        kinds = _lambda_changes(lambda_step, given, result)
        cropped = _cropped_before_resizing(given, inner, getattr(steps, "given_to", []))
        if cropped and _MOVES not in kinds:
            kinds = [_GEOMETRIC, f"{_CROPS}: {cropped}"] + [kind for kind in kinds if kind != _GEOMETRIC]
        if len(kinds) > max(len(inner), 1):
            extra.append((inner[-1] if inner else lambda_step, lambda_step, kinds, len(kinds) - max(len(inner), 1)))
    if not extra:
        return steps
    counted = Recording()
    counted.top, counted.unchanged, counted.lambdas = steps.top, steps.unchanged, steps.lambdas
    counted.given_to = getattr(steps, "given_to", [])
    counted.in_place = in_place
    placed = set()
    for step in steps:
        counted.append(step)
        for anchor, lambda_step, kinds, more in extra:
            if step is anchor and id(lambda_step) not in placed:
                placed.add(id(lambda_step))
                counted.extend(SecondChange(lambda_step, kinds) for _ in range(more))
    for _, lambda_step, kinds, more in extra:
        if id(lambda_step) not in placed:
            counted.extend(SecondChange(lambda_step, kinds) for _ in range(more))
    return counted


def _check_steps(checker: Checker, reference: list[Any], steps: list[Any], outside: str, functionals: Sequence[str] = ()) -> bool:
    """One step: compare the steps changed_preprocess applied with model.preprocess's, step by step.

    Args:
        reference: model.preprocess's steps, taken before the student's function ran.
        steps: the steps it applied.
        outside: a change found outside the steps (replaying them does not give its tensor), or "".
        functionals: the names of torchvision's functional transforms it called outside any step, if it applied none.

    Returns:
        Whether the pipeline is one changed step.
    """
    changes = changed_steps(reference, steps)
    if not steps and functionals:
        problem = (f"changed_preprocess applied no step of a pipeline: it calls {', '.join(sorted(set(functionals)))} "
                   "directly, a preprocessing of its own rather than model.preprocess's steps. Build it from the steps of "
                   "model.preprocess.transforms with one step changed, and apply them (v2.Compose(steps)(image)); an own "
                   "operation goes in as a step, v2.Lambda.")
    elif not steps:
        problem = ("changed_preprocess applied no torchvision transform: build it from the steps of "
                   "model.preprocess.transforms with one step changed, and apply them (v2.Compose(steps)(image)).")
    elif outside:
        problem = outside
    elif not changes:
        problem = ("changed_preprocess applies the same steps as model.preprocess: change one step, or add one "
                   "(your own operation as v2.Lambda).")
    elif any(isinstance(step, SecondChange) for step in steps):
        second = next(step for step in steps if isinstance(step, SecondChange))
        kinds = second.changes
        if kinds[:2] == [_GEOMETRIC, _COLOUR] and len(kinds) == 2:
            what = ("both resizes the image and changes its colours (on an image of one colour it gives other colours), "
                    "which counts as two steps, as v2.Resize and v2.Grayscale would")
        elif len(kinds) == 2 and kinds[1].startswith(_CROPS):
            what = (f"crops the image before resizing it ({kinds[1].split(': ', 1)[1]}): a crop, even by a few pixels "
                    "at the edges, cuts off part of the photo, and with the resize it counts as two steps, as "
                    "v2.CenterCrop and v2.Resize would")
        elif kinds == [_GEOMETRIC, _MOVES]:
            what = ("both resizes the image and moves its pixels (a flip, crop, pad or shift: given an image of its own "
                    "output's size, where a resize gives the image back, it gives another size or moves the pixels), "
                    "which counts as two steps, as v2.Resize and v2.RandomHorizontalFlip(p=1.0) would")
        else:
            named = {_GEOMETRIC: "moves or resizes the pixels (a flip, crop or resize)",
                     _COLOUR: "changes the colours (another channel order, gray, a posterize: on an image of one colour "
                              "it gives other colours)",
                     _SCALE: "changes the scale of the values (e.g. x.float() drops ToDtype's scaling: 0..255, not 0..1)",
                     _MOVES: "also moves them (a flip, crop, pad or shift: on an image of its own output's size, where a "
                             "resize gives the image back, it gives another size or moves the pixels)"}
            what = (f"makes {len(kinds)} changes, each a step: it " + "; and it ".join(named.get(k, k) for k in kinds))
        problem = (f"your step {_step_name(second.lambda_step)} {what}: a Lambda is one step only if it makes one "
                   f"change (or as many steps as the transforms it calls). Keep one of the changes.")
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


def _random_step(checker: Checker, changed_preprocess: Callable, photo: np.ndarray, tensor: Any) -> tuple[bool, torch.Tensor | None]:
    """Whether changed_preprocess gives another tensor on a second call on the same photo, under another random seed;
    and the state of torch's generator after that call (None if there was none), to compare with the first call's.

    A random step (a Random... transform, ElasticTransform, noise from torch.randn) leaves the class the model
    predicts undetermined. Errors and other kinds of results are judged elsewhere: not random.
    """
    if not isinstance(tensor, torch.Tensor):
        return False, None
    torch.manual_seed(12345)
    try:
        with recorded_steps():
            again = checker.quiet_call(changed_preprocess, photo.copy())
        end_state = torch.random.get_rng_state()
    finally:
        torch.manual_seed(0)
    if not isinstance(again, torch.Tensor) or again.shape != tensor.shape:
        return isinstance(again, torch.Tensor), end_state
    return not torch.allclose(again.detach().float(), tensor.detach().float(), atol=1e-5), end_state


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


def _probes(photo: np.ndarray, output_shape: tuple[int, ...], grid: int = 4) -> list[tuple[str, np.ndarray, tuple[slice, slice]]]:
    """Copies of the photo, each with one region's colours inverted: a strip along each edge, and each block of a grid.

    A strip is wider than one output pixel's share of the photo, so any resampling reads some of it.

    Returns:
        (the region's name, the probe, the region's (rows, columns) slices) for each region.
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
        probes.append((name, probe, (rows_slice, columns_slice)))
    return probes


def _spread_evenly(tensor: torch.Tensor, changed: Sequence[tuple[str, tuple[slice, slice], torch.Tensor]],
                   photo_size: tuple[int, int]) -> str:
    """Whether the input keeps where things are in the photo: the problem, or "".

    Differential over the grid probes (one block of the photo inverted each): the input must change more at the
    block's place (or its mirror: a flip is allowed) than elsewhere, at least for some block. A step that replaces
    the picture by a statistic of the whole photo (its mean colour) changes every place alike.
    """
    height, width = photo_size
    out_height, out_width = tensor.shape[-2:]
    base = tensor.detach().double()
    averages = []
    for name, (rows, columns), answer in changed:
        change = (answer.detach().double() - base).abs().sum(0)
        top, bottom = int(rows.start * out_height / height), max(int(rows.start * out_height / height) + 1, int(np.ceil(rows.stop * out_height / height)))
        left, right = int(columns.start * out_width / width), max(int(columns.start * out_width / width) + 1, int(np.ceil(columns.stop * out_width / width)))
        best = None
        for flip_rows in (False, True):
            for flip_columns in (False, True):
                inside = torch.zeros_like(change, dtype=torch.bool)
                r = (out_height - bottom, out_height - top) if flip_rows else (top, bottom)
                c = (out_width - right, out_width - left) if flip_columns else (left, right)
                inside[r[0]:r[1], c[0]:c[1]] = True
                if bool(inside.all()):
                    return ""  # one block covers the input: nothing to compare with
                there, elsewhere = float(change[inside].mean()), float(change[~inside].mean())
                if best is None or there - 2 * elsewhere > best[0] - 2 * best[1]:
                    best = (there, elsewhere)
        if best[0] > 2 * best[1]:
            return ""
        averages.append((name, *best))
    if not averages:
        return ""
    name, there, elsewhere = averages[0]
    return (f"the input does not keep the photo's picture: inverting the colours of {name} of the photo changes the "
            f"input about as much everywhere as at that block's place ({there:.3g} there, {elsewhere:.3g} elsewhere, "
            "on average), and so for every block tried: your step replaces the picture by values computed from the "
            "whole photo (its mean colour, or another statistic of it), so where things are no longer reaches the "
            "model. Change a step in a way that keeps the picture.")


#: The colour of the geometry probes, and of the one pixel changed on them.
_PROBE_COLOUR, _PIXEL_COLOUR = (120, 130, 140), (250, 10, 60)


def _pixel_positions(height: int, width: int, seed: int, count: int = 4) -> list[tuple[int, int]]:
    """The corners, the middles of the edges and ``count`` seeded pixels inside: where one pixel is changed in turn."""
    generator = np.random.default_rng(seed)
    positions = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1),
                 (0, width // 2), (height - 1, width // 2), (height // 2, 0), (height // 2, width - 1)]
    positions += [(int(generator.integers(1, max(2, height - 1))), int(generator.integers(1, max(2, width - 1))))
                  for _ in range(count)]
    return list(dict.fromkeys(positions))


def _where(position: tuple[int, int], height: int, width: int) -> str:
    row, column = position
    vertical = "top" if row == 0 else "bottom" if row == height - 1 else ""
    horizontal = "left" if column == 0 else "right" if column == width - 1 else ""
    if vertical and horizontal:
        return f"its {vertical}-{horizontal} corner"
    return f"on its {vertical or horizontal} edge" if vertical or horizontal else "inside it"


def _nan_problem(answer: torch.Tensor | None, what: str) -> str:
    """The problem of an input with NaN (or infinite) values, given on an image described by ``what``; or ""."""
    if answer is None or bool(torch.isfinite(answer).all()):
        return ""
    bad = int((~torch.isfinite(answer)).sum())
    kind = "NaN (not a number)" if bool(torch.isnan(answer).any()) else "infinite"
    return (f"your pipeline gives {kind} values: {what}, {bad} of the input's {answer.numel()} values are {kind.split()[0]}: "
            "a division by 0 (0 / 0 gives NaN), e.g. by a standard deviation, which is 0 on an image of one colour (or "
            "in one channel of it). The network's input must be a number everywhere, for every photo: guard the "
            "division, or change another step.")


def _reaches_in_block(run: Callable, plain: np.ndarray, position: tuple[int, int], radius: int = 3) -> bool:
    """Whether one pixel reaches the input, told by a block of changed pixels around it: with and without that pixel.

    A step that hides the pixel (overwrites it by a constant or a copy of other pixels) gives the same input either
    way; a blur, whose spread of one pixel's change is lost to rounding on uint8, gives another (the block's change is
    large enough to survive rounding, and one pixel more or less in it moves some of its rounded values).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    row, column = position
    block = plain.copy()
    block[max(0, row - radius):row + radius + 1, max(0, column - radius):column + radius + 1] = _PIXEL_COLOUR
    without = block.copy()
    without[row, column] = plain[row, column]
    first, second = run(block), run(without)
    return first is not None and second is not None and not torch.equal(first, second)


def _geometry_problem(checker: Checker, changed_preprocess: Callable, size: tuple[int, int], aspect: float,
                      seed: int) -> str:
    """Whether the pipeline shows every pixel of an image in its own place: the problem, or "".

    Differential over generated probes: images of one colour of the photo's aspect ratio (``aspect``, width / height)
    at the height of the network input the pipeline made from the photo (``size``), so that a plain resizing is the
    identity there, whatever its filter; and the same image with one pixel changed in turn (the corners, the middles
    of the edges, seeded places inside). An image of one colour must give an input of one colour (a border or a
    blanked strip does not); each changed pixel must change the input, most at its own place (or mirrored: a flip
    is allowed). A crop, a pad (of zeros or reflected), a shift, a roll, a strip overwritten: each loses or moves a
    pixel by a whole pixel at least. Where the input's size is not the probe's (a squash), a pixel's place is scaled
    and may be off by one.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    out_height, out_width = size

    def run(image: np.ndarray) -> torch.Tensor | None:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        torch.manual_seed(seed)
        with recorded_steps():
            answer = checker.quiet_call(changed_preprocess, image)
        if not isinstance(answer, torch.Tensor) or answer.ndim != 3 or tuple(answer.shape[-2:]) != size:
            return None
        return answer.detach().double()

    exact = out_height * aspect
    base = None
    for width in sorted({max(1, int(round(exact))), max(1, int(np.floor(exact))), max(1, int(np.ceil(exact)))},
                        key=lambda candidate: (candidate != out_width, abs(candidate - exact))):
        height = out_height
        plain = np.empty((height, width, 3), dtype=np.uint8)
        plain[...] = _PROBE_COLOUR
        base = run(plain)
        if base is not None:
            break
    if base is None:
        return ""  # another size on the probe than on the photo: the size checks judge the photo's
    same_size = (out_height, out_width) == (height, width)
    near = 0 if same_size else 1  # pixels off by one where a squash scales their places

    def place(row: int, column: int) -> tuple[int, int]:
        return (min(out_height - 1, max(0, int(round((row + 0.5) * out_height / height - 0.5)))),
                min(out_width - 1, max(0, int(round((column + 0.5) * out_width / width - 0.5)))))

    # The input's unit: what 40 grey levels more change in it. Less than a tenth of it is rounding (a resampling of
    # an image of one colour can be off by a level); a lost pixel changes nothing at all.
    what = f"on an image of the photo's aspect ratio, {height}x{width}"
    lighter = run(plain + np.uint8(40))
    if lighter is None:
        return ""
    gray = run(np.full_like(plain, 128))  # a per-image standardisation without a guard gives NaN here: std 0
    colours = [(_PROBE_COLOUR, base), (tuple(v + 40 for v in _PROBE_COLOUR), lighter), ((128, 128, 128), gray)]
    for colour, answer in colours:
        problem = _nan_problem(answer, f"{what}, of one colour, RGB {colour}{' (gray)' if len(set(colour)) == 1 else ''}")
        if problem:
            return problem
    unit = max(float((lighter - base).abs().amax(0).median()), 1e-12)
    off_colour = (base - base.flatten(1).median(dim=1).values[:, None, None]).abs().amax(0) > 0.1 * unit
    changes: dict[tuple[int, int], torch.Tensor] = {}
    signed: dict[tuple[int, int], torch.Tensor] = {}  # the change per channel, with its sign
    lost: list[tuple[int, int]] = []
    centre = (height // 2, width // 2)
    for position in _pixel_positions(height, width, seed) + [centre]:
        probe = plain.copy()
        probe[position] = _PIXEL_COLOUR
        answer = run(probe)
        if answer is None:
            return ""
        problem = _nan_problem(answer, f"{what}, of one colour with its pixel at row {position[0]}, column {position[1]} changed")
        if problem:
            return problem
        change = (answer - base).abs().sum(0)
        if float(change.max()) <= 1e-3 * unit and _reaches_in_block(run, plain, position):
            # A change lost to rounding (a strong blur on uint8 spreads one pixel below a level): the pixel does reach
            # the input, as a block around it shows. It is left out of the places compared, like a lost one.
            continue
        if float(change.max()) <= 1e-3 * unit:
            lost.append(position)
        else:
            changes[position] = change
            signed[position] = answer - base

    # How far one pixel's change spreads in the input (a blur spreads it): the reach of the centre pixel's change
    # around its own place, measured on the probe. Within that reach of the input's edge, a filter's padding (a
    # reflected copy of the pixel) may make the change largest nearer the edge: there, the largest change may be
    # anywhere within the reach; everywhere else (the middle always), and at the corners, at the pixel's own place.
    # On uint8, rounding cuts a blurred pixel's change short (or to nothing), so the reach is also measured with a
    # block of 7x7 changed pixels around the centre, less the block's own half-width.
    block = plain.copy()
    block[centre[0] - 3:centre[0] + 4, centre[1] - 3:centre[1] + 4] = _PIXEL_COLOUR
    answer = run(block)
    margin = int(np.ceil(3 * max(out_height / height, out_width / width)))
    spreads = [(changes.get(centre), 0), (None if answer is None else (answer - base).abs().sum(0), margin)]
    reach = 0
    middle = torch.tensor(place(*centre))
    for spreading, own in spreads:
        spread = torch.nonzero(spreading > 1e-3 * unit) if spreading is not None else []
        if len(spread):
            reach = max(reach, int((spread - middle).abs().amax()) - own)

    def at(position: tuple[int, int], target: tuple[int, int]) -> bool:
        """Whether the change of the pixel at ``position`` is largest at the target pixel (or within ``radius`` of
        it; a corner stays a corner)."""
        change, row, column = changes[position], *target
        edge = min(row, column, out_height - 1 - row, out_width - 1 - column)
        corner = row in (0, out_height - 1) and column in (0, out_width - 1)
        radius = 0 if corner else max(near, reach if edge < min(reach, min(out_height, out_width) // 4) else 0)
        window = change[max(0, row - radius):row + radius + 1, max(0, column - radius):column + radius + 1]
        if float(window.max()) >= float(change.max()) * (1 - 1e-9):
            return True
        if not corner or reach < 1:
            return False
        # A sharpening filter's halo may peak one pixel inward of a corner: a change of the opposite sign to the
        # corner's own (a padding moves the pixel's change itself inward, with its sign).
        peak = divmod(int(change.argmax()), out_width)
        own, there = signed[position][:, row, column], signed[position][:, peak[0], peak[1]]
        return max(abs(peak[0] - row), abs(peak[1] - column)) <= 1 and float((own * there).sum()) < 0

    mirrors = [lambda r, c: (r, c), lambda r, c: (out_height - 1 - r, c), lambda r, c: (r, out_width - 1 - c),
               lambda r, c: (out_height - 1 - r, out_width - 1 - c)]
    in_place = any(all(at(position, mirror(*place(*position))) for position in changes) for mirror in mirrors)
    found = {position: divmod(int(change.argmax()), out_width) for position, change in changes.items()}
    what = f"on an image of the photo's aspect ratio, {height}x{width}"
    if bool(off_colour.any()):
        rows = torch.nonzero(off_colour.any(1)).flatten().tolist()
        columns = torch.nonzero(off_colour.any(0)).flatten().tolist()
        border = bool(off_colour[0].all() or off_colour[-1].all() or off_colour[:, 0].all() or off_colour[:, -1].all())
        corners = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
        inward = any(corner in found and found[corner] not in ((0, 0), (0, out_width - 1), (out_height - 1, 0),
                                                               (out_height - 1, out_width - 1)) for corner in corners)
        if border and inward:
            return (f"your pipeline pads the photo: {what}, of one colour, it gives an input with a border of another "
                    "colour, and the image has moved inward to make room. The network must see only the photo: no "
                    "padding (no border around it). Change another step.")
        part = f"rows {rows[0]} to {rows[-1]}" if len(rows) < out_height else f"columns {columns[0]} to {columns[-1]}"
        return (f"part of the photo is blacked out or overwritten: {what}, of one colour, your pipeline gives an input "
                f"that is not of one colour ({part} of the input differ from the rest), so something other than the "
                "photo is drawn over it. The model must see the whole photo: change a step that treats every pixel alike.")
    if centre in lost:
        # Even the middle pixel does not reach the input on its own, and no crop loses the middle: a filter that
        # removes single pixels (a median) and keeps regions. The region probes judge what reaches the input.
        lost = []
    if lost and in_place and same_size:
        return (f"part of the photo is hidden: {what}, changing its pixel at row {lost[0][0]}, column {lost[0][1]} "
                f"({_where(lost[0], height, width)}) does not change the input at all, while every other pixel tried "
                "stays in its place: that part is overwritten (by a copy of other pixels, or a constant). The model "
                "must see the whole photo: change a step that treats every pixel alike.")
    if lost:
        shifted = next(((position, spot) for position, spot in found.items() if spot != place(*position)), None)
        seen = (f", and its pixel at row {shifted[0][0]}, column {shifted[0][1]} shows at row {shifted[1][0]}, column "
                f"{shifted[1][1]}" if shifted and not in_place else "")
        return (f"the photo is cropped: {what}, its pixel at row {lost[0][0]}, column {lost[0][1]} "
                f"({_where(lost[0], height, width)}) does not reach the input at all{seen}: that part is cut off (a "
                "crop, even a small one or one that keeps the aspect ratio). Change a step without cropping.")
    if not in_place:
        position, spot = next((position, spot) for position, spot in found.items() if not at(position, place(*position)))
        shifts = {((spot[0] - place(*p)[0]) % out_height, (spot[1] - place(*p)[1]) % out_width) for p, spot in found.items()}
        wrapped = len(shifts) == 1 and any(abs(spot[1] - place(*p)[1]) > out_width // 2 or abs(spot[0] - place(*p)[0]) > out_height // 2
                                           for p, spot in found.items())

        def turned(row: int, column: int, variant: int) -> tuple[int, int]:
            """Where a transposed (or turned by 90 degrees) image puts a pixel, variant 0..3."""
            a = width - 1 - column if variant & 1 else column
            b = height - 1 - row if variant & 2 else row
            return (min(out_height - 1, int(round((a + 0.5) * out_height / width - 0.5))),
                    min(out_width - 1, int(round((b + 0.5) * out_width / height - 0.5))))

        transposed = any(all(abs(spot[0] - turned(*p, variant)[0]) <= 1 and abs(spot[1] - turned(*p, variant)[1]) <= 1
                             for p, spot in found.items()) for variant in range(4))
        corner = found.get((0, 0))
        if transposed:
            cause = "its rows and columns are swapped (the image is transposed or turned by 90 degrees)."
        elif wrapped:
            cause = "it is shifted and wraps around (what leaves one side comes back on the other, as torch.roll does)."
        elif corner is not None and corner[0] > 0 and corner[1] > 0:
            cause = ("the image is shrunk and moved inward: a border is put around it (padding, with zeros or reflected): "
                     "no padding, the network must see only the photo.")
        else:
            cause = "it is moved or distorted within the input."
        return (f"the photo does not keep its place in the input: {what}, its pixel at row {position[0]}, column "
                f"{position[1]} shows at row {spot[0]}, column {spot[1]} of the input, not at "
                f"{place(*position)}: {cause} The model must see the whole photo as it is, only resized.")
    return ""


def _thin_edge_problem(checker: Checker, changed_preprocess: Callable, photo: np.ndarray, tensor: torch.Tensor,
                       seed: int) -> str:
    """A few rows or columns lost at an edge of the photo, less than one input pixel's share: the problem, or "".

    Differential: strips a third of one input pixel's share wide (at least one pixel), each with its colours
    inverted, along each edge and across the middle. A step after the resize that drops the input's last rows (an
    average pooling whose window does not divide the size, a crop of a pixel or two) loses an edge strip while the
    strips as thin inside the photo all reach the input; a nearest-neighbour resize skips thin strips anywhere.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    height, width = photo.shape[:2]
    rows = max(1, height // (3 * int(tensor.shape[-2])))
    columns = max(1, width // (3 * int(tensor.shape[-1])))
    strips = {"bottom": (slice(height - rows, height), slice(None)), "top": (slice(0, rows), slice(None)),
              "left": (slice(None), slice(0, columns)), "right": (slice(None), slice(width - columns, width))}
    # Five seeded places along each side: a nearest-neighbour resize reads a thin strip at some places only, so at
    # seeded places (not at round fractions of the side, where its samples fall) one of ten misses it.
    generator = np.random.default_rng(seed + 11)
    inside = [(slice(top, top + rows), slice(None)) for top in generator.integers(rows, height - 2 * rows, 5)]
    inside += [(slice(None), slice(left, left + columns)) for left in generator.integers(columns, width - 2 * columns, 5)]

    def reaches(region: tuple[slice, slice]) -> bool | None:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        probe = photo.copy()
        probe[region] = 255 - probe[region]
        torch.manual_seed(seed)
        with recorded_steps():
            answer = checker.quiet_call(changed_preprocess, probe)
        if not isinstance(answer, torch.Tensor) or answer.shape != tensor.shape:
            return None
        return not torch.equal(answer.detach(), tensor.detach())

    lost = [edge for edge, region in strips.items() if reaches(region) is False]
    if not lost or not all(reaches(region) for region in inside):
        return ""
    share = f"its last {rows} rows" if lost[0] == "bottom" else f"its first {rows} rows" if lost[0] == "top" else \
        f"its {'first' if lost[0] == 'left' else 'last'} {columns} columns"
    return (f"the photo is cropped: inverting the colours of {share} (the {lost[0]} edge) does not change the input at all, "
            "while strips as thin inside the photo do: a step drops the input's edge (an average or max pooling whose "
            "window does not divide the input's size, as avg_pool2d(x, 12) on 224 rows keeps 18 x 12 = 216 of them; "
            "a crop of a pixel or two). Change a step so that every pixel of the photo reaches the network.")


def _padding_steps(steps: Sequence[Any] | None) -> list[str]:
    """The names of the steps that pad the image: v2.Pad, or a functional pad called inside a v2.Lambda."""
    padding = []
    for step in steps or []:
        if isinstance(step, v2.Pad) or (isinstance(step, FunctionalCall) and step.name.rsplit(".", 1)[-1].startswith("pad")):
            padding.append(_step_name(step))
    return padding


@contextlib.contextmanager
def _value_branches(found: list[str]) -> Iterator[None]:
    """Record where code outside torch, torchvision, NumPy, PIL and the course turns a one-value tensor into a bool:
    an ``if`` (or ``and``, ``or``, ``not``) on the image's values, such as ``if x.mean() > 0.2``."""
    original = torch.Tensor.__bool__
    libraries = tuple(str(Path(module.__file__).parent) for module in (torch, torchvision, np, Image)) + (
        str(Path(__file__).resolve().parents[1]),)

    def recording(tensor: torch.Tensor) -> bool:
        frame = sys._getframe(1)
        where = frame.f_code.co_filename
        if not where.startswith(libraries) and not where.startswith("<frozen"):
            found.append(f"line {frame.f_lineno} of {Path(where).name}" if not where.startswith("<") else f"line {frame.f_lineno}")
        return original(tensor)

    torch.Tensor.__bool__ = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.__bool__ = original  # type: ignore[method-assign]


#: torchvision's transforms that crop (whatever they do to the coffee photo, they cut photos of other shapes).
CROPPING = (v2.RandomResizedCrop, v2.CenterCrop, v2.RandomCrop, v2.FiveCrop, v2.TenCrop, v2.RandomIoUCrop)


def _cropping_steps(steps: Sequence[Any] | None) -> list[str]:
    """The names of the steps that crop: a crop transform, or a functional crop called inside a v2.Lambda."""
    return [_step_name(step) for step in steps or [] if isinstance(step, CROPPING) or (
        isinstance(step, FunctionalCall) and "crop" in step.name.rsplit(".", 1)[-1])]


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
    expected_height = width * photo.shape[0] / photo.shape[1]
    problem = ""
    padding = _padding_steps(steps)
    cropping = _cropping_steps(steps)
    geometry = _geometry_problem(checker, changed_preprocess, (int(height), int(width)), photo.shape[1] / photo.shape[0], seed)
    if padding:
        problem = (f"your pipeline pads the photo ({padding[0]}): the input is {height}x{width}, the photo "
                   f"{photo.shape[0]}x{photo.shape[1]}. The network's input must keep the photo's aspect ratio and show "
                   "only the photo, so no padding (nor cropping or squashing): a border is not part of the picture. "
                   "Change another step.")
    squashed = ""
    if abs(width - expected_width) >= 1 and abs(height - expected_height) >= 1:
        # Only rounding may change the aspect ratio: one side within less than one pixel of what the other side and the
        # photo's ratio give (rounded up or down; rounding the short side moves the long side's by more than a pixel).
        squashed = (f"the photo is squashed: the input is {height}x{width}, but the photo is {photo.shape[0]}x"
                   f"{photo.shape[1]}, so at a height of {height} its width is {expected_width:.4g} (and at a width of "
                   f"{width} its height {expected_height:.4g}). Resize to a single number, or to an (H, W) pair with the "
                   "photo's own aspect ratio (each side within rounding of it).")
    unseen = []
    probes = _probes(photo, tuple(tensor.shape))
    own_steps = True  # whether the steps it applied, replayed on the probe, give what it returned: the steps ignore the photo
    blocks = []  # (name, region, input) of the grid probes, for _spread_evenly
    for name, probe, region in probes:
        torch.manual_seed(seed)
        with recorded_steps() as steps:
            ok, answer = checker.call(changed_preprocess, probe)
        if not ok:
            return  # the error is reported; this check is not judged on a pipeline that fails on a photo
        if "grid" in name and isinstance(answer, torch.Tensor) and answer.shape == tensor.shape:
            blocks.append((name, region, answer))
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
        problem = ("changed_preprocess returns the same tensor whatever photo it is given: it uses the notebook's "
                   "photo, or keeps its first result (a cache) and returns it again. Apply the steps to its image "
                   "argument on every call.")
    elif geometry:
        problem = geometry
    elif spread := _spread_evenly(tensor, blocks, photo.shape[:2]):
        problem = spread
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
    if not problem and not squashed:
        problem = _thin_edge_problem(checker, changed_preprocess, photo, tensor, seed)
    if not problem and not squashed and cropping:
        # A crop that keeps this photo whole (its size and ratio chosen for it) still cuts photos of other shapes.
        problem = (f"your pipeline has a cropping step ({cropping[0]}): whatever it does to the coffee photo, it cuts photos "
                   "of other shapes or sizes, and the text allows no cropping (not even one that keeps the aspect ratio). "
                   "Change another step, or resize with v2.Resize.")
    problem = problem or squashed
    checker.require("the whole photo, unaltered", not problem, problem)


def _same_but_case(name: str, names: Sequence[str]) -> list[str]:
    """The names that equal ``name`` when case and surrounding spaces are ignored, but not exactly."""
    wanted = name.strip().lower()
    return [candidate for candidate in names if candidate.lower() == wanted and candidate != name]


def _logits(model: LoadedModel, tensor: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.network(tensor.unsqueeze(0).to(model.device))[0].float().cpu()


def _take_hooks(network: torch.nn.Module) -> list[tuple[str, Any, dict[str, dict]]]:
    """Take the hooks off every module of the network: (module name, module, its hook dicts as they were), one per
    module that had a hook. :func:`_put_back_hooks` puts them back."""
    taken = []
    for name, module in network.named_modules():
        if any(getattr(module, kind, None) for kind in _HOOK_KINDS):
            kinds = (*_HOOK_KINDS, *_HOOK_EXTRAS)
            taken.append((name, module, {kind: dict(getattr(module, kind)) for kind in kinds if isinstance(getattr(module, kind, None), dict)}))
    _clear_hooks(taken)
    return taken


def _clear_hooks(taken: list[tuple[str, Any, dict[str, dict]]]) -> None:
    for _, module, contents in taken:
        for kind in contents:
            getattr(module, kind).clear()


def _put_back_hooks(taken: list[tuple[str, Any, dict[str, dict]]]) -> None:
    for _, module, contents in taken:
        for kind, hooks in contents.items():
            getattr(module, kind).update(hooks)


def _hook_problem(model: LoadedModel, taken: list[tuple[str, Any, dict[str, dict]]], coffee: np.ndarray, original: int) -> str:
    """The hooks found on the network when the check started, if they change its output on the coffee photo; or ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if not taken:
        return ""
    _put_back_hooks(taken)
    try:
        hooked = _logits(model, model.preprocess(coffee))
    except Exception:  # noqa: BLE001 - a hook that fails is a hook that changes the output
        hooked = None
    finally:
        _clear_hooks(taken)
    clean = _logits(model, model.preprocess(coffee))
    if hooked is not None and hooked.shape == clean.shape and torch.allclose(hooked, clean, atol=1e-5):
        return ""  # hooks that only look (e.g. keep an activation): harmless here
    count = sum(len(contents.get(kind, {})) for _, _, contents in taken for kind in _HOOK_KINDS)
    where = ", ".join(f"model.network{'.' + name if name else ''}" for name, _, _ in taken[:3])
    top = (f"the coffee photo's top class is {model.class_names[int(hooked.argmax())]!r} with it, "
           f"{model.class_names[original]!r} without it" if hooked is not None else "the network fails with it")
    return (f"model.network has {count} hook{'s' if count > 1 else ''} on it from an earlier cell ({where}: "
            f"register_forward_hook or the like) that change{'' if count > 1 else 's'} what the network gives: {top}. "
            "Every prediction of the notebook goes through it. Remove it (handle.remove(), or restart the kernel and "
            "run the cells without it): the change asked for is a step of the pipeline. The check ran without it.")


def _kept_state(checker: Checker, changed_preprocess: Callable, photo: np.ndarray, first_count: int, seed: int,
                first_names: Sequence[str] = ()) -> str:
    """State kept between calls: a cache that hands back an earlier result, or steps that pile up call after call.

    Differential: the same array called twice, its colours inverted in place in between (a cache keyed by the
    object, e.g. by id(image), gives its first result again without applying a step); and the number of steps
    applied, call after call, with the same seed (a step list kept between calls grows).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = photo.copy()
    answers, counts, names = [], [first_count], [list(first_names)]
    for k in range(3):
        if k == 1:
            image[...] = 255 - image
        torch.manual_seed(seed)
        with recorded_steps() as steps:
            answers.append(checker.quiet_call(changed_preprocess, image if k < 2 else photo.copy()))
        counts.append(len(steps))
        names.append([_step_name(step) for step in steps])
    first, second = answers[0], answers[1]
    if (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and first.shape == second.shape
            and torch.equal(first.detach(), second.detach()) and counts[2] == 0):
        return ("changed_preprocess keeps results between calls: called again on the same array after its colours "
                "were inverted (by the check, in place), it applied no step and gave back its earlier result. A cache "
                "(keyed by id(image): Python gives a new array the id of one freed before, so another photo gets an "
                "old photo's tensor; or a first result kept) returns tensors of other photos. Apply the steps to its "
                "image argument on every call.")
    if all(count > 0 for count in counts) and all(b > a for a, b in zip(counts, counts[1:])):
        return (f"changed_preprocess applies more steps at each call ({', then '.join(map(str, counts))} steps): it adds "
                "a step to a list kept between calls (a module-level list, or model.preprocess's own, changed by "
                ".insert or .append on every call), so each call gives another tensor than the one before. Build the "
                "list afresh inside the function, from list(model.preprocess.transforms), and change that.")
    if first_names and names[0] != names[1] and names[0] != names[3]:
        differ = next((a, b) for a, b in zip(names[0] + [""] * len(names[1]), names[1] + [""] * len(names[0])) if a != b)
        return (f"changed_preprocess applies other steps from call to call on the same photo: {differ[0] or 'no step'} "
                f"on the check's first call, {differ[1] or 'no step'} on the next. It keeps state between calls (a flag "
                "or a counter, a list or a step changed in place), so the class the model predicts depends on how often "
                "it was called. Build the same steps on every call.")
    return ""


def _only_this_photo(checker: Checker, changed_preprocess: Callable, preprocess: Callable, photo: np.ndarray,
                     tensor: Any, seed: int, lambdas: Sequence[Any] = ()) -> str:
    """A change that happens on the exercise's photo only: on other photos the pipeline gives model.preprocess's input.

    Differential over two generated photos of other sizes (the photo at half its size; random colours): a step
    changed in the pipeline changes them too; a condition on the image (its width, its values) does not. Also a
    ``v2.Lambda`` (``lambdas``: the photo's, as :class:`Recording` keeps them) that changes the photo but gives back
    another photo unchanged, the Lambda at the same place.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    try:
        if not isinstance(tensor, torch.Tensor) or tensor.shape == (expected := preprocess(photo.copy())).shape \
                and torch.equal(tensor.detach(), expected):
            return ""  # the same input as the model's on the photo: judged elsewhere
        generator = np.random.default_rng(seed + 7)
        # Other sizes and shapes than the photo's: even and odd, landscape and portrait; and the photo's own size with
        # other values: darker, and flat (a sixth of its contrast). The last two keep a few black and white pixels, so
        # that a step acting on some values only (a solarize above a threshold) still has pixels to act on.
        darker = (255 * (photo / 255.0) ** 2).round().astype(np.uint8)
        flat = (photo.mean() + (photo.astype(np.float64) - photo.mean()) / 6).round().astype(np.uint8)
        for extreme in (darker, flat):
            extreme[::23, ::29] = 255
            extreme[11::23, 13::29] = 0
        others = [(f"the photo at half its size, {(photo.shape[0] + 1) // 2}x{(photo.shape[1] + 1) // 2}", photo[::2, ::2].copy()),
                  ("an image of random colours, 151x251", generator.integers(0, 256, (151, 251, 3), dtype=np.uint8)),
                  ("the photo's left part upright, 301x97", np.ascontiguousarray(photo[:301, :97])),
                  (f"the photo darker, each value v as 255 (v / 255)^2: mean {darker.mean():.0f} for the photo's "
                   f"{photo.mean():.0f}", darker),
                  (f"the photo with a sixth of its contrast: standard deviation {flat.std():.0f} for the photo's "
                   f"{photo.std():.0f}", flat)]
        for name, other in others:
            expected = preprocess(other.copy())
            torch.manual_seed(seed)

            def explain(error: BaseException, name: str = name) -> str:
                return (f"changed_preprocess raised {type(error).__name__} on another photo, {name}: {error}. The "
                        "pipeline must work on every photo, as model.preprocess does: a change that works only on the "
                        "exercise's photo (its size or shape) is not a changed step of the pipeline.")

            with recorded_steps() as steps:
                ok, answer = checker.call(changed_preprocess, other.copy(), explain=explain)
            if not ok:
                return ""  # the error is reported
            idle = [k for k, (mine, theirs) in enumerate(zip(lambdas, steps.lambdas))
                    if not _same_value(mine[1], mine[2]) and _same_value(theirs[1], theirs[2])]
            # Within float rounding: a Lambda's x.float() / 255 is ToDtype's scaling computed another way.
            if idle or (isinstance(answer, torch.Tensor) and answer.shape == expected.shape and answer.is_floating_point()
                        and torch.allclose(answer.detach().float(), expected.float(), rtol=1e-5, atol=1e-6)):
                what = (f"your step {_step_name(steps.lambdas[idle[0]][0])} changes the photo but gives back that one "
                        "unchanged" if idle else "changed_preprocess gives exactly what model.preprocess gives")
                return (f"your change happens on the exercise's photo only: on another photo ({name}) {what}. A step that acts only on some images (a condition on "
                        "the image's size or values, such as x.shape[-1] == 600) is not a changed step of the pipeline: "
                        "change a step so that it changes every photo.")
    finally:
        torch.manual_seed(seed)
    return ""


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
    # Hooks left on the network by an earlier cell change every prediction: the check runs without them (named below
    # if they change the output) and puts them back.
    taken = _take_hooks(model.network)
    try:
        return _check_c(model, changed_preprocess, new_top_class, _grading, taken)
    finally:
        _put_back_hooks(taken)


def _check_c(model: LoadedModel, changed_preprocess: Callable, new_top_class: Any, _grading: bool,
             taken: list[tuple[str, Any, dict[str, dict]]]) -> CheckResult:
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
    hooks = _hook_problem(model, taken, coffee, original)
    if hooks:
        checker.note_side_effect("hooks at start", hooks)
    given = coffee.copy()
    seed = 0
    torch.manual_seed(seed)
    branches: list[str] = []
    with recorded_steps() as steps, _value_branches(branches):
        ok, tensor = checker.call(changed_preprocess, given, explain=lambda error: _missing_step(error, reference, steps))
    end_state = torch.random.get_rng_state()
    predicted: list[str] = []
    one_change = False
    random_step = False
    state = _kept_state(checker, changed_preprocess, coffee, len(steps), seed,
                                                                                              [_step_name(step) for step in steps]) if ok and isinstance(tensor, torch.Tensor) else ""
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
            functionals: list[str] = []
            if steps is not None and not steps:  # the functional transforms it called directly: its steps
                calls: list[Any] = []
                torch.manual_seed(seed)
                with _functionals_called_by_lambda(calls):  # type: ignore[arg-type]
                    checker.quiet_call(changed_preprocess, coffee.copy())
                functionals = [call.name for call in calls]
                if calls and all(call.function is not None for call in calls):
                    # The steps written as functions (v2.functional.resize(x, [48]), ...): each call is a step, judged
                    # by what it does, as a Lambda's calls are.
                    steps = Recording(calls)
                    steps.top, steps.unchanged, steps.lambdas = list(calls), [], []
                    outside = _outside_steps(tensor, _replayed(steps.top, coffee, seed)) if np.array_equal(given, coffee) else ""
            if state:
                checker.require("one step changed", False, state)
            elif branches:
                checker.require("one step changed", False, (
                    f"your code decides by the photo's values what to do ({branches[0]}: an if on a tensor computed from "
                    "the image, such as x.mean() > 0.2 or x.std() > 0): a step that acts only on some images is not a "
                    "changed step of the pipeline. Change a step the same way for every photo, with no condition on it."))
            elif steps is not None:
                steps = with_second_changes(steps)
                only_here = "" if outside else _only_this_photo(checker, changed_preprocess, model.preprocess, coffee, tensor, seed,
                                                                getattr(steps, "lambdas", []))
                one_change = _check_steps(checker, reference, steps, outside or only_here, functionals)
        # A random step first: the whole-photo probes would each see other random changes (noise that is not of one colour).
        random_step, again_state = _random_step(checker, changed_preprocess, coffee, tensor) if well_formed else (False, None)
        if state:
            checker.require("the whole photo, unaltered", False, state)
        elif random_step:
            checker.require(
                "the whole photo, unaltered", False,
                "changed_preprocess gives a different tensor each time it is called on the same photo: a random step "
                "(a Random... transform, ElasticTransform, noise from torch.randn...), so the class the model predicts "
                "changes from call to call and is not determined by your pipeline. Make the change deterministic "
                "(fixed parameters, p=1.0).")
        else:
            _check_whole_photo(checker, changed_preprocess, coffee, tensor, seed, steps)
        if again_state is not None and torch.equal(again_state, end_state):
            # Two calls begun from different seeds end in the same state of torch's generator: it was reseeded.
            checker.note_side_effect(
                "random seed", "changed_preprocess resets torch's random number generator (torch.manual_seed or "
                "torch.set_rng_state inside it): every random number the notebook draws after it repeats. A step must "
                "leave the global generator alone; the change asked for needs no seed.")
        if not well_formed:
            checker.skip(["changes the top class"], "need an image tensor (3, H, W) first")
        elif state:
            checker.require("changes the top class", False, state)
        elif random_step:
            checker.skip(["changes the top class"], "need a pipeline that gives the same tensor at each call first")
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
                for lambda_step in getattr(steps, "in_place", [])[:1]:
                    ending += (f" (Your step {_step_name(lambda_step)} also edits the tensor it is given in place, as x.div_ "
                               "or x[...] = do: harmless here, since the step before it makes a new tensor, but a step "
                               "should return a new tensor and leave its input as it was.)")
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
    if real and (random_step or state):
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
