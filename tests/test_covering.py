"""utilities.covering: a map's content in a box, painted boxes, and the table of notebooks 0b to 0d."""

from __future__ import annotations

import numpy as np
import pytest

from utilities import grad_cam
from utilities.covering import FILLS, box_area, cell_share, content_in, covering_table, paint, pixel_change


@pytest.fixture(scope="module")
def cat_maps(lite_model, data_dir):
    return grad_cam(lite_model, data_dir / "chelsea.jpg", ["Egyptian cat", "tabby"])


def test_the_whole_photo_holds_every_cell_and_halves_split_the_sum(cat_maps):
    height, width = cat_maps.image_size
    whole = [(0, 0, width, height)]
    assert cell_share(cat_maps, whole) == pytest.approx(1.0)
    assert content_in(cat_maps, whole) == pytest.approx([float(cells.sum()) for cells in cat_maps.raw], rel=1e-5)
    left, right = [(0, 0, width // 2, height)], [(width // 2, 0, width, height)]
    halves = [a + b for a, b in zip(content_in(cat_maps, left), content_in(cat_maps, right))]
    assert halves == pytest.approx(content_in(cat_maps, whole), rel=1e-5)
    assert box_area(left, cat_maps.image_size) + box_area(right, cat_maps.image_size) == pytest.approx(1.0)


def test_painting_changes_only_the_box():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    box = [(10, 5, 30, 25), (50, 40, 70, 55)]
    outside = np.ones(photo.shape[:2], dtype=bool)
    for x0, y0, x1, y1 in box:
        outside[y0:y1, x0:x1] = False
    for fill in FILLS:
        painted = paint(photo, box, fill)
        assert painted.dtype == np.uint8 and painted.shape == photo.shape
        assert (painted[outside] == photo[outside]).all(), fill
    assert (paint(photo, box, "black")[5:25, 10:30] == 0).all()
    mean = photo.reshape(-1, 3).mean(axis=0).round()
    assert (paint(photo, box, "mean")[40:55, 50:70] == mean).all()
    flat = np.full((40, 40, 3), 90, dtype=np.uint8)
    assert pixel_change(flat, [(5, 5, 20, 20)], "mean") == 0 and pixel_change(flat, [(5, 5, 20, 20)], "black") == 90
    assert pixel_change(flat, [(5, 5, 20, 20)], "blur") == pytest.approx(0, abs=1)
    with pytest.raises(ValueError, match="fill"):
        paint(photo, box, "grey")


def test_the_table_reads_the_maps_and_the_painted_photos(lite_model, data_dir, cat_maps, capsys):
    box = [(150, 60, 300, 250)]
    rows = covering_table(lite_model, data_dir / "chelsea.jpg", cat_maps, {"cat": box, "nothing": [(0, 0, 1, 1)]})
    printed = capsys.readouterr().out
    assert "cat" in printed and "top class" in printed
    assert rows["cat"]["map"] == pytest.approx(content_in(cat_maps, box))
    assert set(rows["cat"]["covered"]) == {"mean", "blur"} and len(rows["cat"]["covered"]["mean"]) == len(cat_maps)
    # A one-pixel box barely changes the photo, so barely the logits.
    assert max(abs(change) for changes in rows["nothing"]["covered"].values() for change in changes) < 0.05
