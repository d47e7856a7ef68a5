"""Explain a folder of images from the command line: ``python -m utilities.explain PATH... --out DIR``.

The command (argument parsing, exit codes) is in :mod:`utilities.explain.__main__`;
the work, usable from Python too, is in :mod:`utilities.explain.folder`.
"""

from .folder import (
    CSV_COLUMNS,
    CSV_NAME,
    ExplainUsageError,
    FolderReport,
    Skipped,
    check_output_folder,
    explain_images,
    find_images,
    overlay_name,
)

__all__ = [
    "CSV_COLUMNS",
    "CSV_NAME",
    "ExplainUsageError",
    "FolderReport",
    "Skipped",
    "check_output_folder",
    "explain_images",
    "find_images",
    "overlay_name",
]
