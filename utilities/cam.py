"""Class activation maps from one forward pass, for one or many classes.

CAM methods differ only in how they turn a layer's activations A (C, h, w)
and the gradients G (K, C, h, w) of K class scores into K maps. The shared
work (forward pass, recording, batched gradients, upsampling, normalising)
lives in :class:`CAMMethod`; a method is a subclass with one
:meth:`~CAMMethod.combine` method, like :class:`GradCAM`. The methods that
need no gradients (Score-CAM, Eigen-CAM) implement
:meth:`~CAMMethod.maps_without_gradients` instead.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .classes import IMAGENET_CLASS_NAMES, class_index
from .hooks import LayerRecorder, LayerSpec, resolve_layers
from .images import ImageLike, load_image
from .models import LoadedModel

__all__ = [
    "CamResult",
    "CAMMethod",
    "GradCAM",
    "grad_cam",
    "normalize_cams",
    "upsample_cams",
]

Target = Union[int, str]

#: Largest gradient batch, in bytes, that one backward pass may produce.
GRADIENT_CHUNK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class CamResult:
    """Class activation maps of one image for K classes.

    Attributes:
        raw: (K, h, w) maps at the layer's resolution, after the ReLU, not normalised.
        class_indices: the K class indices.
        class_names: the K class names.
        scores: (K,) the classes' logits.
        probabilities: (K,) the classes' softmax probabilities.
        layer: name of the layer the maps come from.
        method: name of the CAM method.
        image_size: (H, W) that :attr:`maps` are upsampled to.
    """

    raw: torch.Tensor
    class_indices: list[int]
    class_names: list[str]
    scores: torch.Tensor
    probabilities: torch.Tensor
    layer: str
    method: str
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.class_indices)

    @cached_property
    def maps(self) -> torch.Tensor:
        """(K, H, W) maps upsampled to :attr:`image_size` and normalised to [0, 1].

        Computed on first use: for all 1000 classes this is far more work (and
        memory) than the CAMs themselves; :meth:`map_for` upsamples just one.
        """
        return normalize_cams(upsample_cams(self.raw, self.image_size))

    def select(self, positions: Sequence[int] | torch.Tensor) -> "CamResult":
        """A result holding only some of the classes, by position in this result.

        Example: the 10 most probable of all 1000 classes::

            everything = grad_cam(model, image, range(1000))
            best = everything.select(everything.probabilities.topk(10).indices)
        """
        positions = [int(p) for p in positions]
        return CamResult(
            raw=self.raw[positions],
            class_indices=[self.class_indices[p] for p in positions],
            class_names=[self.class_names[p] for p in positions],
            scores=self.scores[positions],
            probabilities=self.probabilities[positions],
            layer=self.layer,
            method=self.method,
            image_size=self.image_size,
        )

    def map_for(self, target: Target, class_names: Sequence[str] = IMAGENET_CLASS_NAMES) -> torch.Tensor:
        """The (H, W) upsampled, normalised map of one class, given by name or class index."""
        index = class_index(target, class_names)
        if index not in self.class_indices:
            shown = ", ".join(self.class_names[:10]) + (", ..." if len(self) > 10 else "")
            raise KeyError(f"No map for class {target!r}; this result holds {shown}.")
        position = self.class_indices.index(index)
        if "maps" in self.__dict__:
            return self.maps[position]
        return normalize_cams(upsample_cams(self.raw[position : position + 1], self.image_size))[0]


def normalize_cams(cams: torch.Tensor) -> torch.Tensor:
    """Scale each map (the last two dimensions) to [0, 1] by its own minimum and maximum.

    A constant map has no range to scale: an all-zero map stays zero, and a
    constant positive map becomes all ones. The result is never NaN.

    Args:
        cams: (..., H, W) maps.

    Returns:
        Maps of the same shape in [0, 1].
    """
    flat = cams.flatten(-2)
    low = flat.amin(dim=-1, keepdim=True).unsqueeze(-1)
    high = flat.amax(dim=-1, keepdim=True).unsqueeze(-1)
    spread = high - low
    scaled = (cams - low) / torch.where(spread > 0, spread, torch.ones_like(spread))
    return torch.where(spread > 0, scaled, (high > 0).to(cams.dtype).expand_as(cams))


def upsample_cams(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of (K, h, w) maps to (K, H, W), pixel centres aligned (``align_corners=False``)."""
    return F.interpolate(cams.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False).squeeze(1)


@contextlib.contextmanager
def _evaluated_frozen(network: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration, restored afterwards.

    Frozen parameters keep autograd from building a graph before the recorded
    layer, which is what makes one CAM cost about one inference forward.
    """
    # Touch only what needs changing: the models of load_model are already
    # frozen and in eval mode. This runs on every call, so the walk is kept plain.
    training, trainable = [], []
    stack = [network]
    while stack:  # one plain walk; modules() and parameters() would each walk with names and a memo
        module = stack.pop()
        if module.training:
            training.append(module)
        trainable.extend(p for p in module._parameters.values() if p is not None and p.requires_grad)
        stack.extend(child for child in module._modules.values() if child is not None)
    for module in training:
        module.training = False
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
        for module in training:
            module.training = True


class CAMMethod:
    """Shared machinery of CAM methods: one base, one small subclass per method.

    Gradient methods implement :meth:`combine`; gradient-free ones set
    ``uses_gradients = False`` and implement :meth:`maps_without_gradients`.
    Calling an instance runs one forward
    pass with the layer recorded, then backpropagates the scores of all
    requested classes as batches of one-hot vectors (``is_grads_batched``), in
    chunks whose gradients take at most :data:`GRADIENT_CHUNK_BYTES`, so memory
    stays bounded however many classes are asked for.

    Args:
        model: a :class:`~utilities.models.LoadedModel`, or a bare ``nn.Module``
            with ImageNet class names assumed.
        layer: the layer to explain, by name (``"layer4"``) or as a module.
        chunk_size: classes per backward pass; by default as many as fit
            :data:`GRADIENT_CHUNK_BYTES`.
    """

    #: Name shown in results and figures.
    name = "CAM method"
    #: Whether the method backpropagates class scores (else it implements maps_without_gradients).
    uses_gradients = True

    def __init__(self, model: LoadedModel | nn.Module, layer: LayerSpec = "layer4", chunk_size: int | None = None) -> None:
        if isinstance(model, LoadedModel):
            self.network, self.class_names, self._model = model.network, model.class_names, model
        elif isinstance(model, nn.Module):
            self.network, self.class_names, self._model = model, IMAGENET_CLASS_NAMES, None
        else:
            raise TypeError(f"Expected a LoadedModel or an nn.Module, got {type(model).__name__}.")
        ((self.layer_name, self.layer),) = resolve_layers(self.network, layer).items()
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        self.chunk_size = chunk_size

    def _inputs(self, image: ImageLike | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The network input (1, 3, h, w) and the size to upsample maps to."""
        device = next(self.network.parameters()).device
        if isinstance(image, torch.Tensor) and image.dtype.is_floating_point and image.ndim in (3, 4):
            inputs = image if image.ndim == 4 else image.unsqueeze(0)
            if inputs.shape[0] != 1:
                raise ValueError(f"A CAM explains one image; got a batch of {inputs.shape[0]}. Pass inputs[i:i+1].")
            if inputs.shape[1] != 3:
                raise ValueError(f"Expected a preprocessed tensor (1, 3, H, W), got shape {tuple(image.shape)}.")
            return inputs.detach().to(device), tuple(inputs.shape[-2:])
        if self._model is None:
            raise TypeError("A bare nn.Module cannot preprocess images; pass a preprocessed tensor (1, 3, H, W).")
        pixels = load_image(image)
        return self._model.preprocess(pixels).unsqueeze(0).to(device), pixels.shape[:2]

    def _target_indices(self, targets: Target | Sequence[Target] | None, logits: torch.Tensor) -> list[int]:
        if targets is None:
            return [int(logits.argmax())]
        if isinstance(targets, (str, int)) or not isinstance(targets, Sequence) and hasattr(targets, "__index__"):
            targets = [targets]
        indices = [class_index(target, self.class_names) for target in targets]
        if not indices:
            raise ValueError("No target classes given; pass a class name, an index, a list of them, or None for the top class.")
        return indices

    def _chunk_size(self, bytes_per_class: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        return max(1, GRADIENT_CHUNK_BYTES // max(1, bytes_per_class))

    def __call__(
        self,
        image: ImageLike | torch.Tensor,
        targets: Target | Sequence[Target] | None = None,
        output_size: tuple[int, int] | None = None,
    ) -> CamResult:
        """Compute the maps of one image for some classes.

        Works under ``torch.no_grad()`` and ``torch.inference_mode()`` too: it
        switches gradients on for its own forward pass.

        Args:
            image: a path, array or PIL image (preprocessed with the model's
                own preprocessing), or a preprocessed float tensor (1, 3, H, W).
            targets: a class name or index, a list of them, or ``None`` for the
                top predicted class.
            output_size: (H, W) to upsample to; by default the image's own
                size, or the tensor's for a tensor.

        Returns:
            The maps and what they belong to.

        Raises:
            UnknownClassError: a class name or index the model does not have.
            ValueError: a batch of several images, or a layer that does not
                influence the output.
        """
        inputs, image_size = self._inputs(image)
        with _evaluated_frozen(self.network), torch.inference_mode(False), torch.set_grad_enabled(self.uses_gradients):
            # Inputs made under inference mode cannot enter autograd; a clone made outside it can.
            inputs = inputs.clone()
            with LayerRecorder(self.network, {self.layer_name: self.layer}, record_gradients=False) as recorder:
                logits = self.network(inputs)
            if logits.ndim != 2 or logits.shape[0] != 1:
                raise ValueError(f"Expected the network to return logits (1, classes), got {tuple(logits.shape)}.")
            activation = recorder.activations[self.layer_name][0]
            indices = self._target_indices(targets, logits)
            if self.uses_gradients:
                if not logits.requires_grad:
                    raise ValueError(f"The output does not depend on layer {self.layer_name!r}, so it has no gradient.")
                raw = self._maps_from_gradients(logits, recorder.outputs[self.layer_name], activation, indices)
            else:
                raw = self.maps_without_gradients(inputs, activation, indices)
        raw = F.relu(raw).detach()
        probabilities = logits.detach()[0].softmax(-1)
        return CamResult(
            raw=raw,
            class_indices=indices,
            class_names=[self.class_names[i] for i in indices],
            scores=logits.detach()[0, indices],
            probabilities=probabilities[indices],
            layer=self.layer_name,
            method=self.name,
            image_size=tuple(output_size or image_size),
        )

    def _maps_from_gradients(
        self, logits: torch.Tensor, output: torch.Tensor, activation: torch.Tensor, indices: list[int]
    ) -> torch.Tensor:
        maps: list[torch.Tensor] = []
        # Start by assuming each class's gradient is a full copy of the activation;
        # gradients that are broadcast views (see GlobalAveragePool) allow larger chunks.
        bytes_per_class = activation.numel() * activation.element_size()
        done = 0
        while done < len(indices):
            batch = indices[done : done + self._chunk_size(bytes_per_class)]
            done += len(batch)
            one_hot = torch.zeros(len(batch), *logits.shape, dtype=logits.dtype, device=logits.device)
            one_hot[torch.arange(len(batch)), 0, batch] = 1.0
            retain = done < len(indices)
            if len(batch) == 1:  # vmap's batching costs more than it saves for one class
                gradients = torch.autograd.grad(logits, output, one_hot[0], retain_graph=retain)[0].unsqueeze(0)
            else:
                (gradients,) = torch.autograd.grad(logits, output, one_hot, retain_graph=retain, is_grads_batched=True)
            bytes_per_class = gradients.untyped_storage().nbytes() // len(batch)
            maps.append(self.combine(activation, gradients[:, 0]))
        return torch.cat(maps)

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Gradient methods: activations (C, h, w) and per-class gradients (K, C, h, w) to (K, h, w) maps, before the ReLU."""
        raise NotImplementedError

    def maps_without_gradients(self, inputs: torch.Tensor, activations: torch.Tensor, indices: list[int]) -> torch.Tensor:
        """Gradient-free methods: the network input, activations (C, h, w) and K class indices to (K, h, w) maps."""
        raise NotImplementedError


class GradCAM(CAMMethod):
    """Grad-CAM (Selvaraju et al., 2017): channels weighted by their mean gradient."""

    name = "Grad-CAM"

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        weights = gradients.mean(dim=(-2, -1))  # (K, C): one weight per channel and class
        return torch.einsum("kc,chw->khw", weights, activations)


def grad_cam(
    model: LoadedModel | nn.Module,
    image: ImageLike | torch.Tensor,
    targets: Target | Sequence[Target] | None = None,
    layer: LayerSpec = "layer4",
    output_size: tuple[int, int] | None = None,
    chunk_size: int | None = None,
) -> CamResult:
    """Grad-CAM of one image for one or many classes at one layer.

    All classes share one forward pass; their gradients come from batched
    backward passes. See :class:`CAMMethod` for the arguments.

    Example::

        result = grad_cam(model, "data/cat_and_coffee.png", ["Egyptian cat", "espresso"])
        result.maps.shape  # (2, 224, 448)
    """
    return GradCAM(model, layer, chunk_size)(image, targets, output_size)
