"""The playground in a real browser: `nablanet serve` started as a user starts it, on a free port of
127.0.0.1, and driven by Selenium in Debian's headless Chromium — a 1 and a 7 drawn with pointer
actions, a spiral and a regression trained in the Train tab — with no error in the browser's console and no
failed request.
Every wait is on a condition of the page (WebDriverWait), never a pause.

Screenshots go to the test's temporary folder; with ``NABLANET_SCREENSHOTS=folder`` they are also copied
there (how the README's pictures are made: ``NABLANET_SCREENSHOTS=docs/images pytest
tests/test_playground_browser.py``).
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from browser import chromium, console_errors, failed_requests, needs_chromium, save_screenshot
from playground_drawing import PAD, STROKES
from playground_process import start_playground

from nablanet.app.run import TrainingSettings, train_run

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The address of a playground serving, from its runs/ folder, the notebook's softmax classifier (model 0,
    the newest) and an MLP (model 1, trained first, with the higher test accuracy), stopped with Ctrl-C
    afterwards."""
    runs = tmp_path_factory.mktemp("runs")
    train_run(TrainingSettings(hidden=(64,), optimizer="adam", epochs=2), out=runs / "mlp", report=lambda line: None)
    train_run(TrainingSettings(epochs=3, lr=0.1), out=runs / "softmax", report=lambda line: None)
    os.utime(runs / "mlp" / "model.npz", (1, 1))  # older than the softmax classifier's, whatever the clock says
    process, address = start_playground(runs)
    yield address
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=20)
    assert process.returncode == 130 and "Traceback" not in errors, errors  # Ctrl-C: one line, no traceback


def wait_for(browser, condition, seconds: float = 30, what: str = "the page"):
    """The first true value of ``condition()``, asked again every 50 ms until ``seconds`` have passed."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.05).until(
        lambda _: condition(), message=f"{what} did not happen within {seconds} s"
    )


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


def shown(browser, element_id: str) -> bool:
    return browser.find_element("id", element_id).is_displayed()


def check_jacobian_colours(browser) -> None:
    """Each cell of the Jacobian is coloured by its value on the fixed scale ±0.25 shown under it (white at 0,
    full red at +0.25, full blue at −0.25), whatever the largest entry of this drawing."""
    cells = browser.execute_script(
        "return [...document.querySelectorAll('#jacobian td')]"
        ".map((td) => [td.title, getComputedStyle(td).backgroundColor])"
    )
    assert len(cells) == 100
    for title, colour in cells:
        value = float(title.split(" = ")[1])
        full = (178, 24, 43) if value >= 0 else (33, 102, 172)  # the page's red and blue
        expected = [255 + (c - 255) * min(1, abs(value) / 0.25) for c in full]
        received = [int(number) for number in re.findall(r"\d+", colour)[:3]]
        assert max(abs(r - e) for r, e in zip(received, expected, strict=True)) <= 1, (title, colour)
    scale = text(browser, "jacobian-scale")
    assert scale.startswith("-0.25") and scale.endswith("+0.25")
    assert "largest |entry| for this drawing" in text(browser, "jacobian-largest")


def test_a_drawn_1_and_7_are_recognised(url, tmp_path):
    from selenium.webdriver.support.ui import Select

    with chromium(1400, 1400) as browser:
        browser.get(url)
        wait_for(browser, lambda: "multilayer perceptron" in text(browser, "model-info"), what="the best model")
        chosen = Select(browser.find_element("id", "model")).first_selected_option.text
        assert chosen.startswith("mlp: multilayer perceptron 784→64→10 relu, test accuracy "), chosen
        assert not shown(browser, "input-image") and shown(browser, "input-empty")  # no broken picture yet
        for digit in ("1", "7"):
            browser.find_element("id", "clear").click()
            draw(browser, digit)
            wait_for(
                browser,
                lambda: browser.find_element("id", "draw").get_attribute("aria-busy") == "false",
                what=f"the last prediction for the {digit}",
            )
            assert text(browser, "prediction") == digit
            assert shown(browser, "input-image") and not shown(browser, "input-empty")
            assert browser.find_element("id", "input-image").get_attribute("src").startswith("data:image/png")
            assert len(browser.find_elements("css selector", "#bars .bar")) == 10
            check_jacobian_colours(browser)
            assert len(browser.find_elements("css selector", "#layers img")) == 2  # the hidden units, their scale
            assert "this layer's outputs" in text(browser, "layers")
            assert "ms on the server" in text(browser, "timing")
        browser.save_screenshot(str(tmp_path / "playground-draw-mlp.png"))
        Select(browser.find_element("id", "model")).select_by_value("0")  # the softmax classifier, same 7
        wait_for(browser, lambda: "softmax classifier" in text(browser, "model-info"), what="the other model")
        wait_for(
            browser,
            lambda: len(browser.find_elements("css selector", "#contributions img")) == 3,
            what="contributions",
        )
        assert len(browser.find_elements("css selector", "#templates img")) == 10
        assert "z = Σ W⊙x + b" in text(browser, "contributions")
        assert "one scale for the 3 maps" in text(browser, "contributions-scale")
        assert "one scale for all 10 templates" in text(browser, "templates-scale")
        save_screenshot(browser, tmp_path, "playground-draw.png")
        assert console_errors(browser) == []
        assert failed_requests(browser) == []


def change(browser, name: str, value: str) -> None:
    """Type ``value`` into the Train form's field ``name``, as a user does before leaving the field."""
    browser.execute_script(
        "const field = document.querySelector(`#settings [name=${arguments[0]}]`);"
        "field.value = arguments[1]; field.dispatchEvent(new Event('change', { bubbles: true }));",
        name,
        value,
    )


def refused(browser, name: str, value: str, words: str) -> None:
    """A setting the page refuses: it says why, the form shows the settings in use again, the session stays."""
    session = browser.execute_script("return Train.session")
    kept = browser.find_element("css selector", f"#settings [name={name}]").get_attribute("value")
    change(browser, name, value)
    wait_for(browser, lambda: words in text(browser, "settings-message"), what=f"the refusal of {name} = {value}")
    assert "received: None" not in text(browser, "settings-message")
    assert browser.find_element("css selector", f"#settings [name={name}]").get_attribute("value") == kept
    assert browser.execute_script("return Train.session") == session


def test_the_spiral_is_learned_in_the_train_tab(url, tmp_path):
    with chromium(1400, 900) as browser:
        browser.get(url)
        browser.find_element("id", "tab-train").click()
        wait_for(browser, lambda: shown(browser, "boundary"), what="the first boundary")
        before = browser.find_element("id", "boundary").get_attribute("src")
        assert text(browser, "epoch") == "0" and text(browser, "loss") == "–"
        loss_curve = browser.find_element("id", "loss-curve")
        assert loss_curve.get_attribute("aria-label") == "loss: no epochs yet"
        refused(browser, "hidden", "abc", "hidden layers must be comma-separated positive integers, e.g. 8,8")
        refused(browser, "learning_rate", "50", "learning rate must be a number from 0.000001 to 10")
        assert console_errors(browser) == [] and failed_requests(browser) == []
        refused(browser, "hidden", "16,0", "received a layer of size 0")  # refused by the server: one 400
        assert [line.split()[0] for line in failed_requests(browser)] == ["400"]
        assert len(console_errors(browser)) == 1
        browser.find_element("id", "run").click()
        started = time.monotonic()
        wait_for(browser, lambda: text(browser, "loss") != "–", what="the first loss")
        first_loss = float(text(browser, "loss"))
        accuracy = wait_for(
            browser,
            lambda: (value := text(browser, "accuracy").rstrip(" %")) not in ("", "–") and float(value) >= 95 and value,
            seconds=120,
            what="95 % training accuracy",
        )
        seconds = time.monotonic() - started
        print(f"the spiral reached {accuracy} % training accuracy {seconds:.1f} s after Train was pressed")
        browser.find_element("id", "run").click()  # Pause
        wait_for(browser, lambda: text(browser, "run") == "Train", what="the pause")
        assert float(text(browser, "loss")) < 0.5 * first_loss
        assert browser.find_element("id", "boundary").get_attribute("src") != before
        epoch = int(text(browser, "epoch"))
        browser.find_element("id", "step").click()
        wait_for(browser, lambda: int(text(browser, "epoch")) == epoch + 1, what="one step")
        assert loss_curve.get_attribute("aria-label").startswith(f"loss over epochs 1 to {epoch + 1}, on a scale")
        save_screenshot(browser, tmp_path, "playground-train.png")
        assert console_errors(browser) == []
        assert failed_requests(browser) == []


def test_a_regression_in_the_train_tab_shows_its_mean_squared_error_and_no_accuracy(url, tmp_path):
    with chromium(1400, 900) as browser:
        browser.get(url + "#train")
        wait_for(browser, lambda: shown(browser, "boundary"), what="the first boundary")
        change(browser, "dataset", "gaussians")
        wait_for(
            browser, lambda: text(browser, "plane-title") == "Regression: the predicted value ŷ", what="a regression"
        )
        assert not shown(browser, "classes-label")  # a regression has no classes to choose
        browser.find_element("id", "run").click()
        wait_for(
            browser,
            lambda: text(browser, "test-loss") not in ("", "–") and float(text(browser, "test-loss")) < 0.02,
            seconds=120,
            what="a test mean squared error below 0.02",
        )
        browser.find_element("id", "run").click()  # Pause
        wait_for(browser, lambda: text(browser, "run") == "Train", what="the pause")
        stats = browser.find_element("css selector", "#train .stats").text
        assert "training loss (mean squared error)" in stats and "test loss (mean squared error)" in stats
        assert "accuracy" not in browser.find_element("id", "train").text  # nowhere on the tab, for a regression
        assert not shown(browser, "accuracy") and not shown(browser, "test-accuracy")
        scale = text(browser, "plane-scale")
        # ±1.2: the targets' range (the largest |y| of the 600 noisy points, 1.11, rounded up to a tenth)
        assert scale.startswith("-1.2") and "1.2" in scale and "one scale" in scale
        assert text(browser, "loss-title") == "Loss (mean squared error)"  # the training and the test loss
        save_screenshot(browser, tmp_path, "playground-regression.png")
        assert console_errors(browser) == []
        assert failed_requests(browser) == []
