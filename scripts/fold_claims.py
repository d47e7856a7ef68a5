"""Fold the lessons' claim() checks: each goes into a cell of its own whose source is hidden.

A lesson checks its sentences with ``claim(model, holds, "sentence")`` (see
``utilities/claims.py``). A learner needs the verdict a claim prints, not the
code that computes it, so the claims of a cell are moved to a cell right after
it, and that cell's source is folded: ``jupyter.source_hidden`` in JupyterLab
(one click shows it) and the ``hide-input`` tag on the course site (MyST-NB's
toggle). The cell that computed the numbers stays as it was, minus its claims.

Only top-level statements move: a claim inside a loop or a function stays where
it is (the script lists those). A claim that reads a variable the rest of the
cell later changes would change meaning when moved after it; the script leaves
such a cell alone and says so. Run it, then re-execute the notebooks it changed.

Usage: ``python scripts/fold_claims.py [NOTEBOOK ...]`` (default: all of notebooks/).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
FOLD_TAG = "hide-input"


def is_claim_statement(node: ast.stmt) -> bool:
    """A top-level ``claim(...)`` call (also as ``_ = claim(...)``), or a loop whose body is only claim calls."""
    if isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] == ["_"]:
        node = ast.Expr(node.value)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        function = node.value.func
        return isinstance(function, ast.Name) and function.id == "claim"
    if isinstance(node, ast.For) and not node.orelse:
        return all(is_claim_statement(inner) for inner in node.body)
    return False


def is_claim_cell(cell) -> bool:
    """A code cell that holds nothing but claims (and imports of claim)."""
    if cell.cell_type != "code":
        return False
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return False
    statements = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    return bool(statements) and all(is_claim_statement(node) for node in statements)


def fold(cell) -> bool:
    """Mark a claim cell folded; return whether anything changed."""
    jupyter = cell.metadata.setdefault("jupyter", {})
    tags = cell.metadata.setdefault("tags", [])
    changed = not jupyter.get("source_hidden") or FOLD_TAG not in tags
    jupyter["source_hidden"] = True
    if FOLD_TAG not in tags:
        tags.append(FOLD_TAG)
    return changed


ANSWER_TAGS = ("answer-data", "hide-cell")


def inherit_answer_data(source, claim_cell) -> None:
    """Claims moved out of a cell computed for the questions stay with it: tagged for removal, outputs folded too."""
    if "answer-data" not in source.metadata.get("tags", []):
        return
    tags = claim_cell.metadata.setdefault("tags", [])
    tags.extend(tag for tag in ANSWER_TAGS if tag not in tags)
    claim_cell.metadata.setdefault("jupyter", {})["outputs_hidden"] = True


def _names_stored(nodes: list[ast.stmt]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _names_read(nodes: list[ast.stmt]) -> set[str]:
    """Names read, less those bound by the nodes' own comprehensions (their loop variables)."""
    read = {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    bound = {
        n.id
        for node in nodes
        for generator in ast.walk(node)
        if isinstance(generator, ast.comprehension)
        for n in ast.walk(generator.target)
        if isinstance(n, ast.Name)
    }
    return read - bound


def split(cell) -> tuple[str, str] | None:
    """The cell's source without its top-level claims, and the claims; None if nothing can move."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return None
    lines = cell.source.splitlines()
    claims = [node for node in tree.body if is_claim_statement(node)]
    rest = [node for node in tree.body if not is_claim_statement(node)]
    if not claims or not rest:
        return None
    # Moving a claim after statements that rebind what it reads would change what it checks.
    for claim_node in claims:
        later = [node for node in rest if node.lineno > claim_node.lineno]
        if _names_read([claim_node]) & _names_stored(later):
            return None
    # The last statement's value is the cell's displayed result; keep it last.
    taken = set()
    for node in claims:
        taken.update(range(node.lineno - 1, node.end_lineno))
    kept = [line for index, line in enumerate(lines) if index not in taken]
    moved = [line for index, line in enumerate(lines) if index in taken]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept), "\n".join(moved)


def fold_notebook(path: Path) -> list[str]:
    """Split and fold the claims of one notebook in place; return what was done, one line each."""
    notebook = nbformat.read(path, as_version=4)
    report, cells, changed = [], [], False
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "claim(" in cell.source and not is_claim_cell(cell):
            parts = split(cell)
            if parts is None:
                report.append(f"{path.name} cell {index}: claims left in place (nested, or they read names set later)")
            else:
                cell.source, claims = parts
                claim_cell = nbformat.v4.new_code_cell(claims)
                fold(claim_cell)
                inherit_answer_data(cell, claim_cell)
                cells.extend([cell, claim_cell])
                report.append(f"{path.name} cell {index}: claims moved to a folded cell")
                changed = True
                continue
        if is_claim_cell(cell):
            changed |= fold(cell)
        cells.append(cell)
    if changed:
        notebook.cells = cells
        nbformat.write(notebook, path)
    return report


def main(paths: list[str]) -> int:
    notebooks = [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        for line in fold_notebook(path):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
