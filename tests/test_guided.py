import copy

import pytest
import torch
from torch import nn

from utilities import GuidedGradCAM, GuidedReLUs, gradient_image, grad_cam, guided_backprop
from utilities.hooks import count_hooks

CLASSES = [285, 967]


def _scaled(tensor):
    """Divided by its largest absolute value: the peers and we agree up to such a scale (and float noise)."""
    return tensor / tensor.abs().max()


@pytest.fixture(scope="module")
def resnet_input():
    torch.manual_seed(4)
    return torch.randn(1, 3, 64, 80)


def test_guided_backprop_matches_pytorch_grad_cam(random_resnet50, resnet_input):
    from pytorch_grad_cam import GuidedBackpropReLUModel

    ours = guided_backprop(random_resnet50, resnet_input, CLASSES)
    assert ours.shape == (2, 3, 64, 80)
    for position, target in enumerate(CLASSES):
        reference_model = GuidedBackpropReLUModel(copy.deepcopy(random_resnet50).requires_grad_(True), device="cpu")
        reference = torch.from_numpy(reference_model(resnet_input.clone(), target_category=target)).permute(2, 0, 1)
        torch.testing.assert_close(_scaled(ours[position]), _scaled(reference), atol=1e-4, rtol=0)
    assert count_hooks(random_resnet50) == 0


def test_guided_backprop_matches_captum(random_resnet50, resnet_input):
    from captum.attr import GuidedBackprop

    reference_network = copy.deepcopy(random_resnet50).requires_grad_(True)
    for module in reference_network.modules():  # captum's backward hooks need ReLUs that do not work in place
        if isinstance(module, nn.ReLU):
            module.inplace = False
    ours = guided_backprop(random_resnet50, resnet_input, CLASSES)
    for position, target in enumerate(CLASSES):
        reference = GuidedBackprop(reference_network).attribute(resnet_input.clone(), target=target)[0]
        torch.testing.assert_close(_scaled(ours[position]), _scaled(reference), atol=1e-4, rtol=0)


def test_guided_grad_cam_matches_captum(random_resnet50, resnet_input):
    from captum.attr import GuidedGradCam

    reference_network = copy.deepcopy(random_resnet50).requires_grad_(True)
    for module in reference_network.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    # captum stretches the Grad-CAM over the input evenly, as torch's interpolate does
    result = GuidedGradCAM(random_resnet50, "layer3")(resnet_input, CLASSES, placement="stretch")
    reference_method = GuidedGradCam(reference_network, reference_network.layer3)
    compared = 0
    for position, target in enumerate(CLASSES):
        # captum multiplies by the Grad-CAM after its ReLU without min-max scaling; when the map's
        # minimum is 0 the two differ by one positive factor, which _scaled removes.
        if result.raw[position].min() > 0:
            continue
        reference = reference_method.attribute(resnet_input.clone(), target=target, interpolate_mode="bilinear")[0]
        torch.testing.assert_close(_scaled(result.guided_grad_cam[position]), _scaled(reference), atol=1e-4, rtol=0)
        compared += 1
    assert compared > 0, "no map had a zero minimum, so nothing was compared"


def test_guided_grad_cam_keeps_grad_cams_maps(lite_model, data_dir):
    result = GuidedGradCAM(lite_model)(data_dir / "cat_and_coffee.png", ["Egyptian cat", "espresso"])
    plain = grad_cam(lite_model, data_dir / "cat_and_coffee.png", ["Egyptian cat", "espresso"])
    torch.testing.assert_close(result.raw, plain.raw)
    assert result.method == "Guided Grad-CAM"
    assert result.guided.shape == (2, 3, 224, 448)
    assert result.guided_grad_cam.shape == (2, 3, 224, 448)
    assert torch.isfinite(result.guided_grad_cam).all()
    assert count_hooks(lite_model.network) == 0


def test_relu6_is_guided_too():
    # One ReLU6 between two linear maps: the guided gradient is the plain one where the
    # gradient arriving at the ReLU6 is positive, and zero where it is negative.
    first = nn.Linear(4, 3, bias=False)
    second = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.eye(3, 4))
        second.weight.copy_(torch.tensor([[2.0, -1.0, 3.0]]))
    network = nn.Sequential(first, nn.ReLU6(), second)
    x = torch.tensor([[1.0, 2.0, 7.0, 5.0]])  # unit 0 passes, unit 1 gets a negative gradient, unit 2 is above 6
    x = x.requires_grad_(True)
    with GuidedReLUs(network):
        network(x)[0, 0].backward()
    assert x.grad.tolist() == [[2.0, 0.0, 0.0, 0.0]]
    assert count_hooks(network) == 0


def test_hooks_are_removed_after_an_error():
    network = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    with pytest.raises(RuntimeError):
        with GuidedReLUs(network):
            network(torch.randn(1, 4, 2, 2))  # wrong channel count
    assert count_hooks(network) == 0


def test_a_network_without_relu_modules_gets_a_clear_error():
    network = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Sigmoid())
    with pytest.raises(ValueError, match="no nn.ReLU or nn.ReLU6 modules"):
        GuidedReLUs(network)
    with pytest.raises(ValueError, match="no nn.ReLU or nn.ReLU6 modules"):
        GuidedGradCAM(network, "0")


def test_gradient_image_is_a_picture_and_never_nan():
    picture = gradient_image(torch.zeros(3, 5, 7))
    assert picture.shape == (5, 7, 3)
    assert torch.isfinite(picture).all() and picture.min() >= 0 and picture.max() <= 1
    with pytest.raises(ValueError, match=r"one gradient image \(3, H, W\)"):
        gradient_image(torch.zeros(2, 3, 5, 7))
