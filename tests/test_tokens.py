"""utilities.tokens and the CAM methods on transformers: tokens and channels-last outputs read as grids of cells."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utilities import CAM_METHODS, find_target_layer, grad_cam, load_model
from utilities.hooks import count_hooks
from utilities.tokens import SpatialLayout, spatial_layout, to_spatial


@pytest.mark.parametrize(
    "shape, input_size, expected",
    [
        ((1, 197, 768), (224, 224), SpatialLayout("tokens", 14, 14, skip=1)),  # ViT-B/16: a class token, 14 x 14
        ((1, 196, 384), (224, 224), SpatialLayout("tokens", 14, 14)),  # no class token
        ((1, 1 + 2 + 12 * 16, 64), (192, 256), SpatialLayout("tokens", 12, 16, skip=3)),  # 3 leading, non-square
        ((1, 7, 7, 768), (224, 224), SpatialLayout("nhwc", 7, 7)),  # Swin's last stage
        ((1, 56, 56, 96), (224, 224), SpatialLayout("nhwc", 56, 56)),  # Swin's first stage: not (96 x 56)
        ((1, 64, 56, 56), (224, 224), SpatialLayout("nchw", 56, 56)),  # a convolutional map stays one
        ((1, 7, 7, 7), (224, 224), SpatialLayout("nchw", 7, 7)),  # ambiguous: read as the usual layout
        ((1, 2048, 1, 1), (224, 224), None),  # pooled
        ((1, 1000), (224, 224), None),
        ((1, 197, 768), (224, 448), None),  # 196 patches cannot tile a 1:2 input
    ],
)
def test_layouts_are_read_from_the_shape_and_the_inputs_aspect(shape, input_size, expected):
    assert spatial_layout(shape, input_size) == expected


def test_tokens_become_channels_over_the_grid_row_by_row():
    tokens = torch.arange(2 * (1 + 6) * 3, dtype=torch.float32).reshape(2, 7, 3)  # a class token, then 2 x 3 cells
    grid = to_spatial(tokens, SpatialLayout("tokens", 2, 3, skip=1))
    assert grid.shape == (2, 3, 2, 3)
    assert torch.equal(grid[1, :, 1, 2], tokens[1, 1 + 1 * 3 + 2])  # cell (1, 2) is token 1 + 5
    channels_last = torch.randn(1, 4, 5, 8)
    assert torch.equal(to_spatial(channels_last, SpatialLayout("nhwc", 4, 5))[0, :, 3, 1], channels_last[0, 3, 1])


@pytest.fixture(scope="module")
def vit():
    return load_model("vit_b_16_untrained")


def test_a_vit_map_equals_the_hand_computation_through_the_reshape(vit):
    inputs = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    result = grad_cam(vit, inputs, [3, 7])
    assert result.layer == "encoder.layers.encoder_layer_11.ln_1" and tuple(result.raw.shape) == (2, 14, 14)
    # by hand: the norm's output, the class logits' gradients, class token dropped, 196 tokens as 14 x 14
    seen = {}
    layer = vit.network.get_submodule(result.layer)
    handle = layer.register_forward_hook(lambda module, args, output: seen.setdefault("tokens", output))
    try:
        with torch.enable_grad():
            logits = vit.network(inputs.requires_grad_(True))
    finally:
        handle.remove()
    tokens = seen["tokens"]
    for row, index in enumerate([3, 7]):
        (gradient,) = torch.autograd.grad(logits[0, index], tokens, retain_graph=True)
        activation = tokens[0, 1:].T.reshape(768, 14, 14)
        weights = gradient[0, 1:].T.reshape(768, 14, 14).mean(dim=(1, 2))
        expected = torch.relu((weights[:, None, None] * activation).sum(0))
        assert torch.allclose(result.raw[row], expected.detach(), atol=1e-5)
    assert count_hooks(vit.network) == 0


def test_every_method_runs_on_a_vit_and_1000_classes_come_from_one_forward_pass(vit):
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for name, method in CAM_METHODS.items():
        if name == "Score-CAM":
            result = method(vit, max_channels=8)(image, 0)
        else:
            result = method(vit)(image, 0)
        assert tuple(result.raw.shape) == (1, 14, 14) and torch.isfinite(result.maps).all(), name
    calls = []
    handle = vit.network.register_forward_hook(lambda *args: calls.append(1))
    try:
        everything = grad_cam(vit, image, list(range(1000)), output_size=(14, 14))
    finally:
        handle.remove()
    assert len(calls) == 1 and tuple(everything.raw.shape) == (1000, 14, 14)
    assert count_hooks(vit.network) == 0


def test_a_bare_vit_gets_its_last_blocks_norm_not_the_patch_embedding(vit):
    """The encoder's last norm feeds only the class token to the head: its patch tokens get no gradient, so the
    automatic choice steps back to the last layer whose cells do, and never falls back to conv_proj."""
    layer = find_target_layer(vit.network, torch.zeros(1, 3, 224, 224))
    assert layer == "encoder.layers.encoder_layer_11.ln_1"


def test_swin_is_explained_at_its_last_norm_channels_last():
    swin = load_model("swin_t_untrained")
    result = grad_cam(swin, torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2)), [5])
    assert result.layer == "norm" and tuple(result.raw.shape) == (1, 7, 7) and torch.isfinite(result.maps).all()


def test_a_transformer_whose_tokens_are_not_a_grid_is_refused_with_what_to_pass():
    class OddTokens(nn.Module):
        """A patch embedding, then 61 tokens (not a grid of a square input) mixed by a linear layer."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 8, stride=8)
            self.mix = nn.Linear(8, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            tokens = self.embed(x).flatten(2).transpose(1, 2)  # (N, 49, 8)
            tokens = torch.cat([tokens, tokens[:, :12]], dim=1)  # 61 tokens: no grid after 0 to 8 leading ones
            return self.head(self.mix(tokens).mean(1))

    with pytest.raises(ValueError, match="works on sequences that are not grids"):
        grad_cam(OddTokens(), torch.zeros(1, 3, 56, 56), 0)
