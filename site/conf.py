"""Sphinx configuration of the course site (built by ``scripts/build_site.py``; ``make site``).

Sphinx with MyST-NB (the engine of Jupyter Book 1) and the Jupyter Book theme.
Everything the pages need is on this machine: the notebooks are rendered
with their committed outputs (never executed), math is typeset by MathJax 3,
from the files the ``sphinx-mathjax-offline`` package ships (copied into the site), and
nothing is fetched from a CDN, so the site builds and reads offline.
"""

from __future__ import annotations

project = "Grad-CAM, step by step"
author = "The course authors"
copyright = "the course authors; photos: see data/README.md"

root_doc = "index"  # the README, staged as index.md by scripts/build_site.py
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Notebooks: committed outputs as they are; a build never runs code.
nb_execution_mode = "off"
nb_merge_streams = True
# No ipywidgets JavaScript from a CDN: committed notebooks hold static figures in place of widgets.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # notebooks start at the level their author chose

# Offline math: MathJax 3 with SVG output (no font files to load), from the files the
# sphinx-mathjax-offline package ships, copied into _static/mathjax by scripts/build_site.py.
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-svg.js"

html_theme = "sphinx_book_theme"
# Accessibility fixes (tests/test_site.py runs axe-core on every page): a template override (see its comment) ...
templates_path = ["_templates"]
html_favicon = "favicon.svg"  # a page without one makes browsers request /favicon.ico, a 404 in the console
html_title = project
html_context = {"default_mode": "light"}  # an explicit mode: the theme logs a console error for an empty one
html_theme_options = {
    "repository_url": "",
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "announcement": "",
    # ... and the logo link's text always the site's title: by default it is the page's docstitle, which
    # _title_once empties on the front page, leaving an empty link there (axe-core: link-name)
    "logo": {"text": project},
}
html_last_updated_fmt = None
# The download button offers each page's source: the notebook itself, to open in JupyterLab.


def _title_once(app, pagename, templatename, context, doctree):
    """The home page's own title is the site's: '<title> — <site title>' would say it twice."""
    if context.get("title") == context.get("docstitle"):
        context["docstitle"] = ""  # the basic layout adds the suffix only when there is a docstitle


def _visit_hidden_cell(self, node):
    """MyST-NB's "Show code cell source" toggle, without its aria-label "Toggle hidden content".

    That label does not contain the toggle's visible text, so speech users who say what they see cannot use it
    (axe-core: label-content-name-mismatch); the summary's visible text names it. Otherwise as MyST-NB 1.4 writes it.
    """
    from html import escape

    self.body.append(f'<details class="admonition hide {" ".join(node["classes"])}">\n<summary>\n')
    self.body.append(f'<p class="collapsed admonition-title">{escape(node["prompt_show"])}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{escape(node["prompt_hide"])}</p>\n</summary>\n')


def _figure_alts(app, doctree):
    """Each image output's text alternative, from the cell metadata ``figure_alts`` that scripts/build_site.py
    derives from the cell's code and the lesson's text (see its docstring); in place of MyST-NB's default, the file's
    path."""
    from docutils import nodes

    for cell in doctree.findall(nodes.container):
        alts = cell.get("nb_element") == "cell_code" and cell.get("cell_metadata", {}).get("figure_alts")
        if alts:
            for image, alt in zip(list(cell.findall(nodes.image)), alts):
                image["alt"] = alt


def setup(app):
    from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput

    app.connect("html-page-context", _title_once)
    app.connect("doctree-read", _figure_alts)
    app.add_node(HideCodeCellNode, override=True, html=(_visit_hidden_cell, depart_HideCellInput))
