"""Guided backpropagation and Guided Grad-CAM.

Guided backpropagation (Springenberg et al., 2015) changes only the backward
pass of the ReLUs: a gradient passes a ReLU where its forward input was
positive (as usual) *and* the gradient coming back is positive. The result is
a gradient image at the input's resolution, sharp but hardly specific to a
class. Guided Grad-CAM (Selvaraju et al., 2017) multiplies it, pixel by
pixel, with the upsampled Grad-CAM, which is coarse but class-specific.

Here the rule is applied with a forward hook on every ``nn.ReLU`` and
``nn.ReLU6`` module that registers a hook on the module's output tensor,
clamping the gradient that arrives there at zero; the ReLU's own backward
then keeps it only where the forward input was positive (and, for ReLU6,
below 6). pytorch-grad-cam and captum apply the same rule to ``nn.ReLU``
modules; the tests compare against both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .cam import CAMMethod, CamResult, GradCAM, Placement, Target, _evaluated_frozen, normalize_cams, upsample_cams
from .hooks import LayerSpec
from .images import ImageLike
from .models import LoadedModel

__all__ = ["GUIDED_ACTIVATIONS", "GuidedGradCAM", "GuidedGradCamResult", "GuidedReLUs", "gradient_image", "guided_backprop"]

#: The activation modules whose backward pass guided backpropagation changes.
GUIDED_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)


class GuidedReLUs:
    """While active, every ReLU module of a network passes back only positive gradients.

    Use as a context manager; the hooks are removed on exit, also after an error::

        with GuidedReLUs(network):
            logits = network(x.requires_grad_())
            logits[0, 285].backward()
        x.grad  # the guided gradient

    Args:
        network: the network; its ``nn.ReLU`` and ``nn.ReLU6`` modules are guided.

    Raises:
        ValueError: the network has no such module (a network that calls
            ``torch.relu`` as a function cannot be guided this way).
    """

    def __init__(self, network: nn.Module) -> None:
        self.modules = [module for module in network.modules() if isinstance(module, GUIDED_ACTIVATIONS)]
        if not self.modules:
            raise ValueError(
                f"{type(network).__name__} has no nn.ReLU or nn.ReLU6 modules, so guided backpropagation has nothing "
                "to change. It works on networks whose ReLUs are modules (ResNet, VGG, the bundled model)."
            )
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @staticmethod
    def _guide(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if output.requires_grad:
            # Clamp what arrives at the ReLU's output; its backward then masks by the forward input.
            output.register_hook(lambda gradient: gradient.clamp(min=0))

    def __enter__(self) -> "GuidedReLUs":
        self._handles = [module.register_forward_hook(self._guide) for module in self.modules]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _whole_network(model: LoadedModel | nn.Module) -> CAMMethod:
    """A CAMMethod over the whole network: its input handling and class lookup, shared with every CAM."""
    if isinstance(model, LoadedModel):
        return CAMMethod(model, model.network)
    if isinstance(model, nn.Module):
        return CAMMethod(model, model)
    raise TypeError(f"Expected a LoadedModel or an nn.Module, got {type(model).__name__}.")


def guided_backprop(
    model: LoadedModel | nn.Module, image: ImageLike | torch.Tensor, targets: Target | Sequence[Target] | None = None
) -> torch.Tensor:
    """Guided backpropagation: the guided gradient of each class's logit with respect to the input.

    Args:
        model: a :class:`~utilities.models.LoadedModel` or a bare network.
        image: a path, array or PIL image (preprocessed with the model's
            preprocessing), or a preprocessed float tensor (1, 3, H, W).
        targets: class names or indices, or ``None`` for the top class.

    Returns:
        (K, 3, H, W) gradients at the network input's size (after
        preprocessing, not the photo's), one per class, in target order.

    Raises:
        ValueError: the network has no ReLU modules, or a batch of several images.
        UnknownClassError: an unknown class name or index.
    """
    method = _whole_network(model)
    inputs, _ = method._inputs(image)
    with _evaluated_frozen(method.network), torch.inference_mode(False), torch.enable_grad():
        inputs = inputs.clone().requires_grad_(True)
        with GuidedReLUs(method.network):
            logits = method.network(inputs)
        indices = method._target_indices(targets, logits)
        gradients = []
        for position, index in enumerate(indices):
            (gradient,) = torch.autograd.grad(logits[0, index], inputs, retain_graph=position < len(indices) - 1)
            gradients.append(gradient[0])
    return torch.stack(gradients).detach()


def gradient_image(gradients: torch.Tensor) -> torch.Tensor:
    """A gradient image (3, H, W) as an (H, W, 3) picture in [0, 1] to show with ``imshow``.

    The common display of guided backpropagation: centred on its mean, scaled
    so that one standard deviation spans 0.1, shifted to a grey 0.5, clipped.
    Zero gradient is not exactly grey; compare images only by their pattern.
    """
    if gradients.ndim != 3 or gradients.shape[0] != 3:
        raise ValueError(f"Expected one gradient image (3, H, W), got shape {tuple(gradients.shape)}.")
    centred = gradients - gradients.mean()
    scaled = centred / (centred.std() + 1e-5) * 0.1 + 0.5
    return scaled.clamp(0, 1).permute(1, 2, 0)


@dataclass(frozen=True)
class GuidedGradCamResult(CamResult):
    """Grad-CAM maps (as in :class:`~utilities.cam.CamResult`) plus the guided gradients.

    Attributes:
        guided: (K, 3, h, w) guided backpropagation at the network input's size.
    """

    guided: torch.Tensor = None  # type: ignore[assignment]

    @property
    def guided_grad_cam(self) -> torch.Tensor:
        """(K, 3, h, w): the guided gradients times the Grad-CAM upsampled to the input's size and scaled to [0, 1].

        The Grad-CAM is placed as the result's maps are: at its cells' receptive-field centres when the result
        has them (``centres``), stretched evenly otherwise.
        """
        cams = normalize_cams(upsample_cams(self.raw, tuple(self.guided.shape[-2:]), self.centres))
        return self.guided * cams[:, None]


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM (Selvaraju et al., 2017): guided backpropagation times Grad-CAM.

    Two passes: Grad-CAM with the network's ordinary backward pass (guided
    ReLUs after the layer would change its gradients), then guided
    backpropagation to the input.

    Args:
        model: as for :class:`~utilities.cam.CAMMethod`.
        layer: the layer of the Grad-CAM.
        chunk_size: as for :class:`~utilities.cam.CAMMethod`.
    """

    name = "Guided Grad-CAM"

    def __init__(self, model: LoadedModel | nn.Module, layer: LayerSpec | None = None, chunk_size: int | None = None) -> None:
        super().__init__(model, layer, chunk_size)
        GuidedReLUs(self.network)  # fail now, with the message, if nothing can be guided

    def __call__(
        self,
        image: ImageLike | torch.Tensor,
        targets: Target | Sequence[Target] | None = None,
        output_size: tuple[int, int] | None = None,
        placement: Placement = "centres",
    ) -> GuidedGradCamResult:
        """Grad-CAM maps and guided gradients of one image for some classes.

        Args and raises as for :meth:`CAMMethod.__call__`.

        Returns:
            The Grad-CAM result with ``guided`` added; ``guided_grad_cam`` is their product.
        """
        # Load and preprocess once: both passes start from the same network input.
        inputs, image_size = self._inputs(image)
        cams = super().__call__(inputs, targets, output_size or image_size, placement)
        guided = guided_backprop(self._model or self.network, inputs, cams.class_indices)
        fields = {field.name: getattr(cams, field.name) for field in dataclasses.fields(cams)}
        return GuidedGradCamResult(**fields, guided=guided)
