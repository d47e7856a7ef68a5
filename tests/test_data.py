import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_script_reproduces_the_committed_images(tmp_path):
    script = runpy.run_path(str(ROOT / "scripts" / "make_example_images.py"))
    script["main"](tmp_path)
    committed = sorted(p.name for p in (ROOT / "data").iterdir() if p.name != "README.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (ROOT / "data" / name).read_bytes(), name


def test_every_image_has_its_source_and_licence():
    readme = (ROOT / "data" / "README.md").read_text()
    for path in (ROOT / "data").iterdir():
        if path.name != "README.md":
            row = next((line for line in readme.splitlines() if f"`{path.name}`" in line), "")
            assert row and ("CC0" in row or "public domain" in row), path.name
