"""Shared code of the Grad-CAM notebook series."""

from .cam import CamResult, GradCAM, GradientCAM, grad_cam, normalize_cams, upsample_cams
from .classes import IMAGENET_CLASS_NAMES, UnknownClassError, class_index, find_classes
from .hooks import LayerRecorder, NotRecordedError, count_hooks, remove_all_hooks
from .images import ImageLoadError, load_image, to_rgb_uint8
from .models import LoadedModel, ModelUnavailableError, load_model
from .plotting import overlay_cam, show_cam, show_cams, show_feature_maps, visualize_image_list
from .widgets import cam_picker

__all__ = [
    "IMAGENET_CLASS_NAMES",
    "CamResult",
    "GradCAM",
    "GradientCAM",
    "ImageLoadError",
    "LayerRecorder",
    "LoadedModel",
    "ModelUnavailableError",
    "NotRecordedError",
    "UnknownClassError",
    "cam_picker",
    "class_index",
    "count_hooks",
    "find_classes",
    "grad_cam",
    "load_image",
    "load_model",
    "normalize_cams",
    "overlay_cam",
    "remove_all_hooks",
    "show_cam",
    "show_cams",
    "show_feature_maps",
    "to_rgb_uint8",
    "upsample_cams",
    "visualize_image_list",
]
