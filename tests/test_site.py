"""The course site (scripts/build_site.py), built offline and read in a real headless Chromium."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
import pytest

from browser import open_browser, serve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import build_site  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    assert build_site.main(["--out", str(out)]) == 0, "the site build printed warnings (see the captured output)"
    return out


@pytest.fixture(scope="module")
def base_url(site):
    yield from serve(site)


@pytest.fixture(scope="module")
def browser():
    yield from open_browser()


def _pages(site: Path) -> list[Path]:
    return sorted(path.relative_to(site) for path in site.rglob("*.html") if "_static" not in path.parts)


def test_the_site_has_every_lesson_exercise_and_guide(site):
    pages = {path.as_posix() for path in _pages(site)}
    expected = {"index.html", "exercises/TEACHER_GUIDE.html", "data/README.html"}
    expected |= {f"notebooks/{path.stem}.html" for path in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")}
    expected |= {f"exercises/student/{path.stem}.html" for path in (ROOT / "exercises" / "student").glob("*.ipynb")}
    assert expected <= pages, f"missing pages: {sorted(expected - pages)}"
    assert not any(page.startswith("exercises/solution") for page in pages), "the site must not publish the solutions"
    index = (site / "index.html").read_text()
    for page in expected - {"index.html"}:
        assert f'href="{page}"' in index, f"the table of contents does not link {page}"
    # rendered from the committed outputs, not re-executed: a lesson's figures are there
    lesson = (site / "notebooks" / "00_quickstart.html").read_text()
    assert lesson.count("<img") >= 3


def test_no_page_title_says_the_same_thing_twice(site):
    for page in _pages(site):
        (title,) = re.findall(r"<title>(.*?)</title>", (site / page).read_text(), flags=re.DOTALL)
        parts = [part.strip() for part in title.replace("&#8212;", "—").split("—")]
        assert len(parts) == len(set(parts)), f"{page}: {title!r}"


def test_the_students_site_has_no_teachers_guide_and_can_leave_the_answers_out(tmp_path):
    out = tmp_path / "site-students"
    assert build_site.main(["--out", str(out), "--students", "--without-answers"]) == 0
    pages = {path.as_posix() for path in _pages(out)}
    assert "exercises/TEACHER_GUIDE.html" not in pages and "notebooks/00_quickstart.html" in pages
    front = (out / "index.html").read_text()
    assert "TEACHER_GUIDE.html" not in front
    # the front page is the learners' part of the README: the lessons, not where the solutions are or how to grade
    assert "00_quickstart.ipynb" in front and "worked answers out" in front
    assert "exercises/solution" not in front and " solutions" not in front.lower() and "make grade" not in front and "Memory: what a learner needs" not in front
    for lesson in (out / "notebooks").glob("*.html"):
        text = lesson.read_text()
        assert 'class="answer"' not in text and "answer-data" not in text, lesson.name
    # what the questions' cells printed in lesson 00 is gone with them
    assert "the cat's largest raw value is" not in (out / "notebooks" / "00_quickstart.html").read_text()


def _check_page(page, base_url: str, site: Path, relative: Path) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}") if response.status >= 400 else None)
    url = urljoin(base_url, relative.as_posix())
    page.goto(url, wait_until="networkidle")
    broken_images = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 80))"
    )
    problems += [f"image not loaded: {src}" for src in broken_images]
    for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"):
        target = urlparse(urljoin(url, href))
        if target.scheme not in ("http", "https") or target.netloc != urlparse(base_url).netloc:
            continue  # external links are not followed offline
        file = site / unquote(target.path).lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.exists():
            problems.append(f"broken link: {href}")
        elif target.fragment and file.suffix == ".html":
            ids = set(re.findall(r'\bid="([^"]+)"', file.read_text()))
            if unquote(target.fragment) not in ids:
                problems.append(f"broken anchor: {href}")
    return problems


def test_every_page_loads_cleanly_with_its_images_and_links(site, base_url, browser):
    context = browser.new_context()
    problems = {}
    for relative in _pages(site):
        page = context.new_page()
        found = _check_page(page, base_url, site, relative)
        page.close()
        if found:
            problems[relative.as_posix()] = sorted(set(found))[:5]
    context.close()
    assert not problems, problems


def test_math_is_typeset_offline(site, base_url, browser):
    page = browser.new_page()
    lessons_with_math = [path for path in _pages(site) if 'class="math' in (site / path).read_text()]
    assert any("05c_the_original_cam" in path.name for path in lessons_with_math)
    for relative in lessons_with_math:
        page.goto(urljoin(base_url, relative.as_posix()), wait_until="networkidle")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        page.evaluate("MathJax.startup.promise")
        counts = page.evaluate(
            "[document.querySelectorAll('.math').length, document.querySelectorAll('.math mjx-container').length,"
            " document.querySelectorAll('mjx-merror, [data-mjx-error]').length]"
        )
        assert counts[0] > 0 and counts[1] == counts[0], f"{relative}: {counts[1]} of {counts[0]} formulas typeset"
        assert counts[2] == 0, f"{relative}: {counts[2]} formulas with TeX errors"
    page.close()


def test_a_lesson_page_screenshot_is_not_blank(site, base_url, browser):
    from PIL import Image

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(urljoin(base_url, "notebooks/04_grad_cam_step_by_step.html"), wait_until="networkidle")
    page.locator("img").first.scroll_into_view_if_needed()  # a figure in view, not only text
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    page.close()
    colours = len(np.unique(shot.reshape(-1, 3), axis=0))
    assert shot.std() > 20 and colours > 200, f"screenshot looks blank: {colours} colours, std {shot.std():.1f}"
