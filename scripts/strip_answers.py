"""Write copies of the notebooks without the worked answers, for a teacher.

Every question at the end of a lesson has its answer in a collapsed block,
``<details class="answer"> ... </details>``, that learners can reveal. A
teacher who wants to hand out the questions alone runs::

    python tasks.py no-answers            # or: make no-answers
    python scripts/strip_answers.py [SOURCE_DIR] [OUTPUT_DIR]

(defaults: ``notebooks/`` into ``build/notebooks-without-answers/``). The
answer blocks go, and so does everything else that holds an answer: cells
tagged ``answer-data`` (the computations a lesson runs for its questions, whose
outputs would give the answers away) and the code cells among the questions
(checks of the answers' sentences). The questions, and the rest of the code
and outputs, stay as they are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "notebooks"
DEFAULT_OUTPUT = ROOT / "build" / "notebooks-without-answers"

#: Tag of the cells that compute what the questions' answers use.
ANSWER_DATA_TAG = "answer-data"
QUESTIONS_HEADING = "## Questions"

#: One answer block, with the blank lines around it.
ANSWER_BLOCK = re.compile(r'\n*<details class="answer">.*?</details>\n*', re.DOTALL)


def strip_answers(markdown: str) -> str:
    """The Markdown text without its answer blocks."""
    return ANSWER_BLOCK.sub("\n\n", markdown).strip("\n")


def count_answers(markdown: str) -> int:
    """How many answer blocks a Markdown text has."""
    return len(ANSWER_BLOCK.findall(markdown))


def write_without_answers(source: Path, output: Path) -> int:
    """Copy every notebook of ``source`` into ``output`` without answers; return how many answers went."""
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"No notebooks (*.ipynb) in {source}.")
    output.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        kept, in_questions = [], False
        for cell in notebook.cells:
            in_questions = in_questions or (cell.cell_type == "markdown" and cell.source.startswith(QUESTIONS_HEADING))
            if ANSWER_DATA_TAG in cell.metadata.get("tags", []) or (in_questions and cell.cell_type == "code"):
                continue
            if cell.cell_type == "markdown" and "<details" in cell.source:
                removed += count_answers(cell.source)
                cell.source = strip_answers(cell.source)
            kept.append(cell)
        notebook.cells = kept
        nbformat.write(notebook, output / path.name)
    return removed


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    if source.resolve() == output.resolve():
        print("The output folder must differ from the source folder: the answers would be lost.", file=sys.stderr)
        return 2
    removed = write_without_answers(source, output)
    print(f"{removed} answers removed; notebooks without answers are in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
