"""The documentation site: built offline with --strict, every public name in the API reference, the
formulas typeset (in a real browser, Debian's headless Chromium), the notebooks with their outputs, the
command-line reference generated from the parser, and nothing loaded from another host."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nablanet as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
from browser import chromium, needs_chromium  # noqa: E402
from check_site import external_loads  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs") / "site"
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(folder)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr  # --strict: any warning fails the build
    return folder


def test_the_site_has_its_pages(site):
    pages = sorted(str(path.relative_to(site)) for path in site.rglob("*.html") if "assets" not in path.parts)
    assert pages == [
        "404.html",
        "api.html",
        "architecture.html",
        "cli.html",
        "examples/01_toy_softmax_classifier.html",
        "examples/02_mnist_softmax_classifier.html",
        "examples/03_inside_the_softmax_classifier.html",
        "examples/04_hidden_layer_network.html",
        "examples/05_convolution_from_scratch.html",
        "examples/06_regression.html",
        "index.html",
    ]


def test_every_public_name_is_in_the_api_reference(site):
    page = (site / "api.html").read_text(encoding="utf-8")
    missing = [name for name in nn.__all__ if f'id="nablanet.{name}"' not in page]
    assert not missing


def test_the_docstring_formulas_are_math_for_mathjax(site):
    page = (site / "api.html").read_text(encoding="utf-8")
    assert page.count('class="arithmatex"') >= 15
    assert r"\nabla_{\tilde{\mathbf{W}}} L = \frac{1}{b}" in page  # Dense's backward pass
    assert "assets/mathjax/MathJax.js?config=" in page
    assert (site / "assets/mathjax/MathJax.js").is_file()


def test_the_notebooks_are_rendered_with_their_outputs(site):
    page = (site / "examples/04_hidden_layer_network.html").read_text(encoding="utf-8")
    assert "∇W1 by hand == Dense: True" in page  # a text output
    assert page.count("data:image/png;base64") >= 2  # the dynamics and the optimizers' loss curves
    assert "cdnjs" not in page and "LOCAL-MATHJAX" not in page


def test_the_command_line_reference_comes_from_the_parser(site):
    page = (site / "cli.html").read_text(encoding="utf-8")
    for command in ("train", "evaluate", "predict", "gradcheck", "inspect", "toy"):
        assert f"usage: nablanet {command}" in page
    assert "--hidden SIZES" in page and "--loss {auto,cce}" in page


def test_nothing_is_loaded_from_another_host(site):
    loads, _ = external_loads(site)
    assert loads == []


@needs_chromium
@pytest.mark.parametrize(
    "page, anchor",
    [("api.html", "nablanet.Dense"), ("examples/04_hidden_layer_network.html", "backward-shape-by-shape")],
)
def test_a_browser_typesets_the_formulas(site, tmp_path, page, anchor):
    with chromium() as browser:
        browser.get((site / page).as_uri())
        deadline = time.monotonic() + 30
        typeset = 0
        while time.monotonic() < deadline:  # MathJax typesets after the page has loaded
            typeset = browser.execute_script("return document.querySelectorAll('.MathJax, .MathJax_Display').length")
            done = browser.execute_script("return !!(window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0)")
            if typeset and done:
                break
            time.sleep(0.2)
        errors = browser.execute_script("return document.querySelectorAll('.MathJax_Error, merror').length")
        raw = browser.execute_script("return document.body.innerText.includes('\\\\frac')")
        browser.execute_script(f"document.getElementById('{anchor}').scrollIntoView()")
        browser.save_screenshot(str(tmp_path / "page.png"))
    assert typeset >= 5 and errors == 0 and not raw
