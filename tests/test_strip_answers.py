"""The teacher's copy of the notebooks without answers (scripts/strip_answers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "strip_answers.py"

sys.path.insert(0, str(SCRIPT.parent))
from strip_answers import count_answers, strip_answers  # noqa: E402

QUESTIONS = """## Questions

**1.** Why?

<details class="answer"><summary>Answer</summary>

Because of 42.

</details>

**2.** How?

<details class="answer"><summary>Answer</summary>

Like this:

```python
print("so")
```

</details>
"""


def test_strip_answers_keeps_the_questions_and_drops_every_answer():
    stripped = strip_answers(QUESTIONS)
    assert count_answers(QUESTIONS) == 2
    assert "**1.** Why?" in stripped and "**2.** How?" in stripped
    assert "<details" not in stripped and "42" not in stripped and "print" not in stripped


def test_the_command_writes_every_notebook_without_answers(tmp_path):
    source = ROOT / "notebooks"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), str(source), str(tmp_path)], capture_output=True, text=True, check=True
    )
    originals = sorted(source.glob("*.ipynb"))
    copies = sorted(tmp_path.glob("*.ipynb"))
    assert [p.name for p in copies] == [p.name for p in originals]
    answers = 0
    for original, copy in zip(originals, copies):
        before, after = nbformat.read(original, as_version=4), nbformat.read(copy, as_version=4)
        nbformat.validate(after)
        # What goes besides the answer blocks: the cells computed for the questions, and code among the questions.
        questions = next(i for i, cell in enumerate(before.cells) if cell.source.startswith("## Questions"))
        dropped = [
            i for i, cell in enumerate(before.cells)
            if "answer-data" in cell.metadata.get("tags", []) or (i > questions and cell.cell_type == "code")
        ]
        assert [cell.id for cell in after.cells] == [cell.id for i, cell in enumerate(before.cells) if i not in dropped]
        kept = [cell for i, cell in enumerate(before.cells) if i not in dropped]
        for old, new in zip(kept, after.cells):
            if old.cell_type == "code":
                assert old.source == new.source and old.outputs == new.outputs
            else:
                answers += count_answers(old.source)
                assert 'class="answer"' not in new.source
                assert old.source.count("**") >= new.source.count("**") > 0 or "**" not in old.source
    assert answers > 0 and f"{answers} answers removed" in completed.stdout


def test_the_command_refuses_to_overwrite_its_source():
    completed = subprocess.run([sys.executable, str(SCRIPT), str(ROOT / "notebooks"), str(ROOT / "notebooks")], capture_output=True, text=True)
    assert completed.returncode == 2 and "must differ" in completed.stderr


def test_results_computed_for_the_questions_are_folded_and_tagged_for_removal():
    """A 'For the questions' section prints what the answers use: its cells are tagged answer-data (make no-answers
    drops them) and, in JupyterLab and on the site, folded with their outputs, so they do not answer before asking."""
    sections = 0
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        questions = next(i for i, cell in enumerate(cells) if cell.source.startswith("## Questions"))
        starts = [i for i, cell in enumerate(cells[:questions]) if cell.cell_type == "markdown"
                  and (cell.source.startswith("## For the questions") or cell.source.startswith("For the questions"))]
        for start in starts:
            sections += 1
            for cell in cells[start:questions]:
                where = f"{path.name}, cell {cell.id}"
                assert "answer-data" in cell.metadata.get("tags", []), where
                if cell.cell_type == "code":
                    assert cell.metadata["jupyter"].get("outputs_hidden") and "hide-cell" in cell.metadata["tags"], where
    assert sections >= 2
