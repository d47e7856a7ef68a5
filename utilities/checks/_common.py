"""What every exercise's checks share: the result, the checker, cached references, student errors in plain words."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..models import LoadedModel, make_preprocess

__all__ = [
    "STAGES",
    "CheckResult",
    "Checker",
    "as_tensor",
    "cached",
    "describe_error",
    "layer_gradients",
    "max_difference",
    "smaller_input",
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

    def __init__(self, exercise: str, total: int, catch_not_implemented: bool) -> None:
        self.result = CheckResult(exercise, total)
        self.catch_not_implemented = catch_not_implemented

    def require(self, name: str, condition: bool, problem: str) -> bool:
        """Pass check ``name`` if ``condition`` holds, else record ``problem``."""
        if condition:
            self.result.passed.append(name)
        else:
            self.result.problems.append(problem)
        return condition

    def call(self, function: Callable, *args: Any, explain: Callable[[BaseException], str | None] | None = None) -> tuple[bool, Any]:
        """Call a student's function; an error is recorded as a problem (the caller skips the checks that needed it).

        Args:
            function: the student's function.
            *args: its arguments.
            explain: optional exercise-specific message for an error (``None`` falls back to the generic one).

        Returns:
            (whether it returned, what it returned).
        """
        try:
            return True, function(*args)
        except NotImplementedError as error:
            if not self.catch_not_implemented:
                raise
            self.result.problems.append(f"{getattr(function, '__name__', 'a function')} is not implemented yet ({error}).")
        except Exception as error:  # noqa: BLE001 - any student error is reported, not raised
            self.result.problems.append((explain(error) if explain else None) or describe_error(function, error))
        return False, None

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
