"""A headless Chromium for the browser tests of the HTML report and the history site.

The browser comes from the distribution's packages (Debian/Ubuntu:
``apt-get install chromium chromium-driver``) and is driven by selenium (in the ``test``
extra). Where any of the three is missing, every browser test is skipped with the reason.

Fixtures and helpers:

- ``chrome``: a session-wide headless Chromium (selenium WebDriver) that records the page's
  console messages;
- ``open_page(path)``: load a local file in ``chrome``, wait for it, and return the console
  messages of level SEVERE (errors) it logged;
- ``page_loader``: the same loader, session-scoped, for a module-scoped fixture that loads a
  page once and lets several tests look at it;
- ``is_blank(png_bytes)``: whether a screenshot is one flat colour.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)


def _which(names: tuple[str, ...], env: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def _skip_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _which(CHROMIUM_NAMES, "GAM_BENCH_CHROMIUM") is None:
        return "no Chromium on PATH (Debian/Ubuntu: apt-get install chromium chromium-driver)"
    if _which(DRIVER_NAMES, "GAM_BENCH_CHROMEDRIVER") is None:
        return "no chromedriver on PATH (Debian/Ubuntu: apt-get install chromium-driver)"
    return None


@pytest.fixture(scope="session")
def chrome():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _which(CHROMIUM_NAMES, "GAM_BENCH_CHROMIUM")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--allow-file-access-from-files",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium's own driver manager would try the network.
    service = Service(executable_path=_which(DRIVER_NAMES, "GAM_BENCH_CHROMEDRIVER"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open_page(driver, path: Path, settle_s: float = 10.0) -> list[dict]:
    """Load ``path``, wait until the document is complete, and return its console errors."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(Path(path).resolve().as_uri())
    WebDriverWait(driver, settle_s).until(lambda d: d.execute_script("return document.readyState") == "complete")
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def _is_blank(png: bytes) -> bool:
    """True when a screenshot holds a single colour (nothing was drawn)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    lo, hi = zip(*image.getextrema())
    return lo == hi


@pytest.fixture
def open_page(chrome):
    return lambda path, settle_s=10.0: _open_page(chrome, path, settle_s)


@pytest.fixture(scope="session")
def page_loader(chrome):
    return lambda path, settle_s=10.0: _open_page(chrome, path, settle_s)


@pytest.fixture
def is_blank():
    return _is_blank
