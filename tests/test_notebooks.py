"""Every notebook runs on ResNet50's architecture; the core series runs twice in one kernel with the same results.

nbval (run by the same test command) executes each notebook once, on the
bundled model, against its committed outputs. This file runs each notebook
again on torchvision's ResNet50 (seeded random weights): once, or, for the core
series, twice in one kernel, as a student re-running everything would, comparing
the checked outputs of both runs. One kernel serves both purposes, so each
notebook costs two kernels in the test command, not three.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# The core series runs twice on ResNet50; 07 onwards (Score-CAM alone is a minute) once.
CORE_SERIES = [path for path in NOTEBOOKS if path.name[:2] <= "06"]
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def _text_outputs(cell) -> list[str]:
    # A kernel may split one print's output into several stream messages, at
    # different places on each run; compare the joined text per stream.
    streams: dict[str, str] = {}
    for output in cell.outputs:
        if output.output_type == "stream":
            streams[output.name] = streams.get(output.name, "") + output.get("text", "")
    return [streams[name] for name in sorted(streams)]


def _run_all(client: NotebookClient, notebook) -> list[list[str]]:
    checked = []
    for index, cell in enumerate(list(notebook.cells)):
        if cell.cell_type != "code":
            continue
        client.execute_cell(cell, index)
        if cell.source.startswith(CHECK_MARK):
            checked.append(_text_outputs(cell))
    return checked


def _client(notebook) -> NotebookClient:
    # Immediate shutdown: a graceful one of a kernel that has loaded torch takes about 2 s more.
    return NotebookClient(
        notebook, kernel_name="python3", timeout=600, shutdown_kernel="immediate", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )


def _probe(client: NotebookClient, notebook, source: str) -> list[str]:
    """Run one more cell in the notebook's kernel and return what it printed."""
    probe = nbformat.v4.new_code_cell(source)
    notebook.cells.append(probe)
    client.execute_cell(probe, len(notebook.cells) - 1)
    return _text_outputs(probe)


def test_every_notebook_has_checked_cells():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert any(c.cell_type == "code" and c.source.startswith(CHECK_MARK) for c in notebook.cells), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_runs_on_resnet50s_architecture(path, monkeypatch):
    """The series on torchvision's ResNet50 (seeded random weights, no download); the core series twice.

    Every cell must run (shapes, strides, hooks and code paths are ResNet50's
    own); only the lessons' claims about trained behaviour are skipped, which
    ``utilities.claim`` does for a model with ``pretrained == False``. A notebook
    of the core series runs twice in the same kernel and must print the same
    checked outputs both times (no state left over from the first run changes
    the second) and leave no hook behind.
    """
    notebook = nbformat.read(path, as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells)
    if "load_model(" not in sources:
        # A lesson on a network it trains itself (10, 10b) loads no course model, so GRADCAM_MODEL does not change it:
        # this run would repeat nbval's, cell for cell (its methods' hooks are tested in test_methods and test_hooks).
        pytest.skip("loads no course model, so it runs the same network as under nbval")
    monkeypatch.setenv("GRADCAM_MODEL", "resnet50_untrained")  # the kernel inherits the environment
    client = _client(notebook)
    with client.setup_kernel():
        first = _run_all(client, notebook)  # raises CellExecutionError, naming the cell, on any error
        if path in CORE_SERIES:
            second = _run_all(client, notebook)
            assert first == second, "a second run in the same kernel printed other checked outputs"
        model_and_hooks = _probe(
            client, notebook, "from utilities import count_hooks\nprint(model.name, count_hooks(model.network) if 'model' in dir() else 0)"
        )
    # A notebook about another architecture (8d: a ViT with random weights) names its model; the rest run ResNet50.
    named = set(re.findall(r'load_model\("(\w+_untrained)"\)', sources))
    expected = named.pop() if len(named) == 1 else "resnet50_untrained"
    assert model_and_hooks == [f"{expected} 0\n"], f"the notebook did not run {expected}, or left hooks on it"
