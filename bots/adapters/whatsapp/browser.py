"""Chromium for WhatsApp Web: the system's Chromium and ChromeDriver, else Selenium Manager."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

logger = logging.getLogger(__name__)

# WhatsApp refuses a browser whose user agent says "HeadlessChrome": look like desktop Chrome.
DESKTOP_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
    "--disable-extensions",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
)


def find_binary(env_name: str, *candidates: str) -> str | None:
    """The program named by ``env_name``, else the first candidate on this system."""
    if os.environ.get(env_name):
        return os.environ[env_name]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def start_chromium(*, profile_dir: Path, headed: bool = False) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    if not headed:
        options.add_argument("--headless=new")
    for flag in FLAGS:
        options.add_argument(flag)
    if os.environ.get("WHATSAPP_SINGLE_PROCESS", "true").lower() not in {"0", "false", "no"}:
        # One Chromium process instead of about nine: ~350 MB instead of ~440 (PSS). Chromium
        # calls the mode unsupported; for one tab driven by a bot it holds up in our tests, and
        # a crash is noticed and restarted like any other. WHATSAPP_SINGLE_PROCESS=false to
        # leave it.
        options.add_argument("--single-process")
        options.add_argument("--no-zygote")
    options.add_argument(f"--user-agent={DESKTOP_USER_AGENT}")
    profile_dir.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile_dir}")
    binary = find_binary("CHROME_BINARY", "chromium", "chromium-browser", "google-chrome")
    if binary:
        options.binary_location = binary
    driver_path = find_binary("CHROMEDRIVER", "chromedriver")
    # Without a system ChromeDriver, Selenium Manager fetches a matching one.
    service = Service(executable_path=driver_path) if driver_path else Service()
    logger.info("starting Chromium (%s, profile %s)", binary or "Selenium Manager", profile_dir)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(30)
    return driver
