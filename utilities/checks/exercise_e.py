"""Exercise e: the original CAM (Zhou et al., 2016) of all classes from one forward pass, and Grad-CAM from it."""

from __future__ import annotations

import dataclasses
import functools
import re
import weakref
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.overrides import TorchFunctionMode

from ..cam import grad_cam, normalize_cams, upsample_cams
from ..images import DATA_DIR, load_image
from ..models import LoadedModel, make_preprocess
from ._common import (
    BACKWARD_CALLS,
    Checker,
    CheckResult,
    as_tensor,
    cached,
    describe_error,
    hook_keys,
    recorded_calls,
    remove_new_hooks,
    smaller_input,
    training_copy,
    type_name,
)

__all__ = ["CHECK_COUNT", "CHECK_NAMES", "CHECK_IMAGE_SIZE", "check_e", "made_up_model"]

#: The checks' names, in the order they run (the gradebook's columns).
CHECK_NAMES = (
    'CAM shape',
    'CAM at layer4',
    'works on another network',
    'no hooks left',
    'Grad-CAM from CAMs',
    'CAMs left unchanged',
)
CHECK_COUNT = len(CHECK_NAMES)
#: (H, W) of the check's photo: not the notebook's photo, not the network input's size.
CHECK_IMAGE_SIZE = (136, 184)
NOTEBOOK_PHOTO = "cat_and_coffee.png"
RELATIVE_TOLERANCE = 2e-5  # of each right map's largest absolute value; float rounding is about 2e-6

_CHECKS = ("CAM shape", "CAM at layer4", "works on another network", "no hooks left", "Grad-CAM from CAMs", "CAMs left unchanged")


def check_image() -> np.ndarray:
    """Chelsea the cat at :data:`CHECK_IMAGE_SIZE`."""
    photo = Image.fromarray(load_image(DATA_DIR / "chelsea.jpg"))
    return np.array(photo.resize(CHECK_IMAGE_SIZE[::-1], Image.Resampling.BILINEAR))


class _MadeUpNetwork(nn.Module):
    """ResNet's head on a toy body: ``layer3`` (3 channels), ``layer4`` (5 channels), global average pooling, ``fc``.

    ``fc`` has a large bias, so that a map with the bias in it is far from the right one, and ``layer4``
    has fewer channels than ``layer3`` has, so that combining ``fc`` with ``layer3`` cannot work.
    """

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(5)
        self.layer3 = nn.AvgPool2d(4)  # (3, H/4, W/4)
        self.layer4 = nn.Conv2d(3, 5, kernel_size=4, stride=4)  # (5, H/16, W/16), negative values too
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, classes)
        with torch.no_grad():
            self.layer4.weight.copy_(torch.randn(self.layer4.weight.shape, generator=generator) / 4)
            self.layer4.bias.copy_(torch.randn(5, generator=generator))
            self.fc.weight.copy_(torch.randn(classes, 5, generator=generator))
            self.fc.bias.copy_(4 + torch.rand(classes, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.layer4(self.layer3(x))), 1))


@functools.cache
def made_up_model() -> LoadedModel:
    """A tiny network with ``layer4`` -> global average pooling -> ``fc`` (5 channels, 1000 classes) and small inputs."""
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    network = _MadeUpNetwork().eval().requires_grad_(False)
    return LoadedModel(network=network, name="a made-up network", mean=mean, std=std, preprocess=make_preprocess(mean, std, 32), pretrained=False)


#: The number of classes of :func:`few_classes_model`: not the course models' 1000.
FEW_CLASSES = 10


@functools.cache
def few_classes_model() -> LoadedModel:
    """:func:`made_up_model`'s body with an ``fc`` of :data:`FEW_CLASSES` classes: nothing may assume 1000 classes."""
    toy = made_up_model()
    network = _MadeUpNetwork(FEW_CLASSES).eval().requires_grad_(False)
    names = tuple(f"made-up class {k}" for k in range(FEW_CLASSES))
    return dataclasses.replace(toy, network=network, class_names=names)


#: The numbers of classes of the two made-up networks that tell one combination for all classes from a loop over them.
LOOP_CLASSES = (3, 300)


def classes_model(classes: int) -> LoadedModel:
    """:func:`made_up_model`'s body (the same layer4) with an ``fc`` of ``classes`` classes.

    A new one for each call (not cached): no watched model, so what an earlier answer did to it would stay.
    """
    toy = made_up_model()
    network = _MadeUpNetwork(classes).eval().requires_grad_(False)
    return dataclasses.replace(toy, network=network, class_names=tuple(f"made-up class {k}" for k in range(classes)))


class _FailingNetwork(_MadeUpNetwork):
    """:class:`_MadeUpNetwork` whose forward pass raises after layer4 (before the pooling and fc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.layer4(self.layer3(x))
        raise RuntimeError("the made-up network's forward pass failed after layer4 (on purpose)")


def failing_model() -> LoadedModel:
    """:func:`made_up_model` with a network whose forward pass raises after layer4: hooks must be removed all the same."""
    return dataclasses.replace(made_up_model(), network=_FailingNetwork().eval().requires_grad_(False))


class _OperationCounter(TorchFunctionMode):
    """Counts the torch functions and tensor methods called while it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        self.count += 1
        return func(*args, **(kwargs or {}))


def made_up_image() -> np.ndarray:
    """A 40 x 72 colour ramp: 32 x 57 after the made-up model's preprocessing, 2 x 3 cells at layer4."""
    rows, columns = np.mgrid[0:40, 0:72]
    return np.stack([rows * 6, columns * 3, (rows * columns) % 256], axis=-1).astype(np.uint8)


# ----------------------------------------------------------------------------- references


def _record(network: nn.Module, inputs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """layer3 and layer4 activations (C, h, w) and the logits (classes,) of one preprocessed image (1, 3, H, W)."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        getattr(network, name).register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out[0].detach().cpu()))
        for name in ("layer3", "layer4")
    ]
    try:
        with torch.inference_mode():
            logits = network(inputs)[0].cpu()
    finally:
        for handle in handles:
            handle.remove()
    return outputs, logits


def _references(model: LoadedModel, image: np.ndarray, full_size: LoadedModel) -> dict[str, Any]:
    """The right CAMs of ``image`` and what known mistakes give, with the sizes the shape diagnosis needs."""
    activations, logits = _record(model.network, model.to_input(image))
    activation = activations["layer4"]
    weight, bias = model.network.fc.weight.detach().cpu(), model.network.fc.bias.detach().cpu()
    cams = torch.einsum("kc,chw->khw", weight, activation)
    cells = activation.shape[1] * activation.shape[2]
    column = bias[:, None, None]
    probabilities = logits.softmax(dim=0)[:, None, None]

    # Only maps of a wrong size ask for these: two forward passes that a right answer does not wait for.
    # The references are cached per network, so they must not hold on to it (a weak reference).
    network, device = weakref.ref(model.network), model.device
    preprocesses = (model.preprocess, full_size.preprocess)

    @functools.cache
    def unresized_size() -> tuple[int, int]:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        # The image as a tensor at its own size, scaled to [0, 1], no resize or normalisation.
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255).to(device)
        return tuple(_record(network(), pixels)[0]["layer4"].shape[1:])

    @functools.cache
    def full_size_size() -> tuple[int, int]:
        """layer4's size for ``image`` with the full-size model's preprocessing (the check passes a smaller input)."""
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        return tuple(_record(network(), preprocesses[1](image).unsqueeze(0).to(device))[0]["layer4"].shape[1:])

    @functools.cache
    def notebook_sizes() -> set[tuple[int, int]]:
        photo = load_image(DATA_DIR / NOTEBOOK_PHOTO)
        inputs = [preprocess(photo).unsqueeze(0).to(device) for preprocess in preprocesses]
        return {tuple(_record(network(), batch)[0]["layer4"].shape[1:]) for batch in inputs}

    @functools.cache
    def low_precision_error() -> float:
        """How far CAMs computed under bfloat16 autocast are from the right ones (relative to each map's largest value)."""
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        inputs = preprocesses[0](image).unsqueeze(0).to(device)
        with torch.autocast(device.type if hasattr(device, "type") else str(device), dtype=torch.bfloat16):
            low = _record(network(), inputs)[0]["layer4"]
            low_cams = torch.einsum("kc,chw->khw", weight.to(low.dtype), low).float()
        scale = cams.abs().amax(dim=(-2, -1), keepdim=True) + 1e-12
        return float(((low_cams - cams).abs() / scale).max())

    mistakes = {
        "bias": cams + column,
        "bias per cell": cams + column / cells,
        "minus bias": cams - column,
        "minus bias per cell": cams - column / cells,
        "divided, with bias": (cams + column) / cells,
        "Grad-CAM": cams.clamp(min=0) / cells,
        "divided": cams / cells,
        "multiplied": cams * cells,
        "classes reversed": cams.flip(0),
        "ReLU": cams.clamp(min=0),
        "normalised": normalize_cams(cams),
        "ReLU, normalised": normalize_cams(cams.clamp(min=0)),
        "probabilities": cams * probabilities,
        "softmax over classes": cams.softmax(dim=0),
        "softmax of the weights": torch.einsum("kc,chw->khw", weight.softmax(dim=1), activation),
        "softmax of the weights over classes": torch.einsum("kc,chw->khw", weight.softmax(dim=0), activation),
        "negated": -cams,
        "channel mean": cams / weight.shape[1],
        "ReLU of the activation": torch.einsum("kc,chw->khw", weight, activation.clamp(min=0)),
        "centred": cams - cams.mean(dim=(-2, -1), keepdim=True),
        "minus minimum": cams - cams.amin(dim=(-2, -1), keepdim=True),
    }
    return {
        "reference": cams,
        "mistakes": mistakes,
        "activation": activation,
        "classes": weight.shape[0],
        "channels": weight.shape[1],
        "layer3 channels": activations["layer3"].shape[0],
        "top": int(logits.argmax()),
        "image size": tuple(image.shape[:2]),
        "input size": tuple(model.preprocess(image).shape[-2:]),
        "full-size input size": tuple(full_size.preprocess(image).shape[-2:]),
        "target layer": model.target_layer,
        "notebook sizes": notebook_sizes,
        "full-size size": full_size_size,
        "unresized size": unresized_size,
        "low precision error": low_precision_error,
    }


# ----------------------------------------------------------------------------- class_activation_maps


def _close(answer: torch.Tensor, reference: torch.Tensor) -> bool:
    """Same shape and, map by map, equal up to float rounding (relative to each map's largest value).

    Map by map, so that a small change to every map (fc's bias spread over the cells) is not lost in the
    rounding of the strongest class's map.
    """
    if answer.shape != reference.shape:
        return False
    if not reference.numel():
        return True
    if not bool(torch.isfinite(answer).all()):
        return False
    per_map = reference.abs().amax(dim=(-2, -1), keepdim=True) if reference.ndim >= 2 else reference.abs()
    tolerance = RELATIVE_TOLERANCE * per_map + 1e-6 * float(reference.abs().max()) + 1e-12
    return bool(((answer - reference).abs() <= tolerance).all())


_WITHOUT_GIVING = "the raw maps: no bias, no ReLU, no scaling, no normalisation"
_CAM_MISTAKES = {
    "centred": "each map is CAM less its own mean (centred): CAM is the weighted sum of layer4's channels as it is, with "
    "its own level; subtracting a map's mean moves every cell by the same amount, and which cells are above 0 with it.",
    "minus minimum": "each map is CAM less its own minimum (shifted to start at 0): CAM is the weighted sum of layer4's "
    "channels as it is, negative cells included; normalising belongs to displaying a map, not to computing it.",
    "bias": "the maps include fc's bias, added to every cell: CAM is the weighted sum of layer4's channels only. The bias "
    "is one number per class, the same wherever the object is, so it is no part of the map.",
    "bias per cell": "the maps include fc's bias, spread over the cells (bias / (h * w) in each): CAM is the weighted sum "
    "of layer4's channels only; the bias does not depend on where anything is, so it is no part of the map.",
    "minus bias": "fc's bias is subtracted from every cell of the maps: CAM is the weighted sum of layer4's channels "
    "only, with nothing added or subtracted; the bias is one number per class, the same wherever the object is, so it "
    "is no part of the map.",
    "minus bias per cell": "fc's bias, divided by the number of cells (bias / (h * w)), is subtracted from every cell of "
    "the maps: CAM is the weighted sum of layer4's channels only, with nothing added or subtracted; the bias does not "
    "depend on where anything is, so it is no part of the map.",
    "divided, with bias": "these maps are (CAM + bias) / (h * w), so that they add up to the logit: CAM has neither the "
    "bias nor the division by the number of cells; return " + _WITHOUT_GIVING + ".",
    "Grad-CAM": "these are Grad-CAM's maps (ReLU, then divided by h * w), not CAM: class_activation_maps returns "
    + _WITHOUT_GIVING + "; grad_cam_from_cams does the rest.",
    "divided": "the maps are divided by the number of cells, h * w: CAM is the weighted sum of the channels as it is; "
    "the division belongs to Grad-CAM's weights (grad_cam_from_cams).",
    "multiplied": "the maps are multiplied by the number of cells, h * w: CAM is the weighted sum of the channels as it "
    "is, with no factor (the pooling's 1 / (h * w) belongs to the logit and to Grad-CAM's weights, not to CAM).",
    "classes reversed": "the maps are in the reverse order of the classes (a flip over the class dimension, or [::-1]): map k "
    "must be class k's, fc.weight[k] combined with the activation, in fc's order.",
    "ReLU": "the negative values are cut off (a ReLU): CAM has no ReLU; return " + _WITHOUT_GIVING + ". Negative cells "
    "are where the channels speak against the class.",
    "normalised": "each map is normalised to [0, 1]: return " + _WITHOUT_GIVING + "; normalise only for display.",
    "ReLU, normalised": "the maps are cut at 0 and normalised to [0, 1]: return " + _WITHOUT_GIVING + "; normalise only "
    "for display.",
    "probabilities": "each map is weighted by its class's probability: CAM uses fc's weights only, the same for every "
    "image; return " + _WITHOUT_GIVING + ".",
    "softmax over classes": "at each cell, the maps are turned into probabilities over the classes (a softmax): CAM has "
    "no softmax; return " + _WITHOUT_GIVING + ".",
    "softmax of the weights": "fc's weights went through a softmax: use model.network.fc.weight as it is; a softmax "
    "turns negative weights (evidence against a class) into small positive ones.",
    "softmax of the weights over classes": "fc's weights went through a softmax: use model.network.fc.weight as it is; "
    "a softmax turns negative weights (evidence against a class) into small positive ones.",
    "ReLU of the activation": "layer4's activation went through a ReLU (or a clamp(min=0)) before the weighted sum: "
    "CAM uses the activation A exactly as layer4 gives it, negative values included; combine fc.weight with it as it is.",
    "negated": "the maps have the wrong sign: CAM is + sum over the channels of fc.weight[k, c] times the channel's map.",
    "channel mean": "the weighted channels are averaged, not summed (the maps are C times too small): CAM is the sum "
    "over the channels of fc.weight[k, c] times the channel's map, as in the logit.",
}


def _shape_problem(cams: torch.Tensor, references: dict[str, Any]) -> tuple[str, str]:
    """(mistake, message) for maps of the wrong shape; ("", "") for the right shape."""
    reference, activation = references["reference"], references["activation"]
    classes, channels = references["classes"], references["channels"]
    shape, expected = tuple(cams.shape), tuple(reference.shape)
    height, width = expected[1:]
    if shape == expected:
        return "", ""
    if cams.ndim == 4 and shape[0] == 1 and shape[1:] == expected:
        return "batch", (f"the result has a batch dimension, shape {shape}: return the maps of the one image, "
                         f"(classes, h, w) = {expected}, e.g. with [0] or squeeze(0).")
    if cams.ndim == 3 and shape[1:] == references["image size"]:
        return "image size", (f"the maps are upsampled to the image's size, {shape[1]}x{shape[2]}: return them at "
                              f"layer4's resolution, {height}x{width}, as the weighted sum gives them.")
    if cams.ndim == 3 and shape[1:] == references["input size"]:
        return "input size", (f"the maps are upsampled to the network input's size, {shape[1]}x{shape[2]}: return them "
                              f"at layer4's resolution, {height}x{width}, as the weighted sum gives them.")
    if cams.ndim == 3 and shape[0] == classes and shape[1:] != (height, width) and shape[1:] == references["unresized size"]():
        return "not resized", (f"the maps are {shape[1]}x{shape[2]}, what layer4 gives for the image at its own size: the "
                               "image went into the network without the model's preprocessing (resize and normalisation). "
                               f"Use model.to_input(image), which gives layer4 {height}x{width} cells.")
    if cams.ndim == 3 and shape[0] == classes and shape[1:] != (height, width) and references["input size"] != tuple(
            references["full-size input size"]) and shape[1:] == references["full-size size"]():
        return "other model", (f"the maps are {shape[1]}x{shape[2]}, what layer4 gives for this image at the notebook "
                               f"model's own input size, not with the model you were given (the check gives a model with "
                               f"smaller inputs, whose layer4 has {height}x{width} cells): use the model you were given, "
                               "its network and model.to_input(image), not a model (or a preprocessing) loaded elsewhere.")
    if cams.ndim == 3 and shape[1:] != (height, width) and shape[1:] in references["notebook sizes"]():
        return "notebook photo", (f"the maps are {shape[1]}x{shape[2]}, the size of the notebook's photo's maps, not of "
                                  "the image you were given: use the image argument.")
    if cams.ndim == 3 and shape == (classes, 1, 1):
        return "pooled", (f"the maps have a single cell, shape {shape}: these come from the pooled activation; record "
                          f"layer4's output, before the global average pooling, so each map keeps its {height}x{width} cells.")
    if cams.ndim == 3 and shape == (classes, width, height):
        return "swapped", (f"the maps are {shape[1]}x{shape[2]}: height and width are swapped; keep the activation's "
                           f"order, (classes, h, w) = {expected}.")
    if cams.ndim == 3 and shape == (height, width, classes):
        return "classes last", (f"the result has shape {shape}, the class dimension last: put one map per class first, "
                                f"(classes, h, w) = {expected}.")
    if cams.ndim == 2 and shape == (classes, height * width):
        return "flattened", (f"the result has shape {shape}: each map is flattened into a row of {height * width} cells; "
                             f"reshape to (classes, h, w) = {expected}.")
    if cams.ndim == 3 and shape == (channels, height, width) and channels != classes:
        return "per channel", (f"the result has shape {shape}: one map per channel of layer4, not per class. The sum "
                               "runs over the channels (fc.weight's second index, the activation's first) and keeps "
                               f"the class index: {classes} maps.")
    if shape in ((height, width), (1, height, width)):
        single = cams.reshape(height, width)
        if _close(single, activation.mean(dim=0)) or _close(single, activation.sum(dim=0)):
            return "channel mean", ("this is the mean (or sum) of layer4's channels, one map for all classes: weight each "
                                    "channel by fc's weight for the class and sum, for every class.")
        top = "" if not _close(single, reference[references["top"]]) else " (the top class's map)"
        return "one map", (f"class_activation_maps returned one map{top}, shape {shape}: return the maps of all "
                           f"{classes} classes at once, (classes, h, w) = {expected}.")
    return "shape", (f"expected one map per class at layer4's resolution, (classes, h, w) = {expected}; got shape "
                     f"{shape}.")


def _value_problem(cams: torch.Tensor, references: dict[str, Any]) -> tuple[str, str]:
    """(mistake, message) for maps of the right shape; ("", "") for the right maps."""
    if not bool(torch.isfinite(cams).all()):
        return "NaN", "the maps contain NaN or infinity: CAM is a weighted sum of the activations, no division is needed."
    if _close(cams, references["reference"]):
        return "", ""
    for mistake, wrong in references["mistakes"].items():
        if _close(cams, wrong):
            return mistake, _CAM_MISTAKES[mistake]
    reference = references["reference"]
    scale = reference.abs().amax(dim=(-2, -1), keepdim=True) + 1e-12
    relative = float(((cams - reference).abs() / scale).max())
    shift = cams - reference
    if reference.ndim == 3 and reference.shape[-2] * reference.shape[-1] > 1 and relative >= 1e-3 and float(
            ((shift - shift.mean(dim=(-2, -1), keepdim=True)).abs() / scale).max()) < 1e-4:
        return "shifted", ("each map is CAM plus a constant of its own (the same number added to every cell of a class's "
                           "map: a mean, a minimum or a bias per class?): CAM is the weighted sum of layer4's channels "
                           "exactly, sum over c of fc.weight[k, c] * A[c], with nothing added or subtracted.")
    if relative < 0.03 or relative < 3 * references["low precision error"]():
        return "precision", (f"the maps differ from CAM by up to {100 * relative:.2g}% of a map's largest value, no more "
                             "than a forward pass in bfloat16 gives: a lower precision on the way (torch.autocast, "
                             ".half(), bfloat16) rounds the activation or the weights. Run the forward pass and the einsum "
                             "in float32, as the network is.")
    flat = cams.flatten(1)
    if flat.shape[1] > 1 and float((flat - flat[:, :1]).abs().max()) <= 1e-6 * (float(flat.abs().max()) + 1e-6):
        return "constant", ("each map holds the same value in every cell (fc's weights times the pooled activation, "
                            "broadcast over the cells?): weight layer4's activation before the global average pooling, "
                            "cell by cell, so that each map shows where the class's evidence is.")
    if float((flat - flat[:1]).abs().max()) <= 1e-6 * (float(flat.abs().max()) + 1e-6):
        return "identical", ("all maps are identical although the classes differ (a mean or sum over the channels?): "
                             "weight each channel of layer4 by fc's weight for the class, fc.weight[k, c], and sum over "
                             "the channels, for every class k.")
    reference = references["reference"]
    differences = (cams - reference).abs().flatten(1)
    k = int(differences.amax(1).argmax())
    cell = int(differences[k].argmax())
    return "generic", (f"the maps do not match CAM at layer4, and no known mistake gives them: the largest difference is "
                       f"in the map of class {k}, cell {divmod(cell, reference.shape[-1])} (yours {float(cams.flatten(1)[k, cell]):.4g}, "
                       f"CAM {float(reference.flatten(1)[k, cell]):.4g}). CAM is the sum over the channels c of fc.weight[k, c] "
                       "times layer4's activation A[c] of this image (" + _WITHOUT_GIVING + ").")


def _dtype_message(dtype: torch.dtype, right: torch.dtype) -> str:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    return (f"class_activation_maps returns {str(dtype).replace('torch.', '')} maps: return them in the dtype of "
            f"layer4's activation and fc.weight, {str(right).replace('torch.', '')}, as the text asks (no .double(), "
            ".half() or dtype= on the way).")


def _problem(answer: Any, references: dict[str, Any]) -> tuple[str, str]:
    """(mistake, message) for one answer of class_activation_maps; ("", "") if it is right."""
    if isinstance(answer, (list, tuple)) and answer and all(as_tensor(item) is not None for item in answer):
        return "list", "class_activation_maps returns a list of maps; return one tensor (classes, h, w)."
    cams = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
    if cams is None:
        return "type", f"class_activation_maps should return a tensor (classes, h, w); it returns {type_name(answer)}."
    right = references["reference"].dtype
    if tuple(cams.shape) == tuple(references["reference"].shape) and answer.dtype != right:
        # Before the values (as_tensor gave float32): float16 rounds them beyond the tolerance, and the cause is the
        # dtype, not the formula.
        return "dtype", _dtype_message(answer.dtype, right)
    return _shape_problem(cams, references) if tuple(cams.shape) != tuple(references["reference"].shape) else _value_problem(cams, references)


def _explain(references: dict[str, Any]) -> Callable[[BaseException], str | None]:
    """Messages for the errors that known mistakes raise inside class_activation_maps."""
    channels = references["channels"]

    def explain(error: BaseException) -> str | None:
        text = str(error)
        start = f"class_activation_maps raised {type(error).__name__}: "
        if "NoneType" in text and references.get("target layer", "") is None:
            return start + (f"{text.splitlines()[0]}. This model has no default layer (model.target_layer is None, as a "
                            "LoadedModel may have): was the layer taken from model.target_layer? CAM is defined at "
                            "layer4, the stage right before the global average pooling and fc: record \"layer4\" by name.")
        if "number of subscripts" in text:
            return start + ("torch.einsum got a tensor with more dimensions than its subscripts: the recorded activation "
                            "has a batch dimension, (1, C, h, w); combine fc's weights with the one image's activation, "
                            "(C, h, w).")
        sizes = [int(size) for size in re.findall(r"size (\d+)", text)]
        if "einsum" in text and references["layer3 channels"] in sizes and channels in sizes:
            return start + (f"the activations have {references['layer3 channels']} channels, like layer3, but fc has "
                            f"one weight per channel of layer4 ({channels}): record layer4, the stage right before the "
                            "pooling and fc.")
        if "einsum" in text:
            return start + ("torch.einsum could not combine fc.weight, (classes, channels), with the activation, "
                            "(channels, h, w): the index they share is the channel, summed over; the class index stays.")
        if "cannot be multiplied" in text:
            return start + ("fc.weight, (classes, channels), and the activation could not be multiplied: is a size "
                            "hard-coded (the channels or cells of one model?), or is the activation still (1, C, h, w)? "
                            "Take the sizes from the tensors, e.g. activation.shape and fc.weight.shape.")
        if "invalid for input of size" in text or ("size" in text and "must match" in text):
            return start + ("a size is hard-coded (a number of channels, classes or cells of one model?): take the "
                            "sizes from the tensors, e.g. activation.shape and fc.weight.shape.")
        return None

    return explain


def _attempt(checker: Checker, function: Callable, *args: Any, explain: Callable[[BaseException], str | None]) -> tuple[bool, Any, str, int]:
    """Call a student's function: (returned, result, message if it raised, hooks it left behind, removed again)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    network = args[0].network
    state = checker.before_call(function, args)
    before = hook_keys(network)
    try:
        result = True, function(*args), ""
    except NotImplementedError as error:
        if not checker.catch_not_implemented:
            remove_new_hooks(network, before)
            checker.after_call(function, state)
            raise
        result = False, None, f"{getattr(function, '__name__', 'a function')} is not implemented yet ({error})."
    except Exception as error:  # noqa: BLE001 - any student error is reported, not raised
        result = False, None, explain(error) or describe_error(function, error, state.grad_forwards)
    left = remove_new_hooks(network, before)
    checker.after_call(function, state)
    return (*result, left)


#: What combines fc's weights with the activation: the text asks for one call for all classes (one torch.einsum).
#: Wrapped where everything looks them up, so that the calls are seen however the student imported torch.
COMBINING_CALLS: dict[str, tuple[Any, str]] = {
    "torch.einsum": (torch, "einsum"),
    "torch.matmul": (torch, "matmul"),
    "torch.mm": (torch, "mm"),
    "torch.tensordot": (torch, "tensordot"),
    "@": (torch.Tensor, "__matmul__"),
    "Tensor.matmul": (torch.Tensor, "matmul"),
    "Tensor.mm": (torch.Tensor, "mm"),
}


@functools.cache
def thin_model() -> LoadedModel:
    """The made-up network with inputs 16 pixels high: a wide image gives layer4 a map one cell high."""
    toy = made_up_model()
    return dataclasses.replace(toy, preprocess=make_preprocess(toy.mean, toy.std, 16))


def thin_image() -> np.ndarray:
    """A 24 x 120 colour ramp: 16 x 80 after :func:`thin_model`'s preprocessing, 1 x 5 cells at layer4."""
    rows, columns = np.mgrid[0:24, 0:120]
    return np.stack([rows * 10, columns * 2, (rows * columns) % 256], axis=-1).astype(np.uint8)


def _stale_cams(checker: Checker, model: LoadedModel, image: np.ndarray, class_activation_maps: Callable,
                first: torch.Tensor) -> tuple[str, str]:
    """A second call, on the same model, with other pixels of the same shape: the first call's image array flipped
    upside down in place, then an image made from a seed at check time. Its maps must be that image's, not a result
    kept from an earlier call (``first``: the right maps of the first call's image).

    The caller keeps ``image`` alive, so no new array takes its id; only where the first call's maps come back, a new
    array of the flipped pixels tells a cache keyed by id(image) from one keyed by the model or the size. The image
    is flipped back after.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    noise = np.random.default_rng(11).integers(0, 256, image.shape, dtype=np.uint8)
    image[...] = image[::-1].copy()
    try:
        for what, other in (("the photo array of the first call, flipped upside down in place", image),
                            ("an image of random pixels of the same size", noise)):
            activation = _record(model.network, model.to_input(other))[0]["layer4"]
            right = torch.einsum("kc,chw->khw", model.network.fc.weight.detach().cpu(), activation)
            answer = checker.quiet_call(class_activation_maps, model, other)
            if answer is None:
                continue  # an error on a second call: the calls that judge results report errors
            if isinstance(answer, torch.Tensor) and _close(as_tensor(answer).detach().cpu(), right):
                continue
            if other is image and isinstance(answer, torch.Tensor) and _close(as_tensor(answer).detach().cpu(), first):
                # A new array gets the right maps, or those of an array freed since whose id it takes: not the old ones.
                again = checker.quiet_call(class_activation_maps, model, image.copy())
                if isinstance(again, torch.Tensor) and not _close(as_tensor(again).detach().cpu(), first):
                    return "stale", (f"called a second time on the same model with {what}, class_activation_maps "
                                     "returned the maps of the image before the flip, though a new array of the flipped "
                                     "pixels gets other maps: a result kept from an earlier call by the array object "
                                     "(a cache keyed by id(image)): the same array changed in place, or a new array that "
                                     "takes the id of one freed before (Python reuses ids), gets an old result. Compute "
                                     "the maps from each image it is given, with no cache.")
            return "stale", (f"called a second time on the same model with another image of the same size ({what}), "
                             "class_activation_maps returned maps that are not that image's CAMs (a result kept from an "
                             "earlier call, cached by the model or the image's size?): compute the maps from each image "
                             "it is given, with no cache.")
    finally:
        image[...] = image[::-1].copy()
    return "", ""


@functools.cache
def _made_up_maps(classes: int) -> torch.Tensor:
    """The CAMs of :func:`made_up_image` on the made-up network with ``classes`` classes (its layer4 is the same)."""
    network = classes_model(classes).network
    activation = _record(network, made_up_model().to_input(made_up_image()))[0]["layer4"]
    return torch.einsum("kc,chw->khw", network.fc.weight.detach().cpu(), activation)


def _other_networks_maps(answer: Any, classes: int) -> int:
    """The number of classes of another made-up network whose maps of :func:`made_up_image` ``answer`` is (0 if none):
    the check calls the function on several of them with that image."""
    if not isinstance(answer, torch.Tensor):
        return 0
    answer = as_tensor(answer).detach().cpu()
    return next((other for other in (*LOOP_CLASSES, 1000, FEW_CLASSES)
                 if other != classes and _close(answer, _made_up_maps(other))), 0)


def _per_class(checker: Checker, class_activation_maps: Callable) -> tuple[str, str]:
    """Maps computed class by class (a Python loop): on two made-up networks that differ only in their number of
    classes, the torch operations a call runs grow with the classes; one einsum or matrix product runs as many for both."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    counts = []
    for classes in LOOP_CLASSES:
        counter = _OperationCounter()

        @functools.wraps(class_activation_maps)
        def counted(*args: Any, counter: _OperationCounter = counter) -> Any:
            __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
            with counter:  # only the student's function: not the check's own bookkeeping around the call
                return class_activation_maps(*args)

        answer = checker.quiet_call(counted, classes_model(classes), made_up_image())
        if answer is None:
            return "", ""  # an error on these networks: the calls that judge results report errors
        counts.append(counter.count)
    few, many = LOOP_CLASSES
    if counts[1] - counts[0] < (many - few) // 2:
        return "", ""
    more = counts[1] - counts[0]
    return "per class", (
        f"class_activation_maps computes the maps class by class: on two made-up networks that differ only in their "
        f"number of classes, it ran {more} more torch operations for {many} classes than for {few}, about "
        f"{more / (many - few):.2g} per class (a Python loop over the classes?). The text asks for all classes at once, "
        "in one torch.einsum (or one matrix product) of fc.weight (classes, channels) and the activation (channels, h, "
        "w), whose number of operations does not depend on the number of classes.")


def _check_cams(checker: Checker, model: LoadedModel, full_size: LoadedModel, class_activation_maps: Callable) -> None:
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    image = check_image()
    references = cached(model, "exercise e", lambda: _references(model, image, full_size))
    before = len(checker.result.problems)
    with recorded_calls(COMBINING_CALLS) as combining, recorded_calls(BACKWARD_CALLS) as backward:
        ok, answer, error, left = _attempt(checker, class_activation_maps, model, image, explain=_explain(references))
    # A forward pass in training mode changes the maps too: that cause is said once (a pending side effect, or a problem).
    found_here = [*checker.result.problems[before:], checker.pending_side_effect]
    trained = any("training mode" in found for found in found_here)
    weights_changed = any("changed the network's weights" in found for found in found_here)
    forward_passes = checker.forward_passes
    if not ok:
        checker.require(_CHECKS[0], False, error)
        checker.skip(_CHECKS[1:4], "class_activation_maps must run first")
        return
    # A network in training mode, to see that the function leaves its mode as the text asks (the made-up network, which
    # has no batch norm or dropout: the mode changes nothing it computes).
    trainable_answer = checker.keeps_mode(class_activation_maps, training_copy(made_up_model()), made_up_image(), gradients=True)
    mistake, problem = _problem(answer, references)
    shape_mistake = mistake and tuple(getattr(as_tensor(answer), "shape", ())) != tuple(references["reference"].shape)
    checker.require(_CHECKS[0], not shape_mistake, problem)
    if shape_mistake:
        checker.skip(_CHECKS[1:2], "fix the shape first")
    else:
        if not mistake and backward:
            counts = {label: backward.count(label) for label in dict.fromkeys(backward)}
            mistake, problem = "backward", (
                "class_activation_maps ran " + ", ".join(f"{count} x {label}" for label, count in counts.items())
                + " for one image: CAM needs no gradients (the text: one forward pass records layer4's activation A, and "
                "W = model.network.fc.weight is already in the network); combine W with A in one torch.einsum, under "
                "torch.no_grad().")
        if not mistake and forward_passes > 1:
            mistake, problem = "forward passes", (
                f"class_activation_maps ran the network {forward_passes} times for one image: the text asks for one forward "
                "pass, with layer4 recorded (LayerRecorder); the activation and fc.weight give every class's map, no "
                "further pass is needed.")
        cams = answer if isinstance(answer, torch.Tensor) else torch.empty(0, dtype=references["reference"].dtype)
        if not mistake and cams.dtype != references["reference"].dtype:
            mistake, problem = "dtype", _dtype_message(cams.dtype, references["reference"].dtype)
        if not mistake and cams.requires_grad:
            mistake, problem = "graph", (
                "class_activation_maps returns maps that require grad (still attached to the autograd graph of the forward "
                "pass, which they keep alive): the text asks for a plain tensor; compute them under torch.no_grad(), or "
                "return .detach().")
        if mistake in ("precision", "generic") and weights_changed:
            # The function changed the network's weights (reported above): that, not another cause, is why its maps differ.
            problem = ("the maps differ from CAM because class_activation_maps changed the network's weights before "
                       "combining them: the same cause as above.")
        elif mistake == "generic" and trained:
            problem = ("the maps differ from CAM because the forward pass ran in training mode (batch norm with this "
                       "image's own statistics): the same cause as above.")
        if not mistake and len(combining) > 1:
            counts = {label: combining.count(label) for label in dict.fromkeys(combining)}
            mistake, problem = "several combinations", (
                "class_activation_maps combined fc's weights with the activation in "
                + ", ".join(f"{count} call{'s' if count > 1 else ''} of {label}" for label, count in counts.items())
                + " (a loop over the classes?): the text asks for all classes at once, in one torch.einsum (or one matrix "
                "product) of fc.weight (classes, channels) and the activation (channels, h, w).")
        if not mistake:
            mistake, problem = _per_class(checker, class_activation_maps)
        if not mistake:
            mistake, problem = _stale_cams(checker, model, image, class_activation_maps, references["reference"])
        if not mistake and isinstance(trainable_answer, torch.Tensor) and trainable_answer.requires_grad:
            # The notebook's model is frozen (requires_grad False), so its maps need no graph; a network being trained
            # is not, and there a forward pass with gradients on builds one.
            mistake, problem = "graph", (
                "given a model whose weights train (requires_grad True, as during training), class_activation_maps "
                "returns maps that require grad (attached to the autograd graph of the forward pass, which they keep "
                "alive): the text asks for a plain tensor for any model; compute them under torch.no_grad(), or return "
                ".detach(). (The notebook's model is frozen, so there they happen not to.)")
        checker.require(_CHECKS[1], not mistake, problem)

    # The same function on a made-up network and image: nothing may be hard-coded for one model.
    # A mistake already reported above is not counted twice.
    toy = made_up_model()
    toy_references = cached(toy, "exercise e", lambda: _references(toy, made_up_image(), toy))
    toy_ok, toy_answer, toy_error, toy_left = _attempt(checker, class_activation_maps, toy, made_up_image(), explain=_explain(toy_references))
    toy_mistake, toy_problem = _problem(toy_answer, toy_references) if toy_ok else ("error", toy_error)
    if toy_mistake and toy_ok and _other_networks_maps(toy_answer, 1000):
        toy_mistake, toy_problem = "kept", (
            "on a made-up network (fc with 1000 classes), called with the same image as an earlier call on another network "
            f"(the made-up network with {_other_networks_maps(toy_answer, 1000)} classes), class_activation_maps returned "
            "that other network's maps: a result kept from an earlier call, cached by the image and not by the model? The "
            "maps depend on the network as much as on the image: compute them from the model and image each call is given, "
            "with no cache.")
    if mistake == "other model" and toy_mistake in ("shape", "generic", "classes last", "swapped", "per channel"):
        toy_mistake = "other model"  # the made-up network's maps come from that other model too: no second cause
    if not toy_mistake:
        # A map one cell high: activation.squeeze() drops that dimension as well as the batch dimension.
        thin = thin_model()
        thin_references = cached(thin, "exercise e: thin", lambda: _references(thin, thin_image(), thin))
        thin_ok, thin_answer, _, thin_left = _attempt(checker, class_activation_maps, thin, thin_image(), explain=_explain(thin_references))
        toy_left = max(toy_left, thin_left)
        if not thin_ok or _problem(thin_answer, thin_references)[0]:
            toy_mistake, toy_problem = "thin", (
                "on the made-up network (layer4 with 5 channels) and a 24x120 image, whose layer4 activation is one cell "
                "high, (1, 5, 1, 5), class_activation_maps "
                + ("raised an error" if not thin_ok else "did not return the right maps, (classes, 1, 5)")
                + ": does it squeeze() the activation? squeeze() drops every dimension of size 1, the height too; take "
                "the one image's activation with [0] (or squeeze(0)).")
    if not toy_mistake:
        # A network with another number of classes than the course models' 1000: nothing may assume 1000.
        few = few_classes_model()
        few_references = cached(few, "exercise e", lambda: _references(few, made_up_image(), few))
        few_ok, few_answer, few_error, few_left = _attempt(checker, class_activation_maps, few, made_up_image(),
                                                           explain=_explain(few_references))
        toy_left = max(toy_left, few_left)
        few_mistake, few_problem = _problem(few_answer, few_references) if few_ok else ("error", few_error)
        if few_mistake and few_ok and _other_networks_maps(few_answer, FEW_CLASSES):
            # The maps of the 1000-class made-up network, called earlier on the same image: a result kept from that call.
            toy_mistake, toy_problem = "classes", (
                f"on a made-up network with {FEW_CLASSES} classes (fc.weight of shape ({FEW_CLASSES}, 5)), called with the "
                f"same image as an earlier call on another network (the made-up network with "
                f"{_other_networks_maps(few_answer, FEW_CLASSES)} classes), "
                "class_activation_maps returned that other network's maps, shape "
                f"{tuple(few_answer.shape)}: a result kept from an earlier call, cached by the image and not by the model? "
                "The maps depend on the network as much as on the image: compute them from the model and image each call "
                "is given, with no cache.")
        elif few_mistake:
            toy_mistake, toy_problem = "classes", (
                f"on a made-up network with {FEW_CLASSES} classes (fc.weight of shape ({FEW_CLASSES}, 5)), not the course "
                f"models' 1000, class_activation_maps " + ("failed: " + few_problem[0].lower() + few_problem[1:]
                                                           if not few_ok else "did not return the right maps: " + few_problem[0].lower() + few_problem[1:])
                + f" Is the number of classes, 1000, written into the code? Take it from the tensors: "
                "fc.weight.shape[0] classes, (classes, h, w) maps.")
    # On the made-up network, the notebook's photo and an unresized image can give maps of the same size: the course
    # model's answer, judged above, names which of the two it is.
    # A result kept from an earlier call (stale, reported above) is wrong on every later input too: no second cause.
    same_as_above = bool(toy_mistake) and (toy_mistake == mistake or (mistake == "notebook photo" and toy_mistake == "not resized")
                                           or mistake == "stale") \
        and mistake not in ("generic", "shape", "type")
    checker.require(
        _CHECKS[2], not toy_mistake or same_as_above,
        toy_problem if toy_mistake in ("thin", "classes", "kept") else
        "on a made-up network (layer4 with 5 channels, global average pooling, fc with a large bias) and a 40x72 image: "
        + (toy_problem[0].lower() + toy_problem[1:] if toy_problem else ""),
    )
    hooks = max(left, toy_left)
    failed_left = 0
    if hooks == 0:
        # A forward pass that raises (after layer4): the error reaches the caller, as it should, but no hook may stay.
        failing = failing_model()
        _, _, _, failed_left = _attempt(checker, class_activation_maps, failing, made_up_image(), explain=lambda error: None)
    checker.require(
        _CHECKS[3], hooks == 0 and failed_left == 0,
        f"class_activation_maps left {hooks} hook{'s' if hooks > 1 else ''} on the network after a call: remove each hook after the "
        "forward pass (handle.remove()), or record with LayerRecorder in a with block. Hooks left behind pile up and run "
        "on every later forward pass (the check removed these; utilities.remove_all_hooks(model.network) clears the ones "
        "your notebook's cells left)." if hooks else
        f"class_activation_maps left {failed_left} hook{'s' if failed_left > 1 else ''} on the network when the forward pass "
        "raised an error (a made-up network whose forward pass fails after layer4; the error reaching the caller is "
        "right): the hook is removed only when the pass succeeds. Remove it in a finally block (try: ... finally: "
        "handle.remove()), or record with LayerRecorder in a with block, which removes its hooks whatever happens.",
    )


# ----------------------------------------------------------------------------- grad_cam_from_cams


def _grad_cam(cams: torch.Tensor) -> torch.Tensor:
    return cams.clamp(min=0) / (cams.shape[-2] * cams.shape[-1])


def _made_up_cams() -> list[torch.Tensor]:
    """Made-up CAMs with negative and positive cells; K, h and w all differ, within and across the two."""
    first = torch.tensor([
        [[-1.0, 2.0, 0.0, 4.0], [3.0, -4.0, 8.0, 1.0]],
        [[0.5, -0.5, 6.0, -2.0], [1.0, 1.0, -3.0, 2.0]],
        [[-6.0, -1.0, -2.0, -8.0], [-1.0, -0.5, -3.0, -2.0]],  # nowhere positive: all zero after the ReLU
    ])
    # float64, as CAMs computed in double precision are: the result keeps the CAMs' dtype, as grad_cam(...).raw does
    # (float32, the network's, is accepted too).
    second = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3
    one_class = torch.randn(1, 4, 6, generator=torch.Generator().manual_seed(4)) * 3  # K = 1, as the notebook's example
    # Valid CAMs that are not contiguous in memory (a transposed tensor): .view() cannot flatten them.
    transposed = (torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(6)) * 3).transpose(1, 2)
    # Degenerate sizes, negative cells included: maps of one cell (h = w = 1), one row (h = 1) and one column (w = 1).
    # A map of one cell is still cut at 0 by the ReLU; dividing by h * w = 1 changes nothing there, the ReLU does.
    degenerate = torch.Generator().manual_seed(7)
    one_cell = torch.tensor([[[-2.0]], [[3.0]], [[-0.5]], [[0.0]]])
    one_row = torch.randn(2, 1, 5, generator=degenerate) * 3
    one_column = torch.randn(3, 4, 1, generator=degenerate) * 3
    # No negative cell at all (CAMs that already went through a ReLU): these too must be left as they are.
    non_negative = torch.tensor([[[2.0, 1.0, 0.0], [4.0, 0.0, 3.0]], [[0.0, 5.0, 1.0], [0.5, 2.0, 0.0]]])
    return [first, second, one_class, transposed, one_cell, one_row, one_column, non_negative]


_GRAD_CAM_MISTAKES: list[tuple[Callable[[torch.Tensor], torch.Tensor], str]] = [
    (lambda c: c.clamp(min=0),
     "the maps are not divided by the number of cells: at layer4, the gradient of logit k with respect to every cell of "
     "channel c is fc.weight[k, c] / (h * w) (global average pooling), so Grad-CAM's channel weights are CAM's divided "
     "by h * w."),
    (lambda c: c / (c.shape[-2] * c.shape[-1]),
     "the negative values are kept: Grad-CAM applies a ReLU to the weighted sum of the channels."),
    (lambda c: c.abs() / (c.shape[-2] * c.shape[-1]),
     "negative cells became positive (abs): Grad-CAM's ReLU sets them to 0."),
    (lambda c: c.clamp(min=0) / c.numel(),
     "the maps are divided by the number of values in the whole tensor (K * h * w): divide by the number of cells of "
     "one map, h * w."),
    (lambda c: c.clamp(min=0) / c.shape[0],
     "the maps are divided by the number of maps, K: divide by the number of cells of one map, h * w."),
    (lambda c: c.clamp(min=0) / (c.shape[0] * c.shape[1]),
     "the maps are divided by K * h (cams.shape[0] * cams.shape[1]): cams is (classes, h, w), so the maps' height and "
     "width are its last two dimensions, h, w = cams.shape[-2:]; divide by h * w."),
    (lambda c: c.clamp(min=0) / c.shape[-2],
     "the maps are divided by the height only: divide by the number of cells of one map, h * w."),
    (lambda c: c.clamp(min=0) / c.shape[-1],
     "the maps are divided by the width only: divide by the number of cells of one map, h * w."),
    (lambda c: c.clamp(min=0) / c.shape[-1] ** 2,
     "the maps are divided by w * w, as if they were square: divide by h * w; the maps of an image that is not square "
     "are not square either."),
    (lambda c: c.clamp(min=0) / c.shape[-2] ** 2,
     "the maps are divided by h * h, as if they were square: divide by h * w; the maps of an image that is not square "
     "are not square either."),
    (lambda c: c.clamp(min=0) / (c.shape[-2] * c.shape[-1]) ** 2,
     "the maps are divided by the number of cells twice, (h * w) ** 2: the gradient, fc.weight[k, c] / (h * w), is the "
     "same in every cell, so its mean over the cells (Grad-CAM's channel weight) is that number again; divide once."),
    (lambda c: c.clamp(min=0) * (c.shape[-2] * c.shape[-1]),
     "the maps are multiplied by the number of cells: Grad-CAM's weights are CAM's weights divided by h * w."),
    (lambda c: normalize_cams(c.clamp(min=0)),
     "the maps are normalised to [0, 1]: return what grad_cam(...).raw holds, after the ReLU but not normalised."),
    (lambda c: c.clamp(min=0) / c.clamp(min=0).amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12),
     "each map is divided by its own maximum (so it peaks at 1): Grad-CAM's factor is the same for every class, "
     "1 / (h * w), from the gradient of the average pooling; return what grad_cam(...).raw holds, not normalised."),
    (lambda c: (-c).clamp(min=0) / (c.shape[-2] * c.shape[-1]),
     "the maps have the wrong sign (the ReLU of -cams): the gradient of logit k is + fc.weight[k, c] / (h * w), so "
     "Grad-CAM is ReLU(+cams) / (h * w)."),
    (lambda c: torch.div(c.clamp(min=0), c.shape[-2] * c.shape[-1], rounding_mode="floor"),
     "the maps are divided with floor division (//), which rounds every value down to a whole number: divide with /."),
    (lambda c: c.clamp(0, 1) / (c.shape[-2] * c.shape[-1]),
     "the ReLU is written as clamp(0, 1), which also cuts every value above 1: the ReLU is clamp(min=0) only."),
    (lambda c: (c.clamp(min=0) / (c.shape[-2] * c.shape[-1])).clamp(max=1),
     "the maps are cut at 1 (a clamp(max=1) or clamp(0, 1) after the division): Grad-CAM's maps are not limited to "
     "[0, 1]; the ReLU is clamp(min=0) only, and grad_cam(...).raw is not normalised."),
    (lambda c: (c - c.mean(dim=(-2, -1), keepdim=True)).clamp(min=0) / (c.shape[-2] * c.shape[-1]),
     "each map's mean is subtracted before the ReLU (cams - cams.mean(...)): Grad-CAM's ReLU cuts the weighted sum "
     "itself at 0, ReLU(cams) / (h * w); nothing is subtracted."),
    (lambda c: c.amax(dim=0, keepdim=True).expand_as(c).clamp(min=0) / (c.shape[-2] * c.shape[-1]),
     "every class gets the same map, the largest value over the classes at each cell (torch.max(cams, dim=0)): the ReLU "
     "compares each value with 0, elementwise, cams.clamp(min=0) (or torch.relu), and each class keeps its own map."),
    (lambda c: c.clamp(min=0) / c.clamp(min=0).sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12),
     "each map is divided by its own sum: Grad-CAM's factor is the same for every class, 1 / (h * w), from the "
     "gradient of the average pooling."),
]


def _grad_cam_problem(cases: list[torch.Tensor], expected: list[torch.Tensor], answers: list[Any]) -> str:
    for cams, answer in zip(cases, answers):
        result = as_tensor(answer) if isinstance(answer, torch.Tensor) else None
        if result is None:
            return f"grad_cam_from_cams should return a tensor of the same shape as cams; it returns {type_name(answer)}."
        if tuple(result.shape) != tuple(cams.shape):
            squeezed = " (squeeze() drops the class dimension when there is one class)" if (
                cams.shape[0] == 1 and tuple(result.shape) == tuple(cams.shape[1:])) else (
                " (squeeze() drops every dimension of size 1, the height or width of a map one cell high or wide too)"
                if 1 in cams.shape and tuple(result.shape) == tuple(size for size in cams.shape if size != 1) else "")
            return (f"grad_cam_from_cams should return one map per CAM, the same shape as cams: for cams of shape "
                    f"{tuple(cams.shape)} it returned shape {tuple(result.shape)}{squeezed}.")
    for cams, answer in zip(cases, answers):
        # The CAMs' dtype, as grad_cam(...).raw keeps it, or float32, the network's (the text asks for neither).
        if answer.dtype not in (cams.dtype, torch.float32):
            return (f"grad_cam_from_cams returns {str(answer.dtype).replace('torch.', '')} maps for {str(cams.dtype).replace('torch.', '')} CAMs "
                    f"(a .half(), .double() or a dtype= on the way?): keep the CAMs' dtype (or float32, the network's); "
                    f"{str(answer.dtype).replace('torch.', '')} rounds the values differently from grad_cam(...).raw.")
    if any(answer.requires_grad for answer in answers):
        return ("grad_cam_from_cams returns a tensor that requires grad (requires_grad=True) for CAMs that do not: "
                "grad_cam(...).raw is a plain tensor, requires_grad False, and so are the maps the text asks for. Do not "
                "switch it on (no requires_grad_(), no torch.tensor(..., requires_grad=True)); compute the maps from cams.")
    results = [as_tensor(answer) for answer in answers]
    if all(_close(result, right) for result, right in zip(results, expected)):
        # Close is not enough where the ReLU gives exactly 0: an all-negative map must stay exactly all zero.
        for result, cams in zip(results, cases):
            kept = result[(cams < 0) & (result != 0)]
            if kept.numel():
                return (f"where cams is negative, Grad-CAM's ReLU gives exactly 0 but your maps hold {float(kept.abs().max()):.3g} (a "
                        "clamp(min=eps) or an added epsilon?): the ReLU is clamp(min=0), so a map that is negative "
                        "everywhere is exactly all zero, as grad_cam(...).raw gives it.")
        return ""
    infinite = [i for i, result in enumerate(results) if not bool(torch.isfinite(result).all())]
    if infinite and all(cases[i].shape[-2] * cases[i].shape[-1] == 1 for i in infinite):
        return (f"on made-up CAMs of shape {tuple(cases[infinite[0]].shape)}, maps of one cell, the maps contain NaN or "
                "infinity, while for larger maps they do not: a division by a number that is 0 when h * w = 1 (h * w - 1?): "
                "Grad-CAM divides by the number of cells, h * w, which is 1 here.")
    if infinite:
        return ("the maps contain NaN or infinity: a division by zero? A map that is negative everywhere is all zero "
                "after the ReLU, so its sum and its maximum are 0; the number of cells never is.")
    for wrong, message in _GRAD_CAM_MISTAKES:
        if all(_close(result, wrong(cams)) for result, cams in zip(results, cases)):
            return message
    # Right for several classes, wrong for one: a special case for K = 1.
    wrong_cases = [i for i, (result, right) in enumerate(zip(results, expected)) if not _close(result, right)]
    if wrong_cases and all(cases[i].shape[0] == 1 for i in wrong_cases) and any(cams.shape[0] > 1 for cams in cases):
        index = wrong_cases[0]
        named = next((message for wrong, message in _GRAD_CAM_MISTAKES if _close(results[index], wrong(cases[index]))), "")
        return (f"on made-up CAMs of one class, shape {tuple(cases[index].shape)}, grad_cam_from_cams does not return what "
                "grad_cam(...).raw gives, while for CAMs of several classes it does: is one class (cams.shape[0] == 1) a "
                "special case in your code? Grad-CAM is the same for any number of classes, ReLU(cams) / (h * w)."
                + (f" For the one class: {named}" if named else ""))
    # Right for maps of several cells in both directions, wrong for maps one cell high or wide: a special case for them.
    def thin(shape: torch.Size) -> bool:
        return shape[-2] == 1 or shape[-1] == 1

    if wrong_cases and all(thin(cases[i].shape) for i in wrong_cases) and any(not thin(cams.shape) for cams in cases):
        index = wrong_cases[0]
        cams, result, right = cases[index], results[index], expected[index].to(results[index].dtype)
        cell = np.unravel_index(int((result.float() - right.float()).abs().argmax()), tuple(cams.shape))
        size = "one cell" if cams.shape[-2] * cams.shape[-1] == 1 else ("one cell high" if cams.shape[-2] == 1 else "one cell wide")
        named = next((message for wrong, message in _GRAD_CAM_MISTAKES if _close(result, wrong(cams))), "")
        return (f"on made-up CAMs of shape {tuple(cams.shape)}, maps of {size}, grad_cam_from_cams does not return what "
                f"grad_cam(...).raw gives (at map {cell[0]}, cell ({cell[1]}, {cell[2]}), where cams holds "
                f"{float(cams[cell]):.4g}, yours is {float(result[cell]):.6g}, Grad-CAM's {float(right[cell]):.6g}), while for "
                "maps of several cells in both directions it does: is a map of this size a special case in your code? "
                "Grad-CAM is the same for any K, h and w, ReLU(cams) / (h * w): with h * w = 1 the division changes "
                "nothing, but the ReLU still cuts the negative cells to 0." + (f" Here: {named}" if named else ""))
    # Near Grad-CAM everywhere, and every value a float16 or bfloat16 number: the arithmetic ran in lower precision.
    for low in (torch.bfloat16, torch.float16):  # bfloat16 first: in float16's range, its numbers are float16 numbers too
        if all(result.dtype != low and torch.equal(result.to(low).to(result.dtype), result) for result in results) and all(
                float((result.double() - right.double()).abs().max())
                <= 2 ** -6 * float(right.double().abs().max()) + 1e-12 for result, right in zip(results, expected)):
            name = str(low).replace("torch.", "")
            return (f"the maps are close to Grad-CAM's (within {100 * 2 ** -6:.2g}% of its largest value), but every value "
                    f"is a {name} number: the ReLU "
                    f"or the division ran in {name} (a .half(), .to(torch.{name}) or autocast on the way), which rounds "
                    "the values, and the cast back does not bring the lost digits back. Compute in the CAMs' own dtype.")
    # Cut from above (relu6, a clamp(max=...)): equal wherever Grad-CAM is below the largest value the answer reaches.
    for result, right, cams in zip(results, expected, cases):
        right = right.to(result.dtype)
        if _close(result, right) or not result.numel() or cams.shape[-2] * cams.shape[-1] == 1:
            continue  # a map of one cell: any factor looks like a cap
        cap = float(result.max())
        above = right > cap + 1e-6 * max(abs(cap), 1.0)
        if cap > 0 and bool(above.any()) and _close(result[~above], right[~above]) and \
                float((result[above] - cap).abs().max()) <= 1e-5 * cap:
            return (f"your maps stop at {cap:.4g} where Grad-CAM's go higher (up to {float(right.max()):.4g}): the values are "
                    "cut from above (F.relu6, or a clamp(max=...)). Grad-CAM's ReLU cuts only below 0: clamp(min=0).")
    # The same factor whatever the size: a number of cells taken from somewhere else.
    ratios = []
    for result, cams in zip(results, cases[:2]):
        positive = cams.clamp(min=0)
        mask = positive > 0
        ratio = result[mask] / positive[mask]
        if bool((result[~mask].abs() < 1e-6).all()) and float(ratio.max() - ratio.min()) < 1e-4 * float(ratio.abs().max()):
            ratios.append(float(ratio.mean()))
    if len(ratios) == 2 and abs(ratios[0] - ratios[1]) < 1e-4 * abs(ratios[0]) and ratios[0] != 0:
        return (f"the maps are divided by the same number ({1 / ratios[0]:.4g}) whatever their size: divide by the number "
                "of cells of the maps you are given, h * w from cams.shape, not a number from the notebook or one model.")
    # The case and cell where yours and Grad-CAM's differ most (relative to the map's size), not one where they agree.
    def worst(index: int) -> float:
        __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
        difference = (results[index].float() - expected[index].float()).abs()
        return float(difference.max()) / (float(expected[index].abs().max()) + 1e-12)
    index = max((i for i in range(len(cases)) if not _close(results[i], expected[i])), key=worst)
    cams, result, right = cases[index], results[index], expected[index].to(results[index].dtype)
    cell = np.unravel_index(int((result.float() - right.float()).abs().argmax()), tuple(cams.shape))
    where = (f"on made-up CAMs of shape {tuple(cams.shape)}" if index < len(cases) - 1 else
             f"on the CAMs of the check's photo, shape {tuple(cams.shape)}")
    return (f"{where}, grad_cam_from_cams does not return what grad_cam(...).raw "
            f"gives at layer4: at map {cell[0]}, cell ({cell[1]}, {cell[2]}), where cams holds {float(cams[cell]):.4g}, yours "
            f"is {float(result[cell]):.6g}, Grad-CAM's {float(right[cell]):.6g}. Work out the gradient of logit k with respect to one cell of channel c of layer4 "
            "(global average pooling, then fc), hence Grad-CAM's channel weights, then its map.")


def _non_contiguous_error(cams: torch.Tensor, error: BaseException) -> str | None:
    """The message for an error raised on CAMs that are not contiguous in memory (valid CAMs all the same)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    text = str(error)
    if "view" not in text and "contiguous" not in text and "stride" not in text:
        return None
    return (f"grad_cam_from_cams raised {type(error).__name__} on made-up CAMs of shape {tuple(cams.shape)} that are not "
            "contiguous in memory (a transposed tensor, cams.transpose(1, 2), which are valid CAMs all the same): "
            f"{text.splitlines()[0] if text else ''}. .view() works only on contiguous tensors: use .reshape(), or no "
            "reshape at all (the ReLU and the division work on the (K, h, w) tensor as it is).")


def _check_grad_cam(checker: Checker, model: LoadedModel, grad_cam_from_cams: Callable) -> None:
    # Two made-up cases, then the CAMs of the check's photo, whose right answer is the library's Grad-CAM.
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    references = cached(model, "exercise e", lambda: _references(model, check_image(), model))
    library = cached(model, "exercise e: grad_cam", lambda: grad_cam(model, check_image(), range(references["classes"])).raw.cpu())
    cases = [*_made_up_cams(), references["reference"]]
    expected = [_grad_cam(cams) for cams in cases[:-1]] + [library]
    answers, changed, changed_on, first_given = [], "", None, None
    with recorded_calls(BACKWARD_CALLS) as backward:
        for cams in cases:
            given = cams.clone()  # the same strides: a transposed case stays non-contiguous
            first_given = given if first_given is None else first_given  # kept alive: no new tensor takes its id
            ok, answer = checker.call(grad_cam_from_cams, given, watch_inputs=False,
                                      explain=None if cams.is_contiguous() else functools.partial(_non_contiguous_error, cams))
            if not ok:
                checker.skip(_CHECKS[4:], "grad_cam_from_cams must run first")
                return
            if given.shape != cams.shape or given.dtype != cams.dtype or not torch.equal(given.detach(), cams):
                changed, changed_on = changed or "values", cams if changed_on is None else changed_on
            elif given.requires_grad or given.grad is not None:
                changed = changed or "requires_grad"
            answers.append(answer)
        # The caller's CAMs may need gradients (CAMs of a network being trained): cams.detach_() or
        # cams.requires_grad_(False) switches them off. A quiet call: an answer that fails on a tensor
        # that requires grad (cams.numpy(), an in-place op on a leaf) is judged on the calls above alone.
        # Other CAMs of the first case's shape, generated at check time: the result must be theirs, not a result kept
        # from an earlier call of the same shape.
        # They are given in the first call's tensor, changed in place: a result kept by the tensor object (a cache
        # keyed by id(cams)) shows too; only if the first call's maps come back, a new tensor tells the two apart.
        seed = 12
        other = torch.randn(cases[0].shape, generator=torch.Generator().manual_seed(seed)) * 3
        if isinstance(answers[0], torch.Tensor):
            answers[0] = answers[0].clone()  # the first answer as it was, even if it shares the given tensor's memory
        given = first_given if first_given.shape == other.shape and first_given.dtype == other.dtype else other.clone()
        with torch.no_grad():
            given.copy_(other)
        stale = checker.quiet_call(grad_cam_from_cams, given, watch_inputs=False)
        if not torch.equal(given.detach(), other):
            changed, changed_on = changed or "values", other if changed_on is None else changed_on

        def right_for(result: Any, cams: torch.Tensor) -> bool:
            return isinstance(result, torch.Tensor) and _close(as_tensor(result).detach().float(), _grad_cam(cams).float())

        if stale is not None and not right_for(stale, other):
            kept = right_for(stale, cases[0])  # the first call's maps again
            # A new tensor gets the right maps, or those of a tensor freed since whose id it takes: not the old ones.
            again = checker.quiet_call(grad_cam_from_cams, other.clone(), watch_inputs=False) if kept else None
            stale = "by object" if kept and isinstance(again, torch.Tensor) and not right_for(again, cases[0]) else "stale"
        given = cases[1].clone().requires_grad_(True)
        checker.quiet_call(grad_cam_from_cams, given, watch_inputs=False)
        if not given.requires_grad:
            changed = changed or "requires_grad off"
    problem = _grad_cam_problem(cases, expected, answers)
    if not problem and stale == "by object":
        problem = (f"called a second time with other CAMs in the same tensor (the check changed, in place, the CAMs of "
                   f"shape {tuple(cases[0].shape)} it gave before), grad_cam_from_cams returned the maps of the CAMs before "
                   "the change, though a new tensor of the same CAMs gets other maps: a result kept from an earlier "
                   "call by the tensor object (a cache keyed by id(cams)): the same tensor changed in place, or a new "
                   "tensor that takes the id of one freed before (Python reuses ids), gets an old result. Compute the "
                   "maps from the cams each call is given, with no cache.")
    if not problem and stale == "stale":
        problem = (f"called a second time with other CAMs of the same shape, {tuple(cases[0].shape)}, grad_cam_from_cams "
                   "returned maps that are not theirs (a result kept from an earlier call, cached by the CAMs' shape?): "
                   "compute the maps from the cams each call is given, with no cache.")
    if backward:
        # Whatever the values: the text asks for Grad-CAM from the CAMs by reasoning, not by autograd.
        problem = (f"grad_cam_from_cams runs {backward[0]}, which the text asks you to do without: work out on paper "
                   "the gradient of logit k with respect to one cell of channel c of layer4 (notebook 3b, section 3); "
                   "Grad-CAM's channel weights, and so its maps, follow from the CAMs with no backward pass.")
    checker.require(_CHECKS[4], not problem, problem)
    only_non_negative = changed == "values" and changed_on is not None and bool((changed_on >= 0).all())
    checker.require(
        _CHECKS[5], not changed,
        f"grad_cam_from_cams changed the made-up CAMs it was given, of shape {tuple(changed_on.shape)}, which have no "
        "negative cell (as CAMs after a ReLU have), while the made-up CAMs with negative cells were left alone: is the division done in "
        "place (cams.div_, /=) when nothing needs the ReLU? The caller's CAMs lose their values (and the result is the "
        "caller's own tensor). Compute a new tensor, ReLU(cams) / (h * w), whatever the values, and leave cams as it was."
        if only_non_negative else
        "grad_cam_from_cams changed the CAMs it was given (an in-place operation such as clamp_, relu_, /= or "
        "cams[cams < 0] = 0): the caller's CAMs lose their values. Compute a new tensor and leave cams as it was."
        if changed == "values" else
        "grad_cam_from_cams switched off requires_grad of the CAMs it was given (cams.detach_() or "
        "cams.requires_grad_(False)): the caller's CAMs no longer carry gradients back to the network. Leave cams as it "
        "was: cams.detach() returns a new tensor and leaves cams alone."
        if changed == "requires_grad off" else
        "grad_cam_from_cams switched on requires_grad of the CAMs it was given (cams.requires_grad_()), or stored a "
        "gradient in them: the caller's CAMs now build an autograd graph in every later operation. Leave cams as it "
        "was; no gradient is needed here.",
    )


def check_e(model: LoadedModel, class_activation_maps: Callable, grad_cam_from_cams: Callable, *, _grading: bool = False) -> CheckResult:
    """Exercise e: the original CAM of all classes from one forward pass, and Grad-CAM from it.

    Args:
        model: the model the notebook uses.
        class_activation_maps: ``class_activation_maps(model, image)`` -> (classes, h, w): for each class k, the sum
            over the channels c of ``fc.weight[k, c]`` times layer4's activation of the image, no bias, ReLU or scaling.
        grad_cam_from_cams: ``grad_cam_from_cams(cams)`` -> what ``grad_cam(...).raw`` gives at layer4,
            ReLU(cams) / (h * w), without changing ``cams``.
        _grading: count an unfinished function as failed instead of raising its ``NotImplementedError``.

    Returns:
        The checks' result.
    """
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    small = smaller_input(model)  # a quick check; CAMs are computed the same way on smaller inputs
    # Hooks and the CAMs given to grad_cam_from_cams have checks of their own; the rest is watched for every exercise.
    checker = Checker("e", CHECK_COUNT, catch_not_implemented=_grading, models=[model, small, made_up_model(), few_classes_model()],
                      watch_hooks=False)
    try:
        _check_cams(checker, small, model, class_activation_maps)
        _check_grad_cam(checker, small, grad_cam_from_cams)
    except NotImplementedError:
        raise  # an unfinished function: the notebook shows its hint
    except Exception as error:  # noqa: BLE001 - the check reports, it never raises an error of its own
        _unfinished(checker, CHECK_NAMES, error)
    return checker.finish()


def _unfinished(checker: Checker, names: tuple[str, ...], error: BaseException) -> None:
    """Count the checks not judged yet as failed, with the error that stopped the check itself (after a student's call)."""
    __tracebackhide__ = True  # IPython leaves this frame out of a student's traceback
    left = [name for name in names if name not in checker.result.passed]
    checker.skip(left or list(names[-1:]), f"the check could not go on after your functions ran ({type(error).__name__}: "
                 f"{str(error).splitlines()[0] if str(error) else ''}): did one of them change the model (its dtype, device, "
                 "layers) or torch's settings and leave them so? Restart the kernel and run the notebook from the top")
