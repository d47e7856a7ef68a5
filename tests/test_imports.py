"""utilities._imports: torchvision without an eager torch._dynamo, and nothing else changed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_import_utilities_leaves_the_compiler_unloaded_and_restores_torch():
    out = _run(
        """
        import sys
        import torch
        real_disable = torch.compiler.disable
        import utilities, torchvision
        from torchvision.transforms import v2
        print("dynamo" if "torch._dynamo" in sys.modules else "no dynamo")
        print("restored" if torch.compiler.disable is real_disable else "patched")
        print("no stand-in" if "_dynamo" not in torch.__dict__ else "stand-in left")
        """
    )
    assert out.split() == ["no", "dynamo", "restored", "no", "stand-in"], out


def test_torchvision_works_and_the_compiler_loads_on_first_use():
    out = _run(
        """
        import sys
        import numpy as np
        import torch
        import utilities
        import torchvision
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        # RoI align, whose module imported the deferred helper
        features = torch.arange(64.0).reshape(1, 1, 8, 8)
        print(torchvision.ops.roi_align(features, torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]]), 2).flatten().tolist())
        # a v2 transform, which calls the function tv_tensors marks as not to compile
        image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 30, 40), dtype=np.uint8))
        eager = v2.Resize(12, antialias=True)(tv_tensors.Image(image))
        print(type(eager).__name__, "dynamo" in " ".join(sys.modules) and "torch._dynamo" in sys.modules)
        # torch.compile still works, through the real torch._dynamo
        compiled = torch.compile(lambda x: v2.functional.resize(x, [12], antialias=True), backend="eager")
        print(torch.equal(compiled(tv_tensors.Image(image)).as_subclass(torch.Tensor), eager.as_subclass(torch.Tensor)))
        print(type(torch._dynamo).__name__, hasattr(torch._dynamo, "optimize"))
        """
    )
    lines = out.splitlines()
    assert lines[0] == "[9.0, 11.0, 25.0, 27.0]"  # the same values as with the compiler loaded eagerly
    assert lines[1] == "Image False"
    assert lines[2] == "True"
    assert lines[3] == "module True"


def test_torchvision_imported_first_is_left_as_it_is():
    out = _run(
        """
        import sys
        import torchvision
        import utilities
        print("torch._dynamo" in sys.modules)
        """
    )
    assert out.strip() == "True"


@pytest.mark.parametrize(
    "module", ["utilities.explain", "utilities.grading", "utilities.grading.nbgrader_course", "utilities.grading.mutation"]
)
def test_each_command_prints_its_help_and_no_warning_of_the_courses_own(module, tmp_path):
    """Run from another folder, as a teacher would: no RuntimeWarning from runpy, no DeprecationWarning."""
    completed = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--help"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0 and completed.stderr == "", completed.stderr[-2000:]
    assert completed.stdout.startswith("usage:")
