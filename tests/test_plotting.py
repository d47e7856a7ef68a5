from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.collections import QuadMesh
from matplotlib.text import Text

from utilities import CamResult, grad_cam
from utilities.plotting import (
    CAM_COLORMAP,
    DISPLAY_OVERSAMPLING,
    MIN_PANEL_INCHES,
    OWN_RANGE_LABEL,
    check_colormap,
    display_shape,
    format_probability,
    overlay_cam,
    show_cam,
    show_cams,
    show_feature_maps,
    visualize_image_list,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_visualize_one_image_and_a_list(data_dir, lite_model):
    one = visualize_image_list(data_dir / "chelsea.jpg")
    assert len([ax for ax in one.axes if ax.images]) == 1
    images = [data_dir / "chelsea.jpg", np.zeros((10, 10)), lite_model.to_input(data_dir / "coffee.jpg")[0]]
    many = visualize_image_list(images, titles=["cat", "map", "input"], ncols=2)
    shown = [ax for ax in many.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["cat", "map", "input"]
    assert shown[2].images[0].get_array().shape[-1] == 3  # the normalised tensor shown as RGB


def test_map_constant_up_to_rounding_is_shown_flat():
    almost_constant = np.full((4, 4), 0.25, dtype=np.float32)
    almost_constant[0, 0] = np.nextafter(np.float32(0.25), np.float32(1))
    figure = visualize_image_list(almost_constant)
    shown = figure.axes[0].images[0]
    colours = shown.cmap(shown.norm(shown.get_array()))
    assert np.allclose(colours, colours[0, 0], atol=0.01)  # one colormap step at most
    varied = visualize_image_list(np.arange(16.0).reshape(4, 4)).axes[0].images[0]
    assert varied.norm.vmin == 0 and varied.norm.vmax == 15


def test_visualize_suptitle_has_its_own_room(data_dir):
    figure = visualize_image_list([data_dir / "chelsea.jpg"] * 3, titles=["a", "b", "c"], suptitle="each map scaled")
    assert figure.get_suptitle() == "each map scaled"
    figure.draw_without_rendering()
    (suptitle,) = [text for text in figure.findobj(Text) if text.get_text() == "each map scaled"]
    assert all(ax.title.get_window_extent().y1 < suptitle.get_window_extent().y0 for ax in figure.axes)


def test_visualize_rows_are_as_tall_as_their_images(data_dir):
    figure = visualize_image_list([data_dir / "cat_and_coffee.png"] * 2, titles=["a", "b"], size=3.0)  # 224 x 448
    figure.draw_without_rendering()
    assert figure.get_size_inches()[1] <= 2.0  # a 3-inch-wide panel 1.5 inches tall and a title, not a square cell
    assert all(ax.get_window_extent().width / figure.dpi > 2.7 for ax in figure.axes)  # still about 3 inches wide


def test_visualize_title_count_must_match(data_dir):
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        visualize_image_list([data_dir / "chelsea.jpg"] * 2, titles=["only one"])


def test_overlay_is_rgb_in_matplotlib_colour_order():
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    hot = overlay_cam(image, np.ones((2, 3)), alpha=1.0, cmap="jet")
    expected = np.rint(np.array(colormaps["jet"](1.0)[:3]) * 255)
    np.testing.assert_array_equal(hot[5, 5], expected)  # jet's top is red: RGB, not OpenCV's BGR
    assert hot[5, 5, 0] > hot[5, 5, 2]
    assert hot.shape == (20, 30, 3) and hot.dtype == np.uint8


def test_overlay_with_zero_alpha_is_the_image(data_dir):
    image = np.asarray(plt.imread(data_dir / "chelsea.jpg"))
    np.testing.assert_array_equal(overlay_cam(image, torch.rand(7, 7), alpha=0.0), image)


def test_overlay_refuses_nan_and_bad_alpha():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="NaN"):
        overlay_cam(image, np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="alpha"):
        overlay_cam(image, np.zeros((2, 2)), alpha=1.5)


def test_show_cam_has_a_colorbar(data_dir):
    ax = show_cam(data_dir / "chelsea.jpg", torch.rand(7, 11), title="cat", colorbar_label="value")
    assert len(ax.figure.axes) == 2  # the image axes and the colorbar
    assert ax.get_title() == "cat"
    bar = ax.figure.axes[1]
    assert bar.get_ylabel() == "value"
    # the bar shows the colormap's colours at full opacity, not the pale colours of the blended layer
    assert ax.images[1].get_alpha() == 0.5 and _bar_colours(bar).get_alpha() is None
    assert _bar_colours(bar).cmap.name == CAM_COLORMAP


def _bar_colours(bar_axes):
    """The colour mesh of a colorbar's axes (its other collection is the dividers)."""
    (mesh,) = [collection for collection in bar_axes.collections if isinstance(collection, QuadMesh)]
    return mesh


def _lightness(cmap_name):
    """CIELAB lightness L* of a colormap's 256 colours (sRGB, D65)."""
    rgb = colormaps[cmap_name](np.linspace(0, 1, 256))[:, :3]
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    f = np.where(luminance > 216 / 24389, np.cbrt(luminance), (24389 / 27 * luminance + 16) / 116)
    return 116 * f - 16


def test_the_default_colormap_orders_values_by_lightness():
    lightness = _lightness(CAM_COLORMAP)
    assert np.all(np.diff(lightness) > 0)  # a greyscale print keeps the order of values
    assert lightness[-1] - lightness[0] > 70  # from dark to light, not a narrow band
    assert not np.all(np.diff(_lightness("jet")) > 0)  # the colormap it replaces does not


def test_every_cam_figure_uses_the_default_colormap_and_jet_on_request(data_dir, lite_model):
    image = np.full((20, 30, 3), 128, dtype=np.uint8)
    cam = torch.linspace(0, 1, 6).reshape(2, 3)
    default = overlay_cam(image, cam)
    np.testing.assert_array_equal(default, overlay_cam(image, cam, cmap=CAM_COLORMAP))
    assert not np.array_equal(default, overlay_cam(image, cam, cmap="jet"))
    assert show_cam(image, cam).images[1].cmap.name == CAM_COLORMAP
    assert show_cam(image, cam, cmap="jet").images[1].cmap.name == "jet"
    result = grad_cam(lite_model, data_dir / "cat_and_coffee.png", ["Egyptian cat", "espresso"])
    for cmap, figure in ((CAM_COLORMAP, show_cams(data_dir / "cat_and_coffee.png", result)),
                         ("jet", show_cams(data_dir / "cat_and_coffee.png", result, cmap="jet"))):
        panels = [ax for ax in figure.axes if ax.images]
        assert len(panels) == 2 and all(ax.images[1].cmap.name == cmap for ax in panels)


def test_unknown_colormap_is_refused_with_a_clear_error():
    assert check_colormap("jet").name == "jet"
    with pytest.raises(ValueError, match="Unknown colormap 'jett'.*'inferno' \\(the default\\)"):
        overlay_cam(np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((2, 2)), cmap="jett")
    with pytest.raises(ValueError, match="Unknown colormap"):
        show_cam(np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((2, 2)), cmap="jett")
    assert not plt.get_fignums()  # refused before a figure was made


@pytest.mark.parametrize(
    "probability, text", [(0.428, "42.8%"), (0.001, "0.1%"), (0.00047, "0.047%"), (0.0, "0.0%"), (1.0, "100.0%")]
)
def test_small_probabilities_are_not_rounded_to_zero(probability, text):
    assert format_probability(probability) == text


def test_feature_map_grid(lite_model, chelsea_input):
    from utilities import LayerRecorder

    with LayerRecorder(lite_model.network, "layer2") as recorder, torch.no_grad():
        lite_model.network(chelsea_input)
    figure = show_feature_maps(recorder.activations["layer2"], count=12, ncols=6)
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 12
    means = recorder.activations["layer2"][0].mean((1, 2))
    assert shown[0].get_title() == f"channel {int(means.argmax())}"


def test_cam_grid_titles(lite_model, data_dir):
    result = grad_cam(lite_model, data_dir / "cat_and_coffee.png", ["Egyptian cat", "espresso", "cup"])
    figure = show_cams(data_dir / "cat_and_coffee.png", result, ncols=3)
    titles = [ax.get_title() for ax in figure.axes if ax.images]
    assert [title.split(" (")[0] for title in titles] == ["Egyptian cat", "espresso", "cup"]


def test_signed_feature_maps_share_a_scale_centred_at_zero():
    maps = np.stack([np.full((3, 3), -2.0), np.full((3, 3), 1.0), np.zeros((3, 3))])
    figure = show_feature_maps(maps, count=2, order="magnitude", signed=True)
    shown = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["channel 0", "channel 1"]
    for ax in shown:
        assert ax.images[0].norm.vmin == -2.0 and ax.images[0].norm.vmax == 2.0
        assert ax.images[0].cmap.name == "RdBu_r"
    assert len(figure.axes) == 3  # two maps and one colorbar


def test_signed_image_list_is_centred_at_zero_with_colorbars():
    figure = visualize_image_list([np.array([[-1.0, 3.0]]), np.array([[0.5, 1.0]])], signed=True, colorbar=True)
    shown = [ax for ax in figure.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert [(ax.images[0].norm.vmin, ax.images[0].norm.vmax) for ax in shown[:2]] == [(-3.0, 3.0), (-1.0, 1.0)]
    assert len(figure.axes) == 4


def _result_for_classes(indices):
    count = len(indices)
    return CamResult(
        raw=torch.rand(count, 2, 3),
        class_indices=list(indices),
        class_names=[f"class {index}" for index in indices],
        scores=torch.zeros(count),
        probabilities=torch.full((count,), 0.5),
        layer="body",
        method="Grad-CAM",
        image_size=(20, 30),
    )


def _panels(figure):
    return [ax for ax in figure.axes if ax.images]


def test_cam_grid_titles_with_own_class_names():
    image, result = np.zeros((20, 30, 3), dtype=np.uint8), _result_for_classes([2, 0])
    default = show_cams(image, result, raw_max=False)
    assert [ax.get_title() for ax in _panels(default)] == ["class 2 (50.0%)", "class 0 (50.0%)"]
    named = show_cams(image, result, class_names=["apple", "pear", "plum"], raw_max=False)
    assert [ax.get_title() for ax in _panels(named)] == ["plum (50.0%)", "apple (50.0%)"]
    with pytest.raises(ValueError, match="class_names has 2 names, but the result holds class index 2"):
        show_cams(image, result, class_names=["apple", "pear"])


def test_gallery_titles_give_each_maps_raw_maximum():
    raw = torch.stack([torch.full((2, 3), 0.043), torch.zeros(2, 3), torch.full((2, 3), 12.0)])
    raw[0, 1, 2] = 0.0  # not constant: the maximum, not the mean
    result = replace(_result_for_classes([0, 1, 2]), raw=raw, probabilities=torch.tensor([0.00047, 0.5, 0.4995]))
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    titles = [ax.get_title() for ax in _panels(show_cams(image, result))]
    assert titles == ["class 0 (0.047%)\nraw max 0.0430", "class 1 (50.0%)\nraw max 0.00", "class 2 (50.0%)\nraw max 12.0"]  # trailing zeros kept: 0.170 beside 0.304


def test_gallery_has_one_colorbar_that_says_each_map_has_its_own_scale():
    image, result = np.zeros((20, 30, 3), dtype=np.uint8), _result_for_classes([0, 1, 2])
    figure = show_cams(image, result)
    bars = [ax for ax in figure.axes if not ax.images]
    assert len(bars) == 1 and len(_panels(figure)) == 3
    bar = bars[0]
    assert bar.get_xlabel() == OWN_RANGE_LABEL and "own range" in OWN_RANGE_LABEL
    assert _bar_colours(bar).cmap.name == CAM_COLORMAP and _bar_colours(bar).get_alpha() is None
    assert (_bar_colours(bar).norm.vmin, _bar_colours(bar).norm.vmax) == (0.0, 1.0)
    assert figure.axes[:3] == _panels(figure)  # the panels first, so figure.axes[i] is panel i
    assert [ax for ax in show_cams(image, result, colorbar=False).axes if not ax.images] == []


@pytest.mark.parametrize("shape, count, ncols, size", [((20, 30), 1, None, 2.5), ((224, 448), 6, None, 3.0), ((400, 300), 5, 2, 4.5)])
def test_gallery_panels_are_drawn_size_inches_wide_without_empty_bands(shape, count, ncols, size):
    image, result = np.zeros((*shape, 3), dtype=np.uint8), _result_for_classes(range(count))
    figure = show_cams(image, result, ncols=ncols, size=size)
    figure.draw_without_rendering()
    panels = _panels(figure)
    for ax in panels:
        box = ax.get_window_extent()
        assert box.width / figure.dpi == pytest.approx(size, abs=0.01)
        assert box.height / box.width == pytest.approx(shape[0] / shape[1], rel=0.01)  # the image fills its panel
    # the content fills the figure, no band of empty space: from the suptitle (whose top is at 98 % of the
    # figure's height, where matplotlib puts it) to the colorbar's label, less a margin of 0.05 inches
    assert figure.get_tightbbox().height == pytest.approx(0.98 * figure.get_size_inches()[1] - 0.05, abs=0.05)
    (suptitle,) = [text for text in figure.findobj(Text) if text.get_text() == "Grad-CAM at body"]
    title, suptitle = panels[0].title.get_window_extent(), suptitle.get_window_extent()
    assert title.y1 < suptitle.y0  # they do not overlap
    columns = len({round(ax.get_window_extent().x0) for ax in panels})
    assert columns == (ncols or min(count, 4))  # by default as many as fit in 12 inches


def test_gallery_refuses_panels_too_narrow_to_read():
    image, result = np.zeros((20, 30, 3), dtype=np.uint8), _result_for_classes([0, 1])
    with pytest.raises(ValueError, match="too small to read; use at least 2.5"):
        show_cams(image, result, size=MIN_PANEL_INCHES - 0.1)
    assert not plt.get_fignums()


def _photo(height, width):
    """A large RGB uint8 image with a gradient, so that resampling shows."""
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    columns = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    return np.broadcast_to((rows + columns) / 2, (height, width, 3)).astype(np.uint8)


def test_display_shape_downscales_only_what_the_axes_cannot_show():
    figure, axis = plt.subplots(figsize=(4, 3), dpi=100)
    box = axis.get_window_extent()
    height, width = display_shape((3024, 4032), axis)
    assert (height, width) != (3024, 4032)
    assert abs(width / height - 4032 / 3024) < 0.01  # aspect kept
    # twice the pixels the axes have along the side that limits the image
    assert min(width / box.width, height / box.height) == pytest.approx(DISPLAY_OVERSAMPLING, rel=0.01)
    assert display_shape((224, 448), axis) == (224, 448)  # the course's images are drawn as they are
    assert display_shape((3024, 4032)) == (round(3024 * 1000 / 4032), 1000)  # show_cam's figure: 5 in at 100 dpi, x2


def test_show_cam_draws_a_phone_photo_at_display_size_in_its_own_coordinates():
    photo = _photo(3024, 4032)
    ax = show_cam(photo, torch.rand(7, 9), title="phone photo", colorbar=False)  # a colorbar shrinks the axes after
    drawn_image, drawn_map = ax.images
    assert drawn_image.get_array().shape[:2] == drawn_map.get_array().shape == display_shape((3024, 4032), ax)
    assert drawn_image.get_array().shape[0] < 3024
    # the axes keep the photo's pixel coordinates: a box drawn at (x, y) lands on the photo's (x, y)
    assert tuple(drawn_image.get_extent()) == (-0.5, 4031.5, 3023.5, -0.5)
    assert tuple(drawn_map.get_extent()) == (-0.5, 4031.5, 3023.5, -0.5)
    # downscaled with antialiasing, not by dropping pixels: the gradient's middle value survives
    middle = drawn_image.get_array()[drawn_image.get_array().shape[0] // 2, drawn_image.get_array().shape[1] // 2, 0]
    assert abs(int(middle) - int(photo[1512, 2016, 0])) <= 2


def test_show_cam_of_a_course_image_is_drawn_at_full_size(data_dir):
    ax = show_cam(data_dir / "cat_and_coffee.png", torch.rand(7, 14))
    assert ax.images[0].get_array().shape[:2] == (224, 448)
    assert ax.images[1].get_array().shape == (224, 448)


def test_show_cams_upsamples_only_what_it_shows(lite_model):
    photo = _photo(1500, 2000)
    result = grad_cam(lite_model, photo, ["Egyptian cat", "espresso"])
    figure = show_cams(photo, result)
    assert "maps" not in result.__dict__  # result.maps, at the photo's size, was never computed
    assert all(ax.images[1].get_array().shape[0] < 1500 for ax in figure.axes if ax.images)


def test_visualize_image_list_downscales_large_photos():
    figure = visualize_image_list([_photo(3000, 4000)])
    drawn = figure.axes[0].images[0]
    assert drawn.get_array().shape[0] < 3000
    assert tuple(drawn.get_extent()) == (-0.5, 3999.5, 2999.5, -0.5)


def test_overlay_of_a_large_image_makes_no_float_copy_of_it():
    import tracemalloc

    photo = _photo(1200, 1600)
    cam = torch.rand(7, 9)
    tracemalloc.start()
    try:
        overlay = overlay_cam(photo, cam)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert overlay.shape == photo.shape and overlay.dtype == np.uint8
    # the map at full size (float32), its colour indices, the result, and small bands; a float64 RGBA copy
    # of the colours alone would be 32 bytes a pixel, more than 10 times the photo
    assert peak <= 4 * photo.nbytes, f"peak {peak / photo.nbytes:.1f} x the photo"


def test_a_map_at_the_layers_resolution_is_drawn_at_its_cells_centres(lite_model, data_dir):
    from utilities import load_image, normalize_cams
    from utilities.receptive_field import place_maps

    image = load_image(data_dir / "chelsea.jpg")
    result = grad_cam(lite_model, image)
    cells = normalize_cams(result.raw)[0]
    placed = place_maps(cells[None], result.centres, image.shape[:2])[0]
    np.testing.assert_array_equal(overlay_cam(image, cells, centres=result.centres), overlay_cam(image, placed))
    # without the centres the same map is stretched evenly, which puts the bundled model's cells elsewhere
    assert not np.array_equal(overlay_cam(image, cells), overlay_cam(image, placed))
    axes = show_cam(image, cells, centres=result.centres, colorbar=False)
    drawn = axes.get_images()[1].get_array()
    assert drawn.shape[:2] == display_shape(image.shape[:2], axes)
    plt.close(axes.figure)


def test_cell_blocks_are_centred_on_the_cells_receptive_field_centres_and_hatch_the_flagged_cells():
    from utilities.plotting import show_cell_blocks
    from utilities.receptive_field import CellCentres

    # 2 x 3 cells, stride 32 on a 64 x 96 input, centres shifted 8 pixels right and down; the photo is twice the input's size
    centres = CellCentres(rows=np.array([24.0, 56.0]), columns=np.array([24.0, 56.0, 88.0]), stride=(32.0, 32.0),
                          input_size=(64, 96), layer="layer", how="derived")
    colours, hatched = np.zeros((2, 3, 3)), np.array([[True, False, False], [False, False, True]])
    figure, ax = plt.subplots()
    show_cell_blocks(ax, colours, centres, (128, 192), hatched=hatched)
    assert tuple(ax.images[0].get_extent()) == (16.0, 208.0, 144.0, 16.0)  # each block 64 pixels, centred at 2 x the centre
    assert ax.get_xlim() == (0.0, 192.0) and ax.get_ylim() == (128.0, 0.0)  # cut at the photo
    hatches = [patch for patch in ax.patches if patch.get_hatch()]
    assert sorted(patch.get_xy() for patch in hatches) == [(16.0, 16.0), (144.0, 80.0)]
    with pytest.raises(ValueError, match="2 x 3 cells"):
        show_cell_blocks(ax, np.zeros((3, 2, 3)), centres, (128, 192))
    plt.close(figure)
