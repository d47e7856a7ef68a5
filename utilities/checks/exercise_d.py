"""Exercise d: the share of the Grad-CAM's mass on the object at each stage, and the first stage that reaches a threshold."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..cam import grad_cam, normalize_cams, upsample_cams
from ..images import DATA_DIR, load_image
from ..models import LoadedModel, make_preprocess
from ._common import (STAGES, Checker, CheckResult, cached, gradcam_from, layer_gradients, shown_name, smaller_input,
                      type_name)

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "check_d", "share"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    'one share per stage',
    'shares are fractions',
    'shares match Grad-CAM',
    'all-zero maps give share 0',
    'first stage on known shares',
    'threshold reached with >=, default 0.8',
)
CHECK_COUNT = len(CHECK_NAMES)
TARGET = "espresso"  # the notebook works on the cat
TOLERANCE = 0.02  # how close shares must be to a known mistake's to be diagnosed as it
#: How close a right share is to the reference: two right computations agree to about 1e-6, and shares rounded to
#: two decimals (off by up to 0.005) must not pass.
SHARE_TOLERANCE = 1e-3
#: How close the shares of a function right in every other way must be: float32 rounding (about 1e-6 here), not
#: float16's (about 1e-4 on the photo).
PRECISION = 2e-5
#: What the messages call localisation_shares' arguments.
_SHARES_ARGUMENTS = {1: "the image", 3: "the mask"}


def share(cam: torch.Tensor, mask: torch.Tensor) -> float:
    """The share of a map's mass inside a mask; 0 for an all-zero map."""
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else 0.0


def _integer_mask_share(cam: torch.Tensor, mask: torch.Tensor) -> float:
    """What ``cam[mask.astype(np.uint8)].sum() / cam.sum()`` gives in NumPy: a 0/1 array as an index picks rows 0 and 1.

    ``cam[index]`` for an integer (H, W) index is (H, W, W): row 1 for each pixel in the mask, row 0 for the others.
    """
    total = float(cam.sum())
    inside = int(mask.sum())
    picked = inside * float(cam[1].sum()) + (mask.numel() - inside) * float(cam[0].sum())
    return picked / total if total > 0 else 0.0


def object_mask(height: int, width: int) -> np.ndarray:
    """The espresso: the right half without a margin next to the middle.

    Not the complement of the notebook's ``cat_mask``, so that using that mask is told apart from
    computing the share outside the mask.
    """
    mask = np.zeros((height, width), dtype=bool)
    mask[:, width // 2 + width // 8 :] = True
    return mask


class _AllZeroStages(nn.Module):
    """A tiny network with ResNet's stage names whose stages all output zeros: every Grad-CAM is all zero."""

    def __init__(self) -> None:
        super().__init__()
        for index, stride in enumerate((4, 2, 2, 2), start=1):
            convolution = nn.Conv2d(3, 3, kernel_size=stride, stride=stride)
            nn.init.constant_(convolution.weight, 0.0)
            nn.init.constant_(convolution.bias, -1.0)  # ReLU(-1) = 0 everywhere, still part of the graph
            setattr(self, f"layer{index}", nn.Sequential(convolution, nn.ReLU()))
        self.fc = nn.Linear(3, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _zero_model() -> LoadedModel:
    """The all-zero network, in training mode, with trainable weights (a network being trained).

    It has no batch norm or dropout, so the mode changes nothing it computes, and a function that switches it to
    eval mode (and leaves it so) shows; the notebook's model is frozen already, so only here does a function that
    switches off requires_grad of the weights (and leaves it so) show.
    """
    torch.manual_seed(0)
    return LoadedModel(network=_AllZeroStages().train().requires_grad_(True), name="all-zero maps (a test network)")


#: The two placements of a map's cells the text accepts (notebook 4b): at their receptive-field centres (grad_cam's
#: default) and spread evenly (upsample_cams without centres, as written by hand in exercise a).
PLACEMENTS = ("centres", "stretch")


def _references(model: LoadedModel, global_model: LoadedModel) -> dict[str, np.ndarray]:
    """Right shares and the shares of known mistakes: for each, (placement, stage) -> share, one row per placement."""
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    height, width = image.shape[:2]
    mask = torch.from_numpy(object_mask(height, width))
    left = torch.zeros(height, width, dtype=torch.bool)
    left[:, : width // 2] = True  # the notebook's cat_mask
    with torch.inference_mode():
        top = model.class_names[int(model.network(model.preprocess(image).unsqueeze(0)).argmax())]
    keys = ("reference", "outside", "cat_mask", "mean inside", "inside/outside", "top", "Egyptian cat", "global model",
            "no normalisation", "probability", "no ReLU", "pixels above half", "area above 0", "peak ratio",
            "mirrored mask", "mean ratio", "cell grid", "integer mask", "integer mask, integer total")
    shares: dict[str, list[list[float]]] = {key: [[] for _ in PLACEMENTS] for key in keys}
    # Grad-CAM written by hand with two slips: the softmax probability's gradient, and no ReLU (normalised from the
    # signed map's minimum).
    index = model.class_index(TARGET)
    scores = {"logit": lambda logits: logits[0, index], "probability": lambda logits: logits.softmax(dim=1)[0, index]}
    activations, gradients = layer_gradients(model, image, STAGES, scores)

    def by_hand(stage: str, score: str, relu: bool, centres: Any) -> torch.Tensor:
        raw = gradcam_from(activations[stage], gradients[score][stage])
        raw = raw.clamp(min=0) if relu else raw
        return normalize_cams(upsample_cams(raw[None], (height, width), centres))[0]

    for stage in STAGES:
        results = grad_cam(model, image, [TARGET, top, "Egyptian cat"], layer=stage)
        global_result = grad_cam(global_model, image, TARGET, layer=stage)
        for row, placement in enumerate(PLACEMENTS):
            # Placing the cells is drawing the same raw maps: no second Grad-CAM for the other placement.
            result = results if placement == "centres" else dataclasses.replace(results, centres=None)
            maps = result.maps
            cam = maps[0]
            shares["reference"][row].append(share(cam, mask))
            shares["outside"][row].append(share(cam, ~mask))
            shares["cat_mask"][row].append(share(cam, left))
            shares["mean inside"][row].append(float(cam[mask].mean()))
            above_half, above_zero = cam > 0.5, cam > 0
            shares["pixels above half"][row].append(float((above_half & mask).sum()) / max(float(above_half.sum()), 1.0))
            shares["area above 0"][row].append(float((above_zero & mask).sum()) / max(float(above_zero.sum()), 1.0))
            shares["peak ratio"][row].append(float(cam[mask].max()) / float(cam.max()) if float(cam.max()) > 0 else 0.0)
            shares["mirrored mask"][row].append(share(cam, mask.flip(-1)))
            shares["integer mask"][row].append(_integer_mask_share(cam, mask))
            # The same integer index for the whole map too, cam[np.ones_like(mask, dtype=int)]: row 1 for every pixel.
            total = float(mask.numel()) * float(cam[1].sum())
            shares["integer mask, integer total"][row].append(_integer_mask_share(cam, mask) * float(cam.sum()) / total
                                                              if total > 0 else 0.0)
            shares["mean ratio"][row].append(float(cam[mask].mean()) / float(cam.mean()) if float(cam.mean()) > 0 else 0.0)
            outside = float(cam[~mask].sum())
            shares["inside/outside"][row].append(float(cam[mask].sum()) / outside if outside > 0 else 0.0)
            shares["top"][row].append(share(maps[1], mask))
            shares["Egyptian cat"][row].append(share(maps[2], mask))
            shares["no normalisation"][row].append(share(upsample_cams(result.raw[:1], (height, width), result.centres)[0], mask))
            shares["probability"][row].append(share(by_hand(stage, "probability", True, result.centres), mask))
            shares["no ReLU"][row].append(share(by_hand(stage, "logit", False, result.centres), mask))
            placed = global_result if placement == "centres" else dataclasses.replace(global_result, centres=None)
            shares["global model"][row].append(share(placed.maps[0], mask))
        # The share on the stage's own cell grid (never upsampled), the mask brought down to the grid: the cells'
        # nearest pixels (two ways) or each cell's fraction inside the mask. One row per way, both placements alike.
        grid = normalize_cams(gradcam_from(activations[stage], gradients["logit"][stage]).clamp(min=0)[None])[0]
        cells_high, cells_wide = grid.shape
        rows = torch.arange(cells_high)
        columns = torch.arange(cells_wide)
        nearest = mask[(rows * height) // cells_high][:, (columns * width) // cells_wide]
        centred = mask[((2 * rows + 1) * height) // (2 * cells_high)][:, ((2 * columns + 1) * width) // (2 * cells_wide)]
        fraction = torch.nn.functional.adaptive_avg_pool2d(mask[None, None].float(), (cells_high, cells_wide))[0, 0]
        total = float(grid.sum())
        for way, value in enumerate((share(grid, nearest), share(grid, centred),
                                     float((grid * fraction).sum()) / total if total > 0 else 0.0)):
            while len(shares["cell grid"]) <= way:
                shares["cell grid"].append([])
            shares["cell grid"][way].append(value)
    references = {key: np.array(values) for key, values in shares.items()}
    references["integer mask"] = np.concatenate([references["integer mask"], references.pop("integer mask, integer total")])
    references["top class name"] = np.array(top)
    return references


_MISTAKES = {
    "outside": "these are the shares *outside* the mask: sum the map where the mask is True.",
    "cat_mask": ("these are the shares inside the notebook's cat_mask, the left half of the photo (or its columns [:W // 2] "
                 "written by hand): use the object_mask argument."),
    "mean inside": "this is the mean of the map inside the mask; the share is the mass inside divided by the whole "
    "map's mass, cam[mask].sum() / cam.sum().",
    "inside/outside": "this divides the mass inside by the mass outside; divide by the whole map's mass, cam.sum().",
    "top": "these are the shares of {top}, the model's top class, not of class_name: explain the class_name you were "
    "given (give it to grad_cam as the class to explain; without one, grad_cam explains the top class).",
    "Egyptian cat": "these are the shares of 'Egyptian cat' (the notebook's class): explain the class_name you were given.",
    "global model": "these shares come from the notebook's model: use the model argument.",
    "no normalisation": "these are the shares of the maps before normalisation (result.raw upsampled): the text asks "
    "for the normalised Grad-CAM (result.maps, each map from 0 to 1). Normalising subtracts each map's minimum, which "
    "changes the share wherever that minimum is above 0.",
    "pixels above half": "this counts the pixels where the map is above 0.5 (those inside the mask over all of them); "
    "the share is the map's mass inside the mask over its whole mass, cam[mask].sum() / cam.sum().",
    "area above 0": "this counts the pixels where the map is above 0 (an area); the share weighs each pixel by the map's "
    "value: cam[mask].sum() / cam.sum().",
    "peak ratio": "this compares the map's largest value inside the mask with its largest value overall; the share is "
    "the mass inside over the whole mass, cam[mask].sum() / cam.sum().",
    "mirrored mask": "these are the shares inside the mask mirrored left to right: use object_mask as it is given (its "
    "rows and columns are the image's).",
    "mean ratio": "this divides the map's mean inside the mask by its mean overall (the share divided by the mask's "
    "share of the area); the share is cam[mask].sum() / cam.sum().",
    "probability": "these are the shares of Grad-CAM maps made from the gradients of the softmax probability; Grad-CAM "
    "backpropagates the class's logit, the score before the softmax (grad_cam does).",
    "no ReLU": "these are the shares of Grad-CAM maps without the ReLU, normalised from their negative minimum: apply the "
    "ReLU to the weighted sum of the channels before upsampling and normalising (grad_cam does).",
    "integer mask": "the mask was turned into integers (0 and 1, e.g. .astype(np.uint8) or .astype(int)) and used as "
    "an index: an integer array as an index picks rows 0 and 1 of the map (integer-mask indexing, fancy indexing), not the "
    "pixels where the mask is True. Index with the boolean mask itself, cam[mask] with mask of dtype bool.",
    "cell grid": "these shares are computed on each stage's cell grid, with the mask brought down to the cells: the "
    "mask is the image's size, so upsample each map to the image's size first (grad_cam's result.maps are), then sum "
    "it inside the mask.",
}


def _matches(values: np.ndarray, rows: np.ndarray, atol: float = TOLERANCE) -> bool:
    """Whether the shares match one placement's row of a reference."""
    return any(np.allclose(values, row, atol=atol) for row in rows)


def _rounded(values: np.ndarray, rows: np.ndarray, what: str = "") -> str:
    """The message for right shares rounded to a few decimals, or ""."""
    for decimals in (1, 2, 3):
        if not np.allclose(values, np.round(values, decimals), rtol=0, atol=1e-9):
            continue
        for row in rows:
            if np.allclose(values, np.round(row, decimals), rtol=0, atol=1e-6) and not np.allclose(values, row, rtol=0, atol=SHARE_TOLERANCE):
                return (f"{what}the shares are rounded to {decimals} decimal{'s' if decimals > 1 else ''} (yours "
                        f"{', '.join(f'{v:g}' for v in values)}; unrounded {', '.join(f'{v:.4f}' for v in row)}): return "
                        "them as computed, unrounded; round only where you print or plot them.")
    return ""


_UNEXPLAINED = "the shares do not match, nor any mistake the check knows"


def _diagnose_shares(values: np.ndarray, references: dict[str, np.ndarray]) -> str:
    """The known mistake whose shares these are (in either placement), else where they differ."""
    rounded = _rounded(values, references["reference"])
    if rounded:
        return rounded
    if np.ptp(values) < 1e-6 and np.ptp(references["reference"][0]) > TOLERANCE:
        return ("all four shares are equal: the map did not change with the stage. Compute each stage's map at that "
                "stage (grad_cam(..., layer=stage)).")
    if float(values.max()) > 1 and _matches(values / 100, references["reference"]):
        return "these are the shares in percent: return fractions in [0, 1], cam[mask].sum() / cam.sum() (no * 100)."
    for mistake, message in _MISTAKES.items():
        if _matches(values, references[mistake]):
            return message.format(top=repr(str(references["top class name"])))
    if _matches(values, references["reference"][:, ::-1]):
        return "the shares belong to other stages: check which value goes with which key."
    # Each share is another stage's (shifted by one, say): the stages' names and the layers do not go together.
    for row in references["reference"]:
        others = [min((j for j in range(len(STAGES)) if abs(values[i] - row[j]) <= TOLERANCE),
                      key=lambda j: (j != i, abs(values[i] - row[j])), default=None) for i in range(len(STAGES))]
        if None not in others and any(j != i for i, j in enumerate(others)) and len(set(others)) > 1:
            pairs = ", ".join(f"at {STAGES[i]} yours is {STAGES[j]}'s share" for i, j in enumerate(others) if j != i)
            return (f"the shares belong to other stages ({pairs}): the stage names and the layers are out of step "
                    "(shifted by one?). Compute each stage's map at that stage itself, grad_cam(..., layer=stage), "
                    "and store it under that stage's name.")
    worst, reference = _largest_difference(values, references["reference"])
    digits = 3 if abs(values[worst] - reference[worst]) >= 0.01 else 5  # close ones need more digits to differ
    return (f"{_UNEXPLAINED}: at {STAGES[worst]} yours is {values[worst]:.{digits}f}, "
            f"the share of the normalised Grad-CAM's mass inside the mask is {reference[worst]:.{digits}f}.")


def _explain_index_error(error: BaseException) -> str | None:
    """A map with an extra leading dimension of size 1 indexed by the 2-D mask: name that dimension."""
    text = str(error)
    if isinstance(error, IndexError) and "boolean index did not match" in text and " is 1 but " in text:
        return ("localisation_shares raised IndexError: the map indexed by the mask has an extra leading dimension of "
                "size 1, (1, H, W) against the mask's (H, W): result.maps holds one map per class, (K, H, W); take the "
                "class's map, result.maps[0] (print cam.shape and mask.shape to see it).")
    return None


def _check_shares(checker: Checker, model: LoadedModel, global_model: LoadedModel, localisation_shares: Callable,
                  first_shares: list[float] | None = None) -> bool:
    """The shares on the pair photo; returns whether localisation_shares ran at all.

    ``first_shares``: filled with the shares it returned for the photo, to recognise them when it returns them again
    for another image (a result kept from an earlier call).
    """
    first_shares = [] if first_shares is None else first_shares
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    later = ["shares are fractions", "shares match Grad-CAM"]
    # The image and mask objects of this call are kept (alive, so no new array takes their ids) and given again,
    # changed in place, below: a result kept by the array objects (a cache keyed by id(image)) shows there.
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    mask = object_mask(*image.shape[:2])
    ok, shares = checker.call(localisation_shares, model, image, TARGET, mask, explain=_explain_index_error,
                              described=_SHARES_ARGUMENTS)
    mask_edited = 3 in checker.changed_arguments
    # The network's weights or batch-norm statistics changed by this call (the checker restores them afterwards).
    model_changed = checker.noted("state")
    if not ok:
        checker.skip(later, "localisation_shares failed")
        return False
    if not isinstance(shares, Mapping):
        problem = f"localisation_shares should return a dict {{stage: share}}; got {type(shares).__name__}."
    elif sorted(map(str, shares)) != list(STAGES) or not all(isinstance(key, str) for key in shares):
        # repr shows the keys' type: the ints 1..4 are not the strings '1'..'4'.
        keys = "[" + ", ".join(sorted(map(repr, shares))) + "]"
        if all(isinstance(key, str) for key in shares) and sorted(key.strip().lower() for key in shares) == list(STAGES):
            cause = "the names in another case or with spaces: use the stage names exactly as the function is given them."
        else:
            cause = ("the keys must be the stage names as str ('layer1', ..., 'layer4'), the names the function is given "
                     "to look up" + (", not numbers." if any(not isinstance(key, str) for key in shares) else "."))
        problem = (f"localisation_shares should return a dict with exactly the keys {', '.join(STAGES)}; got {keys}: "
                   + cause)
    else:
        problem = ""
    if not checker.require("one share per stage", not problem, problem):
        checker.skip(later, "fix the form of localisation_shares' result first")
        return True
    kinds = [shares[stage] for stage in STAGES]
    # A float as the text asks: a NumPy scalar such as np.float32 is not one (json.dumps refuses it); np.float64 is.
    odd = next((value for value in kinds if not isinstance(value, float)), None)
    if odd is not None:
        hint = (": convert with float(...)" if isinstance(odd, (torch.Tensor, np.ndarray, np.generic, int)) else "")
        kind = f"a NumPy {type(odd).__name__}, not a Python float" if isinstance(odd, np.generic) else type_name(odd)
        checker.require(later[0], False, f"each share should be a number (a float); localisation_shares returns {kind}{hint}.")
        checker.skip(later[1:], "fix the shares' type first")
        return True
    try:
        values = np.array([float(shares[stage]) for stage in STAGES])
    except (TypeError, ValueError):
        checker.require(later[0], False, "each share should be a number (a float).")
        checker.skip(later[1:], "fix the shares' type first")
        return True
    in_range = bool(np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)))
    # Keyed by whether the notebook's global model is the model given: its "global model" row depends on it (and so a
    # reference shared between grading kernels, see reference_store, is one of the same case).
    references = cached(model, ("exercise d", global_model is model), lambda: _references(model, global_model))
    integer_mask = bool(np.all(np.isfinite(values))) and any(
        np.allclose(values, row, rtol=1e-3, atol=TOLERANCE) for row in references["integer mask"])
    checker.require(later[0], in_range, _MISTAKES["integer mask"] if integer_mask else
                    f"shares must be numbers in [0, 1]; got {np.round(values, 3).tolist()}.")
    if integer_mask:
        problem = _MISTAKES["integer mask"]
    elif _matches(values, references["reference"], SHARE_TOLERANCE):
        problem = ""
    elif mask_edited:
        problem = ("the shares differ from those of the mask as it was given: localisation_shares changes object_mask "
                   "in place while it computes them (see above), so it measures with another mask. Compute every share "
                   "with the mask as given (work on a copy).")
    elif model_changed:
        problem = ("the shares differ from those of the model as it was given: localisation_shares changed the network "
                   "(its weights or batch-norm statistics, see above) before computing them, so they are the shares of "
                   "another network's maps. Leave the model as it is: no forward pass in training mode, no change to "
                   "its weights.")
    else:
        problem = _diagnose_shares(values, references)
        if problem.startswith(_UNEXPLAINED):
            problem = _kept_state_problem(checker, model, localisation_shares, image, mask, values, problem) or problem
    first_shares[:] = [float(value) for value in values]
    # On the photo, the network input has the photo's size (at full size) and the maps the photo's: a copy of another
    # size, with odd sides, tells maps made with the image from maps of a fixed size or made from the network input.
    problem = problem or _other_size_problem(checker, model, localisation_shares, first_shares)
    # The same array as the photo, mirrored in place: a result kept by the image's shape or by the array object.
    problem = problem or _same_shape_problem(checker, model, localisation_shares, image, mask, first_shares)
    # Another mask, the same mask array changed in place, on the same photo (neither columns nor a box, nor symmetric):
    # a result kept by image or class, or a mask read by its columns, its box or flipped, shows here.
    problem = problem or _other_mask_problem(checker, model, localisation_shares, image, mask, first_shares)
    # Another class on the same photo and mask: a class fixed in the function, or a name whose case was changed.
    problem = problem or _other_class_problem(checker, model, localisation_shares, image, mask, first_shares)
    # On the photo every stage's map has a minimum of 0, where normalising changes no share: a made-up network
    # whose maps are positive everywhere tells normalised maps from raw ones.
    problem = problem or _positive_maps_problem(checker, localisation_shares)
    problem = problem or _other_model_problem(checker, localisation_shares, model.name, first_shares, model)
    if not problem and not _matches(values, references["reference"], PRECISION):
        # Right within SHARE_TOLERANCE everywhere, but not to float32's precision on the photo: a map of another size
        # than the image (the mask resized to it) shows on a mask of one-pixel stripes; low precision does not.
        problem = _striped_mask_problem(checker, model, localisation_shares)
    if not problem and not _matches(values, references["reference"], PRECISION):
        worst, reference = _largest_difference(values, references["reference"])
        problem = (f"the shares are right to about 3 digits only (off by up to {abs(values[worst] - reference[worst]):.1e}, "
                   f"{values[worst]:.5f} for {reference[worst]:.5f} at {STAGES[worst]}), though right in every other "
                   "way: they are computed in a low precision (float16 or bfloat16 keeps about 3 significant digits). "
                   "Compute the map's sums in float32 or float64.")
    checker.require(later[1], not problem, problem)
    return True


def _striped_mask(height: int, width: int) -> np.ndarray:
    """Every other column of the image: a mask that any resizing of it to another size changes a lot."""
    mask = np.zeros((height, width), dtype=bool)
    mask[:, 1::2] = True
    return mask


def _shares_per_placement(model: LoadedModel, image: np.ndarray, mask: np.ndarray,
                          class_name: str = TARGET) -> np.ndarray:
    """The reference shares of ``mask`` in the class's map at every stage: one row per placement of the cells."""
    mask = torch.from_numpy(mask)
    rows: list[list[float]] = [[] for _ in PLACEMENTS]
    for stage in STAGES:
        results = grad_cam(model, image, class_name, layer=stage)
        for row, placement in enumerate(PLACEMENTS):
            result = results if placement == "centres" else dataclasses.replace(results, centres=None)
            rows[row].append(share(result.maps[0], mask))
    return np.array(rows)


def _striped_references(model: LoadedModel) -> np.ndarray:
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    return _shares_per_placement(model, image, _striped_mask(*image.shape[:2]))


def _returned_shares(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                     mask: np.ndarray, what: str, failed: str, explain: Callable | None = None,
                     class_name: str = TARGET) -> tuple[np.ndarray | None, str]:
    """localisation_shares on one more input: (its shares in STAGES' order, "") or (None, the message of its failure)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    ok, shares = checker.call(localisation_shares, model, image, class_name, mask, explain=explain,
                              described=_SHARES_ARGUMENTS)
    if not ok:
        # The error is recorded by the call; the check it belongs to fails with the same message.
        return None, checker.result.problems[-1] if checker.result.problems else failed
    try:
        return np.array([float(shares[stage]) for stage in STAGES]), ""
    except Exception:  # noqa: BLE001 - the form is judged on the photo's result
        return None, f"{what}, localisation_shares did not return a share per stage."


def _largest_difference(values: np.ndarray, references: np.ndarray) -> tuple[int, np.ndarray]:
    """The stage where ``values`` differ most from the closest reference row, and that row."""
    reference = min(references, key=lambda row: float(np.abs(values - row).max()))
    return int(np.abs(values - reference).argmax()), reference


def _striped_mask_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable) -> str:
    """What is wrong with localisation_shares given the photo and a mask of every other column, or "".

    Right shares are the maps' mass in those columns at the image's size; a map of another size with the mask resized
    to it (nearest) keeps or drops whole columns of the mask, and its shares move far from the right ones.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    values, failure = _returned_shares(checker, model, localisation_shares, image, _striped_mask(*image.shape[:2]),
                                       "given a mask of every other column", "localisation_shares failed on a striped mask.")
    if values is None:
        return failure
    references = cached(model, "exercise d: striped mask", lambda: _striped_references(model))
    if _matches(values, references, SHARE_TOLERANCE):
        return ""
    worst, reference = _largest_difference(values, references)
    return (f"given the photo and a mask of every other column (one-pixel stripes), the shares differ: at {STAGES[worst]} "
            f"yours is {values[worst]:.4f}, the share of the normalised Grad-CAM's mass inside the mask is "
            f"{reference[worst]:.4f}: the map and the mask are compared at another size than the image's (a resized mask "
            "keeps or drops whole stripes). " + _SIZE_CAUSE[0].upper() + _SIZE_CAUSE[1:])


#: (H, W) of the resized copy of the photo: odd sides, neither the photo's size (224 x 448, also the network input's
#: at full size) nor the check's smaller network input (112 x 223), nor a multiple of either.
OTHER_SIZE = (153, 305)
_SIZE_CAUSE = ("the map must have the image's size: make it with the image itself, grad_cam(model, image, ...), whose maps "
               "have the image's size, not with a fixed size (output_size=(224, 448)) nor from the preprocessed tensor "
               "(model.to_input(image) or model.preprocess(image), the network input's size) resized afterwards.")


def _other_size_image() -> np.ndarray:
    """The pair photo resized to :data:`OTHER_SIZE`."""
    photo = Image.fromarray(load_image(DATA_DIR / "cat_and_coffee.png"))
    return np.array(photo.resize(OTHER_SIZE[::-1], Image.Resampling.BILINEAR))


def _other_size_references(model: LoadedModel) -> np.ndarray:
    return _shares_per_placement(model, _other_size_image(), object_mask(*OTHER_SIZE))


_KEPT = ("localisation_shares returns exactly the shares it returned for the notebook's photo: a result kept from an "
         "earlier call (a cache keyed by the class name, or a global) does not depend on the image, the mask or the "
         "model. Compute the shares from the arguments of each call.")


def _other_size_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable,
                        first_shares: Sequence[float] = ()) -> str:
    """What is wrong with localisation_shares on a copy of the photo of another size (real, non-zero shares), or ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = _other_size_image()
    size = f"{OTHER_SIZE[0]}x{OTHER_SIZE[1]}"
    input_height, input_width = model.preprocess(image).shape[-2:]
    what = (f"on a {size} copy of the photo (neither the notebook photo's size nor the network input's, "
            f"{input_height}x{input_width} here)")
    explained: list[str] = []

    def explain(error: BaseException) -> str | None:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        if isinstance(error, (IndexError, RuntimeError, ValueError)) and any(
                fragment in str(error) for fragment in ("boolean index did not match", "shape of the mask", "must match the size")):
            explained.append(f"{what}, localisation_shares raised {type(error).__name__}: its map and the mask (the "
                             f"image's size, {size}) have different sizes: " + _SIZE_CAUSE)
            return explained[-1]
        return None

    values, failure = _returned_shares(checker, model, localisation_shares, image, object_mask(*OTHER_SIZE), what,
                                       f"localisation_shares failed {what}.", explain=explain)
    if values is None:
        return explained[-1] if explained else failure
    references = cached(model, "exercise d: other size", lambda: _other_size_references(model))
    if _matches(values, references, SHARE_TOLERANCE):
        return ""
    if len(first_shares) == len(values) and np.array_equal(values, np.array(first_shares)):
        return f"{what}, " + _KEPT
    changing = _changed_since_problem(checker, model, localisation_shares, first_shares, what)
    if changing:
        return changing
    worst, reference = _largest_difference(values, references)
    return (f"{what}, the shares differ: at {STAGES[worst]} yours is {values[worst]:.4f}, the share of the normalised "
            f"Grad-CAM's mass inside the mask is {reference[worst]:.4f}. Right on the photo but not on another size: "
            + _SIZE_CAUSE)


def _changes_by_itself(checker: Checker, model: LoadedModel) -> bool:
    """Whether the network can give other maps from call to call without any state of the function's: it is in
    training mode (left so by an earlier cell: a probe pass there updates the batch-norm statistics), or a call
    changed its weights or statistics."""
    return any(module.training for module in model.network.modules()) or checker.noted("state")


def _changed_since_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable,
                           first_shares: Sequence[float], what: str) -> str:
    """For wrong shares on a later input: the first call's input again (new arrays); if its shares are not the first
    call's any more, the message (the result depends on earlier calls), else "". Only on a failure path."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if len(first_shares) != len(STAGES) or _changes_by_itself(checker, model):
        return ""
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    again = _quiet_shares(checker, model, localisation_shares, image, object_mask(*image.shape[:2]))
    first = np.array(first_shares)
    if again is None or np.allclose(again, first, rtol=0, atol=1e-9):
        return ""
    stage = int(np.abs(again - first).argmax())
    return (f"{what}, the shares are wrong, and called again with the photo, class and mask of its first call, "
            f"localisation_shares returns other shares than it did then (at {STAGES[stage]} {first[stage]:.4f}, now "
            f"{again[stage]:.4f}): the result depends on something kept between calls (a list of earlier shares, a "
            "running mean or a counter, at module level or in a default argument). Compute the shares from the "
            "arguments of each call alone.")


def _kept_state_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                        mask: np.ndarray, values: np.ndarray, unexplained: str) -> str:
    """For wrong shares on the photo that no known mistake explains: the cause if it is state kept between calls, or "".

    Only on that failure path: the same call again, with new arrays of the same values (shares that change from call
    to call: a running mean, a list of earlier results); if they come back the same, a copy of the photo of another
    size (right there: a result kept from an earlier call on an image of the photo's size).
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    if _changes_by_itself(checker, model):
        return ""
    again = _quiet_shares(checker, model, localisation_shares, image.copy(), mask.copy())
    if again is None:
        return ""
    if not np.allclose(again, values, rtol=0, atol=1e-9):
        stage = int(np.abs(again - values).argmax())
        return (f"called twice with the same photo, class and mask, localisation_shares returns other shares the second "
                f"time (at {STAGES[stage]} {values[stage]:.4f}, then {again[stage]:.4f}): the result depends on "
                "something kept between calls (a list of earlier shares, a running mean or a counter, at module level or "
                "in a default argument). Compute the shares from the arguments of each call alone.")
    if _other_size_problem(checker, model, localisation_shares):
        return ""
    unexplained = unexplained.replace(_UNEXPLAINED, "the shares on the photo do not match", 1)
    return (f"{unexplained} Yet on a {OTHER_SIZE[0]}x{OTHER_SIZE[1]} copy of the photo they are right, and a second "
            f"call on the photo ({image.shape[0]}x{image.shape[1]}) gives the same wrong shares: most likely a result kept "
            "from an earlier call on an image of the photo's size, such as the notebook's own calls (a cache keyed by the "
            "image's shape or size, not its pixels). Compute the shares from the arguments of each call.")


def _quiet_shares(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                  mask: np.ndarray) -> np.ndarray | None:
    """localisation_shares on one more input, only to tell causes apart: its shares, or None (an error is not reported
    here: the calls that judge results report errors)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    shares = checker.quiet_call(localisation_shares, model, image, TARGET, mask)
    try:
        return np.array([float(shares[stage]) for stage in STAGES])
    except Exception:  # noqa: BLE001 - any other form: nothing to tell apart
        return None


_BY_OBJECT = ("a result kept from an earlier call by the array object (a cache keyed by id(image) or id(object_mask)): "
              "the same array changed in place, or a new array that takes the id of one freed before (Python reuses "
              "ids), gets an old result.")


def _another_input_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                           mask: np.ndarray, what: str, key: str, kept: str, hint: str,
                           first_shares: Sequence[float] = (), fresh: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
                           by_object: str = "", first_model: LoadedModel | None = None) -> str:
    """What is wrong with localisation_shares on one more input, or "".

    Its shares are judged against the reference shares of ``image`` and ``mask`` (cached under ``key``); ``kept``
    finishes the message for shares equal to the first call's (a result kept from it), ``hint`` the message for any
    other difference (unless the first call's input, given to ``first_model`` (the first call's model, if given)
    again, gets other shares than then: the result depends on earlier calls). ``fresh``: new arrays of the same
    values, for inputs that are the first call's arrays changed in place: only where the first call's shares come
    back, a call with them tells a result kept by the array objects (``by_object`` finishes that message) from one
    kept by something else.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    values, failure = _returned_shares(checker, model, localisation_shares, image, mask, what,
                                       f"localisation_shares failed {what}.")
    if values is None:
        return failure
    references = cached(model, key, lambda: _shares_per_placement(model, image, mask))
    if _matches(values, references, SHARE_TOLERANCE):
        return ""
    if len(first_shares) == len(values) and np.array_equal(values, np.array(first_shares)):
        if fresh is not None:
            # New arrays get the right shares, or those of an array freed since whose id they take: not the old ones.
            again = _quiet_shares(checker, model, localisation_shares, *fresh())
            if again is not None and not np.array_equal(again, values):
                return (f"{what}, localisation_shares returns exactly the shares it returned {by_object}, though new "
                        f"arrays of the same values get other shares: {_BY_OBJECT} Compute the shares from the "
                        "arguments of each call.")
            if again is not None:
                what += ", and on new arrays of the same values"
        return f"{what}, localisation_shares returns exactly the shares it returned {kept} Compute the shares from the arguments of each call."
    changing = first_model and _changed_since_problem(checker, first_model, localisation_shares, first_shares, what)
    if changing:
        return changing
    worst, reference = _largest_difference(values, references)
    return (f"{what}, the shares differ: at {STAGES[worst]} yours is {values[worst]:.4f}, the share of the normalised "
            f"Grad-CAM's mass inside the mask is {reference[worst]:.4f}. {hint}")


def _same_shape_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                        mask: np.ndarray, first_shares: Sequence[float] = ()) -> str:
    """What is wrong with localisation_shares on the first call's image array mirrored in place, or "".

    The same model, class, mask and shape as the first call (the same arrays), other pixels: a result kept from an
    earlier call by the image's shape or by the array object (a cache keyed by id(image)) shows here; only if the first
    call's shares come back, a new array of the mirrored pixels tells the two apart. The image is mirrored back after.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image[...] = image[:, ::-1].copy()
    try:
        return _another_input_problem(
            checker, model, localisation_shares, image, mask,
            f"on the photo mirrored left to right (the check mirrored, in place, the array it gave before, "
            f"{image.shape[0]}x{image.shape[1]}), with the same class and mask", "exercise d: mirrored",
            "for the photo: a result kept from an earlier call (a cache keyed by the image's shape or size, not its "
            "pixels) is given for another image of that size.",
            "Do the shares depend on something kept from an earlier call?", first_shares,
            fresh=lambda: (image.copy(), mask.copy()), by_object="for the photo before it was mirrored", first_model=model)
    finally:
        image[...] = image[:, ::-1].copy()


def round_mask(height: int, width: int) -> np.ndarray:
    """An ellipse over the espresso's upper part: neither a band of whole columns nor a rectangle, nor symmetric from
    top to bottom, so that a mask read by its columns, its bounding box or flipped gives other shares."""
    rows, columns = np.mgrid[0:height, 0:width]
    centre_row, centre_column = 0.35 * height, 0.72 * width
    return ((rows - centre_row) / (0.3 * height)) ** 2 + ((columns - centre_column) / (0.16 * width)) ** 2 <= 1


def _other_mask_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                        mask: np.ndarray, first_shares: Sequence[float] = ()) -> str:
    """What is wrong with localisation_shares on the first call's photo with another mask (an ellipse), or "".

    The other mask is the first call's mask array, changed in place (and put back after): a result kept by the image,
    the class or the mask object shows here.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    given = mask.copy()
    mask[...] = round_mask(*image.shape[:2])
    try:
        return _another_input_problem(
            checker, model, localisation_shares, image, mask,
            "on the same photo and class with another mask, an ellipse over the espresso's upper part (not whole "
            "columns, not a rectangle; the check changed, in place, the mask array it gave before)", "exercise d: round mask",
            "with the first mask: a result kept from an earlier call (a cache keyed by the image or the class, not the mask).",
            "Use the mask pixel by pixel as it is given, cam[mask] (mask[row, column] for the image's pixel (row, column)): "
            "not its columns or rows alone, its bounding box, or the mask flipped or transposed.", first_shares,
            fresh=lambda: (image.copy(), mask.copy()), by_object="with the first mask", first_model=model)
    finally:
        mask[...] = given


#: The other class asked for: ImageNet also has 'cardigan' (the sweater), so a name whose case was changed
#: (class_name.lower()) explains another class; on the photo its shares differ from espresso's and the sweater's.
OTHER_CLASS = "Cardigan"


def _other_class_problem(checker: Checker, model: LoadedModel, localisation_shares: Callable, image: np.ndarray,
                         mask: np.ndarray, first_shares: Sequence[float] = ()) -> str:
    """What is wrong with localisation_shares asked for another class on the first call's photo and mask, or ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    what = f"on the same photo and mask with class_name {OTHER_CLASS!r} (a dog breed)"
    values, failure = _returned_shares(checker, model, localisation_shares, image, mask, what,
                                       f"localisation_shares failed {what}.", class_name=OTHER_CLASS)
    if values is None:
        return failure
    references = cached(model, "exercise d: other class", lambda: {
        name: _shares_per_placement(model, image, mask, name) for name in (OTHER_CLASS, OTHER_CLASS.lower())})
    if _matches(values, references[OTHER_CLASS], SHARE_TOLERANCE):
        return ""
    if len(first_shares) == len(values) and np.array_equal(values, np.array(first_shares)):
        return (f"{what}, localisation_shares returns exactly the shares it returned for {TARGET!r}: class_name is not "
                "used (a class fixed in the function, the notebook's?), or a result is kept from an earlier call by the "
                "image and mask, not the class. Explain the class_name given: grad_cam(model, image, class_name, "
                "layer=stage).")
    if _matches(values, references[OTHER_CLASS.lower()], SHARE_TOLERANCE):
        return (f"{what}, these are the shares of {OTHER_CLASS.lower()!r}, the sweater: the name's case was changed "
                "(.lower()?). Class names are case-sensitive (ImageNet has both), so give class_name to grad_cam as it "
                "is given.")
    worst, reference = _largest_difference(values, references[OTHER_CLASS])
    return (f"{what}, the shares differ: at {STAGES[worst]} yours is {values[worst]:.4f}, the share of the normalised "
            f"Grad-CAM's mass inside the mask is {reference[worst]:.4f}. Right for {TARGET!r}, not for another class: "
            "does the function explain the class_name it is given?")


def _other_model_problem(checker: Checker, localisation_shares: Callable, name: str, first_shares: Sequence[float] = (),
                         first_model: LoadedModel | None = None) -> str:
    """What is wrong with localisation_shares given another network on the same photo, class and mask, or "".

    The other network carries the notebook model's ``name``: a cache keyed by the name is not keyed by the model.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = load_image(DATA_DIR / "cat_and_coffee.png")
    return _another_input_problem(
        checker, dataclasses.replace(_positive_model(), name=name), localisation_shares, image, object_mask(*image.shape[:2]),
        "with another network (a made-up one) on the same photo, class and mask", "exercise d: photo",
        "for the notebook's model: a result kept from an earlier call (a cache not keyed by the model).",
        "Right for the notebook's model, not for another: does the function use something of the notebook's (its "
        "global model, photo or class list) instead of its arguments?", first_shares, first_model=first_model)


class _PositiveStages(nn.Module):
    """A tiny network with ResNet's stage names whose Grad-CAM at every stage is positive everywhere (minimum above 0).

    Positive weights and biases keep every ReLU open, so each logit grows with every activation: all gradients are
    positive, and so is every weighted sum of the (positive, image-dependent) channels.
    """

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(22)
        for index, stride in enumerate((4, 2, 2, 2), start=1):
            convolution = nn.Conv2d(3, 3, kernel_size=stride, stride=stride)
            with torch.no_grad():
                convolution.weight.copy_(torch.rand(convolution.weight.shape, generator=generator) / (3 * stride * stride))
                convolution.bias.fill_(2.0)
            setattr(self, f"layer{index}", nn.Sequential(convolution, nn.ReLU()))
        self.fc = nn.Linear(3, 1000)
        with torch.no_grad():
            self.fc.weight.copy_(torch.rand(1000, 3, generator=generator) + 0.1)
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _positive_model() -> LoadedModel:
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    return LoadedModel(network=_PositiveStages().eval().requires_grad_(False), name="positive maps (a test network)",
                       mean=mean, std=std, preprocess=make_preprocess(mean, std, 64), pretrained=False)


def _positive_image(width: int = 96) -> np.ndarray:
    """A 64 x ``width`` pattern: maps that vary over the image, so that the share inside the mask is not the mask's area.

    ``width=64`` gives a square image: there a mask used with its rows and columns swapped (``mask.T``) still fits.
    """
    rows, columns = np.mgrid[0:64, 0:width]
    return np.stack([(rows * columns) % 251, columns * 2, (rows * 4 + columns) % 256], axis=-1).astype(np.uint8)


#: The made-up network's images: 64 x 96, and a square one, whose mask (the right part) is not its own transpose.
POSITIVE_WIDTHS = (96, 64)


def _positive_references(model: LoadedModel, width: int = 96) -> dict[str, np.ndarray]:
    image = _positive_image(width)
    height, width = image.shape[:2]
    mask = torch.from_numpy(object_mask(height, width))
    keys = ("reference", "no normalisation", "transposed mask")
    shares: dict[str, list[list[float]]] = {key: [[] for _ in PLACEMENTS] for key in keys}
    for stage in STAGES:
        results = grad_cam(model, image, TARGET, layer=stage)
        for row, placement in enumerate(PLACEMENTS):
            result = results if placement == "centres" else dataclasses.replace(results, centres=None)
            shares["reference"][row].append(share(result.maps[0], mask))
            shares["no normalisation"][row].append(share(upsample_cams(result.raw, (height, width), result.centres)[0], mask))
            shares["transposed mask"][row].append(share(result.maps[0], mask.T) if height == width else float("nan"))
    return {key: np.array(values) for key, values in shares.items()}


def _positive_maps_problem(checker: Checker, localisation_shares: Callable) -> str:
    """What is wrong with localisation_shares on the made-up network whose maps are positive everywhere, or ""."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    model = _positive_model()
    for width in POSITIVE_WIDTHS:
        image = _positive_image(width)
        size = f"{image.shape[0]}x{image.shape[1]}"
        ok, shares = checker.call(localisation_shares, model, image, TARGET, object_mask(*image.shape[:2]), described=_SHARES_ARGUMENTS)
        if not ok:
            # The error is recorded by the call; the check fails with the same message (said once).
            return checker.result.problems[-1] if checker.result.problems else f"localisation_shares failed with a {size} image."
        try:
            values = np.array([float(shares[stage]) for stage in STAGES])
        except Exception:  # noqa: BLE001 - the form is judged on the real model's result
            return (f"on a made-up network whose maps are positive everywhere, with a {size} image, localisation_shares "
                    "did not return a share per stage.")
        references = cached(model, ("exercise d: positive maps", width), lambda: _positive_references(model, width))
        if _matches(values, references["reference"], SHARE_TOLERANCE):
            continue
        what = f"on a made-up network whose Grad-CAM is positive everywhere at every stage (each map's minimum above 0), with a {size} image"
        rounded = _rounded(values, references["reference"], f"{what}, ")
        if rounded:
            return rounded
        if _matches(values, references["no normalisation"]):
            return (f"{what}, these are the shares of the maps before normalisation (or divided by their maximum alone): "
                    "the text asks for the normalised Grad-CAM, (x - min) / (max - min), as result.maps holds it. "
                    "Subtracting each map's minimum changes the share wherever that minimum is above 0.")
        if image.shape[0] == image.shape[1] and _matches(values, references["transposed mask"]):
            return (f"{what} (square, so a mask with its rows and columns swapped still fits), these are the shares inside "
                    "the mask transposed: use object_mask as it is given, mask[row, column] for the image's pixel "
                    "(row, column), with no .T or swapped axes, whatever the image's shape.")
        reference = references["reference"][0]
        worst = int(np.abs(values - reference).argmax())
        return (f"{what}, the shares differ: at {STAGES[worst]} yours is {values[worst]:.3f}, the share of the normalised "
                f"Grad-CAM's mass inside the mask is {reference[worst]:.3f}.")
    return ""


def _check_zero_maps(checker: Checker, localisation_shares: Callable, first_shares: Sequence[float] = ()) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    # Saturated (255) and black (0) pixels among the grey: an in-place edit that only touches those shows.
    image = np.full((64, 96, 3), 128, dtype=np.uint8)
    image[::2, ::3] = 255
    image[1::2, 1::4] = 0
    mask = object_mask(64, 96)
    name = "all-zero maps give share 0"

    def explain(error: BaseException) -> str | None:
        if isinstance(error, ZeroDivisionError):
            return ("for an all-zero map, cam.sum() is 0 and localisation_shares divides by it: the share of a map "
                    "with no mass is 0, as the text says.")
        return None

    zero = _zero_model()
    before = [module.training for module in zero.network.modules()]
    ok, shares = checker.call(localisation_shares, zero, image, TARGET, mask, explain=explain, described=_SHARES_ARGUMENTS)
    if checker.mode_kept(localisation_shares, zero.network, before) and not all(
            parameter.requires_grad for parameter in zero.network.parameters()):
        checker.note_side_effect("requires_grad off", f"{shown_name(localisation_shares)} "
                                 "switched off requires_grad of the network's weights (requires_grad_(False)) and left it "
                                 "off: given a network whose weights train (a made-up one in training mode), it must "
                                 "leave them trainable, or the next training step updates nothing. Grad-CAM needs no "
                                 "change of the weights' flags: leave them alone, or put each flag back as it was before "
                                 "returning.")
    if not ok:
        return
    try:
        values = np.array([float(shares[stage]) for stage in STAGES])
    except Exception:  # noqa: BLE001 - the form is judged on the real model's result
        nones = isinstance(shares, Mapping) and any(shares.get(stage, 0.0) is None for stage in STAGES)
        checker.require(name, False, "on a model whose maps are all zero, localisation_shares returned None as a share: "
                        "the share of a map with no mass is 0.0, a float, as the text says." if nones else
                        "on a model whose maps are all zero, localisation_shares did not return a share per stage"
                        + (f": its keys are {sorted(map(repr, shares))}, not {', '.join(STAGES)}." if isinstance(shares, Mapping)
                           and not all(stage in shares for stage in STAGES) else "."))
        return
    odd = next((shares[stage] for stage in STAGES if not isinstance(shares[stage], float)), None)
    if odd is not None and not np.isnan(values).any() and np.all(values == 0):
        problem = (f"on a model whose maps are all zero, the shares are right but not floats: localisation_shares returns "
                   f"{type_name(odd)} {odd!r}, and the text asks for each share as a float: return 0.0 for a map with no "
                   "mass, not the int 0.")
    elif np.isnan(values).any():
        problem = ("for an all-zero map, cam.sum() is 0 and your share is NaN: the share of a map with no mass is 0, "
                   "as the text says (check cam.sum() > 0 before dividing).")
    elif not np.all(values == 0) and len(first_shares) == len(values) and np.array_equal(values, np.array(first_shares)):
        problem = "on a model whose maps are all zero, " + _KEPT
    elif not np.all(values == 0):
        # Shares that differ between the stages come from some real map: the notebook's model, most likely, unless a
        # second call with the same arguments gives others (only on this failure path): then from earlier calls.
        again = _quiet_shares(checker, zero, localisation_shares, image, mask) if np.ptp(values) > 1e-6 else None
        if again is not None and not np.allclose(again, values, rtol=0, atol=1e-9):
            cause = (f", and {np.round(again, 3).tolist()} from a second call with the same arguments: the result depends "
                     "on something kept between calls (a list of earlier shares, a running mean or a counter, at module "
                     "level or in a default argument). Compute the shares from the arguments of each call alone.")
        else:
            cause = (". Did you use the notebook's model instead of the model argument?" if np.ptp(values) > 1e-6 else
                     ": a map with no mass has share 0, not another constant.")
        problem = (f"on a model whose maps are all zero, the shares should be 0 (no mass, none on the object); got "
                   f"{np.round(values, 3).tolist()}" + cause)
    else:
        problem = ""
    checker.require(name, not problem, problem)


def _first_stage(shares: Mapping[str, float], threshold: float = 0.8, *, order: Any = STAGES, strict: bool = False) -> Any:
    for stage in order if order is not None else shares:
        if shares[stage] > threshold or (not strict and shares[stage] == threshold):
            return stage
    return None


_STAGE_MISTAKES: list[tuple[Callable[..., Any], str]] = [
    (lambda s, t=0.8: next((stage for stage in STAGES if int(s[stage] * 100) >= int(t * 100)), None),
     "the shares and the threshold are compared in whole percents (int(share * 100) >= int(threshold * 100)): a share of "
     "0.801 then reaches 0.805, and 0.57 * 100 is 56.99... in floating point, so int() makes it 56. Compare the share "
     "itself with the threshold, shares[stage] >= threshold."),
    (lambda s, t=0.8: _first_stage(s, t, order=None),
     "first_localised_stage follows the dict's order; go through the stages from layer1 to layer4, whatever the dict's order."),
    (lambda s, t=0.8: _first_stage(s, t, strict=True),
     "a share equal to the threshold reaches it: compare with >=, not >."),
    (lambda s, t=0.8: _first_stage(s, 0.8),
     "first_localised_stage ignores its threshold argument (it always uses 0.8): compare with threshold."),
    (lambda s, t=0.8: max(STAGES, key=lambda stage: s[stage]) if max(s.values()) >= t else None,
     "this is the stage with the largest share; return the first stage (from layer1) whose share reaches the threshold."),
    (lambda s, t=0.8: next((stage for stage in reversed(STAGES) if s[stage] >= t), None),
     "this is the last stage that reaches the threshold; return the first, going from layer1 to layer4."),
    (lambda s, t=0.8: _first_stage(s, t) or "layer4",
     "when no stage reaches the threshold, return None."),
    (lambda s, t=0.8: next((stage for stage in STAGES if s[stage] and s[stage] >= t), None),
     "a share of exactly 0.0 never counts: with threshold=0 every share reaches the threshold, 0.0 included (0.0 >= 0), "
     "but a truthiness test (if shares[stage] and ...) skips it because 0.0 is falsy. Compare shares[stage] >= threshold "
     "alone."),
    (lambda s, t=0.8: next((stage for stage in STAGES if round(s[stage], 2) >= t), None),
     "a share just below the threshold counts as reaching it (0.799 for 0.8): the shares are rounded (round(share, 2)) "
     "or compared with a tolerance; compare the share itself with >= threshold."),
    (lambda s, t=0.8: next((stage for stage in STAGES if s[stage] >= t - 0.01), None),
     "a share just below the threshold counts as reaching it (0.799 for 0.8): the comparison has a tolerance (threshold "
     "- 0.01, math.isclose); compare the share itself with >= threshold."),
    (lambda s, t=0.8: next((stage for stage in STAGES if round(s[stage], 6) >= t), None),
     "a share just below the threshold counts as reaching it (0.7999997 for 0.8): the share is rounded to 6 decimals "
     "before the comparison (round(share, 6), '%.6f' or f'{share:.6f}' read back as a number). Compare the share "
     "itself with >= threshold."),
    (lambda s, t=0.8: next((stage for stage in STAGES if np.float32(s[stage]) >= t), None),
     "a share below the threshold by less than float32's spacing (about 6e-8 near 0.8) counts as reaching it: the "
     "share is compared in float32 (np.float32, torch.float32). Compare the Python float share itself with >= threshold."),
    (lambda s, t=0.8: _first_stage(s, t, order=STAGES[1:]),
     "first_localised_stage never looks at layer1: go through all four stages, from layer1 to layer4."),
]

#: (shares, threshold or None for the default, expected) with known answers, each telling mistakes apart.
STAGE_CASES: list[tuple[dict[str, float], float | None, str | None]] = [
    ({"layer1": 0.3, "layer2": 0.7, "layer3": 0.5, "layer4": 0.9}, 0.6, "layer2"),
    ({"layer4": 0.9, "layer3": 0.65, "layer2": 0.2, "layer1": 0.1}, 0.6, "layer3"),
    ({"layer1": 0.5, "layer2": 0.5, "layer3": 0.55, "layer4": 0.58}, 0.6, None),
    ({"layer1": 0.1, "layer2": 0.85, "layer3": 0.95, "layer4": 0.7}, 0.5, "layer2"),
]
THRESHOLD_CASES: list[tuple[dict[str, float], float | None, str | None]] = [
    ({"layer1": 0.2, "layer2": 0.8, "layer3": 0.85, "layer4": 0.95}, 0.8, "layer2"),
    ({"layer1": 0.3, "layer2": 0.5, "layer3": 0.7, "layer4": 0.9}, 0.45, "layer2"),
    ({"layer1": 0.3, "layer2": 0.5, "layer3": 0.7, "layer4": 0.9}, None, "layer4"),
    ({"layer1": 0.8, "layer2": 0.4, "layer3": 0.9, "layer4": 0.3}, None, "layer1"),  # layer1 reaches the default exactly
    # threshold 0: every share reaches it, a share of exactly 0.0 too (a truthiness test skips it)
    ({"layer1": 0.0, "layer2": 0.0, "layer3": 0.4, "layer4": 0.9}, 0.0, "layer1"),
    # just below the threshold does not reach it: no rounding, no tolerance (round(share, 2), math.isclose, t - 0.01)
    ({"layer1": 0.799, "layer2": 0.7996, "layer3": 0.81, "layer4": 0.9}, None, "layer3"),
    ({"layer1": 0.2, "layer2": 0.4996, "layer3": 0.5, "layer4": 0.7}, 0.5, "layer3"),
    # below the default by 3e-7, five times float32's spacing there: rounded to 6 decimals ('%.6f') it reaches 0.8
    ({"layer1": 0.2, "layer2": 0.8 - 3e-7, "layer3": 0.9, "layer4": 0.95}, None, "layer3"),
]


def _generated_stage_cases(seed: int = 22, count: int = 12) -> list[tuple[dict[str, float], float | None, str | None]]:
    """Seeded shares with a known answer: each stage first in turn (layer1 too), ties with the threshold, none, shuffled keys."""
    generator = np.random.default_rng(seed)
    cases: list[tuple[dict[str, float], float | None, str | None]] = []
    for index in range(count):
        threshold = float(np.round(generator.uniform(0.3, 0.9), 2))
        values = np.round(generator.uniform(0.0, threshold - 0.01, size=4), 2)
        first = index % 5  # 0..3: that stage reaches the threshold first; 4: none does
        if first < 4:
            values[first] = threshold if index % 2 else min(1.0, threshold + 0.05)  # equal to the threshold every other case
            values[first + 1:] = np.round(generator.uniform(0.0, 1.0, size=3 - first), 2)
        order = [str(stage) for stage in generator.permutation(STAGES)]  # plain str keys, as the stage names are
        shares = {stage: float(values[STAGES.index(stage)]) for stage in order}
        expected = next((stage for stage in STAGES if shares[stage] >= threshold), None)
        cases.append((shares, threshold, expected))
    for index in range(2):  # a share below the threshold by less than float32's spacing there: float32 rounds it up
        while True:  # a threshold whose float32 rounding is at or above it, and a share float32 rounds to the same
            threshold = float(np.round(generator.uniform(0.5, 0.9), 2))
            close = threshold - float(generator.uniform(1e-9, 1.5e-8))
            if close < threshold and float(np.float32(close)) >= threshold:
                break
        values = np.round(generator.uniform(0.0, threshold - 0.05, size=4), 2)
        values[int(generator.integers(0, 3))] = close
        values[3] = min(1.0, threshold + 0.05)
        shares = {stage: float(values[STAGES.index(stage)]) for stage in STAGES}
        cases.append((shares, threshold, "layer4"))
    # thresholds between whole percents (0.805) and one that is not a float of its own in percent (0.57 * 100 is
    # 56.99...): a share in the same whole percent but below the threshold does not reach it
    for threshold, below in ((0.805, 0.801), (0.57, 0.565), (0.333, 0.3305)):
        values = np.round(generator.uniform(0.0, threshold - 0.1, size=4), 2)
        values[int(generator.integers(0, 3))] = below
        values[3] = round(threshold + 0.05, 3)
        cases.append(({stage: float(values[STAGES.index(stage)]) for stage in STAGES}, threshold, "layer4"))
    return cases


def _call_cases(checker: Checker, function: Callable, cases: list) -> list[Any] | None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    answers = []
    for shares, threshold, _ in cases:
        arguments = (dict(shares),) if threshold is None else (dict(shares), threshold)
        ok, answer = checker.call(function, *arguments, described={0: "the dict of shares"})
        if not ok:
            return None
        answers.append(answer)
    return answers


def _describe_stages(cases: list, answers: list[Any], every: tuple[list, list[Any]] | None = None) -> str:
    """The problem with first_localised_stage's answers to ``cases``, or "".

    ``every``: all the cases it was given with its answers: a known mistake is named only if it explains them all
    (one bug, one cause, in every check's message).
    """
    for answer in answers:
        if answer is not None and not isinstance(answer, str):
            return f"first_localised_stage should return a stage's name (a str such as 'layer2') or None; it returns {type_name(answer)}."
        if isinstance(answer, np.str_):
            return (f"first_localised_stage returns the stage's name as a numpy.str_ ({answer!r}), which a NumPy array of "
                    "the names gives: return a plain str, the stage name itself (the key of shares, e.g. 'layer2'), "
                    "not an item of np.array(...).")
    wrong = [(case, answer) for case, answer in zip(cases, answers) if answer != case[2]]
    if not wrong:
        return ""
    known_cases, known_answers = every or (cases, answers)
    for mistake, message in _STAGE_MISTAKES:
        if all(answer == (mistake(s) if t is None else mistake(s, t)) for (s, t, _), answer in zip(known_cases, known_answers)):
            return message
    (shares, threshold, expected), answer = wrong[0]
    called = f"first_localised_stage({shares})" if threshold is None else f"first_localised_stage({shares}, {threshold})"
    rule = "the default threshold is 0.8; " if threshold is None else ""
    return (f"{called} returned {answer!r}; expected {expected!r}: {rule}the first stage from layer1 to layer4 whose "
            "share is >= the threshold, or None.")


def check_d(model: LoadedModel, localisation_shares: Callable, first_localised_stage: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise d: at which stage does a class first become localised?

    Args:
        model: the model the notebook uses.
        localisation_shares: ``localisation_shares(model, image, class_name, object_mask)`` -> {stage: share of
            the normalised Grad-CAM's mass inside the mask (0 for an all-zero map)} for layer1..layer4.
        first_localised_stage: ``first_localised_stage(shares, threshold=0.8)`` -> the first stage from layer1 to
            layer4 whose share is >= the threshold, or None.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    # Four CAMs per call: smaller inputs keep the check quick. The full-size model is kept to
    # recognise a function that uses the notebook's global model instead of its argument.
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    small = smaller_input(model)
    checker = Checker("d", CHECK_COUNT, catch_not_implemented=_grading, models=[model, small])
    first_shares: list[float] = []
    if _check_shares(checker, small, model, localisation_shares, first_shares):
        _check_zero_maps(checker, localisation_shares, first_shares)
    else:
        checker.skip(["all-zero maps give share 0"], "localisation_shares must run first")
    judged = []
    for name, cases in (("first stage on known shares", STAGE_CASES + _generated_stage_cases()), ("threshold reached with >=, default 0.8", THRESHOLD_CASES)):
        answers = _call_cases(checker, first_localised_stage, cases)
        if answers is not None:
            judged.append((name, cases, answers))
    every = ([case for _, cases, _ in judged for case in cases], [answer for _, _, answers in judged for answer in answers])
    problems = [_describe_stages(cases, answers, every) for _, cases, answers in judged]
    if len(problems) > 1 and problems[0] and len(set(problems)) == 1:
        # One cause said once for the checks it fails: say how many, so the count above and the list agree.
        problems = [f"{problems[0]} (This one cause fails {len(problems)} checks: "
                    f"{', '.join(repr(name) for name, _, _ in judged)}.)"] * len(problems)
    keyword = _keyword_problem(first_localised_stage)
    for (name, _, _), problem in zip(judged, problems):
        # The threshold by its name as the text's signature gives it: judged with the threshold's cases.
        checker.require(name, not (problem or (keyword and name.startswith("threshold"))), problem or keyword)
    return checker.finish()


def _keyword_problem(first_localised_stage: Callable) -> str:
    """Whether first_localised_stage takes the threshold by its name, as ``first_localised_stage(shares, threshold=0.6)``."""
    try:
        inspect.signature(first_localised_stage).bind({}, threshold=0.6)
    except TypeError:
        return ("first_localised_stage cannot be called as first_localised_stage(shares, threshold=0.6), with the threshold "
                "by name as the text's signature allows: name its parameter threshold, def first_localised_stage(shares, "
                "threshold=0.8).")
    except ValueError:  # no signature to read (a builtin): the calls above judge it
        pass
    return ""
