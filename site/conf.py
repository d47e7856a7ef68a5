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
html_favicon = "favicon.svg"  # a page without one makes browsers request /favicon.ico, a 404 in the console
html_title = project
html_context = {"default_mode": "light"}  # an explicit mode: the theme logs a console error for an empty one
html_theme_options = {
    "repository_url": "",
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "announcement": "",
}
html_last_updated_fmt = None
# The download button offers each page's source: the notebook itself, to open in JupyterLab.


def _title_once(app, pagename, templatename, context, doctree):
    """The home page's own title is the site's: '<title> — <site title>' would say it twice."""
    if context.get("title") == context.get("docstitle"):
        context["docstitle"] = ""  # the basic layout adds the suffix only when there is a docstitle


def setup(app):
    app.connect("html-page-context", _title_once)
