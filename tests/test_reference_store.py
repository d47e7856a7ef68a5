"""The references shared between grading kernels: kept exactly, read only as the manifest lists them."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from utilities.checks import reference_store
from utilities.checks._common import cached
from utilities.checks import exercise_e


def made_up_model():
    """A new copy of exercise e's made-up model each time (the check keeps one, which no test may change)."""
    model = exercise_e.made_up_model()
    return dataclasses.replace(model, network=copy.deepcopy(model.network))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(reference_store.STORE_ENV, str(tmp_path))
    monkeypatch.setenv(reference_store.WRITE_ENV, "1")
    monkeypatch.delenv(reference_store.MANIFEST_ENV, raising=False)
    return tmp_path


def _reading(monkeypatch, folder, listed=None):
    monkeypatch.delenv(reference_store.WRITE_ENV, raising=False)
    monkeypatch.setenv(reference_store.MANIFEST_ENV, json.dumps(reference_store.manifest(folder) if listed is None else listed))


def _same(first, second):
    assert type(first) is type(second)
    if isinstance(first, torch.Tensor):
        assert first.dtype == second.dtype and torch.equal(first, second)
    elif isinstance(first, np.ndarray):
        assert first.dtype == second.dtype and np.array_equal(first, second)
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second)
        for a, b in zip(first, second):
            _same(a, b)
    elif isinstance(first, dict):
        assert first.keys() == second.keys()
        for key in first:
            _same(first[key], second[key])
    else:
        assert first == second


#: Values of the kinds the checks keep: tensors, arrays of several dtypes, names, nested containers.
_VALUES = [
    ("top class", np.zeros((3, 4, 3), dtype=np.uint8) + 7, (np.linspace(0, 1, 12).reshape(3, 4), np.eye(2, dtype=np.float32))),
    {"reference": [torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(1, dtype=torch.float64)], "classes": 5},
    [torch.arange(6).reshape(2, 3), None, 0.25, True, "name"],
    {"layer2": np.array([0.5, 0.25]), "mask": np.array([[True, False]]), "top class name": np.array("tabby")},
]


@pytest.mark.parametrize("value", _VALUES, ids=["overlays", "maps", "mixed", "shares"])
def test_a_reference_comes_back_exactly_in_another_kernel(store, monkeypatch, value):
    model = made_up_model()
    reference_store.save(model, ("exercise x", 1), value)
    _reading(monkeypatch, store)
    found, again = reference_store.load(model, ("exercise x", 1))
    assert found
    _same(value, again)


def test_a_file_changed_after_the_manifest_or_not_listed_is_not_read(store, monkeypatch):
    model = made_up_model()
    reference_store.save(model, "maps", torch.ones(3))
    reference_store.save(model, "other", torch.ones(3))
    listed = reference_store.manifest(store)
    torch.save(torch.zeros(3), store / sorted(listed)[0])  # a student's kernel writing into the folder
    _reading(monkeypatch, store, listed)
    results = [reference_store.load(model, key) for key in ("maps", "other")]
    assert sorted(found for found, _ in results) == [False, True]  # the changed file is refused, the other is read
    assert all(torch.equal(value, torch.ones(3)) for found, value in results if found)
    _reading(monkeypatch, store, {})
    assert reference_store.load(model, "other") == (False, None)  # nothing listed, nothing read


def test_another_model_or_weights_get_no_shared_reference(store, monkeypatch):
    model, other = made_up_model(), made_up_model()
    reference_store.save(model, "maps", torch.ones(3))
    _reading(monkeypatch, store)
    with torch.no_grad():
        other.network.fc.weight[0, 0] += 1
    assert reference_store.load(model, "maps")[0]
    assert reference_store.load(other, "maps") == (False, None)


def test_a_student_kernel_does_not_write_and_odd_values_stay_in_memory(store, monkeypatch):
    model = made_up_model()
    reference_store.save(model, "object", object())
    assert reference_store.manifest(store) == {}
    monkeypatch.delenv(reference_store.WRITE_ENV)
    reference_store.save(model, "maps", torch.ones(3))
    assert reference_store.manifest(store) == {}


def test_cached_reads_the_store_instead_of_computing(store, monkeypatch):
    model = made_up_model()
    assert torch.equal(cached(model, "store test", lambda: torch.full((2,), 3.0)), torch.full((2,), 3.0))
    _reading(monkeypatch, store)
    fresh = made_up_model()  # another kernel's network object: the memory cache is empty for it
    assert torch.equal(cached(fresh, "store test", lambda: pytest.fail("computed again")), torch.full((2,), 3.0))
