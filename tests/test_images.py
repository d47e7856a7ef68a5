from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from utilities.images import ImageLoadError, load_image, to_rgb_uint8


def _assert_rgb_uint8(image, shape):
    assert image.dtype == np.uint8
    assert image.shape == (*shape, 3)


def test_reads_the_example_files(data_dir):
    for name in ("chelsea.jpg", "camera.png", "camera_16bit.tif", "chelsea_rgba.png", "cat_and_coffee.png"):
        image = load_image(data_dir / name)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_16bit_tiff_equals_8bit_png(data_dir):
    # camera_16bit.tif is camera.png * 257, so the conversion back is exact.
    np.testing.assert_array_equal(load_image(data_dir / "camera_16bit.tif"), load_image(data_dir / "camera.png"))


def test_grayscale_is_repeated_into_three_channels():
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    image = load_image(gray)
    _assert_rgb_uint8(image, (10, 10))
    assert (image[..., 0] == gray).all() and (image[..., 2] == gray).all()


def test_rgba_alpha_is_composited_on_white():
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)  # black
    rgba[:5, :, 3] = 255  # top half opaque, bottom half transparent
    image = load_image(rgba)
    assert (image[:5] == 0).all()
    assert (image[5:] == 255).all()


def test_rgba_file_corners_are_white(data_dir):
    image = load_image(data_dir / "chelsea_rgba.png")
    assert (image[0, 0] == 255).all()


def test_16bit_and_float_and_bool_arrays():
    ramp16 = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    np.testing.assert_array_equal(load_image(ramp16)[..., 0], np.arange(256).reshape(16, 16))
    ramp_float = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    np.testing.assert_array_equal(load_image(ramp_float)[..., 0], np.arange(256).reshape(16, 16))
    assert load_image(np.ones((8, 8), dtype=bool)).min() == 255


def test_float_out_of_range_is_an_error_not_a_clip():
    with pytest.raises(ImageLoadError, match="within \\[0, 1\\].*Rescale"):
        load_image(np.full((10, 10, 3), 2.0))


def test_nan_is_an_error():
    image = np.zeros((10, 10, 3))
    image[0, 0, 0] = np.nan
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(image)


def test_large_integers_are_an_error():
    with pytest.raises(ImageLoadError, match="0..255"):
        load_image(np.full((10, 10), 1000, dtype=np.int32))


def test_channel_first_numpy_is_explained():
    with pytest.raises(ImageLoadError, match="channel-first.*transpose"):
        load_image(np.zeros((3, 20, 30), dtype=np.uint8))


def test_torch_tensor_in_chw_layout():
    tensor = torch.rand(3, 20, 30)
    image = load_image(tensor)
    _assert_rgb_uint8(image, (20, 30))


def test_pil_palette_and_16bit_png(tmp_path):
    palette = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    _assert_rgb_uint8(load_image(palette), (8, 8))
    path = tmp_path / "deep.png"
    Image.fromarray((np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)).save(path)
    loaded = load_image(path)
    assert loaded[-1, -1, 0] == round(63000 / 65535 * 255)


def test_broken_tiff_names_the_path(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageLoadError, match="broken.tif.*(no pixels|as a TIFF image)"):
        load_image(path)


def test_16bit_rgb_tiff(tmp_path):
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, np.full((12, 12, 3), 65535, dtype=np.uint16))
    assert (load_image(path) == 255).all()


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageLoadError, match="nope.png.*does not exist"):
        load_image(path)


def test_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.jpg.*empty file"):
        load_image(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(ImageLoadError, match="Cannot read .*notes.png.* as an image"):
        load_image(str(path))


def test_one_pixel_image(tmp_path):
    path = tmp_path / "dot.png"
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(path)
    with pytest.raises(ImageLoadError, match="dot.png.*1x1 pixels"):
        load_image(path)


def test_unsupported_type():
    with pytest.raises(ImageLoadError, match="Cannot use a list"):
        load_image([[1, 2], [3, 4]])


def test_conversion_returns_a_new_array():
    original = np.zeros((10, 10, 3), dtype=np.uint8)
    converted = to_rgb_uint8(original)
    converted[0, 0, 0] = 1
    assert original[0, 0, 0] == 0


@pytest.mark.parametrize("url", ["https://example.org/photos/cat.jpg?size=large", "HTTP://example.org/cat.jpg"])
def test_url_is_not_downloaded_and_says_how_to_save_it(url):
    with pytest.raises(ImageLoadError) as caught:
        load_image(url)
    message = str(caught.value)
    assert message.startswith(f"{url!r} is a URL; images are not downloaded here.")
    assert f"curl -L -o cat.jpg '{url}'" in message and "load_image('cat.jpg')" in message


def _traced_peak(work) -> int:
    """Peak bytes that Python and NumPy allocate during work() (NumPy reports its buffers to tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("make", "bound"),
    [
        # uint8 RGB, what files hold: one copy, the result
        (lambda rng: rng.integers(0, 256, (600, 800, 3), dtype=np.uint8), 1.2),
        # RGBA composited in integers; a float64 path would need over 10 times the result
        (lambda rng: rng.integers(0, 256, (600, 800, 4), dtype=np.uint8), 6.0),
        # 16-bit and float images through float32, not float64 (which alone is 8 times the result)
        (lambda rng: rng.integers(0, 65536, (600, 800, 3), dtype=np.uint16), 6.0),
        (lambda rng: rng.random((600, 800, 3), dtype=np.float32), 6.0),
    ],
    ids=["uint8 RGB", "uint8 RGBA", "uint16", "float32"],
)
def test_conversion_memory_is_a_small_multiple_of_the_image(make, bound):
    image = make(np.random.default_rng(0))
    result_bytes = 600 * 800 * 3
    peak = _traced_peak(lambda: to_rgb_uint8(image))
    assert peak <= bound * result_bytes, f"peak {peak / result_bytes:.1f} x the RGB uint8 result"


def test_a_jpeg_file_is_loaded_without_float_copies(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    loaded = {}
    peak = _traced_peak(lambda: loaded.setdefault("image", load_image(tmp_path / "photo.jpg")))
    image = loaded["image"]
    assert image.dtype == np.uint8 and image.shape == (600, 800, 3) and image.flags.writeable
    # the decoded bytes and the writable result; converting through float64 would add 8 times the image
    assert peak <= 2.5 * image.nbytes, f"peak {peak / image.nbytes:.1f} x the image"


def test_rgba_integer_compositing_equals_the_float_formula():
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    values = rgba / 255.0
    expected = np.rint((values[..., :3] * values[..., 3:] + 1.0 - values[..., 3:]) * 255.0).astype(np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), expected)


def test_the_result_never_shares_memory_with_the_input():
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    result = to_rgb_uint8(rgb)
    result[0, 0, 0] = 9
    assert rgb[0, 0, 0] == 0
    tensor = torch.zeros(10, 10, 3, dtype=torch.uint8)
    to_rgb_uint8(tensor)[0, 0, 0] = 9
    assert tensor[0, 0, 0] == 0
