"""The course site (scripts/build_site.py), built offline and read in a real headless Chromium."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
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


# --- accessibility: axe-core on every page, figures' text alternatives, the keyboard -----------------------------

#: The axe-core that axe-playwright-python (pinned in pyproject.toml's test extras) carries; the README names it.
AXE_VERSION = "4.12.1"
#: axe-core's default rules (WCAG 2.0-2.2 A and AA, contrast included, and its best practices) and one it still
#: marks experimental that a newer axe-core runs by default: a control's name must contain its visible text.
AXE_OPTIONS = {"resultTypes": ["violations"], "rules": {"label-content-name-mismatch": {"enabled": True}}}
AXE_BLOCKING = ("serious", "critical")
#: Syntax-highlighted code: thousands of coloured tokens per lesson, styled by one stylesheet for the whole site.
CODE = ".highlight"
_RUN_AXE = """([context, options]) => axe.run(context ?? document, options).then(results => results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.html.replace(/\\s+/g, ' ').slice(0, 160))})))"""
#: Each kind of code token: the code block's kind (a cell's source, a stream output, ...) and the token's classes.
_CODE_TOKENS = f"""Array.from(new Set(Array.from(document.querySelectorAll('{CODE} pre, {CODE} span')).map(element =>
    (element.closest('[class*="highlight-"]') || {{className: ''}}).className + ' | ' + element.className)))"""


def _blocking(relative: Path, violations: list[dict]) -> list[str]:
    """The serious and critical violations, each with its page, rule and first nodes."""
    found = []
    for violation in violations:
        if violation["impact"] in AXE_BLOCKING:
            nodes = violation["nodes"]
            shown = "\n      ".join(nodes[:3]) + (f"\n      and {len(nodes) - 3} more" if len(nodes) > 3 else "")
            found.append(f"{relative}: {violation['id']} ({violation['impact']}: {violation['help']}), {len(nodes)} nodes:\n      {shown}")
    return found


def test_every_page_has_no_serious_or_critical_axe_core_violations(site, base_url, browser):
    """axe-core on every page, all of it; the contrast of code tokens once per kind of token.

    Colour contrast is most of axe-core's time, and most of that is the code's tokens. They are coloured by one
    stylesheet on every page, so each kind of token (its classes, in its kind of code block) is checked on one page
    that has it: the fewest pages that have all kinds between them. Everything else, on every page.
    """
    axe = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python is missing: run `make test` to install it")
    script = axe.Axe().axe_script
    without_contrast = {**AXE_OPTIONS, "rules": {**AXE_OPTIONS["rules"], "color-contrast": {"enabled": False}}}
    contrast = {"resultTypes": ["violations"], "runOnly": {"type": "rule", "values": ["color-contrast"]}}
    page = browser.new_page()

    def open_with_axe(relative: Path) -> None:
        page.goto(urljoin(base_url, relative.as_posix()))
        page.evaluate("window.MathJax && MathJax.startup && MathJax.startup.promise")  # typeset formulas are checked too
        page.evaluate(script)

    found, tokens = [], {}
    for relative in _pages(site):
        open_with_axe(relative)
        if relative.name == "index.html":
            assert page.evaluate("axe.version") == AXE_VERSION, "the README and AXE_VERSION name the axe-core that is run"
        found += _blocking(relative, page.evaluate(_RUN_AXE, [None, without_contrast]))
        found += _blocking(relative, page.evaluate(_RUN_AXE, [{"exclude": [[CODE]]}, contrast]))
        tokens[relative] = set(page.evaluate(_CODE_TOKENS))
    unchecked, chosen = set().union(*tokens.values()), []
    while unchecked:  # greedily, the page with the most kinds not yet covered
        best = max(tokens, key=lambda relative: len(tokens[relative] & unchecked))
        chosen.append(best)
        unchecked -= tokens[best]
    for relative in chosen:
        open_with_axe(relative)
        found += _blocking(relative, page.evaluate(_RUN_AXE, [{"include": [[CODE]]}, contrast]))
    page.close()
    assert len(chosen) >= 1, "no code on any page: the code's contrast was not checked"
    assert not found, "axe-core found serious or critical violations:\n" + "\n".join(found)


class _Images(HTMLParser):
    """The ``alt`` of every <img> of a page (None where it has none)."""

    def __init__(self):
        super().__init__()
        self.alts: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))


GENERIC_ALTS = {"", "image", "figure", "plot", "picture", "graph", "chart", "img", "output", "png"}


def test_every_figure_of_every_lesson_says_what_it_shows(site):
    problems, figures = [], 0
    for relative in _pages(site):
        if relative.parts[0] not in ("notebooks", "exercises"):
            continue
        parser = _Images()
        parser.feed((site / relative).read_text(encoding="utf-8"))
        for number, alt in enumerate(parser.alts, 1):
            figures += 1
            text = (alt or "").strip()
            if (text.lower().strip(".") in GENERIC_ALTS or re.search(r"_images/|\S+/\S+\.(png|jpe?g|gif|svg)\b|^\S+$", text)
                    or len(text.split()) < 6 or "Figure" not in text):
                problems.append(f"{relative.stem}, image {number}: alt {alt!r}")
    assert figures >= 50, f"only {figures} figures in the lessons"
    assert not problems, "figures without a text alternative that says what they show:\n" + "\n".join(problems)


def test_a_figures_text_alternative_comes_from_its_titles_and_its_cells_purpose():
    notebook = {"cells": [
        {"cell_type": "markdown", "source": "## 3. Two classes\n\nThe maps of two classes side by side. More text."},
        {"cell_type": "code", "source": "# both maps on one colour scale\nfig, axes = plt.subplots(1, 2)\n"
                                        "for ax, name in zip(axes, names):\n    ax.set_title(f'Grad-CAM: {name}')\n"
                                        "fig.suptitle('the collage')\nax.set_xlabel('column')",
         "outputs": [{"output_type": "display_data", "data": {"image/png": "", "text/plain": ""}}]},
        {"cell_type": "markdown", "source": "The gallery below shows every class."},
        {"cell_type": "code", "source": "show_cams(cat, result)",
         "outputs": [{"output_type": "display_data", "data": {"image/png": ""}}] * 2},
    ]}
    alts = build_site.figure_alts(notebook, {"show_cams": ("A gallery: one CAM overlay per class.", ["image", "result"])})
    (first,) = alts[1]
    assert first == ("Figure in the section “3. Two classes”: titled “the collage”; “Grad-CAM: …”; axes: “column”."
                     " Both maps on one colour scale."), first
    assert alts[3] == [f"Figure {k} of 2 in the section “3. Two classes”: drawn by show_cams: A gallery: one CAM overlay"
                       " per class. The gallery below shows every class." for k in (1, 2)], alts[3]


def test_the_site_works_by_keyboard(site, base_url, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(urljoin(base_url, "notebooks/00_quickstart.html"))
    focused = "document.activeElement"
    # the first Tab reaches a visible skip link; Enter moves on to the lesson's text
    page.keyboard.press("Tab")
    assert page.evaluate(f"{focused}.textContent.trim()") == "Skip to main content"
    page.wait_for_function(f"{focused}.getBoundingClientRect().width > 0 && {focused}.getBoundingClientRect().top >= 0",
                           timeout=5_000)  # it slides into view
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate(f"!!{focused}.closest('#main-content')"), "after the skip link, Tab should go into the page's text"

    def tab_to(selector: str, limit: int = 400) -> None:
        for _ in range(limit):
            if page.evaluate(f"{focused}.matches({selector!r})"):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {selector}")

    # a code cell folded away and a question's worked answer open with the keyboard
    tab_to("details.hide summary")
    page.keyboard.press("Enter")
    assert page.evaluate(f"{focused}.closest('details').open"), "Enter should show the folded code"
    tab_to("details.answer summary")
    page.keyboard.press("Space")
    assert page.evaluate(f"{focused}.closest('details').open"), "Space should open the answer"
    page.keyboard.press("Enter")
    assert not page.evaluate(f"{focused}.closest('details').open"), "Enter should fold the answer again"
    # Tab reaches the next lesson's link, with a visible focus ring, and Enter follows it
    tab_to("a.right-next")
    assert page.evaluate(f"getComputedStyle({focused}).outlineStyle !== 'none' || getComputedStyle({focused}).boxShadow !== 'none'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("notebooks/00b_testing_a_map.html"), page.url
    page.close()
