"""The Telegram bot end to end: ``manage.py runbot telegram`` against a local stand-in of the Bot
API (tests/telegram_standin.py), on this run's database and Redis.

Customers order by typing and by pressing buttons; the orders are in the admin; the admin's status
change reaches the chat; a refused token, a lost network and a 429 are survived.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from decimal import Decimal

import pytest
from django.test import Client

from bots.adapters.telegram import (
    Sender,
    callback_data,
    coalesce,
    keyboard,
    split_text,
    utf16_len,
)
from bots.chat import Reply
from realtime import status
from shop.models import Cart, Category, CustomerNotification, Order, OrderStatus, Product
from shop.services import set_order_status
from tests.live import RunbotProcess
from tests.telegram_standin import TelegramStandIn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_chats"),
]

TOKEN = "123456:TEST-TOKEN"


@pytest.fixture
def telegram():
    with TelegramStandIn(token=TOKEN) as standin:
        yield standin


@pytest.fixture
def shirt(db) -> Product:
    category = Category.objects.create(name="Roupas", slug="roupas")
    return Product.objects.create(
        category=category, sku="CAM-AZ", name="Camisa Azul", price=Decimal("59.90"), stock=5
    )


def start_bot(telegram: TelegramStandIn, *args: str, **env: str) -> RunbotProcess:
    return RunbotProcess(
        "telegram",
        *args,
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_URL=telegram.api_url,
        TELEGRAM_POLL_TIMEOUT="2",
        TELEGRAM_MAX_BACKOFF="2",
        **env,
    )


@pytest.fixture
def bot(telegram, shirt):
    running = start_bot(telegram)
    wait_for_status(status.CONNECTED)
    yield running
    running.stop()


def wait_for_status(code: int, timeout: float = 20, detail: str | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = status.get_states()["Telegram"]
        if state.status == code and (detail is None or state.detail == detail):
            return state
        time.sleep(0.1)
    raise AssertionError(f"Telegram never read {code}: {status.get_states()['Telegram']}")


def converse(telegram: TelegramStandIn, chat_id: int, text: str, expect: str) -> dict:
    """Type ``text``; the bot's first new message holding ``expect``."""
    before = len(telegram.sent(chat_id))
    telegram.user_says(chat_id, text)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        new = telegram.sent(chat_id)[before:]
        for message in new:
            if expect in message["text"]:
                return message
        time.sleep(0.05)
    raise AssertionError(f"after {text!r} no message with {expect!r}: {telegram.sent(chat_id)}")


def press(telegram: TelegramStandIn, chat_id: int, message: dict, label: str, expect: str) -> dict:
    """Press the button ``label`` of ``message``; the bot's first new message holding ``expect``."""
    rows = message["reply_markup"]["inline_keyboard"]
    (data,) = [b["callback_data"] for row in rows for b in row if b["text"] == label]
    before = len(telegram.sent(chat_id))
    telegram.user_presses(chat_id, message["message_id"], data)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for new in telegram.sent(chat_id)[before:]:
            if expect in new["text"]:
                return new
        time.sleep(0.05)
    raise AssertionError(f"after pressing {label!r} no message with {expect!r}")


# --- end to end -----------------------------------------------------------------------------------


def test_a_customer_orders_by_typing_and_hears_of_the_admins_status_change(
    telegram, bot, shirt, staff_user
):
    chat = 7001
    welcome = converse(telegram, chat, "oi", "Boas-vindas")
    # Greeting and menu arrive as one message, the menu's choices as an inline keyboard.
    assert "O que você gostaria de fazer?" in welcome["text"]
    labels = [b["text"] for row in welcome["reply_markup"]["inline_keyboard"] for b in row]
    assert labels[0] == "1. Catálogo 🛍️" and len(labels) == 6

    converse(telegram, chat, "2", "O que você procura?")
    converse(telegram, chat, "camisa azl", "1. Camisa Azul — R$ 59,90")
    detail = converse(telegram, chat, "1", "Camisa Azul\nR$ 59,90")
    assert detail["entities"][0] == {"type": "bold", "offset": 0, "length": 11}
    converse(telegram, chat, "2", "Adicionado: 2 × Camisa Azul")
    converse(telegram, chat, "3", "endereço de entrega")
    converse(telegram, chat, "Rua das Flores, 10, São Paulo", "Como você prefere pagar?")
    converse(telegram, chat, "1", "Total: R$ 119,80")
    placed = converse(telegram, chat, "1", "recebido!")

    order = Order.objects.select_related("customer").get()
    assert f"Pedido #{order.number} recebido!" in placed["text"]
    assert (order.channel, order.customer.telegram_id, order.total) == (
        "telegram",
        chat,
        Decimal("119.80"),
    )
    owner = Client()
    owner.force_login(staff_user)
    page = owner.get(f"/admin/shop/order/{order.pk}/change/").content.decode()
    assert "Camisa Azul" in page and "119,80" in page

    owner.post("/admin/shop/order/", {"action": "mark_confirmed", "_selected_action": [order.pk]})
    told = telegram.wait_for_text(chat, "foi confirmado")
    assert told["text"].startswith(f"✅ Seu pedido #{order.number} foi confirmado!")
    time.sleep(1)
    assert sum("foi confirmado" in m["text"] for m in telegram.sent(chat)) == 1
    assert CustomerNotification.objects.get().delivered_at is not None


def test_a_customer_orders_by_pressing_buttons(telegram, bot, shirt, staff_user):
    chat = 7002
    menu = converse(telegram, chat, "/start", "O que você gostaria de fazer?")
    categories = press(telegram, chat, menu, "1. Catálogo 🛍️", "escolha uma categoria")
    products = press(telegram, chat, categories, "1. Roupas", "1. Camisa Azul")
    detail = press(telegram, chat, products, "1. Camisa Azul", "Quantos você quer?")
    added = press(telegram, chat, detail, "1", "Adicionado: 1 × Camisa Azul")
    press(telegram, chat, added, "3. Finalizar pedido", "endereço de entrega")
    payment = converse(telegram, chat, "Av. Paulista, 1000, São Paulo", "Como você prefere pagar?")
    summary = press(telegram, chat, payment, "2. Cartão na entrega", "Resumo do pedido")
    press(telegram, chat, summary, "1. Fazer o pedido", "recebido!")

    order = Order.objects.get(customer__telegram_id=chat)
    assert (order.payment_method, order.total) == ("card_on_delivery", Decimal("59.90"))
    owner = Client()
    owner.force_login(staff_user)
    listing = owner.get("/admin/shop/order/").content.decode()
    assert f"#{order.number}" in listing and "Telegram" in listing
    # Each press was answered (no endless spinner) and its message marked with the choice.
    assert len(telegram.answered_callbacks()) == 7
    assert any("➡️ 1. Catálogo 🛍️" in edit["text"] for edit in telegram.edits(chat))


def test_a_status_change_made_while_the_bot_is_down_is_sent_once_it_is_up(telegram, shirt):
    from shop import services

    customer = services.get_or_create_customer(telegram_id=7003, name="Rafa")
    order = services.place_order(
        customer=customer,
        items=[services.OrderItem(product_id=shirt.pk, quantity=1)],
        channel="telegram",
        payment_method="pix",
        delivery_address="Rua das Flores, 10, São Paulo",
    )
    set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    set_order_status(order_id=order.pk, status=OrderStatus.SHIPPED)

    telegram.user_says(7003, "obrigado!")  # a bot may only write to those who wrote to it
    first = start_bot(telegram)
    try:
        telegram.wait_for_text(7003, "foi enviado")
        texts = [m["text"] for m in telegram.wait_for_sent(7003, 3)]
        assert sum(f"Seu pedido #{order.number} foi confirmado" in t for t in texts) == 1
        assert sum(f"Seu pedido #{order.number} foi enviado" in t for t in texts) == 1
    finally:
        first.stop()
    again = start_bot(telegram)  # a restart sends nothing twice
    try:
        wait_for_status(status.CONNECTED)
        time.sleep(1.5)
        assert len(telegram.sent(7003)) == 3
    finally:
        again.stop()


def test_a_sigkilled_bot_answers_what_came_meanwhile_exactly_once_and_the_cart_is_intact(
    telegram, shirt
):
    chat = 7010
    bot = start_bot(telegram)
    try:
        wait_for_status(status.CONNECTED)
        converse(telegram, chat, "oi", "Boas-vindas")
        converse(telegram, chat, "2", "O que você procura?")
        converse(telegram, chat, "camisa azul", "1. Camisa Azul")
        converse(telegram, chat, "1", "Camisa Azul\nR$ 59,90")
        converse(telegram, chat, "2", "Adicionado: 2 × Camisa Azul")
        answered = len(telegram.sent(chat))
        bot.process.send_signal(signal.SIGKILL)  # mid-conversation, no chance to tidy up
        bot.process.wait(timeout=10)
    finally:
        bot.stop()
    # While no bot runs, Telegram keeps the updates: the cart, the menu, the cart again.
    for text in ("2", "menu", "3"):
        telegram.user_says(chat, text)

    again = start_bot(telegram)
    try:
        wait_for_status(status.CONNECTED)
        deadline = time.monotonic() + 20
        while len(telegram.sent(chat)) < answered + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # anything answered twice would show by now
        replies = [m["text"] for m in telegram.sent(chat)[answered:]]
        assert len(replies) == 3, replies
        assert "Seu carrinho\n• 2 × Camisa Azul — R$ 119,80" in replies[0]
        assert "O que você gostaria de fazer?" in replies[1]
        assert "Seu carrinho\n• 2 × Camisa Azul — R$ 119,80" in replies[2]
        cart = Cart.objects.get(customer__telegram_id=chat)
        assert [(i.product_id, i.quantity) for i in cart.items.all()] == [(shirt.pk, 2)]
    finally:
        again.stop()


def test_the_dashboard_answers_in_the_chat_and_gives_it_back(telegram, bot, shirt):
    from asgiref.sync import async_to_sync

    from realtime.bots import asend_bot_command

    chat = 7004
    converse(telegram, chat, "oi", "Boas-vindas")
    converse(telegram, chat, "atendente", "Certo!")
    before = len(telegram.sent(chat))
    telegram.user_says(chat, "alguém aí?")
    time.sleep(1.5)
    assert len(telegram.sent(chat)) == before  # the bot keeps quiet: a person has the chat

    send = async_to_sync(asend_bot_command)
    send("Telegram", "send_message", {"service": "Telegram", "chat": str(chat), "text": "Oi! 🙂"})
    assert telegram.wait_for_text(chat, "Oi! 🙂")["text"] == "Oi! 🙂"
    send("Telegram", "release_chat", {"service": "Telegram", "chat": str(chat)})
    telegram.wait_for_text(chat, "Voltei!")
    converse(telegram, chat, "1", "escolha uma categoria")


# --- faults ---------------------------------------------------------------------------------------


def test_a_refused_token_reads_403_with_a_clear_log_line_and_no_crash_loop(telegram, shirt):
    telegram.refuse_token()
    running = start_bot(telegram)
    try:
        wait_for_status(status.DISCONNECTED, detail="O Telegram recusou o token do bot.")
        line = running.wait_for_log("Telegram refused the bot token")
        assert "TELEGRAM_BOT_TOKEN" in line and "@BotFather" in line
        time.sleep(2)
        assert running.process.poll() is None  # still running, waiting to try again...
        assert len(telegram.calls("getMe")) == 1  # ...not hammering Telegram
    finally:
        running.stop()


def test_telegram_going_away_and_back_reads_403_then_200_without_a_restart(telegram, bot, shirt):
    converse(telegram, 7005, "oi", "Boas-vindas")
    telegram.stop()
    wait_for_status(status.DISCONNECTED, timeout=15, detail="Sem conexão com o Telegram.")
    telegram.start()
    wait_for_status(status.CONNECTED, timeout=20)
    assert bot.process.poll() is None
    converse(telegram, 7005, "1", "escolha uma categoria")


def test_a_429_is_waited_out_and_nothing_is_lost(telegram, bot, shirt):
    telegram.fail_next("sendMessage", error_code=429, retry_after=2, times=1)
    asked = time.monotonic()
    telegram.user_says(7006, "oi")
    welcome = telegram.wait_for_text(7006, "Boas-vindas", timeout=15)
    assert time.monotonic() - asked >= 2
    attempts = [c for c in telegram.calls("sendMessage") if "Boas-vindas" in c["params"]["text"]]
    assert [c["status"] for c in attempts] == [429, 200]
    assert attempts[1]["at"] - attempts[0]["at"] >= 1.9
    assert len(telegram.sent(7006)) == 1 and welcome["text"].count("Boas-vindas") == 1


def test_the_webhook_mode_takes_updates_from_the_view(telegram, shirt, settings):
    settings.TELEGRAM_WEBHOOK_SECRET = "s3cr3t-webhook"
    running = start_bot(
        telegram,
        "--webhook",
        TELEGRAM_WEBHOOK_URL="https://loja.example.com",
        TELEGRAM_WEBHOOK_SECRET="s3cr3t-webhook",
    )
    try:
        wait_for_status(status.CONNECTED)
        assert telegram.webhook == {
            "url": "https://loja.example.com/bots/telegram/webhook/s3cr3t-webhook/",
            "secret_token": "s3cr3t-webhook",
        }
        # The stand-in keeps webhook updates to itself: the test delivers this one as
        # Telegram would, to the view.
        update = {"update_id": 501, "message": telegram.user_says(7007, "oi", first_name="Lia")}
        url = "/bots/telegram/webhook/s3cr3t-webhook/"
        client = Client()
        refused = client.post(url, update, content_type="application/json")
        assert refused.status_code == 403  # no secret header: not Telegram
        accepted = client.post(
            url,
            update,
            content_type="application/json",
            headers={"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-webhook"},
        )
        assert accepted.status_code == 200
        assert "Olá, Lia!" in telegram.wait_for_text(7007, "Boas-vindas")["text"]
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("body", "status"),
    [("not json", 400), ("[" * 50_000, 400), ('{"message": {}}', 400), ("[1, 2]", 400)],
)
def test_the_webhook_refuses_what_is_not_an_update_with_a_clear_400(settings, body, status):
    settings.TELEGRAM_WEBHOOK_SECRET = "s3cr3t-webhook"
    response = Client().post(
        "/bots/telegram/webhook/s3cr3t-webhook/",
        body,
        content_type="application/json",
        headers={"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-webhook"},
    )
    assert response.status_code == status
    assert response.json()["detail"] in {"The body is not JSON.", "Not a Telegram update."}


# --- translation, without a network ------------------------------------------------------------


def test_long_replies_are_split_within_telegrams_limit_at_line_breaks():
    text = "\n".join(f"{n}. Produto com um nome bem comprido 🛒 número {n}" for n in range(400))
    pieces = split_text(text)
    assert len(pieces) > 1 and all(utf16_len(piece) <= 4096 for piece in pieces)
    assert "\n".join(pieces) == text  # cut at line breaks: nothing lost or doubled
    replies = coalesce([Reply("Olá!"), Reply(text, ("1. Sim", "2. Não"))])
    assert replies[0].text.startswith("Olá!\n\n0. Produto")
    assert [r.buttons for r in replies] == [()] * (len(replies) - 1) + [("1. Sim", "2. Não")]


def test_buttons_carry_their_label_within_64_bytes():
    label = "1. Camiseta Estampada Edição Limitada Coleção Verão Tropical 🌴🌴🌴"
    assert len(callback_data(label).encode()) <= 64 and label.startswith(callback_data(label))
    markup = keyboard(("1", "2", "3", "voltar"))
    assert [[b.text for b in row] for row in markup.inline_keyboard] == [
        ["1", "2"],
        ["3", "voltar"],
    ]
    assert keyboard(()) is None


def test_messages_go_a_second_apart_per_chat_and_30_a_second_overall(telegram):
    from telegram import Bot

    crowd = list(range(9100, 9160))  # 60 chats, one message each
    for chat in (9001, *crowd):
        telegram.user_says(chat, "oi")  # a bot may only write to those who wrote to it

    async def scenario() -> None:
        bot = Bot(TOKEN, base_url=f"{telegram.api_url}/bot")
        async with bot:
            sender = Sender(bot)
            await asyncio.gather(
                *(sender.send(9001, Reply(f"m{n}")) for n in range(3)),
                *(sender.send(chat, Reply("oi")) for chat in crowd),
            )
            await sender.close()

    asyncio.run(scenario())
    calls = telegram.calls("sendMessage")
    same_chat = [c["at"] for c in calls if str(c["params"]["chat_id"]) == "9001"]
    assert [m["text"] for m in telegram.sent(9001)] == ["m0", "m1", "m2"]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(same_chat))
    # 63 messages, never 31 within a second.
    times = sorted(c["at"] for c in calls)
    assert len(times) == 63
    assert all(b - a >= 0.95 for a, b in zip(times, times[30:], strict=False))
