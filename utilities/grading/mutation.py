"""Mutation analysis of the exercise checks: how many automatically made wrong answers do they catch?

``python -m utilities.grading.mutation [--exercises a c] [--timeout 30] [--json out.json]`` (``make mutation``)

Each mutant is the reference solution with one small change inside one solution region
(``### BEGIN SOLUTION`` .. ``### END SOLUTION`` of ``exercises/source``): an operator, a constant, a
dimension, a slice bound, a comparison, a removed or swapped statement, a flipped boolean, a keyword
argument flipped or dropped, a parameter whose first call's value is kept for every later call (a function
that ignores that argument: the notebook's class or photo written in, or a cache) (:data:`KINDS`). The exercise's cells run with the mutant in place of the
solution (a fresh copy of the setup cell's globals, the one model shared), then its check. A mutant is

- **killed** when a check fails, or the cells or the check raise, or it runs past the timeout;
- **equivalent** when it survives and its answers equal the solution's on the inputs the check gave it
  *and* on a set of realistic inputs (:func:`realistic_inputs`): no test could tell it apart;
- **survived** otherwise: it behaves differently somewhere and the checks let it pass.

The score is killed / (generated - equivalent).

Why a small mutator on the standard library's :mod:`ast` (each mutant: one node of the cell's syntax tree
replaced, then :func:`ast.unparse`) rather than mutmut or cosmic-ray: neither is installed, both mutate
files on disk and run a test command per mutant, while the solutions live in notebook cells and the checks
need a model loaded once. Mutating the cell's tree in memory is deterministic (the same mutants in the same
order every run), needs no new dependency, and lets each mutant run in a process forked from one that has
the model and the checks' references ready (Linux ``fork``; a mutant cannot disturb the next one), killed
when it runs past the timeout. Elsewhere (``--no-fork``) mutants run in this process, with ``SIGALRM`` as
the timeout where it exists.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import difflib
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import nbformat
import numpy as np
import torch

from ..checks import EXERCISES, CheckResult
from ..models import LoadedModel, load_model
from .nbgrader_course import BEGIN, END, HINT, SOURCE_DIR, is_autograded

__all__ = [
    "DEFAULT_TIMEOUT",
    "KINDS",
    "OPEN_TASKS",
    "Cell",
    "ExerciseReport",
    "Input",
    "Mutant",
    "Outcome",
    "Program",
    "equal_observations",
    "exercise_program",
    "format_report",
    "main",
    "mutants",
    "mutate_source",
    "observe",
    "realistic_inputs",
    "run_exercise",
]

#: The kinds of mutation, in the order the report lists them.
KINDS = ("operator", "constant", "dim", "slice", "comparison", "statement", "reorder", "boolean", "keyword", "argument")
DEFAULT_TIMEOUT = 30.0  # seconds per mutant; the solutions' checks take well under 2 s here
DIM_KEYWORDS = {"dim", "axis", "dims", "axes", "start_dim", "end_dim"}
#: Methods and functions whose first positional int argument is a dimension.
DIM_FUNCTIONS = {"sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "softmax", "log_softmax", "squeeze",
                 "unsqueeze", "flatten", "stack", "cat", "size", "norm", "std", "var", "cumsum", "prod", "any", "all"}
DIM_VALUES = (0, 1, -1, -2)
#: Exercises whose task has more than one right answer: there a survivor may be another right answer, not a gap.
OPEN_TASKS = {
    "c": "changed_preprocess may change any one step, as long as the top class changes: a survivor that changes "
         "the same step in another way (another size, no antialiasing) can be another right answer.",
}
_OPERATORS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div, ast.Pow), ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mult), ast.Pow: (ast.Mult,), ast.Mod: (ast.FloorDiv,),
}
_COMPARISONS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE,), ast.LtE: (ast.Lt,), ast.Gt: (ast.GtE,), ast.GtE: (ast.Gt,), ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
}

# ----------------------------------------------------------------------------- the mutator

_NodePath = tuple[tuple[str, int | None], ...]  # from the module to a node: (field, index in a list field or None)


@dataclass(frozen=True)
class Mutant:
    """One changed version of a solution cell.

    Attributes:
        cell: index of the mutated cell in :attr:`Program.cells`.
        kind: one of :data:`KINDS`.
        description: what changed, e.g. ``line 3: width // 2 -> width // 2 + 1``.
        source: the whole cell's code with the change (as :func:`ast.unparse` writes it).
        diff: a unified diff of the cell's code, before and after.
    """

    cell: int
    kind: str
    description: str
    source: str
    diff: str

    @property
    def ident(self) -> str:
        """A stable name for the mutant: its cell and description."""
        return f"cell {self.cell}, {self.kind}: {self.description}"


def _children(node: ast.AST) -> Iterator[tuple[str, int | None, ast.AST]]:
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield name, index, item
        elif isinstance(value, ast.AST):
            yield name, None, value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_constant(node: ast.AST) -> int | None:
    """The int a node spells (``1``, ``-2``), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) and type(node.operand.value) is int:
        return -node.operand.value
    return None


def _const(value: Any) -> ast.expr:
    return ast.UnaryOp(ast.USub(), ast.Constant(-value)) if _number(value) and value < 0 else ast.Constant(value)


def _set(field_name: str, value: Any) -> Callable[[ast.AST], ast.AST]:
    def change(node: ast.AST) -> ast.AST:
        setattr(node, field_name, value() if callable(value) else value)
        return node
    return change


def _dim_changes(node: ast.expr) -> list[Callable[[ast.AST], ast.AST]]:
    """Other dimensions for a dimension argument: another of 0/1/-1/-2, or a tuple with one element dropped."""
    value = _int_constant(node)
    if value is not None:
        return [lambda _n, d=d: _const(d) for d in DIM_VALUES if d != value]
    if isinstance(node, ast.Tuple) and len(node.elts) > 1 and all(_int_constant(e) is not None for e in node.elts):
        return [lambda n, i=i: ast.Tuple([e for j, e in enumerate(n.elts) if j != i], ast.Load()) for i in range(len(node.elts))]
    return []


def _sites_of(node: ast.AST, path: _NodePath) -> Iterator[tuple[str, _NodePath, Callable[[ast.AST], ast.AST], list[ast.AST]]]:
    """The mutations of one node: (kind, path of the node to replace, change of a copy of it, the nodes it touches)."""
    here, touched = path, [node]
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        for new in _OPERATORS.get(type(node.op), ()):
            yield "operator", here, _set("op", new), touched
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
        yield "operator", here, lambda n: n.operand, touched
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "boolean", here, lambda n: n.operand, touched
    elif isinstance(node, ast.BoolOp):
        yield "boolean", here, _set("op", ast.Or() if isinstance(node.op, ast.And) else ast.And()), touched
    elif isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            for new in _COMPARISONS.get(type(op), ()):
                yield "comparison", here, lambda n, i=index, new=new: _replaced(n, "ops", i, new()), touched
    elif _int_constant(node) is not None and isinstance(node, ast.UnaryOp):  # -1: one number, not 1 negated
        for new in (_int_constant(node) + 1, _int_constant(node) - 1):
            yield "constant", here, lambda _n, new=new: _const(new), touched
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            yield "boolean", here, lambda n: ast.Constant(not n.value), touched
        elif type(node.value) is int:
            for new in (node.value + 1, node.value - 1):
                yield "constant", here, lambda _n, new=new: _const(new), touched
        elif isinstance(node.value, float):
            for new in (0.0, 1.0, 0.5):
                if new != node.value:
                    yield "constant", here, lambda _n, new=new: _const(new), touched
        elif isinstance(node.value, str) and node.value[-1:].isdigit():
            digit = int(node.value[-1])  # "layer4" -> "layer3", "layer5": names with a number
            for new in sorted({max(digit - 1, 0), digit + 1} - {digit}):
                yield "constant", here, lambda n, new=new: ast.Constant(n.value[:-1] + str(new)), touched
    elif isinstance(node, ast.keyword) and node.arg is not None:
        if node.arg in DIM_KEYWORDS:
            for change in _dim_changes(node.value):
                yield "dim", here + (("value", None),), change, touched
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            yield "keyword", here + (("value", None),), lambda n: ast.Constant(not n.value), touched
    elif isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        first = 0 if isinstance(node.func, ast.Attribute) else 1  # tensor.sum(0) / torch.sum(x, 0)
        if name in DIM_FUNCTIONS and len(node.args) > first:
            for change in _dim_changes(node.args[first]):
                yield "dim", here + (("args", first),), change, touched
        for index, keyword in enumerate(node.keywords):
            if keyword.arg is not None:  # dropped: the function's default instead
                yield "keyword", here, lambda n, i=index: _replaced(n, "keywords", i, None), [keyword]
    elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
        for change in _dim_changes(node.slice):
            yield "dim", here + (("slice", None),), change, touched
    elif isinstance(node, ast.Slice):
        for bound in ("lower", "upper"):
            if getattr(node, bound) is not None:
                for op in (ast.Add, ast.Sub):
                    yield "slice", here, lambda n, b=bound, op=op: _set(b, _plus(getattr(n, b), op))(n), touched
                yield "slice", here, _set(bound, None), touched
    if isinstance(node, ast.FunctionDef) and node.body:
        start = 1 if _is_docstring(node.body[0]) and len(node.body) > 1 else 0
        parameters = [argument.arg for argument in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
        used = {name.id for name in ast.walk(node) if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load)}
        for parameter in parameters:
            if parameter in used:
                yield "argument", here, lambda n, p=parameter, i=start: _kept_argument(n, p, i), [node.body[start]]
    if isinstance(node, (ast.If, ast.While, ast.IfExp)):
        yield "boolean", here, lambda n: _set("test", _negated(n.test))(n), [node.test]
    if isinstance(node, ast.With) and len(node.items) > 1:
        for index, item in enumerate(node.items):
            yield "statement", here, lambda n, i=index: _replaced(n, "items", i, None), [item.context_expr]
    if isinstance(node, ast.Try):
        yield "statement", here, lambda n: ast.If(ast.Constant(True), n.body, []), node.handlers  # no error handling
    for name, value in ast.iter_fields(node):
        if isinstance(value, list) and value and all(isinstance(item, ast.stmt) for item in value):
            for index, statement in enumerate(value):
                yield "statement", here, lambda n, f=name, i=index: _removed(n, f, i), [statement]
                if index + 1 < len(value):
                    yield "reorder", here, lambda n, f=name, i=index: _swapped(n, f, i), [statement, value[index + 1]]


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)


def _kept_argument(node: ast.FunctionDef, parameter: str, index: int) -> ast.FunctionDef:
    """The function with ``parameter`` rebound, first thing, to the value it had on the first call (kept on the function)."""
    statement = ast.parse(f"{parameter} = {node.name}.__dict__.setdefault({'_first_' + parameter!r}, {parameter})").body[0]
    node.body.insert(index, statement)
    return node


def _plus(bound: ast.expr, op: type) -> ast.expr:
    """``bound + 1`` or ``bound - 1``, as a number where ``bound`` is one."""
    value = _int_constant(bound)
    if value is not None:
        return _const(value + 1 if op is ast.Add else value - 1)
    return ast.BinOp(bound, op(), ast.Constant(1))


def _negated(test: ast.expr) -> ast.expr:
    return test.operand if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) else ast.UnaryOp(ast.Not(), test)


def _replaced(node: ast.AST, name: str, index: int, new: Any) -> ast.AST:
    """``node`` with item ``index`` of list field ``name`` replaced by ``new`` (None: removed)."""
    items = getattr(node, name)
    if new is None:
        items.pop(index)
    else:
        items[index] = new
    return node


def _removed(node: ast.AST, name: str, index: int) -> ast.AST:
    body = getattr(node, name)
    body.pop(index)
    if not body and name != "orelse":
        body.append(ast.Pass())  # a block must not be empty
    return node


def _swapped(node: ast.AST, name: str, index: int) -> ast.AST:
    body = getattr(node, name)
    body[index], body[index + 1] = body[index + 1], body[index]
    return node


def _locate(tree: ast.AST, path: _NodePath) -> tuple[ast.AST | None, str | None, int | None, ast.AST]:
    parent: ast.AST | None = None
    name: str | None = None
    index: int | None = None
    node = tree
    for name, index in path:
        parent = node
        node = getattr(parent, name)[index] if index is not None else getattr(parent, name)
    return parent, name, index, node


def _in_region(node: ast.AST, allowed: set[int] | None) -> bool:
    """Whether a node lies inside the lines that may change (a statement wholly, an expression by its first line)."""
    if allowed is None:
        return True
    if isinstance(node, ast.stmt):
        return all(line in allowed for line in range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return getattr(node, "lineno", 0) in allowed


def mutate_source(source: str, lines: Sequence[int] | None = None) -> list[tuple[str, str, str]]:
    """Every single-change mutant of some code, in a fixed order, without duplicates.

    Args:
        source: Python code (a cell or a function).
        lines: 1-based line numbers that may change (a solution region); ``None``: all. A statement
            removed or moved must lie wholly in them, an expression must start in them.

    Returns:
        (kind, description, mutated source) per mutant. The sources are :func:`ast.unparse`'s, each
        differs from ``ast.unparse`` of the unchanged code and from the others, and each compiles.

    Raises:
        SyntaxError: the source does not parse.
    """
    tree = ast.parse(source)
    original = ast.unparse(tree)
    allowed = set(lines) if lines is not None else None
    found: list[tuple[str, str, str]] = []
    seen = {original}

    def visit(node: ast.AST, path: _NodePath, parent: ast.AST | None) -> None:
        negative = isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub) and _int_constant(parent) is not None
        for kind, where, change, touched in [] if negative else _sites_of(node, path):
            if not all(_in_region(part, allowed) for part in touched):
                continue
            mutated = copy.deepcopy(tree)
            parent, name, index, target = _locate(mutated, where)
            replacement = change(target)
            if parent is None:
                mutated = replacement
            elif index is None:
                setattr(parent, name, replacement)
            else:
                getattr(parent, name)[index] = replacement
            ast.fix_missing_locations(mutated)
            try:
                text = ast.unparse(mutated)
                compile(text, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError):
                continue
            if text not in seen:
                seen.add(text)
                found.append((kind, _describe(kind, touched, original, text), text))
        for name, index, child in _children(node):
            visit(child, path + ((name, index),), node)

    visit(tree, (), None)
    return found


def _describe(kind: str, touched: list[ast.AST], original: str, mutated: str) -> str:
    """``line N: old -> new``; N counts in the code as given (comments included)."""
    line = min(getattr(node, "lineno", 0) for node in touched)
    first = [ast.unparse(node).splitlines()[0] for node in touched]
    if kind == "reorder":
        return f"line {line}: swapped {_short(first[0], 60)!r} and {_short(first[1], 60)!r}"
    if kind == "argument":
        match = re.search(r"^\s*(\w+) = (\w+)\.__dict__\.setdefault", mutated, re.MULTILINE)
        if match:
            return f"line {line}: {match.group(1)!r} of {match.group(2)}() kept from the first call (the argument ignored after it)"
    if kind == "statement" and isinstance(touched[0], ast.stmt):
        return f"line {line}: removed {_short(first[0])!r}"
    old_lines, new_lines = original.splitlines(), mutated.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        if tag != "equal":
            old = " / ".join(text.strip() for text in old_lines[i1:i2]) or "(nothing)"
            new = " / ".join(text.strip() for text in new_lines[j1:j2]) or "(nothing)"
            return f"line {line}: {_short(old)} -> {_short(new)}"
    return f"line {line}: no visible change"


def _short(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
# ----------------------------------------------------------------------------- the exercises as programs


@dataclass(frozen=True)
class Cell:
    """One code cell the exercise runs after its setup cell.

    Attributes:
        source: the solution version's code (marker and hint lines left out).
        region: 1-based lines of ``source`` inside a solution region; empty for a locked cell.
        grade_id: nbgrader's id of the cell.
    """

    source: str
    region: tuple[int, ...]
    grade_id: str


@dataclass(frozen=True)
class Program:
    """An exercise as the checks see it: setup cell, then cells that define the answers.

    Attributes:
        letter: the exercise.
        setup: the first code cell (imports, ``model``, the photo).
        cells: the cells run after it, in order; as ``tests/exercise_helpers.solution_namespace`` runs
            them: the cells that define functions, or every cell but the check where an answer is a value
            computed from an earlier cell (exercise c).
        names: the names the check takes, in its argument order (``model`` first).
    """

    letter: str
    setup: str
    cells: tuple[Cell, ...]
    names: tuple[str, ...]


def _solution_version(source: str) -> tuple[str, tuple[int, ...]]:
    """A source cell's solution version and the lines of its solution regions."""
    lines: list[str] = []
    region: list[int] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
        elif stripped == END:
            inside = False
        elif not stripped.startswith(HINT):
            lines.append(line)
            if inside:
                region.append(len(lines))
    return "\n".join(lines), tuple(region)


def exercise_program(letter: str, source_dir: Path = SOURCE_DIR) -> Program:
    """Read an exercise's source notebook.

    Args:
        letter: ``"a"`` .. ``"f"``.
        source_dir: the folder of the source notebooks.

    Returns:
        The exercise's program.

    Raises:
        FileNotFoundError: no source notebook for that letter.
    """
    found = sorted(source_dir.glob(f"exercise_{letter}_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no exercise_{letter}_*.ipynb in {source_dir}")
    code = [cell for cell in nbformat.read(found[0], as_version=4).cells if cell.cell_type == "code" and not is_autograded(cell)]
    cells = []
    for cell in code[1:]:
        source, region = _solution_version(cell.source)
        if not source.lstrip().startswith("check_"):
            cells.append(Cell(source, region, cell.metadata.get("nbgrader", {}).get("grade_id", "")))
    answers_are_values = any(cell.region and not cell.source.lstrip().startswith("def ") for cell in cells)
    if not answers_are_values:
        cells = [cell for cell in cells if cell.source.lstrip().startswith("def ")]
    return Program(letter, code[0].source, tuple(cells), EXERCISES[letter][1])


def mutants(program: Program) -> list[Mutant]:
    """All mutants of a program's solution regions, in a fixed order.

    Args:
        program: the exercise.

    Returns:
        One :class:`Mutant` per change (see :func:`mutate_source`).
    """
    found = []
    for index, cell in enumerate(program.cells):
        if not cell.region:
            continue
        original = ast.unparse(ast.parse(cell.source)).splitlines()
        for kind, description, source in mutate_source(cell.source, cell.region):
            diff = "\n".join(difflib.unified_diff(original, source.splitlines(), f"{cell.grade_id} (solution)", f"{cell.grade_id} (mutant)", n=1, lineterm=""))
            found.append(Mutant(index, kind, description, source, diff))
    return found


# ----------------------------------------------------------------------------- inputs and observations


@dataclass(frozen=True)
class Input:
    """Arguments for one answer function, with a label for the report.

    Paths in ``args`` are copied to a fresh temporary folder for every call (:class:`_Tree`,
    :class:`_NewPath`), so that a call cannot change what the next one sees.
    """

    label: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Tree:
    """A file or folder, snapshotted: copied afresh for each call."""

    path: Path


@dataclass(frozen=True)
class _NewPath:
    """A path that does not exist yet (an output folder): a fresh one, ``parts`` deep, for each call."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class _AsText:
    """A path argument given as a str, as a notebook may pass it."""

    path: Any


def _snapshot(value: Any, store: Path) -> Any:
    """A copy of an argument as it was when the check passed it, to replay later."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Path):
        if not value.exists():
            return _NewPath(value.parts[-2:])
        return _Tree(_copy_into_new_folder(value, store))
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(item, store) for item in value)
    if isinstance(value, dict):
        return {key: _snapshot(item, store) for key, item in value.items()}
    return value


def _copy_into_new_folder(source: Path, parent: Path) -> Path:
    """A copy of a file or folder, under its own name, in a new folder made inside ``parent``."""
    target = Path(tempfile.mkdtemp(dir=parent)) / source.name
    (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    return target


def _materialise(value: Any, scratch: Path) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, _Tree):
        return _copy_into_new_folder(value.path, scratch)
    if isinstance(value, _NewPath):
        return Path(tempfile.mkdtemp(dir=scratch)).joinpath(*value.parts)
    if isinstance(value, _AsText):
        return str(_materialise(value.path, scratch))
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item, scratch) for item in value)
    if isinstance(value, dict):
        return {key: _materialise(item, scratch) for key, item in value.items()}
    return value


def _normal(value: Any, scratch: Path) -> Any:
    """A comparable form of a value: arrays as NumPy, paths as what they hold, temporary folders' names left out."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().cpu().numpy().copy())
    if isinstance(value, np.ndarray):
        return ("array", value.copy())
    if isinstance(value, Path):
        where = str(value).replace(str(scratch), "<tmp>")
        if value.is_dir():
            files = {str(p.relative_to(value)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(value.rglob("*")) if p.is_file()}
            return ("folder", files)
        return ("file", hashlib.sha1(value.read_bytes()).hexdigest()) if value.is_file() else ("path", where)
    if isinstance(value, str):
        return _normal(Path(value), scratch) if value.startswith(str(scratch)) else value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_normal(item, scratch) for item in value])
    if isinstance(value, dict):
        return ("dict", {key: _normal(item, scratch) for key, item in value.items()})
    if isinstance(value, (int, float, bool, type(None), np.generic)):
        return value
    return ("object", type(value).__name__)  # a model, a module: compared by type only


def observe(function: Callable | Any, arguments: Input | None, scratch: Path) -> Any:
    """What an answer does on one input: its result (or error type) and its arguments afterwards.

    Args:
        function: the answer; for an answer that is a value (not called), the value.
        arguments: the input, or ``None`` for a value.
        scratch: a folder for the temporary copies of path arguments.

    Returns:
        A comparable observation (see :func:`equal_observations`).
    """
    if arguments is None:
        return _normal(function, scratch)
    args = _materialise(arguments.args, scratch)
    # In the scratch folder: a relative path among the inputs (the check's "relative overlays") lands there, not in
    # the folder the run was started from.
    with contextlib.chdir(scratch), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            result = ("returned", _normal(function(*args), scratch))
        except Exception as error:  # noqa: BLE001 - an error is an observation too
            result = ("raised", type(error).__name__)
    return result, _normal(args, scratch)  # the arguments too: an answer must not change its inputs


def equal_observations(first: Any, second: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Whether two observations are the same: equal structure, arrays of one shape and dtype within float tolerance.

    Args:
        first: an observation of :func:`observe`.
        second: another.
        rtol: relative tolerance for floats.
        atol: absolute tolerance for floats.

    Returns:
        True if no comparison tells them apart.
    """
    if isinstance(first, np.ndarray) or isinstance(second, np.ndarray):
        if not (isinstance(first, np.ndarray) and isinstance(second, np.ndarray)) or first.shape != second.shape or first.dtype != second.dtype:
            return False
        if first.dtype.kind in "fc":
            return bool(np.allclose(first, second, rtol=rtol, atol=atol, equal_nan=True))
        return bool(np.array_equal(first, second))
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(equal_observations(first[k], second[k], rtol, atol) for k in first)
    if isinstance(first, (list, tuple)) and isinstance(second, (list, tuple)):
        return type(first) is type(second) and len(first) == len(second) and all(
            equal_observations(a, b, rtol, atol) for a, b in zip(first, second))
    if isinstance(first, float) and isinstance(second, float) and type(first) is type(second):
        return math.isclose(first, second, rel_tol=rtol, abs_tol=atol) or (math.isnan(first) and math.isnan(second))
    return type(first) is type(second) and bool(first == second)


def _describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"array{tuple(value.shape)} {value.dtype}"
    if isinstance(value, LoadedModel):
        return f"model {value.name!r}"
    if isinstance(value, (_Tree, Path)):
        path = value.path if isinstance(value, _Tree) else value
        return f"folder {path.name!r} ({', '.join(sorted(p.name for p in path.iterdir()))})" if path.is_dir() else f"file {path.name!r}"
    if isinstance(value, _NewPath):
        return f"new folder {'/'.join(value.parts)!r}"
    if isinstance(value, _AsText):
        return f"{_describe_value(value.path)} as a str"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_describe_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_describe_value(v) for v in value) + "]"
    return _short(repr(value), 60)


def _resized(name: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    from ..images import DATA_DIR, load_image

    return np.array(Image.fromarray(load_image(DATA_DIR / name)).resize(size[::-1], Image.Resampling.BILINEAR))


def _messy_folder(root: Path) -> Path:
    """Photos under other names and formats, a text file, an empty image, a sub-folder with a photo."""
    from PIL import Image

    from ..images import DATA_DIR

    folder = root / "realistic photos"
    (folder / "trip").mkdir(parents=True)
    shutil.copy(DATA_DIR / "chelsea.jpg", folder / "chelsea.jpg")
    Image.open(DATA_DIR / "rocket.jpg").save(folder / "rocket.png")
    shutil.copy(DATA_DIR / "camera.png", folder / "scan")  # an image without an extension
    shutil.copy(DATA_DIR / "coffee.jpg", folder / "trip" / "coffee.jpg")
    (folder / "read me.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def realistic_inputs(letter: str, model: LoadedModel, store: Path) -> dict[str, list[Input]]:
    """Inputs a student's notebook could give each answer function, beyond the check's own.

    Other photos, sizes (odd widths), classes, masks, thresholds and map shapes than the checks use, at
    the notebook's input size; a survivor that differs from the solution on one of them is a real gap.

    Args:
        letter: the exercise.
        model: the model (the notebook's, full input size).
        store: a folder that lives as long as the inputs (for files).

    Returns:
        Answer name -> inputs; answers that are values (exercise c's ``new_top_class``) have none.
    """
    from ..cam import grad_cam
    from ..images import DATA_DIR, load_image

    generator = torch.Generator().manual_seed(0)
    pair = load_image(DATA_DIR / "cat_and_coffee.png")
    odd = _resized("chelsea.jpg", (150, 233))
    if letter == "a":
        classes = ["Egyptian cat", "espresso", "tabby", "cup"]
        maps = grad_cam(model, pair, classes).maps
        return {
            "cams_for_classes": [
                Input("the pair photo, the notebook's four classes", (model, pair, classes)),
                Input("Chelsea at 150x233, one class", (model, odd, ["tabby"])),
                Input("the pair photo, two classes in another order", (model, pair, ["cup", "Egyptian cat"])),
            ],
            "dominant_class": [
                Input("Grad-CAM maps of the pair photo, four classes", (maps, classes)),
                # peaked random maps of even and odd widths: one column can decide a half, so a half off by a column shows
                *(Input(f"random peaked maps #{k} {shape}", (torch.rand(*shape, generator=generator) ** 8, [f"class {i}" for i in range(shape[0])]))
                  for k, shape in enumerate([(3, 7, 9), (4, 5, 11), (2, 6, 10), (5, 8, 8), (3, 4, 13), (2, 9, 7)] * 4)),
            ],
        }
    if letter == "b":
        folder = _messy_folder(store)
        existing = store / "existing output"
        existing.mkdir()
        (existing / "earlier_cam.png").write_bytes(b"an earlier result")
        messy = "a folder of 3 photos (one without extension), a text file, an empty .jpg, a sub-folder"
        return {
            "explain_file": [Input(f"data/{name}", (model, DATA_DIR / name)) for name in ("chelsea.jpg", "camera.png", "chelsea_rgba.png")]
            + [Input("data/coffee.jpg as a str", (model, _AsText(DATA_DIR / "coffee.jpg")))],
            "explain_folder": [
                Input(messy + ", into a new folder", (model, _Tree(folder), _NewPath(("out", "overlays")))),
                Input(messy + ", both paths as str", (model, _AsText(_Tree(folder)), _AsText(_NewPath(("out", "overlays"))))),
                Input(messy + ", into a folder that exists", (model, _Tree(folder), _Tree(existing))),
            ],
        }
    if letter == "c":
        return {"changed_preprocess": [Input(f"photo {name}", (image,)) for name, image in
                                       (("coffee.jpg", load_image(DATA_DIR / "coffee.jpg")), ("Chelsea 150x233", odd), ("rocket.jpg", load_image(DATA_DIR / "rocket.jpg")))]}
    if letter == "d":
        height, width = pair.shape[:2]
        left = np.zeros((height, width), dtype=bool)
        left[:, : width // 2] = True
        box = np.zeros(odd.shape[:2], dtype=bool)
        box[30:120, 40:190] = True
        values = torch.rand(6, 4, generator=generator).tolist()
        stages = ("layer1", "layer2", "layer3", "layer4")
        shares = [dict(zip(stages, row)) for row in values]
        return {
            "localisation_shares": [
                Input("the pair photo, Egyptian cat, left half", (model, pair, "Egyptian cat", left)),
                Input("the pair photo, espresso, right half", (model, pair, "espresso", ~left)),
                Input("Chelsea 150x233, tabby, a box", (model, odd, "tabby", box)),
            ],
            "first_localised_stage": [
                Input("the notebook's made-up shares", ({"layer1": 0.5, "layer2": 0.62, "layer3": 0.55, "layer4": 0.9},)),
                Input("a share exactly at the threshold", ({"layer1": 0.2, "layer2": 0.8, "layer3": 0.9, "layer4": 0.95},)),
                Input("no stage reaches it", ({"layer1": 0.1, "layer2": 0.3, "layer3": 0.5, "layer4": 0.79},)),
                Input("keys from layer4 to layer1", ({"layer4": 0.9, "layer3": 0.85, "layer2": 0.1, "layer1": 0.2},)),
                Input("threshold 0.5", ({"layer1": 0.4, "layer2": 0.5, "layer3": 0.6, "layer4": 0.7}, 0.5)),
                *(Input(f"random shares #{k}, threshold {t}", (row, t)) for k, (row, t) in enumerate(zip(shares, (0.3, 0.5, 0.6, 0.7, 0.9, 0.99)))),
            ],
        }
    if letter == "e":
        return {
            "class_activation_maps": [Input("the pair photo", (model, pair)), Input("Chelsea 150x233", (model, odd))],
            "grad_cam_from_cams": [
                Input(f"random signed maps {shape}", (3 * torch.randn(*shape, generator=generator),))
                for shape in ((1000, 7, 7), (4, 7, 9), (2, 14, 14), (1, 1, 1))
            ],
        }
    if letter == "f":
        from ..planted import CLASSES, make_scenes

        scenes = make_scenes(12, seed=5, stamp_on=CLASSES[1], stamp_share=1.0)
        name = CLASSES[1] if CLASSES[1] in model.class_names else model.class_names[0]
        stamped = [int(i) for i in np.flatnonzero(scenes.stamped)[:3]]
        return {
            "box_reliance": [
                Input("three stamped scenes, the stamps' boxes as an array", (model, scenes.images[stamped], scenes.stamp_boxes[stamped], name)),
                Input("four scenes, the bars' boxes as a list", (model, list(scenes.images[:4]), [tuple(int(v) for v in box) for box in scenes.bar_boxes[:4]], name)),
            ],
        }
    raise ValueError(f"unknown exercise {letter!r}")


# ----------------------------------------------------------------------------- running mutants


@dataclass(frozen=True)
class Outcome:
    """What became of one mutant.

    Attributes:
        mutant: the mutant.
        status: ``"killed"``, ``"survived"`` (passes the checks, behaves differently) or ``"equivalent"``.
        reason: killed: the first failed check's message, the error, or the timeout; survived: the answer
            and input where it differs from the solution; equivalent: empty.
        seconds: how long it took.
    """

    mutant: Mutant
    status: str
    reason: str
    seconds: float


class _Timeout(BaseException):
    """Raised by SIGALRM where mutants run in this process; a BaseException, so no ``except Exception`` catches it."""


@dataclass
class _Exercise:
    """An exercise ready to run mutants: the setup's globals, the inputs, the solution's observations."""

    program: Program
    base: dict[str, Any]
    store: Path
    inputs: dict[str, list[Input | None]] = field(default_factory=dict)
    expected: dict[str, list[Any]] = field(default_factory=dict)  # empty until _observe_solution

    def namespace(self, replaced: Mapping[int, str] | None = None) -> dict[str, Any]:
        """The globals after the cells ran, with some cells' code replaced."""
        replaced = replaced or {}
        # arrays and tensors copied: a mutant must not change the photo the next one gets
        namespace = {k: v.copy() if isinstance(v, np.ndarray) else v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.base.items()}
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            for index, cell in enumerate(self.program.cells):
                source = replaced.get(index, cell.source)
                exec(compile(source, f"<exercise {self.program.letter}, {cell.grade_id}>", "exec"), namespace)  # noqa: S102
        return namespace

    def check(self, namespace: Mapping[str, Any]) -> CheckResult:
        check = EXERCISES[self.program.letter][0]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return check(*(namespace[name] for name in self.program.names), _grading=True)


def _prepare(program: Program, model: LoadedModel, store: Path) -> _Exercise:
    """Run the setup cell once, the solution and its check with recorded inputs, and observe the solution."""
    base: dict[str, Any] = {}
    before = os.environ.get("GRADCAM_MODEL")
    os.environ["GRADCAM_MODEL"] = model.name  # the setup cell's load_model() then loads the same network
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            exec(compile(program.setup, f"<exercise {program.letter}, setup>", "exec"), base)  # noqa: S102
    finally:
        if before is None:
            del os.environ["GRADCAM_MODEL"]
        else:
            os.environ["GRADCAM_MODEL"] = before
    base["model"] = model
    exercise = _Exercise(program, base, store)
    namespace = exercise.namespace()
    recorded: dict[str, list[Input | None]] = {}
    for name in program.names[1:]:
        value = namespace[name]
        if callable(value):
            calls: list[Input | None] = []
            recorded[name] = calls
            namespace[name] = _recording(value, calls, store)
        else:
            recorded[name] = [None]
    result = exercise.check(namespace)
    if not result.correct:
        raise RuntimeError(f"the solution of exercise {program.letter} fails its checks:\n{result}")
    exercise.inputs = recorded
    return exercise


def _observe_solution(exercise: _Exercise, model: LoadedModel) -> None:
    """Add the realistic inputs, and observe the solution on every input (once, before the first comparison)."""
    for name, inputs in realistic_inputs(exercise.program.letter, model, exercise.store).items():
        exercise.inputs[name] = exercise.inputs[name] + list(inputs)
    solution = exercise.namespace()
    scratch = Path(tempfile.mkdtemp(dir=exercise.store))
    exercise.expected = {name: [observe(solution[name], item, scratch) for item in items] for name, items in exercise.inputs.items()}


def _recording(function: Callable, calls: list[Input | None], store: Path) -> Callable:
    # functools.wraps: the check reads the answer's signature (its parameters' names) through __wrapped__.
    @functools.wraps(function)
    def recording(*args: Any) -> Any:
        snapshot = _snapshot(args, store)
        calls.append(Input(f"check input #{len(calls) + 1}: ({', '.join(_describe_value(a) for a in snapshot)})", snapshot))
        return function(*args)

    return recording


def _evaluate(exercise: _Exercise, mutant: Mutant, send: Callable[[tuple[str, str]], None]) -> None:
    """Run one mutant; send ("killed", reason) or ("passed", ""), then, once the solution has been observed
    (:func:`_observe_solution`), ("survived", where) or ("equivalent", "")."""
    try:
        namespace = exercise.namespace({mutant.cell: mutant.source})
        result = exercise.check(namespace)
    except Exception as error:  # noqa: BLE001 - a mutant that raises is killed
        send(("killed", f"raised {type(error).__name__}: {_short(str(error).strip().splitlines()[0] if str(error).strip() else '')}"))
        return
    if not result.correct:
        send(("killed", _short(result.problems[0] if result.problems else "a check failed")))
        return
    send(("passed", ""))
    if not exercise.expected:
        return  # first the checks of every mutant; the solution is observed only if one passes them
    scratch = Path(tempfile.mkdtemp(dir=exercise.store))
    for name, items in exercise.inputs.items():
        for item, expected in zip(items, exercise.expected[name]):
            got = observe(namespace.get(name), item, scratch)
            if not equal_observations(got, expected):
                where = f"{item.label} {_describe_value(item.args)}" if item and not item.label.startswith("check input") else item.label if item else "its value"
                send(("survived", f"{name} differs on {_short(where, 200)}: the solution {_brief(expected)}, the mutant {_brief(got)}"))
                return
    send(("equivalent", ""))


def _brief(observation: Any) -> str:
    """What an observation's answer was, in a few words."""

    def value(item: Any) -> str:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            kind, content = item
            if kind in ("tensor", "array"):
                return f"{kind}{tuple(content.shape)}" + (f" max {content.max():.4g}" if content.size and content.dtype.kind in "fiu" else "")
            if kind == "folder":
                return f"a folder of {len(content)} files"
            if kind == "dict":
                return "{" + ", ".join(f"{k!r}: {value(v)}" for k, v in content.items()) + "}"
            if kind in ("list", "tuple"):
                return "[" + ", ".join(value(v) for v in content) + "]"
        return f"{item:.4g}" if isinstance(item, float) else repr(item)

    if not isinstance(observation, tuple) or len(observation) != 2 or not isinstance(observation[0], tuple):
        return _short(value(observation), 100)
    (how, result), _ = observation
    return f"raises {result}" if how == "raised" else f"returns {_short(value(result), 100)}"


def _child(exercise: _Exercise, mutant: Mutant, writer: Any) -> None:
    from .kernels import DEFAULT_MEMORY_LIMIT, _limit_memory

    _limit_memory(DEFAULT_MEMORY_LIMIT)  # a mutant that allocates without end gets a MemoryError
    try:
        _evaluate(exercise, mutant, writer.send)
    except BaseException as error:  # noqa: BLE001 - whatever happens, the parent hears of it
        writer.send(("killed", f"raised {type(error).__name__}"))
    finally:
        writer.close()


def _run_forked(exercise: _Exercise, mutant: Mutant, timeout: float) -> list[tuple[str, str]]:
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(exercise, mutant, writer), daemon=True)
    process.start()
    writer.close()
    messages: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while not messages or (messages[-1][0] == "passed" and exercise.expected):
            if not reader.poll(max(deadline - time.monotonic(), 0)):
                messages.append(("timeout", f"ran past the timeout ({timeout:g} s)"))
                break
            messages.append(reader.recv())
    except EOFError:
        process.join(5)
        messages.append(("died", f"the process ended without a result (exit code {process.exitcode})"))
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        reader.close()
    return messages


def _run_here(exercise: _Exercise, mutant: Mutant, timeout: float) -> list[tuple[str, str]]:
    messages: list[tuple[str, str]] = []
    alarm = hasattr(signal, "setitimer")

    def expire(*_: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire) if alarm else None
    try:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        _evaluate(exercise, mutant, messages.append)
    except _Timeout:
        messages.append(("timeout", f"ran past the timeout ({timeout:g} s)"))
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return messages


def _outcome(mutant: Mutant, messages: list[tuple[str, str]], seconds: float) -> Outcome:
    passed = any(kind == "passed" for kind, _ in messages)
    kind, reason = messages[-1] if messages else ("died", "no result")
    if kind in ("killed", "survived", "equivalent"):
        return Outcome(mutant, kind, reason, seconds)
    if passed:  # passed the checks, then hung or crashed on another input: it behaves differently
        return Outcome(mutant, "survived", f"passes the checks, then {reason} on the realistic inputs", seconds)
    return Outcome(mutant, "killed", reason, seconds)


@dataclass
class ExerciseReport:
    """One exercise's mutation analysis.

    Attributes:
        letter: the exercise.
        outcomes: one per mutant run.
        seconds: the whole exercise's time, preparation included.
    """

    letter: str
    outcomes: list[Outcome]
    seconds: float

    def count(self, status: str) -> int:
        """Mutants with that status."""
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def score(self) -> float:
        """Killed / non-equivalent mutants (1 when every mutant is equivalent)."""
        relevant = len(self.outcomes) - self.count("equivalent")
        return self.count("killed") / relevant if relevant else 1.0


def run_exercise(
    letter: str,
    model: LoadedModel,
    *,
    select: Callable[[Mutant], bool] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    fork: bool | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> ExerciseReport:
    """Generate an exercise's mutants and run each against its checks.

    Args:
        letter: ``"a"`` .. ``"f"``.
        model: the model, loaded once (the checks' references are computed once per network).
        select: run only the mutants it accepts (default: all).
        timeout: seconds per mutant.
        fork: run each mutant in a forked process (default: on Linux); otherwise here, with SIGALRM.
        progress: called with each outcome as it comes.

    Returns:
        The outcomes.

    Raises:
        RuntimeError: the solution itself fails its checks.
    """
    started = time.perf_counter()
    fork = sys.platform.startswith("linux") if fork is None else fork
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small inputs; and a forked child must not inherit a busy thread pool
    store = Path(tempfile.mkdtemp(prefix=f"mutation-{letter}-"))
    outcomes = []
    try:
        program = exercise_program(letter)
        exercise = _prepare(program, model, store)
        run = _run_forked if fork else _run_here
        passed: list[tuple[Mutant, float]] = []
        for mutant in mutants(program):
            if select is not None and not select(mutant):
                continue
            begun = time.perf_counter()
            messages = run(exercise, mutant, timeout)
            if messages[-1][0] == "passed":  # compared with the solution below
                passed.append((mutant, time.perf_counter() - begun))
                continue
            outcomes.append(_outcome(mutant, messages, time.perf_counter() - begun))
            if progress is not None:
                progress(outcomes[-1])
        if passed:
            _observe_solution(exercise, model)
        for mutant, seconds in passed:
            begun = time.perf_counter()
            messages = run(exercise, mutant, timeout)
            outcomes.append(_outcome(mutant, messages, seconds + time.perf_counter() - begun))
            if progress is not None:
                progress(outcomes[-1])
        order = {mutant.ident: index for index, mutant in enumerate(mutants(program))}
        outcomes.sort(key=lambda outcome: order[outcome.mutant.ident])
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(store, ignore_errors=True)
    return ExerciseReport(letter, outcomes, time.perf_counter() - started)


# ----------------------------------------------------------------------------- the report


def format_report(reports: Sequence[ExerciseReport], *, diffs: bool = True) -> str:
    """The table per exercise, then each surviving mutant (with its diff) and each equivalent one.

    Args:
        reports: the exercises' reports.
        diffs: show each survivor's diff.

    Returns:
        The report as text.
    """
    lines = [f"{'exercise':<9}{'generated':>10}{'killed':>8}{'survived':>10}{'equivalent':>12}{'score':>8}{'seconds':>9}"]
    for report in reports:
        lines.append(f"{report.letter:<9}{len(report.outcomes):>10}{report.count('killed'):>8}{report.count('survived'):>10}"
                     f"{report.count('equivalent'):>12}{report.score:>8.0%}{report.seconds:>9.0f}")
    total = [o for r in reports for o in r.outcomes]
    killed, equivalent = sum(o.status == "killed" for o in total), sum(o.status == "equivalent" for o in total)
    score = killed / (len(total) - equivalent) if len(total) > equivalent else 1.0
    lines.append(f"{'all':<9}{len(total):>10}{killed:>8}{sum(o.status == 'survived' for o in total):>10}{equivalent:>12}"
                 f"{score:>8.0%}{sum(r.seconds for r in reports):>9.0f}")
    lines.append("score = killed / (generated - equivalent); equivalent = same answers as the solution on the check's "
                 "inputs and on realistic ones.")
    for report in reports:
        survivors = [o for o in report.outcomes if o.status == "survived"]
        same = [o for o in report.outcomes if o.status == "equivalent"]
        if survivors:
            lines += ["", f"Exercise {report.letter}: {len(survivors)} survived, behaving differently"]
            if report.letter in OPEN_TASKS:
                lines.append(f"  (note: {OPEN_TASKS[report.letter]})")
            for kind in KINDS:
                for outcome in (o for o in survivors if o.mutant.kind == kind):
                    lines.append(f"  [{kind}] {outcome.mutant.description}")
                    lines.append(f"      {outcome.reason}")
                    if diffs:
                        lines += [f"      {line}" for line in outcome.mutant.diff.splitlines()]
        if same:
            lines += ["", f"Exercise {report.letter}: {len(same)} equivalent on the check's and the realistic inputs"]
            lines += [f"  [{o.mutant.kind}] {o.mutant.description}" for o in same]
    return "\n".join(lines)


def _as_json(reports: Sequence[ExerciseReport]) -> dict[str, Any]:
    return {report.letter: {
        "seconds": report.seconds, "score": report.score,
        "mutants": [{"cell": o.mutant.cell, "kind": o.mutant.kind, "description": o.mutant.description, "status": o.status,
                     "reason": o.reason, "seconds": round(o.seconds, 3), "diff": o.mutant.diff} for o in report.outcomes],
    } for report in reports}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m utilities.grading.mutation``: the mutation analysis of the exercise checks.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 (the analysis reports; it does not judge).
    """
    parser = argparse.ArgumentParser(prog="python -m utilities.grading.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("--exercises", nargs="+", choices=sorted(EXERCISES), default=sorted(EXERCISES))
    parser.add_argument("--model", default="efficientnet_lite0", help="the model to check with (default: the bundled one)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per mutant")
    parser.add_argument("--no-fork", action="store_true", help="run mutants in this process (SIGALRM as the timeout)")
    parser.add_argument("--no-diffs", action="store_true", help="list survivors without their diffs")
    parser.add_argument("--json", type=Path, help="also write every mutant's outcome to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADCAM_NONINTERACTIVE", "1")
    started = time.perf_counter()
    model = load_model(args.model)
    reports = []
    for letter in args.exercises:
        count = [0]

        def progress(outcome: Outcome, count: list[int] = count) -> None:
            count[0] += 1
            print(f"\rexercise {letter}: {count[0]} mutants run", end="", file=sys.stderr, flush=True)

        reports.append(run_exercise(letter, model, timeout=args.timeout, fork=False if args.no_fork else None, progress=progress))
        print(file=sys.stderr)
    print(format_report(reports, diffs=not args.no_diffs))
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(_as_json(reports), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
