"""A learner's own phone photo, step by step: time and memory of each helper.

Usage: ``python benchmarks/bench_phone_photo.py [--megapixels 12] [--portrait]
[--photo FILE]`` (or ``make bench-photo``).

What a learner does with a photo from their phone, in a fresh process:
``load_image``, ``grad_cam`` for the top class, ``overlay_cam`` (the overlay
that would be saved, at the photo's full resolution) and ``show_cam`` (the
figure, drawn to pixels as a notebook would). The photo is a 4032x3024 JPEG
(12 megapixels, what most phones take), made once from ``skimage.data``'s
``coffee`` photo (public domain) with sensor-like noise, so that it is as hard
to decode as a real one.

Each step prints its time and the rise of the process's peak resident memory
above the baseline taken after ``import utilities`` and ``load_model``. The
peak is read from Linux's ``VmHWM``, reset before each step through
``/proc/self/clear_refs``, so it catches short-lived copies that polling
would miss. Elsewhere the memory column is left empty.

Budgets from the course's issue tracker, reported (never asserted: the time
depends on the machine): peak at most 300 MB above the baseline, all four
steps together at most 1.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import reset_peak, status_kib

THREADS = 2
BUDGET_MB = 300
BUDGET_SECONDS = 1.5
PHONE_SIZE = (4032, 3024)  # width, height of a 12-megapixel phone photo


def make_phone_photo(path: Path, megapixels: float, portrait: bool = False) -> None:
    """A JPEG of about ``megapixels`` million pixels at a phone's 4:3 aspect, with sensor noise.

    ``portrait``: stored as phones store portrait photos, landscape pixels with
    an EXIF orientation tag (6: rotate 90 degrees) that ``load_image`` applies.
    """
    import numpy as np
    from PIL import Image
    from skimage import data

    scale = (megapixels * 1e6 / 12e6) ** 0.5  # PHONE_SIZE is "12 MP" (12.2 million pixels)
    size = (round(PHONE_SIZE[0] * scale), round(PHONE_SIZE[1] * scale))
    photo = Image.fromarray(data.coffee()).resize(size, Image.Resampling.BICUBIC)
    noise = np.random.default_rng(0).normal(0.0, 6.0, (size[1], size[0], 3)).astype(np.float32)
    noisy = np.clip(np.asarray(photo, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    if portrait:
        exif[0x0112] = 6  # EXIF Orientation
    Image.fromarray(noisy).save(path, quality=92, exif=exif)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=12.0, help="photo size in megapixels (default 12: 4032x3024)")
    parser.add_argument("--photo", type=Path, help="use this photo instead of the generated one")
    parser.add_argument("--portrait", action="store_true", help="a portrait photo: pixels stored landscape, EXIF-rotated")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    torch.set_num_threads(THREADS)
    from utilities import grad_cam, load_image, load_model, overlay_cam, show_cam

    with tempfile.TemporaryDirectory() as folder:
        photo = args.photo
        if photo is None:
            photo = Path(folder) / "phone_photo.jpg"
            make_phone_photo(photo, args.megapixels, args.portrait)
        model = load_model()
        gc.collect()
        baseline_kb = status_kib("VmRSS")
        tracked = reset_peak() and baseline_kb is not None

        rows: list[tuple[str, float, float | None]] = []
        state: dict[str, object] = {}

        def step(name: str, work) -> None:
            gc.collect()
            if tracked:
                reset_peak()
            start = time.perf_counter()
            state[name] = work()
            seconds = time.perf_counter() - start
            peak = (status_kib("VmHWM") - baseline_kb) / 1024 if tracked else None
            rows.append((name, seconds, peak))

        step("load_image", lambda: load_image(photo))
        pixels = state["load_image"]
        step("grad_cam (top class)", lambda: grad_cam(model, pixels))
        result = state["grad_cam (top class)"]
        step("overlay_cam (full size)", lambda: overlay_cam(pixels, result.maps[0]))

        def draw() -> None:
            axis = show_cam(pixels, result.maps[0], title=result.class_names[0])
            axis.figure.canvas.draw()  # what the notebook does when it shows the figure
            plt.close(axis.figure)

        step("show_cam (figure drawn)", draw)

    height, width = pixels.shape[:2]
    print(f"Measured {time.strftime('%Y-%m-%d')}. Photo: {width}x{height} ({width * height / 1e6:.1f} MP), {photo.name if args.photo else 'generated JPEG'}"
          + (", EXIF-rotated" if args.portrait else ""))
    print(f"Baseline after import and load_model: {baseline_kb / 1024:.0f} MB resident" if baseline_kb else "")
    print(f"{'step':<26}{'time (s)':>10}{'peak above baseline (MB)':>27}")
    for name, seconds, peak in rows:
        print(f"{name:<26}{seconds:>10.2f}{'' if peak is None else f'{peak:.0f}':>27}")
    total = sum(seconds for _, seconds, _ in rows)
    peak = max((p for _, _, p in rows if p is not None), default=None)
    print(f"{'all four steps':<26}{total:>10.2f}{'' if peak is None else f'{peak:.0f}':>27}")
    verdict_time = "met" if total <= BUDGET_SECONDS else "NOT met"
    print(f"Budget: time at most {BUDGET_SECONDS} s on a 2-core machine: {verdict_time} ({total:.2f} s).")
    if peak is not None:
        verdict_memory = "met" if peak <= BUDGET_MB else "NOT met"
        print(f"Budget: peak at most {BUDGET_MB} MB above the baseline: {verdict_memory} ({peak:.0f} MB).")


if __name__ == "__main__":
    main()
