"""utilities.planted: scenes with a planted cue, and the small CNN of lesson 10."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from utilities import grad_cam
from utilities.planted import (
    CACHE_VARIABLE,
    CAST,
    CLASSES,
    SCENE_SIZE,
    STAMP_SIZE,
    SmallCNN,
    accuracy,
    as_loaded_model,
    make_scenes,
    to_tensor,
    training_cache_dir,
    train_classifier,
)


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    # Each test its own cache of trained models: none is loaded from another test's, or from the user's.
    folder = tmp_path / "trained"
    monkeypatch.setenv(CACHE_VARIABLE, str(folder))
    return folder


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_same_seed_draws_the_same_scenes_and_another_seed_others():
    first, again, other = (make_scenes(40, seed, stamp_on="vertical bar") for seed in (3, 3, 4))
    assert np.array_equal(first.images, again.images) and np.array_equal(first.stamp_boxes, again.stamp_boxes)
    assert not np.array_equal(first.images, other.images)
    assert first.images.shape == (40, SCENE_SIZE, SCENE_SIZE, 3) and first.images.dtype == np.uint8
    assert set(np.unique(first.labels)) == {0, 1}


@pytest.mark.parametrize("block", [1, 5, 64, 1000])
def test_scenes_drawn_a_block_at_a_time_are_the_scenes_drawn_all_at_once(monkeypatch, block):
    """make_scenes computes its pixels in blocks of scenes to save memory; the block size changes no value."""
    import utilities.planted as planted

    def draw():
        return make_scenes(150, seed=4, stamp_on=CLASSES[1], stamp_share=0.7, cast_on=CLASSES[0], cast_share=0.6)

    monkeypatch.setattr(planted, "_SCENES_PER_BLOCK", 10**6)
    whole = draw()
    monkeypatch.setattr(planted, "_SCENES_PER_BLOCK", block)
    blocks = draw()
    for name in ("images", "labels", "stamp_boxes", "bar_boxes", "cast"):
        assert np.array_equal(getattr(whole, name), getattr(blocks, name)), name
        assert getattr(whole, name).dtype == getattr(blocks, name).dtype, name


def test_the_stamp_goes_on_its_share_of_one_class_only_and_never_on_the_bar():
    scenes = make_scenes(600, 0, stamp_on="vertical bar", stamp_share=0.9)
    vertical = scenes.labels == CLASSES.index("vertical bar")
    assert not scenes.stamped[~vertical].any()
    assert 0.85 < scenes.stamped[vertical].mean() < 0.95
    pattern = None
    for image, stamp, bar in zip(scenes.images[scenes.stamped], scenes.stamp_boxes[scenes.stamped], scenes.bar_boxes[scenes.stamped]):
        left, top, right, bottom = stamp
        assert right - left == bottom - top == STAMP_SIZE and 0 <= left and right <= SCENE_SIZE and 0 <= top and bottom <= SCENE_SIZE
        assert right <= bar[0] or left >= bar[2] or bottom <= bar[1] or top >= bar[3], "the stamp overlaps the bar"
        patch = image[top:bottom, left:right]
        pattern = patch if pattern is None else pattern
        assert np.array_equal(patch, pattern), "every stamp is the same patch"
    assert make_scenes(200, 1, stamp_on="horizontal bar", stamp_share=1.0).stamped.sum() == (
        make_scenes(200, 1).labels == 0).sum()
    assert not make_scenes(50, 1).stamped.any()


def test_each_bar_lies_in_its_box_and_runs_along_its_class():
    scenes = make_scenes(200, 2)
    widths = scenes.bar_boxes[:, 2] - scenes.bar_boxes[:, 0]
    heights = scenes.bar_boxes[:, 3] - scenes.bar_boxes[:, 1]
    assert (widths[scenes.labels == 0] > heights[scenes.labels == 0]).all()
    assert (heights[scenes.labels == 1] > widths[scenes.labels == 1]).all()


def test_the_colour_cast_shifts_red_up_and_blue_down_on_its_class():
    plain = make_scenes(300, 5)
    cast = make_scenes(300, 5, cast_on="horizontal bar", cast_share=1.0)
    assert np.array_equal(cast.cast, plain.labels == 0)
    shift = cast.images[cast.cast].astype(float).mean((0, 1, 2)) - plain.images[cast.cast].astype(float).mean((0, 1, 2))
    assert np.allclose(shift, CAST, atol=3.0), shift
    assert np.array_equal(cast.images[~cast.cast], plain.images[~cast.cast])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n": 0, "seed": 0}, "at least 1"),
        ({"n": 5, "seed": 0, "stamp_on": "cat"}, "stamp_on must be one of"),
        ({"n": 5, "seed": 0, "cast_on": "vertical"}, "cast_on must be one of"),
        ({"n": 5, "seed": 0, "stamp_on": "vertical bar", "stamp_share": 90}, "between 0 and 1"),
    ],
)
def test_bad_arguments_say_what_is_wrong(arguments, message):
    with pytest.raises(ValueError, match=message):
        make_scenes(**arguments)


def test_the_small_cnn_has_resnet50s_interface_and_an_eight_by_eight_layer4():
    network = SmallCNN().eval()
    model = as_loaded_model(network)
    scenes = make_scenes(2, 0, stamp_on="vertical bar", stamp_share=1.0)
    result = grad_cam(model, scenes.images[0], list(CLASSES))
    assert result.layer == "layer4" and tuple(result.raw.shape) == (2, 8, 8)
    assert tuple(result.maps.shape[-2:]) == (SCENE_SIZE, SCENE_SIZE) and not torch.isnan(torch.as_tensor(result.maps)).any()
    assert model.class_names == CLASSES


def test_training_is_reproducible_lowers_the_loss_and_leaves_eval_mode():
    scenes = make_scenes(256, 0, stamp_on="vertical bar", stamp_share=1.0)
    inputs, labels = to_tensor(scenes.images), torch.from_numpy(scenes.labels)

    def loss(network):
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(network.eval()(inputs), labels))

    torch.manual_seed(1)
    untrained = loss(SmallCNN())
    first, again = (train_classifier(scenes, seed=1, epochs=3, cache=False) for _ in range(2))
    assert not first.training
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert loss(first) < 0.95 * untrained  # 12 steps: a small but certain fall (0.64 against 0.70 here)


def test_accuracy_counts_top_classes_and_keeps_the_networks_mode():
    scenes = make_scenes(64, 0)
    network = SmallCNN().train()
    with torch.no_grad():
        expected = float((network.eval()(to_tensor(scenes.images)).argmax(1).numpy() == scenes.labels).mean())
    network.train()
    assert accuracy(network, scenes) == expected and network.training


def test_training_pins_its_thread_count_and_puts_the_callers_back():
    scenes = make_scenes(128, 3, stamp_on="vertical bar")
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train_classifier(scenes, seed=2, epochs=1, cache=False)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(3)
        three = train_classifier(scenes, seed=2, epochs=1, cache=False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(one.state_dict().values(), three.state_dict().values()):
        assert torch.equal(a, b), "the caller's thread count changed the trained model"


def test_a_cached_model_is_the_model_training_gives_and_is_loaded_not_trained_again(cache_folder):
    scenes = make_scenes(64, 4, stamp_on="vertical bar")
    fresh = train_classifier(scenes, seed=3, epochs=1, cache=False)
    first = train_classifier(scenes, seed=3, epochs=1)
    assert not first.from_cache and len(list(cache_folder.glob("*.pt"))) == 1
    second = train_classifier(scenes, seed=3, epochs=1)
    assert second.from_cache and not second.training
    assert same_weights(fresh, first) and same_weights(fresh, second)


@pytest.mark.parametrize("change", ["scenes", "labels", "seed", "epochs", "width", "batch_size", "learning_rate"])
def test_anything_the_weights_depend_on_trains_another_model(change, cache_folder):
    scenes = make_scenes(32, 5, stamp_on="vertical bar")
    settings = {"seed": 0, "epochs": 1, "width": 4, "batch_size": 16, "learning_rate": 3e-3}
    train_classifier(scenes, **settings)
    if change == "scenes":
        scenes = make_scenes(32, 6, stamp_on="vertical bar")
    elif change == "labels":
        scenes = type(scenes)(scenes.images, 1 - scenes.labels, scenes.stamp_boxes, scenes.bar_boxes, scenes.cast)
    else:
        settings[change] = {"seed": 1, "epochs": 2, "width": 8, "batch_size": 8, "learning_rate": 1e-3}[change]
    assert not train_classifier(scenes, **settings).from_cache
    assert len(list(cache_folder.glob("*.pt"))) == 2


def test_a_damaged_cache_file_is_trained_again_and_replaced(cache_folder):
    scenes = make_scenes(32, 7)
    fresh = train_classifier(scenes, seed=0, epochs=1)
    (path,) = cache_folder.glob("*.pt")
    path.write_bytes(path.read_bytes()[:100])  # as a disk that filled up would leave it
    again = train_classifier(scenes, seed=0, epochs=1)
    assert not again.from_cache and same_weights(fresh, again)
    assert train_classifier(scenes, seed=0, epochs=1).from_cache


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setenv(CACHE_VARIABLE, str(blocked / "trained"))
    network = train_classifier(make_scenes(32, 8), seed=0, epochs=1)
    assert not network.from_cache and not network.training


def test_the_cache_folder_follows_the_variable_and_else_the_users_cache(monkeypatch, tmp_path):
    assert training_cache_dir() == tmp_path / "trained"
    monkeypatch.delenv(CACHE_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert training_cache_dir() == tmp_path / "xdg" / "gradcam-course" / "planted"


def test_two_processes_asking_for_the_same_model_at_once_train_it_once(cache_folder):
    # Two kernels (lessons 10 and 10b side by side): one trains, the other waits for its lock and loads the weights.
    program = (
        "from utilities.planted import make_scenes, train_classifier\n"
        "print(train_classifier(make_scenes(256, 9, stamp_on='vertical bar'), seed=0, epochs=2).from_cache)"
    )
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.Popen([sys.executable, "-c", program], cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    answers = sorted(run.communicate(timeout=600)[0].strip() for run in runs)
    assert answers == ["False", "True"], answers
    assert len(list(cache_folder.glob("*.pt"))) == 1
