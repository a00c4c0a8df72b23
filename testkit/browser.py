"""A real headless Chromium, driven through its ChromeDriver (Selenium), for the tests of Airflow's UI.

No browser is downloaded: the tests use the Chromium and ChromeDriver installed on the machine (Debian's
``chromium`` and ``chromium-driver`` packages; ``.ci/run`` installs them), or the ones named by
``LOCALFLOW_CHROMIUM`` and ``LOCALFLOW_CHROMEDRIVER``. A wait that times out fails with what the page
showed and a screenshot, so a red UI test can be read without running it again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = "LOCALFLOW_SCREENSHOTS"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Headless, and quiet on a machine without internet: without the background-networking flags Chromium
# keeps opening connections that a closed network refuses. No sandbox: CI runs as root.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def _installed(variable: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(variable):
        return os.environ[variable]
    return next(filter(None, map(shutil.which, names)), None)


class Browser:
    """One browser window; waits that fail say what the page showed instead."""

    def __init__(self, driver: webdriver.Chrome, artifacts: Path) -> None:
        self.driver = driver
        self.artifacts = artifacts

    def open(self, url: str) -> None:
        """Load ``url``."""
        self.driver.get(url)

    @property
    def url(self) -> str:
        """The address the page is at now."""
        return self.driver.current_url

    def text(self) -> str:
        """The page's visible text."""
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for(self, xpath: str, what: str, timeout: float = 60, *, clickable: bool = False) -> WebElement:
        """The visible (and with ``clickable``, enabled) element at ``xpath``; ``what`` it is, for the
        failure message. A button drawn before its form has loaded is disabled: a click would be lost."""
        condition = (
            expected_conditions.element_to_be_clickable
            if clickable
            else expected_conditions.visibility_of_element_located
        )
        try:
            return WebDriverWait(self.driver, timeout).until(condition((By.XPATH, xpath)))
        except TimeoutException:
            screenshot = self.artifacts / "page.png"
            self.driver.save_screenshot(str(screenshot))
            raise AssertionError(
                f"{what} not shown within {timeout} s at {self.url} (screenshot: {screenshot}). "
                f"The page shows:\n{self.text()}"
            ) from None

    # --- Airflow's pages, as a user goes through them ---------------------------------------------------

    def log_in(self, username: str, password: str) -> None:
        """Fill in Airflow's login form and sign in."""
        for name, value in (("username", username), ("password", password)):
            field = self.wait_for(f"//input[@name='{name}']", f"the {name} field of the login form")
            field.clear()
            field.send_keys(value)
        self.wait_for("//button[normalize-space()='Sign in']", "the Sign in button", clickable=True).click()

    def wait_for_dag_list(self, dag_ids: tuple[str, ...]) -> None:
        """The DAG list (the page must be open) shows exactly ``dag_ids``."""
        for dag_id in dag_ids:
            self.wait_for(f"//a[normalize-space()='{dag_id}']", f"{dag_id} in the DAG list")
        self.wait_for(f"//*[normalize-space()='{len(dag_ids)} Dags']", f"{len(dag_ids)} DAGs in the list")

    # Rows of the task log view (a virtualized list: rows scrolled out of sight are not in the page).
    LOG_ROWS = (
        "//*[starts-with(@data-testid, 'virtualized-item-') or starts-with(@data-testid, 'group-header-')]"
    )

    def open_task_log(
        self,
        url: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        *,
        map_index: int = -1,
        open_groups: tuple[str, ...] = (),
    ) -> str:
        """The log view of a task instance (its latest try; ``map_index`` of a mapped task), as its text;
        be logged in already.

        ``open_groups``: the folded groups to unfold first, by title (e.g. "Log message source details",
        which names where the log was read from).
        """
        mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
        self.open(f"{url}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id)}{mapped}")
        self.wait_for(self.LOG_ROWS, f"the log of {dag_id}.{task_id}")
        for title in open_groups:
            self.wait_for(
                f"{self.LOG_ROWS}//*[normalize-space()='▶ {title}']",
                f"the log group {title!r}",
                clickable=True,
            ).click()
            self.wait_for(
                f"{self.LOG_ROWS}//*[normalize-space()='▼ {title}']", f"the log group {title!r} open"
            )
        return "\n".join(row.text for row in self.driver.find_elements(By.XPATH, self.LOG_ROWS))

    def trigger_and_wait(self, dag_id: str, timeout: float = 240) -> str:
        """On ``dag_id``'s page (logged in): trigger it with the UI's Trigger button and dialog, wait until
        the page shows the new run succeed; its run id. The dialog unpauses the DAG by default (new DAGs
        are paused), as a user would leave it."""
        self.wait_for(
            "//button[@aria-label='Trigger Dag']", f"the DAG page of {dag_id}", clickable=True
        ).click()
        self.wait_for(
            f"//*[@role='dialog'][.//*[normalize-space()='Trigger Dag - {dag_id}']]"
            "//button[normalize-space()='Trigger']",
            "the Trigger button of the trigger dialog",
            clickable=True,
        ).click()
        run_id = self.wait_for("//h2[starts-with(normalize-space(), 'manual__')]", "the new run").text
        self.wait_for(
            f"//h2[normalize-space()='{run_id}']/following-sibling::*[@data-testid='state-badge']"
            "[normalize-space()='Success']",
            f"{run_id} succeeding",
            timeout=timeout,
        )
        return run_id

    def wait_for_log_line(self, text: str, timeout: float = 60) -> WebElement:
        """A line of the open log view that contains ``text``, shown (not folded into a group)."""
        return self.wait_for(
            f"//*[@data-testid='virtualized-list']//*[contains(normalize-space(), {xpath_string(text)})]",
            f"the log line {text!r}",
            timeout,
        )

    def open_import_errors(self) -> WebElement:
        """On the DAG list (the page must be open): click the import-error badge; the dialog it opens."""
        self.wait_for(
            "//button[@aria-label='Dag Import Error']",
            "the import-error badge of the DAG list",
            clickable=True,
        ).click()
        return self.wait_for("//*[@role='dialog']", "the dialog listing the import errors")

    def save_for_docs(self, name: str) -> None:
        """With ``LOCALFLOW_SCREENSHOTS`` set (a folder), save the page there as ``name``: the README's
        pictures come from the UI tests (docs/development.md), never from a hand-made capture."""
        if folder := os.environ.get(SCREENSHOTS):
            target = Path(folder)
            target.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(target / name))


def xpath_string(text: str) -> str:
    """``text`` as an XPath 1.0 string literal (which has no escapes: quotes are joined with concat)."""
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"


@contextmanager
def chromium(artifacts: Path, arguments: tuple[str, ...] = ()) -> Iterator[Browser]:
    """A headless Chromium for the block; ``artifacts`` receives a screenshot when a wait fails.

    ``arguments``: more command-line switches (e.g. ``testkit/forwarder.py``'s host mapping)."""
    chromedriver = _installed("LOCALFLOW_CHROMEDRIVER", ("chromedriver",))
    binary = _installed("LOCALFLOW_CHROMIUM", CHROMIUM_NAMES)
    if not chromedriver or not binary:
        pytest.fail(
            "the UI tests need Chromium and its ChromeDriver: install them (Debian and Ubuntu: "
            "apt-get install chromium chromium-driver) or set LOCALFLOW_CHROMIUM and LOCALFLOW_CHROMEDRIVER"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (*CHROMIUM_ARGUMENTS, *arguments):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield Browser(driver, artifacts)
    finally:
        driver.quit()
