"""Shared fixtures: the bundled model, a seeded random ResNet50, the data folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from utilities import LoadedModel, load_model  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def lite_model() -> LoadedModel:
    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def random_resnet50() -> torch.nn.Module:
    """torchvision's ResNet50 with seeded random weights, unmodified, in eval mode."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    return resnet50().eval()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def chelsea_input(lite_model: LoadedModel) -> torch.Tensor:
    return lite_model.to_input(DATA_DIR / "chelsea.jpg")
