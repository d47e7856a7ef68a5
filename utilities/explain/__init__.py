"""Explain a folder of images from the command line: ``python -m utilities.explain PATH... --out DIR``.

The command (argument parsing, exit codes) is in :mod:`utilities.explain.__main__`;
the work, usable from Python too, is in :mod:`utilities.explain.folder`.
"""

from . import folder
from .folder import *  # noqa: F403 - the package offers what its work module offers

__all__ = list(folder.__all__)
