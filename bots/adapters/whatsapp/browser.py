"""Chromium for WhatsApp Web: the system's Chromium and ChromeDriver, else Selenium Manager."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
from pathlib import Path

import psutil
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
    # Smaller caches and an eager garbage collector: over 200 messages Chromium grew by ~12 MB
    # with it, ~125 MB without (bench/whatsapp_latency.py), at no cost in reply latency.
    "--enable-low-end-device-mode",
    # The bot's tab is the only one and nobody looks at it: Chromium must not treat it as a
    # background tab (slower timers, a frozen renderer), as an automation-minded Chromium
    # (Puppeteer's defaults) does not either.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-hang-monitor",
    "--disable-breakpad",
    "--password-store=basic",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
)


# Every WebDriver call is bounded: a renderer that hangs (it happens, more under load) must turn
# into an error the bot restarts on, not a bot that waits forever. The longest honest call is a
# page load or an async script (30 s each); the HTTP call to ChromeDriver gets a margin on that.
PAGE_LOAD_TIMEOUT_S = 30
SCRIPT_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 45
DRIVER_PID_FILE = "chromedriver.pid"


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
    # Operators' own additions (and experiments), e.g. WHATSAPP_CHROMIUM_FLAGS="--lang=pt-BR".
    for flag in shlex.split(os.environ.get("WHATSAPP_CHROMIUM_FLAGS", "")):
        options.add_argument(flag)
    options.add_argument(f"--user-agent={DESKTOP_USER_AGENT}")
    profile_dir.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile_dir}")
    binary = find_binary("CHROME_BINARY", "chromium", "chromium-browser", "google-chrome")
    if binary:
        options.binary_location = binary
    driver_path = find_binary("CHROMEDRIVER", "chromedriver")
    # Without a system ChromeDriver, Selenium Manager fetches a matching one.
    service = Service(executable_path=driver_path) if driver_path else Service()
    kill_leftovers(profile_dir=profile_dir)
    logger.info("starting Chromium (%s, profile %s)", binary or "Selenium Manager", profile_dir)
    driver = webdriver.Chrome(options=options, service=service)
    driver.command_executor.client_config.timeout = COMMAND_TIMEOUT_S
    driver.set_script_timeout(SCRIPT_TIMEOUT_S)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    if service.process is not None:
        (profile_dir / DRIVER_PID_FILE).write_text(str(service.process.pid))
    return driver


def kill_leftovers(*, profile_dir: Path) -> int:
    """Kill a Chromium still on ``profile_dir`` and the ChromeDriver that started it: left by a
    bot that was SIGKILLed, or hung past ``quit``. Chromium refuses a profile another Chromium
    holds, so nothing could start again until they are gone. Returns how many were killed."""
    flag = f"--user-data-dir={profile_dir}"
    victims = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if flag in (process.info["cmdline"] or []):
                victims.append(process)
    pid_file = profile_dir / DRIVER_PID_FILE
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        driver = psutil.Process(int(pid_file.read_text()))
        if "chromedriver" in driver.name():
            victims.append(driver)
    for process in victims:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(victims, timeout=5)
    if victims:
        logger.warning("killed %d leftover Chromium/ChromeDriver process(es)", len(victims))
    return len(victims)


def chromium_mb(driver: webdriver.Chrome) -> float:
    """Chromium's memory under ``driver`` (PSS, MB: shared pages counted once), 0 if unknown."""
    service = getattr(driver, "service", None)
    process = getattr(service, "process", None)
    if process is None:
        return 0.0
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_full_info().pss
    return total / 1024 / 1024
