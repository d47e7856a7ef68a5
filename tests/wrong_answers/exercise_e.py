"""Wrong answers to exercise e: the original CAM of all classes from one forward pass, and Grad-CAM from it."""

from __future__ import annotations

import numpy as np
import torch

from utilities import DATA_DIR, LayerRecorder, normalize_cams, upsample_cams

from .answers import RightAnswer, WrongAnswer

__all__ = ["RIGHT_E", "WRONG_E", "cams_function"]


def _activation(model, inputs, layer="layer4"):
    with LayerRecorder(model.network, layer) as recorder, torch.no_grad():
        logits = model.network(inputs)
    return recorder.activations[layer], logits


def cams_function(
    *,
    layer: str = "layer4",
    image_of=lambda image: image,
    batch: bool = False,
    weights_of=lambda weight: weight,
    equation: str = "kc,chw->khw",
    finish=lambda cams, model, image, logits: cams,
):
    """class_activation_maps as a student writes it, with one switch per mistake (the defaults are right)."""

    def class_activation_maps(model, image):
        activation, logits = _activation(model, model.to_input(image_of(image)), layer)
        cams = torch.einsum(equation, weights_of(model.network.fc.weight.detach()), activation if batch else activation[0])
        return finish(cams, model, image, logits[0])

    return class_activation_maps


def _cams(**mistake):
    return lambda model, solution: {"class_activation_maps": cams_function(**mistake)}


def _finish(function):
    return _cams(finish=function)


def _cells(cams):
    return cams.shape[-2] * cams.shape[-1]


def _bias(model):
    return model.network.fc.bias[:, None, None]


def _leaking_hook(model, image):
    """A bare forward hook that is never removed."""
    stored = {}
    model.network.layer4.register_forward_hook(lambda module, inputs, output: stored.__setitem__("A", output.detach()))
    with torch.no_grad():
        model.network(model.to_input(image))
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), stored["A"][0])


def _hard_coded_channels_of(channels):
    """class_activation_maps with one model's channel count written into a reshape."""

    def class_activation_maps(model, image):
        activation, _ = _activation(model, model.to_input(image))
        flat = activation[0].reshape(channels, -1)
        return (model.network.fc.weight.detach() @ flat).reshape(-1, *activation.shape[-2:])

    return class_activation_maps


_hard_coded_channels = _hard_coded_channels_of(1280)  # the bundled model's layer4: right there, wrong elsewhere


def _relu_in_place(cams):
    height, width = cams.shape[-2:]
    return cams.clamp_(min=0) / (height * width)


def _grad(function):
    return lambda model, solution: {"grad_cam_from_cams": function}


def _kept_per_network(right):
    kept = {}

    def class_activation_maps(model, image):
        if id(model.network) not in kept:  # "the maps of a network do not change": computed once per network
            kept[id(model.network)] = right(model, image)
        return kept[id(model.network)]

    return class_activation_maps


def _training_mode(right):
    def class_activation_maps(model, image):
        model.network.train()  # left in training mode: batch norm then uses and updates batch statistics
        return right(model, image)

    return class_activation_maps


def _gradients_switched_off(right):
    def class_activation_maps(model, image):
        torch.set_grad_enabled(False)  # "CAM needs no gradients", for the whole process, and left so
        return right(model, image)

    return class_activation_maps


def _frozen(right):
    def class_activation_maps(model, image):
        model.network.requires_grad_(False)  # "no gradients of the weights needed", and left so
        return right(model, image)

    return class_activation_maps


def _evaluated(right):
    def class_activation_maps(model, image):
        model.network.eval()  # "to be safe", and left so
        return right(model, image)

    return class_activation_maps


def _by_autograd(cams):
    """Grad-CAM's weights from autograd on the CAMs themselves: right values, but a backward pass."""
    cells = cams.detach().clone().requires_grad_(True)
    (weights,) = torch.autograd.grad(cells.mean(dim=(-2, -1)).sum(), cells)
    return (weights * cams).clamp(min=0)


def _flags_the_caller(cams):
    """Switches on requires_grad of the caller's CAMs ("in case a gradient is needed")."""
    cams.requires_grad_(True)
    height, width = cams.shape[-2:]
    return (cams.clamp(min=0) / (height * width)).detach()


def _detaches_the_caller(cams):
    """Detaches the caller's CAMs in place ("no gradient needed here")."""
    cams.detach_()
    height, width = cams.shape[-2:]
    return cams.clamp(min=0) / (height * width)


def _hooked(model, image):
    """A forward hook removed by hand after the forward pass, no_grad as a decorator: right."""
    stored = []
    handle = model.network.layer4.register_forward_hook(lambda module, inputs, output: stored.append(output))
    try:
        with torch.inference_mode():
            model.network(model.to_input(image))
    finally:
        handle.remove()
    activation = stored[0][0]
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation)


WRONG_E = [
    WrongAnswer("e", "cams.squeeze() in grad_cam_from_cams (breaks for one class)",
                r"for cams of shape \(1, 4, 6\) it returned shape \(4, 6\) \(squeeze\(\) drops the class dimension",
                _grad(lambda cams: (cams.squeeze().clamp(min=0) / (cams.shape[-2] * cams.shape[-1])))),
    WrongAnswer("e", "torch.set_grad_enabled(False) for the whole process, left so",
                r"switched gradients off for the whole process \(torch\.set_grad_enabled\).*The check put it back",
                lambda model, solution: {"class_activation_maps": _gradients_switched_off(solution["class_activation_maps"])}),
    WrongAnswer("e", "model.network.eval() called in class_activation_maps and left so", r"switched the network to eval mode.*left it there",
                lambda model, solution: {"class_activation_maps": _evaluated(solution["class_activation_maps"])}),
    WrongAnswer("e", "Grad-CAM's weights by autograd on the CAMs", r"grad_cam_from_cams runs a backward pass .*which the text asks you to do without",
                _grad(_by_autograd)),
    WrongAnswer("e", "requires_grad switched on for the caller's CAMs", r"switched on requires_grad of the CAMs it was given",
                _grad(_flags_the_caller)),
    WrongAnswer("e", "the network left in training mode", r"class_activation_maps left the network in training mode.*The check put the network back in eval mode",
                lambda model, solution: {"class_activation_maps": _training_mode(solution["class_activation_maps"])}),
    WrongAnswer("e", "a NumPy array from grad_cam_from_cams", r"grad_cam_from_cams should return a tensor of the same shape as cams; it returns a NumPy array",
                _grad(lambda cams: (cams.clamp(min=0) / (cams.shape[-2] * cams.shape[-1])).numpy())),
    # class_activation_maps: what goes into the maps
    WrongAnswer("e", "fc's bias added to every cell", r"include fc's bias, added to every cell",
                _finish(lambda cams, model, image, logits: cams + _bias(model))),
    WrongAnswer("e", "fc's bias spread over the cells", r"include fc's bias, spread over the cells",
                _finish(lambda cams, model, image, logits: cams + _bias(model) / _cells(cams))),
    WrongAnswer("e", "maps that add up to the logit", r"\(CAM \+ bias\) / \(h \* w\)",
                _finish(lambda cams, model, image, logits: (cams + _bias(model)) / _cells(cams))),
    WrongAnswer("e", "CAM divided by the number of cells", r"divided by the number of cells, h \* w: CAM is",
                _finish(lambda cams, model, image, logits: cams / _cells(cams))),
    WrongAnswer("e", "Grad-CAM returned instead of CAM", r"these are Grad-CAM's maps",
                _finish(lambda cams, model, image, logits: cams.clamp(min=0) / _cells(cams))),
    WrongAnswer("e", "ReLU applied", r"negative values are cut off \(a ReLU\): CAM has no ReLU",
                _finish(lambda cams, model, image, logits: torch.relu(cams))),
    WrongAnswer("e", "each map less its own mean (centred)", r"each map is CAM less its own mean",
                _finish(lambda cams, model, image, logits: cams - cams.mean(dim=(1, 2), keepdim=True))),
    WrongAnswer("e", "each map less its own minimum", r"each map is CAM less its own minimum",
                _finish(lambda cams, model, image, logits: cams - cams.amin(dim=(1, 2), keepdim=True))),
    WrongAnswer("e", "each map plus its class's logit", r"each map is CAM plus a constant of its own",
                _finish(lambda cams, model, image, logits: cams + logits[:, None, None])),
    WrongAnswer("e", "maps kept per network: a second image gets the first one's", r"^(?!.*squeeze)(?=.*a result kept from an earlier call)",
                lambda model, solution: {"class_activation_maps": _kept_per_network(solution["class_activation_maps"])}),
    WrongAnswer("e", "each map min-max normalised", r"each map is normalised to \[0, 1\]",
                _finish(lambda cams, model, image, logits: normalize_cams(cams))),
    WrongAnswer("e", "maps weighted by the probabilities", r"weighted by its class's probability",
                _finish(lambda cams, model, image, logits: cams * logits.softmax(dim=0)[:, None, None])),
    WrongAnswer("e", "softmax over the classes at each cell", r"probabilities over the classes \(a softmax\)",
                _finish(lambda cams, model, image, logits: cams.softmax(dim=0))),
    WrongAnswer("e", "softmax of fc's weights", r"fc's weights went through a softmax", _cams(weights_of=lambda weight: weight.softmax(dim=1))),
    WrongAnswer("e", "weighted channels averaged instead of summed", r"averaged, not summed",
                _finish(lambda cams, model, image, logits: cams / model.network.fc.in_features)),
    WrongAnswer("e", "mean over the channels, one map for all classes", r"mean \(or sum\) of layer4's channels",
                _finish(lambda cams, model, image, logits: _activation(model, model.to_input(image))[0][0].mean(dim=0))),
    WrongAnswer("e", "mean over the channels, repeated for every class", r"all maps are identical",
                _finish(lambda cams, model, image, logits: _activation(model, model.to_input(image))[0][0].mean(dim=0).expand_as(cams))),
    WrongAnswer("e", "layer3 instead of layer4", r"like layer3.*record layer4", _cams(layer="layer3")),
    WrongAnswer("e", "fc applied to every cell (bias included)", r"include fc's bias, added to every cell",
                _finish(lambda cams, model, image, logits: model.network.fc(_activation(model, model.to_input(image))[0][0].permute(1, 2, 0)).permute(2, 0, 1))),
    WrongAnswer("e", "the pooled activation recorded (avgpool)", r"single cell.*before the global average pooling", _cams(layer="avgpool")),
    WrongAnswer("e", "the notebook's photo instead of the image argument", r"size of the notebook's photo's maps.*use the image argument",
                _cams(image_of=lambda image: DATA_DIR / "cat_and_coffee.png")),
    # class_activation_maps: the form of the result
    WrongAnswer("e", "upsampled to the image's size", r"upsampled to the image's size",
                _finish(lambda cams, model, image, logits: upsample_cams(cams, image.shape[:2]))),
    WrongAnswer("e", "upsampled to the network input's size", r"upsampled to the network input's size",
                _finish(lambda cams, model, image, logits: upsample_cams(cams, model.to_input(image).shape[-2:]))),
    WrongAnswer("e", "a leading batch dimension", r"has a batch dimension, shape \(1, ",
                _finish(lambda cams, model, image, logits: cams.unsqueeze(0))),
    WrongAnswer("e", "the batch dimension left in the einsum", r"einsum got a tensor with more dimensions.*batch dimension", _cams(batch=True)),
    WrongAnswer("e", "only the top class's map", r"returned one map \(the top class's map\)",
                _finish(lambda cams, model, image, logits: cams[int(logits.argmax())])),
    WrongAnswer("e", "one map per channel (einsum keeps c)", r"one map per channel of layer4, not per class", _cams(equation="kc,chw->chw")),
    WrongAnswer("e", "fc's weight transposed in the einsum", r"torch.einsum could not combine fc.weight", _cams(equation="ck,chw->khw")),
    WrongAnswer("e", "height and width swapped", r"height and width are swapped", _cams(equation="kc,chw->kwh")),
    WrongAnswer("e", "classes last, (h, w, classes)", r"the class dimension last", _cams(equation="kc,chw->hwk")),
    WrongAnswer("e", "flattened maps, (classes, h * w)", r"each map is flattened",
                _finish(lambda cams, model, image, logits: cams.flatten(1))),
    WrongAnswer("e", "a forward hook never removed", r"left 1 hook on the network.*handle.remove\(\)",
                lambda model, solution: {"class_activation_maps": _leaking_hook}),
    WrongAnswer("e", "the number of channels hard-coded", r"made-up network.*a size is hard-coded",
                lambda model, solution: {"class_activation_maps": _hard_coded_channels}),
    WrongAnswer("e", "another model's number of channels hard-coded", r"class_activation_maps raised RuntimeError: .*hard-coded",
                lambda model, solution: {"class_activation_maps": _hard_coded_channels_of(2048)}),
    # grad_cam_from_cams
    WrongAnswer("e", "Grad-CAM not divided by h * w", r"not divided by the number of cells.*divided by h \* w",
                _grad(lambda cams: cams.clamp(min=0))),
    WrongAnswer("e", "Grad-CAM without the ReLU", r"the negative values are kept: Grad-CAM applies a ReLU",
                _grad(lambda cams: cams / _cells(cams))),
    WrongAnswer("e", "abs instead of the ReLU", r"negative cells became positive \(abs\)", _grad(lambda cams: cams.abs() / _cells(cams))),
    WrongAnswer("e", "divided by K * h * w", r"number of values in the whole tensor", _grad(lambda cams: cams.clamp(min=0) / cams.numel())),
    WrongAnswer("e", "divided by w * w, square maps assumed", r"divided by w \* w, as if they were square",
                _grad(lambda cams: cams.clamp(min=0) / cams.shape[-1] ** 2)),
    WrongAnswer("e", "divided by the height only", r"divided by the height only", _grad(lambda cams: cams.clamp(min=0) / cams.shape[-2])),
    WrongAnswer("e", "divided by 7 * 7 = 49, ResNet50's cells at 224 x 224", r"divided by the same number \(49\) whatever their size",
                _grad(lambda cams: cams.clamp(min=0) / 49)),
    WrongAnswer("e", "Grad-CAM normalised", r"normalised to \[0, 1\]: return what grad_cam\(\.\.\.\)\.raw holds",
                _grad(lambda cams: normalize_cams(cams.clamp(min=0)))),
    WrongAnswer("e", "each map divided by its own sum", r"divided by its own sum", _grad(lambda cams: cams.clamp(min=0) / cams.clamp(min=0).sum(dim=(1, 2), keepdim=True).clamp(min=1e-12))),
    WrongAnswer("e", "NaN for a map with no positive cell", r"contain NaN.*negative everywhere", _grad(lambda cams: torch.relu(cams) / torch.relu(cams).amax(dim=(1, 2), keepdim=True))),
    WrongAnswer("e", "one weight per map instead of maps", r"same shape as cams", _grad(lambda cams: cams.clamp(min=0).mean(dim=(1, 2)))),
    WrongAnswer("e", "ReLU in place on the caller's CAMs", r"changed the CAMs it was given", _grad(_relu_in_place)),
    WrongAnswer("e", "cams.detach_() on the caller's CAMs", r"switched off requires_grad of the CAMs it was given \(cams\.detach_\(\)",
                _grad(_detaches_the_caller)),
]

def _two_forward_passes(model, image):
    """Right maps, but a first forward pass for nothing (the logits), then the recorded one."""
    with torch.no_grad():
        model.network(model.to_input(image))
    activation, _ = _activation(model, model.to_input(image))
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation[0])


def _loop_over_classes(model, image):
    """Right maps, one einsum per class in a Python loop."""
    activation, _ = _activation(model, model.to_input(image))
    weight = model.network.fc.weight.detach()
    return torch.stack([torch.einsum("c,chw->hw", weight[k], activation[0]) for k in range(weight.shape[0])])


def _squeezed(model, image):
    """activation.squeeze(): drops the batch dimension, and the height too where layer4 is one cell high."""
    activation, _ = _activation(model, model.to_input(image))
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation.squeeze())


def _replaces_fc_weight(model, image):
    """Right maps, but fc.weight replaced by a new Parameter with the same values."""
    model.network.fc.weight = torch.nn.Parameter(model.network.fc.weight.detach().clone(), requires_grad=False)
    return cams_function()(model, image)


WRONG_E += [
    # a fresh student's round 5: passed the check before
    WrongAnswer("e", "two forward passes", r"ran the network 2 times for one image", lambda m, s: {"class_activation_maps": _two_forward_passes}),
    WrongAnswer("e", "a loop over the classes, one einsum each", r"in \d+ calls of torch\.einsum.*one torch\.einsum",
                lambda m, s: {"class_activation_maps": _loop_over_classes}),
    WrongAnswer("e", "activation.squeeze() (drops a height of 1)", r"one cell high.*squeeze\(\)",
                lambda m, s: {"class_activation_maps": _squeezed}),
    WrongAnswer("e", "fc.weight replaced by a new Parameter", r"replaced the network's parameters \(fc\.weight\)",
                lambda m, s: {"class_activation_maps": _replaces_fc_weight}),
    WrongAnswer("e", "Grad-CAM divided by each map's maximum", r"divided by its own maximum",
                _grad(lambda cams: cams.clamp(min=0) / cams.clamp(min=0).amax(dim=(1, 2), keepdim=True).clamp(min=1e-12))),
    WrongAnswer("e", "clamp(0, 1) as the ReLU", r"clamp\(0, 1\), which also cuts", _grad(lambda cams: cams.clamp(0, 1) / _cells(cams))),
    WrongAnswer("e", "Grad-CAM in float16", r"returns float16 maps for float32 CAMs", _grad(lambda cams: (cams.clamp(min=0) / _cells(cams)).half())),
]

WRONG_E += [
    # a fresh student's round 6: passed the check
    WrongAnswer("e", "CAMs returned in float64", r"returns float64 maps: return them in the dtype.*float32", _finish(lambda cams, *_: cams.double())),
    WrongAnswer("e", "CAMs still attached to the autograd graph", r"maps that require grad",
                _finish(lambda cams, *_: cams.clone().requires_grad_())),
]


def _matrix_product(model, image):
    """Right: one matrix product instead of the einsum (the same sum over the channels)."""
    activation, _ = _activation(model, model.to_input(image))
    channels, height, width = activation[0].shape
    return (model.network.fc.weight.detach() @ activation[0].reshape(channels, height * width)).reshape(-1, height, width)


def _unresized(model, image):
    """The image into the network at its own size, scaled to [0, 1]: no resize, no normalisation."""
    pixels = torch.as_tensor(image).permute(2, 0, 1)[None].float().div(255).to(model.device)
    activation, _ = _activation(model, pixels)
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation[0])


WRONG_E += [
    # a fresh student's round 8: passed the check, or got a message that did not name the cause
    WrongAnswer("e", "Grad-CAM returned with requires_grad switched on", r"returns a tensor that requires grad \(requires_grad=True\)",
                _grad(lambda cams: (cams.clamp(min=0) / _cells(cams)).requires_grad_())),
    WrongAnswer("e", "Grad-CAM cut at 1 after the division", r"the maps are cut at 1 \(a clamp\(max=1\)",
                _grad(lambda cams: (cams.clamp(min=0) / _cells(cams)).clamp(max=1))),
    WrongAnswer("e", "Grad-CAM cut at 0.5: the message names the cut from above",
                r"your maps stop at 0\.5 where Grad-CAM's go higher \(up to [\d.]+\): the values are cut from above",
                _grad(lambda cams: (cams.clamp(min=0) / _cells(cams)).clamp(max=0.5))),
    WrongAnswer("e", "CAMs returned in float16", r"returns float16 maps: return them in the dtype.*float32", _finish(lambda cams, *_: cams.half())),
    WrongAnswer("e", "Grad-CAM divided by (h * w) squared", r"divided by the number of cells twice",
                _grad(lambda cams: cams.clamp(min=0) / _cells(cams) ** 2)),
    WrongAnswer("e", "fc's weights times the pooled activation, broadcast over the cells", r"each map holds the same value in every cell",
                _finish(lambda cams, *_: cams.mean(dim=(1, 2), keepdim=True).expand_as(cams).clone())),
    WrongAnswer("e", "Grad-CAM's ReLU written as clamp(min=1e-8)", r"where cams is negative, Grad-CAM's ReLU gives exactly 0 but your maps hold [\d.e+-]+ \(a clamp\(min=eps\)",
                _grad(lambda cams: cams.clamp(min=1e-8) / _cells(cams))),
    WrongAnswer("e", "the network's weights frozen (requires_grad_(False)) and left so", r"switched off requires_grad of the network's weights",
                lambda model, solution: {"class_activation_maps": _frozen(solution["class_activation_maps"])}),
    WrongAnswer("e", "the image into the network without the model's preprocessing", r"what layer4 gives for the image at its own size.*model\.to_input\(image\)",
                lambda model, solution: {"class_activation_maps": _unresized}),
]

def _by_backward_passes(model, image):
    """CAMs from the gradients of every logit (one batched backward pass per class) instead of fc.weight."""
    with LayerRecorder(model.network, "layer4", record_gradients=False) as recorder:
        logits = model.network(model.to_input(image).requires_grad_(True))[0]
    activation = recorder.outputs["layer4"]
    eye = torch.eye(logits.shape[0], dtype=logits.dtype)
    gradients = torch.autograd.grad(logits, activation, grad_outputs=eye, is_grads_batched=True)[0][:, 0]  # (K, C, h, w)
    weights = gradients.mean(dim=(2, 3)) * (activation.shape[-2] * activation.shape[-1])
    return torch.einsum("kc,chw->khw", weights, activation[0].detach()).detach()


def _thousand_classes(model, image):
    """The number of classes, 1000, written into the reshape: right for the course models only."""
    activation, _ = _activation(model, model.to_input(image))
    channels, height, width = activation.shape[1:]
    return (model.network.fc.weight.detach() @ activation[0].reshape(channels, -1)).reshape(1000, height, width)


def _in_float64(model, image):
    """The network cast to float64 "for precision" (model.network.double()) and never cast back; float32 returned."""
    model.network.double()
    activation, _ = _activation(model, model.to_input(image).double())
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation[0]).float()


def _relu_of_activation(model, image):
    """A ReLU on layer4's activation before the weighted sum."""
    activation, _ = _activation(model, model.to_input(image))
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation[0].clamp(min=0))


def _in_bfloat16(model, image):
    """The forward pass and the einsum under bfloat16 autocast; the maps cast back to float32."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        activation, _ = _activation(model, model.to_input(image))
        cams = torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), activation[0])
    return cams.float()


WRONG_E += [
    # a student who had not seen the checks (session s10): passed the check, or got a message that did not name the cause
    WrongAnswer("e", "CAMs from backward passes (the gradients of every logit) instead of fc.weight",
                r"class_activation_maps ran \d+ x a backward pass.*CAM needs no gradients",
                lambda model, solution: {"class_activation_maps": _by_backward_passes}),
    WrongAnswer("e", "the number of classes, 1000, hard-coded", r"on a made-up network with 10 classes.*Is the number of classes, 1000, "
                r"written into the code\?", lambda model, solution: {"class_activation_maps": _thousand_classes}),
    WrongAnswer("e", "Grad-CAM with cams.view(), which fails on CAMs that are not contiguous",
                r"raised RuntimeError on made-up CAMs of shape \(3, 4, 5\) that are not contiguous in memory.*use \.reshape\(\)",
                _grad(lambda cams: (cams.view(cams.shape[0], -1).clamp(min=0) / _cells(cams)).view(cams.shape))),
    WrongAnswer("e", "the network cast to float64 and left so", r"changed the dtype of the network's weights \([\w.]+: float32 to float64",
                lambda model, solution: {"class_activation_maps": _in_float64}),
    WrongAnswer("e", "a ReLU on layer4's activation before the weighted sum", r"layer4's activation went through a ReLU",
                lambda model, solution: {"class_activation_maps": _relu_of_activation}),
    WrongAnswer("e", "the forward pass under bfloat16 autocast, the maps cast back to float32",
                r"no more than a forward pass in bfloat16 gives: a lower precision", lambda model, solution: {"class_activation_maps": _in_bfloat16}),
    WrongAnswer("e", "Grad-CAM with F.relu6 before the division", r"your maps stop at [\d.]+ where Grad-CAM's go higher.*F\.relu6",
                _grad(lambda cams: torch.nn.functional.relu6(cams) / _cells(cams))),
]

def _linear_per_cell(model, image):
    """Right: fc applied to every cell's channel vector, minus its bias (the same sum, through nn.Linear)."""
    activation, _ = _activation(model, model.to_input(image))
    fc = model.network.fc
    with torch.no_grad():
        return (fc(activation[0].permute(1, 2, 0)) - fc.bias).permute(2, 0, 1).contiguous()


def _one_by_one_convolution(model, image):
    """Right: fc.weight as the kernels of a 1x1 convolution over the activation (the same sum)."""
    activation, _ = _activation(model, model.to_input(image))
    weight = model.network.fc.weight.detach()
    with torch.no_grad():
        return torch.nn.functional.conv2d(activation, weight[:, :, None, None])[0]



def _cached_by_model():
    """class_activation_maps that keeps each model's first maps: a later image gets them again."""
    kept = {}

    def class_activation_maps(model, image):
        if id(model) not in kept:
            kept[id(model)] = cams_function()(model, image)
        return kept[id(model)]

    return class_activation_maps


def _cached_by_shape():
    """grad_cam_from_cams that keeps its result for each shape of CAMs."""
    kept = {}

    def grad_cam_from_cams(cams):
        if tuple(cams.shape) not in kept:
            kept[tuple(cams.shape)] = cams.clamp(min=0) / _cells(cams)
        return kept[tuple(cams.shape)]

    return grad_cam_from_cams


def _scales_fc_weight(model, image):
    """fc.weight multiplied in place by 1.001, then right maps of the changed weights."""
    with torch.no_grad():
        model.network.fc.weight.mul_(1.001)
    return cams_function()(model, image)


WRONG_E += [
    # a fresh student's round 11: passed the check (a result kept from an earlier call), or a message naming another cause
    WrongAnswer("e", "maps cached by model", r"a result kept from an earlier call",
                lambda m, s: {"class_activation_maps": _cached_by_model()}),
    WrongAnswer("e", "Grad-CAM cached by the CAMs' shape", r"other CAMs of the same shape.*a result kept from an earlier call",
                lambda m, s: {"grad_cam_from_cams": _cached_by_shape()}),
    WrongAnswer("e", "fc.weight scaled in place", r"changed the network's weights(?!.*bfloat16)",
                lambda m, s: {"class_activation_maps": _scales_fc_weight}),
]


def _loop_of_products(model, image):
    """Right maps, class by class in a Python loop: fc.weight[k] times the activation, summed over the channels."""
    activation, _ = _activation(model, model.to_input(image))
    weight = model.network.fc.weight.detach()
    with torch.no_grad():
        return torch.stack([(weight[k][:, None, None] * activation[0]).sum(0) for k in range(weight.shape[0])])


def _hook_removed_without_finally(model, image):
    """A forward hook removed after the forward pass, not in a finally block: left on the network if the pass raises."""
    stored = {}
    handle = model.network.layer4.register_forward_hook(lambda module, inputs, output: stored.__setitem__("A", output.detach()))
    with torch.no_grad():
        model.network(model.to_input(image))
    handle.remove()
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), stored["A"][0])


WRONG_E += [
    # a fresh student's round 11 (s12): passed the check (a loop over the classes, a hook not removed in a finally
    # block), or a message naming another cause (a lower precision for the bias subtracted, the derivation for float16
    # arithmetic and for a special case of one class)
    WrongAnswer("e", "a loop over the classes, products summed over the channels", r"computes the maps class by class.*one torch\.einsum",
                lambda m, s: {"class_activation_maps": _loop_of_products}),
    WrongAnswer("e", "hook removed after the pass, not in a finally block", r"when the forward pass raised an error.*finally block",
                lambda m, s: {"class_activation_maps": _hook_removed_without_finally}),
    WrongAnswer("e", "bias subtracted from every cell", r"fc's bias is subtracted from every cell(?!.*bfloat16)",
                _finish(lambda cams, model, image, logits: cams - _bias(model))),
    WrongAnswer("e", "bias / (h * w) subtracted from every cell", r"bias / \(h \* w\)\), is subtracted(?!.*bfloat16)",
                _finish(lambda cams, model, image, logits: cams - _bias(model) / _cells(cams))),
    WrongAnswer("e", "Grad-CAM computed in float16, cast back", r"every value is a float16 number(?!.*Work out the gradient)",
                _grad(lambda cams: (cams.half().clamp(min=0) / _cells(cams)).to(cams.dtype))),
    WrongAnswer("e", "Grad-CAM with a special case for one class (divided by w)", r"of one class.*special case.*divided by the width only",
                _grad(lambda cams: cams.clamp(min=0) / (_cells(cams) if cams.shape[0] > 1 else cams.shape[-1]))),
]

def _kept_per_image(right):
    """CAMs cached by the image's bytes: the same image on another network gives the first network's maps."""
    kept = {}

    def class_activation_maps(model, image):
        key = np.ascontiguousarray(image).tobytes()
        if key not in kept:
            kept[key] = right(model, image)
        return kept[key].clone()

    return class_activation_maps


WRONG_E += [
    # a student's round (s14): passed the check (1x1 maps returned as they are), or a message naming another cause (a
    # cache keyed by the image reported as 1000 classes written into the code)
    WrongAnswer("e", "Grad-CAM returns maps of one cell as they are (no ReLU)",
                r"maps of one cell.*special case in your code.*negative values are kept",
                _grad(lambda cams: cams.clone() if cams.shape[-2] * cams.shape[-1] == 1 else cams.clamp(min=0) / _cells(cams))),
    WrongAnswer("e", "CAMs cached by the image's bytes, whatever the model",
                r"returned that other network's maps.*cached by the image and not by the model(?!.*1000, written)",
                lambda model, solution: {"class_activation_maps": _kept_per_image(solution["class_activation_maps"])}),
    WrongAnswer("e", "Grad-CAM divided by h * w - 1 (NaN for maps of one cell)", r"maps of one cell, the maps contain NaN.*h \* w - 1",
                _grad(lambda cams: cams.clamp(min=0) / (_cells(cams) - 1))),
    WrongAnswer("e", "CAM multiplied by the number of cells", r"multiplied by the number of cells, h \* w: CAM is",
                _finish(lambda cams, model, image, logits: cams * _cells(cams))),
    WrongAnswer("e", "CAM in the reverse order of the classes", r"in the reverse order of the classes",
                _finish(lambda cams, model, image, logits: cams.flip(0))),
    WrongAnswer("e", "Grad-CAM: each map's mean subtracted before the ReLU", r"mean is subtracted before the ReLU",
                _grad(lambda cams: (cams - cams.mean(dim=(-2, -1), keepdim=True)).clamp(min=0) / _cells(cams))),
    WrongAnswer("e", "Grad-CAM: torch.max over the classes instead of the ReLU", r"the largest value over the classes at each cell",
                _grad(lambda cams: cams.amax(dim=0, keepdim=True).expand_as(cams).clamp(min=0) / _cells(cams))),
]

WRONG_E += [
    # a student's round (s15): passed the check (CAMs without a negative cell divided in place; float32 whatever the network)
    WrongAnswer("e", "Grad-CAM divided in place when no CAM is negative",
                r"changed the made-up CAMs .* no negative cell.*in place",
                _grad(lambda cams: cams.div_(_cells(cams)) if bool((cams >= 0).all()) else cams.clamp(min=0) / _cells(cams))),
]

RIGHT_E = [
    RightAnswer("e", "fc applied to every cell, minus its bias", lambda model, solution: {"class_activation_maps": _linear_per_cell}),
    RightAnswer("e", "a 1x1 convolution with fc.weight as its kernels", lambda model, solution: {"class_activation_maps": _one_by_one_convolution}),
    RightAnswer("e", "Grad-CAM as (x + |x|) / 2 times 1 / (h * w), on float64 CAMs too",
                _grad(lambda cams: (cams + cams.abs()) / 2 * (1 / (cams.shape[-2] * cams.shape[-1])))),
    RightAnswer("e", "one matrix product instead of the einsum", lambda model, solution: {"class_activation_maps": _matrix_product}),
    RightAnswer("e", "a bare forward hook removed by hand, inference_mode", lambda model, solution: {"class_activation_maps": _hooked}),
    RightAnswer("e", "F.relu and numel of one map", _grad(lambda cams: torch.nn.functional.relu(cams) / cams[0].numel())),
]

RIGHT_E += [
    # round 15: the text asks for float32 maps ("float32 like the activation"): a cast to float32 is right, even for
    # a network in another dtype
    RightAnswer("e", "the maps cast to float32 with .float() at the end", lambda model, solution: {
        "class_activation_maps": lambda model, image: solution["class_activation_maps"](model, image).double().float()}),
    # round 16: the text asks for "a plain torch tensor of the same shape, like grad_cam(...).raw", no dtype: float32
    # for float64 CAMs is right too (through NumPy, as a student wrote it)
    RightAnswer("e", "Grad-CAM through NumPy, always returned in float32", _grad(lambda cams: torch.from_numpy(
        (np.maximum(cams.detach().cpu().numpy(), 0) / np.float32(cams.shape[-2] * cams.shape[-1])).astype(np.float32)))),
]


def _cams_kept_by_array(model, solution):
    """class_activation_maps kept per (id(model), id(image)) (a cache of its own for each build): the same array
    changed in place gets the first call's maps."""
    right, kept = solution["class_activation_maps"], {}

    def class_activation_maps(model, image):
        key = (id(model), id(image))
        if key not in kept:
            kept[key] = right(model, image)
        return kept[key]

    return {"class_activation_maps": class_activation_maps}


def _grad_cam_kept_by_tensor(model, solution):
    """grad_cam_from_cams kept per id(cams) and shape: the same tensor changed in place gets the first call's maps."""
    kept = {}

    def grad_cam_from_cams(cams):
        key = (id(cams), tuple(cams.shape))
        if key not in kept:
            kept[key] = cams.clamp(min=0) / _cells(cams)
        return kept[key]

    return {"grad_cam_from_cams": grad_cam_from_cams}


WRONG_E += [
    # a fresh student's round 16 (its w15): passed the check (the maps cached by id(image))
    WrongAnswer("e", "maps cached by id(model) and id(image) (the same array changed in place)",
                r"flipped upside down in place.*a new array of the flipped pixels gets other maps.*a cache keyed by id\(image\)",
                _cams_kept_by_array),
    WrongAnswer("e", "Grad-CAM cached by id(cams) (the same tensor changed in place)",
                r"changed, in place, the CAMs.*a new tensor of the same CAMs gets other maps.*a cache keyed by id\(cams\)",
                _grad_cam_kept_by_tensor),
]


def _clearing_hooks(model, image):
    """The layer's forward hooks cleared 'to start clean' before its own hook (removed after): the caller's go too."""
    model.network.layer4._forward_hooks.clear()
    stored = {}
    handle = model.network.layer4.register_forward_hook(lambda module, inputs, output: stored.__setitem__("A", output.detach()))
    try:
        with torch.no_grad():
            model.network(model.to_input(image))
    finally:
        handle.remove()
    return torch.einsum("kc,chw->khw", model.network.fc.weight.detach(), stored["A"][0])


WRONG_E += [
    # a fresh student's round 17 (its w66): passed the check (no hook was on layer4 to lose)
    WrongAnswer("e", "layer4's forward hooks cleared before recording (the caller's hooks go too)",
                r"removed hooks that were on the network before the call",
                lambda model, solution: {"class_activation_maps": _clearing_hooks}),
]


def _without_no_grad(model, image):
    """CAM with no torch.no_grad() and no detach(): on a network whose weights train, the maps stay on the graph."""
    with LayerRecorder(model.network, "layer4") as recorder:
        model.network(model.to_input(image))
    return torch.einsum("kc,chw->khw", model.network.fc.weight, recorder.activations["layer4"][0])


WRONG_E += [
    # round 19 (its w55): the notebook's model is frozen, so the maps happened not to require grad there
    WrongAnswer("e", "no torch.no_grad() or detach() (maps on the graph for a model whose weights train)",
                r"given a model whose weights train.*returns maps that require grad",
                lambda m, s: {"class_activation_maps": _without_no_grad}),
]


_BUFFER: dict = {}


def _into_one_buffer(model, image):
    """Right maps, written into one module-level buffer (matmul's out=) that every call fills anew and returns."""
    activation, _ = _activation(model, model.to_input(image))
    channels, height, width = activation[0].shape
    weight = model.network.fc.weight.detach()
    key = (weight.shape[0], height, width)
    if _BUFFER.get("key") != key:
        _BUFFER["key"], _BUFFER["out"] = key, torch.empty(weight.shape[0], height * width)
    torch.matmul(weight, activation[0].reshape(channels, -1), out=_BUFFER["out"])
    return _BUFFER["out"].view(-1, height, width)


WRONG_E += [
    # round 20 (its w53): a later call overwrites the maps an earlier call returned
    WrongAnswer("e", "maps written into one buffer that every call reuses and returns",
                r"returned results that its later calls changed: what it returned for an earlier call holds other values",
                lambda m, s: (_BUFFER.clear(), {"class_activation_maps": _into_one_buffer})[1]),
]
