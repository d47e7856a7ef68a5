"""Plausible wrong answers to the exercises, as data: each must fail its check with a message naming its cause.

Adding one is one entry in the list of its exercise's module.
"""

from __future__ import annotations

from .answers import WrongAnswer
from .exercise_a import WRONG_A
from .exercise_b import WRONG_B
from .exercise_c import WRONG_C
from .exercise_d import WRONG_D
from .exercise_e import WRONG_E

__all__ = ["WRONG_ANSWERS", "WrongAnswer"]

WRONG_ANSWERS: list[WrongAnswer] = [*WRONG_A, *WRONG_B, *WRONG_C, *WRONG_D, *WRONG_E]
