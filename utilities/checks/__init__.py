"""Checks for the exercise notebooks.

Each ``check_*`` runs a student's functions on inputs of its own choosing
(other classes, images of other sizes, made-up maps and shares with known
answers, a folder with broken files) and returns a :class:`CheckResult`:
"correct", or one message per failed check that names the mistake and what to
do, without giving the solution away. Many messages come from comparing the
answer with what known mistakes produce. :func:`grade` runs the same checks on
the names a notebook defined, for the grading command, and :func:`points` in
an nbgrader autograded cell.

A student's ``NotImplementedError`` (an unfinished exercise) is let through,
so the notebook shows its hint; any other error inside a student's function
fails the checks that needed it, with a short message.

Side effects are checks too: after every call, the model (weights, batch-norm
statistics, modes, ``requires_grad``, hooks added or removed,
``model.preprocess``) and every argument a function could change in place
(tensors, arrays, lists, dicts) are compared with copies taken before it, and
put back; a tiny network given in training mode shows a function that switches
the caller's network to eval mode. Where a text asks for something to be done
without a ready-made function (exercise a: utilities' CAM methods; exercise e:
a backward pass), the check records calls of it, however it was imported.
Exercise b makes the network fail on one image and saving fail for another:
errors that are not unreadable images must reach the caller. Exercise f is
checked differentially: the student's function and a reference run on the same
generated inputs (a made-up network whose map is known, boxes at the border,
all-zero maps).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Any, Callable, Mapping

from . import exercise_a, exercise_b, exercise_c, exercise_d, exercise_e, exercise_f
from ._common import CheckResult
from .exercise_a import check_a
from .exercise_b import check_b
from .exercise_c import check_c
from .exercise_d import check_d
from .exercise_e import check_e
from .exercise_f import check_f

__all__ = ["CHECK_COUNTS", "CHECK_NAMES", "EXERCISES", "CheckResult", "check_a", "check_b", "check_c", "check_d", "check_e", "check_f", "grade", "points"]

#: Exercise letter -> its checks' names, in the order they run.
CHECK_NAMES: dict[str, tuple[str, ...]] = {
    "a": exercise_a.CHECK_NAMES,
    "b": exercise_b.CHECK_NAMES,
    "c": exercise_c.CHECK_NAMES,
    "d": exercise_d.CHECK_NAMES,
    "e": exercise_e.CHECK_NAMES,
    "f": exercise_f.CHECK_NAMES,
}
#: Number of checks per exercise.
CHECK_COUNTS = {letter: len(names) for letter, names in CHECK_NAMES.items()}

#: Exercise letter -> (check function, names the notebook must define, in the check's argument order).
EXERCISES: dict[str, tuple[Callable[..., CheckResult], tuple[str, ...]]] = {
    "a": (check_a, ("model", "cams_for_classes", "dominant_class")),
    "b": (check_b, ("model", "explain_file", "explain_folder")),
    "c": (check_c, ("model", "changed_preprocess", "new_top_class")),
    "d": (check_d, ("model", "localisation_shares", "first_localised_stage")),
    "e": (check_e, ("model", "class_activation_maps", "grad_cam_from_cams")),
    "f": (check_f, ("model", "box_reliance")),
}


def grade(exercise: str, namespace: Mapping[str, Any]) -> CheckResult:
    """Run an exercise's checks on the names a notebook defined; never raises for a student's mistake.

    Args:
        exercise: ``"a"`` .. ``"f"``.
        namespace: the notebook's globals.

    Returns:
        The result; missing names or unfinished functions score zero for the checks that need them.
    """
    check, names = EXERCISES[exercise]
    missing = [name for name in names if name not in namespace]
    total = CHECK_COUNTS[exercise]
    if missing:
        return CheckResult(exercise, total, problems=[f"the notebook does not define {', '.join(missing)}."])
    try:
        return check(*(namespace[name] for name in names), _grading=True)
    except Exception as error:  # noqa: BLE001 - the grader must go on with the next exercise
        return CheckResult(exercise, total, problems=[f"the checks could not run: {type(error).__name__}: {error}"])


def points(exercise: str, namespace: Mapping[str, Any]) -> int:
    """Run an exercise's checks for an autograded nbgrader cell: print the result, return the checks passed.

    nbgrader scores such a cell by the number it shows, but gives it zero for any output on stderr,
    so nothing here may write there: Python warnings are suppressed, and anything else written to
    ``sys.stderr`` goes to stdout, where the student and the feedback still see it.

    Args:
        exercise: ``"a"`` .. ``"f"``.
        namespace: the notebook's globals (``globals()``).

    Returns:
        The number of checks that passed, 0 to ``CHECK_COUNTS[exercise]``: the cell's points.
    """
    with warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
        warnings.simplefilter("ignore")
        result = grade(exercise, namespace)
    print(result)
    return len(result.passed)
