import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utilities import cell_centres, centres_on_image, grad_cam, load_model, normalize_cams, place_maps, upsample_cams
from utilities.hooks import count_hooks
from utilities.receptive_field import (
    CellCentres,
    NotDerivableError,
    derive_cell_centres,
    measure_cell_centres,
    stretched_centres,
)

LAYERS = ["layer1", "layer2", "layer3", "layer4"]


class TFSameConv(nn.Conv2d):
    """A convolution padded like TensorFlow's "same": the odd padding pixel goes after (bottom, right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class CentreTapNetwork(nn.Module):
    """Five 3x3 stride-2 TF-padded convolutions that copy only their centre tap, then pooling and ``fc``.

    Each layer4 cell equals the one input pixel at its receptive field's centre, so a single
    bright pixel lights exactly one cell: the one centred on it. On an even side each
    convolution pads 0 before and 1 after, so cell u is centred at 1 + 2 + 4 + 8 + 16 + 32u = 31 + 32u.
    """

    def __init__(self) -> None:
        super().__init__()
        convolutions = [TFSameConv(1 if i else 3, 1, 3, stride=2, bias=False) for i in range(5)]
        with torch.no_grad():
            for convolution in convolutions:
                convolution.weight.zero_()
                convolution.weight[:, :, 1, 1] = 1.0
        self.layer4 = nn.Sequential(*convolutions, nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.layer4(x)), 1))


@pytest.fixture(scope="module")
def resnet50_layout():
    return load_model("resnet50_untrained")


def _peak(map_: torch.Tensor) -> tuple[float, float]:
    """Centre of the pixels at the map's maximum (a plateau's middle)."""
    rows, columns = torch.nonzero(map_ >= map_.max() - 1e-6, as_tuple=True)
    return float(rows.float().mean()), float(columns.float().mean())


# --- known by construction -------------------------------------------------------------------------------------


def test_a_bright_pixel_lights_the_cell_centred_on_it():
    network = CentreTapNetwork().eval()
    pixel = (63, 95)  # the centre of cell (1, 2): 31 + 32 * 1, 31 + 32 * 2
    image = torch.zeros(1, 3, 128, 160)
    image[0, :, pixel[0], pixel[1]] = 1.0
    assert torch.nonzero(network.layer4(image)[0, 0]).tolist() == [[1, 2]]

    placed = grad_cam(network, image, 0)
    stretched = grad_cam(network, image, 0, placement="stretch")
    torch.testing.assert_close(placed.raw, stretched.raw)
    assert placed.centres.rows.tolist() == [31, 63, 95, 127]
    assert placed.centres.columns.tolist() == [31, 63, 95, 127, 159]
    peak = _peak(placed.maps[0])
    assert abs(peak[0] - pixel[0]) <= 1 and abs(peak[1] - pixel[1]) <= 1
    # Stretching draws cell (1, 2) at (47.5, 79.5): half a cell above and left of the pixel.
    off = _peak(stretched.maps[0])
    assert abs(off[0] - 47.5) <= 1 and abs(off[1] - 79.5) <= 1
    assert pixel[0] - off[0] > 14 and pixel[1] - off[1] > 14


def test_the_bright_pixel_is_found_on_a_larger_photo_through_the_resize():
    network = CentreTapNetwork().eval()
    image = torch.zeros(1, 3, 128, 160)
    image[0, :, 63, 95] = 1.0
    result = grad_cam(network, image, 0, output_size=(512, 640))  # the photo the input was resized from, 4x
    rows, columns = centres_on_image(result.centres, (512, 640))
    assert (rows[1], columns[2]) == ((63 + 0.5) * 4 - 0.5, (95 + 0.5) * 4 - 0.5)
    peak = _peak(result.maps[0])
    assert abs(peak[0] - rows[1]) <= 4 and abs(peak[1] - columns[2]) <= 4  # one input pixel is 4 photo pixels


def test_placing_at_evenly_spread_centres_is_torch_bilinear_upsampling():
    maps = torch.rand(3, 7, 11, dtype=torch.float64)
    for size in [(224, 352), (300, 451), (7, 11), (5, 30)]:
        centres = CellCentres(stretched_centres(7, 224), stretched_centres(11, 352), (32.0, 32.0), (224, 352), "layer4", "derived")
        torch.testing.assert_close(place_maps(maps, centres, size), upsample_cams(maps, size))


def test_placed_maps_hold_the_cell_values_at_the_centres_and_are_constant_beyond():
    maps = torch.rand(1, 4, 5, dtype=torch.float64)
    centres = derive_cell_centres(CentreTapNetwork().eval(), "layer4", (128, 160))
    placed = place_maps(maps, centres, (128, 160))[0]
    torch.testing.assert_close(placed[31::32, 31::32], maps[0])
    torch.testing.assert_close(placed[:31, 31::32], maps[0, :1].expand(31, 5))


# --- the course's networks: derived equals measured -------------------------------------------------------------


@pytest.mark.parametrize("size", [(224, 224), (224, 336)])
@pytest.mark.parametrize("model_name", ["efficientnet_lite0", "resnet50_untrained"])
def test_derived_centres_equal_measured_ones(model_name, size, lite_model, resnet50_layout):
    network = (lite_model if model_name == "efficientnet_lite0" else resnet50_layout).network
    for layer in LAYERS:
        derived = derive_cell_centres(network, layer, size)
        measured = measure_cell_centres(network, layer, size)
        assert (derived.how, measured.how) == ("derived", "measured")
        np.testing.assert_allclose(derived.rows, measured.rows, atol=1e-6)
        np.testing.assert_allclose(derived.columns, measured.columns, atol=1e-6)
    assert count_hooks(network) == 0


def test_the_course_models_centres(lite_model, resnet50_layout):
    # ResNet50's symmetric padding puts cell u at stride * u; the bundled model's TF-style padding at
    # stride * u + stride - 1 on a side whose every stage is even, less where a stride-2 layer meets an odd side.
    for layer, stride in zip(LAYERS, [4, 8, 16, 32]):
        resnet = cell_centres(resnet50_layout.network, layer, (224, 336))
        np.testing.assert_array_equal(resnet.rows, stride * np.arange(224 // stride))
        lite = cell_centres(lite_model, layer, (224, 336))
        np.testing.assert_array_equal(lite.rows, stride * np.arange(224 // stride) + stride - 1)
    # 336 = 21 x 16 is odd at layer4's stride-2 convolution: padded 2 before and 2 after, so offset 15, not 31.
    np.testing.assert_array_equal(cell_centres(lite_model, "layer4", (224, 336)).columns, 32 * np.arange(11) + 15)
    # Notebook 02 measures that layer1 cell (20, 20) of the bundled model depends on rows 74..92: centre 83.
    assert cell_centres(lite_model, "layer1", (224, 224)).rows[20] == 83


# --- cache, defaults, fallbacks ---------------------------------------------------------------------------------


def test_centres_are_cached_and_read_only(lite_model):
    first = cell_centres(lite_model.network, "layer4", (224, 288))
    again = cell_centres(lite_model.network, "layer4", (224, 288))
    assert again is first  # the same object: nothing was measured again
    with pytest.raises(ValueError):
        first.rows[0] = 0.0
    assert cell_centres(lite_model.network, lite_model.network.layer4, (224, 288)) is first


def test_cam_results_place_by_default_and_stretch_on_request(lite_model, chelsea_input):
    placed = grad_cam(lite_model, chelsea_input, [285, 281], layer="layer3")
    assert placed.centres is cell_centres(lite_model, "layer3", tuple(chelsea_input.shape[-2:]))
    torch.testing.assert_close(placed.maps, normalize_cams(place_maps(placed.raw, placed.centres, placed.image_size)))
    torch.testing.assert_close(placed.map_for(281), placed.maps[1])
    assert placed.select([1]).centres is placed.centres
    stretched = grad_cam(lite_model, chelsea_input, [285, 281], layer="layer3", placement="stretch")
    assert stretched.centres is None
    torch.testing.assert_close(stretched.maps, normalize_cams(upsample_cams(stretched.raw, stretched.image_size)))
    assert (placed.maps - stretched.maps).abs().max() > 0.1
    with pytest.raises(ValueError, match="placement must be one of"):
        grad_cam(lite_model, chelsea_input, 285, placement="center")


class _Permuted(nn.Module):
    """A layer whose output passes through two transposes: nothing moves, but the derivation cannot follow."""

    def __init__(self, functional_relu: bool = False) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.functional_relu = functional_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convolution(x)
        if self.functional_relu:
            x = F.relu(x)
        return x.transpose(-1, -2).transpose(-1, -2)


def _wrapped(layer: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    network = nn.Sequential()
    network.add_module("layer4", layer)
    network.add_module("pool", nn.AdaptiveAvgPool2d(1))
    network.add_module("flat", nn.Flatten())
    network.add_module("fc", nn.Linear(4, 3))
    return network.eval()


def test_a_network_that_cannot_be_derived_is_measured():
    network = _wrapped(_Permuted())
    with pytest.raises(NotDerivableError, match="Transpose"):
        derive_cell_centres(network, "layer4", (32, 48))
    centres = cell_centres(network, "layer4", (32, 48))
    assert centres.how == "measured"
    np.testing.assert_allclose(centres.rows, 2 * np.arange(16), atol=1e-9)
    np.testing.assert_allclose(centres.columns, 2 * np.arange(24), atol=1e-9)


def test_a_network_that_can_be_neither_derived_nor_measured_is_stretched_with_a_notice(capsys):
    network = _wrapped(_Permuted(functional_relu=True))
    with pytest.raises(ValueError, match="not linear"):
        cell_centres(network, "layer4", (32, 48))
    result = grad_cam(network, torch.rand(1, 3, 32, 48), 0)
    assert result.centres is None
    assert "stretched evenly" in capsys.readouterr().err
    torch.testing.assert_close(result.maps, normalize_cams(upsample_cams(result.raw, (32, 48))))


# --- edge cases -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["avgpool", "fc"])
def test_a_layer_without_cells_is_refused(lite_model, layer):
    with pytest.raises(ValueError, match="not a spatial map"):
        cell_centres(lite_model, layer, (224, 224))


def test_an_input_smaller_than_a_cell_is_refused_and_one_row_of_cells_is_placed(lite_model):
    with pytest.raises(ValueError, match="smaller than a cell"):
        cell_centres(lite_model, "layer4", (20, 24))
    one_row = cell_centres(lite_model, "layer4", (20, 96))
    assert one_row.rows.shape == (1,) and one_row.columns.shape == (3,)
    placed = place_maps(torch.rand(2, 1, 3), one_row, (20, 96))
    torch.testing.assert_close(placed, placed[:, :1].expand_as(placed))  # constant down the one row


def test_bad_sizes_and_mismatched_maps_are_refused(lite_model):
    with pytest.raises(ValueError, match="input_size must be"):
        cell_centres(lite_model, "layer4", (224,))
    with pytest.raises(ValueError, match="layer"):
        cell_centres(lite_model, "layer9", (224, 224))
    centres = cell_centres(lite_model, "layer4", (224, 224))
    with pytest.raises(ValueError, match="compute the centres"):
        place_maps(torch.rand(1, 14, 14), centres, (224, 224))
    with pytest.raises(ValueError, match="how must be"):
        cell_centres(lite_model, "layer4", (224, 224), how="guessed")


def test_a_network_whose_copy_cannot_run_gets_a_clear_error_not_an_index_error():
    """Swin indexes a table with a buffer; the linear copy's empty stand-in for it must end in the documented ValueError,
    which grad_cam turns into its one-line notice and evenly stretched maps."""
    network = load_model("swin_t_untrained").network
    with pytest.raises(ValueError, match="Cannot measure the centres of 'permute'"):
        measure_cell_centres(network, "permute", (224, 224))
