"""What grading writes: the table on the terminal, a gradebook CSV, a feedback file per student, JSON."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checks
from ..checks import EXERCISES
from .runner import GRADED_TOTALS, RUNS_WITHOUT_ERRORS, NotebookResult, Status, cell_label

__all__ = [
    "CHECK_NAMES",
    "Submission",
    "feedback_markdown",
    "gradebook_rows",
    "notes",
    "score_table",
    "weighting",
    "write_feedback",
    "write_gradebook",
    "written_answers_markdown",
]

#: Exercise letter -> its checks' names, then the point for running without errors: the gradebook's columns.
CHECK_NAMES: dict[str, tuple[str, ...]] = {letter: (*names, RUNS_WITHOUT_ERRORS) for letter, names in checks.CHECK_NAMES.items()}


@dataclass
class Submission:
    """One student's results, exercise letter -> result."""

    name: str
    results: dict[str, NotebookResult]

    @property
    def points(self) -> int:
        """Points earned in all exercises."""
        return sum(result.points for result in self.results.values())

    @property
    def total(self) -> int:
        """Points available in all exercises."""
        return sum(GRADED_TOTALS[letter] for letter in self.results)


def _size(characters: int) -> str:
    return f"{characters / 1e6:.1f} MB" if characters >= 1e6 else f"{characters / 1e3:.0f} kB"


def notes(result: NotebookResult) -> list[str]:
    """What happened besides the checks: out of memory, output cut, a time or kernel problem."""
    found = []
    if result.memory_error:
        found.append("a cell ran out of the memory limit")
    if result.output_truncated:
        found.append(f"printed {_size(result.output_size)} of output; the feedback keeps the first {_size(len(result.output))}")
    return found


def _status(result: NotebookResult) -> str:
    return "; ".join([result.status, *notes(result)])


def score_table(submissions: list[Submission]) -> str:
    """A Markdown table, one row per submission, one column per exercise, then the reasons for lost points."""
    letters = list(EXERCISES)
    width = max([len("submission")] + [len(s.name) for s in submissions])
    lines = [
        f"| {'submission':<{width}} | " + " | ".join(f"{letter:>5}" for letter in letters) + " | total |",
        f"|{'-' * (width + 2)}|" + "|".join("-" * 7 for _ in letters) + "|-------|",
    ]
    for submission in submissions:
        cells = [f"{submission.results[l].points}/{submission.results[l].total}" for l in letters]
        lines.append(f"| {submission.name:<{width}} | " + " | ".join(f"{c:>5}" for c in cells) + f" | {100 * submission.points / submission.total:4.0f}% |")
    remarks = [
        f"- {submission.name}, exercise {letter}: {problem}"
        for submission in submissions
        for letter, result in submission.results.items()
        for problem in list(dict.fromkeys([*result.problems, *notes(result)]))
    ]
    return "\n".join(lines + ([""] + remarks if remarks else []))


def gradebook_rows(submissions: list[Submission]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): one row per student; per exercise a 1/0 column per check, its points and status; then totals."""
    columns = ["student"]
    for letter in EXERCISES:
        columns += [f"{letter}: {name}" for name in CHECK_NAMES[letter]] + [f"{letter} points", f"{letter} status"]
    columns += ["points", "max points", "percent"]
    rows = []
    for submission in submissions:
        row: dict[str, Any] = {"student": submission.name}
        for letter, result in submission.results.items():
            row.update({f"{letter}: {name}": int(name in result.passed) for name in CHECK_NAMES[letter]})
            row[f"{letter} points"] = result.points
            row[f"{letter} status"] = _status(result)
        row.update({"points": submission.points, "max points": submission.total, "percent": round(100 * submission.points / submission.total, 1)})
        rows.append(row)
    return columns, rows


def write_gradebook(submissions: list[Submission], path: Path) -> Path:
    """Write the gradebook CSV (UTF-8 with a byte-order mark, which spreadsheet programs read as UTF-8)."""
    columns, rows = gradebook_rows(submissions)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _fenced(text: str, language: str = "") -> str:
    """A Markdown code block that the text's own backticks cannot close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def weighting() -> str:
    """How the total is made, in one sentence (exercises have different numbers of checks)."""
    points = ", ".join(f"{letter} {total}" for letter, total in GRADED_TOTALS.items())
    return (f"Each exercise gives one point per check it passes and one for a notebook whose cells all run without an "
            f"error ({points}); the total adds them, so an exercise with more checks weighs more.")


def feedback_markdown(submission: Submission) -> str:
    """A student's feedback: per exercise the points, each check by name (passed or not yet), then the reasons once,
    the failing cells (the student's own frames only) and the written answers."""
    percent = 100 * submission.points / submission.total
    lines = [f"# Feedback: {submission.name}", "", f"**{submission.points} of {submission.total} points ({percent:.0f}%).** "
             + weighting(), ""]
    for letter, result in submission.results.items():
        title = f"## Exercise {letter}: {result.points}/{result.total} points"
        lines += [title + (f" (`{result.notebook}`)" if result.notebook else ""), ""]
        if result.status in (Status.NOT_SUBMITTED, Status.NOT_ATTEMPTED):
            detail = "" if result.status == Status.NOT_SUBMITTED else ": every function still raises the template's NotImplementedError"
            lines += [f"*{result.status.capitalize()}{detail}.*", ""]
            continue
        if result.status != Status.GRADED:
            lines += [f"*{result.status.capitalize()}.*", ""]
        lines += [f"- {'passed' if name in result.passed else '**not yet**'}: {name}" for name in CHECK_NAMES[letter]]
        reasons = list(dict.fromkeys(result.problems))  # a message shared by several checks is said once
        if reasons:
            lines += ["", "Why not yet:", ""] + [f"- {reason}" for reason in reasons]
        lines += [f"- note: {note}" for note in notes(result)]
        for cell in result.failing_cells:
            lines += ["", f"Cell {cell_label(cell)} raised `{cell['error']}`:", "", _fenced(cell["traceback"])]
        if result.output and (result.status != Status.GRADED or result.output_truncated):
            shown = f"the first {_size(len(result.output))} of {_size(result.output_size)}" if result.output_truncated else "all of it"
            lines += ["", f"What the notebook printed ({shown}):", "", _fenced(result.output)]
        for answer in result.written_answers:
            lines += ["", "Your written answer:", ""] + ([f"> {line}" if line else ">" for line in answer.splitlines()] or [])
            if not answer:
                lines.append("*(none written)*")
        lines.append("")
    return "\n".join(lines)


def written_answers_markdown(submissions: list[Submission]) -> str:
    """Every student's written answers in one file, per exercise: for the teacher to read in one place."""
    lines = ["# Written answers", ""]
    for letter in EXERCISES:
        answered = [(s.name, s.results[letter]) for s in submissions if letter in s.results and s.results[letter].written_answers]
        if not answered:
            continue
        lines += [f"## Exercise {letter}", ""]
        for name, result in answered:
            for answer in result.written_answers:
                lines += [f"**{name}:**", ""] + ([f"> {line}" if line else ">" for line in answer.splitlines()] or ["*(none written)*"]) + [""]
    return "\n".join(lines)


def _file_name(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "student"


def write_feedback(submissions: list[Submission], folder: Path) -> list[Path]:
    """One Markdown file per student in ``folder``, named after the student; and ``written-answers.md`` beside the
    folder, with every student's written answers."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / "written-answers.md").write_text(written_answers_markdown(submissions), encoding="utf-8")
    written: list[Path] = []
    for submission in submissions:
        stem, number = _file_name(submission.name), 1
        while (path := folder / (f"{stem}.md" if number == 1 else f"{stem}-{number}.md")) in written:
            number += 1  # two names that differ only in characters a file name cannot hold
        path.write_text(feedback_markdown(submission), encoding="utf-8")
        written.append(path)
    return written
