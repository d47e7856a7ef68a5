"""Run one submitted notebook in a fresh kernel, in a temporary copy of its folder, and grade what it defined."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from ..checks import CHECK_COUNTS, EXERCISES
from .kernels import KernelFactory, limited_kernel_manager
from .nbgrader_course import is_autograded

__all__ = [
    "ANSWER_PLACEHOLDER",
    "GRADED_TOTALS",
    "OUTPUT_LIMIT",
    "RESULT_MIME",
    "RUNS_WITHOUT_ERRORS",
    "Status",
    "NotebookResult",
    "cell_label",
    "grade_notebook",
    "written_answers",
]

#: The name of the extra point every graded exercise has.
RUNS_WITHOUT_ERRORS = "the notebook's cells run without errors"
#: Points per exercise when grading: its checks, and one for a notebook that runs without errors.
GRADED_TOTALS = {exercise: count + 1 for exercise, count in CHECK_COUNTS.items()}
#: Characters of a notebook's printed output the grader keeps (for the feedback); the rest is counted, not stored.
OUTPUT_LIMIT = 20_000
_TRACEBACK_LIMIT = 4_000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: The grader's own MIME type: the result travels as display data, which a notebook that replaced
#: ``sys.stdout`` (to write a log, say) cannot swallow.
RESULT_MIME = "application/x-gradcam-grading+json"
GRADING_CELL = """\
from IPython.display import publish_display_data as _publish
from utilities.checks import grade as _grade
_grading_result = _grade({exercise!r}, globals())
_publish({{{mime!r}: {{"passed": _grading_result.passed, "problems": _grading_result.problems}}}})
"""
_MEMORY_ERRORS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "DefaultCPUAllocator")


class Status:
    """What happened to a notebook; every status but GRADED and NOT_SUBMITTED means it could not run to the end."""

    GRADED = "graded"
    NOT_SUBMITTED = "not submitted"
    #: Submitted as handed out: every function still raises the template's NotImplementedError. Zero points, one line.
    NOT_ATTEMPTED = "not attempted"
    UNREADABLE = "unreadable"
    TIMED_OUT = "timed out"
    KERNEL_DIED = "kernel died"
    NOT_RUN = "could not run"
    CHECKS_MISSING = "checks did not run"

    #: Statuses that ask for the teacher's attention (the command's exit code is 1 if any occurs).
    FAILURES = frozenset({UNREADABLE, TIMED_OUT, KERNEL_DIED, NOT_RUN, CHECKS_MISSING})


@dataclass
class NotebookResult:
    """One exercise of one submission, graded.

    Attributes:
        exercise: the exercise's letter.
        notebook: the notebook's file name ("" if none was submitted).
        status: a :class:`Status` value.
        passed: names of the checks passed, and :data:`RUNS_WITHOUT_ERRORS` if earned.
        problems: one message per lost point, in the checks' words, or why nothing could be graded.
        failing_cells: each cell that raised: its number, first line, error, and a shortened traceback.
        output: the start of what the notebook's cells printed (at most :data:`OUTPUT_LIMIT` characters).
        output_size: characters the cells printed in all.
        memory_error: whether a cell ran out of the kernel's memory limit.
        seconds: time to run and grade it.
        cached: whether the result came from an earlier run of the same notebook.
        written_answers: the student's text in each written-answer cell ("To think about"); "" where they left
            the template's placeholder.
    """

    exercise: str
    notebook: str
    status: str
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failing_cells: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    output_size: int = 0
    memory_error: bool = False
    seconds: float = 0.0
    cached: bool = False
    written_answers: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Points available: the exercise's checks and one for running without errors."""
        return GRADED_TOTALS[self.exercise]

    @property
    def points(self) -> int:
        """Points earned."""
        return len(self.passed)

    @property
    def output_truncated(self) -> bool:
        """Whether the notebook printed more than the grader kept."""
        return self.output_size > len(self.output)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the cache and ``--json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NotebookResult":
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


class _GradingClient(NotebookClient):
    """nbclient's executor, keeping at most :data:`OUTPUT_LIMIT` characters of the students' cells' output.

    A notebook that prints 100 MB would otherwise be held in the grader's memory, and in the feedback, whole.
    Images and other rich outputs are dropped: grading needs the text and the errors only.
    """

    def __init__(self, notebook: nbformat.NotebookNode, student_cells: int, **kwargs: Any) -> None:
        super().__init__(notebook, **kwargs)
        self.student_cells = student_cells
        self.kept: list[str] = []
        self.kept_size = 0
        self.output_size = 0
        self.running_cell: int | None = None  # index of the cell being run: a kernel death or a time-out names it

    async def async_execute_cell(self, cell: nbformat.NotebookNode, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        self.running_cell = cell_index
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
        if cell_index >= self.student_cells:
            return super().output(outs, msg, display_id, cell_index)  # the grader's own cell, kept whole
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            return super().output(outs, msg, display_id, cell_index)  # tracebacks are shortened later
        text = content.get("text", "") if kind == "stream" else content.get("data", {}).get("text/plain", "")
        self.output_size += len(text)
        room = OUTPUT_LIMIT - self.kept_size
        if room > 0 and text:
            self.kept.append(text[:room])
            self.kept_size += min(len(text), room)
        return None


def _first_line(source: str) -> str:
    line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


#: A frame of an IPython traceback outside the student's cells: a file of a library, the course's or the teacher's.
_LIBRARY_FRAME = re.compile(r"^File [^\n]*", re.MULTILINE)


def _students_frames(traceback: str) -> str:
    """The traceback with only the student's own cells' frames, and the error's last line.

    Frames inside ``utilities``, torch or any other file (the teacher's paths, the checker's source) are left out:
    they do not help the student and would show the grader's folders. A note says how many went.
    """
    blocks = re.split(r"\n\s*\n", traceback.strip())
    kept, left_out = [], 0
    for block in blocks:
        if block.lstrip().startswith("File ") or "[... skipping hidden" in block:
            left_out += 1
        else:
            kept.append(block)
    if left_out:
        kept.insert(len(kept) - 1 if len(kept) > 1 else len(kept), f"[{left_out} frame(s) inside the course's library or torch left out]")
    return "\n\n".join(kept)


def _failing_cells(cells: list) -> list[dict[str, Any]]:
    """Each code cell with an error output: number (1-based, among all cells), first line, error, traceback."""
    failing = []
    for number, cell in enumerate(cells, start=1):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                error = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip().rstrip(":")
                traceback = _students_frames(_ANSI.sub("", "\n".join(output.get("traceback", []))))
                if len(traceback) > _TRACEBACK_LIMIT:
                    traceback = "...\n" + traceback[-_TRACEBACK_LIMIT:]  # the end names the error
                failing.append({"cell": number, "first_line": _first_line(cell.source), "run_as": cell.get("execution_count"),
                                "error": error[:300], "traceback": traceback})
                break
    return failing


#: What a written-answer cell holds until the student writes there.
ANSWER_PLACEHOLDER = "*Write your answer here.*"


def written_answers(cells: list) -> list[str]:
    """The student's text in each written-answer cell (nbgrader: a Markdown solution cell); "" for the placeholder."""
    answers = []
    for cell in cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            text = cell.source.strip()
            if text.startswith("**To think about:**"):  # the question, as handed out: not the student's words
                text = text.split("\n\n", 1)[1].strip() if "\n\n" in text else ""
            answers.append("" if text in ("", ANSWER_PLACEHOLDER) else text)
    return answers


def _running(client: _GradingClient, student_cells: int) -> str:
    """'cell 4 (`first line`)': the cell that was running, numbered as in the student's notebook."""
    index = client.running_cell
    if index is None:
        return "the first cell"
    if index >= student_cells:
        return "the grader's checks"
    return f"cell {index + 1} (`{_first_line(client.nb.cells[index].source)}`)"


def _errors_message(failing: list[dict[str, Any]]) -> str:
    first = failing[0]
    error = first["error"] if len(first["error"]) <= 200 else first["error"][:197] + "..."
    others = len(failing) - 1
    later = f" ({others} later cell{'s' if others > 1 else ''} failed too)" if others else ""
    return f"cell {cell_label(first)} raised {error}{later}"


def cell_label(failing: dict[str, Any]) -> str:
    """'3 (`first line`, In [2] in the traceback)', what follows the word "cell": the place among all cells as the
    notebook shows them, with the execution count that the traceback's ``Cell In[2]`` names (the two differ wherever
    Markdown cells come first)."""
    run_as = f", In [{failing['run_as']}] in the traceback" if failing.get("run_as") is not None else ""
    return f"{failing['cell']} (`{failing['first_line']}`{run_as})"


def _is_check_cell(cell: nbformat.NotebookNode, exercise: str) -> bool:
    """Whether ``cell`` is the exercise's check cell as handed out (``check_a(model, cams_for_classes, dominant_class)``).

    A cell the student changed is run as written: it may hold code of theirs.
    """
    names = EXERCISES[exercise][1] if exercise in EXERCISES else None
    return names is not None and cell.cell_type == "code" and cell.source.strip() == f"check_{exercise}({', '.join(names)})"


def grade_notebook(
    path: Path,
    exercise: str,
    timeout: float = 300,
    *,
    factory: KernelFactory | None = None,
    memory_limit: int | None = None,
    threads: int = 1,
    environment: dict[str, str] | None = None,
) -> NotebookResult:
    """Run one notebook in a fresh kernel, in a temporary copy of its folder, then its exercise's checks.

    Args:
        path: the notebook.
        exercise: its letter.
        timeout: seconds any one cell may run.
        factory: fork the kernel from this factory; ``None`` starts a new Python process.
        memory_limit: bytes of data the kernel may allocate (``None``: no limit).
        threads: threads torch may use in the kernel.
        environment: variables set in the kernel besides the grader's own (e.g. ``GRADCAM_MODEL``).

    Returns:
        The result; zero points with the reason if the notebook cannot be read or run to the end.
    """
    start = time.perf_counter()

    def finish(result: NotebookResult) -> NotebookResult:
        result.seconds = round(time.perf_counter() - start, 2)
        return result

    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - a broken file is the student's problem, not the grader's
        return finish(NotebookResult(exercise, path.name, Status.UNREADABLE, problems=[f"cannot read the notebook: {error}"]))
    # nbgrader's test cell and the handed-out check cell run the same checks as the grading cell: they run once
    notebook.cells = [cell for cell in notebook.cells if not is_autograded(cell) and not _is_check_cell(cell, exercise)]
    student_cells = len(notebook.cells)
    notebook.cells.append(nbformat.v4.new_code_cell(GRADING_CELL.format(exercise=exercise, mime=RESULT_MIME)))
    with tempfile.TemporaryDirectory(prefix="grading-") as scratch:
        # The notebook runs next to a copy of its folder: what it writes or deletes there is thrown away.
        # Links are copied as links: a student's zipped .venv may hold dangling ones, or loops.
        folder = Path(scratch) / "submission"
        try:
            shutil.copytree(path.parent, folder, symlinks=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        except (OSError, shutil.Error) as error:
            reason = f"could not copy the submission's folder to run it: {str(error)[:300]}"
            return finish(NotebookResult(exercise, path.name, Status.NOT_RUN, problems=[reason]))
        client = _GradingClient(
            notebook, student_cells, km=limited_kernel_manager(factory, memory_limit), timeout=timeout,
            allow_errors=True, shutdown_kernel="immediate", resources={"metadata": {"path": str(folder)}},
        )
        kernel_environment = {**os.environ, **(environment or {}), "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
        status, reason = Status.GRADED, ""
        try:
            client.execute(env=kernel_environment, cleanup_kc=True)  # a kernel manager given to nbclient is not shut down otherwise
        except CellTimeoutError:
            status, reason = Status.TIMED_OUT, f"{_running(client, student_cells)} ran longer than {timeout:g} s"
        except DeadKernelError:
            status, reason = Status.KERNEL_DIED, (
                f"the notebook's kernel died while {_running(client, student_cells)} was running "
                "(it crashed, ran out of memory, was killed, or exited)"
            )
        except Exception as error:  # noqa: BLE001 - e.g. a kernel that never starts
            status, reason = Status.NOT_RUN, f"the notebook could not be run: {type(error).__name__}: {error}"
    result = NotebookResult(exercise, path.name, status, output="".join(client.kept), output_size=client.output_size)
    result.written_answers = written_answers(notebook.cells[:student_cells])
    result.failing_cells = _failing_cells(notebook.cells[:student_cells])
    result.memory_error = any(any(mark in cell["error"] for mark in _MEMORY_ERRORS) for cell in result.failing_cells)
    if status != Status.GRADED:
        result.problems.append(reason)
        return finish(result)
    for output in notebook.cells[-1].get("outputs", []):
        data = output.get("data", {}).get(RESULT_MIME)
        if isinstance(data, dict):
            result.passed, result.problems = list(data["passed"]), list(data["problems"])
            if not result.passed and result.failing_cells and all(
                cell["error"].startswith("NotImplementedError") for cell in result.failing_cells
            ):
                # The template's own output is dropped, and its size with it: else the result reads as output cut.
                result.status, result.failing_cells, result.output, result.output_size = Status.NOT_ATTEMPTED, [], "", 0
                result.problems = ["not attempted: every function still raises the template's NotImplementedError"]
                return finish(result)
            if result.failing_cells:
                result.problems.append(_errors_message(result.failing_cells))
            elif any(problem.startswith("the notebook does not define") for problem in result.problems):
                # An empty notebook runs without errors too; the point is for a working answer.
                result.problems.append("no point for running without errors: the notebook does not do the exercise")
            else:
                result.passed.append(RUNS_WITHOUT_ERRORS)
            return finish(result)
    result.status = Status.CHECKS_MISSING
    result.problems.append(
        "the checks did not run: the grader's last cell failed (the notebook may have replaced or deleted what the "
        "checks need, e.g. the utilities package or IPython's display)"
    )
    return finish(result)
