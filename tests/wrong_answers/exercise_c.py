"""Wrong answers to exercise c: one changed step of the preprocessing."""

from __future__ import annotations

import numpy as np
from torchvision.transforms import v2

from .answers import WrongAnswer

__all__ = ["WRONG_C"]


def _steps(model, change):
    """changed_preprocess applying ``change(list of model.preprocess's steps)``."""

    def changed_preprocess(image):
        return v2.Compose(change(list(model.preprocess.transforms)))(image)

    return changed_preprocess


def _thumbnail(steps):
    steps[1] = v2.Resize(32, antialias=True)
    return steps


def _pipeline(change, new_top_class=None):
    def build(model, solution):
        names = {"changed_preprocess": _steps(model, change)}
        if new_top_class is not None:
            names["new_top_class"] = new_top_class
        return names

    return build


def _function(make, new_top_class=None):
    def build(model, solution):
        names = {"changed_preprocess": make(model, solution)}
        if new_top_class is not None:
            names["new_top_class"] = new_top_class
        return names

    return build


def _in_place_negative(model):
    def changed_preprocess(image):
        image[...] = 255 - image  # edits the caller's photo
        return model.preprocess(image)

    return changed_preprocess


WRONG_C = [
    WrongAnswer("c", "returns a batch (1, 3, H, W)", r"returns a batch, shape \(1, 3",
                _function(lambda m, s: lambda image: s["changed_preprocess"](image).unsqueeze(0))),
    WrongAnswer("c", "two changes: Resize(64) and no Normalize", r"differs from model\.preprocess in 2 steps",
                _pipeline(lambda steps: [steps[0], v2.Resize(64, antialias=True), steps[2]], "joystick")),
    WrongAnswer("c", "the photo cropped before preprocessing", r"no longer sees the whole photo",
                _function(lambda m, s: lambda image: m.preprocess(image[:, : image.shape[1] // 2]))),
    WrongAnswer("c", "a crop step", r"no longer sees the whole photo",
                _pipeline(lambda steps: [*steps[:2], v2.CenterCrop(224), *steps[2:]])),
    WrongAnswer("c", "squashed to 224x224", r"no longer sees the whole photo",
                _pipeline(lambda steps: [steps[0], v2.Resize((224, 224), antialias=True), *steps[2:]])),
    WrongAnswer("c", "colours reversed on the photo array, not as a step", r"change made outside the steps",
                _function(lambda m, s: lambda image: m.preprocess(np.ascontiguousarray(image[..., ::-1])))),
    WrongAnswer("c", "the photo edited in place", r"changed the photo it was given",
                _function(lambda m, s: _in_place_negative(m))),
    WrongAnswer("c", "nothing changed", r"still says 'espresso'",
                _function(lambda m, s: m.preprocess, "espresso")),
    WrongAnswer("c", "a flip, which barely matters to this model", r"still says 'espresso'.*try another candidate",
                _pipeline(lambda steps: [*steps, v2.RandomHorizontalFlip(p=1.0)], "espresso")),
    WrongAnswer("c", "grayscale with one channel", r"returns one channel.*num_output_channels=3",
                _pipeline(lambda steps: [steps[0], v2.Grayscale(num_output_channels=1), *steps[1:3]])),
    WrongAnswer("c", "a NumPy array returned", r"returns a NumPy array",
                _function(lambda m, s: lambda image: s["changed_preprocess"](image).numpy())),
    WrongAnswer("c", "new_top_class as an index", r"new_top_class is the number 607; give the class's name",
                _pipeline(_thumbnail, 607)),
    WrongAnswer("c", "new_top_class left at None", r"new_top_class is still None",
                lambda m, s: {"new_top_class": None}),
    WrongAnswer("c", "a real class the model does not predict", r"'tabby' is a real class, but not what the model predicts",
                _pipeline(_thumbnail, "tabby")),
    WrongAnswer("c", "a misspelt class name", r"not an ImageNet class name: No class called 'jack o lantern pumpkin'",
                _pipeline(_thumbnail, "jack o lantern pumpkin")),
]
