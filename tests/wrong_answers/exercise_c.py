"""Wrong answers to exercise c: one changed step of the preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import functional as transforms_functional
from torchvision.transforms import v2

from .answers import RightAnswer, WrongAnswer

__all__ = ["RIGHT_C", "WRONG_C"]


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


def _steps_then(model, after):
    """The one-step solution (a thumbnail), then ``after`` applied to the tensor it gives: a change outside the steps."""

    def changed_preprocess(image):
        return after(v2.Compose(_thumbnail(list(model.preprocess.transforms)))(image))

    return changed_preprocess


def _blacked_out(image):
    """The photo with its middle (the cup) blacked out, on a copy: the caller's photo is untouched."""
    copy = image.copy()
    height, width = copy.shape[:2]
    copy[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 0
    return copy


def _black_middle(tensor):
    tensor = tensor.clone()
    height, width = tensor.shape[-2:]
    tensor[..., height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 0
    return tensor


def _global_photo(model):
    from utilities import DATA_DIR, load_image

    photo = load_image(DATA_DIR / "coffee.jpg")  # the notebook's global photo

    def changed_preprocess(image):
        return v2.Compose(_thumbnail(list(model.preprocess.transforms)))(photo)

    return changed_preprocess


def _training_mode(model):
    def changed_preprocess(image):
        model.network.train()  # e.g. to "refresh" the model before trying a pipeline
        return v2.Compose(_thumbnail(list(model.preprocess.transforms)))(image)

    return changed_preprocess


def _edits_model_preprocess(model):
    def changed_preprocess(image):
        model.preprocess.transforms[1] = v2.Resize(32, antialias=True)  # edits the model's own pipeline
        return model.preprocess(image)

    return changed_preprocess


def _ran_before_the_check(make, new_top_class):
    """An answer whose function the notebook already called once (the cell after it does) before the check runs."""

    def build(model, solution):
        from utilities import DATA_DIR, load_image

        changed_preprocess = make(model)
        changed_preprocess(load_image(DATA_DIR / "coffee.jpg"))
        return {"changed_preprocess": changed_preprocess, "new_top_class": new_top_class}

    return build


def _top_class(model, change):
    """The name the model predicts for the coffee photo with a changed pipeline, as model.class_names writes it."""
    from utilities import DATA_DIR, load_image

    with torch.inference_mode():
        logits = model.network(v2.Compose(change(list(model.preprocess.transforms)))(load_image(DATA_DIR / "coffee.jpg")).unsqueeze(0))
    return model.class_names[int(logits.argmax())]


def _zeros(steps):
    """A "step" that replaces the image by zeros: the input no longer depends on the photo."""
    return [*steps[:3], v2.Lambda(torch.zeros_like), steps[3]]


def _named(change, spell=lambda name: name):
    """The pipeline ``change`` and the class it predicts, spelt by ``spell``."""
    return lambda model, solution: {"changed_preprocess": _steps(model, change), "new_top_class": spell(_top_class(model, change))}


def _noise(x):
    return x + 0.5 * torch.randn_like(x)


WRONG_C = [
    WrongAnswer("c", "a random step: ElasticTransform", r"gives a different tensor each time it is called on the same photo: a random step",
                _named(lambda steps: [*steps, v2.ElasticTransform(alpha=200.0)])),
    WrongAnswer("c", "a random step: Gaussian noise, the name copied from the check's message", r"different tensor each time.*a random step",
                _pipeline(lambda steps: [*steps[:3], v2.Lambda(_noise), steps[3]], "bubble")),
    WrongAnswer("c", "a step that replaces the image by zeros", r"the network's input no longer depends on the photo: your steps give "
                r"the same tensor \(every value is .*a step replaces the image", _named(_zeros)),
    WrongAnswer("c", "the class name in title case", r"new_top_class is \"Jack-O'-Lantern\", but the model writes its top class "
                r"\"jack-o'-lantern\": give the name exactly as model\.class_names writes it", _named(_thumbnail, str.title)),
    WrongAnswer("c", "the class name with a trailing space", r"give the name exactly as model\.class_names writes it",
                _named(_thumbnail, lambda name: name + " ")),
    WrongAnswer("c", "a synonym instead of the class name", r"'tabby cat', which is not one of the model's class names but another name for 'tabby'",
                _pipeline(_thumbnail, "tabby cat")),
    WrongAnswer("c", "a crop that keeps the aspect ratio", r"the photo is cropped|inverting the colours along the photo's \w+ edge does not change the input.*cut off",
                _pipeline(lambda steps: [*steps[:2], v2.CenterCrop((200, 300)), *steps[2:]], "espresso")),
    WrongAnswer("c", "the one-step solution returned as float64", r"returns torch\.float64 values.*return float32",
                _function(lambda m, s: _steps_then(m, lambda tensor: tensor.double()), "jack-o'-lantern")),
    WrongAnswer("c", "a change made to the tensor after the steps", r"change made outside the steps",
                _function(lambda m, s: _steps_then(m, lambda tensor: tensor.flip(0)), "jack-o'-lantern")),
    WrongAnswer("c", "two changes inside one Lambda", r"differs from model\.preprocess in 2 steps.*each transform called inside a v2\.Lambda is a step",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.Grayscale(3)(v2.Resize(32, antialias=True)(x))), *steps[1:]])),
    WrongAnswer("c", "ToDtype(float16) in place of ToDtype(float32): one message, no 'same steps'",
                r"^(?!.*applies the same steps)(?s:.*)returns torch\.float16 values.*return float32",
                _pipeline(lambda steps: [steps[0], steps[1], v2.ToDtype(torch.float16, scale=True), steps[3]], "joystick")),
    WrongAnswer("c", "two functional transforms inside one Lambda (v2.functional)",
                r"differs from model\.preprocess in 2 steps.*v2\.functional\.horizontal_flip\(\.\.\.\).*added v2\.functional\.resize",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resize(v2.functional.horizontal_flip(x), [32])), *steps[1:]])),
    WrongAnswer("c", "two functional transforms inside one Lambda (torchvision.transforms.functional)",
                r"differs from model\.preprocess in 2 steps.*transforms\.functional\.rgb_to_grayscale\(\.\.\.\)",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: transforms_functional.rgb_to_grayscale(
                    transforms_functional.resize(x, [32]), num_output_channels=3)), *steps[1:]])),
    WrongAnswer("c", "the object blacked out on a copy of the photo", r"change made outside the steps \(to the photo, or a copy of it",
                _function(lambda m, s: lambda image: m.preprocess(_blacked_out(image)))),
    WrongAnswer("c", "the object blacked out by a Lambda step", r"part of the photo is blacked out or overwritten|inverting the colours in block \(2, 2\).*does not change the input at all.*hidden",
                _pipeline(lambda steps: [steps[0], v2.Lambda(_black_middle), *steps[1:]])),
    WrongAnswer("c", "the notebook's photo whatever the image", r"returns the same tensor whatever photo it is given.*image argument",
                _function(lambda m, s: _global_photo(m), "jack-o'-lantern")),
    WrongAnswer("c", "the network put in training mode", r"left the network in training mode.*The check put the network back in eval mode",
                _function(lambda m, s: _training_mode(m), "jack-o'-lantern")),
    WrongAnswer("c", "model.preprocess edited in place, by the cell before the check", r"model\.preprocess is not the model's own pipeline any more \(.*Resize.*\): a cell changed it in place",
                _ran_before_the_check(_edits_model_preprocess, "jack-o'-lantern")),
    WrongAnswer("c", "model.preprocess edited in place", r"changed model\.preprocess \(its steps\).*list\(model\.preprocess\.transforms\)",
                _function(lambda m, s: _edits_model_preprocess(m), "jack-o'-lantern")),

    WrongAnswer("c", "returns a batch (1, 3, H, W)", r"returns a batch, shape \(1, 3",
                _function(lambda m, s: lambda image: s["changed_preprocess"](image).unsqueeze(0))),
    WrongAnswer("c", "two changes: Resize(64) and no Normalize", r"differs from model\.preprocess in 2 steps",
                _pipeline(lambda steps: [steps[0], v2.Resize(64, antialias=True), steps[2]], "joystick")),
    WrongAnswer("c", "the photo cropped before preprocessing", r"the photo is cropped|no longer sees the whole photo",
                _function(lambda m, s: lambda image: m.preprocess(image[:, : image.shape[1] // 2]))),
    WrongAnswer("c", "a crop step", r"the photo is cropped|no longer sees the whole photo",
                _pipeline(lambda steps: [*steps[:2], v2.CenterCrop(224), *steps[2:]])),
    WrongAnswer("c", "squashed to 224x224", r"the photo is squashed|no longer sees the whole photo",
                _pipeline(lambda steps: [steps[0], v2.Resize((224, 224), antialias=True), *steps[2:]])),
    WrongAnswer("c", "colours reversed on the photo array, not as a step", r"change made outside the steps",
                _function(lambda m, s: lambda image: m.preprocess(np.ascontiguousarray(image[..., ::-1])))),
    WrongAnswer("c", "the photo edited in place", r"changed_preprocess changed the array it was given as argument 1 \(image\), in place",
                _function(lambda m, s: _in_place_negative(m))),
    WrongAnswer("c", "nothing changed", r"top class is still 'espresso' \(\d+\.\d%\)\.$",
                _function(lambda m, s: m.preprocess, "espresso")),
    WrongAnswer("c", "a flip, which barely matters to this model", r"top class is still 'espresso'.*try another candidate",
                _pipeline(lambda steps: [*steps, v2.RandomHorizontalFlip(p=1.0)], "espresso")),
    WrongAnswer("c", "grayscale with one channel", r"returns one channel.*num_output_channels=3",
                _pipeline(lambda steps: [steps[0], v2.Grayscale(num_output_channels=1), *steps[1:3]])),
    WrongAnswer("c", "a NumPy array returned", r"returns a NumPy array",
                _function(lambda m, s: lambda image: s["changed_preprocess"](image).numpy())),
    WrongAnswer("c", "new_top_class as an index", r"new_top_class is the number 607; give the class's name",
                _pipeline(_thumbnail, 607)),
    WrongAnswer("c", "new_top_class left at None", r"new_top_class is still None",
                lambda m, s: {"new_top_class": None}),
    WrongAnswer("c", "a real class the model does not predict", r"'tabby' is a real class, but not what the model predicts with your pipeline: its top class is .jack-o'-lantern.",
                _pipeline(_thumbnail, "tabby")),
    WrongAnswer("c", "a misspelt class name", r"not an ImageNet class name: No class called 'jack o lantern pumpkin'",
                _pipeline(_thumbnail, "jack o lantern pumpkin")),
]

RIGHT_C = [
    RightAnswer("c", "Resize(48) in place of Resize, the name read in code", _named(lambda steps: [steps[0], v2.Resize(48, antialias=True), *steps[2:]])),
    RightAnswer("c", "ToDtype without scaling (0 to 255), the name read in code",
                _named(lambda steps: [*steps[:2], v2.ToDtype(torch.float32, scale=False), steps[3]])),
]

WRONG_C += [
    # a fresh student's round 6: passed the check before
    WrongAnswer("c", "Resize replaced by slicing that also trims a 2-pixel border", r"the photo is cropped|bottom edge does not change the input at all.*crop",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: x[..., 2:-2:6, 2:-2:6]), *steps[2:]])),
    # round 6: a message that did not name the cause
    WrongAnswer("c", "Resize inserted before ToImage, a no-op there", r"gives back its input unchanged where it stands.*after ToImage",
                _pipeline(lambda steps: [v2.Resize(64, antialias=True), *steps])),
]

RIGHT_C += [
    RightAnswer("c", "Resize replaced by a Lambda calling v2.functional.resize (one step)",
                _named(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resize(x, [32], antialias=True)), *steps[2:]])),
]

WRONG_C += [
    # a fresh student's round 8: a padded input was refused as "another aspect ratio", with a message about cropping
    # and squashing; the text now forbids padding, and the message names it
    WrongAnswer("c", "v2.Pad added at the end (a border around the photo)", r"pads the photo \(Pad.*no padding",
                _pipeline(lambda steps: [*steps, v2.Pad(300)])),
    WrongAnswer("c", "padding inside a v2.Lambda (v2.functional.pad)", r"pads the photo \(v2\.functional\.pad.*no padding",
                _pipeline(lambda steps: [*steps, v2.Lambda(lambda x: v2.functional.pad(x, [100]))])),
]


def _own_lambda(function):
    """Resize replaced by a v2.Lambda of the student's own operations (no transform called): one step."""
    return _pipeline(lambda steps: [steps[0], v2.Lambda(function), *steps[2:]])


def _interpolated(x, size=(32, 48)):
    """The photo resized by the student's own code (torch's interpolate), in its dtype."""
    return torch.nn.functional.interpolate(x[None].float(), size=size, mode="bilinear", antialias=True)[0].to(x.dtype)


def _last_row_zeroed(x):
    y = _interpolated(x)
    y[:, -1] = 0
    return y


def _left_columns_copied(x):
    y = _interpolated(x)
    y[:, :, :4] = y[:, :, 4:8].clone()
    return y


WRONG_C += [
    # a fresh student's round 10: passed the check before
    WrongAnswer("c", "own Lambda: resized, then a 1-pixel border of zeros", r"pads the photo.*no padding",
                _own_lambda(lambda x: torch.nn.functional.pad(_interpolated(x), (1, 1, 1, 1)))),
    WrongAnswer("c", "own Lambda: resized, then a 1-pixel reflected border", r"shrunk and moved inward.*padding",
                _own_lambda(lambda x: torch.nn.functional.pad(_interpolated(x).float()[None], (1, 1, 1, 1), mode="reflect")[0].to(x.dtype))),
    WrongAnswer("c", "own Lambda: resized, then the first column dropped", r"the photo is cropped",
                _own_lambda(lambda x: _interpolated(x)[:, :, 1:])),
    WrongAnswer("c", "a Lambda cropping the top 4 rows while resizing (resized_crop)", r"the photo is cropped.*row 0",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resized_crop(x, 4, 0, x.shape[-2] - 4, x.shape[-1], [32, 48])), *steps[2:]])),
    WrongAnswer("c", "own Lambda: resized, then the last row zeroed", r"blacked out or overwritten.*rows 31 to 31",
                _own_lambda(_last_row_zeroed)),
    WrongAnswer("c", "own Lambda: resized, then the left columns overwritten by a copy", r"part of the photo is hidden.*overwritten",
                _own_lambda(_left_columns_copied)),
    WrongAnswer("c", "own Lambda: resized and turned gray (two changes)", r"both resizes the image and changes its colours.*two steps",
                _own_lambda(lambda x: _interpolated(x).float().mean(0, keepdim=True).expand(3, -1, -1).to(x.dtype))),
    WrongAnswer("c", "own Lambda: resized, then rolled by 10 columns", r"wraps around",
                _own_lambda(lambda x: torch.roll(_interpolated(x), 10, dims=-1))),
    WrongAnswer("c", "Resize((33, 48)): a slight squash", r"the photo is squashed: the input is 33x48",
                _pipeline(lambda steps: [steps[0], v2.Resize((33, 48), antialias=True), *steps[2:]])),
]


def _replaced_to_dtype(function):
    """ToDtype replaced by a v2.Lambda of the student's own operations."""
    return _pipeline(lambda steps: [v2.Lambda(function) if isinstance(step, v2.ToDtype) else step for step in steps])


WRONG_C += [
    # a fresh student's round 11: one Lambda making two changes, or a message that named another cause
    WrongAnswer("c", "own Lambda replacing ToDtype: flipped left-right and no scaling (two changes)",
                r"makes 2 changes, each a step: it moves or resizes the pixels.*changes the scale of the values",
                _replaced_to_dtype(lambda x: x.flip(-1).float())),
    WrongAnswer("c", "own Lambda replacing ToDtype: colour order reversed and no scaling (two changes)",
                r"makes 2 changes, each a step: it changes the colours.*changes the scale of the values",
                _replaced_to_dtype(lambda x: x.flip(0).float())),
    WrongAnswer("c", "a Lambda calling v2.functional.resize on a posterized photo (two changes)",
                r"both resizes the image and changes its colours.*two steps",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resize((x // 128) * 255, [32])), *steps[2:]])),
]


def _reseeded_thumbnail(x):
    torch.manual_seed(0)  # resets the notebook's random generator on every call
    return v2.functional.resize(x, [32], antialias=True)


WRONG_C += [
    # a fresh student's round 12: one Lambda making two changes of the pixels' places, a reseeded generator, a photo
    # array passed on channels last (the check built a tensor of ~13 GB)
    WrongAnswer("c", "a Lambda cropping 1 pixel off every side while resizing (two changes)",
                r"both resizes the image and moves its pixels.*two steps",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resize(x[:, 1:-1, 1:-1], [32], antialias=True)), *steps[2:]])),
    WrongAnswer("c", "own Lambda: resized and flipped left-right (two changes)", r"both resizes the image and moves its pixels.*two steps",
                _own_lambda(lambda x: _interpolated(x).flip(-1))),
    WrongAnswer("c", "own Lambda: resized and flipped upside down (two changes)", r"both resizes the image and moves its pixels.*two steps",
                _own_lambda(lambda x: _interpolated(x).flip(-2))),
    WrongAnswer("c", "a Lambda that resizes and calls torch.manual_seed(0)", r"resets torch's random number generator",
                _pipeline(lambda steps: [steps[0], v2.Lambda(_reseeded_thumbnail), *steps[2:]])),
    WrongAnswer("c", "ToImage replaced by torch.from_numpy (channels last): stopped, not run", r"a Resize step got shape \(400, 600, 3\), channels last",
                _pipeline(lambda steps: [v2.Lambda(lambda x: torch.from_numpy(np.ascontiguousarray(x))), *steps[1:]], "ladybug")),
]

RIGHT_C += [
    # round 12: refused before, though right
    RightAnswer("c", "Resize(224) re-created with default arguments (the same step), Resize(32) added",
                _named(lambda steps: [steps[0], v2.Resize(224, antialias=True), steps[2], v2.Resize(32, antialias=True), steps[3]])),
    RightAnswer("c", "a strong blur added at the end, GaussianBlur(21, sigma=8)",
                _named(lambda steps: [*steps, v2.GaussianBlur(21, sigma=8.0)])),
    # round 13: refused before, though right (a side rounded down, not to the nearest pixel)
    RightAnswer("c", "Resize(size=None, max_size=40): the long side 40, the short side rounded down",
                _named(lambda steps: [steps[0], v2.Resize(size=None, max_size=40, antialias=True), *steps[2:]])),
    RightAnswer("c", "every 7th pixel on both axes (x[..., ::7, ::7]), the sides rounded up",
                _named(lambda steps: [steps[0], v2.Lambda(lambda x: x[..., ::7, ::7]), *steps[2:]])),
]


def _functional(model, size=48, normalize=True):
    """The steps called as v2.functional functions, one after another (no v2.Compose), Resize(size) the change."""

    def changed_preprocess(image):
        x = v2.functional.to_image(image)
        x = v2.functional.resize(x, [size], antialias=True)
        x = v2.functional.to_dtype(x, torch.float32, scale=True)
        if not normalize:
            return x
        step = model.preprocess.transforms[-1]
        return v2.functional.normalize(x, mean=list(step.mean), std=list(step.std))

    return changed_preprocess


def _functional_named(model, solution):
    changed_preprocess = _functional(model)
    with torch.inference_mode():
        logits = model.network(changed_preprocess(solution.get("photo") if "photo" in solution else _coffee()).unsqueeze(0))
    return {"changed_preprocess": changed_preprocess, "new_top_class": model.class_names[int(logits.argmax())]}


def _coffee():
    from utilities import DATA_DIR, load_image

    return load_image(DATA_DIR / "coffee.jpg")


RIGHT_C += [
    RightAnswer("c", "the steps called as functions (v2.functional) instead of through v2.Compose, resize to 48", _functional_named),
]

WRONG_C += [
    WrongAnswer("c", "the steps called as functions, resized to 48 and Normalize left out (two changes)",
                r"differs from model\.preprocess in 2 steps.*v2\.functional\.resize\(\.\.\.\); left out Normalize",
                _function(lambda m, s: _functional(m, normalize=False), "ladybug")),
]


def _cached_by_id(model, solution):
    cache = {}

    def changed_preprocess(image):
        if id(image) not in cache:
            cache[id(image)] = v2.Compose(_thumbnail(list(model.preprocess.transforms)))(image)
        return cache[id(image)]

    return changed_preprocess


def _growing(model, solution):
    steps = list(model.preprocess.transforms)

    def changed_preprocess(image):
        steps.insert(3, v2.Lambda(lambda x: x * 3))  # the list kept between calls grows
        return v2.Compose(steps)(image)

    return changed_preprocess


WRONG_C += [
    # round 14: a change only on the exercise's photo, one-colour and gray inputs, state kept between calls
    WrongAnswer("c", "a Lambda resizing only images 600 px wide (the coffee photo), the identity on others",
                r"your change happens on the exercise's photo only: on another photo",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resize(x, [64]) if x.shape[-1] == 600 else x),
                                         *steps[2:]])),
    WrongAnswer("c", "per-image standardisation (x - mean) / std: NaN on a gray image of one colour",
                r"gives NaN \(not a number\) values: .*\(gray\)",
                _pipeline(lambda steps: [*steps[:3], v2.Lambda(lambda x: (x - x.mean()) / x.std()), steps[3]])),
    WrongAnswer("c", "a step list kept between calls that grows at each call", r"applies more steps at each call", _function(_growing)),
]

RIGHT_C += [
    # round 15: a strong blur on the uint8 image spreads one pixel's change below a grey level (lost to rounding)
    RightAnswer("c", "a strong blur added after Resize, on the uint8 image, GaussianBlur(31, sigma=10)",
                _named(lambda steps: [steps[0], steps[1], v2.GaussianBlur(31, sigma=10.0), *steps[2:]])),
]


RIGHT_C += [
    # round 16: filters whose one-pixel change peaks off the pixel's place near the edge (reflected padding), or
    # one pixel inward of a corner (a strong sharpening)
    RightAnswer("c", "a blur added after Resize, on the uint8 image, GaussianBlur(31, sigma=8)",
                _named(lambda steps: [steps[0], steps[1], v2.GaussianBlur(31, sigma=8.0), *steps[2:]])),
    RightAnswer("c", "a strong sharpening after Resize, RandomAdjustSharpness(50, p=1)",
                _named(lambda steps: [steps[0], steps[1], v2.RandomAdjustSharpness(50.0, p=1.0), *steps[2:]])),
]

WRONG_C += [
    # round 16 (its w44): the picture replaced by its mean colour: every region of the photo still changes the input
    WrongAnswer("c", "a Lambda replacing the image by its mean colour per channel",
                r"inverting the colours of block \(1, 1\) of a 4x4 grid of the photo changes the input about as much everywhere",
                _pipeline(lambda steps: [*steps[:3], v2.Lambda(lambda x: x.mean(dim=(1, 2), keepdim=True).expand_as(x).clone()),
                                         steps[3]])),
]


def _trimmed(x):
    """A 1 % border trimmed off the image, then resized: on a small image 1 % is no pixel at all."""
    height, width = x.shape[-2:]
    return v2.functional.resize(x[..., height // 100:height - height // 100, width // 100:width - width // 100], [32])


WRONG_C += [
    # round 15: a thin crop inside the resize Lambda, by a share of the size (nothing on the check's small images)
    WrongAnswer("c", "a 1 % border trimmed inside the resize Lambda (4 rows, 6 columns a side on the photo)",
                r"crops the image before resizing it \(its resize is given rows 4 to 395 and columns 6 to 593",
                _pipeline(lambda steps: [steps[0], v2.Lambda(_trimmed), *steps[2:]])),
]


def _alternating(model, solution):
    calls = []

    def changed_preprocess(image):
        calls.append(1)  # kept between calls: Resize(32) on every other call
        steps = list(model.preprocess.transforms)
        return v2.Compose([steps[0], v2.Resize(32, antialias=True), *steps[2:]] if len(calls) % 2 else steps)(image)

    return changed_preprocess


WRONG_C += [
    # round 15: messages: steps that alternate between calls; the float step replaced
    WrongAnswer("c", "a counter kept between calls: Resize(32) on every other call",
                r"applies other steps from call to call on the same photo", _function(_alternating)),
    WrongAnswer("c", "ToDtype replaced by Resize(32) (the wrong index): Normalize gets uint8",
                r"raised TypeError: .* no ToDtype\(dtype=torch.float32, scale=True\) step",
                _pipeline(lambda steps: [steps[0], steps[1], v2.Resize(32, antialias=True), steps[3]])),
]


def _only_the_photos_size(x):
    """Resize(32) for the exercise's photo; any other size refused with an error."""
    if tuple(x.shape[-2:]) != (400, 600):
        raise ValueError("expected the coffee photo")
    return v2.functional.resize(x, [32])


WRONG_C += [
    # round 17 (its w52, w61, w67): an error on the check's other photos was not reported
    WrongAnswer("c", "a Lambda that resizes the exercise's photo and raises on any other size",
                r"changed_preprocess raised ValueError on another photo, the photo at half its size, 200x300: expected the coffee photo",
                _pipeline(lambda steps: [steps[0], v2.Lambda(_only_the_photos_size), *steps[2:]])),
]


WRONG_C += [
    # round 18 (its w57, w58): an average pooling whose window does not divide the size drops the input's last rows,
    # fewer than one input pixel's share of the photo
    WrongAnswer("c", "a Lambda avg_pool2d(x, 12) after ToDtype (224 rows: the last 8 dropped)",
                r"the photo is cropped: inverting the colours of its last \d+ rows \(the bottom edge\) does not change the input at all",
                _pipeline(lambda steps: [*steps[:3], v2.Lambda(lambda x: torch.nn.functional.avg_pool2d(x[None], 12)[0]), steps[3]])),
]


def _unscaled_where(condition):
    """changed_preprocess that drops ToDtype's scaling where ``condition(image)`` holds on the NumPy photo (no tensor)."""

    def make(model, solution):
        def changed_preprocess(image):
            steps = list(model.preprocess.transforms)
            if condition(image):
                steps[2] = v2.Lambda(lambda x: x.float())
            return v2.Compose(steps)(image)

        return changed_preprocess

    return make


def _scaled_if(condition):
    """ToDtype's scaling dropped for the images where ``condition(x)`` holds; the others get the pipeline unchanged."""
    return v2.Lambda(lambda x: x.float() if condition(x) else x.float() / 255)


WRONG_C += [
    # round 19 (its w67, w70, w71): the changed step acts only on bright, textured or landscape images; and the other
    # photos' tensors equal model.preprocess's only within float rounding (x.float() / 255 is ToDtype's scaling)
    WrongAnswer("c", "ToDtype's scaling dropped for bright images only (a NumPy mean above 90)",
                r"exercise's photo only: on another photo \(.*\) changed_preprocess gives exactly what model.preprocess gives",
                _function(_unscaled_where(lambda image: image.mean() > 90))),
    WrongAnswer("c", "ToDtype's scaling dropped for textured images only (a NumPy standard deviation above 20)",
                r"exercise's photo only: on another photo \(the photo with a sixth of its contrast",
                _function(_unscaled_where(lambda image: image.std() > 20))),
    WrongAnswer("c", "ToDtype's scaling dropped for bright images only (a Lambda's if on x.mean())",
                r"your code decides by the photo's values what to do \(line \d+",
                _pipeline(lambda steps: [steps[0], steps[1], _scaled_if(lambda x: x.float().mean() > 90), steps[3]])),
    WrongAnswer("c", "ToDtype's scaling dropped for landscape images only",
                r"exercise's photo only: on another photo \(the photo's left part upright, 301x97\)",
                _pipeline(lambda steps: [steps[0], steps[1], _scaled_if(lambda x: x.shape[-1] > x.shape[-2]), steps[3]])),
]


WRONG_C += [
    # round 20 (its w50, w61): a condition on the image's values (any threshold), and a crop that keeps this photo whole
    WrongAnswer("c", "ToDtype's scaling dropped only where the image is not flat (x.std() > 0)",
                r"your code decides by the photo's values what to do \(line \d+.*x\.std\(\) > 0\)",
                _pipeline(lambda steps: [steps[0], steps[1], _scaled_if(lambda x: x.float().std() > 0), steps[3]])),
    WrongAnswer("c", "RandomResizedCrop((32, 48)) with the photo's ratio and scale 1 in place of Resize",
                r"a cropping step \(RandomResizedCrop\(size=\(32, 48\)",
                _pipeline(lambda steps: [steps[0], v2.RandomResizedCrop((32, 48), scale=(1.0, 1.0), ratio=(1.5, 1.5)), *steps[2:]])),
]


WRONG_C += [
    # round 21 (its w44, w56): one Lambda that resizes and also clamps: the mid colour of the colour test is untouched
    WrongAnswer("c", "one Lambda that resizes to 64 and clamps the values to at least 60 (two changes)",
                r"both resizes the image and changes its colours",
                _pipeline(lambda steps: [steps[0], v2.Lambda(lambda x: v2.functional.resize(x, [64]).clamp(min=60)), *steps[2:]])),
]
