r"""MkDocs hooks: an offline site (bundled MathJax 2.7, no CDN) and the example notebooks.

* ``on_files`` adds ``examples/*.ipynb`` (outside ``docs/``) to the site as ``examples/<name>.ipynb``,
  for mkdocs-jupyter to render, so the notebooks are not copied into ``docs/``.
* ``on_post_page`` removes the CDN MathJax (and unused Mermaid) loaders that nbconvert writes into
  notebook pages, and loads the bundled MathJax on every page that has math.
* ``on_page_markdown`` writes the command-line reference into ``cli.md`` from the program's own parser.
* ``on_post_build`` copies the part of MathJax that those pages use from the ``jupyter-server-mathjax``
  wheel into ``site/assets/mathjax``, turns the formulas of the search index into plain text (a search
  result's snippet shows ∇_W̃ L = 1/b ∇_Z L X̃ᵀ, not ``\nabla_{\tilde{\mathbf{W}}}``), and writes the index
  also as a script, ``search/search_index.js``: a page opened from disk (file://) may load a script but
  not fetch a JSON file (docs/javascripts/file-worker.js runs the search there).
"""

from __future__ import annotations

import argparse
import html
import json
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
# Fonts that the wheel does not ship, which MathJax would otherwise ask for (404s in the console):
# * the MathML it writes beside each formula for screen readers gets the TeX fonts (MathJax_AMS, _Script,
#   _Fraktur, _Caligraphic from fonts/HTML-CSS/TeX/otf) for its \mathbb, \mathcal… letters: those letters
#   take the page's font instead (the MathML is not displayed, only read aloud);
# * HTML-CSS's blank fallback font is url('about:blank'), which a page opened from disk may not load
#   (a CORS error): the same empty font, named by a local() that finds nothing, loads nothing.
TEX_FONT_STYLES = [
    '[mathvariant="double-struck"]',
    '[mathvariant="script"]',
    '[mathvariant="bold-script"]',
    '[mathvariant="fraktur"]',
    '[mathvariant="bold-fraktur"]',
    '[class="MJX-tex-caligraphic"]',
    '[class="MJX-tex-caligraphic-bold"]',
    '[class="MJX-tex-oldstyle"]',
    '[class="MJX-tex-oldstyle-bold"]',
]
MATHJAX_STYLES = {
    "NativeMML": {"styles": {selector: {"font-family": "inherit"} for selector in TEX_FONT_STYLES}},
    "HTML-CSS": {
        "availableFonts": [],
        "preferredFont": None,
        "webFont": "STIX-Web",
        "imageFont": None,
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank_none')"}},
    },
}
MATHJAX_LOADER = (
    """<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  %s
  TeX: {equationNumbers: {autoNumber: "AMS"}},
  NativeMML: """
    + json.dumps(MATHJAX_STYLES["NativeMML"])
    + """,
  "HTML-CSS": """
    + json.dumps(MATHJAX_STYLES["HTML-CSS"])
    + """,
  MathMenu: {showRenderer: false, showFontMenu: false, showLocale: false},
  messageStyle: "none"
});
</script>
<script src="%s?config=%s"></script>
"""
)


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
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal's width: make it the same on every machine
    from nablanet.app.commands import build_parser

    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    helps = {"nablanet": parser.format_help()}
    helps.update((f"nablanet {name}", subparser.format_help()) for name, subparser in commands.choices.items())
    # a <pre> of class cli-help wraps its lines in a narrow column (docs/stylesheets/extra.css), never cuts them
    return "\n".join(
        f'## {title}\n\n<pre class="cli-help"><code>{html.escape(text)}</code></pre>\n' for title, text in helps.items()
    )


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


# LaTeX in the search index → text. Commands that only style their argument keep the argument; accents
# become combining characters; a sub- or superscript whose characters all have Unicode forms uses them.
TEX_SYMBOLS = {
    **dict.fromkeys(["quad", "qquad", ",", ";", ":", "!", " "], " "),
    **dict.fromkeys(["left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", "limits"], ""),
    "nabla": "∇", "odot": "⊙", "otimes": "⊗", "cdot": "·", "times": "×", "sum": " Σ", "prod": " Π",
    "leftarrow": "←", "rightarrow": "→", "to": "→", "in": "∈", "le": "≤", "leq": "≤", "ge": "≥",
    "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "partial": "∂", "infty": "∞", "sim": "~", "mid": "|",
    "ldots": "…", "dots": "…", "cdots": "⋯", "top": "ᵀ", "prime": "′", "pm": "±", "{": "(", "}": ")",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "eta": "η",
    "theta": "θ", "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "rho": "ρ", "pi": "π",
    "omega": "ω", "Sigma": "Σ", "Delta": "Δ", "mathbb{R}": "ℝ",
}  # fmt: skip
TEX_STYLE = re.compile(r"\\(?:mathbf|mathrm|mathit|mathcal|mathbb|boldsymbol|text|textbf|operatorname)\{([^{}]*)\}")
TEX_ACCENT = re.compile(r"\\(tilde|hat|bar|widetilde|widehat)\{([^{}]*)\}")
ACCENTS = {"tilde": "\u0303", "widetilde": "\u0303", "hat": "\u0302", "widehat": "\u0302", "bar": "\u0304"}
TEX_FRACTION = re.compile(r"\\[td]?frac\{([^{}]*)\}\{([^{}]*)\}")
TEX_LAYOUT = re.compile(r"\\(?:begin|end)\{\w+\*?\}|&|\\\\")  # environments, alignment, line breaks
TEX_SCRIPT = re.compile(r"([_^])(?:\{([^{}]*)\}|(\\[A-Za-z]+|[\w∇]))")
SUPERSCRIPTS = dict(zip("0123456789+-−()inTᵀ′", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁽⁾ⁱⁿᵀᵀ′", strict=True))
SUBSCRIPTS = dict(zip("0123456789+-−()ijk", "₀₁₂₃₄₅₆₇₈₉₊₋₋₍₎ᵢⱼₖ", strict=True))
TEX_COMMAND = re.compile(r"\\(mathbb\{R\}|[A-Za-z]+|[,;:! {}])")
MATH_IN_TEXT = re.compile(r"\\\[(.+?)\\\]|\\\((.+?)\\\)|\$\$(.+?)\$\$|\$(\S(?:[^$\n]*\S)?)\$", re.S)


def tex_to_text(tex: str) -> str:
    r"""A LaTeX formula as plain Unicode text, for the search snippets: ``\frac{1}{b}`` → ``1/b``."""
    tex = TEX_LAYOUT.sub(lambda m: "; " if m[0] == "\\\\" else " ", tex)
    previous = None
    while previous != tex:  # from the innermost braces out
        previous = tex
        tex = TEX_STYLE.sub(r"\1", tex)
        tex = TEX_ACCENT.sub(lambda m: "".join(c + ACCENTS[m[1]] for c in m[2]) if len(m[2]) == 1 else m[2], tex)
        tex = TEX_FRACTION.sub(lambda m: f"{_grouped(m[1])}/{_grouped(m[2])}", tex)
        tex = TEX_SCRIPT.sub(_script, tex)
    tex = TEX_COMMAND.sub(lambda m: TEX_SYMBOLS.get(m[1], m[1]), tex)
    return re.sub(r"\s+", " ", tex.replace("{", "").replace("}", "")).strip()


def _grouped(text: str) -> str:
    return text if re.fullmatch(r"[\w.]+", text) else f"({text})"


def _script(match: re.Match[str]) -> str:
    kind, group = match[1], match[2] if match[2] is not None else match[3]
    group = TEX_COMMAND.sub(lambda m: TEX_SYMBOLS.get(m[1], m[1]), group)
    forms = SUPERSCRIPTS if kind == "^" else SUBSCRIPTS
    if group and all(c in forms for c in group):
        return "".join(forms[c] for c in group)
    if kind == "^" and group in ("ᵀ", "′"):
        return group
    letters = re.sub("[\u0300-\u036f]", "", group)  # an accent is part of its letter: W̃ is one
    return f"{kind}{group}" if len(letters) == 1 or group.startswith(("∇", "(")) else f"{kind}({group})"


def plain_math(text: str) -> str:
    r"""Every formula of a search-index text (``\[…\]``, ``\(…\)``, ``$…$``) as plain text."""

    def text_of(match: re.Match[str]) -> str:
        tex = html.unescape(next(group for group in match.groups() if group is not None))
        return html.escape(tex_to_text(tex), quote=False)  # the index's text is HTML

    return MATH_IN_TEXT.sub(text_of, text)


@event_priority(-100)  # after the search plugin has written search_index.json
def on_post_build(config):
    index_file = Path(config["site_dir"]) / "search" / "search_index.json"
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        for entry in index["docs"]:
            entry["text"] = plain_math(entry["text"])
        data = json.dumps(index, ensure_ascii=False, separators=(",", ":"))
        index_file.write_text(data, encoding="utf-8")
        (index_file.parent / "search_index.js").write_text(f"var __index = {data};\n", encoding="utf-8")
    dest = Path(config["site_dir"]) / MATHJAX_DEST
    for part in MATHJAX_PARTS:
        source, target = MATHJAX_SRC / part, dest / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=MATHJAX_SKIP, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
