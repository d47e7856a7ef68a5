import gc

import psutil
import pytest
import torch
from torch import nn

from utilities.hooks import LayerRecorder, NotRecordedError, count_hooks, remove_all_hooks, resolve_layers


def _small_net(inplace: bool) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=inplace),  # modifies the recorded BatchNorm output in place
        nn.Conv2d(8, 4, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval().requires_grad_(False)


def test_records_activations_and_gradients_of_several_layers(lite_model, chelsea_input):
    layers = ["layer1", "layer2", "layer3", "layer4"]
    with LayerRecorder(lite_model.network, layers) as recorder:
        logits = lite_model.network(chelsea_input)
    logits[0, 285].backward()
    for name in layers:
        assert recorder.activations[name].shape == recorder.gradients[name].shape
        assert recorder.gradients[name].abs().sum() > 0
    assert count_hooks(lite_model.network) == 0


def test_gradient_with_in_place_relu_after_the_recorded_layer():
    x = torch.randn(1, 3, 10, 10)
    results = {}
    for inplace in (False, True):
        net = _small_net(inplace)
        with LayerRecorder(net, "1") as recorder:
            score = net(x)[0, 2]
        score.backward()
        results[inplace] = (recorder.activations["1"], recorder.gradients["1"])
    torch.testing.assert_close(results[True][0], results[False][0])  # not overwritten by the ReLU
    torch.testing.assert_close(results[True][1], results[False][1])
    assert (results[True][0] < 0).any()  # the recorded output is the pre-ReLU one


def test_recorder_matches_autograd_on_an_unfrozen_input():
    net = _small_net(False)
    x = torch.randn(1, 3, 10, 10)
    with LayerRecorder(net, "3") as recorder:
        score = net(x)[0, 1]
    score.backward()
    # The score is the spatial mean of channel 1 of layer 3's output.
    expected = torch.zeros_like(recorder.activations["3"])
    expected[0, 1] = 1 / 100
    torch.testing.assert_close(recorder.gradients["3"], expected)


def test_hooks_are_removed_after_an_exception(lite_model):
    recorder = LayerRecorder(lite_model.network, ["layer3", "layer4"])
    with pytest.raises(RuntimeError, match="boom"):
        with recorder:
            assert count_hooks(lite_model.network) == 2
            raise RuntimeError("boom")
    assert count_hooks(lite_model.network) == 0
    assert not recorder.active


def test_entering_again_never_stacks_hooks(lite_model):
    recorder = LayerRecorder(lite_model.network, ["layer4"])
    with recorder:
        with recorder:
            assert count_hooks(lite_model.network) == 1
    assert count_hooks(lite_model.network) == 0


def test_thousand_cycles_leave_no_hook_and_flat_memory(lite_model):
    network, x = lite_model.network, torch.randn(1, 3, 32, 32)
    process = psutil.Process()

    def cycle(times):
        for _ in range(times):
            with LayerRecorder(network, ["layer1", "layer4"]) as recorder:
                network(x)[0, 1].backward()
            assert recorder.gradients["layer4"] is not None

    cycle(50)  # warm up allocator and caches
    gc.collect()
    before = process.memory_info().rss
    cycle(1000)
    gc.collect()
    grown = process.memory_info().rss - before
    assert count_hooks(network) == 0
    assert grown < 20 * 2**20, f"memory grew by {grown / 2**20:.1f} MiB over 1000 cycles"


def test_missing_gradient_explains_no_grad(lite_model, chelsea_input):
    with LayerRecorder(lite_model.network, "layer4") as recorder, torch.no_grad():
        lite_model.network(chelsea_input)
    assert recorder.activations["layer4"].shape[1] == 1280
    with pytest.raises(NotRecordedError, match="No gradient recorded for layer 'layer4'.*torch.no_grad"):
        recorder.gradients["layer4"]


def test_missing_activation_explains_forward(lite_model):
    recorder = LayerRecorder(lite_model.network, "layer4")
    with pytest.raises(NotRecordedError, match="Run a forward pass"):
        recorder.activations["layer4"]


def test_unknown_layer_suggests_names(lite_model):
    with pytest.raises(ValueError, match="no layer 'layer5'. Did you mean .*'layer4'"):
        LayerRecorder(lite_model.network, "layer5")
    with pytest.raises(ValueError, match="Top-level layers: conv1, bn1"):
        resolve_layers(lite_model.network, "qqqqqqqq")
    with pytest.raises(ValueError, match="not part of this network"):
        resolve_layers(lite_model.network, nn.Linear(2, 2))


def test_layers_given_as_modules_are_named(lite_model):
    assert list(resolve_layers(lite_model.network, [lite_model.network.layer4])) == ["layer4"]


def test_non_tensor_output_is_a_clear_error():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    net = nn.Sequential(Pair())
    with pytest.raises(TypeError, match="returned a tuple"):
        with LayerRecorder(net, "0"):
            net(torch.zeros(1))
    assert count_hooks(net) == 0


def test_remove_all_hooks_cleans_up_bare_hooks():
    net = _small_net(False)
    for _ in range(3):
        net[0].register_forward_hook(lambda *args: None)
    assert count_hooks(net) == 3
    assert remove_all_hooks(net) == 3
    assert count_hooks(net) == 0


def test_outputs_keep_their_gradient_through_a_later_in_place_operation():
    """autograd.grad on a tensor that is later changed in place would differentiate the changed tensor."""

    class ReluInPlaceAfter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu_(self.conv(x)).sum()

    torch.manual_seed(0)
    net, x = ReluInPlaceAfter().requires_grad_(False), torch.randn(1, 3, 6, 6)
    for inputs in (x, x.clone().requires_grad_(True)):  # the graph starting at the layer, or at the input
        with LayerRecorder(net, "conv", record_gradients=False) as recorder:
            total = net(inputs)
        (gradient,) = torch.autograd.grad(total, recorder.outputs["conv"])
        torch.testing.assert_close(gradient, (recorder.activations["conv"] > 0).float())
        assert (recorder.activations["conv"] < 0).any()  # recorded before the ReLU


def test_unknown_layer_hint_replaces_the_list_and_lookalikes_must_be_close(lite_model):
    with pytest.raises(ValueError) as caught:
        resolve_layers(_small_net(False), "layer4", hint="Leave layer out.")
    assert str(caught.value) == "Sequential has no layer 'layer4'. Leave layer out."
    with pytest.raises(ValueError, match="no layer 'layer5'. Did you mean 'layer4', 'layer3'"):
        resolve_layers(lite_model.network, "layer5")  # stages before their blocks
    with pytest.raises(TypeError, match="by its name \\(str\\) or as a module, not int"):
        resolve_layers(lite_model.network, [4])
