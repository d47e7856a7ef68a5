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


@pytest.fixture(scope="session")
def kernel_factory():
    """One kernel factory for every grading test (it takes a few seconds to import torch and the course)."""
    import os

    from utilities.grading.kernels import KernelFactory, can_fork_kernels

    if not can_fork_kernels():
        pytest.skip("kernels are forked only on Linux")
    with KernelFactory({**os.environ, "OMP_NUM_THREADS": "1"}) as factory:
        yield factory


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook with one code cell per source, for the python3 kernel."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path
