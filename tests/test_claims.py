"""utilities.claims: a lesson's sentence is checked where its text was written."""

from __future__ import annotations

import dataclasses

import pytest

from utilities import ClaimError, claim
from utilities.claims import REFERENCE_MODEL


def test_a_true_claim_prints_that_it_holds(lite_model, capsys):
    assert claim(lite_model, 0.97 > 0.5, "the cat's map lies on the cat") is None
    assert capsys.readouterr().out == "holds: the cat's map lies on the cat\n"


def test_a_false_claim_stops_the_reference_model_with_the_sentence(lite_model):
    assert lite_model.name == REFERENCE_MODEL
    with pytest.raises(ClaimError, match="the cat's map lies on the cat"):
        claim(lite_model, False, "the cat's map lies on the cat")


def test_another_pretrained_model_reports_a_false_claim_without_stopping(lite_model, capsys):
    other = dataclasses.replace(lite_model, name="resnet50")
    claim(other, False, "the cat's map lies on the cat")
    assert capsys.readouterr().out.startswith("DOES NOT HOLD for resnet50")


def test_random_weights_skip_claims_about_trained_behaviour(lite_model, capsys):
    untrained = dataclasses.replace(lite_model, name="resnet50_untrained", pretrained=False)
    claim(untrained, False, "the cat's map lies on the cat")
    assert capsys.readouterr().out.startswith("not checked (random weights)")
