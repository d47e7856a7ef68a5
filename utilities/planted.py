"""Scenes with a planted cue, and a small CNN trained on them: the ground truth of lesson 10.

A scene is a 64 x 64 RGB image of one bar, horizontal or vertical (the class,
the true signal), on a noisy colour gradient. A **stamp**, an 8 x 8 checker
patch, can be planted on a chosen share of one class's scenes: a local cue
whose box is known, so a map's mass on it can be measured against the box's
share of the area. A **colour cast** can be planted instead: a cue spread over
the whole image, which no box holds. Everything is drawn from a seed, so a
data set is the same on every machine.

:func:`train_classifier` keeps each model it trains in a cache on disk, keyed
by everything the weights depend on (the scenes, the settings, this module's
code, PyTorch's version and the CPU's kind), so lesson 10b reuses lesson 10's
models instead of training them again; two kernels that ask for the same model
at once train it once.

:class:`SmallCNN` has ResNet50's interface (``layer1`` .. ``layer4``,
``avgpool``, ``fc``), so every helper of the course explains it once wrapped by
:func:`as_loaded_model`; ``layer4`` is an 8 x 8 grid of cells 8 pixels apart.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout
from torch import nn

from .models import LoadedModel

__all__ = [
    "CACHE_VARIABLE",
    "CAST",
    "CLASSES",
    "SCENE_SIZE",
    "STAMP_SIZE",
    "TRAINING_THREADS",
    "Scenes",
    "training_cache_dir",
    "SmallCNN",
    "accuracy",
    "as_loaded_model",
    "make_scenes",
    "to_tensor",
    "train_classifier",
]

#: The two classes, in output order.
CLASSES = ("horizontal bar", "vertical bar")

#: Height and width of a scene, in pixels.
SCENE_SIZE = 64

#: Side of the stamp, in pixels.
STAMP_SIZE = 8

#: Threads :func:`train_classifier` trains with, whatever the machine has: the trained model depends on it.
TRAINING_THREADS = 2

#: The colour cast added to a scene's (R, G, B) values: warmer, less blue.
CAST = (25.0, 0.0, -25.0)

#: Environment variable naming the folder of trained models (default: ``gradcam-course/planted`` in the user's cache).
CACHE_VARIABLE = "GRADCAM_TRAINING_CACHE"

_MEAN, _STD = (0.5,) * 3, (0.25,) * 3
_SCENES_PER_BLOCK = 64


@dataclass(frozen=True)
class Scenes:
    """A data set of scenes.

    Attributes:
        images: (N, 64, 64, 3) uint8 RGB.
        labels: (N,) class indices into :data:`CLASSES`.
        stamp_boxes: (N, 4) the stamp's ``(left, top, right, bottom)``; all -1 where there is none.
        bar_boxes: (N, 4) a box around the bar, same convention.
        cast: (N,) whether the scene carries the colour cast.
    """

    images: np.ndarray
    labels: np.ndarray
    stamp_boxes: np.ndarray
    bar_boxes: np.ndarray
    cast: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def stamped(self) -> np.ndarray:
        """(N,) whether the scene carries the stamp."""
        return self.stamp_boxes[:, 0] >= 0


def _class_index(name: str | None, argument: str) -> int | None:
    if name is None:
        return None
    if name not in CLASSES:
        raise ValueError(f"{argument} must be one of {CLASSES} or None, got {name!r}.")
    return CLASSES.index(name)


def _share(value: float, argument: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{argument} is a share of scenes, between 0 and 1; got {value!r}.")
    return float(value)


def _stamp() -> np.ndarray:
    rows, cols = np.mgrid[:STAMP_SIZE, :STAMP_SIZE]
    checker = ((rows // 2 + cols // 2) % 2).astype(np.float32)
    return 255 * np.stack([checker, 1 - checker, checker], axis=-1)  # magenta and green, 2-pixel squares


def make_scenes(
    n: int,
    seed: int,
    *,
    stamp_on: str | None = None,
    stamp_share: float = 0.9,
    cast_on: str | None = None,
    cast_share: float = 0.9,
) -> Scenes:
    """Draw ``n`` scenes, classes at random, with the cues asked for.

    Args:
        n: how many scenes.
        seed: the seed of everything drawn; the same seed gives the same scenes.
        stamp_on: the class whose scenes get the stamp, or ``None`` for no stamp.
        stamp_share: the share of that class's scenes stamped, each by chance.
            The stamp never overlaps the bar's box.
        cast_on: the class whose scenes get the colour cast, or ``None``.
        cast_share: the share of that class's scenes with the cast.

    Returns:
        The scenes.

    Raises:
        ValueError: ``n`` below 1, a class not in :data:`CLASSES`, a share outside [0, 1].
    """
    if int(n) < 1:
        raise ValueError(f"n is how many scenes to draw, at least 1; got {n!r}.")
    n = int(n)
    stamp_class, cast_class = _class_index(stamp_on, "stamp_on"), _class_index(cast_on, "cast_on")
    stamp_share, cast_share = _share(stamp_share, "stamp_share"), _share(cast_share, "cast_share")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    rows, cols = np.mgrid[:SCENE_SIZE, :SCENE_SIZE].astype(np.float32) - (SCENE_SIZE - 1) / 2

    base = rng.uniform(60, 190, (n, 1, 1, 3)).astype(np.float32)
    slope = rng.uniform(-1, 1, (n, 2, 1, 1, 1)).astype(np.float32)
    noise = rng.standard_normal((n, SCENE_SIZE, SCENE_SIZE, 3), dtype=np.float32)
    # The bar: 3 : 1, tilted by up to 0.25 rad, in a colour far from the background's.
    half_long = rng.uniform(12, 20, n).astype(np.float32)
    half_short = half_long / 3
    centre = rng.uniform(18, SCENE_SIZE - 18, (n, 2)).astype(np.float32) - (SCENE_SIZE - 1) / 2
    angle = rng.uniform(-0.25, 0.25, n).astype(np.float32) + np.where(labels == 1, np.pi / 2, 0).astype(np.float32)
    colour = 255 - base + rng.uniform(-40, 40, (n, 1, 1, 3)).astype(np.float32)

    # Pixels are computed a block of scenes at a time: the same values, element by element, as on all scenes at
    # once, with a few MB of temporaries instead of some 300 MB for a thousand scenes (a laptop kernel's budget).
    images = np.empty((n, SCENE_SIZE, SCENE_SIZE, 3), np.float32)
    bar_boxes = np.empty((n, 4), np.int64)
    for block in (slice(start, start + _SCENES_PER_BLOCK) for start in range(0, n, _SCENES_PER_BLOCK)):
        pixels = base[block] + slope[block, 0] * cols[None, :, :, None] + slope[block, 1] * rows[None, :, :, None] + 12 * noise[block]
        dx, dy = cols[None] - centre[block, 0, None, None], rows[None] - centre[block, 1, None, None]
        along = np.cos(angle[block])[:, None, None] * dx + np.sin(angle[block])[:, None, None] * dy
        across = -np.sin(angle[block])[:, None, None] * dx + np.cos(angle[block])[:, None, None] * dy
        bar = (np.abs(along) <= half_long[block, None, None]) & (np.abs(across) <= half_short[block, None, None])
        images[block] = np.where(bar[..., None], colour[block] + 8 * noise[block], pixels)  # the bar's own pixels: less noise
        in_column, in_row = bar.any(axis=1), bar.any(axis=2)
        bar_boxes[block] = np.stack([in_column.argmax(1), in_row.argmax(1),
                                     SCENE_SIZE - in_column[:, ::-1].argmax(1), SCENE_SIZE - in_row[:, ::-1].argmax(1)], axis=1)
    del noise

    stamp_boxes = np.full((n, 4), -1)
    if stamp_class is not None:
        stamp = _stamp()
        for i in np.flatnonzero((labels == stamp_class) & (rng.random(n) < stamp_share)):
            left, top, right, bottom = bar_boxes[i]
            corners = np.arange(SCENE_SIZE - STAMP_SIZE + 1)
            clear_x = (corners + STAMP_SIZE <= left) | (corners >= right)
            clear_y = (corners + STAMP_SIZE <= top) | (corners >= bottom)
            free = np.flatnonzero(clear_y[:, None] | clear_x[None, :])  # never empty: a bar's box is under 56 wide
            y, x = divmod(int(free[rng.integers(len(free))]), len(corners))
            images[i, y:y + STAMP_SIZE, x:x + STAMP_SIZE] = stamp
            stamp_boxes[i] = (x, y, x + STAMP_SIZE, y + STAMP_SIZE)

    cast = np.zeros(n, dtype=bool)
    if cast_class is not None:
        cast = (labels == cast_class) & (rng.random(n) < cast_share)
        images[cast] += np.asarray(CAST, np.float32)
    np.clip(images, 0, 255, out=images)
    return Scenes(np.round(images, out=images).astype(np.uint8), labels.astype(np.int64), stamp_boxes, bar_boxes, cast)


def _stage(channels_in: int, channels_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False), nn.BatchNorm2d(channels_out), nn.ReLU()
    )


class SmallCNN(nn.Module):
    """Four stages of one 3 x 3 convolution each, named like ResNet50's, then pooling and ``fc``.

    Strides 2, 2, 2, 1: a 64-pixel scene gives a 32, 16, 8 and 8 cells' grid.

    Args:
        classes: how many outputs.
        width: channels of ``layer1``; ``layer2`` has twice, ``layer3`` and ``layer4`` four times as many.
    """

    def __init__(self, classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()
        self.layer1 = _stage(3, width, 2)
        self.layer2 = _stage(width, 2 * width, 2)
        self.layer3 = _stage(2 * width, 4 * width, 2)
        self.layer4 = _stage(4 * width, 4 * width, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 scenes to the network's normalised (N, 3, H, W) float input."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    mean, std = torch.tensor(_MEAN).view(1, 3, 1, 1), torch.tensor(_STD).view(1, 3, 1, 1)
    return pixels.sub_(mean).div_(std)  # in place: one float copy of the scenes, not three


def training_cache_dir() -> Path:
    """The folder :func:`train_classifier` keeps trained models in: ``$GRADCAM_TRAINING_CACHE`` if set, else the user's cache."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradcam-course" / "planted"


def _cache_key(scenes: Scenes, settings: tuple) -> str:
    digest = hashlib.sha256()
    for array in (scenes.images, scenes.labels):
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    # The weights also depend on the code that trains them, PyTorch's kernels and the CPU's instructions:
    # a change of any of them trains a new model rather than load one that this code would not give.
    digest.update(Path(__file__).read_bytes())
    machine = (torch.__version__, platform.machine(), torch.backends.cpu.get_cpu_capability(), TRAINING_THREADS)
    digest.update(repr((settings, machine)).encode())
    return digest.hexdigest()[:32]


def train_classifier(
    scenes: Scenes,
    seed: int,
    *,
    epochs: int = 4,
    width: int = 16,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    cache: bool = True,
) -> SmallCNN:
    """Train a fresh :class:`SmallCNN` on ``scenes`` with Adam and cross-entropy, or load the one trained before.

    Args:
        scenes: the training set.
        seed: the seed of the initial weights and of the batches' order.
        epochs: passes over the training set.
        width: see :class:`SmallCNN`.
        batch_size: scenes per step.
        learning_rate: Adam's step size.
        cache: keep the trained weights in :func:`training_cache_dir`, and load them from there when the
            same scenes, settings, code, PyTorch and CPU kind trained them before (the same weights, without
            the training's seconds). ``False`` always trains. A cache that cannot be written is skipped.

    Returns:
        The trained network, in eval mode; ``network.from_cache`` says whether it was loaded. It trains with
        :data:`TRAINING_THREADS` threads (the caller's setting is put back), so that a seed gives the same
        model on any machine with the same kind of CPU.
    """
    settings = (seed, epochs, width, batch_size, learning_rate)
    if not cache:
        return _train(scenes, *settings)
    path = training_cache_dir() / f"{_cache_key(scenes, settings)}.pt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock", timeout=600)
        lock.acquire()  # another kernel training the same model: wait for it, then load its weights
    except (OSError, Timeout):
        return _train(scenes, *settings)  # no usable cache: train as if there were none
    try:
        if path.exists():
            try:
                network = SmallCNN(width=width)
                network.load_state_dict(torch.load(path, weights_only=True))
                network.from_cache = True
                return network.eval()
            except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # a damaged file (a run killed while writing cannot leave one, see below): train again
                pass
        network = _train(scenes, *settings)
        try:
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as part:
                torch.save(network.state_dict(), part)
            os.replace(part.name, path)  # atomic: a reader sees no file or a whole one
        except OSError:
            pass
        return network
    finally:
        lock.release()


def _train(scenes: Scenes, seed: int, epochs: int, width: int, batch_size: int, learning_rate: float) -> SmallCNN:
    torch.manual_seed(seed)
    network = SmallCNN(width=width)
    inputs, labels = to_tensor(scenes.images), torch.from_numpy(scenes.labels)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    order_of = torch.Generator().manual_seed(seed)
    network.train()
    threads = torch.get_num_threads()
    # Sums split over another number of threads round differently, and over a few hundred steps those
    # differences grow into another model: the thread count is pinned so a seed trains the same model everywhere.
    torch.set_num_threads(TRAINING_THREADS)
    try:
        with torch.enable_grad():
            for _ in range(epochs):
                order = torch.randperm(len(labels), generator=order_of)
                for start in range(0, len(labels), batch_size):
                    batch = order[start:start + batch_size]
                    loss = nn.functional.cross_entropy(network(inputs[batch]), labels[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
    finally:
        torch.set_num_threads(threads)
    network.from_cache = False
    return network.eval()


@torch.no_grad()
def accuracy(network: nn.Module, scenes: Scenes) -> float:
    """The share of ``scenes`` whose top class is their label."""
    was_training = network.training
    network.eval()
    try:
        predicted = network(to_tensor(scenes.images)).argmax(1).numpy()
    finally:
        network.train(was_training)
    return float((predicted == scenes.labels).mean())


def as_loaded_model(network: SmallCNN, name: str = "small CNN") -> LoadedModel:
    """``network`` with its class names and input normalisation, for every helper of the course (frozen, eval mode)."""
    return LoadedModel.wrap(network, list(CLASSES), mean=_MEAN, std=_STD, input_size=SCENE_SIZE, name=name)
