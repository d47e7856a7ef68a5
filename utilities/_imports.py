"""Importing torchvision without torch's compiler, which the course never uses.

torch keeps ``torch._dynamo`` (the ``torch.compile`` machinery) lazy: it loads
on first use. torchvision 0.29 loads it while being imported, twice:
``ops/roi_align.py`` imports one helper, ``is_compile_supported``, which only
its RoI-align operator calls, and ``tv_tensors`` (under ``transforms.v2``)
decorates one function with ``torch.compiler.disable``, which imports the
compiler to mark the function as not to be compiled. On a 2-core laptop that
costs every kernel about 2 s and 150 MB of resident memory: a third of
``import utilities``, in every notebook and every graded submission.

:func:`import_torchvision` imports torchvision and ``transforms.v2`` with
stand-ins for those two: the helper loads the real ``torch._dynamo`` when it
is first called; the decorated function runs as it is while the compiler was
never loaded (then nothing can be compiling it), and through the real
``torch.compiler.disable`` once it is. The stand-ins are removed afterwards,
so ``torch.compile`` and ``import torch._dynamo`` work as always. If
torchvision is already imported, it simply imports it.
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

import torch

__all__ = ["import_torchvision"]

_PACKAGE = "torch._dynamo"
_UTILS = "torch._dynamo.utils"


def _is_compile_supported(*args: Any, **kwargs: Any) -> Any:
    # The real helper, imported on first use (torch's own lazy path).
    from torch._dynamo.utils import is_compile_supported

    return is_compile_supported(*args, **kwargs)


def _disable_when_loaded(fn: Any = None, recursive: bool = True, *, reason: str | None = None) -> Any:
    """``torch.compiler.disable``, applied when the compiler is first loaded instead of at decoration."""
    if fn is None:
        return functools.partial(_disable_when_loaded, recursive=recursive, reason=reason)
    disabled = None

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal disabled
        if disabled is None:
            if _PACKAGE not in sys.modules:
                return fn(*args, **kwargs)  # no compiler loaded, so nothing is compiling this call
            disabled = torch.compiler.disable(fn, recursive, reason=reason)
        return disabled(*args, **kwargs)

    return run


def import_torchvision() -> types.ModuleType:
    """Import torchvision, deferring ``torch._dynamo`` until something uses it.

    Returns:
        The torchvision module.
    """
    if "torchvision" in sys.modules or _PACKAGE in sys.modules or _UTILS in sys.modules:
        import torchvision

        return torchvision
    package = types.ModuleType(_PACKAGE)
    package.__path__ = []  # a package, so that "torch._dynamo.utils" resolves to the stand-in below
    utils = types.ModuleType(_UTILS)
    utils.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
    package.utils = utils  # type: ignore[attr-defined]
    sys.modules[_PACKAGE], sys.modules[_UTILS] = package, utils
    real_disable = torch.compiler.disable
    torch.compiler.disable = _disable_when_loaded
    try:
        import torchvision
        import torchvision.transforms.v2  # noqa: F401 - its tv_tensors use torch.compiler.disable
    finally:
        torch.compiler.disable = real_disable
        for name, stand_in in ((_UTILS, utils), (_PACKAGE, package)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
        if torch.__dict__.get("_dynamo") is package:
            del torch._dynamo  # torch's lazy __getattr__ imports the real one on first use
    return torchvision
