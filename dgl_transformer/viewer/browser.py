"""Viewer pages in a real browser: Debian's headless ``chromium``, driven by Selenium through
Debian's ``chromedriver``. Nothing is downloaded (no browser build, no Selenium Manager), and
the browser refuses the network: no host resolves but this machine's 127.0.0.1, so a page that
works here works offline.

* :func:`chromium`: a browser for the ``with`` block.
* :func:`open_page`: load a page, wait until the viewer has drawn; when it had, in ms.
* :func:`screenshot`: a PNG of a view (or of a saved page).

Needs ``selenium`` (the ``dev`` extra) and, as root, ``apt-get install chromium
chromium-driver``; without them :class:`BrowserMissing` says so in one line.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .attention import AttentionView

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver"


class BrowserMissing(RuntimeError):
    """No Chromium, chromedriver or Selenium to open pages with."""


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[WebDriver]:
    """A headless Chromium window of ``width`` x ``height`` pixels, closed after the block."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise BrowserMissing(f"{' and '.join(missing)} not found: the viewer's browser tests "
                             f"need Debian's Chromium, install it with `{INSTALL}`")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserMissing("selenium is not installed: `make setup` (the dev extra) "
                             "installs it") from None
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--force-device-scale-factor=1",
                f"--window-size={width},{height}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_viewer(driver: WebDriver, timeout: float = 20.0) -> float:
    """Wait until the current document's viewer has drawn; when it had, in ms after the
    document's navigation started (its own ``performance.now()``)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return !!(window.attentionViewer && window.attentionViewer.ready)"))
    return float(driver.execute_script("return window.attentionViewer.readyAt"))


def open_page(driver: WebDriver, page: Path) -> float:
    """Load the saved page ``page``; see :func:`wait_for_viewer`."""
    driver.get(page.resolve().as_uri())
    return wait_for_viewer(driver)


def screenshot(page: AttentionView | Path, out: str | Path, width: int = 1400) -> Path:
    """A PNG of the whole viewer in ``page`` (a view, or a saved page), written to ``out``."""
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(page, AttentionView):
            page = page.save(Path(tmp) / "attention.html")
        with chromium(width=width) as driver:
            open_page(driver, page)
            tall = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, int(tall) + 40)
            driver.save_screenshot(str(out))
    return out
