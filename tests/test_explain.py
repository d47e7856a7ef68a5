import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utilities import GradCAM, grad_cam, load_image, overlay_cam
from utilities.plotting import CAM_COLORMAP
from utilities.explain import CSV_COLUMNS, CSV_NAME, RELIABLE_IMAGE_SIDE, explain_images, overlay_name
from utilities.explain.__main__ import EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, METHODS_BY_OPTION, main

MODEL = ["--model", "efficientnet_lite0"]
GOOD = {"chelsea.jpg": (64, 96), "coffee.png": (60, 90)}  # name -> (height, width), small to keep the run fast


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir) -> Path:
    """A folder with two good images, four bad files and a sub-folder."""
    folder = tmp_path_factory.mktemp("explain") / "photos"
    (folder / "sub").mkdir(parents=True)
    for (name, (height, width)), source in zip(GOOD.items(), ("chelsea.jpg", "coffee.jpg")):
        Image.open(data_dir / source).convert("RGB").resize((width, height)).save(folder / name)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((data_dir / "chelsea.jpg").read_bytes()[:2000])
    Image.new("RGB", (4, 4)).save(folder / "tiny.png")
    Image.new("RGB", (32, 32)).save(folder / "sub" / "inside.png")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    return folder


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / CSV_NAME).open(newline="", encoding="utf-8") as csv_file:
        reader = csv.DictReader(csv_file)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


def test_strict_exits_1_when_a_file_was_skipped_and_nothing_explained_exits_1_always(inputs, tmp_path, capsys):
    one_good_one_bad = [str(inputs / "chelsea.jpg"), str(inputs / "notes.txt")]
    assert main([*one_good_one_bad, "--strict", "--out", str(tmp_path / "strict"), *MODEL]) == EXIT_SKIPPED
    assert (tmp_path / "strict" / CSV_NAME).exists()  # --strict changes the exit status only
    only_bad = [str(inputs / "notes.txt"), str(inputs / "empty.jpg")]
    assert main([*only_bad, "--out", str(tmp_path / "none"), *MODEL]) == EXIT_SKIPPED
    assert "Explained 0 of 2 path(s)" in capsys.readouterr().out


def test_a_folder_with_bad_files_explains_the_images_and_reports_the_rest(inputs, tmp_path, capsys, lite_model):
    out = tmp_path / "cams"
    # Skipped files are a normal outcome, listed at the end: the run exits 0 so that make does not report an error.
    assert main([str(inputs), "--top-k", "2", "--out", str(out), *MODEL]) == EXIT_OK
    rows = _rows(out)
    assert [Path(row["file"]).name for row in rows] == ["chelsea.jpg", "chelsea.jpg", "coffee.png", "coffee.png"]
    assert sorted(path.name for path in out.iterdir()) == sorted([CSV_NAME, *(row["overlay"] for row in rows)])
    for row in rows:
        assert row["layer"] == "layer4" and row["method"] == "Grad-CAM"
        assert row["overlay"] == f"{Path(row['file']).stem}_{row['class'].lower().replace(' ', '_')}.png"
        height, width = GOOD[Path(row["file"]).name]
        with Image.open(out / row["overlay"]) as overlay:
            assert overlay.size == (width, height) and overlay.mode == "RGB"
        # The values: the model's own probability and the map's peak, in the image's pixels.
        pixels = load_image(row["file"])
        index = int(row["class_index"])
        assert lite_model.class_names[index] == row["class"]
        expected = grad_cam(lite_model, pixels, index)
        assert float(row["probability"]) == pytest.approx(float(expected.probabilities[0]), abs=1e-6)
        peak = np.unravel_index(int(expected.map_for(index).argmax()), (height, width))
        assert (int(row["peak_row"]), int(row["peak_column"])) == tuple(int(i) for i in peak)
        # the overlay is the map in the course's colormap (same model, same map: equal up to rounding)
        with Image.open(out / row["overlay"]) as overlay:
            saved = np.asarray(overlay).astype(int)
        assert np.abs(saved - overlay_cam(pixels, expected.map_for(index), cmap=CAM_COLORMAP)).max() <= 1
    for first, second in (rows[0:2], rows[2:4]):  # top 2: most probable first
        assert float(first["probability"]) >= float(second["probability"])

    captured = capsys.readouterr()
    assert "Explained 2 of 7 path(s) given or found in the folders: 4 overlay(s)" in captured.out
    assert "Skipped 5, listed below." in captured.out  # 2 + 5 = 7: the sub-folder counts in both
    report = captured.err[captured.err.index("Skipped 5:") :]
    reasons = {line.split(": ", 1)[0].strip(): line.split(": ", 1)[1] for line in report.splitlines()[1:]}
    assert {Path(path).name for path in reasons} == {"sub", "notes.txt", "empty.jpg", "truncated.jpg", "tiny.png"}
    by_name = {Path(path).name: reason for path, reason in reasons.items()}
    assert "not searched recursively" in by_name["sub"]
    assert "cannot identify image file" in by_name["notes.txt"]
    assert "empty file" in by_name["empty.jpg"]
    assert "truncated" in by_name["truncated.jpg"]
    assert "4x4 pixels" in by_name["tiny.png"]
    assert ".DS_Store" not in captured.err


def test_named_classes_in_files_given_one_by_one(inputs, tmp_path, lite_model):
    out = tmp_path / "new" / "cams"  # created with its parents
    files = [str(inputs / name) for name in GOOD]
    argv = [*files, files[0], "--classes", "egyptian cat", "967", "Egyptian cat", "--method", "gradcampp", "--out", str(out), *MODEL]
    assert main(argv) == EXIT_OK
    rows = _rows(out)
    # The repeated file and class are explained once.
    assert [(Path(row["file"]).name, row["class"]) for row in rows] == [
        ("chelsea.jpg", "Egyptian cat"), ("chelsea.jpg", "espresso"), ("coffee.png", "Egyptian cat"), ("coffee.png", "espresso")
    ]
    assert {row["method"] for row in rows} == {"Grad-CAM++"}
    assert all((out / row["overlay"]).is_file() for row in rows)


def test_overlays_in_another_colormap(inputs, tmp_path, lite_model):
    out = tmp_path / "cams"
    assert main([str(inputs / "chelsea.jpg"), "--cmap", "jet", "--out", str(out), *MODEL]) == EXIT_OK
    (row,) = _rows(out)
    pixels = load_image(row["file"])
    expected = overlay_cam(pixels, grad_cam(lite_model, pixels, int(row["class_index"])).maps[0], cmap="jet")
    with Image.open(out / row["overlay"]) as overlay:
        assert np.abs(np.asarray(overlay).astype(int) - expected).max() <= 1


def test_an_output_folder_inside_the_input_folder_is_passed_over(tmp_path, data_dir, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(data_dir / "chelsea.jpg").resize((72, 48)).save(photos / "chelsea.jpg")
    argv = [str(photos), "--out", str(photos / "cams"), *MODEL]
    assert main(argv) == EXIT_OK
    assert main(argv) == EXIT_OK  # the second run finds cams/ in photos/ and leaves it out silently
    assert "Skipped" not in capsys.readouterr().err
    assert [Path(row["file"]).name for row in _rows(photos / "cams")] == ["chelsea.jpg"]


def test_an_error_while_explaining_one_image_skips_only_that_image(inputs, tmp_path, lite_model):
    method = GradCAM(lite_model)
    calls = []

    def failing_second_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return GradCAM.__call__(method, *args, **kwargs)

    images = [inputs / name for name in GOOD]
    report = explain_images(lite_model, failing_second_call, images, tmp_path / "cams")
    assert report.explained_files == [str(images[0])]
    assert [(entry.path, entry.reason) for entry in report.skipped] == [
        (images[1], "could not be explained: RuntimeError: out of memory")
    ]
    assert len(_rows(tmp_path / "cams")) == 1


@pytest.mark.parametrize("where", ["the input folder", "the folder of an input file"])
def test_refuses_an_output_folder_that_holds_inputs(inputs, capsys, where):
    before = sorted(inputs.rglob("*"))
    path = str(inputs) if where == "the input folder" else str(inputs / "chelsea.jpg")
    assert main([path, "--out", str(inputs), *MODEL]) == EXIT_USAGE
    assert "holds input files" in capsys.readouterr().err
    assert sorted(inputs.rglob("*")) == before


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["{good}", "--classes", "Egyptian kat"], "Egyptian cat"),  # the close names are suggested
        (["{good}", "--classes", "1000"], "out of range"),
        (["{good}", "--top-k", "0"], "at least 1"),
        (["{good}", "--layer", "layer9"], "layer9"),
        (["{good}", "--model", "no_such_model"], "no_such_model"),
        (["{missing}"], "No such file or folder"),
        (["{good}", "--out", "{good}"], "is a file"),
        (["{good}", "--method", "gradcam2"], "invalid choice"),
        (["{good}", "--cmap", "jett"], "Unknown colormap 'jett'"),
        (["{good}", "--classes", "espresso", "--top-k", "2"], "not allowed with"),
        (["{good}"], "required: --out"),
    ],
)
def test_usage_errors_exit_with_2_and_write_nothing(inputs, tmp_path, capsys, arguments, message):
    out = tmp_path / "cams"
    values = {"good": str(inputs / "chelsea.jpg"), "missing": str(inputs / "missing.jpg")}
    argv = [argument.format(**values) for argument in arguments]
    if "--out" not in argv and message != "required: --out":
        argv += ["--out", str(out)]
    if "--model" not in argv:
        argv += MODEL
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_help_explains_the_outputs_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for expected in ("exit status", "peak_row", "sub-folders are not searched", "must not be a folder", "--cmap",
                     f"default colormap, {CAM_COLORMAP}", "scaled by its\nown minimum and maximum", *METHODS_BY_OPTION):
        assert expected in text


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "utilities.explain", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m utilities.explain")


def test_method_options_are_the_short_names():
    assert {"gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "scorecam", "eigencam"} <= set(METHODS_BY_OPTION)
    assert METHODS_BY_OPTION["gradcampp"].name == "Grad-CAM++"


def test_overlay_names_are_unique_per_run():
    taken = {CSV_NAME}
    names = [overlay_name(Path(path), "Egyptian cat", taken) for path in ("a/cat.jpg", "a/cat.png", "b/Cat.jpg")]
    assert names == ["cat_egyptian_cat.png", "cat_egyptian_cat_2.png", "Cat_egyptian_cat_3.png"]
    assert overlay_name(Path("x.jpg"), "maillot, tank suit", taken) == "x_maillot_tank_suit.png"


def test_an_image_too_small_for_a_reliable_answer_is_explained_with_a_note(data_dir, tmp_path, capsys):
    Image.open(data_dir / "chelsea.jpg").convert("RGB").resize((12, 8)).save(tmp_path / "thumb.png")
    assert main([str(tmp_path / "thumb.png"), "--out", str(tmp_path / "cams"), *MODEL]) == EXIT_OK
    err = capsys.readouterr().err
    assert "Note on 1:" in err and "at 12 x 8 pixels (width x height) it is under 32 on a side" in err


def test_the_reliable_side_is_where_shrunk_photos_stop_keeping_their_top_class(lite_model, data_dir):
    """The constant's reason, measured again: at a short side below it, (almost) no course photo keeps its class."""
    photos = [load_image(path) for path in sorted(data_dir.iterdir()) if path.suffix in (".jpg", ".png", ".tif")]

    def top_class(pixels: np.ndarray) -> int:
        with torch.no_grad():
            return int(lite_model.network(lite_model.preprocess(pixels).unsqueeze(0)).argmax())

    def kept(side: int) -> int:
        count = 0
        for pixels in photos:
            height, width = pixels.shape[:2]
            scale = side / min(height, width)
            small = Image.fromarray(pixels).resize((round(width * scale), round(height * scale)), Image.BILINEAR)
            count += top_class(np.asarray(small)) == top_class(pixels)
        return count

    assert len(photos) >= 8
    assert kept(RELIABLE_IMAGE_SIDE - 8) <= 1 < kept(2 * RELIABLE_IMAGE_SIDE)


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links and non-UTF-8 names need a POSIX file system")
def test_links_duplicates_and_odd_names_are_each_explained_or_reported(data_dir, tmp_path, capsys):
    """No input is dropped silently: every file found is either in the CSV or in the list of skipped files."""
    folder, other = tmp_path / "in", tmp_path / "other"
    folder.mkdir(), other.mkdir()
    small = Image.open(data_dir / "chelsea.jpg").convert("RGB").resize((64, 48))
    small.save(folder / "cat.png")
    small.save(other / "elsewhere.png")
    (folder / "link_to_cat.png").symlink_to("cat.png")
    (folder / "link_outside.png").symlink_to(other / "elsewhere.png")
    (folder / "dangling.png").symlink_to("missing.png")
    (folder / "folder_link").symlink_to(other, target_is_directory=True)
    small.save(folder / "tab\tname.png")
    small.save(os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9.png"))  # a Latin-1 name from another system
    found = len(list(folder.iterdir()))
    assert main([str(folder), str(folder / "cat.png"), "--out", str(tmp_path / "cams"), *MODEL]) == EXIT_OK
    rows, err = _rows(tmp_path / "cams"), capsys.readouterr().err
    explained = {Path(row["file"]).name for row in rows}
    assert explained == {"cat.png", "link_outside.png", "tab\tname.png", "caf\\xe9.png"}
    assert "link_to_cat.png: the same file as" in err and "(a link to it), explained once" in err
    assert "cat.png: the same file as" in err.replace("link_to_cat.png", "")  # given twice: once explained, once reported
    assert "dangling.png: a link to 'missing.png', which does not exist" in err
    assert "folder_link: a link to a folder" in err
    assert len(explained) + err.count("\n  ") == found + 1  # every file found, and the one given twice
    assert all(name.isprintable() for name in os.listdir(tmp_path / "cams"))
