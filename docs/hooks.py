"""MkDocs hooks: an offline site (bundled MathJax 2.7, no CDN) and the example notebooks.

* ``on_files`` adds ``examples/*.ipynb`` (outside ``docs/``) to the site as ``examples/<name>.ipynb``,
  for mkdocs-jupyter to render, so the notebooks are not copied into ``docs/``.
* ``on_post_page`` removes the CDN MathJax (and unused Mermaid) loaders that nbconvert writes into
  notebook pages, and loads the bundled MathJax on every page that has math.
* ``on_page_markdown`` writes the command-line reference into ``cli.md`` from the program's own parser.
* ``on_post_build`` copies the part of MathJax that those pages use from the ``jupyter-server-mathjax``
  wheel into ``site/assets/mathjax``.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import shutil
from pathlib import Path

import jupyter_server_mathjax
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

MATHJAX_SRC = Path(jupyter_server_mathjax.__file__).parent / "static"
MATHJAX_DEST = "assets/mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"  # the one combined configuration the wheel ships

# What that configuration loads (it has the TeX input and HTML-CSS output built in) or may load later:
# the TeX extensions it autoloads, the menu, and the STIX-Web font (the wheel's only HTML-CSS font).
MATHJAX_PARTS = [
    "MathJax.js",
    f"config/{MATHJAX_CONFIG}.js",
    "jax/input/TeX",
    "jax/element/mml",
    "jax/output/HTML-CSS",
    "extensions",
    "fonts/HTML-CSS/STIX-Web/woff",
    "LICENSE",
]
MATHJAX_SKIP = shutil.ignore_patterns("a11y")  # 3.7 MB of accessibility extensions, not loaded

# The notebooks' placeholder MathJax URL (mkdocs.yml: mkdocs-jupyter custom_mathjax_url).
NOTEBOOK_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
NOTEBOOK_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded"'
    r"[^<]*?\.jp-Mermaid.*?</script>",
    re.S,
)

TEX2JAX_MARKDOWN = r"""tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: false,
    ignoreClass: ".*|",
    processClass: "arithmatex"
  },"""
TEX2JAX_NOTEBOOK = r"""tex2jax: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },"""
MATHJAX_LOADER = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  %s
  TeX: {equationNumbers: {autoNumber: "AMS"}},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  MathMenu: {showRenderer: false, showFontMenu: false, showLocale: false},
  messageStyle: "none"
});
</script>
<script src="%s?config=%s"></script>
"""


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    for notebook in sorted((root / "examples").glob("*.ipynb")):
        files.append(
            File(
                f"examples/{notebook.name}",
                src_dir=str(root),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


CLI_PLACEHOLDER = "<!-- nablanet --help -->"


def cli_reference() -> str:
    """``nablanet --help`` and every subcommand's ``--help``, as Markdown sections."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: make it the same on every machine
    from nablanet.app.commands import build_parser

    parser = build_parser()
    sections = [f"## nablanet\n\n```text\n{parser.format_help()}```\n"]
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, subparser in commands.choices.items():
        sections.append(f"## nablanet {name}\n\n```text\n{subparser.format_help()}```\n")
    return "\n".join(sections)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "cli.md":
        if CLI_PLACEHOLDER not in markdown:
            raise ValueError(f"cli.md lost its placeholder {CLI_PLACEHOLDER}")
        return markdown.replace(CLI_PLACEHOLDER, cli_reference())
    return markdown


def on_post_page(output, page, config):
    notebook = page.file.src_uri.endswith(".ipynb")
    if notebook:
        output = NOTEBOOK_MATHJAX.sub("", output)
        if 'class="jp-Mermaid' not in output:
            output = NOTEBOOK_MERMAID.sub("", output)
    elif 'class="arithmatex"' not in output:
        return output
    here = posixpath.dirname(page.url) or "."
    src = posixpath.relpath(f"{MATHJAX_DEST}/MathJax.js", here)
    loader = MATHJAX_LOADER % (TEX2JAX_NOTEBOOK if notebook else TEX2JAX_MARKDOWN, src, MATHJAX_CONFIG)
    return output.replace("</body>", loader + "</body>", 1)


def on_post_build(config):
    dest = Path(config["site_dir"]) / MATHJAX_DEST
    for part in MATHJAX_PARTS:
        source, target = MATHJAX_SRC / part, dest / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=MATHJAX_SKIP, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
