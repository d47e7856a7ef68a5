"""A learner's own copy of the course: lessons and exercises side by side, updates that never overwrite their work.

``make lab`` serves this copy, not the repository: the learner sees ``lessons/``
(the notebooks), ``exercises/`` (the student versions only; solutions and
sources stay out of sight) and ``data/``. Each run brings the copy up to date
with the course:

- a file the learner does not have yet is copied in;
- a file the learner has not edited (its cells' sources are still those that
  were delivered; running cells or JupyterLab's metadata do not count as an
  edit) is replaced by the course's new version;
- a file the learner has edited is kept as it is, and the course's new version
  is put beside it as ``<name>.course-update.ipynb``, with a line saying so;
- a file the course no longer has is left alone.

Notebooks are delivered with ``language_info.version`` set to the environment's
Python, so that JupyterLab does not mark a lesson as changed the moment its
kernel starts (it writes the kernel's language_info into the notebook).

Standard library only: ``tasks.py`` runs it before the environment exists.

Usage: ``python scripts/learner_copy.py [TARGET]`` (default: ``my-course/``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TARGET = ROOT / "my-course"
#: Where each part of the learner's copy comes from.
SOURCES = {"lessons": ROOT / "notebooks", "exercises": ROOT / "exercises" / "student", "data": ROOT / "data"}
MANIFEST = ".course-manifest.json"
UPDATE_SUFFIX = ".course-update"

__all__ = ["DEFAULT_TARGET", "SyncReport", "content_fingerprint", "sync"]


@dataclass
class SyncReport:
    """What one run did, as paths relative to the copy."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited by the learner; the course's version written beside

    def lines(self) -> list[str]:
        said = []
        if self.added:
            said.append(f"Added {len(self.added)} file(s) to your copy of the course.")
        if self.updated:
            said.append(f"Updated {len(self.updated)} file(s) you had not edited: {', '.join(self.updated)}.")
        for path in self.kept:
            beside = _update_name(Path(path))
            said.append(f"Kept your edited {path}; the course's new version is beside it as {beside.name}.")
        return said


def content_fingerprint(path: Path) -> str:
    """What counts as the learner's work: for a notebook, its cells' types and sources (not outputs, not metadata);
    for any other file, its bytes."""
    data = path.read_bytes()
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(data)["cells"]
            data = json.dumps([[cell["cell_type"], "".join(cell["source"])] for cell in cells]).encode()
        except (ValueError, KeyError, TypeError):
            pass  # not a readable notebook: its bytes, so any change counts as the learner's
    return hashlib.sha256(data).hexdigest()


def _update_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}{UPDATE_SUFFIX}{path.suffix}")


def environment_python_version(venv: Path) -> str | None:
    """The Python version of a virtual environment, from its pyvenv.cfg (``None`` if it cannot be read)."""
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:3])
    return None


def _deliver(source: Path, destination: Path, python_version: str | None) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix != ".ipynb" or python_version is None:
        shutil.copyfile(source, destination)
        return
    notebook = json.loads(source.read_text(encoding="utf-8"))
    language = notebook.get("metadata", {}).get("language_info")
    if isinstance(language, dict) and language.get("name") == "python":
        language["version"] = python_version
    # nbformat's own layout (indent 1, sorted keys, a final newline), which JupyterLab also writes.
    destination.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _course_files() -> dict[str, Path]:
    files = {}
    for part, folder in SOURCES.items():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files[f"{part}/{path.name}"] = path
    return files


def sync(target: Path = DEFAULT_TARGET, python_version: str | None = None) -> SyncReport:
    """Bring the learner's copy in ``target`` up to date with the course (see the module's docstring).

    Args:
        target: the learner's folder; created if missing.
        python_version: written into the notebooks' ``language_info.version`` (``None``: left as committed).

    Returns:
        What was added, updated, and kept because the learner had edited it.
    """
    manifest_path = target / MANIFEST
    try:
        delivered: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        delivered = {}
    report = SyncReport()
    for relative, source in _course_files().items():
        destination = target / relative
        course_version = content_fingerprint(source)
        current = content_fingerprint(destination) if destination.exists() else None
        if current is None:
            _deliver(source, destination, python_version)
            report.added.append(relative)
        elif current == course_version:
            pass  # already the course's version (perhaps run, or reopened): nothing to do
        elif delivered.get(relative) == course_version:
            continue  # the course has not changed since it was delivered: the learner's edits stay, nothing to say
        elif current == delivered.get(relative):
            _deliver(source, destination, python_version)  # not edited since delivered: the new version replaces it
            report.updated.append(relative)
        else:
            beside = _update_name(destination)
            if not beside.exists() or content_fingerprint(beside) != course_version:
                _deliver(source, beside, python_version)
                report.kept.append(relative)
            continue  # the manifest keeps the version the learner's edits started from
        delivered[relative] = course_version
    target.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(delivered, indent=1, sort_keys=True) + "\n")
    return report


def main(argv: list[str]) -> int:
    target = Path(argv[0]).resolve() if argv else DEFAULT_TARGET
    report = sync(target, environment_python_version(ROOT / ".venv"))
    for line in report.lines():
        print(line)
    print(f"Your copy of the course: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
