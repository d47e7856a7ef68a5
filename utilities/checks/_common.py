"""What every exercise's checks share: the result, the checker, cached references, student errors in plain words."""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..models import LoadedModel, make_preprocess

__all__ = [
    "STAGES",
    "CheckResult",
    "Checker",
    "Snapshot",
    "as_tensor",
    "cached",
    "describe_error",
    "layer_gradients",
    "max_difference",
    "hook_keys",
    "remove_new_hooks",
    "smaller_input",
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
        "does not require grad",
        "the logits have no gradient: run the forward pass outside torch.no_grad() / torch.inference_mode(), "
        "inside LayerRecorder",
    ),
    ("Inference tensors cannot be saved for backward", "the forward pass ran under torch.inference_mode(): run it with gradients on"),
    (
        "boolean index did not match",
        "a mask and a map have different sizes: use the mask you were given, with maps of the image's size",
    ),
)


def describe_error(function: Callable, error: BaseException) -> str:
    """A short message for an error a student's function raised: the cause when known, never a long traceback."""
    name = getattr(function, "__name__", "your function")
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(text) > 160:
        text = text[:157] + "..."
    for fragment, hint in _ERROR_HINTS:
        if fragment in str(error):
            return f"{name} raised {type(error).__name__}: {hint}."
    return f"{name} raised {type(error).__name__}: {text}" if text else f"{name} raised {type(error).__name__}."


class Checker:
    """Collects check outcomes for one exercise.

    Args:
        exercise: the exercise's letter.
        total: the number of checks.
        catch_not_implemented: count an unfinished function as a failed check (grading)
            instead of letting its ``NotImplementedError`` through (the notebook shows the hint).
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

    def require(self, name: str, condition: bool, problem: str) -> bool:
        """Pass check ``name`` if ``condition`` holds, else record ``problem``.

        A side effect found by an earlier call (a changed model, an edited input) fails the next check
        judged, once, with its message: the check relied on that call. The return value is still
        ``condition``, so that the later checks run as they would have.

        Returns:
            ``condition``.
        """
        if self._side_effect and condition:
            self.result.problems.append(self._side_effect)
            self._side_effect = ""
            return condition
        if condition:
            self.result.passed.append(name)
        else:
            self.result.problems.append(problem)
        return condition

    def note_side_effect(self, cause: str, message: str) -> None:
        """A change found before any call (left by an earlier cell): it costs the next check that passes, like one found after a call.

        Args:
            cause: what changed (:meth:`Snapshot.changes`' keys): each cause is reported once.
            message: what to say.
        """
        if cause not in self._reported:
            self._reported.add(cause)
            self._side_effect = self._side_effect or message

    def watch_after(self, function: Callable, inputs: list[tuple[int, Any, Any]]) -> None:
        """Compare the model and the inputs with their state before the call; restore them; remember the first change."""
        name = getattr(function, "__name__", "")
        name = name if name.isidentifier() else "your function"
        changes = [(cause, message + " (The check put it back.)") for cause, message in self.snapshot.changes(name)]
        self.snapshot.restore()
        for position, given, before in inputs:
            if not _same_value(given, before):
                kind = "tensor" if isinstance(given, torch.Tensor) else "array"
                changes.append((f"argument {position + 1}", f"{name} changed the {kind} it was given as argument {position + 1}, "
                                "in place: the caller's data is lost. Compute new values and leave the argument as it was "
                                "(no in-place operation such as clamp_, /=, or item assignment on it)."))
        for cause, message in changes:
            self.note_side_effect(cause, message)

    def call(
        self, function: Callable, *args: Any, explain: Callable[[BaseException], str | None] | None = None, watch_inputs: bool = True
    ) -> tuple[bool, Any]:
        """Call a student's function; an error is recorded as a problem (the caller skips the checks that needed it).

        Args:
            function: the student's function.
            *args: its arguments.
            explain: optional exercise-specific message for an error (``None`` falls back to the generic one).
            watch_inputs: report an array or tensor argument the call changed (off where a check of its own does).

        Returns:
            (whether it returned, what it returned).
        """
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        inputs = watched_inputs(args) if watch_inputs else []
        try:
            return True, function(*args)
        except NotImplementedError as error:
            if not self.catch_not_implemented:
                self.snapshot.restore()
                raise
            self.result.problems.append(f"{getattr(function, '__name__', 'a function')} is not implemented yet ({error}).")
        except Exception as error:  # noqa: BLE001 - any student error is reported, not raised
            self.result.problems.append((explain(error) if explain else None) or describe_error(function, error))
        finally:
            self.watch_after(function, inputs)
        return False, None

    def finish(self) -> CheckResult:
        """The result; a side effect found after the last check was judged fails the last check that passed."""
        if self._side_effect:
            if self.result.passed:
                self.result.passed.pop()
            self.result.problems.append(self._side_effect)
            self._side_effect = ""
        return self.result

    def skip(self, names: Sequence[str], reason: str) -> None:
        """Count checks that cannot run as failed, once, with the reason."""
        self.result.problems.append(reason + f" ({len(names)} check{'s' if len(names) > 1 else ''} skipped)")


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
    """``compute()``, remembered per network and key."""
    store = _CACHE.setdefault(model.network, {})
    if key not in store:
        store[key] = compute()
    return store[key]


def layer_gradients(
    model: LoadedModel, image: np.ndarray, layers: Sequence[str], scores: Mapping[str, Callable[[torch.Tensor], torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """Activations of some layers, and their gradients for several scalar scores of the logits.

    Args:
        model: the model.
        image: RGB uint8 image, preprocessed with ``model.preprocess``.
        layers: names of sub-modules of ``model.network``.
        scores: name -> function from the logits (1, classes) to a scalar.

    Returns:
        (layer -> activation (C, h, w), score name -> layer -> gradient (C, h, w)).
    """
    modules = dict(model.network.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = [modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out)) for name in layers]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # Frozen weights: a gradient-requiring input is what builds the graph through every layer.
            inputs = model.preprocess(image).unsqueeze(0).to(model.device).clone().requires_grad_(True)
            logits = model.network(inputs)
            gradients = {}
            for name, score in scores.items():
                found = torch.autograd.grad(score(logits), [outputs[layer] for layer in layers], retain_graph=True)
                gradients[name] = {layer: gradient[0].detach().cpu() for layer, gradient in zip(layers, found)}
    finally:
        for handle in handles:
            handle.remove()
    return {layer: outputs[layer][0].detach().cpu() for layer in layers}, gradients


def smaller_input(model: LoadedModel, short_side: int = 112) -> LoadedModel:
    """The same network fed smaller inputs: checks that run many CAMs stay fast, and nothing else changes for them."""
    return replace(model, preprocess=make_preprocess(model.mean, model.std, short_side))


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


def watched_inputs(args: Sequence[Any]) -> list[tuple[int, Any, Any]]:
    """(position, argument, copy) of the array and tensor arguments of a call, for :meth:`Checker.watch_after`."""
    return [(position, value, _copy_value(value)) for position, value in enumerate(args) if isinstance(value, (np.ndarray, torch.Tensor))]


def _copy_value(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else np.array(value, copy=True)


def _same_value(value: Any, before: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.shape == before.shape and value.dtype == before.dtype and bool(torch.equal(value.detach(), before))
    return value.shape == before.shape and value.dtype == before.dtype and bool(np.array_equal(value, before, equal_nan=True))


_HOOK_KINDS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def hook_keys(network: torch.nn.Module) -> dict[tuple[int, str], set]:
    """The keys of every hook dict of every module: to find (and remove) the hooks a call leaves behind."""
    return {(index, kind): set(getattr(module, kind, {})) for index, module in enumerate(network.modules()) for kind in _HOOK_KINDS}


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
                for extra in ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs"):
                    getattr(module, extra, {}).pop(key, None)
    return removed


def _steps_text(preprocess: Any) -> str:
    return " ".join(repr(preprocess).split())


class Snapshot:
    """What a student's function may not change, and the means to put it back.

    For each network: its modules, parameters and buffers (batch-norm statistics included), each
    module's ``training`` flag, each parameter's ``requires_grad`` and ``.grad``, and its hooks; for
    each model, ``model.preprocess`` (the object and its steps).

    Args:
        models: the models the student's functions can reach (the notebook's and the check's).
        hooks: also watch hooks (an exercise that checks hooks itself passes False).
    """

    def __init__(self, models: Iterable[LoadedModel], hooks: bool = True) -> None:
        self.hooks = hooks
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
                "training": [module.training for module in network.modules()],
                "requires_grad": [parameter.requires_grad for parameter in network.parameters()],
                "grads": [parameter.grad is None for parameter in network.parameters()],
                "hooks": hook_keys(network),
            })

    def changes(self, name: str) -> list[tuple[str, str]]:
        """What differs from the snapshot: (cause, one sentence naming the function ``name``) for each change."""
        found = []
        for saved in self.networks:
            network = saved["network"]
            if [(n, id(m)) for n, m in network.named_modules()] != saved["modules"]:
                found.append(("modules", f"{name} replaced or added modules of model.network: the network is shared by every cell; "
                             "leave its layers as they are."))
                continue
            if [m.training for m in network.modules()] != saved["training"]:
                found.append(("training", f"{name} left the network in training mode (model.network.train()): there batch-norm layers "
                             "normalise with each batch's statistics and update their running statistics, so every later "
                             "prediction changes. Gradients need no training mode: leave the model in eval mode."))
            state = network.state_dict(keep_vars=True)
            changed = [key for key, value in saved["state"].items()
                       if key not in state or state[key].shape != value.shape or not torch.equal(state[key].detach(), value)]
            if changed:
                statistics = [key for key in changed if key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
                what = ("the batch-norm statistics (" + statistics[0] + (", ..." if len(changed) > 1 else "") + "), as a forward "
                        "pass in training mode does") if statistics else f"the network's weights ({changed[0]}{', ...' if len(changed) > 1 else ''})"
                found.append(("state", f"{name} changed {what}: a function that explains a model must leave it as it was."))
            if [p.requires_grad for p in network.parameters()] != saved["requires_grad"]:
                found.append(("requires_grad", f"{name} switched on requires_grad on the network's weights: Grad-CAM needs the gradient of "
                             "the activations, not of the weights; leave the weights frozen."))
            if self.hooks and hook_keys(network) != saved["hooks"]:
                added = sum(len(keys - saved["hooks"].get(key, set())) for key, keys in hook_keys(network).items())
                found.append(("hooks", f"{name} left {added} hook{'s' if added != 1 else ''} on the network after a call: remove each "
                             "hook after the forward pass (handle.remove()), or record with LayerRecorder in a with block."))
        for model, preprocess, text, _ in self.models:
            if model.preprocess is not preprocess or _steps_text(model.preprocess) != text:
                found.append(("preprocess", f"{name} changed model.preprocess (its steps): every cell shares that pipeline, so every "
                             "later prediction changes. Build a new pipeline from a copy of the steps, "
                             "list(model.preprocess.transforms), and leave model.preprocess as it is."))
                break
        return found

    def restore(self) -> None:
        """Put everything in the snapshot back as it was."""
        for saved in self.networks:
            network = saved["network"]
            if [(n, id(m)) for n, m in network.named_modules()] == saved["modules"]:
                for module, flag in zip(network.modules(), saved["training"]):
                    module.training = flag
                state = network.state_dict(keep_vars=True)
                with torch.no_grad():
                    for key, value in saved["state"].items():
                        if key in state and state[key].shape == value.shape and not torch.equal(state[key].detach(), value):
                            state[key].copy_(value)
                for parameter, flag, no_grad in zip(network.parameters(), saved["requires_grad"], saved["grads"]):
                    parameter.requires_grad_(flag)
                    if no_grad:
                        parameter.grad = None
            if self.hooks:
                remove_new_hooks(network, saved["hooks"])
        for model, preprocess, text, attributes in self.models:
            if model.preprocess is not preprocess:
                object.__setattr__(model, "preprocess", preprocess)  # LoadedModel is frozen; a student may have forced it
            if _steps_text(preprocess) != text and attributes is not None:
                vars(preprocess).clear()
                vars(preprocess).update(copy.deepcopy(attributes))
