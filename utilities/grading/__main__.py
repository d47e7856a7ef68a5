"""``python -m utilities.grading``: the grading command (see :mod:`utilities.grading.cli`)."""

import sys

from .cli import main

sys.exit(main())
