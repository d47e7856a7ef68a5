"""What every exercise's checks share: the result, the checker, cached references, student errors in plain words."""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
import sys
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from ..models import LoadedModel, make_preprocess
from . import reference_store

__all__ = [
    "BACKWARD_CALLS",
    "STAGES",
    "CheckResult",
    "Checker",
    "Snapshot",
    "Watched",
    "as_tensor",
    "cached",
    "describe_error",
    "elementwise_from",
    "gradcam_from",
    "largest_gradient_from",
    "layer_gradients",
    "max_difference",
    "hook_keys",
    "recorded_calls",
    "remove_new_hooks",
    "smaller_input",
    "training_copy",
    "shown_name",
    "type_name",
    "watched_inputs",
]

STAGES = ("layer1", "layer2", "layer3", "layer4")


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
        """Whether every check passed."""
        return len(self.passed) == self.total

    def __str__(self) -> str:
        if self.correct:
            return f"Exercise {self.exercise}: correct ({self.total}/{self.total} checks pass)."
        lines = [f"Exercise {self.exercise}: {len(self.passed)}/{self.total} checks pass. Not yet:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)

    __repr__ = __str__


# Known errors from deep inside torch or NumPy, and what they mean for a student.
_ERROR_HINTS: tuple[tuple[str, str], ...] = (
    (
        "backward through the graph a second time",
        "the second backward pass found the graph freed: pass retain_graph=True to every backward() "
        "but the last (notebook 3 shows why)",
    ),
    (
        "One of the differentiated Tensors does not require grad",
        "torch.autograd.grad was asked for the gradient with respect to a tensor that is not part of the graph: "
        "LayerRecorder's activations are detached copies, for reading values. Take the gradient with respect to "
        "recorder.outputs[layer], or call backward() and read recorder.gradients[layer]",
    ),
    (
        "appears to not have been used in the graph",
        "torch.autograd.grad was asked for the gradient with respect to a tensor the score was not computed from "
        "(a copy, such as LayerRecorder's activations, or a tensor of another forward pass): take it with respect "
        "to recorder.outputs[layer] of the same forward pass, or call backward() and read recorder.gradients[layer]",
    ),
    ("Inference tensors cannot be saved for backward", "the forward pass ran under torch.inference_mode(): run it with gradients on"),
    (
        "boolean index did not match",
        "a mask and a map have different sizes: use the mask you were given, with maps of the image's size",
    ),
)


_NO_GRAD_FN = "does not require grad and does not have a grad_fn"


def describe_error(function: Callable, error: BaseException, grad_forwards: Sequence[bool] | None = None) -> str:
    """A short message for an error a student's function raised: the cause when known, never a long traceback.

    Args:
        function: the student's function.
        error: what it raised.
        grad_forwards: for each forward pass of a watched network during the call, whether gradients were on
            (see :meth:`Checker.before_call`); it tells the two causes of a score without a gradient apart.
    """
    name = getattr(function, "__name__", "your function")
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(text) > 160:
        text = text[:157] + "..."
    for fragment, hint in _ERROR_HINTS:
        if fragment in str(error):
            return f"{name} raised {type(error).__name__}: {hint}."
    if "does not require grad" in str(error):
        if grad_forwards and not any(grad_forwards):
            hint = ("the logits have no gradient: the forward pass ran under torch.no_grad() / torch.inference_mode(). "
                    "Run it with gradients on, inside LayerRecorder")
        elif grad_forwards:
            hint = ("the score has no gradient although the forward pass ran with gradients on: it was computed from a "
                    "detached tensor (LayerRecorder's activations are detached copies, for reading values, and so is "
                    "anything .detach()ed). Backpropagate the logits that the forward pass returned")
        else:
            hint = ("the score has no gradient: it was computed under torch.no_grad() / torch.inference_mode(), or from a "
                    "detached tensor (LayerRecorder's activations are detached copies). Run the forward pass with "
                    "gradients on, inside LayerRecorder, and backpropagate the logits it returns")
        return f"{name} raised {type(error).__name__}: {hint}."
    return f"{name} raised {type(error).__name__}: {text}" if text else f"{name} raised {type(error).__name__}."


_UTILITIES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CHECKS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# The model's own methods (model.predict, ...) are the student's way to run the network: their passes count.
_STUDENT_WAYS = (os.path.join(_UTILITIES_DIR, "models.py"),)


def _made_by_course_helper() -> bool:
    """Whether the forward pass now running was made inside a course helper the student called.

    Walks the stack from the network's call up to the check that called the student's function: a frame of the
    ``utilities`` package on the way (other than the checks and the model's own methods) means a helper ran the
    network for a purpose of its own (``cell_centres`` measures the network's geometry on a made-up input), not
    the student's code.
    """
    frame = sys._getframe(2)  # above this function and the sentinel that calls it
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(_CHECKS_DIR):
            return False  # reached the check that called the student's function
        if path.startswith(_UTILITIES_DIR) and path not in _STUDENT_WAYS:
            return True
        frame = frame.f_back
    return False


class _CallState(NamedTuple):
    """What :meth:`Checker.before_call` took, for :meth:`Checker.after_call`."""

    inputs: list["Watched"]
    sentinels: list[tuple[torch.nn.Module, torch.nn.Module, Any]]  # (network, the module hooked, the handle)
    grad_forwards: list[bool]
    grad_enabled: bool
    working_directory: str


class Checker:
    """Collects check outcomes for one exercise.

    Args:
        exercise: the exercise's letter.
        total: the number of checks.
        catch_not_implemented: count an unfinished function as a failed check (grading)
            instead of letting its ``NotImplementedError`` through (the notebook shows the hint).
        models: the models a student's functions can reach: watched (see :class:`Snapshot`).
        watch_hooks: also report hooks a call leaves behind (an exercise that checks them itself passes False).
    """

    def __init__(
        self, exercise: str, total: int, catch_not_implemented: bool, models: Sequence[LoadedModel] = (), watch_hooks: bool = True
    ) -> None:
        self.result = CheckResult(exercise, total)
        self.catch_not_implemented = catch_not_implemented
        # What no student function may change, taken before any of them runs: compared after every call.
        self.snapshot = Snapshot(models, hooks=watch_hooks)
        self._side_effect = ""  # found by the last call, fails the next check judged
        self._reported: set[str] = set()
        #: The positions of the arguments the last call changed in place (put back since).
        self.changed_arguments: set[int] = set()
        #: How many forward passes of the watched networks the last call ran (their sentinels fired), not counting
        #: those a course helper made for its own purpose (see :func:`_made_by_course_helper`).
        self.forward_passes = 0
        # What each call returned, with a copy taken then: a result a later call changes (a buffer or dict reused and
        # returned every call) shows at the end.
        self._kept_results: list[tuple[str, Any, Any]] = []

    def _keep_result(self, function: Callable, value: Any) -> None:
        copied = _result_copy(value)
        if copied is not _UNWATCHED:
            self._kept_results.append((shown_name(function), value, copied))

    def _changed_result(self) -> str:
        """The message for a result that a later call changed, or ""."""
        for name, value, copied in self._kept_results:
            if not _same_result(value, copied):
                return (f"{name} returned results that its later calls changed: what it returned for an earlier call holds "
                        "other values now, because the same buffer, array or dict is filled anew and returned on every "
                        "call (out=..., a module-level array, a dict kept between calls). A caller that keeps two results "
                        "sees only the last. Return a new object from each call.")
        return ""

    def _problem(self, message: str) -> None:
        # One mistake can fail several checks; its message is said once.
        if message not in self.result.problems:
            self.result.problems.append(message)

    def require(self, name: str, condition: bool, problem: str) -> bool:
        """Pass check ``name`` if ``condition`` holds, else record ``problem``.

        A side effect found by an earlier call (a changed model, an edited input) fails the next check
        judged, once, with its message: the check relied on that call. The return value is still
        ``condition``, so that the later checks run as they would have.

        Returns:
            ``condition``.
        """
        if self._side_effect and condition:
            self._problem(self._side_effect)
            self._side_effect = ""
            return condition
        if condition:
            self.result.passed.append(name)
        else:
            self._problem(problem)
        return condition

    def note_side_effect(self, cause: str, message: str) -> None:
        """A change a call made that it may not make: it costs the next check that passes.

        Also for a change found before any call (left by an earlier cell).

        Args:
            cause: what changed (:meth:`Snapshot.changes`' keys): each cause is reported once.
            message: what to say.
        """
        if cause not in self._reported:
            self._reported.add(cause)
            self._side_effect = self._side_effect or message

    def noted(self, cause: str) -> bool:
        """Whether a side effect of this cause was noted (reported already, or waiting for the next check)."""
        return cause in self._reported

    @property
    def pending_side_effect(self) -> str:
        """The side effect noted and not reported yet (it fails the next check that passes), or ""."""
        return self._side_effect

    def before_call(self, function: Callable, args: Sequence[Any], watch_inputs: bool = True,
                    described: Mapping[int, str] | None = None) -> _CallState:
        """Copies of the arguments; on each watched network, a hook of the check's own that does nothing but note.

        The hook notes whether gradients were on in each forward pass (for the message of an error), and if the
        call removes it, the call removed hooks it had not registered.
        """
        inputs = watched_inputs(args, function, described) if watch_inputs else []
        grad_forwards: list[bool] = []

        def sentinel(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if _made_by_course_helper():
                return  # a helper's own pass (e.g. cell_centres deriving the cells' centres): not the student's
            grad_forwards.append(torch.is_grad_enabled() and not torch.is_inference_mode_enabled())

        sentinels = [(saved["network"], saved["network"], saved["network"].register_forward_hook(sentinel))
                     for saved in self.snapshot.networks]
        # And a hook that does nothing on each stage (layer1 to layer4), where a function that clears the hooks of the
        # layer it records (module._forward_hooks.clear()) takes away the caller's.
        sentinels += [(saved["network"], stage, stage.register_forward_hook(_no_op_hook)) for saved in self.snapshot.networks
                      for stage in (getattr(saved["network"], name, None) for name in STAGES) if isinstance(stage, torch.nn.Module)]
        return _CallState(inputs, sentinels, grad_forwards, torch.is_grad_enabled(), os.getcwd())

    def after_call(self, function: Callable, state: _CallState) -> None:
        """Compare the model and the inputs with their state before the call; restore them; remember the first change."""
        name = shown_name(function)
        removed = set()
        for network, module, handle in state.sentinels:
            if handle.id not in module._forward_hooks:
                removed.add(id(network))
            handle.remove()
        changes = self.snapshot.changes(name, removed_sentinels=removed)
        if torch.is_grad_enabled() != state.grad_enabled:
            # torch.set_grad_enabled(False) left switched off: every later backward() of the notebook fails.
            changes.append(("grad mode", f"{name} switched gradients {'on' if torch.is_grad_enabled() else 'off'} for the "
                            "whole process (torch.set_grad_enabled) and left them so: every later backward pass "
                            "of the notebook changes with it. Use torch.no_grad() or torch.enable_grad() in a with block, "
                            "which puts the mode back. The check put it back."))
            torch.set_grad_enabled(state.grad_enabled)
        if os.getcwd() != state.working_directory:
            # os.chdir left behind: every relative path of the notebook (data/, the outputs) now points elsewhere.
            changes.append(("working directory", f"{name} changed the working directory (os.chdir) to {os.getcwd()} and "
                            f"left it there: every later relative path of the notebook now points elsewhere. Build paths "
                            "with Path(folder) / name instead of changing directory, or change back in a finally block. "
                            "The check changed it back."))
            os.chdir(state.working_directory)
        self.snapshot.restore()
        self.forward_passes = len(state.grad_forwards)
        self.changed_arguments = set()
        for watched in state.inputs:
            change = watched.change()
            if change:
                self.changed_arguments.add(watched.position)
                changes.append((f"argument {watched.position + 1}", watched.message(name, change)))
                watched.restore()
        for cause, message in changes:
            self.note_side_effect(cause, message)

    def call(
        self,
        function: Callable,
        *args: Any,
        explain: Callable[[BaseException], str | None] | None = None,
        watch_inputs: bool = True,
        described: Mapping[int, str] | None = None,
        expected: Callable[[BaseException], bool] | None = None,
    ) -> tuple[bool, Any]:
        """Call a student's function; an error is recorded as a problem (the caller skips the checks that needed it).

        Args:
            function: the student's function.
            *args: its arguments.
            explain: optional exercise-specific message for an error (``None`` falls back to the generic one).
            watch_inputs: report an argument the call changed (off where a check of its own does).
            described: argument position -> what the messages call it ("the list of class names").
            expected: errors the check wants to see (an error it caused on purpose): returned, not recorded.

        Returns:
            (whether it returned, what it returned; for an expected error, the error).
        """
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        state = self.before_call(function, args, watch_inputs, described)
        try:
            returned = function(*args)
            self._keep_result(function, returned)
            return True, returned
        except NotImplementedError as error:
            if not self.catch_not_implemented:
                raise  # the notebook shows the hint; the model is put back below all the same
            self._problem(f"{getattr(function, '__name__', 'a function')} is not implemented yet ({error}).")
        except Exception as error:  # noqa: BLE001 - any student error is reported, not raised
            if expected is not None and expected(error):
                return False, error
            self._problem((explain(error) if explain else None) or describe_error(function, error, state.grad_forwards))
        finally:
            self.after_call(function, state)
        return False, None

    def quiet_call(self, function: Callable, *args: Any, watch_inputs: bool = True) -> Any:
        """A further call whose error is not reported (an earlier call's result is judged); its side effects are.

        Returns:
            What the function returned, ``None`` if it raised.
        """
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        state = self.before_call(function, args, watch_inputs)
        try:
            returned = function(*args)
            self._keep_result(function, returned)
            return returned
        except Exception:  # noqa: BLE001 - the calls that judge results report errors
            return None
        finally:
            self.after_call(function, state)

    def keeps_mode(self, function: Callable, *args: Any, gradients: bool = False) -> Any:
        """Call a function once on a model in training mode (:func:`training_copy`) only to see that it leaves the mode.

        A network that the check gave in eval mode shows a function that calls ``train()``; only one given in
        training mode shows a function that calls ``eval()`` and leaves it so. The model must be the first
        argument; what the call raises is not judged here (the other calls judge that).

        ``gradients``: also give the weights gradients of their own (``.grad``, as a training loop has them between
        its backward pass and its step) and see that the call leaves them as they were: no backward pass into them,
        no ``zero_grad()``.

        Returns:
            What the call returned (None if it raised), for a check that judges results on trainable weights.
        """
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        network = args[0].network
        before = [module.training for module in network.modules()]
        trainable = [parameter.requires_grad for parameter in network.parameters()]
        grad_enabled, working_directory = torch.is_grad_enabled(), os.getcwd()
        if gradients:
            for parameter in network.parameters():
                parameter.grad = torch.full_like(parameter, 0.5)
        returned = None
        try:
            returned = function(*args)
        except Exception:  # noqa: BLE001 - a failure is reported by the calls that judge results
            pass
        finally:
            torch.set_grad_enabled(grad_enabled)  # the calls that judge results report a change of it
            os.chdir(working_directory)
        if self.mode_kept(function, network, before) and any(
                then and not parameter.requires_grad for then, parameter in zip(trainable, network.parameters())):
            self.note_side_effect("requires_grad off", f"{shown_name(function)} switched off "
                                  "requires_grad of the network's weights (requires_grad_(False)) and left it: given a "
                                  "model whose weights train, it must leave them trainable, or the next training step "
                                  "updates nothing. Grad-CAM needs no change of the weights' flags: leave them alone.")
        if gradients:
            found = [parameter.grad for parameter in network.parameters()]
            if any(grad is None or not bool((grad == 0.5).all()) for grad in found):
                cleared = any(grad is None or not bool(grad.any()) for grad in found)
                self.note_side_effect("gradients", (
                    f"{shown_name(function)} "
                    + ("cleared the gradients stored in the network's weights (.grad): zero_grad() (or .grad = None). "
                       if cleared else "changed the gradients stored in the network's weights (.grad): a backward pass "
                       "adds to them (a Grad-CAM written by hand with .backward(): torch.autograd.grad(score, activation) gives the "
                       "gradient without storing any). ")
                    + "Given a model being trained, between its backward pass and its step, that changes the step. "
                    "Leave .grad alone: grad_cam does, and torch.autograd.grad computes gradients without storing them."))
        return returned

    def mode_kept(self, function: Callable, network: torch.nn.Module, before: Sequence[bool]) -> bool:
        """Whether a call left a network's modules in the modes ``before``; if not, note it and put them back."""
        after = [module.training for module in network.modules()]
        if after == list(before):
            return True
        self.note_side_effect("mode", _mode_message(shown_name(function), list(before), after))
        for module, flag in zip(network.modules(), before):
            module.training = flag
        return False

    def finish(self) -> CheckResult:
        """The result; a side effect found after the last check was judged fails the last check that passed.

        So does an error of a later call whose check passed on the earlier calls' results (a function that fails on
        its second call): a result with a problem recorded is never "correct".
        """
        changed = self._changed_result()
        if changed and not self._side_effect:
            self._side_effect = changed
        elif changed:
            self._problem(changed)
        if self._side_effect:
            if self.result.passed:
                self.result.passed.pop()
            self._problem(self._side_effect)
            self._side_effect = ""
        if self.result.problems and len(self.result.passed) == self.result.total:
            self.result.passed.pop()
        return self.result

    def skip(self, names: Sequence[str], reason: str) -> None:
        """Count checks that cannot run as failed, once, with the reason."""
        self._problem(reason + f" ({len(names)} check{'s' if len(names) > 1 else ''} skipped)")


_UNWATCHED = object()
#: Results larger than this (bytes of their arrays) are not kept: a copy of each would cost more than it tells.
_KEPT_BYTES = 16 * 2**20


def _result_copy(value: Any, depth: int = 0) -> Any:
    """A copy of a returned value to compare it with later: arrays, tensors, and the dicts, lists and tuples holding
    them; ``_UNWATCHED`` for anything else (or too large)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone() if value.numel() * value.element_size() <= _KEPT_BYTES else _UNWATCHED
    if isinstance(value, np.ndarray):
        return value.copy() if value.nbytes <= _KEPT_BYTES and value.dtype != object else _UNWATCHED
    if value is None or isinstance(value, (str, bytes, int, float, bool, np.generic)):
        return value
    if depth < 3 and isinstance(value, dict):
        copied = {key: _result_copy(item, depth + 1) for key, item in value.items()}
        return copied if not any(item is _UNWATCHED for item in copied.values()) else _UNWATCHED
    if depth < 3 and isinstance(value, (list, tuple)) and len(value) <= 1000:
        items = [_result_copy(item, depth + 1) for item in value]
        return items if not any(item is _UNWATCHED for item in items) else _UNWATCHED
    return _UNWATCHED


def _same_result(value: Any, copied: Any) -> bool:
    """Whether a returned value still equals the copy taken when it was returned (NaN equal to NaN)."""
    if isinstance(value, torch.Tensor):
        if not isinstance(copied, torch.Tensor) or value.shape != copied.shape or value.dtype != copied.dtype:
            return False
        now = value.detach()
        return bool(torch.equal(now, copied)) or (now.is_floating_point() and bool(
            ((now == copied) | (now.isnan() & copied.isnan())).all()))
    if isinstance(value, np.ndarray):
        return (isinstance(copied, np.ndarray) and value.shape == copied.shape and value.dtype == copied.dtype
                and bool(np.array_equal(value, copied, equal_nan=value.dtype.kind in "fc")))
    if isinstance(value, dict):
        return isinstance(copied, dict) and value.keys() == copied.keys() and all(
            _same_result(value[key], copied[key]) for key in value)
    if isinstance(value, (list, tuple)):
        return isinstance(copied, list) and len(value) == len(copied) and all(_same_result(a, b) for a, b in zip(value, copied))
    # A scalar (a dict's item may have been replaced): equal, or NaN then and now.
    return bool(value == copied or (value != value and copied != copied))


def as_tensor(value: Any) -> torch.Tensor | None:
    """A float CPU tensor from a tensor or numeric array, else ``None``."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu()
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
        return torch.from_numpy(np.asarray(value, dtype=np.float32))
    return None


def max_difference(first: torch.Tensor, second: torch.Tensor) -> float:
    """Largest absolute difference, infinity for different shapes."""
    if first.shape != second.shape:
        return float("inf")
    return float((first - second).abs().max()) if first.numel() else 0.0


# References depend only on the model; a student runs a check many times, and the
# tests run it on dozens of wrong answers, so each is computed once per network.
_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def cached(model: LoadedModel, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()``, remembered per network and key; in grading, shared between kernels (see :mod:`.reference_store`)."""
    # Per network, and within it per preprocessing and fields: a smaller-input copy shares the network.
    store = _CACHE.setdefault(model.network, {}).setdefault(reference_store.model_description(model), {})
    if key not in store:
        found, value = reference_store.load(model, key)
        if not found:
            value = compute()
            reference_store.save(model, key, value)
        store[key] = value
    return store[key]


def layer_gradients(
    model: LoadedModel,
    image: np.ndarray,
    layers: Sequence[str],
    scores: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    deep: Iterable[str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """Activations of some layers, and their gradients for several scalar scores of the logits.

    Args:
        model: the model.
        image: RGB uint8 image, preprocessed with ``model.preprocess``.
        layers: names of sub-modules of ``model.network``.
        scores: name -> function from the logits (1, classes) to a scalar.
        deep: the scores whose gradients are needed at every layer; the others get only the last layer's
            (a backward pass that stops there is much cheaper). ``None``: every score at every layer.

    Returns:
        (layer -> activation (C, h, w), score name -> layer -> gradient (C, h, w)).
    """
    modules = dict(model.network.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = [modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out)) for name in layers]
    deep = set(scores) if deep is None else set(deep)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # Frozen weights: a gradient-requiring input is what builds the graph through every layer.
            inputs = model.preprocess(image).unsqueeze(0).to(model.device).clone().requires_grad_(True)
            logits = model.network(inputs)
            gradients = {}
            for name, score in scores.items():
                wanted = list(layers) if name in deep else list(layers[-1:])
                found = torch.autograd.grad(score(logits), [outputs[layer] for layer in wanted], retain_graph=True)
                gradients[name] = {layer: gradient[0].detach().cpu() for layer, gradient in zip(wanted, found)}
    finally:
        for handle in handles:
            handle.remove()
    return {layer: outputs[layer][0].detach().cpu() for layer in layers}, gradients


def gradcam_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Grad-CAM before its ReLU, from one image's activation and gradient (C, h, w): each channel weighted by the
    mean of its gradient over the cells, summed over the channels."""
    return (gradient.mean(dim=(1, 2))[:, None, None] * activation).sum(dim=0)


def elementwise_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Gradient x activation summed over the channels (HiResCAM before its ReLU): each cell weighted by its own gradient."""
    return (gradient * activation).sum(dim=0)


def largest_gradient_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Each channel weighted by the largest value of its gradient: a student's slip, the mean where every cell has the
    same gradient (global average pooling), not on other heads."""
    return (gradient.amax(dim=(1, 2))[:, None, None] * activation).sum(dim=0)


def smaller_input(model: LoadedModel, short_side: int = 112) -> LoadedModel:
    """The same network fed smaller inputs: checks that run many CAMs stay fast, and nothing else changes for them."""
    return replace(model, preprocess=make_preprocess(model.mean, model.std, short_side))


def shown_name(function: Any, missing: str = "") -> str:
    """A function's name as a message gives it: its ``__name__`` if that is a plain identifier, else "your function"
    (a lambda, a functools.partial; ``missing``: the name to assume where there is no ``__name__`` at all)."""
    name = getattr(function, "__name__", missing)
    return name if name.isidentifier() else "your function"


def type_name(value: Any) -> str:
    """A value's type in a student's words: 'a NumPy array', 'None', 'a set'."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a NumPy array ({value.dtype})"
    if isinstance(value, torch.Tensor):
        return f"a tensor ({str(value.dtype).replace('torch.', '')})"
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


_WATCHED_KINDS = {torch.Tensor: "tensor", np.ndarray: "array", list: "list", dict: "dict", set: "set", bytearray: "bytearray"}


def _kind(value: Any) -> str:
    return next((kind for cls, kind in _WATCHED_KINDS.items() if isinstance(value, cls)), "")


def _short(value: Any, limit: int = 110) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _no_op_hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
    """A forward hook that does nothing: :meth:`Checker.before_call` sees whether a call removes it."""


def same_tensor_values(first: torch.Tensor, second: torch.Tensor) -> bool:
    """``torch.equal`` of two tensors of the same shape and dtype, in NumPy where it can.

    The snapshot compares each of a network's ~300 tensors after every call of a student's function: one
    ``torch.equal`` each wakes PyTorch's thread pool, which costs about 1 ms a tensor on a busy machine, 50 times
    NumPy's cost. Tensors NumPy cannot view (another device, bfloat16, a conjugate view) go to ``torch.equal``.
    """
    try:
        return bool(np.array_equal(first.detach().numpy(), second.detach().numpy()))
    except (RuntimeError, TypeError):
        return bool(torch.equal(first.detach(), second.detach()))


def _equal(first: Any, second: Any) -> bool:
    """Equal values, containers compared item by item (in order), tensors and arrays by shape, type and contents."""
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        return (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and first.shape == second.shape
                and first.dtype == second.dtype and bool(torch.equal(first.detach(), second.detach())))
    if isinstance(first, np.ndarray) or isinstance(second, np.ndarray):
        return (isinstance(first, np.ndarray) and isinstance(second, np.ndarray) and first.shape == second.shape
                and first.dtype == second.dtype and bool(np.array_equal(first, second, equal_nan=first.dtype.kind in "fc")))
    if type(first) is not type(second):
        return False
    if isinstance(first, dict):
        return list(first) == list(second) and all(_equal(first[key], second[key]) for key in first)
    if isinstance(first, (list, tuple)):
        return len(first) == len(second) and all(_equal(a, b) for a, b in zip(first, second))
    if isinstance(first, float) and first != first:
        return second != second  # NaN
    try:
        return bool(first == second)
    except Exception:  # noqa: BLE001 - values that cannot be compared count as changed
        return False


class Watched(NamedTuple):
    """An argument of a student's call, with a copy taken before the call.

    Attributes:
        position: its position among the arguments.
        value: the argument itself (the caller's object).
        before: a copy of it; for a tensor, (values, requires_grad, whether .grad was None).
        parameter: its name in the student's function, or "".
        described: what the messages call it ("the list of class names"), or "".
    """

    position: int
    value: Any
    before: Any
    parameter: str
    described: str

    def change(self) -> str:
        """What the call changed in the argument, in a few words; "" if nothing."""
        value, before = self.value, self.before
        if isinstance(value, torch.Tensor):
            values, requires_grad, no_grad = before
            if value.shape != values.shape or value.dtype != values.dtype:
                return f"its shape or type went from {tuple(values.shape)} {values.dtype} to {tuple(value.shape)} {value.dtype}"
            if value.requires_grad != requires_grad:
                return "requires_grad"
            if not torch.equal(value.detach(), values):
                return "its values"
            if no_grad and value.grad is not None:
                return "requires_grad"
            return ""
        if isinstance(value, np.ndarray):
            if value.shape != before.shape or value.dtype != before.dtype:
                return f"its shape or type went from {before.shape} {before.dtype} to {value.shape} {value.dtype}"
            return "" if np.array_equal(value, before, equal_nan=value.dtype.kind in "fc") else "its values"
        return "" if _equal(value, before) else f"{_short(before)} became {_short(value)}"

    def restore(self) -> None:
        """Put the caller's object back as it was, where it can be (in place)."""
        value, before = self.value, self.before
        try:
            if isinstance(value, torch.Tensor):
                values, requires_grad, no_grad = before
                if value.is_leaf:
                    value.requires_grad_(requires_grad)
                    if no_grad:
                        value.grad = None
                if value.shape == values.shape and value.dtype == values.dtype:
                    with torch.no_grad():
                        value.copy_(values)
            elif isinstance(value, np.ndarray):
                if value.shape == before.shape and value.dtype == before.dtype and value.flags.writeable:
                    value[...] = before
            elif isinstance(value, (list, bytearray)):
                value[:] = copy.deepcopy(before)
            elif isinstance(value, (dict, set)):
                value.clear()
                value.update(copy.deepcopy(before))
        except Exception:  # noqa: BLE001 - an object that cannot be put back is left as the call made it
            pass

    def message(self, function: str, change: str) -> str:
        """The message for a change: what changed, and what to do instead."""
        kind = _kind(self.value)
        named = self.parameter or "the argument"
        where = f"argument {self.position + 1}" + (f" ({self.parameter})" if self.parameter else "")
        what = self.described or f"the {kind}"
        if change == "requires_grad":
            return (f"{function} switched on requires_grad of {what} it was given as {where} (requires_grad_()), or stored a "
                    "gradient in it: the caller's tensor now builds an autograd graph in every later operation. Leave it as "
                    f"it was; a tensor of your own that needs gradients is {named}.detach().clone().requires_grad_().")
        copies = {"list": f"list({named})", "dict": f"dict({named})", "set": f"set({named})", "array": f"{named}.copy()",
                  "tensor": f"{named}.clone(); no in-place operation such as clamp_, relu_, /= or item assignment on it",
                  "bytearray": f"bytearray({named})"}
        return (f"{function} changed {what} it was given as {where}, in place ({change}): the caller's {kind} changes with "
                f"it, and its data is lost. Work on a copy ({copies.get(kind, 'copy.deepcopy')}) and leave the argument as "
                "it was.")


def _parameter_names(function: Callable) -> list[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def watched_inputs(args: Sequence[Any], function: Callable | None = None, described: Mapping[int, str] | None = None) -> list[Watched]:
    """The arguments of a call that it could change in place (tensors, arrays, lists, dicts, sets), with copies.

    Args:
        args: the call's arguments.
        function: the function called, for its parameters' names in the messages.
        described: argument position -> what the messages call it.
    """
    names = _parameter_names(function) if function is not None else []
    watched = []
    for position, value in enumerate(args):
        if not _kind(value):
            continue
        if isinstance(value, torch.Tensor):
            before: Any = (value.detach().clone(), value.requires_grad, value.grad is None)
        elif isinstance(value, np.ndarray):
            before = np.array(value, copy=True)
        else:
            try:
                before = copy.deepcopy(value)
            except Exception:  # noqa: BLE001 - an argument that cannot be copied is not watched
                continue
        name = names[position] if position < len(names) else ""
        watched.append(Watched(position, value, before, name, (described or {}).get(position, "")))
    return watched


def training_copy(model: LoadedModel) -> LoadedModel:
    """A private copy of a small model, in training mode with trainable weights: only for :meth:`Checker.keeps_mode`.

    Its network should have no batch norm or dropout, so that the mode changes nothing it computes.
    """
    return replace(model, network=copy.deepcopy(model.network).train().requires_grad_(True))


def _mode_message(name: str, before: list[bool], after: list[bool]) -> str:
    if any(now and not then for then, now in zip(before, after)):
        return (f"{name} left the network in training mode (model.network.train()): there batch-norm layers normalise with "
                "each batch's statistics and update their running statistics, so every later prediction changes. "
                "Gradients need no training mode: leave the mode as it is. The check put the network back in eval mode.")
    return (f"{name} switched the network to eval mode (model.network.eval()) and left it there: given a network in "
            "training mode, it must leave it in training mode. A function that explains a model leaves its mode as it "
            "found it: leave the mode alone, or put it back afterwards (was = model.network.training; ...; "
            "model.network.train(was)). The check put the network back in training mode.")


#: What runs a backward pass, wherever it was imported from: ``Tensor.backward``, ``torch.autograd.backward``
#: and ``torch.autograd.grad`` all go through torch.autograd's ``_engine_run_backward``; torch.func's transforms do not.
BACKWARD_CALLS: dict[str, tuple[Any, str]] = {
    "a backward pass (.backward() or torch.autograd.grad)": (torch.autograd, "_engine_run_backward"),
    "torch.func.grad": (torch.func, "grad"),
    "torch.func.grad_and_value": (torch.func, "grad_and_value"),
    "torch.func.vjp": (torch.func, "vjp"),
    "torch.func.jacrev": (torch.func, "jacrev"),
}


@contextlib.contextmanager
def recorded_calls(targets: Mapping[str, tuple[Any, str]]) -> Iterator[list[str]]:
    """Record calls of some functions while the block runs; they still do what they do.

    For a text that asks for something to be done without a ready-made function: the check wraps the
    function where everything looks it up (a class's method, a module's attribute), so the call is seen
    however the student imported it.

    Args:
        targets: label -> (object, attribute name) of each function to watch.

    Yields:
        The labels of the functions called, in order (one entry per call).
    """
    used: list[str] = []
    originals = []
    for label, (owner, attribute) in targets.items():
        own = attribute in vars(owner)
        original = vars(owner)[attribute] if own else getattr(owner, attribute)

        def wrapper(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
            used.append(_label)
            return _original(*args, **kwargs)

        originals.append((owner, attribute, original, own))
        setattr(owner, attribute, wrapper)
    try:
        yield used
    finally:
        for owner, attribute, original, own in reversed(originals):
            if own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)


_HOOK_KINDS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def hook_keys(network: torch.nn.Module) -> dict[tuple[int, str], set]:
    """The keys of every hook dict of every module: to find (and remove) the hooks a call leaves behind."""
    return {(index, kind): set(getattr(module, kind, {})) for index, module in enumerate(network.modules()) for kind in _HOOK_KINDS}


_HOOK_EXTRAS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


def _hook_contents(network: torch.nn.Module) -> list[dict[str, dict]]:
    """Per module, a copy of each hook dict (key -> hook) and of the dicts that flag some of them: to put removed hooks back."""
    return [{kind: dict(getattr(module, kind, {})) for kind in (*_HOOK_KINDS, *_HOOK_EXTRAS)} for module in network.modules()]


def remove_new_hooks(network: torch.nn.Module, before: dict[tuple[int, str], set]) -> int:
    """Remove the hooks added since ``before`` (from :func:`hook_keys`); returns how many there were."""
    removed = 0
    for index, module in enumerate(network.modules()):
        for kind in _HOOK_KINDS:
            hooks = getattr(module, kind, None)
            if hooks is None:
                continue
            for key in set(hooks) - before.get((index, kind), set()):
                del hooks[key]
                removed += 1
                for extra in _HOOK_EXTRAS:
                    getattr(module, extra, {}).pop(key, None)
    return removed


def _steps_text(preprocess: Any) -> str:
    return " ".join(repr(preprocess).split())


def _public_attributes(module: torch.nn.Module) -> dict[str, Any]:
    """A module's own public attributes other than ``training`` (settings such as stride or inplace, and anything a
    function leaves there)."""
    return {key: value for key, value in vars(module).items() if not key.startswith("_") and key != "training"}


def _same_value(now: Any, then: Any) -> bool:
    # A setting (a number, a name, a tuple of them) by value; anything else must be the very same object.
    if now is then:
        return True
    settings = (bool, int, float, str, type(None))
    if isinstance(then, tuple) and all(isinstance(v, settings) for v in then) or isinstance(then, settings):
        return type(now) is type(then) and now == then
    return False


def _changed_attributes(now: dict[str, Any], then: dict[str, Any]) -> list[str]:
    return sorted(set(now) ^ set(then)) + sorted(k for k in set(now) & set(then) if not _same_value(now[k], then[k]))


class Snapshot:
    """What a student's function may not change, and the means to put it back.

    For each network: its modules, parameters and buffers (batch-norm statistics included), each
    module's ``training`` flag and its other public attributes, each parameter's ``requires_grad`` and
    ``.grad``, and its hooks; for
    each model, ``model.preprocess`` (the object and its steps).

    Args:
        models: the models the student's functions can reach (the notebook's and the check's).
        hooks: also report hooks a call adds (an exercise that checks hooks itself passes False);
            hooks a call removes are always reported.
    """

    def __init__(self, models: Iterable[LoadedModel], hooks: bool = True) -> None:
        self.hooks = hooks
        # The networks the last changes() found exactly as saved (weights, flags, attributes, hooks): the restore()
        # right after it skips them (comparing reads every weight and module again, ~10 ms a call on the course's models).
        self._as_saved: set[int] = set()
        self.networks: list[dict[str, Any]] = []
        seen: set[int] = set()
        self.models = []
        for model in models:
            self.models.append((model, model.preprocess, _steps_text(model.preprocess), copy.deepcopy(vars(model.preprocess)) if hasattr(model.preprocess, "__dict__") else None))
            network = model.network
            if id(network) in seen:
                continue
            seen.add(id(network))
            self.networks.append({
                "network": network,
                "modules": [(name, id(module)) for name, module in network.named_modules()],
                "state": {name: value.detach().clone() for name, value in network.state_dict(keep_vars=True).items()},
                # The parameter objects themselves: a new nn.Parameter with the same values is a change too.
                "parameters": [(module_name, module, key, parameter) for module_name, module in network.named_modules()
                               for key, parameter in module._parameters.items()],
                "training": [module.training for module in network.modules()],
                "requires_grad": [parameter.requires_grad for parameter in network.parameters()],
                "grads": [parameter.grad is None for parameter in network.parameters()],
                "hooks": hook_keys(network),
                "hook contents": _hook_contents(network),
                "attributes": [_public_attributes(module) for module in network.modules()],
            })

    def changes(self, name: str, removed_sentinels: set[int] = frozenset()) -> list[tuple[str, str]]:
        """What differs from the snapshot: (cause, one message naming the function ``name``) for each change.

        Args:
            name: the function's name, for the messages.
            removed_sentinels: ids of the networks whose sentinel hook (:meth:`Checker.before_call`) the call removed.
        """
        found = []
        self._as_saved = set()
        for saved in self.networks:
            network = saved["network"]
            before = len(found)
            if [(n, id(m)) for n, m in network.named_modules()] != saved["modules"]:
                found.append(("modules", f"{name} replaced or added modules of model.network: the network is shared by every cell; "
                             "leave its layers as they are. The check cannot undo this: restart the kernel and run the "
                             "notebook again from the top."))
                continue
            training = [m.training for m in network.modules()]
            if training != saved["training"]:
                found.append(("training", _mode_message(name, saved["training"], training)))
            replaced = [f"{module_name}.{key}".lstrip(".") for module_name, module, key, parameter in saved["parameters"]
                        if module._parameters.get(key) is not parameter]
            if replaced:
                found.append(("parameters", f"{name} replaced the network's parameters ({replaced[0]}{', ...' if len(replaced) > 1 else ''}) "
                              "by new objects (model.network.fc.weight = nn.Parameter(...) or the like): the network is shared "
                              "by every cell, and whatever holds the old parameters (an optimiser, a variable of the notebook) "
                              "no longer sees the network's weights. Read the weights, never assign them: a function that "
                              "explains a model must leave it as it was. The check put the originals back."))
            state = network.state_dict(keep_vars=True)
            retyped = [key for key, value in saved["state"].items() if key in state and state[key].dtype != value.dtype]
            if retyped:
                found.append(("dtype", f"{name} changed the dtype of the network's weights ({retyped[0]}: "
                              f"{str(saved['state'][retyped[0]].dtype).replace('torch.', '')} to "
                              f"{str(state[retyped[0]].dtype).replace('torch.', '')}; model.network.double(), .half() or "
                              ".to(dtype)) and left it so: every later forward pass of the notebook, on float32 inputs, "
                              "fails or runs in another precision. Leave the network's dtype alone. The check cast it back."))
            changed = [key for key, value in saved["state"].items() if key not in retyped and (
                       key not in state or state[key].shape != value.shape or not same_tensor_values(state[key], value))]
            if changed:
                statistics = [key for key in changed if key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
                what = ("the batch-norm statistics (" + statistics[0] + (", ..." if len(changed) > 1 else "") + "), as a forward "
                        "pass in training mode does") if statistics else f"the network's weights ({changed[0]}{', ...' if len(changed) > 1 else ''})"
                found.append(("state", f"{name} changed {what}: a function that explains a model must leave it as it was. "
                              "The check restored them."))
            changed_attributes = [(f"model.network{'.' if n else ''}{n}", _changed_attributes(_public_attributes(m), then))
                                  for (n, m), then in zip(network.named_modules(), saved["attributes"])]
            changed_attributes = [(where, what) for where, what in changed_attributes if what]
            if changed_attributes:
                where, what = changed_attributes[0]
                found.append(("attributes", f"{name} set attributes on the network ({where}.{what[0]}): it is shared by every "
                              "cell, so what a call leaves there (maps, a cache, a changed setting) stays for every later "
                              "cell and call. Keep what your function computes in its own variables and return it. The "
                              "check removed it."))
            if [p.requires_grad for p in network.parameters()] != saved["requires_grad"]:
                found.append(("requires_grad", f"{name} switched on requires_grad on the network's weights: Grad-CAM needs the gradient of "
                             "the activations, not of the weights; leave the weights frozen. The check froze them again."))
            keys = hook_keys(network)
            added = sum(len(now - saved["hooks"].get(key, set())) for key, now in keys.items())
            removed = sum(len(then - keys.get(key, set())) for key, then in saved["hooks"].items())
            if removed or id(network) in removed_sentinels:
                found.append(("hooks removed", f"{name} removed hooks that were on the network before the call (the check puts one "
                             "there to see this; remove_all_hooks or clearing _forward_hooks does it): they belong to whoever "
                             "registered them, whose recording stops working. Remove only the hooks your function registers "
                             "(handle.remove(), or LayerRecorder in a with block). The check put them back."))
            if self.hooks and added:
                found.append(("hooks", f"{name} left {added} hook{'s' if added != 1 else ''} on the network after a call: remove each "
                             "hook after the forward pass (handle.remove()), or record with LayerRecorder in a with block. "
                             f"The check removed {'them' if added != 1 else 'it'}."))
            if (len(found) == before and not added and not removed and state.keys() == saved["state"].keys()
                    and [parameter.grad is None for parameter in network.parameters()] == saved["grads"]):
                self._as_saved.add(id(network))
        for model, preprocess, text, _ in self.models:
            if model.preprocess is not preprocess or _steps_text(model.preprocess) != text:
                found.append(("preprocess", f"{name} changed model.preprocess (its steps): every cell shares that pipeline, so every "
                             "later prediction changes. Build a new pipeline from a copy of the steps, "
                             "list(model.preprocess.transforms), and leave model.preprocess as it is. The check restored it."))
                break
        return found

    def restore(self) -> None:
        """Put everything in the snapshot back as it was."""
        for saved in self.networks:
            network = saved["network"]
            if id(network) in self._as_saved:
                continue  # found exactly as saved by the changes() just before
            if [(n, id(m)) for n, m in network.named_modules()] == saved["modules"]:
                for _module_name, module, key, parameter in saved["parameters"]:
                    if module._parameters.get(key) is not parameter:
                        module._parameters[key] = parameter
                for module, flag in zip(network.modules(), saved["training"]):
                    module.training = flag
                state = network.state_dict(keep_vars=True)
                with torch.no_grad():
                    for key, value in saved["state"].items():
                        if key in state and state[key].dtype != value.dtype:
                            state[key].data = value.clone()  # a .double() or .half() of the network, undone
                        elif key in state and state[key].shape == value.shape and not same_tensor_values(state[key], value):
                            state[key].copy_(value)
                for module, then in zip(network.modules(), saved["attributes"]):
                    now = _public_attributes(module)
                    for key in _changed_attributes(now, then):
                        if key in then:
                            setattr(module, key, then[key])
                        else:
                            delattr(module, key)
                for parameter, flag, no_grad in zip(network.parameters(), saved["requires_grad"], saved["grads"]):
                    parameter.requires_grad_(flag)
                    if no_grad:
                        parameter.grad = None
                # Hooks the call removed come back; hooks it added go (those an exercise checks itself are gone by now).
                for module, contents in zip(network.modules(), saved["hook contents"]):
                    for kind, hooks in contents.items():
                        current = getattr(module, kind, None)
                        if current is not None:
                            for key, hook in hooks.items():
                                if key not in current:
                                    current[key] = hook
            remove_new_hooks(network, saved["hooks"])
        self._as_saved = set()
        for model, preprocess, text, attributes in self.models:
            if model.preprocess is not preprocess:
                object.__setattr__(model, "preprocess", preprocess)  # LoadedModel is frozen; a student may have forced it
            if _steps_text(preprocess) != text and attributes is not None:
                vars(preprocess).clear()
                vars(preprocess).update(copy.deepcopy(attributes))
