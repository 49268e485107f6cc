"""A real browser for the tests: Debian's headless Chromium (packages chromium and chromium-driver, which
.ci/run installs), driven by Selenium. Nothing is downloaded at run time."""

from __future__ import annotations

import contextlib
import shutil

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
)


@contextlib.contextmanager
def chromium(width: int = 1300, height: int = 1000):
    """A headless Chromium window, closed afterwards; its console messages are kept (``console_errors``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",  # this machine's closed network refuses Google's hosts
        "--disable-component-update",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(browser) -> list[str]:
    """The errors the page's console received so far (JavaScript exceptions, failed loads, CSP refusals)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
