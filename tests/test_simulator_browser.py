"""The dashboard's "Testar o bot" panel in a real headless Chromium, against a real server: the
shop owner chats with the conversation engine as a customer would."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from realtime import status
from shop.models import Category, Product
from tests.live import Server, chromium_driver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BUBBLES = "#simulator .sim-messages .sim-message"


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"{status.KEY_PREFIX}*")
    if keys:
        client.delete(*keys)
    live = Server()
    yield live
    live.stop()


@pytest.fixture
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


@pytest.fixture
def catalog(db) -> Category:
    roupas = Category.objects.create(name="Roupas", slug="roupas")
    Product.objects.create(
        category=roupas, sku="SIM-00001", name="Camisa Azul", price=Decimal("59.90"), stock=7,
        is_active=True,
    )  # fmt: skip
    return roupas


def wait_for(browser, condition, timeout: float = 15):
    # Bubbles are added while we look: an element read a moment ago may be gone; look again.
    wait = WebDriverWait(
        browser,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    try:
        return wait.until(condition)
    except TimeoutException:
        shown = transcript(browser)
        raise AssertionError(f"not seen within {timeout} s; the panel shows:\n{shown}") from None


def transcript(browser) -> str:
    """The simulator panel as text, for failure messages."""
    return browser.execute_script("return document.getElementById('simulator').innerText")


def log_in(browser, server, user, password) -> None:
    browser.get(f"{server.url}/dashboard/")
    browser.find_element(By.ID, "login-username").send_keys(user.username)
    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"))


def bubbles(browser, direction: str | None = None) -> list:
    selector = BUBBLES if direction is None else f'{BUBBLES}[data-direction="{direction}"]'
    return browser.find_elements(By.CSS_SELECTOR, selector)


def bubble_text(browser, bubble) -> str:
    """The rendered text of a bubble's message (its buttons left out), line breaks included."""
    return browser.execute_script(
        "return arguments[0].querySelector('.sim-bubble-text').innerText", bubble
    )


def bot_bubble(*, after: int = 0, containing: str = "", min_buttons: int = 0, test=None):
    """A bot bubble, among the bot bubbles from index ``after`` on, that matches."""

    def check(browser):
        for bubble in bubbles(browser, "in")[after:]:
            text = bubble_text(browser, bubble)
            buttons = bubble.find_elements(By.CSS_SELECTOR, ".sim-button")
            if containing in text and len(buttons) >= min_buttons and (test is None or test(text)):
                return bubble
        return False

    return check


def test_chat_with_the_bot_from_the_dashboard(
    server, browser, staff_user, password, catalog, tmp_path
):
    log_in(browser, server, staff_user, password)
    panel = browser.find_element(By.ID, "simulator")
    assert panel.find_element(By.CSS_SELECTOR, "h2").text == "Testar o bot"
    assert bubbles(browser) == []
    messages = panel.find_element(By.CSS_SELECTOR, ".sim-messages")
    assert messages.get_attribute("aria-live") == "polite"

    # Blank text is not sent.
    browser.find_element(By.ID, "sim-text").send_keys("   ")
    browser.find_element(By.ID, "sim-send").click()
    assert bubbles(browser) == []
    browser.find_element(By.ID, "sim-text").clear()

    # "oi" (sent with Enter): the owner's bubble at once, then the greeting and the main menu.
    browser.find_element(By.ID, "sim-text").send_keys("oi", Keys.ENTER)
    wait_for(browser, lambda b: [x.text for x in bubbles(b, "out")] == ["oi"])
    assert browser.find_element(By.ID, "sim-text").get_attribute("value") == ""
    wait_for(browser, bot_bubble(containing="👋"))
    menu = wait_for(browser, bot_bubble(min_buttons=6))
    menu_text = bubble_text(browser, menu)
    assert "O que você gostaria de fazer?" in menu_text or "What would you like to do?" in menu_text
    assert "\n" in menu_text  # a multi-line reply keeps its line breaks
    labels = [b.text for b in menu.find_elements(By.CSS_SELECTOR, ".sim-button")]
    assert labels[0].startswith("1. ") and labels[5].startswith("6. ")

    # A button sends its label as if typed: the owner's bubble, then the catalog's categories.
    seen = len(bubbles(browser, "in"))
    menu.find_elements(By.CSS_SELECTOR, ".sim-button")[0].click()
    wait_for(browser, lambda b: [x.text for x in bubbles(b, "out")] == ["oi", labels[0]])
    categories = wait_for(
        browser,
        bot_bubble(
            after=seen,
            containing="Roupas",
            test=lambda text: "Catálogo" in text or "Catalog" in text,
        ),
    )
    categories_text = bubble_text(browser, categories)
    assert "\n" in categories_text, categories_text
    buttons = [b.text for b in categories.find_elements(By.CSS_SELECTOR, ".sim-button")]
    assert "1. Roupas" in buttons
    assert buttons[-1] in ("voltar", "back")
    # The conversation starts with the owner and ends with the bot.
    directions = [b.get_attribute("data-direction") for b in bubbles(browser)]
    assert directions[0] == "out" and directions[-1] == "in"
    browser.execute_script("document.getElementById('simulator').scrollIntoView()")
    browser.save_screenshot(str(tmp_path / "simulator.png"))

    # "Nova conversa": a new customer, an empty list.
    browser.find_element(By.ID, "sim-new").click()
    wait_for(browser, lambda b: bubbles(b) == [])

    # A message the server refuses (too long: the input's maxlength is bypassed here) says so in
    # the panel, and the page keeps working.
    browser.execute_script("document.getElementById('sim-text').value = 'x'.repeat(5000)")
    browser.find_element(By.ID, "sim-send").click()
    wait_for(browser, ec.visibility_of_element_located((By.ID, "sim-note")))
    assert "text" in browser.find_element(By.ID, "sim-note").text
    assert browser.find_element(By.ID, "connection-state").text == "Conectado"


def test_the_simulator_is_usable_on_a_phone_screen(server, staff_user, password, tmp_path):
    phone = chromium_driver()
    phone.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        log_in(phone, server, staff_user, password)
        phone.find_element(By.ID, "sim-text").send_keys("oi", Keys.ENTER)
        wait_for(phone, bot_bubble(min_buttons=6))
        phone.execute_script("document.getElementById('simulator').scrollIntoView()")
        phone.save_screenshot(str(tmp_path / "simulator-phone.png"))
        overflow = phone.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
        panel = phone.find_element(By.ID, "simulator").rect
        assert panel["x"] >= 0 and panel["x"] + panel["width"] <= 375
        send = phone.find_element(By.ID, "sim-send")
        assert send.rect["x"] + send.rect["width"] <= 375
        assert send.size["height"] >= 36  # a finger can hit it
        button = phone.find_element(By.CSS_SELECTOR, "#simulator .sim-button")
        assert button.size["height"] >= 32
    finally:
        phone.quit()
