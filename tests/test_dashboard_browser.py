"""The dashboard in a real headless Chromium, against a real server, Redis and a bot process."""

from __future__ import annotations

import pytest
import redis
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from realtime import status
from tests.live import BotProcess, Server, chromium_driver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


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


def card(browser, service: str):
    return browser.find_element(By.CSS_SELECTOR, f'.service-card[data-service="{service}"]')


def wait_for(browser, condition, timeout: float = 15):
    # The page re-renders parts of itself: an element read a moment ago may be gone; look again.
    return WebDriverWait(
        browser,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition)


def card_shows(service: str, code: str, text: str):
    def check(browser) -> bool:
        element = card(browser, service)
        label = element.find_element(By.CSS_SELECTOR, ".service-status").text
        return element.get_attribute("data-status") == code and label == text

    return check


def rendered_width(browser, image) -> int:
    return browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image
    )


def qr_shown(service: str, payload: str):
    """The card's QR image holds ``payload`` and the browser has drawn it; returns its src."""

    def check(browser) -> str | bool:
        images = card(browser, service).find_elements(By.CSS_SELECTOR, "img.qr-image")
        if not images or images[0].get_attribute("data-qr") != payload:
            return False
        drawn = rendered_width(browser, images[0]) > 50  # decoded and drawn, not a broken image
        return drawn and images[0].get_attribute("src")

    return check


def test_log_in_watch_statuses_and_generate_a_session(
    server, browser, staff_user, password, tmp_path
):
    browser.get(f"{server.url}/dashboard/")
    browser.find_element(By.ID, "login-username").send_keys(staff_user.username)
    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"))

    # Both cards, as the registry says: no bot running.
    wait_for(browser, card_shows("WhatsApp", "403", "Desconectado"))
    wait_for(browser, card_shows("Telegram", "403", "Desconectado"))

    # A status set from outside the page shows up live.
    status.heartbeat("Telegram")
    status.set_status("Telegram", status.CONNECTED)
    wait_for(browser, card_shows("Telegram", "200", "Conectado"))

    # "Gerar sessão" reaches the bot; its QR codes replace each other on the card.
    bot = BotProcess(
        "WhatsApp", "--status", "100", "--qr", "2@primeiro-qr,abc==", "2@segundo-qr,def==",
        "--qr-interval", "1.5",
    )  # fmt: skip
    try:
        wait_for(browser, card_shows("WhatsApp", "100", "Inicializando"))
        card(browser, "WhatsApp").find_element(By.CSS_SELECTOR, ".generate-session").click()
        wait_for(browser, card_shows("WhatsApp", "102", "Autenticando"))
        first_src = wait_for(browser, qr_shown("WhatsApp", "2@primeiro-qr,abc=="))
        assert first_src.startswith("data:image/svg+xml")
        second_src = wait_for(browser, qr_shown("WhatsApp", "2@segundo-qr,def=="))
        assert second_src != first_src
        browser.save_screenshot(str(tmp_path / "dashboard.png"))

        # "Desconectar" reaches the bot too.
        card(browser, "WhatsApp").find_element(By.CSS_SELECTOR, ".logout-session").click()
        wait_for(browser, card_shows("WhatsApp", "403", "Desconectado"))
    finally:
        bot.stop()


def test_generate_session_without_a_bot_says_so(server, browser, staff_user, password):
    browser.get(f"{server.url}/dashboard/")
    browser.find_element(By.ID, "login-username").send_keys(staff_user.username)
    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"))
    card(browser, "Telegram").find_element(By.CSS_SELECTOR, ".generate-session").click()
    wait_for(
        browser,
        ec.text_to_be_present_in_element((By.ID, "messages"), "Nenhum bot do Telegram em execução"),
    )


def test_a_wrong_password_is_refused_on_the_page(server, browser, staff_user):
    browser.get(f"{server.url}/dashboard/")
    browser.find_element(By.ID, "login-username").send_keys(staff_user.username)
    browser.find_element(By.ID, "login-password").send_keys("senha-errada")
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "login-error"), "Usuário ou senha"))


def test_the_page_says_when_the_connection_drops_and_comes_back(
    server, browser, staff_user, password
):
    browser.get(f"{server.url}/dashboard/")
    browser.find_element(By.ID, "login-username").send_keys(staff_user.username)
    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"))

    port = server.port
    server.stop()
    wait_for(browser, ec.visibility_of_element_located((By.ID, "connection-banner")))
    assert "Reconectando" in browser.find_element(By.ID, "connection-banner").text

    restarted = Server(port)  # the same address again, as a restarted server would be
    try:
        wait_for(
            browser,
            ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"),
            timeout=40,
        )
        assert not browser.find_element(By.ID, "connection-banner").is_displayed()
    finally:
        restarted.stop()


def test_usable_on_a_phone_screen(server, staff_user, password):
    phone = chromium_driver()
    # A phone's screen: Chrome's windows are never narrower than 500 px, its emulation is.
    phone.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        phone.get(f"{server.url}/dashboard/")
        assert phone.execute_script("return window.innerWidth") == 375
        phone.find_element(By.ID, "login-username").send_keys(staff_user.username)
        phone.find_element(By.ID, "login-password").send_keys(password)
        phone.find_element(By.ID, "login-submit").click()
        wait_for(phone, ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"))
        overflow = phone.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
        whatsapp, telegram = (card(phone, s).rect for s in ("WhatsApp", "Telegram"))
        assert telegram["y"] >= whatsapp["y"] + whatsapp["height"]  # stacked, not squeezed
        assert whatsapp["width"] <= 375
        button = card(phone, "WhatsApp").find_element(By.CSS_SELECTOR, ".generate-session")
        assert button.size["height"] >= 36  # a finger can hit it
    finally:
        phone.quit()


def log_in(browser, server, user, password) -> None:
    browser.get(f"{server.url}/dashboard/")
    browser.find_element(By.ID, "login-username").send_keys(user.username)
    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    wait_for(browser, ec.text_to_be_present_in_element((By.ID, "connection-state"), "Conectado"))


def test_orders_feed_and_conversations_panel(
    server, browser, staff_user, password, make_product, place
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from realtime.groups import CONVERSATIONS_GROUP, room_event
    from shop.services import set_order_status

    log_in(browser, server, staff_user, password)

    # Orders placed and moved anywhere show up in the feed.
    order = place((make_product(price="79.90", stock=5), 2))
    item = f'.order-item[data-number="{order.number}"]'
    wait_for(browser, ec.presence_of_element_located((By.CSS_SELECTOR, item)))
    text = browser.find_element(By.CSS_SELECTOR, item).text
    assert f"#{order.number}" in text and "Maria Souza" in text and "159,80" in text
    set_order_status(order_id=order.pk, status="confirmed")
    wait_for(browser, ec.text_to_be_present_in_element((By.CSS_SELECTOR, item), "Confirmado"))

    # A customer's message and a hand-off request show up in the conversations panel.
    bot = BotProcess("WhatsApp", "--status", "200")
    try:
        send = async_to_sync(get_channel_layer().group_send)
        chat = {"service": "WhatsApp", "chat": "5511912345678", "customer": "Maria Souza"}
        message = {**chat, "direction": "in", "text": "Quero falar\ncom alguém 🙋",
                   "at": "2026-11-29T10:30:00-03:00"}  # fmt: skip
        send(CONVERSATIONS_GROUP, room_event("chat_message", message))
        send(CONVERSATIONS_GROUP, room_event("handoff_requested", chat))
        entry = '.chat-item[data-service="WhatsApp"][data-chat="5511912345678"]'
        wait_for(browser, ec.presence_of_element_located((By.CSS_SELECTOR, f"{entry}.handoff")))
        browser.find_element(By.CSS_SELECTOR, entry).click()
        wait_for(
            browser,
            ec.text_to_be_present_in_element(
                (By.ID, "chat-messages"), "Quero falar\ncom alguém 🙋"
            ),
        )

        # The person answers in the bot's place, then gives the chat back: both reach the bot.
        browser.find_element(By.ID, "chat-text").send_keys("Olá, Maria! Sou a Ana.")
        browser.find_element(By.ID, "chat-send").click()
        assert bot.next_command() == {
            "command": "send_message",
            "data": {**{k: chat[k] for k in ("service", "chat")}, "text": "Olá, Maria! Sou a Ana."},
        }
        browser.find_element(By.ID, "chat-release").click()
        assert bot.next_command() == {
            "command": "release_chat",
            "data": {"service": "WhatsApp", "chat": "5511912345678"},
        }
        wait_for(
            browser,
            lambda b: "handoff"
            not in b.find_element(By.CSS_SELECTOR, entry).get_attribute("class"),
        )
    finally:
        bot.stop()
