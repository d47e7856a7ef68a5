"""More CAM methods, each a small subclass of :class:`~utilities.cam.CAMMethod`.

The gradient methods differ only in :meth:`combine`, which turns activations
A (C, h, w) and per-class gradients G (K, C, h, w) into K maps (before the
ReLU that every method applies at the end):

==============  =====================================================================
Grad-CAM        channel weight = spatial mean of G  (in :mod:`utilities.cam`)
Grad-CAM++      channel weight = sum over space of ReLU(G) * a, with a from G^2, G^3, sum(A)
HiResCAM        no channel weight: sum over channels of G * A, cell by cell
XGrad-CAM       channel weight = sum(G * A) / sum(A) over space
Layer-CAM       no channel weight: sum over channels of ReLU(G) * A, cell by cell
==============  =====================================================================

Three methods need no gradients:

==============  =====================================================================
CAM             channel weight = the final linear layer's weight for the class
                (only where global average pooling and that layer follow)
Score-CAM       channel weight = softmax over channels of the class logit when the
                input is masked by that channel's upsampled, [0, 1]-scaled map
                (optionally only for the channels of largest mean activation)
Eigen-CAM       the activations' first principal component; the same map for every class
==============  =====================================================================

The constants (small epsilons, Score-CAM's corner-aligned upsampling and its
softmax over logits) follow pytorch-grad-cam, which the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from torch import nn

from .cam import CAMMethod, GradCAM
from .hooks import LayerSpec
from .widgets import noninteractive

__all__ = ["CAM", "CAM_METHODS", "EigenCAM", "GradCAMPlusPlus", "HiResCAM", "LayerCAM", "ScoreCAM", "XGradCAM"]


class GradCAMPlusPlus(CAMMethod):
    """Grad-CAM++ (Chattopadhyay et al., 2018): pixel-wise weighting of positive gradients.

    Its coefficients are derived for non-negative (post-ReLU) activations; with
    signed activations the denominator can approach zero or change sign.
    """

    name = "Grad-CAM++"

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        squared = gradients.pow(2)
        cubed = squared * gradients
        activation_sums = activations.sum(dim=(-2, -1), keepdim=True)  # (C, 1, 1)
        # Equation 19 of the paper; where the gradient is zero, so is the coefficient.
        alphas = squared / (2 * squared + activation_sums * cubed + 1e-6)
        alphas = torch.where(gradients != 0, alphas, torch.zeros_like(alphas))
        weights = (F.relu(gradients) * alphas).sum(dim=(-2, -1))  # (K, C)
        return torch.einsum("kc,chw->khw", weights, activations)


class HiResCAM(CAMMethod):
    """HiResCAM (Draelos & Carin, 2020): gradient times activation, summed over channels.

    Unlike Grad-CAM it does not average the gradient over space first. When
    the logit is a linear function of the layer's activations (the layer is
    followed only by global average pooling and one linear layer), the map
    before the ReLU sums over cells to the logit minus the linear layer's
    bias, and, the gradient being constant over space there, HiResCAM equals
    Grad-CAM. At earlier layers neither holds.
    """

    name = "HiResCAM"

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return (gradients * activations).sum(dim=1)


class XGradCAM(CAMMethod):
    """XGrad-CAM (Fu et al., 2020): channel weight = sum(G * A) / sum(A).

    Assumes non-negative (post-ReLU) activations: with signed ones, sum(A) can
    be near zero or negative, which inflates or flips a channel's weight.
    """

    name = "XGrad-CAM"

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        activation_sums = activations.sum(dim=(-2, -1))  # (C,)
        weights = (gradients * activations).sum(dim=(-2, -1)) / (activation_sums + 1e-7)  # (K, C)
        return torch.einsum("kc,chw->khw", weights, activations)


class LayerCAM(CAMMethod):
    """Layer-CAM (Jiang et al., 2021): positive gradient times activation, cell by cell.

    Keeping the weights per cell makes it usable at early, high-resolution layers.
    It reads ReLU(G) * A as positive evidence, which assumes non-negative
    (post-ReLU) activations; a negative activation turns it into negative evidence.
    """

    name = "Layer-CAM"

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return (F.relu(gradients) * activations).sum(dim=1)


class ScoreCAM(CAMMethod):
    """Score-CAM (Wang et al., 2020): weights from masked forward passes, no gradients.

    Each channel's map is upsampled to the input size, scaled to [0, 1], and
    multiplied into the input; the class logit of that masked input, put
    through a softmax over all channels, is the channel's weight. That is one
    forward pass per channel (run in batches), but one set serves all classes.

    Args:
        model: as for :class:`~utilities.cam.CAMMethod`.
        layer: the layer to explain.
        batch_size: masked inputs per forward pass. On a 2-core CPU, 8 in
            channels-last memory layout measured best for the bundled model at
            224 x 448 (0.95 s per 16 passes, against 1.49 s in batches of 16 in
            the default layout); larger batches are not faster per image.
        progress: show a progress bar; default: yes, unless
            ``GRADCAM_NONINTERACTIVE`` is set (as under tests).
        max_channels: use only this many channels, those with the largest
            mean activation, instead of all of them (``None``: all, which is
            Score-CAM as published). This is an approximation that makes
            Score-CAM affordable at wide layers (ResNet50's ``layer4`` has 2048
            channels): the other channels get no masked pass and no weight,
            and the softmax runs over the chosen channels only.
    """

    name = "Score-CAM"
    uses_gradients = False

    def __init__(
        self,
        model,
        layer=None,
        batch_size: int = 8,
        progress: bool | None = None,
        max_channels: int | None = None,
    ) -> None:
        super().__init__(model, layer)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if max_channels is not None and max_channels < 1:
            raise ValueError(f"max_channels must be at least 1 (or None for all channels), got {max_channels}.")
        self.batch_size = batch_size
        self.progress = progress
        self.max_channels = max_channels

    def selected_channels(self, activations: torch.Tensor) -> torch.Tensor:
        """Indices of the channels that get a masked pass: all, or the ``max_channels`` with the largest mean activation."""
        channels = activations.shape[0]
        if self.max_channels is None or self.max_channels >= channels:
            return torch.arange(channels, device=activations.device)
        return activations.mean(dim=(-2, -1)).topk(self.max_channels).indices

    def maps_without_gradients(self, inputs: torch.Tensor, activations: torch.Tensor, indices: list[int]) -> torch.Tensor:
        activations = activations[self.selected_channels(activations)]
        channels = activations.shape[0]
        scores = torch.empty(channels, len(indices), dtype=activations.dtype, device=activations.device)
        starts = range(0, channels, self.batch_size)
        for start in tqdm(starts, desc=f"Score-CAM at {self.layer_name}", unit="batch", disable=noninteractive() if self.progress is None else not self.progress):
            # Masks are made per batch: all of them at once would be C copies of the input.
            masks = F.interpolate(
                activations[None, start : start + self.batch_size], size=inputs.shape[-2:], mode="bilinear", align_corners=True
            )[0]
            flat = masks.flatten(1)
            low, high = flat.amin(dim=1)[:, None, None], flat.amax(dim=1)[:, None, None]
            masks = (masks - low) / (high - low + 1e-8)
            # Channels-last runs the convolutions of a batch about a third faster on a CPU.
            logits = self.network((inputs * masks[:, None]).contiguous(memory_format=torch.channels_last))
            scores[start : start + len(masks)] = logits[:, indices]
        weights = scores.softmax(dim=0)  # (C, K): softmax over channels, per class
        return torch.einsum("ck,chw->khw", weights, activations)


class CAM(CAMMethod):
    """CAM (Zhou et al., 2016): channels weighted by the classifier's own weights, no gradients.

    For a network that ends in global average pooling and one linear layer
    after ``layer`` (``layer4`` then ``fc`` in both models of this course),
    the logit of class c is ``b_c + mean over cells of sum_k W[c, k] A_k``:
    the map ``sum_k W[c, k] A_k`` (before the ReLU) is exactly what each
    cell adds to the logit, times the number of cells. All classes come from
    one forward pass and one ``einsum``.

    At that layer, Grad-CAM equals CAM divided by the number of cells h * w:
    the gradient of logit c with respect to every cell of channel k is
    ``W[c, k] / (h * w)``, so Grad-CAM's channel weights are CAM's divided by
    h * w. After the ReLU and each map's own normalisation the two are the
    same maps. With any other head (two linear layers, flattening instead of
    pooling) CAM is not defined; use Grad-CAM.

    Args:
        model: as for :class:`~utilities.cam.CAMMethod`.
        layer: the layer right before the global pooling.
        classifier: the linear layer after the pooling, by name or as a module.

    Raises:
        ValueError: ``classifier`` is not a linear layer, or the layer's
            channel count differs from the linear layer's input width (the
            layer is not the last one before pooling).
    """

    name = "CAM"
    uses_gradients = False

    def __init__(self, model, layer: LayerSpec | None = None, classifier: str | nn.Module = "fc") -> None:
        super().__init__(model, layer)
        if isinstance(classifier, str):
            try:
                classifier = self.network.get_submodule(classifier)
            except AttributeError:
                raise ValueError(
                    f"The network has no module {classifier!r}; pass classifier= the linear layer after the global pooling."
                ) from None
        if not isinstance(classifier, nn.Linear):
            raise ValueError(
                f"CAM needs the final layer to be one nn.Linear after global average pooling; got {type(classifier).__name__}. "
                "Use Grad-CAM for other heads."
            )
        self.classifier = classifier
        #: What the linear layer received in the current call (filled by a hook in __call__).
        self._classifier_inputs: list[torch.Tensor] = []

    def __call__(self, image, targets=None, output_size=None, placement="centres"):
        """As :meth:`CAMMethod.__call__`; also records what the linear layer receives, to check the head."""
        handle = self.classifier.register_forward_pre_hook(lambda module, args: self._classifier_inputs.append(args[0].detach()))
        try:
            return super().__call__(image, targets, output_size, placement)
        finally:
            handle.remove()
            self._classifier_inputs.clear()

    def maps_without_gradients(self, inputs: torch.Tensor, activations: torch.Tensor, indices: list[int]) -> torch.Tensor:
        weight = self.classifier.weight
        undefined = (
            "CAM is defined only for the layer right before a head of global average pooling and one linear layer; "
            "use Grad-CAM at this layer, or CAM at the last stage before the pooling."
        )
        if activations.shape[0] != weight.shape[1]:
            raise ValueError(
                f"CAM at {self.layer_name!r}: the layer has {activations.shape[0]} channels but the linear layer expects "
                f"{weight.shape[1]} inputs, so that linear layer does not directly follow its pooled output. {undefined}"
            )
        # Matching channel counts are not enough (ResNet50's layer4.1 has layer4's 2048): the linear
        # layer must receive exactly this layer's output averaged over its cells.
        pooled = activations.mean(dim=(-2, -1))
        received = self._classifier_inputs[-1].flatten() if self._classifier_inputs else None
        if received is None or received.shape != pooled.shape or not torch.allclose(received, pooled, rtol=1e-4, atol=1e-5 * float(pooled.abs().max()) + 1e-7):
            raise ValueError(
                f"CAM at {self.layer_name!r}: the linear layer does not receive this layer's output averaged over its cells "
                f"(another layer, or more layers, come in between). {undefined}"
            )
        return torch.einsum("kc,chw->khw", weight[indices], activations)


class EigenCAM(CAMMethod):
    """Eigen-CAM (Muhammad & Yeasin, 2020): the first principal component of the activations.

    It ignores the class: every class gets the same map, the projection of each
    cell's activations on the direction along which the cells vary most (after
    centring), not what makes the network decide for one class. The sign of
    a principal component is arbitrary; it is chosen here so that the map
    correlates positively with the sum of the activations (pytorch-grad-cam
    keeps whatever sign the SVD returns, which can invert the map).
    """

    name = "Eigen-CAM"
    uses_gradients = False

    def maps_without_gradients(self, inputs: torch.Tensor, activations: torch.Tensor, indices: list[int]) -> torch.Tensor:
        projection = eigen_projection(activations)
        return projection.expand(len(indices), *projection.shape)


def eigen_projection(activations: torch.Tensor) -> torch.Tensor:
    """Projection of each cell's activation vector on the first principal component, (h, w).

    Args:
        activations: (C, h, w).

    Returns:
        The (h, w) projection, signed to correlate positively with the activations' sum.
    """
    channels, height, width = activations.shape
    cells = activations.reshape(channels, -1).T.double()  # (h*w, C): one row per cell
    centred = cells - cells.mean(dim=0)
    _, _, right_vectors = torch.linalg.svd(centred, full_matrices=False)
    projection = centred @ right_vectors[0]
    total = cells.sum(dim=1)
    if torch.dot(projection, total - total.mean()) < 0:
        projection = -projection
    return projection.reshape(height, width).to(activations.dtype)


#: Every method by its name, in the order the notebooks show them.
CAM_METHODS: dict[str, type[CAMMethod]] = {
    method.name: method for method in (GradCAM, GradCAMPlusPlus, HiResCAM, XGradCAM, LayerCAM, ScoreCAM, EigenCAM)
}
