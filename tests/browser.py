"""Debian's headless Chromium through selenium, for the page and report tests.

Nothing is downloaded at run time: the Debian ``chromium`` and ``chromium-driver`` packages
(installed by ``deploy/install-system.sh``) are used, and Selenium Manager is kept offline.
Screenshots are saved in the test's tmp dir and copied to ``build/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "build" / "screenshots"


@contextmanager
def chromium(width: int = 1100, height: int = 900) -> Iterator[WebDriver]:
    """A headless Chromium window of ``width`` × ``height``, quit afterwards."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.exists(), f"{binary} is missing: run deploy/install-system.sh"
    # Selenium Manager must not look for (or download) a driver: the Debian one is given.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """Save a screenshot in ``tmp_path`` and a copy under build/screenshots/; return the copy."""
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    copy = SCREENSHOTS / name
    shutil.copyfile(shot, copy)
    print(f"screenshot: {copy}")
    return copy
