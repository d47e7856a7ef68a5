"""Test-wide settings; applies to the unit tests and to the notebooks run by nbval."""

import os

# Tests always use the bundled offline model, so results are the same everywhere;
# the kernels nbval starts inherit this.
os.environ["GRADCAM_MODEL"] = "efficientnet_lite0"
# Nobody watches a test run: pickers draw static figures, progress bars stay quiet.
os.environ["GRADCAM_NONINTERACTIVE"] = "1"
# OpenMP threads that spin while they wait make torch many times slower when other
# work shares the cores (measured: a forward pass 0.75 s instead of 0.23 s under a
# load of 6 on 2 cores); waiting threads that sleep keep both cores when the
# machine is quiet. torch reads this when it starts, here and in nbval's kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
