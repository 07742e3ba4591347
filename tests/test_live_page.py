"""The live page in a real headless Chromium (Debian's chromium and chromedriver, via selenium).

The store holds a count and a counting point; the page must show them, then show a newer count
and a sensor's status change that arrive on the real ``volumes.hourly`` and ``sensors.status``
topics, without a reload. Screenshots go to the test's tmp dir, with copies under
``build/screenshots/`` (the path is printed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from byflyt.kafka import create_topics
from byflyt.models.counts import CountPoint
from byflyt.models.status import SensorStatus
from byflyt.models.volumes import HourlyVolume
from byflyt.settings import Settings
from byflyt.store import Store
from byflyt.topics import SENSORS_STATUS, VOLUMES_HOURLY
from byflyt.web import create_app
from tests.browser import chromium, screenshot
from tests.helpers import kommune_hour
from tests.kafka_util import produce
from tests.web_server import serving

pytestmark = [pytest.mark.kafka, pytest.mark.browser, pytest.mark.slow]

HOUR = timedelta(hours=1)
NOW_HOUR = datetime(2025, 10, 27, 13, tzinfo=UTC)  # 14:00 in Oslo, after the autumn change


def _volume(hour: datetime, value: float) -> HourlyVolume:
    return kommune_hour("3403", hour, value, coverage=97.5, n_sources=3)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def _text(driver: WebDriver, css: str) -> str:
    # Read in one script call: the page re-renders its tables every poll, so an element found in
    # one call can be gone by the next (StaleElementReferenceException).
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
    )
    return str(text).replace("\u00a0", " ").replace("\u202f", " ")


def _wait_for(driver: WebDriver, what: str, check: Callable[[WebDriver], bool]) -> None:
    try:
        WebDriverWait(driver, 30, poll_frequency=0.2).until(check)
    except Exception as exc:
        raise AssertionError(f"the page never showed {what}: {driver.page_source[:3000]}") from exc


def test_live_page_shows_counts_and_status_changes_without_reload(
    settings_factory: Callable[..., Settings], browser: WebDriver, tmp_path: Path
) -> None:
    settings = settings_factory()
    create_topics(settings, [VOLUMES_HOURLY, SENSORS_STATUS])
    with Store.from_settings(settings) as store:
        store.upsert_kommune_hourly([_volume(NOW_HOUR - HOUR, 1207), _volume(NOW_HOUR, 1310)])
        store.upsert_points(
            [
                CountPoint(
                    source="trafikkdata",
                    point_id="P-HAMAR",
                    name="Hamar sykkel (syntetisk)",
                    kommune_nr="3403",
                )
            ]
        )
    app = create_app(settings, follow_topics=True, poll_seconds=0.5)
    with serving(app) as url:
        browser.get(f"{url}/?region=mjosbyen")
        row = 'tr[data-kommune="3403"][data-mode="bicycle"]'
        _wait_for(
            browser,
            "the stored count",
            lambda d: "1 310" in _text(d, f"{row} td[data-hour=current]"),
        )
        assert "1 207" in _text(browser, f"{row} td[data-hour=previous]")
        assert "14:00–15:00 (+01:00)" in _text(browser, "#current-hour")
        assert browser.find_element(By.ID, "synthetic").is_displayed()
        assert "Syntetiske data" in _text(browser, "#synthetic")
        sensor = 'tr[data-point="trafikkdata:P-HAMAR"]'
        assert _text(browser, f"{sensor} .state") == "i drift"
        _wait_for(browser, "the topics connected", lambda d: "tilkoblet" in _text(d, "#topics"))
        browser.execute_script("window.__sameDocument = 'yes';")
        screenshot(browser, tmp_path, "live-page-before.png")

        # A corrected count and a status change arrive on the topics, not through the store.
        newer = _volume(NOW_HOUR, 1377)
        produce(
            settings, settings.topic(VOLUMES_HOURLY.name), [(newer.key.encode(), newer.to_bytes())]
        )
        silent = SensorStatus(
            source="trafikkdata",
            point_id="P-HAMAR",
            sensor="point",
            kommune_nr="3403",
            state="silent",
            since=NOW_HOUR - 2 * HOUR,
            as_of=NOW_HOUR + HOUR,
        )
        produce(
            settings,
            settings.topic(SENSORS_STATUS.name),
            [(silent.key.encode(), silent.to_bytes())],
        )
        _wait_for(browser, "the silent state", lambda d: _text(d, f"{sensor} .state") == "taus")
        _wait_for(
            browser, "the new count", lambda d: "1 377" in _text(d, f"{row} td[data-hour=current]")
        )
        assert browser.find_element(By.CSS_SELECTOR, sensor).get_attribute("data-state") == "silent"
        assert "2025-10-27 12:00 +01:00" in _text(browser, sensor)  # since, in Oslo time
        assert browser.execute_script("return window.__sameDocument;") == "yes", "the page reloaded"
        assert not browser.find_element(By.ID, "offline").is_displayed()
        assert "Ingen data ennå." in _text(browser, "#freshness")  # no point-hours stored
        desktop = screenshot(browser, tmp_path, "live-page.png")

        # English labels, and a phone-sized window.
        browser.set_window_size(390, 844)
        browser.find_element(By.ID, "lang-toggle").click()
        _wait_for(browser, "English labels", lambda d: _text(d, f"{sensor} .state") == "silent")
        assert "Latest hour" in browser.page_source
        assert "Synthetic data" in _text(browser, "#synthetic")
        width = browser.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 390, f"the page is {width}px wide on a 390px phone"
        screenshot(browser, tmp_path, "live-page-phone-en.png")
    assert desktop.exists()
