import copy

import numpy as np
import pytest
import torch

from utilities import CAM, CAM_METHODS, EigenCAM, GradCAM, HiResCAM, ScoreCAM
from utilities.hooks import count_hooks
from utilities.methods import eigen_projection

REFERENCE_NAMES = {
    "Grad-CAM++": "GradCAMPlusPlus",
    "HiResCAM": "HiResCAM",
    "XGrad-CAM": "XGradCAM",
    "Layer-CAM": "LayerCAM",
    "Score-CAM": "ScoreCAM",
    "Eigen-CAM": "EigenCAM",
}
CLASSES = [285, 967, 3]


def _reference_maps(method_name, network, layer_name, x, classes):
    """pytorch-grad-cam's maps: cells spread evenly over the image, so ours are compared with placement="stretch"."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    trainable = copy.deepcopy(network).requires_grad_(True)
    reference_class = getattr(pytorch_grad_cam, REFERENCE_NAMES[method_name])
    with reference_class(model=trainable, target_layers=[trainable.get_submodule(layer_name)]) as reference:
        if method_name == "Score-CAM":
            reference.batch_size = 64
        maps = [reference(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0] for c in classes]
    return torch.from_numpy(np.stack(maps))


def _cases(lite_model, random_resnet50):
    torch.manual_seed(2)
    return [
        ("bundled", lite_model.network, torch.randn(1, 3, 96, 128), ["layer3", "layer4"]),
        ("resnet50", random_resnet50, torch.randn(1, 3, 64, 64), ["layer3", "layer4"]),
    ]


@pytest.mark.parametrize("method_name", ["Grad-CAM++", "HiResCAM", "XGrad-CAM", "Layer-CAM"])
@pytest.mark.parametrize("model_kind", ["bundled", "resnet50"])
def test_gradient_methods_match_pytorch_grad_cam(method_name, model_kind, lite_model, random_resnet50):
    name, network, x, layers = next(case for case in _cases(lite_model, random_resnet50) if case[0] == model_kind)
    for layer in layers:
        ours = CAM_METHODS[method_name](network, layer)(x, CLASSES, placement="stretch")
        reference = _reference_maps(method_name, network, layer, x, CLASSES)
        assert (ours.raw.flatten(1).amax(1) > 0).any(), f"{method_name} at {layer}: all maps are zero"
        torch.testing.assert_close(ours.maps, reference, atol=1e-4, rtol=0, msg=f"{method_name} at {layer} on {name}")


@pytest.mark.parametrize("model_kind", ["bundled", "resnet50"])
def test_score_cam_matches_pytorch_grad_cam(model_kind, lite_model, random_resnet50):
    # One masked forward pass per channel: layer3 and small inputs keep this test short.
    network = lite_model.network if model_kind == "bundled" else random_resnet50
    torch.manual_seed(3)
    x = torch.randn(1, 3, 64, 96) if model_kind == "bundled" else torch.randn(1, 3, 48, 48)
    layer = "layer3"
    classes = CLASSES[:2]  # the reference makes all masked passes again for every class: two are enough
    ours = ScoreCAM(network, layer, batch_size=64)(x, classes, placement="stretch")
    reference = _reference_maps("Score-CAM", network, layer, x, classes)
    torch.testing.assert_close(ours.maps, reference, atol=1e-4, rtol=0)


def test_score_cam_batch_size_does_not_change_the_result(lite_model):
    x = torch.randn(1, 3, 64, 96)
    small = ScoreCAM(lite_model, "layer3", batch_size=7)(x, [285, 967])
    large = ScoreCAM(lite_model, "layer3", batch_size=200)(x, [285, 967])
    torch.testing.assert_close(small.raw, large.raw, atol=1e-6, rtol=1e-5)
    assert count_hooks(lite_model.network) == 0


@pytest.mark.parametrize("model_kind", ["bundled", "resnet50"])
def test_eigen_cam_matches_pytorch_grad_cam_up_to_the_svd_sign(model_kind, lite_model, random_resnet50):
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    name, network, x, layers = next(case for case in _cases(lite_model, random_resnet50) if case[0] == model_kind)
    full_comparisons = 0
    for layer in layers:
        with torch.no_grad():
            features = {}
            handle = network.get_submodule(layer).register_forward_hook(lambda m, i, o: features.update(a=o))
            network(x)
            handle.remove()
        ours = eigen_projection(features["a"][0])
        reference = torch.from_numpy(get_2d_projection(features["a"].numpy()))[0]
        sign = 1.0 if torch.dot(ours.flatten(), reference.flatten()) >= 0 else -1.0
        torch.testing.assert_close(ours, sign * reference, atol=1e-4, rtol=1e-4)
        # The full method (ReLU, normalisation) equals pytorch-grad-cam's whenever its sign agrees with ours.
        if sign > 0:
            maps = EigenCAM(network, layer)(x, CLASSES, placement="stretch").maps
            torch.testing.assert_close(maps, _reference_maps("Eigen-CAM", network, layer, x, CLASSES), atol=1e-4, rtol=0)
            full_comparisons += 1
    assert full_comparisons > 0, "no layer where both signs agree: the full method was never compared"


def test_eigen_cam_sign_points_at_the_activations():
    activations = torch.zeros(4, 5, 5)
    activations[:, 1:3, 1:3] = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None, None]  # one bright blob
    projection = eigen_projection(activations)
    assert projection[1:3, 1:3].min() > projection[0, 0]


def test_eigen_cam_is_the_same_for_every_class(lite_model, chelsea_input):
    result = EigenCAM(lite_model, "layer4")(chelsea_input, [1, 2, 285])
    torch.testing.assert_close(result.raw[0], result.raw[2])


def test_hirescam_equals_grad_cam_at_the_last_stage_only(lite_model, chelsea_input):
    for layer, should_agree in [("layer4", True), ("layer3", False)]:
        hires = HiResCAM(lite_model, layer)(chelsea_input, [285]).maps
        grad = GradCAM(lite_model, layer)(chelsea_input, [285]).maps
        assert torch.allclose(hires, grad, atol=1e-5) == should_agree, layer


def test_every_method_is_registered_and_never_nan(lite_model, data_dir):
    assert list(CAM_METHODS) == ["Grad-CAM", "Grad-CAM++", "HiResCAM", "XGrad-CAM", "Layer-CAM", "Score-CAM", "Eigen-CAM"]
    blank = torch.zeros(1, 3, 64, 64)
    for name, method in CAM_METHODS.items():
        result = method(lite_model, "layer3")(blank, [0, 285])
        assert result.method == name
        assert not torch.isnan(result.maps).any(), name
    assert count_hooks(lite_model.network) == 0


def test_score_cam_max_channels_uses_the_channels_of_largest_mean_activation(lite_model):
    torch.manual_seed(4)
    x = torch.randn(1, 3, 64, 96)
    classes = [285, 967]
    full = ScoreCAM(lite_model, "layer3", batch_size=64)
    subset = ScoreCAM(lite_model, "layer3", batch_size=64, max_channels=5)
    with torch.no_grad():
        features = {}
        handle = lite_model.network.layer3.register_forward_hook(lambda m, i, o: features.update(a=o))
        lite_model.network(x)
        handle.remove()
    activations = features["a"][0]
    chosen = subset.selected_channels(activations)
    expected = activations.mean(dim=(-2, -1)).argsort(descending=True)[:5]
    assert sorted(chosen.tolist()) == sorted(expected.tolist())
    # The approximation is Score-CAM run on the chosen channels alone.
    with torch.no_grad():
        approximate = subset.maps_without_gradients(x, activations, classes)
        reference = full.maps_without_gradients(x, activations[chosen], classes)
    torch.testing.assert_close(approximate, reference, atol=1e-6, rtol=1e-5)
    assert count_hooks(lite_model.network) == 0


def test_score_cam_max_channels_at_least_the_channel_count_is_full_score_cam(lite_model):
    x = torch.randn(1, 3, 64, 96)
    full = ScoreCAM(lite_model, "layer3", batch_size=64)(x, [285])
    same = ScoreCAM(lite_model, "layer3", batch_size=64, max_channels=112)(x, [285])
    torch.testing.assert_close(full.raw, same.raw)
    with pytest.raises(ValueError, match="max_channels"):
        ScoreCAM(lite_model, "layer3", max_channels=0)


@pytest.mark.parametrize("model_kind", ["bundled", "resnet50"])
def test_cam_is_grad_cam_times_the_number_of_cells_at_the_last_stage(model_kind, lite_model, random_resnet50):
    network = lite_model.network if model_kind == "bundled" else random_resnet50
    torch.manual_seed(5)
    x = torch.randn(1, 3, 96, 128)
    cam = CAM(network)(x, range(1000))
    grad = GradCAM(network, "layer4")(x, range(1000))
    cells = cam.raw.shape[-2] * cam.raw.shape[-1]
    assert cam.raw.amax() > 0
    scale = grad.raw.amax()  # float32 sums of 2048 terms: compare relative to the largest value
    torch.testing.assert_close(cam.raw / cells / scale, grad.raw / scale, atol=1e-6, rtol=0)
    torch.testing.assert_close(cam.maps[:5], grad.maps[:5], atol=1e-5, rtol=0)


def test_cam_written_out_is_one_einsum(lite_model, chelsea_input):
    from utilities import LayerRecorder

    with torch.no_grad(), LayerRecorder(lite_model.network, "layer4") as recorder:
        lite_model.network(chelsea_input)
    by_hand = torch.einsum("kc,chw->khw", lite_model.network.fc.weight, recorder.activations["layer4"][0])
    torch.testing.assert_close(CAM(lite_model)(chelsea_input, range(1000)).raw, by_hand.relu())


def test_cam_refuses_layers_and_heads_it_is_not_defined_for(lite_model, chelsea_input):
    with pytest.raises(ValueError, match="layer has 112 channels but the linear layer expects 1280 inputs, so that linear layer does not directly follow"):
        CAM(lite_model, "layer3")(chelsea_input)
    with pytest.raises(ValueError, match="one nn.Linear after global average pooling; got Sequential"):
        CAM(lite_model, "layer4", classifier="layer1")
    with pytest.raises(ValueError, match="no module 'head'"):
        CAM(lite_model, "layer4", classifier="head")
    assert count_hooks(lite_model.network) == 0


def test_cam_refuses_an_inner_layer_with_the_right_channel_count(random_resnet50):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="does not receive this layer's output averaged over its cells"):
        CAM(random_resnet50, "layer4.1")(x, 3)
    assert CAM(random_resnet50, "layer4")(x, 3).raw.shape == (1, 2, 2)
    assert count_hooks(random_resnet50) == 0


def test_every_method_places_its_maps_at_the_cell_centres_unless_told_to_stretch(lite_model):
    from utilities import cell_centres, normalize_cams, place_maps, upsample_cams

    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    centres = cell_centres(lite_model, "layer3", (64, 96))
    methods = {**CAM_METHODS, "CAM": CAM}
    for name, method in methods.items():
        made = method(lite_model, "layer4" if name == "CAM" else "layer3")
        placed = made(x, [285], output_size=(128, 192))
        stretched = made(x, [285], output_size=(128, 192), placement="stretch")
        torch.testing.assert_close(placed.raw, stretched.raw, msg=name)
        expected = centres if name != "CAM" else cell_centres(lite_model, "layer4", (64, 96))
        assert placed.centres is expected and stretched.centres is None, name
        torch.testing.assert_close(placed.maps, normalize_cams(place_maps(placed.raw, expected, (128, 192))), msg=name)
        torch.testing.assert_close(stretched.maps, normalize_cams(upsample_cams(stretched.raw, (128, 192))), msg=name)
