"""Browser tests: Debian's headless Chromium driven through Debian's own chromedriver (`make browser` installs
both, and the Noto CJK font without which Chinese renders as boxes). Both paths are explicit so Selenium's
manager never tries to download a driver: the test machines may have no internet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tools import paths
from tools.infra import assets

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = paths.REPO_ROOT / "docs" / "screenshots"
ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN", "--window-size=1400,1000")


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the session, speaking zh-CN (its UI and its Accept-Language)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run `make browser` (Debian's chromium, chromium-driver "
                    "and fonts-noto-cjk)", pytrace=False)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """The served dir of the browser libraries, as `make assets` leaves it (put in place here when the tests
    run on their own; a cached copy makes that a copy, not a download)."""
    return assets.serve(progress=lambda _m: None)


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save what the browser shows as docs/screenshots/<name>.png; the path, for the test to report."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"the browser could not write {path}"
    return path
