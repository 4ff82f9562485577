"""The WhatsApp Web test double, driven as the bot drives WhatsApp Web: real headless Chromium
through Selenium, with the selectors of the page contract
(/work/shared/whatsapp-web/CONTRACT.md)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.live import CHROMIUM_FLAGS, chromium_driver
from tests.whatsapp_double import WhatsAppDouble, format_phone

pytestmark = pytest.mark.slow

DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
FAST = {"loading_seconds": 0.4, "sync_seconds": 0.4}

# The contract's selectors, per variant index (0 first-listed, 1 second, 2 third or last).
SELECTORS = {
    "loading": ("#app progress", '#app [data-testid="wa-web-loading-screen"]'),
    "qr": (
        '.landing-wrapper div[data-ref] canvas[aria-label="Scan this QR code to link a device!"]',
        '.landing-wrapper div[data-ref] canvas[aria-label="Scan me!"]',
        '.landing-wrapper div[data-ref][data-testid="qrcode"] canvas',
    ),
    "main": ("#pane-side", 'div[aria-label="Chat list"]'),
    "rows": ('#pane-side div[role="grid"] div[role="row"]', '[data-testid="cell-frame-container"]'),
    "unread": ('span[aria-label*="unread"]', 'span[data-testid="icon-unread-count"]'),
    "text": ("span.selectable-text.copyable-text", '[data-testid="selectable-text"]'),
    "compose": (
        '#main footer .lexical-rich-text-input div[contenteditable="true"][role="textbox"]',
        '#main footer div[contenteditable="true"][data-tab="10"]',
    ),
    "send": (
        'button[aria-label="Send"]',
        'span[data-icon="wds-ic-send-filled"]',
        'span[data-icon="send"]',
    ),
}

# A message's text as the contract defines it: text nodes and emoji <img> alts, <br> as "\n".
MESSAGE_TEXT_JS = """
let out = "";
const walk = (node) => {
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) out += child.data;
    else if (child.tagName === "IMG") out += child.alt;
    else if (child.tagName === "BR") out += "\\n";
    else if (child.nodeType === Node.ELEMENT_NODE) walk(child);
  }
};
walk(arguments[0]);
return out;
"""
INSERT_TEXT_JS = "arguments[0].focus(); document.execCommand('insertText', false, arguments[1]);"


def sel(concern: str, variant: int) -> str:
    options = SELECTORS[concern]
    return options[min(variant, len(options) - 1)]


def assert_only_variant(driver: WebDriver, concern: str, variant: int) -> None:
    """The page carries the markup of its variant and none of the others'."""
    mine = sel(concern, variant)
    assert driver.find_elements(By.CSS_SELECTOR, mine), mine
    for other in set(SELECTORS[concern]) - {mine}:
        assert driver.find_elements(By.CSS_SELECTOR, other) == [], other


def new_browser(user_data_dir: Path | None = None) -> WebDriver:
    """Headless Chromium with a desktop Chrome user agent (the double refuses HeadlessChrome)."""
    if user_data_dir is None:
        driver = chromium_driver()
        driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": DESKTOP_UA})
        return driver
    options = Options()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.add_argument(f"--user-agent={DESKTOP_UA}")
    options.add_argument(f"--user-data-dir={user_data_dir}")
    binary = os.environ.get("CHROME_BINARY") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
    )
    if binary:
        options.binary_location = binary
    driver_path = os.environ.get("CHROMEDRIVER") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def wait(driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 10):
    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition)


def find(driver: WebDriver | WebElement, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def finds(driver: WebDriver | WebElement, css: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, css)


def qr_holder(driver: WebDriver) -> WebElement:
    return wait(driver, lambda d: find(d, ".landing-wrapper div[data-ref]"))


def rows(driver: WebDriver, variant: int) -> list[tuple[str, str | None, WebElement]]:
    """(title, unread count or None, row) of the chat list, top to bottom."""
    found = []
    for row in finds(driver, sel("rows", variant)):
        unread = finds(row, sel("unread", variant))
        title = find(row, "span[title]").get_attribute("title")
        found.append((title, unread[0].text if unread else None, row))
    return found


def titles(driver: WebDriver, variant: int) -> list[tuple[str, str | None]]:
    return [(title, unread) for title, unread, _ in rows(driver, variant)]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = new_browser()
    yield driver
    driver.quit()


def test_headless_user_agent_is_refused() -> None:
    with WhatsAppDouble(**FAST) as wa:
        driver = chromium_driver()
        try:
            assert "HeadlessChrome" in driver.execute_script("return navigator.userAgent")
            driver.get(wa.url)
            assert "not supported" in find(driver, "body").text
            assert finds(driver, "#app") == []
            assert wa.state() == "refused"
            assert wa.page_loads() == 0
        finally:
            driver.quit()
    assert wa.errors == []


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_a_bot_session_against_each_variant(browser: WebDriver, variant: int) -> None:
    with WhatsAppDouble(variant=variant, **FAST) as wa:
        # Loading, then login with a QR.
        browser.get(wa.url)
        assert finds(browser, sel("loading", variant))
        assert_only_variant(browser, "loading", variant)
        assert wa.state() == "loading"
        holder = qr_holder(browser)
        payload = holder.get_attribute("data-ref")
        assert payload.startswith("2@")
        assert wait(browser, lambda _: wa.state() == "login")
        assert wa.qr_payload() == payload
        assert_only_variant(browser, "qr", variant)

        # The payload changes in place; an expired QR shows a reload button.
        rotated = wa.rotate_qr()
        assert rotated != payload
        wait(browser, lambda _: holder.get_attribute("data-ref") == rotated)
        assert qr_holder(browser) == holder
        wa.expire_qr()
        button = wait(browser, lambda d: find(d, ".landing-wrapper div[data-ref] button"))
        assert button.text == "Click to reload QR code"
        with pytest.raises(RuntimeError):
            wa.scan()
        button.click()
        wait(browser, lambda _: holder.get_attribute("data-ref") not in (payload, rotated))
        assert finds(browser, "div[data-ref] button") == []
        assert wa.qr_payload() == holder.get_attribute("data-ref")

        # Scan: syncing, then main.
        wa.scan()
        assert wa.linked()
        syncing = wait(browser, lambda d: "Loading your chats" in find(d, "#app").text)
        assert syncing and finds(browser, "#app progress")
        wait(browser, lambda d: finds(d, sel("main", variant)))
        assert_only_variant(browser, "main", variant)
        assert wait(browser, lambda _: wa.state() == "main")
        assert wa.qr_payload() is None

        # Unread rows, on top, with their count.
        maria = "+5511912345678"
        said = "Oi! 😀 Quero a camisa 👨‍👩‍👧 🇧🇷 2️⃣\nTamanho M, cor ❤️"
        maria_id = wa.customer_says(maria, said, name="Maria Souza")
        assert re.fullmatch(r"false_5511912345678@c\.us_\w+", maria_id)
        first = wa.customer_says("+5521998765432", "Bom dia", lid=True)
        second = wa.customer_says("+5521998765432", "Tem entrega?")
        assert re.fullmatch(r"false_\d+@lid_\w+", first)
        lid_title = format_phone("5521998765432")
        assert lid_title == "+55 21 99876-5432"
        expected = [(lid_title, "2"), ("Maria Souza", "1")]
        wait(browser, lambda d: titles(d, variant) == expected)
        assert_only_variant(browser, "unread", variant)
        assert_only_variant(browser, "rows", variant)

        # Clicking a row opens the chat and clears its mark; the other unread row goes on top.
        rows(browser, variant)[0][2].click()
        wait(browser, lambda d: find(d, '#main header span[dir="auto"]').text == lid_title)
        ids = [e.get_attribute("data-id") for e in finds(browser, "#main [data-id]")]
        assert ids == [first, second]
        wait(browser, lambda d: titles(d, variant) == [("Maria Souza", "1"), (lid_title, None)])
        rows(browser, variant)[0][2].click()
        wait(browser, lambda d: find(d, '#main header span[dir="auto"]').text == "Maria Souza")
        wait(browser, lambda d: titles(d, variant) == [(lid_title, None), ("Maria Souza", None)])

        # The message: data-id, message-in, pre-plain-text, its text with emoji as <img alt>.
        message = wait(browser, lambda d: find(d, f'#main [data-id="{maria_id}"]'))
        find(message, "div.message-in")
        pre = find(message, "div.copyable-text").get_attribute("data-pre-plain-text")
        assert re.fullmatch(r"\[\d\d:\d\d, \d\d/\d\d/\d{4}\] Maria Souza: ", pre)
        text_span = find(message, sel("text", variant))
        assert_only_variant(browser, "text", variant)
        assert browser.execute_script(MESSAGE_TEXT_JS, text_span) == said
        alts = [e.get_attribute("alt") for e in finds(text_span, "img.emoji")]
        assert alts == ["😀", "👨‍👩‍👧", "🇧🇷", "2️⃣", "❤️"]
        assert len(finds(text_span, "br")) == 1
        assert "😀" not in browser.execute_script("return arguments[0].textContent", text_span)

        # Messages keep coming into the open chat, media without text, and are not unread.
        photo = wa.customer_sends_media(maria, "image")
        later = wa.customer_says(maria, "Ainda está aí?")
        media = wait(browser, lambda d: find(d, f'#main [data-id="{photo}"]'))
        wait(browser, lambda d: find(d, f'#main [data-id="{later}"]'))
        assert finds(media, sel("text", variant)) == []
        assert find(media, "div.message-in img").get_attribute("src").startswith("blob:")
        assert titles(browser, variant)[0] == ("Maria Souza", None)
        assert [m["data_id"] for m in wa.received(maria)] == [maria_id, photo, later]

        # Send: emoji outside the BMP through execCommand, a line break with Shift+Enter.
        box = find(browser, sel("compose", variant))
        assert_only_variant(browser, "compose", variant)
        assert finds(browser, sel("send", variant)) == []
        browser.execute_script(INSERT_TEXT_JS, box, "Seu pedido 🛒 saiu")
        box.send_keys(Keys.SHIFT, Keys.ENTER)
        browser.execute_script(INSERT_TEXT_JS, box, "Obrigado! 😀")
        send = wait(browser, lambda d: find(d, sel("send", variant)))
        assert_only_variant(browser, "send", variant)
        send.click()
        reply = "Seu pedido 🛒 saiu\nObrigado! 😀"
        sent = wa.wait_for_sent(maria, "Seu pedido")
        assert sent["text"] == reply
        assert re.fullmatch(r"true_5511912345678@c\.us_\w+", sent["data_id"])
        bubble = wait(browser, lambda d: find(d, f'#main [data-id="{sent["data_id"]}"]'))
        find(bubble, "div.message-out")
        assert browser.execute_script(MESSAGE_TEXT_JS, find(bubble, sel("text", variant))) == reply
        seen = set()

        def ticks(_: WebDriver) -> bool:
            seen.add(find(bubble, "span[data-icon^='msg-']").get_attribute("data-icon"))
            return "msg-dblcheck" in seen

        wait(browser, ticks)
        assert seen <= {"msg-time", "msg-check", "msg-dblcheck"}
        assert wa.sent(maria)[-1]["ticks"] == "msg-dblcheck"
        assert box.text == ""

        # Enter sends too (BMP text, typed).
        box.send_keys("Até logo", Keys.ENTER)
        assert wa.wait_for_sent(maria, "Até logo")["text"] == "Até logo"

        # /send opens a chat (new here) with the text in the compose box.
        notice = "Pedido #42 confirmado ✅\nObrigado pela compra 🛒"
        browser.get(f"{wa.url}send?phone=5511988887777&text={quote(notice)}")
        title = wait(browser, lambda d: find(d, '#main header span[dir="auto"]'), timeout=15)
        assert title.text == "+55 11 98888-7777"
        assert wa.state() == "main"
        assert wa.open_chat() == "+5511988887777"
        box = find(browser, sel("compose", variant))
        wait(browser, lambda d: find(d, sel("send", variant))).click()
        assert wa.wait_for_sent("5511988887777", "Pedido #42")["text"] == notice
        assert wa.page_loads() == 2

        # An invalid number: a dialog with an OK button.
        wa.invalid_numbers.add("5511900000000")
        browser.get(f"{wa.url}send?phone=5511900000000&text=oi")
        dialog = wait(browser, lambda d: find(d, '[role="dialog"]'), timeout=15)
        assert "invalid" in dialog.text
        ok = next(b for b in finds(dialog, "button") if b.text == "OK")
        ok.click()
        wait(browser, lambda d: finds(d, '[role="dialog"]') == [])
        assert finds(browser, "#main") == []
        assert wa.sent("5511900000000") == []

        # The phone unlinks the browser: back to login.
        wa.log_out()
        assert not wa.linked()
        qr_holder(browser)
        assert wait(browser, lambda _: wa.state() == "login")
        assert wa.qr_payload() == find(browser, "div[data-ref]").get_attribute("data-ref")
        assert finds(browser, sel("main", variant)) == []
    assert wa.errors == []


def test_the_qr_changes_on_its_own_then_expires(browser: WebDriver) -> None:
    timing = {"first_qr_seconds": 0.8, "qr_seconds": 0.5, "qr_rotations_before_expiry": 2}
    with WhatsAppDouble(loading_seconds=0.2, **timing) as wa:
        browser.get(wa.url)
        holder = qr_holder(browser)
        shown = [holder.get_attribute("data-ref")]

        def changed(_: WebDriver) -> bool:
            payload = holder.get_attribute("data-ref")
            if payload != shown[-1]:
                shown.append(payload)
            return len(shown) == 3

        wait(browser, changed)
        assert len(set(shown)) == 3
        button = wait(browser, lambda d: find(d, "div[data-ref] button"))
        assert wa.qr_expired()
        assert holder.get_attribute("data-ref") == shown[-1]
        button.click()
        wait(browser, lambda _: holder.get_attribute("data-ref") not in shown)
        assert not wa.qr_expired()
        assert wa.qr_payload() == holder.get_attribute("data-ref")
    assert wa.errors == []
    assert not [t for t in threading.enumerate() if t.name.startswith("whatsapp-double")]


def test_the_session_survives_a_browser_restart(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    with WhatsAppDouble(stall_sending=True, **FAST) as wa:
        driver = new_browser(profile)
        try:
            driver.get(wa.url)
            qr_holder(driver)
            wait(driver, lambda _: wa.state() == "login")
            wa.scan()
            wait(driver, lambda d: finds(d, "#pane-side"))
        finally:
            driver.quit()

        before = len(wa.state_history())
        driver = new_browser(profile)
        try:
            driver.get(wa.url)
            saw_qr = []

            def main_reached(d: WebDriver) -> bool:
                saw_qr.append(bool(finds(d, "div[data-ref]")))
                return bool(finds(d, "#pane-side"))

            wait(driver, main_reached)
            assert not any(saw_qr)
            assert wa.state_history()[before:] == ["loading", "syncing", "main"]
            assert wa.page_loads() == 2

            # stall_sending: a sent message stays pending.
            wa.customer_says("+5511912345678", "Oi")
            wait(driver, lambda d: rows(d, 0))[0][2].click()
            box = wait(driver, lambda d: find(d, sel("compose", 0)))
            box.send_keys("Olá")
            wait(driver, lambda d: find(d, sel("send", 0))).click()
            sent = wa.wait_for_sent("+5511912345678", "Olá")
            bubble = wait(driver, lambda d: find(d, f'[data-id="{sent["data_id"]}"]'))
            time.sleep(1)
            assert find(bubble, "span[data-icon^='msg-']").get_attribute("data-icon") == "msg-time"
            assert wa.sent()[-1]["ticks"] == "msg-time"
        finally:
            driver.quit()
    assert wa.errors == []
