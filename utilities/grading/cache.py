"""Grading results kept per notebook, keyed by its content: grading again runs only new or changed notebooks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .runner import NotebookResult, Status

__all__ = ["ResultCache", "grader_fingerprint"]

_PACKAGE = Path(__file__).resolve().parents[1]


def grader_fingerprint(settings: dict[str, Any]) -> str:
    """A hash of everything besides the notebook that decides its result.

    That is the code of ``utilities`` (the checks, and the library the students call) and the grading
    settings: the model every kernel runs, time and memory limits.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for source in sorted(_PACKAGE.rglob("*.py")):
        digest.update(source.relative_to(_PACKAGE).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


class ResultCache:
    """A folder of JSON files, one per graded notebook content, exercise and grader.

    Args:
        folder: where the results are kept (made when first needed).
        fingerprint: :func:`grader_fingerprint` of this run.
    """

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def key(self, notebook: Path, exercise: str) -> str:
        """The notebook's key: its bytes, its exercise, and the grader."""
        digest = hashlib.sha256(f"{self.fingerprint}\n{exercise}\n".encode())
        digest.update(notebook.read_bytes())
        return digest.hexdigest()

    def get(self, key: str) -> NotebookResult | None:
        """The stored result, marked as cached, or ``None``."""
        try:
            result = NotebookResult.from_dict(json.loads((self.folder / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None
        result.cached = True
        return result

    def put(self, key: str, result: NotebookResult) -> None:
        """Keep a result, unless the grader itself failed (that is worth trying again)."""
        if result.status == Status.NOT_RUN:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f"{key}.json.partial"
        temporary.write_text(json.dumps(result.to_dict()))
        temporary.replace(self.folder / f"{key}.json")  # atomic: a run stopped half-way leaves no broken entry
