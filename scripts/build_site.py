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

Accessibility (checked by ``tests/test_site.py`` with axe-core; see the README):

- Every figure gets a text alternative that says what it shows. A figure's
  titles exist only in the kernel while a notebook runs, and the site is built
  from the committed outputs, so the alternative is derived at build time from
  the code cell that drew the figure (:func:`figure_alts`): the section heading
  above the cell, the title strings in its code (``set_title``, ``suptitle``,
  ``title=``/``titles=``, axis labels; an f-string keeps its literal parts and
  shows each ``{...}`` as "…"), the first line of the docstring of the drawing
  helper it calls (from ``utilities`` or a function defined earlier in the
  notebook), and the cell's purpose (its first comment line, else the first
  sentence of the text just above it). Why not capture the titles when the
  notebooks run and store them in the outputs' metadata: every notebook would
  have to be re-executed and its committed outputs would change with every
  wording change of a site feature; the code already holds what the figure
  says, and a build stays offline and fast. The alternatives are written into
  the *staged* copies' cell metadata (``figure_alts``, one per image output, in
  order); ``site/conf.py`` puts them on the images. Nothing in ``notebooks/``
  is changed.
- The theme's few accessibility faults are fixed in ``site/``: the logo link
  always has the site's title as text (the front page had an empty link), the
  search button's accessible name contains its visible text (a template
  override, ``site/_templates/search-button-field.html``), and MyST-NB's
  "Show code cell source" toggles are named by what they show (``site/conf.py``).

Exit status: 0 when the site was built without warnings, 1 otherwise (the
warnings are printed; a broken link or a missing image is one).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
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
    shutil.copytree(ROOT / "site" / "_templates", staging / "_templates")
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
        for relative in files:
            if relative.suffix == ".ipynb":
                add_figure_alts(staging / relative)
        entries = "\n".join(relative.with_suffix("").as_posix() for relative in files)
        toctrees.append(f"```{{toctree}}\n:caption: {title}\n:maxdepth: 1\n\n{entries}\n```\n")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    front = students_front_page(readme, without_answers) if students else readme
    (staging / "index.md").write_text(front + "\n\n" + "\n".join(toctrees), encoding="utf-8")


#: Functions whose titles are the figure's: the call's first string argument or its ``title``-like keywords.
TITLE_CALLS = {"set_title", "suptitle", "title"}
LABEL_CALLS = {"set_xlabel", "set_ylabel", "xlabel", "ylabel"}
DRAWING_CALLS = {"imshow", "subplots", "plot", "scatter", "show", "figure", "pcolormesh", "contour", "bar"}
ALT_LIMIT = 420  # characters: a screen reader reads the whole alternative; the page's text says the rest


def _plain(text: str) -> str:
    """Markdown or reST to plain text: no roles, backticks, emphasis, math dollars, links; one line."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("**", "").replace("$", "").replace("\\", "")
    return " ".join(text.split())


def _string_value(node: ast.AST) -> list[str]:
    """The texts a string expression can show: a literal, an f-string (each ``{...}`` as "…"), a list of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(part.value if isinstance(part, ast.Constant) else "…" for part in node.values)]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [text for element in node.elts for text in _string_value(element)]
    if isinstance(node, ast.Starred):
        return _string_value(node.value)
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        return _string_value(node.elt)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return ["".join(_string_value(node.left)[:1] + _string_value(node.right)[:1])]
    return []


def _parse(source: str) -> ast.Module | None:
    """A code cell's syntax tree; IPython's magics and shell lines are left out. None when it does not parse."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _drawing_helper(node: ast.FunctionDef, draws: bool = False) -> tuple[str, list[str]] | None:
    """A function that draws (``draws``, or it calls ``imshow``, ``subplots``, ...): its docstring's first line and
    parameters; None for another function."""
    calls = {getattr(call.func, "attr", None) or getattr(call.func, "id", "") for call in ast.walk(node) if isinstance(call, ast.Call)}
    if not ast.get_docstring(node) or not (draws or calls & DRAWING_CALLS):
        return None
    return ast.get_docstring(node).strip().split("\n")[0], [argument.arg for argument in node.args.args]


@functools.lru_cache(maxsize=1)
def _helpers() -> dict[str, tuple[str, list[str]]]:
    """The drawing functions of ``utilities`` (read, not imported): name -> (docstring's first line, parameters).

    In ``plotting.py`` and ``widgets.py`` those named ``show_...``, ``visualize_...``, ``..._picker``; elsewhere, those
    that call matplotlib.
    """
    found = {}
    for path in sorted((ROOT / "utilities").rglob("*.py")):
        tree = _parse(path.read_text(encoding="utf-8"))
        for node in tree.body if tree else []:
            draws = path.name in ("plotting.py", "widgets.py") and re.match(r"(show|visuali[sz]e|draw|plot)_|\w+_picker$", getattr(node, "name", ""))
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and _drawing_helper(node, bool(draws)):
                found.setdefault(node.name, _drawing_helper(node, bool(draws)))
    return found


def _titles(tree: ast.Module, helpers: dict[str, tuple[str, list[str]]], labels: bool = False) -> list[str]:
    """The title strings (or with ``labels``, the axis labels) a cell's code gives its figure, in order, each once.

    A call of a drawing helper passes its title by keyword or by position (a parameter whose name says title).
    """
    found: list[tuple[int, int, int, list[str]]] = []  # (0 for the figure's suptitle else 1, line, column, texts)
    variables: dict[str, list[str]] = {}  # titles = [...]; then titles=titles
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and "title" in t.id for t in node.targets):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    variables[target.id] = _string_value(node.value)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        where = (int(name != "suptitle"), node.lineno, node.col_offset)
        if name in (LABEL_CALLS if labels else TITLE_CALLS) and node.args:
            found.append((*where, _string_value(node.args[0])))
        if not labels and name in helpers:
            parameters = helpers[name][1]
            found.append((*where, [text for parameter, argument in zip(parameters, node.args) if "title" in parameter
                                   for text in _string_value(argument)]))
        for keyword in node.keywords:
            if (keyword.arg in ("xlabel", "ylabel")) if labels else ("title" in (keyword.arg or "")):
                value = keyword.value
                texts = variables.get(value.id, []) if isinstance(value, ast.Name) else _string_value(value)
                found.append((int(keyword.arg != "suptitle"), *where[1:], texts))
    titles = [text for *_, texts in sorted(found, key=lambda item: item[:3]) for text in texts]
    cleaned = [_plain(title) for title in titles]
    # a title that is all placeholders ("… (…)") says nothing
    return list(dict.fromkeys(title for title in cleaned if len(re.findall(r"[A-Za-z]", title)) >= 3))


def _purpose(source: str, markdown_above: str) -> str:
    """What the cell is for: its first comment line, else the first sentence of the text just above it."""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.lstrip("# ").startswith("NBVAL"):
            comment = _plain(stripped.lstrip("# "))
            if len(comment) > 12:
                return comment
    paragraphs = [p for p in markdown_above.split("\n\n") if p.strip() and not p.lstrip().startswith(("#", "<", "|", "```"))]
    if not paragraphs:
        return ""
    # sentences up to some 40 characters; never ending inside brackets or after "e.g." or "et al."
    text, purpose = _plain(paragraphs[0]), ""
    for match in re.finditer(r"[.!?](?=\s|$)", text):
        purpose = text[: match.end()]
        if (len(purpose) >= 40 and purpose.count("(") <= purpose.count(")")
                and not re.search(r"(e\.g|i\.e|et al|etc)\.$", purpose)):
            break
    purpose = purpose or text
    return purpose if len(purpose) <= 240 else purpose[:239].rsplit(" ", 1)[0].rstrip(" ;,:") + "…"


def figure_alts(notebook: dict, helpers: dict[str, tuple[str, list[str]]] | None = None) -> dict[int, list[str]]:
    """A text alternative for every image output of a notebook: ``{cell index: [alt per image, in order]}``.

    Each says where the figure is (the section heading above it), what its titles say, what the helper that drew it
    draws, and what the cell is for: see the module's docstring for why it is derived from the code.
    """
    helpers = dict(_helpers() if helpers is None else helpers)
    heading, markdown_above, alts = "", "", {}
    for index, cell in enumerate(notebook["cells"]):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            prose = re.sub(r"```.*?```", "", source, flags=re.DOTALL)  # a code block's "# comment" is no heading
            headings = re.findall(r"^#{1,6}\s+(.+)$", prose, flags=re.MULTILINE)
            heading = _plain(headings[-1]) if headings else heading
            markdown_above = source
            continue
        if cell["cell_type"] != "code":
            continue
        tree = _parse(source)
        for node in ast.walk(tree) if tree else []:  # a drawing function the notebook defines, for the cells below
            if isinstance(node, ast.FunctionDef) and _drawing_helper(node):
                helpers[node.name] = _drawing_helper(node)
        images = [o for o in cell.get("outputs", []) if any(key.startswith("image/") for key in o.get("data", {}))]
        if images:
            titles = _titles(tree, helpers) if tree else []
            labels = _titles(tree, helpers, labels=True) if tree else []
            called = [getattr(node.func, "id", None) or getattr(node.func, "attr", "") for node in ast.walk(tree)
                      if isinstance(node, ast.Call)] if tree else []
            drawer = next((name for name in called if name in helpers), None)
            parts = []
            if titles:
                shown = "; ".join(f"“{title}”" for title in titles[:5])
                parts.append(f"titled {shown}" + (f" and {len(titles) - 5} more" if len(titles) > 5 else ""))
            if labels:
                parts.append("axes: " + ", ".join(f"“{label}”" for label in labels[:4]))
            if drawer:
                parts.append(f"drawn by {drawer}: {_plain(helpers[drawer][0]).rstrip('.')}")
            purpose = _purpose(source, markdown_above).rstrip(".:")
            where = f" in the section “{heading}”" if heading else ""
            alts[index] = []
            for number in range(1, len(images) + 1):
                which = f"Figure {number} of {len(images)}" if len(images) > 1 else "Figure"
                alt = f"{which}{where}" + (": " + "; ".join(parts) if parts else "") + "."
                if purpose:  # a sentence's first word capitalised, not a name such as "astronaut.jpg" or "utilities.x"
                    alt += " " + (purpose[0].upper() + purpose[1:] if re.match(r"[a-z]+[\s,;:]", purpose) else purpose)
                    alt += "" if alt.endswith("…") else "."
                alt = alt if len(alt) <= ALT_LIMIT else alt[: ALT_LIMIT - 1].rsplit(" ", 1)[0].rstrip(" ;,:") + "…"
                alts[index].append(alt)
        markdown_above = ""
    return alts


def add_figure_alts(path: Path) -> None:
    """Write :func:`figure_alts` into the (staged) notebook at ``path``: cell metadata ``figure_alts``."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    alts = figure_alts(notebook)
    if not alts:
        return
    for index, texts in alts.items():
        notebook["cells"][index].setdefault("metadata", {})["figure_alts"] = texts
    path.write_text(json.dumps(notebook, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


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
