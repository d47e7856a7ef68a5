"""One wrong answer: what the student did, the names it replaces, and what the check must say; and right answers written differently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from utilities import LoadedModel

__all__ = ["RightAnswer", "WrongAnswer"]


@dataclass(frozen=True)
class WrongAnswer:
    """A plausible wrong answer.

    Attributes:
        exercise: ``"a"`` .. ``"f"``.
        mistake: what the student did wrong, in a few words.
        message: a regular expression the check's messages must match: the named cause.
        build: ``build(model, solution)`` -> the notebook names this answer replaces; the other
            names come from the solution notebook's namespace ``solution``.
    """

    exercise: str
    mistake: str
    message: str
    build: Callable[[LoadedModel, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class RightAnswer:
    """A right answer written differently from the solution: it must pass every check.

    Attributes:
        exercise: ``"a"`` .. ``"f"``.
        how: how it differs from the solution, in a few words.
        build: as :attr:`WrongAnswer.build`.
    """

    exercise: str
    how: str
    build: Callable[[LoadedModel, dict[str, Any]], dict[str, Any]]
