"""Grading submitted exercise notebooks: a whole class in parallel, each notebook in a fresh kernel.

- :mod:`.runner`: one notebook, in a temporary copy of its folder, then its exercise's checks.
- :mod:`.kernels`, :mod:`.factory`: fresh kernels, memory-limited, forked from a process that has
  done the imports once.
- :mod:`.cache`: results kept per notebook content, so grading again runs only what changed.
- :mod:`.reports`: the table, the gradebook CSV, a feedback file per student, JSON.
- :mod:`.cli`: ``python -m utilities.grading`` (``make grade``).
- :mod:`.nbgrader_course`: a ready nbgrader course folder, for grading on a JupyterHub instead.

**Grading runs the students' code** with your permissions. Run it in a
throw-away account, container or virtual machine.
"""

from .cli import find_submissions, grade_class, main
from .reports import Submission, score_table, write_feedback, write_gradebook
from .runner import GRADED_TOTALS, RUNS_WITHOUT_ERRORS, NotebookResult, Status, grade_notebook

__all__ = [
    "GRADED_TOTALS",
    "RUNS_WITHOUT_ERRORS",
    "NotebookResult",
    "Status",
    "Submission",
    "find_submissions",
    "grade_class",
    "grade_notebook",
    "main",
    "score_table",
    "write_feedback",
    "write_gradebook",
]
