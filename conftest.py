"""Test-wide settings; applies to the unit tests and to the notebooks run by nbval."""

import os

# Tests always use the bundled offline model, so results are the same everywhere;
# the kernels nbval starts inherit this.
os.environ["GRADCAM_MODEL"] = "efficientnet_lite0"
# No widget front end renders during tests: interactive pickers draw static figures.
os.environ["GRADCAM_STATIC_FIGURES"] = "1"
