import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utilities import UnknownClassError, find_target_layer, grad_cam, normalize_cams, upsample_cams
from utilities.cam import GradCAM
from utilities.hooks import count_hooks

REFERENCE_CLASSES = [285, 281, 967, 0]
REFERENCE_LAYERS = ["layer3", "layer4"]


def _references(network, layer_name, x, classes):
    """pytorch-grad-cam's GradCAM and captum's LayerGradCam on an unfrozen copy, normalised.

    Both spread the cells evenly over the image (bilinear, align_corners=False), so ours are
    compared with ``placement="stretch"``; the default places cells at their centres instead.
    """
    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM as ReferenceGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    trainable = copy.deepcopy(network).requires_grad_(True)  # as a user's model would be
    layer = trainable.get_submodule(layer_name)
    with ReferenceGradCAM(model=trainable, target_layers=[layer]) as reference:
        jacobgil = np.stack([reference(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0] for c in classes])
    captum_maps = []
    for c in classes:
        attribution = LayerGradCam(trainable, layer).attribute(x, target=c, relu_attributions=True)
        captum_maps.append(LayerAttribution.interpolate(attribution, tuple(x.shape[-2:]), interpolate_mode="bilinear")[0, 0])
    return torch.from_numpy(jacobgil), normalize_cams(torch.stack(captum_maps).detach())


@pytest.mark.parametrize("layer", REFERENCE_LAYERS)
def test_matches_references_on_the_bundled_model(lite_model, chelsea_input, layer):
    ours = grad_cam(lite_model, chelsea_input, REFERENCE_CLASSES, layer=layer, placement="stretch")
    jacobgil, captum_maps = _references(lite_model.network, layer, chelsea_input, REFERENCE_CLASSES)
    assert ours.maps.shape == jacobgil.shape == captum_maps.shape
    assert (ours.raw.flatten(1).amax(1) > 0).all()  # non-trivial maps
    torch.testing.assert_close(ours.maps, jacobgil, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.maps, captum_maps, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer", REFERENCE_LAYERS)
def test_matches_references_on_random_resnet50(random_resnet50, layer):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 160, 160)
    ours = grad_cam(random_resnet50, x, REFERENCE_CLASSES, layer=layer, placement="stretch")
    jacobgil, captum_maps = _references(random_resnet50, layer, x, REFERENCE_CLASSES)
    assert (ours.raw.flatten(1).amax(1) > 0).any()
    torch.testing.assert_close(ours.maps, jacobgil, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.maps, captum_maps, atol=1e-5, rtol=0)


def test_grad_cam_equals_cam_at_layer4(lite_model, chelsea_input):
    result = grad_cam(lite_model, chelsea_input, [285, 967])
    features = {}
    handle = lite_model.network.layer4.register_forward_hook(lambda m, i, o: features.update(a=o))
    with torch.inference_mode():
        lite_model.network(chelsea_input)
    handle.remove()
    activation = features["a"][0]
    cam = torch.einsum("kc,chw->khw", lite_model.network.fc.weight[[285, 967]], activation).relu()
    torch.testing.assert_close(normalize_cams(result.raw), normalize_cams(cam), atol=1e-5, rtol=0)


def test_each_object_class_lights_up_its_own_half(lite_model, data_dir):
    result = grad_cam(lite_model, data_dir / "cat_and_coffee.png", ["Egyptian cat", "espresso"])
    assert result.maps.shape == (2, 224, 448)  # the image's own size
    width = result.maps.shape[-1]
    left_share = result.maps[:, :, : width // 2].sum((1, 2)) / result.maps.sum((1, 2))
    assert left_share[0] > 0.8, f"cat CAM has only {left_share[0]:.0%} of its mass on the cat"
    assert left_share[1] < 0.2, f"espresso CAM has {left_share[1]:.0%} of its mass on the cat"


def test_many_classes_in_chunks_equal_one_by_one(lite_model, chelsea_input):
    classes = list(range(0, 1000, 37))
    together = grad_cam(lite_model, chelsea_input, classes, layer="layer3", chunk_size=4)
    default = grad_cam(lite_model, chelsea_input, classes, layer="layer3")
    single = torch.cat([grad_cam(lite_model, chelsea_input, c, layer="layer3").raw for c in classes[:5]])
    torch.testing.assert_close(together.raw, default.raw)
    torch.testing.assert_close(together.raw[:5], single)


def test_all_classes_from_one_forward(lite_model, chelsea_input, monkeypatch):
    forwards = []
    handle = lite_model.network.conv1.register_forward_hook(lambda *args: forwards.append(1))
    try:
        result = grad_cam(lite_model, chelsea_input, range(1000))
    finally:
        handle.remove()
    assert len(forwards) == 1
    assert result.raw.shape == (1000, 7, 11)
    assert result.class_names[285] == "Egyptian cat"
    assert not torch.isnan(result.raw).any()
    torch.testing.assert_close(result.probabilities.sum(), torch.tensor(1.0))


def test_default_target_is_the_top_class_and_names_work(lite_model, data_dir):
    result = grad_cam(lite_model, data_dir / "coffee.jpg")
    assert result.class_names == ["espresso"]
    by_name = grad_cam(lite_model, data_dir / "coffee.jpg", "Espresso")
    torch.testing.assert_close(by_name.raw, result.raw)
    torch.testing.assert_close(by_name.map_for("espresso"), result.maps[0])


def test_unknown_class_name_lists_suggestions(lite_model, chelsea_input):
    with pytest.raises(UnknownClassError, match="Closest names: 'car wheel'.*'sports car'"):
        grad_cam(lite_model, chelsea_input, ["Egyptian cat", "car"])


def test_works_under_no_grad_and_inference_mode(lite_model, chelsea_input):
    expected = grad_cam(lite_model, chelsea_input, 285).raw
    with torch.no_grad():
        torch.testing.assert_close(grad_cam(lite_model, chelsea_input, 285).raw, expected)
    with torch.inference_mode():
        inference_input = chelsea_input.clone()  # an inference tensor
        torch.testing.assert_close(grad_cam(lite_model, inference_input, 285).raw, expected)


def test_restores_training_mode_and_trainable_parameters(random_resnet50):
    network = copy.deepcopy(random_resnet50).train().requires_grad_(True)
    grad_cam(network, torch.randn(1, 3, 64, 64), 3)
    assert network.training
    assert all(p.requires_grad for p in network.parameters())
    assert all(p.grad is None for p in network.parameters())
    assert count_hooks(network) == 0


def test_hooks_are_removed_when_the_target_is_wrong(lite_model, chelsea_input):
    with pytest.raises(UnknownClassError):
        grad_cam(lite_model, chelsea_input, "no such class")
    assert count_hooks(lite_model.network) == 0


def test_batch_of_images_is_refused(lite_model, chelsea_input):
    with pytest.raises(ValueError, match="one image; got a batch of 2"):
        grad_cam(lite_model, torch.cat([chelsea_input, chelsea_input]), 1)


def test_blank_image_never_gives_nan(lite_model):
    result = grad_cam(lite_model, np.zeros((64, 64, 3), dtype=np.uint8), range(0, 1000, 50))
    assert not torch.isnan(result.maps).any()
    assert ((result.maps >= 0) & (result.maps <= 1)).all()


def test_normalisation_keeps_zero_maps_zero_and_is_never_nan():
    maps = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 3.0), torch.arange(16.0).reshape(4, 4)])
    normalised = normalize_cams(maps)
    assert (normalised[0] == 0).all()
    assert (normalised[1] == 1).all()
    assert normalised[2].min() == 0 and normalised[2].max() == 1
    assert not torch.isnan(normalised).any()


def test_upsampling_matches_torch_bilinear_without_corner_alignment():
    cams = torch.rand(2, 3, 5)
    up = upsample_cams(cams, (9, 15))  # 3x: output pixel 3i+1 sits on input cell i's centre
    assert up.shape == (2, 9, 15)
    torch.testing.assert_close(up[:, 1::3, 1::3], cams)


def test_method_name_and_layer_are_reported(lite_model, chelsea_input):
    result = GradCAM(lite_model, "layer2")(chelsea_input, [1, 2])
    assert (result.method, result.layer, len(result)) == ("Grad-CAM", "layer2", 2)
    assert result.raw.shape[-2:] == (28, 42)


# --- the layer, when none is given ---------------------------------------------------------------------------


class WithAuxiliaryBranch(nn.Module):
    """A small CNN whose auxiliary branch runs last and is thrown away, as an auxiliary classifier at test time."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.auxiliary = nn.Conv2d(16, 4, 1)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(self.stem(x))
        self.auxiliary(features)  # spatial, executed last, unused: must not be chosen
        return self.head(features.mean(dim=(2, 3)))


def _auxiliary_network() -> nn.Module:
    torch.manual_seed(0)
    return WithAuxiliaryBranch().eval()


def test_automatic_layer_is_the_last_spatial_one_the_output_depends_on(capsys):
    network, x = _auxiliary_network(), torch.randn(1, 3, 16, 16)
    assert find_target_layer(network, x) == "body"
    first = grad_cam(network, x, "class 3")
    second = GradCAM(network)(x, 4)
    assert first.layer == second.layer == "body"
    assert first.raw.shape == (1, 8, 8) and torch.isfinite(first.maps).all()
    notice = capsys.readouterr().err.strip().splitlines()
    assert notice == [
        "No layer given and WithAuxiliaryBranch has no default, so CAMs explain 'body' (16 channels, 8 x 8 here): "
        "the last layer with a spatial output that the logits depend on. Pass layer= to choose another."
    ]  # once per network, however many calls
    assert count_hooks(network) == 0


def test_default_layer_is_the_models_then_layer4_and_says_nothing(lite_model, random_resnet50, chelsea_input, capsys):
    assert grad_cam(lite_model, chelsea_input).layer == "layer4"
    assert GradCAM(random_resnet50)(torch.randn(1, 3, 64, 64)).layer == "layer4"
    assert capsys.readouterr().err == ""


def test_in_place_operation_after_the_layer_does_not_change_its_gradient():
    """DenseNet applies F.relu(..., inplace=True) after its last layer; the gradient must be the layer's own."""

    class InPlaceAfter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.fc = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.conv(x), inplace=True)
            return self.fc(out.mean(dim=(2, 3)))

    torch.manual_seed(0)
    network, x = InPlaceAfter().eval(), torch.randn(1, 3, 8, 8)
    result = grad_cam(network, x, [0, 1, 2], layer="conv")
    activation = network.conv(x).detach()[0]
    gradient = network.fc.weight[:, :, None, None] / 64 * (activation > 0)  # the ReLU's derivative, per cell
    expected = torch.einsum("kc,chw->khw", gradient.mean(dim=(-2, -1)), activation).relu()
    torch.testing.assert_close(result.raw, expected.detach())


def test_layer_without_a_spatial_output_names_its_shape_and_the_choice(random_resnet50):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError) as caught:
        grad_cam(random_resnet50, x, layer="fc")
    assert str(caught.value) == (
        "Layer 'fc' outputs shape (1, 1000) for this 64 x 64 input, not a spatial map (1, C, h, w with h*w > 1), so it "
        "has no class activation map. Leave layer out (layer=None) to explain this network's default, 'layer4', which "
        "outputs (1, 2048, 2, 2)."
    )
    with pytest.raises(ValueError, match="Layer 'avgpool' outputs shape \\(1, 2048, 1, 1\\)"):
        GradCAM(random_resnet50, "avgpool")(x)
    # At 32 x 32, layer4 is 1 x 1; its first block's 1x1 convolution still sees 2 x 2 (the stride comes after).
    with pytest.raises(ValueError, match="'layer4' outputs shape \\(1, 2048, 1, 1\\) for this 32 x 32 input.*"
                       "automatic choice for this input is 'layer4.0.bn1', which outputs \\(1, 512, 2, 2\\)"):
        grad_cam(random_resnet50, torch.randn(1, 3, 32, 32))
    assert count_hooks(random_resnet50) == 0


def test_network_with_no_spatial_layer_is_explained():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    with pytest.raises(ValueError, match="No layer of Sequential outputs a grid of cells that the logits depend on, for an input of \\(8, 8\\) pixels"):
        grad_cam(network, torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="No layer of Sequential outputs a grid of cells"):
        find_target_layer(network, torch.randn(1, 3, 8, 8))
    assert count_hooks(network) == 0


def test_unknown_layer_suggests_the_default_not_a_lookalike(lite_model):
    network = _auxiliary_network()
    with pytest.raises(ValueError) as caught:
        GradCAM(network, "layer4")
    assert str(caught.value) == (
        "WithAuxiliaryBranch has no layer 'layer4'. Leave layer out (layer=None) and the last layer with a spatial "
        "output is found for you, or print(network) to see its layer names."
    )
    with pytest.raises(ValueError, match="Did you mean 'layer4', .*\\? The default layer of efficientnet_lite0 is 'layer4'"):
        grad_cam(lite_model, torch.zeros(1, 3, 32, 32), layer="layer5")


# --- class names -----------------------------------------------------------------------------------------------


def test_bare_network_without_names_gets_numbered_classes_never_imagenet(random_resnet50):
    x = torch.randn(1, 3, 16, 16)
    result = grad_cam(_auxiliary_network(), x, [0, "class 4"])
    assert result.class_names == ["class 0", "class 4"]
    assert torch.equal(result.map_for("CLASS 4"), result.maps[1])
    with pytest.raises(UnknownClassError, match="No class called 'tabby'"):
        grad_cam(_auxiliary_network(), x, "tabby")
    assert grad_cam(random_resnet50, torch.randn(1, 3, 64, 64), 285).class_names == ["Egyptian cat"]


def test_class_names_are_used_and_checked(lite_model, chelsea_input):
    names = ["apple", "pear", "plum", "fig", "kiwi"]
    network, x = _auxiliary_network(), torch.randn(1, 3, 16, 16)
    result = grad_cam(network, x, ["Pear", 4], class_names=names)
    assert result.class_names == ["pear", "kiwi"] and result.class_indices == [1, 4]
    assert torch.equal(result.select([1]).map_for("kiwi"), result.maps[1])
    with pytest.raises(ValueError, match="Got 4 names in class_names but the network has 5 outputs"):
        grad_cam(network, x, class_names=names[:4])
    with pytest.raises(ValueError, match="Got 5 names in class_names but the network has 1000 outputs"):
        grad_cam(lite_model, chelsea_input, class_names=names)
    with pytest.raises(ValueError, match="'pear' twice"):
        GradCAM(network, class_names=["pear", "pear", "a", "b", "c"])
    assert count_hooks(network) == 0


# --- never NaN -------------------------------------------------------------------------------------------------


def test_non_finite_maps_are_refused_not_normalised():
    maps = torch.rand(3, 4, 4)
    maps[1, 0, 0] = float("nan")
    maps[2, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="hold 2 NaN and infinite values in 2 of 3 maps \\(first: map 1\\)"):
        normalize_cams(maps)


def test_nan_input_is_a_clear_error(random_resnet50):
    with pytest.raises(ValueError, match="The Grad-CAM maps at 'layer4' hold .* NaN .*check the input for NaN"):
        grad_cam(random_resnet50, torch.full((1, 3, 64, 64), float("nan")), 1)
    assert count_hooks(random_resnet50) == 0


def test_maps_of_many_classes_on_a_large_image_are_refused_with_the_ways_out(lite_model, chelsea_input, monkeypatch):
    result = grad_cam(lite_model, chelsea_input, range(1000), output_size=(3024, 4032))  # a phone photo's size
    with pytest.raises(MemoryError, match=r"1000 classes at 3024x4032 pixels would take 48\.8 GB") as refused:
        result.maps
    for way_out in ("map_for", "select", "output_size", "maps_limit_bytes"):
        assert way_out in str(refused.value)
    assert "maps" not in result.__dict__  # nothing half-computed is kept
    # the ways out work: one class, a few classes
    assert result.map_for("Egyptian cat").shape == (3024, 4032)
    assert result.select([285, 281]).maps.shape == (2, 3024, 4032)
    # the limit is a setting
    monkeypatch.setattr(type(result), "maps_limit_bytes", 10 * 3024 * 4032 * 4)
    assert result.select(range(10)).maps.shape == (10, 3024, 4032)
    with pytest.raises(MemoryError, match="11 classes"):
        result.select(range(11)).maps

