import copy

import numpy as np
import pytest
import torch

from utilities import UnknownClassError, grad_cam, normalize_cams, upsample_cams
from utilities.cam import GradCAM
from utilities.hooks import count_hooks

REFERENCE_CLASSES = [285, 281, 967, 0]
REFERENCE_LAYERS = ["layer3", "layer4"]


def _references(network, layer_name, x, classes):
    """pytorch-grad-cam's GradCAM and captum's LayerGradCam on an unfrozen copy, normalised."""
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
    ours = grad_cam(lite_model, chelsea_input, REFERENCE_CLASSES, layer=layer)
    jacobgil, captum_maps = _references(lite_model.network, layer, chelsea_input, REFERENCE_CLASSES)
    assert ours.maps.shape == jacobgil.shape == captum_maps.shape
    assert (ours.raw.flatten(1).amax(1) > 0).all()  # non-trivial maps
    torch.testing.assert_close(ours.maps, jacobgil, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.maps, captum_maps, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer", REFERENCE_LAYERS)
def test_matches_references_on_random_resnet50(random_resnet50, layer):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 160, 160)
    ours = grad_cam(random_resnet50, x, REFERENCE_CLASSES, layer=layer)
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
