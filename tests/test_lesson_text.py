"""The lessons' prose against their own outputs, and an answer for every question.

A decimal number or a percentage stated in a Markdown cell is a claim about
what the notebook computed, so some output of the same notebook must show it,
as text. Numbers inside code, math and version strings are not claims about
outputs and are left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

_NOT_PROSE = [
    re.compile(r"```.*?```", re.DOTALL),  # fenced code
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\$\$.*?\$\$", re.DOTALL),  # display math
    re.compile(r"\$[^$\n]*\$"),  # inline math
    re.compile(r"https?://\S+"),  # addresses
    re.compile(r"<[^>\n]*>"),  # HTML tags (their attributes)
]
# A percentage (42.8%, 43 %) or a decimal (0.70), not part of a version (2.14.1) or a word.
_PERCENTAGE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%")
_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?!\w|%|\.\d|\s%)")


def stated_numbers(markdown: str) -> list[str]:
    """Decimals and percentages that a Markdown text states, percentages written without a space."""
    for pattern in _NOT_PROSE:
        markdown = pattern.sub(" ", markdown)
    percentages = [f"{value}%" for value in _PERCENTAGE.findall(markdown)]
    decimals = _DECIMAL.findall(_PERCENTAGE.sub(" ", markdown))
    return percentages + decimals


def output_text(notebook) -> str:
    """All text the notebook's code cells printed or returned, percentages written without a space."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "stream":
                parts.append(output.get("text", ""))
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
    return re.sub(r"(\d)\s%", r"\1%", "\n".join(parts))


def unprinted_numbers(notebook) -> list[tuple[int, str]]:
    """(cell index, number) for every number the prose states that no output shows."""
    printed = output_text(notebook)
    return [
        (index, number)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "markdown"
        for number in stated_numbers(cell.source)
        if not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d%]|\.\d)", printed)
    ]


def test_stated_numbers_finds_claims_and_skips_code_math_and_versions():
    text = (
        "The cat gets 42.8% and the cup 12 %; correlation 0.70.\n"
        "`alpha = 0.5` and $0.25 \\cdot x$ and torch 2.14.1 and 8 times."
    )
    assert stated_numbers(text) == ["42.8%", "12%", "0.70"]


def test_a_number_that_no_output_shows_is_reported():
    notebook = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(...)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="espresso 59%, share 0.94\n")]
    notebook.cells = [code, nbformat.v4.new_markdown_cell("Espresso gets 59% and a share of 0.94, rank 0.70.")]
    assert unprinted_numbers(notebook) == [(1, "0.70")]


def test_a_number_inside_a_longer_printed_number_does_not_count():
    notebook = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(...)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="share 100%, value 0.945, rank 10.7\n")]
    notebook.cells = [code, nbformat.v4.new_markdown_cell("A share of 0% and 100%, a value of 0.94, a rank of 0.7.")]
    assert unprinted_numbers(notebook) == [(1, "0%"), (1, "0.94"), (1, "0.7")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_number_in_the_prose_is_printed_by_the_notebook(path):
    missing = unprinted_numbers(nbformat.read(path, as_version=4))
    assert not missing, f"{path.name}: numbers stated in Markdown that no output shows (cell, number): {missing}"


_QUESTION = re.compile(r"^\*\*(\d+)\.\*\*", re.MULTILINE)
_ANSWER = re.compile(r'<details class="answer"><summary>Answer</summary>\s*\S.*?</details>', re.DOTALL)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_question_has_a_worked_answer(path):
    notebook = nbformat.read(path, as_version=4)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    start = next((i for i, text in enumerate(markdown) if "## Questions" in text), None)
    assert start is not None, f"{path.name} has no '## Questions' section"
    questions_text = "\n".join(markdown[start:])
    numbers = [int(n) for n in _QUESTION.findall(questions_text)]
    assert numbers == list(range(1, len(numbers) + 1)) and numbers, f"{path.name}: questions numbered {numbers}"
    # Each question is followed by its own answer, before the next question.
    blocks = _QUESTION.split(questions_text)[2::2]
    for number, block in zip(numbers, blocks):
        assert _ANSWER.search(block), f"{path.name}: question {number} has no worked answer"


def _fold_claims():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fold_claims", NOTEBOOK_DIR.parent / "scripts" / "fold_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fold_claims_moves_top_level_claims_and_keeps_dependent_ones(tmp_path):
    fold_claims = _fold_claims()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1\nprint(x)\nclaim(model, x == 1, 'x is one')\n_ = claim(model, x > 0, 'x is positive')"),
        nbformat.v4.new_code_cell("y = 2\nclaim(model, y == 2, 'y is two')\ny = 3\nprint(y)"),
        nbformat.v4.new_code_cell("for v in [1]:\n    claim(model, v, 'v')\n    print(v)"),
    ]
    path = tmp_path / "lesson.ipynb"
    nbformat.write(notebook, path)
    report = fold_claims.fold_notebook(path)
    cells = nbformat.read(path, as_version=4).cells
    assert [cell.source for cell in cells[:2]] == [
        "x = 1\nprint(x)",
        "claim(model, x == 1, 'x is one')\n_ = claim(model, x > 0, 'x is positive')",
    ]
    assert cells[1].metadata["jupyter"]["source_hidden"] and "hide-input" in cells[1].metadata["tags"]
    # a claim that reads y before y is rebound, and a claim inside a loop with other work, stay where they are
    assert [cell.source for cell in cells[2:]] == [notebook.cells[1].source, notebook.cells[2].source]
    assert len(report) == 3 and "left in place" in report[1] and "left in place" in report[2]


def test_claims_moved_out_of_a_cell_for_the_questions_stay_tagged_for_removal(tmp_path):
    fold_claims = _fold_claims()
    notebook = nbformat.v4.new_notebook()
    for_questions = nbformat.v4.new_code_cell("z = 3\nprint(z)\nclaim(model, z == 3, 'z is three')")
    for_questions.metadata.update(tags=["answer-data", "hide-cell"], jupyter={"outputs_hidden": True, "source_hidden": True})
    notebook.cells = [for_questions, nbformat.v4.new_code_cell("w = 4\nclaim(model, w == 4, 'w is four')")]
    path = tmp_path / "lesson.ipynb"
    nbformat.write(notebook, path)
    fold_claims.fold_notebook(path)
    cells = nbformat.read(path, as_version=4).cells
    assert [cell.source for cell in cells] == ["z = 3\nprint(z)", "claim(model, z == 3, 'z is three')", "w = 4", "claim(model, w == 4, 'w is four')"]
    assert {"answer-data", "hide-cell", "hide-input"} <= set(cells[1].metadata["tags"]) and cells[1].metadata["jupyter"]["outputs_hidden"]
    assert "answer-data" not in cells[3].metadata["tags"] and "outputs_hidden" not in cells[3].metadata["jupyter"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_claims_are_folded_in_cells_of_their_own(path):
    """A learner reads the verdicts, not the checking code: claims sit in folded cells (scripts/fold_claims.py)."""
    fold_claims = _fold_claims()
    notebook = nbformat.read(path, as_version=4)
    mixed = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and "claim(" in cell.source and not fold_claims.is_claim_cell(cell)]
    unfolded = [
        i
        for i, cell in enumerate(notebook.cells)
        if fold_claims.is_claim_cell(cell)
        and not (cell.metadata.get("jupyter", {}).get("source_hidden") and "hide-input" in cell.metadata.get("tags", []))
    ]
    assert not mixed, f"{path.name}: cells {mixed} mix claims with other code; run scripts/fold_claims.py or split them"
    assert not unfolded, f"{path.name}: claim cells {unfolded} are not folded; run scripts/fold_claims.py"
