"""The app in a real browser: `rag app` as a subprocess, driven by selenium through headless Chromium.

Upload a document, wait for ingestion, ask a question, see a cited answer, open the citation; a
screenshot of each step goes to test-artifacts/app/. Skipped only when there is no browser and
RAG_CI is unset: under CI a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "app"
DOCUMENT = REPO / "samples" / "hybrid-retrieval.pdf"
QUESTION = "How does reciprocal rank fusion combine the BM25 and dense rankings?"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")


def _browser_or_skip() -> None:
    missing = [what for what, ok in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not ok]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        msg = f"{', '.join(missing)} not installed (apt-get install -y chromium chromium-driver; pip install selenium)"
        if os.environ.get("RAG_CI"):
            pytest.fail(f"RAG_CI is set but {msg}")
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """`rag app` on 127.0.0.1 and a free port, with a fresh data home; stopped after the test."""
    _browser_or_skip()
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "rag_platform.apps.cli", "app", "--home", str(tmp_path / "home"),
                             "--port", str(port), "--host", "127.0.0.1"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the app did not start:\n{(tmp_path / 'app.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        # The whole process group: `rag app` and the Streamlit server it starts.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_upload_ingest_ask_and_open_a_citation(app_url: str, browser: Any) -> None:
    try:
        _walk_through(app_url, browser)
    except BaseException:
        _shot(browser, "failure")  # what the page showed when a step timed out
        raise


def _walk_through(app_url: str, browser: Any) -> None:
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)

    def click(xpath: str) -> None:
        """Click once the element is clickable; a rerun may replace it in between, so try again then."""
        for attempt in range(5):
            try:
                wait.until(ec.element_to_be_clickable((By.XPATH, xpath))).click()
                return
            except (StaleElementReferenceException, ElementClickInterceptedException):
                if attempt == 4:
                    raise
                time.sleep(0.5)

    def button(label: str) -> None:
        click(f"//button[normalize-space(.)='{label}' and not(@disabled)]")

    def see(text: str) -> Any:
        return wait.until(ec.visibility_of_element_located((By.XPATH, f"//*[contains(text(), \"{text}\")]")))

    # A page opened by its address on a fresh server shows our navigation, not Streamlit's list of scripts.
    browser.get(f"{app_url}/collections")
    see("No collections yet")
    nav = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='stSidebarNav']")))
    wait.until(lambda _: "Evaluation" in nav.text)
    assert all(t in nav.text for t in ("Ask", "Collections", "Search")) and "main" not in nav.text, nav.text
    _shot(browser, "00-direct-address")

    browser.get(app_url)  # an empty home starts on Collections
    see("No collections yet")
    field = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label='New collection']")))
    field.send_keys("handbook")
    button("Create collection")
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type='file']")))
    _shot(browser, "01-collection-created")

    upload.send_keys(str(DOCUMENT))
    see(DOCUMENT.name)
    button("Ingest")
    see("Last ingestion")
    see("1 ok")
    _shot(browser, "02-ingested")

    click("//a[.//span[normalize-space(.)='Ask']]")
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")))
    box.send_keys(QUESTION)
    box.send_keys(Keys.ENTER)
    summary = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//details//summary[contains(., 'hybrid-retrieval.pdf') and contains(., 'verified')]")))
    see("answered by")
    answers = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")
               if QUESTION not in m.text]
    assert any(re.search(r"\[\d+\]", t) for t in answers), answers  # the answer shows its citation markers
    _shot(browser, "03-answer")

    summary.click()
    # the cited span is highlighted (waits for the rendered text: a mark can be found before its text is laid out)
    wait.until(lambda b: any(len(m.text.split()) >= 3
                             for m in b.find_elements(By.CSS_SELECTOR, "details[open] .rag-passage mark")))
    _shot(browser, "04-citation-open")
    assert "Traceback" not in browser.page_source
