import re

import matplotlib.pyplot as plt
import pytest

from utilities import grad_cam
from utilities.plotting import CAM_COLORMAP, OWN_RANGE_LABEL
from utilities.widgets import cam_picker, noninteractive


@pytest.mark.parametrize("value, expected", [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)])
def test_noninteractive_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("GRADCAM_NONINTERACTIVE", raising=False)
    else:
        monkeypatch.setenv("GRADCAM_NONINTERACTIVE", value)
    assert noninteractive() is expected


def test_static_picker_draws_the_top_class_at_the_last_layer(lite_model, data_dir):
    axes = cam_picker(lite_model, data_dir / "coffee.jpg", static=True)
    first, second = axes.get_title().split("\n")
    assert first.startswith("espresso") and first.endswith("at layer4")
    raw_max = float(grad_cam(lite_model, data_dir / "coffee.jpg", "espresso").raw.max())
    assert second == f"raw max {raw_max:.2g}"  # the map is shown scaled to its own range; this is its size
    assert axes.images[1].cmap.name == CAM_COLORMAP
    assert axes.figure.axes[1].get_ylabel() == OWN_RANGE_LABEL  # the colorbar says how the map is scaled
    plt.close("all")


def test_static_picker_takes_another_colormap(lite_model, data_dir):
    axes = cam_picker(lite_model, data_dir / "coffee.jpg", static=True, cmap="jet")
    assert axes.images[1].cmap.name == "jet"
    plt.close("all")


def test_widget_picker_builds_controls(lite_model, data_dir):
    box = cam_picker(lite_model, data_dir / "chelsea.jpg", class_name="tabby", static=False)
    class_box, layer_box, alpha_slider = box.children[0].children
    assert (class_box.value, layer_box.value, alpha_slider.value) == ("tabby", "layer4", 0.5)
    caption = box.children[1]
    assert re.fullmatch(r"Grad-CAM: tabby \([0-9.]+%\) at layer4, raw max [0-9.e+-]+, opacity 0\.50", caption.value)
    layer_box.value = "layer3"
    alpha_slider.value = 0.25
    assert re.fullmatch(r"Grad-CAM: tabby \([0-9.]+%\) at layer3, raw max [0-9.e+-]+, opacity 0\.25", caption.value)
    plt.close("all")
