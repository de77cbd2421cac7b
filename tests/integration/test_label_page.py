"""The labelling page in a real headless Chromium (Selenium): keyboard accept, a field corrected, the skip shortcut,
a label picked, every answer on disk as it is given, and a reload resuming at the right item.

Needs Debian's ``chromium`` and ``chromedriver`` (CI installs them); Selenium Manager never downloads anything.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_label import classify_project, embed, extract_project, receipt
from tunewise.label import build_queue, start_label_server
from tunewise.label.store import labels_path

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is missing: install Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


def wait_for(driver: Any, condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda _: condition(), message=what)


def progress(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "progress-text").text


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def press(driver: Any, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for key in keys:
        chain = chain.send_keys(key)
    chain.perform()


def current_item(driver: Any) -> str:
    return driver.execute_script("return document.body.dataset.item")


def test_extract_page_accept_correct_skip_and_resume(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    traffic = [receipt(i) for i in range(1, 5)]
    project = extract_project(tmp_path, traffic, queue_size=4, diverse_share=0.0)
    queue = build_queue(project, embed=embed)
    items = queue.items
    path = labels_path(queue)
    with start_label_server(project, port=0) as server:
        driver.get(server.url + "?labeller=ann")
        wait_for(driver, lambda: progress(driver) == "0 / 4", "progress 0 / 4")
        assert current_item(driver) == items[0].id
        assert driver.find_element(By.ID, "field-company").get_attribute("value") == items[0].prefill["company"]

        press(driver, Keys.ENTER)  # accept the champion's answer
        wait_for(driver, lambda: progress(driver) == "1 / 4", "progress 1 / 4 after Enter")
        written = lines(path)
        assert len(written) == 1
        assert (written[0]["item"], written[0]["action"]) == (items[0].id, "accept")
        assert written[0]["target"] == items[0].prefill

        assert current_item(driver) == items[1].id
        company = driver.find_element(By.ID, "field-company")
        company.clear()
        company.send_keys("Corrected Co")
        company.send_keys(Keys.CONTROL, Keys.ENTER)  # save the correction
        wait_for(driver, lambda: progress(driver) == "2 / 4", "progress 2 / 4 after Ctrl+Enter")
        written = lines(path)
        assert (written[-1]["item"], written[-1]["action"]) == (items[1].id, "correct")
        assert written[-1]["target"] == {"company": "Corrected Co", "total": items[1].prefill["total"]}

        assert current_item(driver) == items[2].id
        driver.execute_script("document.activeElement && document.activeElement.blur()")
        press(driver, "s")  # skip
        wait_for(driver, lambda: progress(driver) == "3 / 4", "progress 3 / 4 after S")
        written = lines(path)
        assert (written[-1]["item"], written[-1]["action"], written[-1]["target"]) == (items[2].id, "skip", None)

        driver.refresh()  # a closed tab: the answers are on disk, the page resumes at the first unanswered item
        wait_for(driver, lambda: progress(driver) == "3 / 4", "progress 3 / 4 after reload")
        assert current_item(driver) == items[3].id
        press(driver, "k")  # back to the skipped item
        wait_for(driver, lambda: current_item(driver) == items[2].id, "back to the third item")
        assert "skip" in driver.find_element(By.ID, "answer-chip").text
        press(driver, "j")
        wait_for(driver, lambda: current_item(driver) == items[3].id, "forward to the fourth item")

        company = driver.find_element(By.ID, "field-total")
        company.clear()
        company.send_keys("not a number")
        driver.find_element(By.ID, "save").click()
        wait_for(driver, lambda: "target.total" in driver.find_element(By.ID, "error").text, "the field's error")
        assert progress(driver) == "3 / 4" and len(lines(path)) == 3  # nothing invalid was stored


def test_classify_page_picks_labels(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    traffic = [{"id": f"c{i}", "text": f"receipt {i} refund please", "output": "refund"} for i in range(2)]
    project = classify_project(tmp_path, traffic, queue_size=2)
    queue = build_queue(project, embed=embed)
    path = labels_path(queue)
    with start_label_server(project, port=0) as server:
        driver.get(server.url + "?labeller=bob")
        wait_for(driver, lambda: progress(driver) == "0 / 2", "progress 0 / 2")
        select = driver.find_element(By.ID, "label-select")
        assert select.get_attribute("value") == "refund"  # the champion's label, pre-selected

        search = driver.find_element(By.ID, "label-filter")
        search.send_keys("trans")  # the filter leaves one label, which is picked
        wait_for(driver, lambda: select.get_attribute("value") == "transfer", "filtered to transfer")
        search.send_keys(Keys.ENTER)  # a changed label: Enter saves it as a correction
        wait_for(driver, lambda: progress(driver) == "1 / 2", "progress 1 / 2")
        written = lines(path)
        assert (written[-1]["item"], written[-1]["action"], written[-1]["target"]) == (
            queue.items[0].id,
            "correct",
            "transfer",
        )

        driver.find_element(By.CSS_SELECTOR, "#label-select option[value='card_arrival']").click()
        driver.find_element(By.ID, "save").click()
        wait_for(driver, lambda: progress(driver) == "2 / 2", "progress 2 / 2")
        assert lines(path)[-1]["target"] == "card_arrival"
        assert driver.find_element(By.ID, "done-view").is_displayed()
