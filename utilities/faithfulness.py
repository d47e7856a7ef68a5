"""Is an explanation faithful to the model? Sanity checks and metrics.

- :func:`cascading_randomization`: randomise the network from the classifier
  down, stage by stage, and see whether the explanation changes (Adebayo et
  al., 2018). An explanation that stays the same does not depend on what the
  model learnt.
- :func:`deletion_curve`, :func:`insertion_curve`: remove (or add) pixels in
  order of importance and follow the class probability (Petsiuk et al., 2018).
  A faithful map makes the probability fall fast (low deletion area) and rise
  fast (high insertion area).
- :func:`pointing_game`: does the map's peak fall on the object (Zhang et al., 2018)?
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

__all__ = [
    "DEFAULT_STAGES",
    "Curve",
    "RandomizationStep",
    "cascading_randomization",
    "deletion_curve",
    "insertion_curve",
    "pointing_game",
    "random_map",
    "spearman_rank_correlation",
]

#: Stages of a ResNet-shaped network, from the classifier down to the stem.
DEFAULT_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fc", ("fc",)),
    ("layer4", ("layer4",)),
    ("layer3", ("layer3",)),
    ("layer2", ("layer2",)),
    ("layer1", ("layer1",)),
    ("stem", ("conv1", "bn1")),
)

Explain = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def spearman_rank_correlation(first: torch.Tensor | np.ndarray, second: torch.Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape.

    A constant map has no ranking, so its correlation with anything is
    undefined; it is reported as 0 (no agreement), never NaN.
    """
    a = np.asarray(first.detach().cpu() if isinstance(first, torch.Tensor) else first, dtype=np.float64).ravel()
    b = np.asarray(second.detach().cpu() if isinstance(second, torch.Tensor) else second, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Maps of different shapes: {a.shape} and {b.shape}.")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True)
class RandomizationStep:
    """One step of cascading randomisation.

    Attributes:
        stage: the stage randomised last (``"original"`` for the untouched network).
        correlation: Spearman rank correlation with the original map.
        map: the explanation after this step.
    """

    stage: str
    correlation: float
    map: torch.Tensor


def _reinitialise(module: nn.Module) -> None:
    for submodule in module.modules():
        if hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()  # batch norm: also its running statistics


def cascading_randomization(
    network: nn.Module,
    inputs: torch.Tensor,
    explain: Explain,
    stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES,
    seed: int = 0,
) -> list[RandomizationStep]:
    """Randomise a copy of the network stage by stage, from the top, and compare explanations.

    Args:
        network: the trained network (not modified; a copy is randomised).
        inputs: the preprocessed input (1, 3, H, W).
        explain: ``explain(network, inputs)`` returns a 2-D map, e.g.
            ``lambda net, x: GradCAM(net, "layer4")(x, 285).raw[0]``.
        stages: (label, module names) pairs, in the order to randomise them;
            each step keeps the earlier randomisations (cascading).
        seed: seed of the new random weights.

    Returns:
        The original step (correlation 1) and one step per stage.
    """
    original = explain(network, inputs).detach()
    steps = [RandomizationStep("original", 1.0, original)]
    randomised = copy.deepcopy(network)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        for label, module_names in stages:
            for name in module_names:
                _reinitialise(randomised.get_submodule(name))
            randomised.eval().requires_grad_(False)
            current = explain(randomised, inputs).detach()
            steps.append(RandomizationStep(label, spearman_rank_correlation(original, current), current))
    finally:
        torch.random.set_rng_state(generator_state)
    return steps


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve.

    Attributes:
        fractions: share of pixels removed (deletion) or inserted (insertion), 0 to 1.
        scores: the class's probability (or logit) at each fraction.
    """

    fractions: np.ndarray
    scores: np.ndarray

    @property
    def area(self) -> float:
        """Area under the curve (trapezoidal rule)."""
        return float(np.trapezoid(self.scores, self.fractions))


def random_map(shape: tuple[int, int], seed: int = 0, cells: tuple[int, int] | None = None) -> torch.Tensor:
    """A map of uniform random values: the baseline every explanation must beat.

    Args:
        shape: (H, W) of the map.
        seed: the random seed.
        cells: draw the values on this coarser grid, e.g. the CAM's own (h, w),
            and upsample them bilinearly. Compare coarse maps with a coarse
            random map: removing pixels in a per-pixel random order scatters
            holes over the whole image, which destroys a CNN's features faster
            than removing any coherent region, so a per-pixel random map is an
            unfairly strong deletion baseline.

    Returns:
        An (H, W) map with values in [0, 1].
    """
    generator = torch.Generator().manual_seed(seed)
    if cells is None:
        return torch.rand(shape, generator=generator)
    coarse = torch.rand((1, 1, *cells), generator=generator)
    return F.interpolate(coarse, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0]


def _pixel_order(saliency: torch.Tensor, seed: int) -> torch.Tensor:
    """Pixel indices from most to least salient; ties in a seeded random order.

    Ties are common (a ReLU sets whole regions to 0); breaking them in raster
    order would delete the top rows first and reward or punish the map for it.
    """
    flat = saliency.flatten().double()
    shuffle = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))
    by_salience = torch.argsort(-flat[shuffle], stable=True)
    return shuffle[by_salience]


def _perturbation_curve(
    network: nn.Module,
    start: torch.Tensor,
    finish: torch.Tensor,
    saliency: torch.Tensor,
    target: int,
    steps: int,
    score: str,
    batch_size: int,
    seed: int,
) -> Curve:
    if start.ndim != 4 or start.shape[0] != 1:
        raise ValueError(f"Expected one preprocessed image (1, 3, H, W), got {tuple(start.shape)}.")
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}.")
    height, width = start.shape[-2:]
    saliency = torch.as_tensor(saliency, dtype=torch.float32)
    if torch.isnan(saliency).any():
        raise ValueError("The saliency map contains NaN.")
    if saliency.shape != (height, width):
        saliency = F.interpolate(saliency[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    order = _pixel_order(saliency, seed)
    counts = [round(step * height * width / steps) for step in range(steps + 1)]
    scores: list[float] = []
    with torch.inference_mode():
        for first in range(0, len(counts), batch_size):
            batch = []
            for count in counts[first : first + batch_size]:
                changed = torch.zeros(height * width, dtype=torch.bool)
                changed[order[:count]] = True
                batch.append(torch.where(changed.view(1, 1, height, width), finish, start)[0])
            logits = network(torch.stack(batch))
            values = logits.softmax(dim=1)[:, target] if score == "probability" else logits[:, target]
            scores.extend(values.tolist())
    return Curve(np.array(counts, dtype=np.float64) / (height * width), np.array(scores))


def deletion_curve(
    network: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: int,
    steps: int = 32,
    score: str = "probability",
    batch_size: int = 11,
    seed: int = 0,
) -> Curve:
    """Remove the most salient pixels first, replacing them with zeros (the mean colour after normalisation).

    Args:
        network: the classifier.
        inputs: the preprocessed image (1, 3, H, W).
        saliency: the map (any size; resized bilinearly to H x W).
        target: class index whose score to follow.
        steps: number of steps from 0% to 100% of the pixels.
        score: ``"probability"`` (softmax) or ``"logit"``.
        batch_size: perturbed images per forward pass.
        seed: order of pixels with equal saliency.

    Returns:
        The curve; a lower area means a more faithful map.
    """
    return _perturbation_curve(network, inputs, torch.zeros_like(inputs), saliency, target, steps, score, batch_size, seed)


def insertion_curve(
    network: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: int,
    steps: int = 32,
    score: str = "probability",
    batch_size: int = 11,
    seed: int = 0,
    blur_sigma: float = 5.0,
) -> Curve:
    """Start from a blurred image and put back the most salient pixels first.

    Blurring (rather than a blank start) keeps the image's colours and layout
    but removes the detail a classifier relies on. Arguments as for
    :func:`deletion_curve`; ``blur_sigma`` is the Gaussian blur's standard
    deviation in pixels.

    Returns:
        The curve; a higher area means a more faithful map.
    """
    kernel = 2 * round(3 * blur_sigma) + 1
    blurred = gaussian_blur(inputs, kernel_size=[kernel, kernel], sigma=[blur_sigma, blur_sigma])
    return _perturbation_curve(network, blurred, inputs, saliency, target, steps, score, batch_size, seed)


def pointing_game(cam: torch.Tensor | np.ndarray, object_mask: torch.Tensor | np.ndarray, tolerance: int = 0) -> bool:
    """Whether the map's strongest point lies on the object.

    Args:
        cam: a 2-D map.
        object_mask: boolean mask of the object, same shape.
        tolerance: also count a hit within this many pixels of the object
            (the original pointing game uses 15).

    Returns:
        True for a hit. A map that is constant has no strongest point and misses.
    """
    cam = torch.as_tensor(np.asarray(cam) if not isinstance(cam, torch.Tensor) else cam)
    mask = torch.as_tensor(np.asarray(object_mask) if not isinstance(object_mask, torch.Tensor) else object_mask).bool()
    if cam.shape != mask.shape:
        raise ValueError(f"The map {tuple(cam.shape)} and the object mask {tuple(mask.shape)} differ in shape.")
    if cam.max() == cam.min():
        return False
    if tolerance > 0:
        size = 2 * tolerance + 1
        mask = F.max_pool2d(mask[None, None].float(), size, stride=1, padding=tolerance)[0, 0].bool()
    row, column = divmod(int(cam.argmax()), cam.shape[1])
    return bool(mask[row, column])
