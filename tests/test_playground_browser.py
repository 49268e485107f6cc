"""The playground in a real browser: `nablanet serve` started as a user starts it, on a free port of
127.0.0.1, and driven by Selenium in Debian's headless Chromium — a 1 and a 7 drawn with pointer
actions, a spiral trained in the Train tab — with no error in the browser's console.

Screenshots go to the test's temporary folder; with ``NABLANET_SCREENSHOTS=folder`` they are also copied
there (how the README's pictures are made: ``NABLANET_SCREENSHOTS=docs/images pytest
tests/test_playground_browser.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from browser import chromium, console_errors, needs_chromium
from playground_drawing import PAD, STROKES
from playground_process import start_playground

from nablanet.app.run import TrainingSettings, train_run

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The address of a playground serving an MLP (model 0, the newest) and the notebook's softmax classifier
    (model 1) from its runs/ folder, stopped with Ctrl-C afterwards."""
    runs = tmp_path_factory.mktemp("runs")
    train_run(TrainingSettings(epochs=3, lr=0.1), out=runs / "softmax", report=lambda line: None)
    train_run(TrainingSettings(hidden=(64,), optimizer="adam", epochs=2), out=runs / "mlp", report=lambda line: None)
    process, address = start_playground(runs)
    yield address
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=20)
    assert process.returncode == 130 and "Traceback" not in errors, errors  # Ctrl-C: one line, no traceback


def screenshot(browser, folder: Path, name: str) -> Path:
    path = folder / name
    browser.save_screenshot(str(path))
    if os.environ.get("NABLANET_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["NABLANET_SCREENSHOTS"]) / name)
    return path


def wait_for(condition, seconds: float = 30, what: str = "the page"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {seconds} s")


def draw(browser, digit: str) -> None:
    """Draw ``digit``'s strokes on the pad with pointer actions, in small moves, as a hand does."""
    from selenium.webdriver.common.action_chains import ActionChains

    pad = browser.find_element("id", "pad")
    scale = pad.size["width"] / PAD
    for stroke in STROKES[digit]:
        actions = ActionChains(browser, duration=10)
        x, y = stroke[0]
        actions.move_to_element_with_offset(pad, (x - PAD / 2) * scale, (y - PAD / 2) * scale).click_and_hold()
        for next_x, next_y in stroke[1:]:
            for _ in range(8):
                actions.move_by_offset((next_x - x) * scale / 8, (next_y - y) * scale / 8)
            x, y = next_x, next_y
        actions.release().perform()


def text(browser, element_id: str) -> str:
    return browser.find_element("id", element_id).text


def test_a_drawn_1_and_7_are_recognised(url, tmp_path):
    from selenium.webdriver.support.ui import Select

    with chromium(1400, 1400) as browser:
        browser.get(url)
        wait_for(lambda: "multilayer perceptron" in text(browser, "model-info"), what="the model list")
        for digit in ("1", "7"):
            browser.find_element("id", "clear").click()
            draw(browser, digit)
            wait_for(lambda: text(browser, "prediction") not in ("", "–"), what=f"a prediction for the {digit}")
            time.sleep(0.3)  # the last debounced request
            assert text(browser, "prediction") == digit
            assert browser.find_element("id", "input-image").get_attribute("src").startswith("data:image/png")
            assert len(browser.find_elements("css selector", "#bars .bar")) == 10
            assert len(browser.find_elements("css selector", "#jacobian td")) == 100
            assert len(browser.find_elements("css selector", "#layers img")) == 1  # the hidden layer's units
            assert "ms on the server" in text(browser, "timing")
        browser.save_screenshot(str(tmp_path / "playground-draw-mlp.png"))
        Select(browser.find_element("id", "model")).select_by_value("1")  # the softmax classifier, same 7
        wait_for(lambda: "softmax classifier" in text(browser, "model-info"), what="the other model")
        wait_for(lambda: len(browser.find_elements("css selector", "#contributions img")) == 3, what="contributions")
        assert len(browser.find_elements("css selector", "#templates img")) == 10
        assert "z = Σ W⊙x + b" in text(browser, "contributions")
        screenshot(browser, tmp_path, "playground-draw.png")
        assert console_errors(browser) == []


def test_the_spiral_is_learned_in_the_train_tab(url, tmp_path):
    with chromium(1400, 900) as browser:
        browser.get(url)
        browser.find_element("id", "tab-train").click()
        wait_for(lambda: browser.find_element("id", "boundary").get_attribute("src"), what="the first boundary")
        before = browser.find_element("id", "boundary").get_attribute("src")
        assert text(browser, "epoch") == "0" and text(browser, "loss") == "–"
        browser.find_element("id", "run").click()
        started = time.monotonic()
        wait_for(lambda: text(browser, "loss") != "–", what="the first loss")
        first_loss = float(text(browser, "loss"))
        accuracy = wait_for(
            lambda: (value := text(browser, "accuracy").rstrip(" %")) not in ("", "–") and float(value) >= 95 and value,
            seconds=120,
            what="95 % training accuracy",
        )
        seconds = time.monotonic() - started
        print(f"the spiral reached {accuracy} % training accuracy {seconds:.1f} s after Train was pressed")
        browser.find_element("id", "run").click()  # Pause
        wait_for(lambda: text(browser, "run") == "Train", what="the pause")
        assert float(text(browser, "loss")) < 0.5 * first_loss
        assert browser.find_element("id", "boundary").get_attribute("src") != before
        epoch = int(text(browser, "epoch"))
        browser.find_element("id", "step").click()
        wait_for(lambda: int(text(browser, "epoch")) == epoch + 1, what="one step")
        screenshot(browser, tmp_path, "playground-train.png")
        assert console_errors(browser) == []
