"""An interactive CAM picker for JupyterLab, with a static fallback.

A kernel cannot tell whether a front end will render widgets, so the fallback
is chosen explicitly: set ``GRADCAM_NONINTERACTIVE=1`` (the tests and
``scripts/execute_notebooks.py`` do) or pass ``static=True``, and the picker
draws an ordinary figure for its initial settings instead.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib.pyplot as plt

from .cam import CamResult, grad_cam
from .images import ImageLike, load_image
from .models import LoadedModel
from .plotting import CAM_COLORMAP, OWN_RANGE_LABEL, display_shape, format_probability, show_cam

__all__ = ["NONINTERACTIVE_VARIABLE", "cam_picker", "noninteractive"]

#: Environment variable for runs without a person watching (tests, batch
#: execution): pickers draw static figures and progress bars stay quiet.
NONINTERACTIVE_VARIABLE = "GRADCAM_NONINTERACTIVE"


def noninteractive() -> bool:
    """Whether ``GRADCAM_NONINTERACTIVE`` is set to a non-empty value other than ``0``."""
    return os.environ.get(NONINTERACTIVE_VARIABLE, "") not in ("", "0")


def cam_picker(
    model: LoadedModel,
    image: ImageLike,
    class_name: str | None = None,
    layers: Sequence[str] = ("layer1", "layer2", "layer3", "layer4"),
    alpha: float = 0.5,
    static: bool | None = None,
    cmap: str = CAM_COLORMAP,
):
    """Pick a class by name, a layer and an opacity, and see the Grad-CAM.

    The class box accepts any of the model's class names (with completion);
    maps are computed on demand and kept, so going back to a choice is instant.
    Each map is scaled by its own minimum and maximum (its colorbar says so),
    so the title gives its raw maximum, before scaling, for comparisons.

    Args:
        model: the model.
        image: the image to explain.
        class_name: initial class; default: the top predicted class.
        layers: the layers to choose from; the last is the initial one.
        alpha: initial opacity of the map.
        static: draw one static figure instead of widgets; default: whether
            :func:`noninteractive`.
        cmap: matplotlib colormap name (default :data:`~utilities.plotting.CAM_COLORMAP`).

    Returns:
        The widget box, or the static figure's axes.
    """
    pixels = load_image(image)
    initial_class = class_name or model.predict(pixels, top_k=1)[0][0]
    initial_layer = layers[-1]
    if static is None:
        static = noninteractive()
    cache: dict[tuple[str, str], CamResult] = {}

    def cam_of(name: str, layer: str) -> CamResult:
        if (name, layer) not in cache:
            # maps at the size the figure shows (a phone photo's full size would cost 48 MB a map)
            cache[(name, layer)] = grad_cam(model, pixels, name, layer=layer, output_size=display_shape(pixels.shape[:2]))
        return cache[(name, layer)]

    def title_of(name: str, layer: str) -> tuple[str, str]:
        """("class (probability) at layer", "raw max ...") of a choice."""
        result = cam_of(name, layer)
        return (
            f"{result.class_names[0]} ({format_probability(result.probabilities[0])}) at {layer}",
            f"raw max {float(result.raw[0].max()):.2g}",
        )

    def draw(name: str, layer: str, opacity: float):
        title = "\n".join(title_of(name, layer))
        maps = cam_of(name, layer).maps
        return show_cam(pixels, maps[0], alpha=opacity, cmap=cmap, title=title, colorbar_label=OWN_RANGE_LABEL)

    if static:
        axes = draw(initial_class, initial_layer, alpha)
        plt.show()
        return axes

    import ipywidgets as widgets
    from IPython.display import display

    class_box = widgets.Combobox(
        value=initial_class, options=list(model.class_names), ensure_option=True, description="class"
    )
    layer_box = widgets.Dropdown(options=list(layers), value=initial_layer, description="layer")
    alpha_slider = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha")
    # The figure's title as text too: for screen readers, and for tests that cannot read a PNG.
    caption = widgets.Label()
    output = widgets.Output()

    def update(_change=None) -> None:
        if class_box.value not in model.class_names:
            return  # still typing
        caption.value = f"Grad-CAM: {', '.join(title_of(class_box.value, layer_box.value))}, opacity {alpha_slider.value:.2f}"
        with output:
            output.clear_output(wait=True)
            draw(class_box.value, layer_box.value, alpha_slider.value)
            plt.show()

    for control in (class_box, layer_box, alpha_slider):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([class_box, layer_box, alpha_slider]), caption, output])
    display(box)
    return box
