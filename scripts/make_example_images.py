"""Write the example images in data/ from photos that ship with scikit-image.

Run from the repository root: ``python scripts/make_example_images.py [OUTPUT_DIR]``
(default: data/). The output is deterministic: re-running it reproduces the
committed files, which tests/test_data.py checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import skimage.data
import tifffile
from PIL import Image
from skimage.transform import resize

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
COMPOSITE_SIDE = 224


def square_tile(image: np.ndarray, side: int = COMPOSITE_SIDE) -> np.ndarray:
    """Centre square crop of an RGB image, resized to ``side`` x ``side`` uint8."""
    height, width = image.shape[:2]
    crop = min(height, width)
    top, left = (height - crop) // 2, (width - crop) // 2
    square = image[top : top + crop, left : left + crop]
    return (resize(square, (side, side), anti_aliasing=True) * 255).round().astype(np.uint8)


def circular_alpha(height: int, width: int) -> np.ndarray:
    """Alpha channel: opaque ellipse filling the frame, transparent corners, soft edge."""
    rows, cols = np.mgrid[0:height, 0:width]
    distance = np.hypot((rows - height / 2) / (height / 2), (cols - width / 2) / (width / 2))
    return (np.clip((1.0 - distance) / 0.1, 0.0, 1.0) * 255).round().astype(np.uint8)


def main(out_dir: Path = DATA_DIR) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    chelsea, coffee = skimage.data.chelsea(), skimage.data.coffee()
    for name, image in {
        "chelsea.jpg": chelsea,
        "coffee.jpg": coffee,
        "astronaut.jpg": skimage.data.astronaut(),
        "rocket.jpg": skimage.data.rocket(),
    }.items():
        Image.fromarray(image).save(out_dir / name, quality=92)
    camera = skimage.data.camera()
    Image.fromarray(camera).save(out_dir / "camera.png")
    # A wall clock photographed while the camera moved: a real photo the model gets wrong.
    Image.fromarray(skimage.data.clock()).save(out_dir / "clock.png")
    # 16 bits: scale 0..255 to 0..65535 exactly, as a scanner or microscope would store it.
    tifffile.imwrite(out_dir / "camera_16bit.tif", camera.astype(np.uint16) * 257, compression="zlib")
    rgba = np.dstack([chelsea, circular_alpha(*chelsea.shape[:2])])
    Image.fromarray(rgba, mode="RGBA").save(out_dir / "chelsea_rgba.png")
    # Two objects of different classes side by side, for class-discriminative CAMs.
    composite = np.hstack([square_tile(chelsea), square_tile(coffee)])
    Image.fromarray(composite).save(out_dir / "cat_and_coffee.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR)
