"""Fixtures for the staff console's browser tests: the console started as `make run`
starts it (its compose command, pointed at the stack's services), demo passwords for
the seed's staff, and Debian's headless chromium driven by selenium. Without chromium,
chromedriver or selenium the browser tests are skipped, saying which is missing.

Screenshots go to var/artefacts/console/ (git ignores var/): the README shows the
phone-sized queue and case from there."""
import os
import shutil
from pathlib import Path

import pytest

from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import connect
from closeloop_shared.standins import free_port
from deploy import local
from services.routing.accounts import hash_password
from services.routing.repository import AccountRepository
from tests.fixtures import ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTEFACTS = ROOT / "var" / "artefacts" / "console"
PASSWORD = "console-e2e-password"
PHONE = (375, 812)
# Chromium on a closed network: no background fetches, no component updates, no QUIC
# probes (without these it keeps trying to reach Google's servers).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
         "--metrics-recording-only", "--no-default-browser-check", "--password-store=basic")


def installed(path):
    """Debian's path, or the program of that name on PATH, or None."""
    return path if os.path.exists(path) else shutil.which(Path(path).name)


def browser_missing():
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not installed(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


class Console:
    """The running console and a browser on it."""

    def __init__(self, url, driver):
        self.url, self.driver = url, driver

    def open(self, path):
        self.driver.get(self.url + path)

    def log_in(self, staff_id):
        self.driver.delete_all_cookies()
        self.open("/login")
        self.driver.find_element("id", "staff_id").send_keys(staff_id)
        self.driver.find_element("id", "password").send_keys(PASSWORD)
        self.driver.find_element("css selector", "#login-form button[type=submit]").click()
        self.wait_for("#who")

    def log_out(self):
        self.driver.find_element("id", "logout").click()
        self.wait_for("#login-form")

    def wait_for(self, selector, timeout=10):
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located(("css selector", selector)))

    def text(self, selector, attempts=5):
        """The element's text; found again if the page re-rendered between finding and
        reading it (the live update or a redirect after a form: a stale element)."""
        from selenium.common.exceptions import StaleElementReferenceException
        for attempt in range(attempts):
            try:
                return self.wait_for(selector).text
            except StaleElementReferenceException:
                if attempt == attempts - 1:
                    raise

    def flashed(self, expected, timeout=10):
        """Whether the page's flash says `expected`, waiting for it: a form's post and
        redirect may still be on their way, the previous page's flash showing meanwhile."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait
        try:
            return WebDriverWait(self.driver, timeout).until(
                expected_conditions.text_to_be_present_in_element(("css selector", "#flash"), expected))
        except TimeoutException:
            return False

    def screenshot(self, name, size=None):
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        if size:
            self.driver.set_window_size(*size)
        self.driver.save_screenshot(str(ARTEFACTS / f"{name}.png"))


def set_passwords(mongo_uri, prefix, staff_ids):
    client = connect(mongo_uri)
    try:
        accounts = AccountRepository(client[f"{prefix}_routing"])
        digest = hash_password(PASSWORD)
        for staff_id in staff_ids:
            accounts.set_password(staff_id, digest, utcnow())
    finally:
        client.close()


@pytest.fixture
def chromium(tmp_path):
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = installed(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1280,900")
    options.add_argument("--lang=zh-CN")
    from selenium.common.exceptions import WebDriverException
    try:
        service = Service(installed(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:  # installed but unusable here (a chromedriver of another version, ...)
        pytest.skip(f"chromium did not start: {exc.msg or exc}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def console_for(chromium, stack_env, tmp_path):
    """console_for(system, staff_ids) -> a Console on a console process calling that stack."""
    processes = []

    def start(system, staff_ids):
        set_passwords(stack_env["MONGO_URI"], stack_env["MONGO_DB_PREFIX"], staff_ids)
        command, _ = local.console_service()
        port = free_port()
        urls = {name: system.url(name) for name in system.urls}
        env = dict(system.env, **local.console_env(urls), CONSOLE_POLL_SECONDS="3")
        process = local.start_service(local.CONSOLE, command, port, env, open(tmp_path / "console.log", "ab"))
        processes.append(process)
        local.wait_healthy(local.CONSOLE, process, port, timeout=30)
        return Console(f"http://127.0.0.1:{port}", chromium)
    yield start
    local.stop_all(processes)
