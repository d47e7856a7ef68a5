"""``python -m utilities.grading.nbgrader_course``: the command lives here, apart from the package, so that running it
does not import the module twice (Python's RuntimeWarning for a module found in sys.modules before it runs)."""

import sys

from . import main

sys.exit(main())
