"""A studio served on a free local port and the system's headless Chromium driving it (Selenium +
chromedriver), for the browser test, the studio benchmark and the README screenshot.

``.ci/install-browser`` installs Debian's chromium and chromium-driver where they are missing.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def find_browser() -> Tuple[Optional[str], Optional[str], str]:
    """(chromium, chromedriver, why not) on PATH."""
    browser = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", browser), ("chromedriver", driver)) if not found]
    return browser, driver, f"{' and '.join(missing)} not on PATH (run .ci/install-browser)" if missing else ""


@contextmanager
def serve(app) -> Iterator[str]:
    """Run the FastAPI ``app`` with uvicorn in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the studio server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def login_url(url: str, app, fragment: str = "") -> str:
    """The address `segkit studio` prints (its token in the query: the page sets the cookie and redirects
    to the clean URL, the fragment kept), for a studio ``app`` served at ``url``."""
    return f"{url}/?token={app.state.token}" + (f"#{fragment}" if fragment else "")


@contextmanager
def chromium(width: int = 1400, height: int = 900, flags: Tuple[str, ...] = ()) -> Iterator["object"]:
    """A headless Chromium WebDriver with a fresh profile (and extra command-line ``flags``), closed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver, why = find_browser()
    if why:
        raise RuntimeError(why)
    profile = tempfile.mkdtemp(prefix="segkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS + (f"--user-data-dir={profile}", f"--window-size={width},{height}") + tuple(flags):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(session, timeout: float = 60) -> None:
    """Until the page has finished its last load or edit (body[data-state=ready])."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(session, timeout, poll_frequency=0.02).until(
        lambda s: s.execute_script("return document.body.dataset.state") == "ready"
    )


def image_offset(session, x: int, y: int) -> Tuple[int, int]:
    """Offset from the overlay canvas's centre (Selenium's origin) to image pixel (x, y)."""
    return tuple(
        session.execute_script(
            "const r = document.getElementById('overlay').getBoundingClientRect();"
            "return [Math.round((arguments[0] + 0.5) * r.width / S.w - r.width / 2),"
            "        Math.round((arguments[1] + 0.5) * r.height / S.h - r.height / 2)];",
            x,
            y,
        )
    )
