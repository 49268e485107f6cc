"""A real browser for the tests: Debian's headless Chromium (packages chromium and chromium-driver, which
.ci/run installs), driven by Selenium. Nothing is downloaded at run time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
)


@contextlib.contextmanager
def chromium(width: int = 1300, height: int = 1000, *, network: bool = True):
    """A headless Chromium window, closed afterwards; its console messages are kept (``console_errors``),
    and with ``network`` its requests too (``failed_requests``)."""
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if network else {})})
    browser = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(browser) -> list[str]:
    """The errors the page's console received so far (JavaScript exceptions, failed loads, CSP refusals)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def failed_requests(browser) -> list[str]:
    """The requests of the page so far that failed: an HTTP status of 400 or more, or no answer at all (a request
    the page itself cancelled, such as an event stream it closed, is no failure). Each is read once."""
    urls, failed = {}, []
    for entry in browser.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = f"{params['request']['method']} {params['request']['url']}"
        elif event["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
            failed.append(f"{params['response']['status']} {params['response']['url']}")
        elif event["method"] == "Network.loadingFailed" and not params.get("canceled"):
            failed.append(f"{params['errorText']} {urls.get(params['requestId'], params['requestId'])}")
    return failed


def save_screenshot(browser, folder: Path, name: str) -> Path:
    """The window's screenshot as ``folder/name``, also copied to ``$NABLANET_SCREENSHOTS`` where that is set
    (to keep the pictures of a run for a note)."""
    path = folder / name
    browser.save_screenshot(str(path))
    if os.environ.get("NABLANET_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["NABLANET_SCREENSHOTS"]) / name)
    return path
