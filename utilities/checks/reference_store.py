"""References shared between grading kernels: computed once by the solution's kernel, read by the students'.

Every check computes references (the right maps, shares, overlays of its inputs) once per network and keeps them in
memory (:func:`utilities.checks._common.cached`). A grading run starts a fresh kernel per notebook, so each would
compute them again: about 2.4 s of the 6 s a submission of exercises a to d costs. The grader
(:func:`utilities.grading.cli.grade_notebooks`) therefore runs each exercise's solution notebook first, with
:data:`STORE_ENV` naming a new folder and :data:`WRITE_ENV` set: its checks save every reference they compute
there. The grader then hashes the files into a manifest and gives the students' kernels the folder and the
manifest (:data:`MANIFEST_ENV`, JSON, file name -> SHA-256). A kernel uses a file only if its bytes hash to the
manifest's value: a student's code can write into the folder, but not into the manifest the grader holds, so it
cannot change another student's references. Files load with ``weights_only=True``.

A reference is keyed by the check's own key and a fingerprint of the model: every weight and buffer, the modules'
names and types, the training flags, and the model's other fields (name, classes, normalisation, preprocessing).
A student who loads another model, or changes its weights, gets no shared reference: the check computes its own.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["MANIFEST_ENV", "STORE_ENV", "WRITE_ENV", "load", "manifest", "model_description", "save"]

#: The folder of shared references (set by the grader for every kernel of a run).
STORE_ENV = "GRADCAM_REFERENCE_STORE"
#: Set to "1" in the solution's kernels only: their checks save what they compute.
WRITE_ENV = "GRADCAM_REFERENCE_WRITE"
#: JSON {file name: SHA-256} of the files a kernel may read (set in the students' kernels).
MANIFEST_ENV = "GRADCAM_REFERENCE_MANIFEST"

_FINGERPRINTS: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


class _NotStorable(TypeError):
    """A value the store does not keep (an object other than tensors, arrays, numbers, strings and containers)."""


def model_description(model: Any) -> str:
    """What a reference depends on besides the network's weights: the model's other fields and its preprocessing.

    Models made by ``dataclasses.replace`` share one network with other preprocessing (the checks' smaller inputs) or
    another name: their references differ, so this is part of every key, computed per call (it is cheap).
    """
    fields = {name: value for name, value in vars(model).items() if name not in ("network", "preprocess")}
    return repr(sorted(fields.items())) + " " + " ".join(repr(getattr(model, "preprocess", None)).split())


def _fingerprint(model: Any) -> str:
    """A hash of everything about the model a reference can depend on (the network's part once per network)."""
    network = model.network
    if network not in _FINGERPRINTS:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(repr([(name, type(module).__qualname__, module.training) for name, module in network.named_modules()]).encode())
        for name, value in network.state_dict().items():
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
            digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
        _FINGERPRINTS[network] = digest.hexdigest()
    return hashlib.blake2b(f"{_FINGERPRINTS[network]} {model_description(model)}".encode(), digest_size=20).hexdigest()


def _name(model: Any, key: Any) -> str:
    return hashlib.blake2b(f"{_fingerprint(model)} {key!r}".encode(), digest_size=20).hexdigest() + ".pt"


def _encode(value: Any) -> Any:
    """The value as what ``torch.load(weights_only=True)`` reads back: arrays as tagged tensors, the types kept."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is torch.Tensor:
        return value.detach().cpu().clone()
    if type(value) is np.ndarray and value.dtype.kind in "biuf":
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if type(value) is np.ndarray and value.dtype.kind == "U" and value.ndim == 0:
        return {"__str_ndarray__": str(value)}  # a name kept as a NumPy string
    if type(value) in (list, tuple):
        return type(value)(_encode(item) for item in value)
    if type(value) is dict and all(type(key) in (str, int) for key in value) and not {"__ndarray__", "__str_ndarray__"} & set(value):
        return {key: _encode(item) for key, item in value.items()}
    raise _NotStorable(type(value).__name__)


def _decode(value: Any) -> Any:
    if type(value) is dict and set(value) == {"__ndarray__"}:
        return value["__ndarray__"].numpy()
    if type(value) is dict and set(value) == {"__str_ndarray__"}:
        return np.array(value["__str_ndarray__"])
    if type(value) in (list, tuple):
        return type(value)(_decode(item) for item in value)
    if type(value) is dict:
        return {key: _decode(item) for key, item in value.items()}
    return value


@functools.cache
def _manifest(text: str) -> dict[str, str]:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return {str(name): str(digest) for name, digest in found.items()} if isinstance(found, dict) else {}


def load(model: Any, key: Any) -> tuple[bool, Any]:
    """The shared reference of ``key`` for ``model``, if the manifest lists it and the file's bytes match.

    Returns:
        (whether one was found, the value; ``None`` when not found).
    """
    folder, listed = os.environ.get(STORE_ENV), _manifest(os.environ.get(MANIFEST_ENV, ""))
    if not folder or not listed:
        return False, None
    name = _name(model, key)
    if name not in listed:
        return False, None
    try:
        data = (Path(folder) / name).read_bytes()
    except OSError:
        return False, None
    if hashlib.sha256(data).hexdigest() != listed[name]:
        return False, None  # changed since the solution's kernel wrote it: computed afresh
    return True, _decode(torch.load(io.BytesIO(data), weights_only=True))


def save(model: Any, key: Any, value: Any) -> None:
    """Keep ``value`` as the shared reference of ``key`` for ``model`` (only in the solution's kernels)."""
    folder = os.environ.get(STORE_ENV)
    if not folder or os.environ.get(WRITE_ENV) != "1":
        return
    try:
        encoded = _encode(value)
    except _NotStorable:
        return  # kept in memory only
    path = Path(folder) / _name(model, key)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(encoded, temporary)
    os.replace(temporary, path)  # whole or not at all, for a reader at the same time


def manifest(folder: Path) -> dict[str, str]:
    """The SHA-256 of each reference file in ``folder``: what the students' kernels may read."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(Path(folder).glob("*.pt"))}
