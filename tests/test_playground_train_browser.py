"""The Train tab's TensorFlow-Playground controls in Debian's headless Chromium: input features,
regularisation, the train/test split and the test data, XOR learned from x₁x₂ alone, a regression, the network
diagram (hover, edit, Step), and a link that restores the whole setup — hidden controls hidden — in a fresh
browser. One playground and one browser serve the tests, and a second browser opens the link. Every wait is on
a condition of the page (WebDriverWait).

Screenshots: /work/shots-like folders with ``NABLANET_SCREENSHOTS=folder`` (see tests/browser.py).
"""

from __future__ import annotations

import signal
import urllib.error
import urllib.parse
import urllib.request

import pytest
from browser import chromium, console_errors, failed_requests, needs_chromium, save_screenshot
from playground_process import start_playground

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    process, address = start_playground(tmp_path_factory.mktemp("runs"))
    yield address
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=20)
    assert process.returncode == 130 and "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def browser():
    with chromium(1400, 1750) as browser:
        yield browser


def wait_for(browser, condition, seconds: float = 60, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.05).until(
        lambda _: condition(), message=f"{what} did not happen within {seconds} s"
    )


def js(browser, script: str, *arguments):
    return browser.execute_script(f"return {script}", *arguments)


def opened(browser, address: str) -> None:
    """``address`` loaded and its first session's first snapshot shown."""
    browser.get(address)
    wait_for(browser, lambda: js(browser, "Train.previous !== null && Train.previous !== undefined"), what="a session")


def settled(browser, check) -> dict:
    """The session's description once ``check(description)`` holds (a new session answered the change)."""
    return wait_for(browser, lambda: (d := js(browser, "Train.previous && Train.description")) and check(d) and d)


def change(browser, selector: str, value=None) -> None:
    """Set a field (or tick a box) of the Train form and let the form hear it, as a user's edit does."""
    browser.execute_script(
        "const field = document.querySelector(arguments[0]);"
        "if (arguments[1] === null) field.checked = !field.checked; else field.value = arguments[1];"
        "field.dispatchEvent(new Event('change', { bubbles: true }));",
        selector,
        value,
    )


def clean(browser) -> None:
    assert console_errors(browser) == []
    assert failed_requests(browser) == []


def test_features_regularisation_and_the_split_are_switched(url, browser, tmp_path):
    opened(browser, url + "#train")
    for name in ("x1x2", "x1", "x2"):  # ticked first: the network always has an input
        change(browser, f'#features input[value="{name}"]')
    described = settled(browser, lambda d: d["settings"]["features"] == ["x1x2"])
    assert described["sizes"] == [1, 16, 16, 3] and [f["label"] for f in described["features"]] == ["x₁x₂"]
    change(browser, "#settings [name=regularization]", "l2")
    change(browser, "#settings [name=regularization_rate]", "0.01")
    settled(browser, lambda d: (d["settings"]["regularization"], d["settings"]["regularization_rate"]) == ("l2", 0.01))
    change(browser, "#settings [name=train_percent]", "70")
    described = settled(browser, lambda d: d["settings"]["train_percent"] == 70)
    assert len(described["points"]) == 420 and len(described["test_points"]) == 180
    assert browser.find_element("id", "train-percent-shown").text == "70"
    change(browser, "#show-test")
    points = browser.find_element("id", "points")
    wait_for(
        browser, lambda: points.get_attribute("aria-label") == "420 training points and 180 test points (black rings)"
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query)
    assert query["features"] == ["x1x2"] and query["regularization"] == ["l2"] and query["train_percent"] == ["70"]
    assert query["show_test"] == ["true"]
    change(browser, "#features input[value='x1x2']")  # no feature at all: refused here, the session stays
    wait_for(browser, lambda: "at least one input feature" in browser.find_element("id", "settings-message").text)
    assert js(browser, "Train.description.settings.features") == ["x1x2"]
    save_screenshot(browser, tmp_path, "play-controls.png")
    clean(browser)


def test_xor_is_learned_from_x1x2_alone_in_a_few_epochs_and_the_diagram_shows_and_edits_it(url, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    opened(browser, url + "?dataset=xor&noise=0&features=x1x2&hidden=2&activation=tanh&learning_rate=0.05&seed=1#train")
    browser.find_element("id", "run").click()
    accuracy = "Train.previous.accuracy_curve"
    wait_for(browser, lambda: max(js(browser, f"{accuracy}.values"), default=0) >= 0.97, what="97 % training accuracy")
    browser.find_element("id", "run").click()  # Pause
    wait_for(
        browser, lambda: js(browser, "Train.state") == "paused" and browser.find_element("id", "run").text == "Train"
    )
    curve = js(browser, accuracy)
    first = next(epoch for epoch, value in zip(curve["epochs"], curve["values"], strict=True) if value >= 0.97)
    assert first <= 25, curve  # a few epochs: x₁x₂ alone separates XOR's classes
    output = browser.find_element("css selector", '[data-unit="2,0"]')
    ActionChains(browser).move_to_element(output).perform()
    info = browser.find_element("id", "diagram-info").text
    weights = js(browser, "Train.network.weights[1][0]")
    assert info.startswith("z₁ (class 0): output") and "z = w·x + b = " in info
    assert f"{weights[0]:.3g}".lstrip("-") in info and "∂L/∂w = [" in info  # paused: the last gradients
    hit = browser.find_element("css selector", '[data-weight="0,1,0"]')  # x₁x₂ → a¹₂
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', { bubbles: true }))", hit)
    assert browser.find_element("id", "weight-name").text.startswith("w from x₁x₂ to a¹₂ (now ")
    value = browser.find_element("id", "weight-value")
    value.clear()
    value.send_keys("-2.5")
    browser.find_element("id", "weight-set").click()
    wait_for(browser, lambda: js(browser, "Train.network.weights[0][1][0]") == -2.5, what="the edited weight")
    assert js(browser, "Train.previous.edits") == 1
    # the editor closes on the POST's answer, which may come after the snapshot that shows the edit
    wait_for(browser, lambda: not browser.find_element("id", "weight-editor").is_displayed(), what="the editor closed")
    epoch = int(browser.find_element("id", "epoch").text)
    browser.find_element("id", "step").click()
    step = browser.find_element("id", "step-change")
    wait_for(browser, lambda: step.text.startswith(f"one step: epoch {epoch} → {epoch + 1}, training loss"))
    assert "the weight that moved most:" in step.text
    assert browser.find_element("id", "export-ipynb").get_attribute("href").endswith("/export.ipynb")
    save_screenshot(browser, tmp_path, "play-xor.png")
    clean(browser)


def test_a_regression_trains_with_its_value_shown_as_the_output_unit(url, browser, tmp_path):
    opened(browser, url + "?dataset=plane&hidden=3&activation=tanh&features=x1,x2&speed=fast&epochs=150#train")
    assert browser.find_element("id", "plane-title").text == "Regression: the predicted value ŷ"
    browser.find_element("id", "run").click()
    wait_for(browser, lambda: js(browser, "Train.previous.state") == "done", what="150 epochs")
    assert float(browser.find_element("id", "test-loss").text) < 0.01  # the noise alone costs 0.05² = 0.0025
    assert browser.find_element("id", "test-loss-label").text == "test loss (mean squared error)"
    unit = browser.find_element("css selector", '[data-unit="2,0"]')
    assert unit.tag_name == "image" and unit.get_attribute("href") == browser.find_element(
        "id", "boundary"
    ).get_attribute("src")
    save_screenshot(browser, tmp_path, "play-regression.png")
    clean(browser)


def test_a_link_restores_the_setup_in_a_fresh_browser_with_its_controls_hidden(url, browser, tmp_path):
    setup = (
        "?dataset=circles&features=x1sq,x2sq&hidden=3&activation=tanh&regularization=l1&regularization_rate=0.01"
        "&train_percent=30&seed=9&show_test=true&features_hide=true&regularization_hide=true&seed_hide=true"
    )
    opened(browser, url + setup + "&noise=abc&path_hide=true#train")
    message = browser.find_element("id", "settings-message").text
    assert 'noise="abc"' in message and 'path_hide="true"' in message and message.endswith("ignored")
    link = browser.current_url  # the page's own address of its setup: every setting
    there = js(browser, "Train.description")
    with chromium(1400, 1750) as fresh:
        opened(fresh, link)
        here = js(fresh, "Train.description")
        assert here["settings"] == there["settings"] and here["points"] == there["points"]
        assert here["settings"]["features"] == ["x1sq", "x2sq"] and here["settings"]["seed"] == 9
        for name in ("features", "regularization", "seed"):
            assert not fresh.find_element("css selector", f'[data-control="{name}"]').is_displayed()
        for name in ("dataset", "hidden", "train_percent", "show_test"):
            assert fresh.find_element("css selector", f'[data-control="{name}"]').is_displayed()
        assert fresh.find_element("id", "show-test").is_selected()
        assert fresh.find_element("id", "settings-message").text == ""
        save_screenshot(fresh, tmp_path, "play-link.png")
        clean(fresh)


def test_a_regularised_run_names_its_gradient_with_the_penalty(url, browser):
    """Paused with L2 on, the stored gradient is ∇(L + λR): the hover text says so, not ∂L/∂w."""
    opened(browser, url + "?dataset=xor&hidden=2&regularization=l2&regularization_rate=0.5&epochs=5#train")
    browser.find_element("id", "step").click()
    wait_for(browser, lambda: js(browser, "Train.previous.epoch") == 1, what="one step")
    hit = browser.find_element("css selector", '[data-weight="0,1,0"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseenter'))", hit)
    info = browser.find_element("id", "diagram-info").text
    assert "∂(L + λR)/∂w = " in info and "λ = 0.5" in info and "∂L/∂w" not in info, info
    unit = browser.find_element("css selector", '[data-unit="1,0"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseenter'))", unit)
    info = browser.find_element("id", "diagram-info").text
    assert "∂(L + λR)/∂w = [" in info and "∂L/∂b = " in info, info  # the bias has no penalty
    clean(browser)


def test_leaving_the_page_closes_its_session(url, browser):
    opened(browser, url + "?dataset=xor&hidden=2&epochs=5#train")
    export = f"{url.rstrip('/')}/api/sessions/{js(browser, 'Train.session')}/export.py"

    def status() -> int:
        try:
            with urllib.request.urlopen(export, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert status() == 200
    browser.get("about:blank")  # pagehide: the page sends DELETE for its session
    wait_for(browser, lambda: status() == 404, seconds=10, what="the session's close")


def test_an_export_refused_while_training_says_why_on_the_page(url, browser):
    opened(browser, url + "?dataset=xor&hidden=2&speed=slow&epochs=2000#train")
    failed_requests(browser)  # read: only this test's requests are looked at below
    browser.find_element("id", "run").click()
    wait_for(browser, lambda: js(browser, "Train.state") == "running", what="the training")
    browser.find_element("id", "export-py").click()
    message = browser.find_element("id", "export-message")
    wait_for(browser, lambda: "pause the training first" in message.text, seconds=10, what="the refusal")
    assert browser.current_url.endswith("#train") and js(browser, "Train.state") == "running"
    assert [request.split()[0] for request in failed_requests(browser)] == ["409"]
    assert console_errors(browser) == [] or all("409" in error for error in console_errors(browser))
    browser.find_element("id", "run").click()  # Pause: then the export is the run shown
    wait_for(browser, lambda: js(browser, "Train.previous.state") == "paused", what="the pause")
    assert message.text == ""  # answered by the pause: no stale "pause the training first"
    epoch = js(browser, "Train.previous.epoch")
    name = browser.execute_async_script(
        "Train.exportRun(new Event('click'), document.querySelector('#export-py')).then(arguments[0])"
    )
    assert name == f"nablanet-xor-epoch-{epoch}.py" and message.text == ""


def test_a_weight_edit_refused_while_training_says_why_in_the_editor(url, browser):
    opened(browser, url + "?dataset=xor&hidden=2&speed=slow&epochs=2000#train")
    failed_requests(browser)  # read: only this test's requests are looked at below
    browser.find_element("id", "run").click()
    wait_for(browser, lambda: js(browser, "Train.state") == "running", what="the training")
    # the diagram is drawn anew with each snapshot: found and clicked in one go
    browser.execute_script("document.querySelector('[data-weight=\"0,1,0\"]').dispatchEvent(new MouseEvent('click'))")
    browser.find_element("id", "weight-value").send_keys("1")
    browser.find_element("id", "weight-set").click()
    message = browser.find_element("id", "weight-message")
    wait_for(browser, lambda: "press Pause first" in message.text, seconds=10, what="the refusal")
    assert browser.find_element("id", "weight-editor").is_displayed()  # still open: pause, then Set again
    assert [request.split()[0] for request in failed_requests(browser)] == ["409"]
    browser.find_element("id", "run").click()
    wait_for(browser, lambda: js(browser, "Train.previous.state") == "paused", what="the pause")
    browser.find_element("id", "weight-set").click()
    wait_for(browser, lambda: not browser.find_element("id", "weight-editor").is_displayed(), what="the edit")
    assert message.text == ""
    # the edit reaches the page with the next snapshot of the event stream, not with the POST's answer
    wait_for(browser, lambda: js(browser, "Train.previous.edits") == 1, what="the snapshot with the edit")
