"""Plausible wrong answers to the exercises, as data: each must fail its check with a message naming its cause.

Adding one is one entry in the list of its exercise's module; so is adding a right answer written differently,
which must pass.
"""

from __future__ import annotations

from .answers import RightAnswer, WrongAnswer
from .exercise_a import RIGHT_A, WRONG_A
from .exercise_b import RIGHT_B, WRONG_B
from .exercise_c import RIGHT_C, WRONG_C
from .exercise_d import RIGHT_D, WRONG_D
from .exercise_e import RIGHT_E, WRONG_E
from .exercise_f import RIGHT_F, WRONG_F

__all__ = ["RIGHT_ANSWERS", "WRONG_ANSWERS", "RightAnswer", "WrongAnswer"]

WRONG_ANSWERS: list[WrongAnswer] = [*WRONG_A, *WRONG_B, *WRONG_C, *WRONG_D, *WRONG_E, *WRONG_F]
#: Right answers written differently from the solutions: each must pass.
RIGHT_ANSWERS: list[RightAnswer] = [*RIGHT_A, *RIGHT_B, *RIGHT_C, *RIGHT_D, *RIGHT_E, *RIGHT_F]
