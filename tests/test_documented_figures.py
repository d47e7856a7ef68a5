"""One set of numbers: the memory figures the README and the teacher's guide state follow from the README's measured
table (make bench-memory), and the two documents state the same ones."""

from __future__ import annotations

import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_MB = 90  # JupyterLab's server, as the README says


def _table() -> dict[str, dict[str, int]]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Memory: what a learner needs") :]
    rows = [line for line in section.splitlines() if line.startswith("| ")][:3]
    notebooks = [cell.strip() for cell in rows[0].strip("|").split("|")][1:]
    values = {row.split("|")[1].strip(): [int(cell) for cell in row.strip("|").split("|")[1:]] for row in rows[1:]}
    return {label: dict(zip(notebooks, numbers)) for label, numbers in values.items()}


def _gb(megabytes: float) -> str:
    """Rounded up to a tenth: a budget must not fall short of what was measured."""
    return f"{math.ceil(megabytes / 1024 * 10) / 10:.1f} GB"


def test_the_table_covers_every_lesson():
    table = _table()
    lessons = {path.name.split("_")[0] for path in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")}
    assert set(table["kernel's peak (MB)"]) == lessons == set(table["kept after the last cell (MB)"])


def _photo_mb(readme: str) -> int:
    """What a 12-megapixel photo adds, as the README's photo bullet says (make bench-photo)."""
    return int(re.search(r"`show_cam` needs (\d+) MB more", readme).group(1))


def test_per_learner_figures_follow_from_the_table_in_both_documents():
    table = _table()
    photo_mb = _photo_mb((ROOT / "README.md").read_text())
    one = max(table["kernel's peak (MB)"].values()) + SERVER_MB
    three = sum(sorted(table["kept after the last cell (MB)"].values())[-3:]) + SERVER_MB
    readme, guide = (ROOT / "README.md").read_text(), (ROOT / "exercises" / "TEACHER_GUIDE.md").read_text()
    assert f"**One notebook open at a time: {_gb(one)}**" in readme and f"**{_gb(one + photo_mb)}** with" in readme
    assert f"**Three notebooks open: up to {_gb(three)}** ({_gb(three + photo_mb)} with a photo)" in readme
    kept = table["kept after the last cell (MB)"]
    worst = sorted(kept, key=kept.get)[-3:][::-1]
    named = re.search(r"the worst three \(([^)]*)\s+still\s+running\) hold ([\d +]+) MB", readme)
    assert named, "the README names the three notebooks that keep the most"
    assert set(re.split(r",\s*|\s+and\s+", named.group(1).replace("\n", " "))) == set(worst), worst
    assert [int(n) for n in named.group(2).split("+")] == [kept[n] for n in worst]
    assert f"**Per learner: {_gb(one + photo_mb)}**" in guide and f"**{_gb(three + photo_mb)}** if they leave three" in guide
    assert f"singleuser.memory.limit: {_gb(one + photo_mb).split()[0]}G" in guide
    # make bench-hub's class on the hub, said the same way in both
    eight = re.search(r"\| 8 \| (\d+ to \d+ s) \| (\d+ to \d+ s) \| ([\d.]+ GB)", readme)
    sixteen = re.search(r"\| 16 \| (\d+ to \d+ s) \| (\d+ to \d+ s) \| ([\d.]+ GB)", readme)
    assert eight and sixteen, "the README has make bench-hub's rows for 8 and 16 learners"
    flat = " ".join(guide.split())
    assert f"first figure after {eight.group(1)} and finished lesson 00 after {eight.group(2)}" in flat
    assert f"with 16, after {sixteen.group(1)} and {sixteen.group(2)}" in flat
    assert f"peaked at {eight.group(3)} for 8" in flat and f"{sixteen.group(3)} for 16" in flat


def test_the_guide_states_the_readmes_grading_times():
    readme, guide = (ROOT / "README.md").read_text(), (ROOT / "exercises" / "TEACHER_GUIDE.md").read_text()
    row = re.search(r"\| grading 60 submissions of 4 notebooks \| ([\d.]+) min with `--jobs 1`, ([\d.]+) min with `--jobs 2` \(([\d.]+)x\)", readme)
    assert row, "the README's Speed table has the grading row"
    one, two, ratio = row.groups()
    assert f"`--jobs 1` {one} minutes" in guide and f"`--jobs 2` {two} minutes" in guide and f"{ratio} times the rate" in guide
    assert f"({60 / float(one):.1f} submissions per minute)" in guide and f"({60 / float(two):.1f} per minute" in guide


def test_the_guide_states_the_tables_range_of_kernel_peaks():
    peaks = _table()["kernel's peak (MB)"].values()
    low, high = min(peaks), max(peaks)
    guide = (ROOT / "exercises" / "TEACHER_GUIDE.md").read_text()
    gib = lambda megabytes: f"{megabytes / 1024:.2f}"
    assert f"peaks at {gib(low)} to {gib(high)} GB ({low} to {high} MB;" in guide
