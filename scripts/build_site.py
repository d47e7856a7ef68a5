"""Build the course site: static HTML of the README, the lessons, the exercises and the guides.

Usage: ``python scripts/build_site.py [--out build/site] [--students]
[--without-answers]`` (or ``make site``, ``py tasks.py site``; ``make
site-students`` for the students' site). Offline, in about 20 seconds: the
notebooks are rendered with their committed outputs, never executed (see
``site/conf.py``).

``--students`` leaves the teacher's guide out (the exercises are always the
student versions); ``--without-answers`` renders the lessons as ``make
no-answers`` writes them (no worked answers, no cells computed for the
questions). A teacher chooses the second for homework.

The pages are, in this order: the README (front page), the lesson notebooks
``notebooks/00`` .. ``09`` (a second part, e.g. ``05b``, after its first), the exercises' student versions, the teacher's
guide and the data licences. They are copied with their relative paths into
a staging folder (``build/site-src``) that Sphinx builds; the README gets a
table of contents appended there, nothing in the repository is changed.
Open ``build/site/index.html`` in a browser, or serve the folder with
``python -m http.server -d build/site``: the search box needs the site served
(from ``file://`` the browser refuses to load its index).

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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # strip_answers.py, beside this script

LESSONS_SECTION, TEACHERS_SECTION = "Lessons", "For teachers"
#: The site's pages after the front page, as (section title, glob patterns relative to the repository).
SECTIONS = [
    (LESSONS_SECTION, ["notebooks/[0-9][0-9]*_*.ipynb"]),  # 05_ sorts before 05b_, a lesson's second part
    ("Exercises (student versions)", ["exercises/student/exercise_*.ipynb"]),
    (TEACHERS_SECTION, ["exercises/TEACHER_GUIDE.md"]),
    ("Data", ["data/README.md"]),
]


def pages() -> list[tuple[str, list[Path]]]:
    """Each section's files, in order, as paths relative to the repository."""
    return [
        (title, [path.relative_to(ROOT) for pattern in patterns for path in sorted(ROOT.glob(pattern))])
        for title, patterns in SECTIONS
    ]


def stage(staging: Path, students: bool = False, without_answers: bool = False) -> None:
    """Copy the site's sources into ``staging``, with the README as front page and a table of contents.

    Args:
        staging: the folder Sphinx builds; emptied first.
        students: leave the teacher's guide out.
        without_answers: the lessons without their worked answers (as ``make no-answers``).
    """
    import importlib.util

    from strip_answers import write_without_answers

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
        if students and title == TEACHERS_SECTION:
            continue
        for relative in files:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / relative, staging / relative)
        if without_answers and title == LESSONS_SECTION:
            write_without_answers(ROOT / "notebooks", staging / "notebooks")  # over the copies just made
        entries = "\n".join(relative.with_suffix("").as_posix() for relative in files)
        toctrees.append(f"```{{toctree}}\n:caption: {title}\n:maxdepth: 1\n\n{entries}\n```\n")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    front = students_front_page(readme, without_answers) if students else readme
    (staging / "index.md").write_text(front + "\n\n" + "\n".join(toctrees), encoding="utf-8")


def students_front_page(readme: str, without_answers: bool) -> str:
    """The README's title, its first paragraph and its table of notebooks: what a learner needs.

    The rest of the README is for teachers (grading, where the solutions are, class servers).
    """
    title, first_paragraph = readme.split("\n\n")[:2]
    section = readme[readme.index("## The notebooks") :]
    table = section[section.index("| notebook |") :]
    table = table[: table.index("\n\n")] if "\n\n" in table else table
    if without_answers:
        questions = "Each lesson ends with questions; this copy of the course leaves their worked answers out."
    else:
        questions = "Each lesson ends with questions, each with a worked answer folded away under it (click **Answer**)."
    intro = ("Work through the lessons in order; each starts with what you will learn and how long it takes. "
             + questions + " The exercises follow the lessons they name.")
    return "\n\n".join([title, first_paragraph, "## The notebooks", intro, table])


def build(out: Path, staging: Path, students: bool = False, without_answers: bool = False) -> int:
    """Stage and build; return the number of warnings."""
    stage(staging, students=students, without_answers=without_answers)
    if out.exists():
        shutil.rmtree(out)
    log = staging.parent / f"{staging.name}-warnings.log"
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
    parser.add_argument("--students", action="store_true", help="leave the teacher's guide out")
    parser.add_argument("--without-answers", action="store_true", help="the lessons without their worked answers")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    warnings = build(out, out.parent / f"{out.name}-src", students=args.students, without_answers=args.without_answers)
    print(f"Site: {out / 'index.html'}" + (f" ({warnings} warnings)" if warnings else ""))
    return 0 if warnings == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
