"""Recording what layers compute (activations) and receive (gradients).

:class:`LayerRecorder` is the context-manager form of the bare forward hook
taught in notebook 2. Gradients are captured with ``Tensor.register_hook`` on
each recorded output, not with full backward hooks on modules, so an in-place
ReLU right after a recorded module does not break it.
"""

from __future__ import annotations

import difflib
from functools import partial
from typing import Iterable, Mapping, Union

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["LayerRecorder", "NotRecordedError", "count_hooks", "remove_all_hooks", "resolve_layers"]

LayerSpec = Union[str, nn.Module]


class NotRecordedError(KeyError):
    """A layer's activation or gradient was asked for but never recorded."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


def resolve_layers(
    network: nn.Module,
    layers: LayerSpec | Iterable[LayerSpec] | Mapping[str, nn.Module],
    hint: str | None = None,
) -> dict[str, nn.Module]:
    """Name -> module for each requested layer.

    Args:
        network: the model that contains the layers.
        layers: a dotted module name (``"layer4"``, ``"layer4.2.conv3"``), a
            module of ``network``, a list of those, or a ready name -> module map.
        hint: what to suggest for a name the network does not have, instead
            of listing its top-level layers (names spelt alike are suggested either way).

    Returns:
        The layers by name, in the order given.

    Raises:
        ValueError: a name that is not a submodule (the message lists close
            names) or a module that is not part of ``network``.
    """
    if isinstance(layers, Mapping):
        return dict(layers)
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    names_by_module = {module: name for name, module in network.named_modules()}
    resolved: dict[str, nn.Module] = {}
    for layer in layers:
        if isinstance(layer, nn.Module):
            if layer not in names_by_module:
                raise ValueError(f"The {type(layer).__name__} module given is not part of this network.")
            resolved[names_by_module[layer] or type(layer).__name__] = layer
            continue
        if not isinstance(layer, str):
            raise TypeError(f"A layer is given by its name (str) or as a module, not {type(layer).__name__}.")
        try:
            resolved[layer] = network.get_submodule(layer)
        except AttributeError:
            names = [name for name in names_by_module.values() if name]
            # A high cutoff: "layer5" finds "layer4", but "layer4" must not find "classifier".
            close = difflib.get_close_matches(layer, names, n=5, cutoff=0.75)
            close.sort(key=lambda name: name.count("."))  # stages before their blocks; stable otherwise
            top_level = [name for name, _ in network.named_children()]
            parts = [f"Did you mean {', '.join(map(repr, close))}?"] if close else []
            parts.append(hint if hint is not None else f"Top-level layers: {', '.join(top_level)}.")
            raise ValueError(f"{type(network).__name__} has no layer {layer!r}. {' '.join(parts)}") from None
    return resolved


class LayerRecorder:
    """Context manager that records the outputs of some layers and their gradients.

    Inside ``with``, a forward pass stores each layer's output in
    :attr:`activations`; a later backward pass stores the gradient of the
    backpropagated score with respect to that output in :attr:`gradients`.
    The module hooks are removed when the block ends, also after an
    exception, and entering again first removes the previous ones, so hooks
    never pile up.

    The networks of :func:`utilities.load_model` have frozen parameters, so
    autograd would build no graph at all. The recorder therefore makes the
    first recorded output require gradients: the graph starts there, and the
    layers before it run as cheaply as in inference.

    Example::

        with LayerRecorder(model.network, ["layer3", "layer4"]) as recorder:
            logits = model.network(inputs)
        logits[0, 285].backward()
        recorder.activations["layer4"].shape, recorder.gradients["layer4"].shape

    Args:
        network: the model.
        layers: which layers, see :func:`resolve_layers`.
        record_gradients: capture gradients in a backward pass with tensor hooks;
            turn off when calling ``torch.autograd.grad`` on :attr:`outputs` directly.

    Attributes:
        activations: name -> detached copy of the layer's output, (N, C, H, W).
        gradients: name -> gradient of the last backward pass with respect to that output.
        outputs: name -> the output itself, still part of the autograd graph
            (for ``torch.autograd.grad``). The network goes on with a copy, so
            an in-place operation after the layer does not change what
            gradients with respect to it mean.
    """

    def __init__(
        self,
        network: nn.Module,
        layers: LayerSpec | Iterable[LayerSpec] | Mapping[str, nn.Module],
        record_gradients: bool = True,
    ) -> None:
        self.network = network
        self.layers = resolve_layers(network, layers)
        self.record_gradients = record_gradients
        self._handles: list[RemovableHandle] = []
        self.activations: dict[str, torch.Tensor] = _RecordedTensors("activation")
        self.gradients: dict[str, torch.Tensor] = _RecordedTensors("gradient")
        self.outputs: dict[str, torch.Tensor] = _RecordedTensors("output")

    def __enter__(self) -> "LayerRecorder":
        self.remove()
        self.clear()
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_hook(partial(self._record_output, name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove this recorder's module hooks (safe to call twice)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        """Forget all recorded tensors."""
        self.activations.clear()
        self.gradients.clear()
        self.outputs.clear()

    @property
    def active(self) -> bool:
        """Whether the module hooks are in place."""
        return bool(self._handles)

    def _record_output(self, name: str, module: nn.Module, inputs: tuple, output: object) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"Layer {name!r} returned a {type(output).__name__}; only layers that return a single tensor can be recorded."
            )
        # A copy: an in-place operation after this layer must not change what we recorded.
        self.activations[name] = output.detach().clone()
        if not torch.is_grad_enabled() or not output.is_floating_point():
            return None
        # Nothing before this layer needs a gradient (frozen weights): start the graph here.
        recorded = output if output.requires_grad else output.detach().requires_grad_(True)
        if self.record_gradients:
            # The hook must not refer to the recorder: recorder -> outputs -> graph ->
            # hook -> recorder would be a cycle through autograd's C++ nodes, which
            # Python's garbage collector cannot see, so every forward would leak.
            recorded.register_hook(partial(_store_gradient, self.gradients, name))
        self.outputs[name] = recorded
        # The network goes on with a copy. An in-place operation later (DenseNet's
        # F.relu(..., inplace=True), `x += y`) then changes the copy, so autograd's
        # gradient with respect to `recorded` stays the gradient with respect to this
        # layer's output, not with respect to what the in-place operation made of it.
        return recorded.clone()

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"LayerRecorder({', '.join(self.layers)}; {state})"


def _store_gradient(gradients: dict[str, torch.Tensor], name: str, gradient: torch.Tensor) -> None:
    gradients[name] = gradient.detach()


class _RecordedTensors(dict):
    """A dict whose missing keys explain what to do."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def __missing__(self, name: str) -> torch.Tensor:
        if self.kind == "gradient":
            hint = (
                "Compute a score inside the recorder's `with` block with gradients on (not under torch.no_grad() "
                "or torch.inference_mode()), then call score.backward()."
            )
        else:
            hint = "Run a forward pass of the network inside the recorder's `with` block first."
        recorded = ", ".join(map(repr, self)) or "nothing yet"
        raise NotRecordedError(f"No {self.kind} recorded for layer {name!r} (recorded: {recorded}). {hint}")


def count_hooks(network: nn.Module) -> int:
    """Number of forward, forward-pre and backward hooks on a module and all its submodules."""
    return sum(
        len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
        + len(getattr(module, "_backward_pre_hooks", {}))
        for module in network.modules()
    )


def remove_all_hooks(network: nn.Module) -> int:
    """Remove every module hook from a network, e.g. after experimenting with bare hooks.

    Returns:
        How many hooks were removed.
    """
    removed = count_hooks(network)
    for module in network.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        module._backward_hooks.clear()
        getattr(module, "_backward_pre_hooks", {}).clear()
    return removed
