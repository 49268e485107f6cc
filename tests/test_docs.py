"""The documentation site: built offline with --strict, every public name in the API reference with its
signature and parameter table, the formulas typeset (in a real browser, Debian's headless Chromium), the
notebooks with their outputs, the command-line reference generated from the parser, nothing loaded from
another host, and every page opened without a console error or a failed request, from disk and over HTTP.

Screenshots go to the test's temporary folder; with ``NABLANET_SCREENSHOTS=folder`` they are also copied there.
"""

import contextlib
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

import nablanet as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
from browser import chromium, console_errors, failed_requests, needs_chromium, save_screenshot  # noqa: E402
from check_site import external_loads  # noqa: E402
from hooks import plain_math, tex_to_text  # noqa: E402

pytestmark = pytest.mark.slow
COMMANDS = ("train", "sweep", "sample", "evaluate", "predict", "gradcheck", "inspect", "toy", "exercises", "serve")


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
        "attention.html",
        "cli.html",
        "examples/01_toy_softmax_classifier.html",
        "examples/02_mnist_softmax_classifier.html",
        "examples/03_inside_the_softmax_classifier.html",
        "examples/04_hidden_layer_network.html",
        "examples/05_convolution_from_scratch.html",
        "examples/06_regression.html",
        "examples/07_tuning.html",
        "examples/08_normalisation.html",
        "examples/09_recurrent.html",
        "examples/10_attention.html",
        "examples/11_why_frameworks_are_fast.html",
        "exercises.html",
        "exercises/1_softmax_classifier_gradient.html",
        "exercises/2_dense_layer.html",
        "exercises/3_softmax_jacobian.html",
        "exercises/4_cross_entropy.html",
        "exercises/5_hidden_layer.html",
        "exercises/6_convolution.html",
        "index.html",
        "playground.html",
        "plots.html",
        "sequences.html",
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
    for command in COMMANDS:
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


def pages(site: Path) -> list[Path]:
    return sorted(path for path in site.rglob("*.html") if "assets" not in path.parts)


class Prose(HTMLParser):
    """A page's text outside formulas, code, scripts and styles."""

    SKIPPED = frozenset({"script", "style", "code", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.open: list[bool] = []  # for each open element: is the text inside it skipped?

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "input", "meta", "link", "hr", "wbr", "source"):
            return
        classes = (dict(attrs).get("class") or "").split()
        self.open.append(tag in self.SKIPPED or "arithmatex" in classes or (bool(self.open) and self.open[-1]))

    def handle_endtag(self, tag):
        if self.open:
            self.open.pop()

    def handle_data(self, data):
        if not (self.open and self.open[-1]):
            self.text.append(data)


def prose(page: Path) -> str:
    parser = Prose()
    parser.feed(page.read_text(encoding="utf-8"))
    return " ".join(parser.text)


def test_no_page_shows_a_sphinx_role_or_a_tilde_path(site):
    shown = {
        str(page.relative_to(site)): re.findall(r":(?:func|class|meth|mod|attr|data):|~nablanet\.", prose(page))
        for page in pages(site)
    }
    assert {page: found for page, found in shown.items() if found} == {}


def test_the_cross_references_of_the_docstrings_are_links(site):
    api = (site / "api.html").read_text(encoding="utf-8")
    sequential = api[api.index('id="nablanet.Sequential"') :]
    # fit's docstring: ":class:`~nablanet.Callback` objects", a link to Callback's entry
    link = r'<a class="autorefs autorefs-internal"[^>]*href="#nablanet\.Callback"><code>Callback</code></a>'
    assert re.search(link, sequential)


def test_the_prose_pages_have_no_latex_braces_outside_the_formulas(site):
    # the notebooks (course and exercises) write their math as $…$ in Markdown cells (MathJax typesets it), so
    # they are left out
    leftovers = {
        str(page.relative_to(site)): re.findall(r".{0,30}[_^]\{.{0,30}", prose(page))
        for page in pages(site)
        if "examples" not in page.parts and "exercises" not in page.parts
    }
    assert {page: found for page, found in leftovers.items() if found} == {}


def test_a_formula_becomes_plain_text_for_the_search_snippets():
    dense_backward = r"\nabla_{\tilde{\mathbf{W}}} L = \frac{1}{b}\,\nabla_{\mathbf{Z}} L\,\tilde{\mathbf{X}}^\top"
    assert tex_to_text(dense_backward) == "∇_W̃ L = 1/b ∇_Z L X̃ᵀ"
    assert tex_to_text(r"\mathrm{diag}(\mathbf{a}) - \mathbf{a}\mathbf{a}^\top") == "diag(a) - aaᵀ"
    assert tex_to_text(r"\sum_i L_i + \alpha^{t-1}") == "Σᵢ Lᵢ + α^(t-1)"
    assert plain_math(r"<p>with \(x^2 &lt; 1\) and $5</p>") == "<p>with x² &lt; 1 and $5</p>"


def test_the_search_index_has_no_latex(site):
    index = json.loads((site / "search/search_index.json").read_text(encoding="utf-8"))
    latex = re.compile(r"\\(?:frac|mathbf|mathrm|nabla|tilde|hat|sum|top|begin|qquad)\b|[_^]\{")
    found = {entry["location"]: latex.findall(entry["text"]) for entry in index["docs"]}
    assert {location: commands for location, commands in found.items() if commands} == {}
    script = (site / "search/search_index.js").read_text(encoding="utf-8")
    assert script.startswith("var __index = {") and json.loads(script[len("var __index = ") :].rstrip(";\n")) == index


def test_sequential_shows_fit_evaluate_and_predict_with_their_signatures(site):
    api = (site / "api.html").read_text(encoding="utf-8")
    for method in ("fit", "evaluate", "predict"):
        assert f'id="nablanet.Sequential.{method}"' in api
    fit = api[api.index('id="nablanet.Sequential.fit"') :]
    signature = re.sub(r"<[^>]+>", "", re.search(r'class="doc-signature[^>]*>(.*?)</pre>', fit, re.S)[1])
    signature = " ".join(signature.replace("&quot;", '"').split())
    assert signature.startswith("fit( X: ndarray, Y: ndarray, *, epochs: int = 20, batch_size: int = 200,")


def test_the_plots_are_documented(site):
    page = (site / "plots.html").read_text(encoding="utf-8")
    for name in ("plot_training", "plot_history", "plot_confusion_matrix", "plot_weight_templates", "plot_dynamics"):
        assert f'id="nablanet.app.plots.{name}"' in page


class ParameterTables(HTMLParser):
    """Each parameter table of a page (Name / Type / Description / Default) as (the entry's id, its rows: the
    text of each cell), the entry being the heading of the function or class above the table."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.entry = ""
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        identifier = dict(attrs).get("id") or ""
        if tag in ("h2", "h3", "h4", "h5") and identifier.startswith("nablanet"):
            self.entry = identifier
        elif tag == "table":
            self.tables.append((self.entry, [], []))
        elif tag == "tr" and self.tables:
            self.tables[-1][2].append([])
        elif tag in ("th", "td"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self.cell is not None and self.tables:
            _, header, rows = self.tables[-1]
            text = " ".join("".join(self.cell).split())
            (header if tag == "th" else rows[-1]).append(text)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parameter_rows(page: Path) -> list[tuple[str, str, str]]:
    """(entry, parameter, description) for every row of every parameter table of the page."""
    parser = ParameterTables()
    parser.feed(page.read_text(encoding="utf-8"))
    found = []
    for entry, header, rows in parser.tables:
        if header[:4] == ["Name", "Type", "Description", "Default"]:
            found += [(entry, row[0], row[2]) for row in rows if row]
    return found


@pytest.mark.parametrize("page", ["api.html", "plots.html"])
def test_every_parameter_has_a_description(site, page):
    rows = parameter_rows(site / page)
    assert len(rows) > (100 if page == "api.html" else 40)  # the tables were found and read
    empty = [f"{entry}: {name}" for entry, name, description in rows if not description]
    assert not empty, "add these to their docstring's Args: section"


def settled(browser) -> bool:
    """The page, its fonts and (where it has formulas) MathJax's typesetting have all finished."""
    return browser.execute_script(
        "return document.readyState === 'complete' && document.fonts.status === 'loaded'"
        " && (!window.MathJax || !MathJax.Hub || (MathJax.isReady && MathJax.Hub.queue.pending === 0))"
    )


def open_and_settle(browser, url: str) -> None:
    browser.get(url)
    with contextlib.suppress(TimeoutException):
        WebDriverWait(browser, 30, poll_frequency=0.1).until(settled)
    assert settled(browser), f"{url} did not finish loading within 30 s"


@pytest.fixture(scope="module")
def served(site):
    """The site over HTTP (the README's python -m http.server -d site), on a free port of 127.0.0.1."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the name the base class gives it)
        pass


@needs_chromium
@pytest.mark.parametrize("how", ["file", "http"])
def test_every_page_opens_without_a_console_error_or_a_failed_request(site, served, how):
    problems = {}
    with chromium(network=True) as browser:
        for page in pages(site):
            name = str(page.relative_to(site))
            if how == "file" and name == "404.html":
                continue  # a server's page for a missing address: its links start at the server's root
            open_and_settle(browser, page.as_uri() if how == "file" else f"{served}/{name}")
            found = console_errors(browser) + failed_requests(browser)
            if found:
                problems[name] = found
    assert problems == {}


# on scrolling, the header bar swaps the site's name for the page's: done, and without the cross-fade
HEADER_SWAPPED = (
    "document.querySelectorAll('.md-header__topic').forEach(topic => topic.style.transition = 'none');"
    "return document.querySelector('.md-header__title').classList.contains('md-header__title--active')"
)


@needs_chromium
def test_the_dense_entry_shows_its_signature_and_a_parameter_table(site, tmp_path):
    with chromium(1300, 1400) as browser:
        open_and_settle(browser, (site / "api.html").as_uri())
        entry = browser.execute_script(
            """const heading = document.getElementById('nablanet.Dense');
            const contents = heading.parentElement.querySelector('.doc-contents');
            const table = contents.querySelector('table');
            heading.scrollIntoView();
            window.scrollBy(0, -60);  // the heading below the theme's fixed header bar
            return {signature: heading.parentElement.querySelector('.doc-signature').innerText,
                    header: [...table.querySelectorAll('th')].map(cell => cell.innerText),
                    rows: [...table.querySelectorAll('tbody tr')].map(
                        row => [...row.querySelectorAll('td')].map(cell => cell.innerText.trim()))};"""
        )
        with contextlib.suppress(TimeoutException):  # the header bar's fade, for the screenshot only
            WebDriverWait(browser, 5, poll_frequency=0.05).until(lambda browser: browser.execute_script(HEADER_SWAPPED))
        save_screenshot(browser, tmp_path, "docs-api-dense.png")
    assert " ".join(entry["signature"].split()) == (
        'Dense( input_size: int, output_size: int, *, init: str = "notebook", rng=None, dtype=float64, )'
    )
    assert entry["header"] == ["Name", "Type", "Description", "Default"]
    assert [row[0] for row in entry["rows"]] == ["input_size", "output_size", "init", "rng", "dtype"]
    assert entry["rows"][0] == ["input_size", "int", "Features per sample, the rows of X.", "required"]
    assert entry["rows"][2][1:] == ["str", entry["rows"][2][2], "'notebook'"] and "he_normal" in entry["rows"][2][2]


@needs_chromium
@pytest.mark.parametrize("how", ["file", "http"])
def test_the_search_works_from_disk_and_over_http_and_its_snippets_have_no_latex(site, served, tmp_path, how):
    from selenium.webdriver.common.by import By

    with chromium(1300, 1500, network=True) as browser:  # tall: Dense's entry is among the results in sight
        open_and_settle(browser, (site / "index.html").as_uri() if how == "file" else f"{served}/index.html")
        box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
        box.click()
        box.send_keys("Dense backward")
        # the index loads, the worker answers and the list fills in, item by item: read the texts in one script
        # (no element reference to go stale as the list re-renders) until Dense's entry is among them
        read = "return [...document.querySelectorAll('.md-search-result__item')].map(item => item.innerText)"
        results: list[str] = []

        def dense_found(browser) -> bool:
            results[:] = browser.execute_script(read)
            return any(result.startswith("API reference\nDense\n") for result in results)

        with contextlib.suppress(TimeoutException):  # the asserts below then say what was found
            WebDriverWait(browser, 30, poll_frequency=0.1).until(dense_found)
        save_screenshot(browser, tmp_path, f"docs-search-{how}.png")
        problems = console_errors(browser) + failed_requests(browser)
    assert any(result.startswith("API reference\nDense\n") for result in results)
    assert any("∇_W̃ L" in result for result in results)  # Dense's backward formula, as text
    assert not [result for result in results if re.search(r"\\[a-z]+|[_^]\{", result)]
    assert problems == []


@needs_chromium
@pytest.mark.parametrize("width", [1300, 700])
def test_the_command_line_reference_is_never_cut_at_the_column_edge(site, width):
    with chromium(width, 1000) as browser:
        open_and_settle(browser, (site / "cli.html").as_uri())
        overflowing = browser.execute_script(
            "return [...document.querySelectorAll('pre.cli-help > code')]"
            ".filter(code => code.scrollWidth > code.clientWidth + 1).length"
        )
        blocks = browser.execute_script("return document.querySelectorAll('pre.cli-help > code').length")
    assert blocks == 1 + len(COMMANDS) and overflowing == 0  # nablanet --help, then each command's
