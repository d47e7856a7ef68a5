"""Is an explanation faithful to the model? Sanity checks and metrics.

- :func:`cascading_randomization`: re-initialise the network from the classifier
  down, stage by stage (PyTorch's default initialisation of each layer), and see whether the explanation changes (Adebayo et
  al., 2018). An explanation that stays the same does not depend on what the
  model learnt. :func:`randomized_networks` yields the randomised copies
  themselves, to explain several images or methods with each.
- :func:`deletion_curve`, :func:`insertion_curve`: remove (or add) pixels in
  order of importance and follow the class probability or logit (Petsiuk et
  al., 2018). A faithful map makes the score fall fast (low deletion area) and
  rise fast (high insertion area). :func:`deletion_and_insertion` computes both
  curves for several maps at once, sharing the forward passes they have in
  common; :attr:`Curve.normalized_area` makes areas of different photos comparable.
- :func:`pointing_game`: does the map's peak fall on the object (Zhang et al., 2018)?
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

__all__ = [
    "DEFAULT_STAGES",
    "Curve",
    "RandomizationStep",
    "cascading_randomization",
    "deletion_and_insertion",
    "deletion_curve",
    "insertion_curve",
    "pointing_game",
    "random_map",
    "randomized_networks",
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
    # Imported here: scipy.stats costs over a second at import, and every notebook imports utilities.
    from scipy.stats import spearmanr

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
    """PyTorch's default initialisation, as for a newly built layer.

    Convolutions and linear layers: weights Kaiming-uniform (``a=sqrt(5)``,
    i.e. uniform in +-1/sqrt(fan_in)), biases uniform in +-1/sqrt(fan_in).
    Batch norm: scale 1, shift 0, running mean 0 and variance 1, so it passes
    its input through unchanged. (Adebayo et al. drew truncated normal weights.)
    """
    for submodule in module.modules():
        if hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()  # batch norm: also its running statistics


def randomized_networks(
    network: nn.Module, stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES, seed: int = 0
) -> Iterator[tuple[str, nn.Module]]:
    """Yield a copy of the network after each step of cascading randomisation, from the top.

    One copy is made and re-initialised further at each step (see
    :func:`_reinitialise`); the stages below keep their trained weights until
    their turn. Use the copy before asking for the next step: it is the same
    object, changed in place. The new weights depend only on ``seed`` and the
    stages: the random numbers are drawn from a state of their own, so what the
    caller draws between steps changes nothing, and the global random state is
    left as it was.

    Args:
        network: the trained network (not modified).
        stages: (label, module names) pairs, in the order to randomise them.
        seed: seed of the new random weights.

    Yields:
        (label of the stage randomised last, the randomised copy in eval mode, frozen).

    Raises:
        AttributeError: a module name the network does not have.
    """
    randomised = copy.deepcopy(network)
    caller_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    state = torch.random.get_rng_state()
    torch.random.set_rng_state(caller_state)
    for label, module_names in stages:
        caller_state = torch.random.get_rng_state()
        torch.random.set_rng_state(state)
        try:
            for name in module_names:
                _reinitialise(randomised.get_submodule(name))
            state = torch.random.get_rng_state()
        finally:
            torch.random.set_rng_state(caller_state)
        yield label, randomised.eval().requires_grad_(False)


def cascading_randomization(
    network: nn.Module,
    inputs: torch.Tensor,
    explain: Explain,
    stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES,
    seed: int = 0,
    original: torch.Tensor | None = None,
) -> list[RandomizationStep]:
    """Randomise a copy of the network stage by stage, from the top, and compare explanations.

    Each stage's layers are re-initialised as newly built PyTorch layers (see
    :func:`_reinitialise`); the stages below keep their trained weights until
    their turn. The copies are those of :func:`randomized_networks` with the
    same stages and seed.

    Args:
        network: the trained network (not modified; a copy is randomised).
        inputs: the preprocessed input (1, 3, H, W).
        explain: ``explain(network, inputs)`` returns a 2-D map, e.g.
            ``lambda net, x: GradCAM(net, "layer4")(x, 285).raw[0]``.
        stages: (label, module names) pairs, in the order to randomise them;
            each step keeps the earlier randomisations (cascading).
        seed: seed of the new random weights.
        original: ``explain(network, inputs)`` if already computed, e.g. by
            the call with another seed; it is then not computed again.

    Returns:
        The original step (correlation 1) and one step per stage.

    Raises:
        ValueError: ``original`` is not 2-D.
    """
    if original is None:
        original = explain(network, inputs)
    elif original.ndim != 2:
        raise ValueError(f"original must be the 2-D map explain(network, inputs) returns, got shape {tuple(original.shape)}.")
    original = original.detach()
    steps = [RandomizationStep("original", 1.0, original)]
    for label, randomised in randomized_networks(network, stages, seed):
        current = explain(randomised, inputs).detach()
        steps.append(RandomizationStep(label, spearman_rank_correlation(original, current), current))
    return steps


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve.

    Attributes:
        fractions: share of pixels removed (deletion) or inserted (insertion), 0 to 1.
        scores: the class's probability (or logit) at each fraction.
        kind: ``"deletion"``, ``"insertion"``, or ``""`` when not known.
    """

    fractions: np.ndarray
    scores: np.ndarray
    kind: str = ""

    @property
    def area(self) -> float:
        """Area under the curve (trapezoidal rule), in the units of the scores."""
        return float(np.trapezoid(self.scores, self.fractions))

    def normalized(self) -> "Curve":
        """The curve rescaled so that the photo scores 1 and the fully perturbed image 0.

        Deletion runs from the photo (first point) to the all-grey image (last
        point); insertion from the blurred image (first point) to the photo
        (last point). The rescaling ``(score - perturbed) / (photo - perturbed)``
        is linear, so it keeps the order of maps on one photo and makes
        photos with different logit ranges comparable. Logits may be negative,
        and points between the ends may fall below 0 or above 1. When both ends
        score the same the scale is undefined and the scores are NaN.
        """
        if self.kind == "deletion":
            photo, perturbed = self.scores[0], self.scores[-1]
        elif self.kind == "insertion":
            photo, perturbed = self.scores[-1], self.scores[0]
        else:
            raise ValueError("Only a curve that knows its kind ('deletion' or 'insertion') can be normalised.")
        span = photo - perturbed
        scores = (self.scores - perturbed) / span if span != 0 else np.full_like(self.scores, np.nan, dtype=np.float64)
        return Curve(self.fractions, scores, self.kind)

    @property
    def normalized_area(self) -> float:
        """Area under :meth:`normalized`: 0 to 1 for a curve between its ends."""
        return self.normalized().area


def random_map(shape: tuple[int, int], seed: int = 0, cells: tuple[int, int] | None = None) -> torch.Tensor:
    """A map of uniform random values: the baseline every explanation must beat.

    Args:
        shape: (H, W) of the map.
        seed: the random seed.
        cells: draw the values on this coarser grid, e.g. the CAM's own (h, w),
            and upsample them bilinearly. Compare coarse maps with a coarse
            random map: removing pixels in a per-pixel random order scatters
            holes over the whole image, which often destroys a CNN's features
            faster than removing coherent regions, so a per-pixel random map
            is often a strong deletion baseline that a coarse map cannot fairly
            be compared with.

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


def _check_inputs(start: torch.Tensor, score: str) -> None:
    if start.ndim != 4 or start.shape[0] != 1:
        raise ValueError(f"Expected one preprocessed image (1, 3, H, W), got {tuple(start.shape)}.")
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}.")


def _prepare_saliency(saliency: torch.Tensor, height: int, width: int) -> torch.Tensor:
    saliency = torch.as_tensor(saliency, dtype=torch.float32)
    if torch.isnan(saliency).any():
        raise ValueError("The saliency map contains NaN.")
    if saliency.shape != (height, width):
        saliency = F.interpolate(saliency[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return saliency


def _counts(height: int, width: int, steps: int) -> list[int]:
    return [round(step * height * width / steps) for step in range(steps + 1)]


def _perturbed(start: torch.Tensor, finish: torch.Tensor, order: torch.Tensor, count: int) -> torch.Tensor:
    height, width = start.shape[-2:]
    changed = torch.zeros(height * width, dtype=torch.bool)
    changed[order[:count]] = True
    return torch.where(changed.view(1, 1, height, width), finish, start)[0]


def _scores(
    network: nn.Module, images: Iterator[torch.Tensor], target: int, score: str, batch_size: int
) -> list[float]:
    """The target's score for every image, in batches of ``batch_size``."""
    scores: list[float] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        # channels-last memory is faster for convolutions on CPU; the values are the same up to rounding
        logits = network(torch.stack(batch).contiguous(memory_format=torch.channels_last))
        values = logits.softmax(dim=1)[:, target] if score == "probability" else logits[:, target]
        scores.extend(values.tolist())
        batch.clear()

    with torch.inference_mode():
        for image in images:
            batch.append(image)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    return scores


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
    kind: str = "",
) -> Curve:
    _check_inputs(start, score)
    height, width = start.shape[-2:]
    order = _pixel_order(_prepare_saliency(saliency, height, width), seed)
    counts = _counts(height, width, steps)
    scores = _scores(network, (_perturbed(start, finish, order, count) for count in counts), target, score, batch_size)
    return Curve(np.array(counts, dtype=np.float64) / (height * width), np.array(scores), kind)


def _blurred(inputs: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    kernel = 2 * round(3 * blur_sigma) + 1
    return gaussian_blur(inputs, kernel_size=[kernel, kernel], sigma=[blur_sigma, blur_sigma])


def deletion_curve(
    network: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: int,
    steps: int = 32,
    score: str = "probability",
    batch_size: int = 8,
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
    return _perturbation_curve(
        network, inputs, torch.zeros_like(inputs), saliency, target, steps, score, batch_size, seed, "deletion"
    )


def insertion_curve(
    network: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: int,
    steps: int = 32,
    score: str = "probability",
    batch_size: int = 8,
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
    blurred = _blurred(inputs, blur_sigma)
    return _perturbation_curve(network, blurred, inputs, saliency, target, steps, score, batch_size, seed, "insertion")


def deletion_and_insertion(
    network: nn.Module,
    inputs: torch.Tensor,
    saliency_maps: Mapping[str, torch.Tensor],
    target: int,
    steps: int = 16,
    score: str = "logit",
    batch_size: int = 8,
    seed: int = 0,
    blur_sigma: float = 5.0,
) -> dict[str, tuple[Curve, Curve]]:
    """Deletion and insertion curves of several maps of one image, sharing forward passes.

    Every curve of one image starts or ends at the same three images: the
    photo, the all-grey image and the blurred image. They are scored once,
    and the perturbed images of all maps go through the network in batches of
    ``batch_size``. The curves equal those of :func:`deletion_curve` and
    :func:`insertion_curve` with the same arguments (up to float rounding
    between batch sizes); note the default score here is the logit.

    Args:
        network: the classifier.
        inputs: the preprocessed image (1, 3, H, W).
        saliency_maps: name -> map (any size; resized bilinearly to H x W).
        target: class index whose score to follow.
        steps, score, seed, blur_sigma: as for :func:`insertion_curve`.
        batch_size: perturbed images per forward pass.

    Returns:
        name -> (deletion curve, insertion curve).
    """
    _check_inputs(inputs, score)
    height, width = inputs.shape[-2:]
    grey, blurred = torch.zeros_like(inputs), _blurred(inputs, blur_sigma)
    counts = _counts(height, width, steps)
    inner = counts[1:-1]
    orders = {name: _pixel_order(_prepare_saliency(m, height, width), seed) for name, m in saliency_maps.items()}

    def images() -> Iterator[torch.Tensor]:
        yield from (inputs[0], grey[0], blurred[0])
        for order in orders.values():
            yield from (_perturbed(inputs, grey, order, count) for count in inner)
            yield from (_perturbed(blurred, inputs, order, count) for count in inner)

    scores = _scores(network, images(), target, score, batch_size)
    photo, all_grey, all_blurred = scores[:3]
    fractions = np.array(counts, dtype=np.float64) / (height * width)
    curves: dict[str, tuple[Curve, Curve]] = {}
    for position, name in enumerate(orders):
        first = 3 + 2 * len(inner) * position
        removed = scores[first : first + len(inner)]
        inserted = scores[first + len(inner) : first + 2 * len(inner)]
        curves[name] = (
            Curve(fractions, np.array([photo, *removed, all_grey]), "deletion"),
            Curve(fractions, np.array([all_blurred, *inserted, photo]), "insertion"),
        )
    return curves


def pointing_game(cam: torch.Tensor | np.ndarray, object_mask: torch.Tensor | np.ndarray, tolerance: int = 0) -> bool:
    """Whether the map's strongest point lies on the object.

    Args:
        cam: a 2-D map.
        object_mask: boolean mask of the object, same shape.
        tolerance: also count a hit within this many pixels of the object
            horizontally and vertically: the mask grows by a square
            neighbourhood of ``2 * tolerance + 1`` pixels a side (a max-pool),
            not a disc. The original pointing game uses 15 pixels.

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
