"""Shared code of the Grad-CAM notebook series."""

from ._imports import import_torchvision

import_torchvision()  # first, before any module below imports torchvision: see _imports.py

from .cam import (
    CAMMethod,
    CamResult,
    GradCAM,
    MapsTooLargeError,
    find_target_layer,
    grad_cam,
    normalize_cams,
    upsample_cams,
)
from .claims import ClaimError, claim
from .classes import IMAGENET_CLASS_NAMES, UnknownClassError, class_index, find_classes
from .faithfulness import (
    cascading_randomization,
    deletion_and_insertion,
    deletion_curve,
    insertion_curve,
    pointing_game,
    random_map,
    spearman_rank_correlation,
)
from .hooks import LayerRecorder, NotRecordedError, count_hooks, remove_all_hooks
from .images import DATA_DIR, ImageLoadError, load_image, to_rgb_uint8
from .guided import GuidedGradCAM, GuidedReLUs, gradient_image, guided_backprop
from .methods import CAM, CAM_METHODS, EigenCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from .models import MODEL_NAMES, LoadedModel, ModelUnavailableError, load_model
from .pooling import broadcast_pooling
from .receptive_field import CellCentres, cell_centres, centres_on_image, place_maps
from .plotting import overlay_cam, show_cam, show_cams, show_feature_maps, visualize_image_list
from .widgets import cam_picker

__all__ = [
    "CAM",
    "CAMMethod",
    "CAM_METHODS",
    "CamResult",
    "CellCentres",
    "ClaimError",
    "DATA_DIR",
    "EigenCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "GuidedGradCAM",
    "GuidedReLUs",
    "HiResCAM",
    "IMAGENET_CLASS_NAMES",
    "ImageLoadError",
    "LayerCAM",
    "LayerRecorder",
    "LoadedModel",
    "MODEL_NAMES",
    "MapsTooLargeError",
    "ModelUnavailableError",
    "NotRecordedError",
    "ScoreCAM",
    "UnknownClassError",
    "XGradCAM",
    "broadcast_pooling",
    "cam_picker",
    "cascading_randomization",
    "cell_centres",
    "centres_on_image",
    "claim",
    "class_index",
    "count_hooks",
    "deletion_and_insertion",
    "deletion_curve",
    "find_classes",
    "find_target_layer",
    "grad_cam",
    "gradient_image",
    "guided_backprop",
    "insertion_curve",
    "load_image",
    "load_model",
    "normalize_cams",
    "overlay_cam",
    "place_maps",
    "pointing_game",
    "random_map",
    "remove_all_hooks",
    "show_cam",
    "show_cams",
    "show_feature_maps",
    "spearman_rank_correlation",
    "to_rgb_uint8",
    "upsample_cams",
    "visualize_image_list",
]
