"""Test-wide settings; applies to the unit tests and to the notebooks run by nbval."""

import os

# Tests always use the bundled offline model, so results are the same everywhere;
# the kernels nbval starts inherit this.
os.environ["GRADCAM_MODEL"] = "efficientnet_lite0"
# Nobody watches a test run: pickers draw static figures, progress bars stay quiet.
os.environ["GRADCAM_NONINTERACTIVE"] = "1"
