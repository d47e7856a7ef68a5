"""Sentences of a lesson, checked against what the notebook just computed.

A lesson that says "the cat's map lies on the cat" runs, in the cell before,
``claim(model, share > 0.5, "the cat's map lies on the cat")``. The claim is
checked where the text was written and tested (the bundled model, whose
outputs the notebooks are committed with): there an untrue sentence stops the
notebook, and so fails the tests. With another pretrained model (ResNet50
when online) an untrue sentence is reported, not raised, so a learner can
read on; with random weights (``resnet50_untrained``, used to run the series
on ResNet50's architecture) claims about trained behaviour are not checked.
"""

from __future__ import annotations

from .models import LoadedModel

__all__ = ["REFERENCE_MODEL", "ClaimError", "claim"]

#: The model whose outputs the notebooks are committed with and tested on.
REFERENCE_MODEL = "efficientnet_lite0"


class ClaimError(AssertionError):
    """A lesson's sentence does not hold for the model it was written for."""


def claim(model: LoadedModel, holds: bool, statement: str) -> None:
    """Check one sentence of a lesson and print the verdict.

    Args:
        model: the model the notebook ran.
        holds: whether the sentence is true for what the notebook computed.
        statement: the sentence, as the lesson states it.

    Nothing is returned, so that a claim at the end of a notebook cell adds
    no output besides its verdict.

    Raises:
        ClaimError: the sentence is false for the reference model.
    """
    holds = bool(holds)
    if not model.pretrained:
        print(f"not checked (random weights): {statement}")
    elif holds:
        print(f"holds: {statement}")
    elif model.name == REFERENCE_MODEL:
        raise ClaimError(f"The lesson says {statement!r}, but that is not what {model.name} computed here.")
    else:
        print(f"DOES NOT HOLD for {model.name} (the text was checked on {REFERENCE_MODEL}): {statement}")
