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
        if number not in printed
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
