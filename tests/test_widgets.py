import matplotlib.pyplot as plt
import pytest

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
    assert axes.get_title().startswith("espresso") and axes.get_title().endswith("at layer4")
    plt.close("all")


def test_widget_picker_builds_controls(lite_model, data_dir):
    box = cam_picker(lite_model, data_dir / "chelsea.jpg", class_name="tabby", static=False)
    class_box, layer_box, alpha_slider = box.children[0].children
    assert (class_box.value, layer_box.value, alpha_slider.value) == ("tabby", "layer4", 0.5)
    caption = box.children[1]
    assert caption.value.startswith("Grad-CAM: tabby (") and caption.value.endswith("at layer4, opacity 0.50")
    layer_box.value = "layer3"
    alpha_slider.value = 0.25
    assert caption.value.startswith("Grad-CAM: tabby (") and caption.value.endswith("at layer3, opacity 0.25")
    plt.close("all")
