"""Build the course site: static HTML of the README, the lessons, the exercises and the guides.

Usage: ``python scripts/build_site.py [--out build/site]`` (or ``make site``,
``py tasks.py site``). Offline, in about 20 seconds: the notebooks are rendered
with their committed outputs, never executed (see ``site/conf.py``).

The pages are, in this order: the README (front page), the lesson notebooks
``notebooks/00`` .. ``09`` (a second part, e.g. ``05b``, after its first), the exercises' student versions, the teacher's
guide and the data licences. They are copied with their relative paths into
a staging folder (``build/site-src``) that Sphinx builds; the README gets a
table of contents appended there, nothing in the repository is changed.
Open ``build/site/index.html`` in a browser, or serve the folder with
``python -m http.server -d build/site``.

Exit status: 0 when the site was built without warnings, 1 otherwise (the
warnings are printed; a broken link or a missing image is one).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The site's pages after the front page, as (section title, glob patterns relative to the repository).
SECTIONS = [
    ("Lessons", ["notebooks/[0-9][0-9]*_*.ipynb"]),  # 05_ sorts before 05b_, a lesson's second part
    ("Exercises (student versions)", ["exercises/student/exercise_*.ipynb"]),
    ("For teachers", ["exercises/TEACHER_GUIDE.md"]),
    ("Data", ["data/README.md"]),
]


def pages() -> list[tuple[str, list[Path]]]:
    """Each section's files, in order, as paths relative to the repository."""
    return [
        (title, [path.relative_to(ROOT) for pattern in patterns for path in sorted(ROOT.glob(pattern))])
        for title, patterns in SECTIONS
    ]


def stage(staging: Path) -> None:
    """Copy the site's sources into ``staging``, with the README as front page and a table of contents."""
    import importlib.util

    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name in ("conf.py", "favicon.svg"):
        shutil.copy(ROOT / "site" / name, staging / name)
    # MathJax 3, offline: the package is only a carrier of MathJax's files (its name is not a module name).
    mathjax = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static" / "mathjax"
    shutil.copytree(mathjax, staging / "_static" / "mathjax")
    toctrees = []
    for title, files in pages():
        for relative in files:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / relative, staging / relative)
        entries = "\n".join(relative.with_suffix("").as_posix() for relative in files)
        toctrees.append(f"```{{toctree}}\n:caption: {title}\n:maxdepth: 1\n\n{entries}\n```\n")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (staging / "index.md").write_text(readme + "\n\n" + "\n".join(toctrees), encoding="utf-8")


def build(out: Path, staging: Path) -> int:
    """Stage and build; return the number of warnings."""
    stage(staging)
    if out.exists():
        shutil.rmtree(out)
    log = staging.parent / "site-warnings.log"
    completed = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-w", str(log), "-j", "1", str(staging), str(out)],
        cwd=staging,
    )
    if completed.returncode != 0:
        print(f"sphinx-build failed (exit status {completed.returncode}); see above.", file=sys.stderr)
        return max(1, completed.returncode)
    warnings = [line for line in log.read_text().splitlines() if "WARNING" in line or "ERROR" in line]
    for line in warnings:
        print(line, file=sys.stderr)
    return len(warnings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="where to write the site")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    warnings = build(out, out.parent / "site-src")
    print(f"Site: {out / 'index.html'}" + (f" ({warnings} warnings)" if warnings else ""))
    return 0 if warnings == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
