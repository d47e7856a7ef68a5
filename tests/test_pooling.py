import copy

import pytest
import torch
from torch import nn

from utilities import GradCAM
from utilities.hooks import count_hooks
from utilities.models import GlobalAveragePool
from utilities.pooling import broadcast_pooling, global_average_pools


class MeanInForward(nn.Module):
    """Pools with a mean written in forward: nothing to swap."""

    def __init__(self) -> None:
        super().__init__()
        self.layer4 = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(x).mean((2, 3)))


def _small_input() -> torch.Tensor:
    torch.manual_seed(5)
    return torch.randn(1, 3, 64, 96)


def test_swapped_resnet50_gives_the_same_logits_and_cams(random_resnet50):
    x = _small_input()
    with torch.inference_mode():
        logits = random_resnet50(x)
        with broadcast_pooling(random_resnet50) as swapped:
            assert swapped == 1
            assert isinstance(random_resnet50.avgpool, GlobalAveragePool)
            swapped_logits = random_resnet50(x)
    torch.testing.assert_close(swapped_logits, logits, atol=1e-6, rtol=0)
    # In float64: float32 CAMs sum 2048 signed channels and differ by rounding (about 3e-6 of
    # a map's maximum), as any change of summation order makes them.
    network = copy.deepcopy(random_resnet50).double()
    method = GradCAM(network, "layer4")
    classes = range(0, 1000, 37)
    before = method(x.double(), classes)
    with broadcast_pooling(network):
        after = method(x.double(), classes)
    torch.testing.assert_close(after.raw, before.raw, atol=1e-6, rtol=0)
    torch.testing.assert_close(after.maps, before.maps, atol=1e-6, rtol=0)
    assert count_hooks(network) == 0


def test_gradients_through_the_swapped_pool_are_broadcast_views(random_resnet50):
    # The point of the swap: no full (classes, C, h, w) gradient is written.
    def gradients() -> torch.Tensor:
        features = torch.rand(1, 2048, 2, 3, requires_grad=True)
        logits = random_resnet50.fc(torch.flatten(random_resnet50.avgpool(features), 1))
        one_hot = torch.eye(1000)[:8, None]
        return torch.autograd.grad(logits, features, one_hot, is_grads_batched=True)[0]

    assert gradients().stride()[-1] != 0
    with broadcast_pooling(random_resnet50):
        assert gradients().stride()[-2:] == (0, 0)


def test_the_original_modules_are_restored(random_resnet50):
    original = random_resnet50.avgpool
    with broadcast_pooling(random_resnet50):
        assert random_resnet50.avgpool is not original
    assert random_resnet50.avgpool is original
    assert random_resnet50.get_submodule("avgpool") is original


def test_the_original_modules_are_restored_after_an_exception(random_resnet50):
    original = random_resnet50.avgpool
    with pytest.raises(RuntimeError, match="inside the block"):
        with broadcast_pooling(random_resnet50):
            raise RuntimeError("inside the block")
    assert random_resnet50.avgpool is original


def test_only_global_average_pools_without_hooks_are_swapped():
    shared = nn.AdaptiveAvgPool2d((1, 1))
    plain = nn.AdaptiveAvgPool2d(1)
    two_by_two = nn.AdaptiveAvgPool2d((2, 2))
    one_row = nn.AdaptiveAvgPool2d((1, None))
    hooked = nn.AdaptiveAvgPool2d(1)
    hooked.register_forward_hook(lambda *_: None)
    kept = nn.AdaptiveAvgPool2d(1)
    network = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.Sequential(shared, plain), nn.Sequential(shared), two_by_two, one_row, hooked, kept
    )
    with broadcast_pooling(network, keep=[kept]) as swapped:
        assert swapped == 3  # the shared pool in both places, and the plain one
        assert all(isinstance(module, GlobalAveragePool) for module in (network[1][0], network[1][1], network[2][0]))
        assert [network[3], network[4], network[5], network[6]] == [two_by_two, one_row, hooked, kept]
    assert network[1][0] is shared and network[2][0] is shared and network[1][1] is plain


@pytest.mark.parametrize("input_shape", [(2, 5, 7, 3), (5, 7, 3)])
def test_global_average_pool_is_a_drop_in_for_adaptive_avg_pool(input_shape):
    x = torch.randn(input_shape)
    expected = nn.AdaptiveAvgPool2d(1)(x)
    result = GlobalAveragePool()(x)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, atol=1e-6, rtol=0)


def test_networks_without_a_pool_module_are_left_unchanged(lite_model):
    for network in (lite_model.network, MeanInForward()):
        originals = list(network.modules())
        assert global_average_pools(network) == []
        with broadcast_pooling(network) as swapped:
            assert swapped == 0
            assert all(module is original for module, original in zip(network.modules(), originals))
