"""The dashboard's "Testar o bot" channel through the real websocket stack: a chat from "oi" to an
order, the admin's status change reaching the chat, hand-off and its release, and the outbox
delivering once what was said while no simulator was open.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from shop import services
from shop.models import Category, CustomerNotification, Order, OrderStatus, Product
from tests.test_realtime_consumer import connect, joined, next_event, send

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_chats"),
]


@pytest.fixture
def shirt(db) -> Product:
    category = Category.objects.create(name="Roupas", slug="roupas")
    return Product.objects.create(
        category=category, sku="CAM-AZ", name="Camisa Azul", price=Decimal("59.90"), stock=5
    )


async def replies(client, count: int, chat: str) -> list[dict]:
    got = []
    while len(got) < count:
        reply = await next_event(client, "test_reply", timeout=10)
        if reply["chat"] == chat:
            got.append(reply)
    return got


async def frames_for(client, seconds: float, chat: str) -> list[dict]:
    """Every frame about ``chat`` that arrives within ``seconds``.

    Other chats are left out: the rooms are shared with whatever else uses this Redis.
    """
    frames = []
    while not await client.receive_nothing(timeout=seconds):
        frame = await client.receive_json_from()
        if frame["data"].get("chat") == chat:
            frames.append(frame)
    return frames


async def say(client, chat: str, text: str, count: int = 1) -> list[dict]:
    await send(client, "test_message", {"chat": chat, "name": "Ana Teste", "text": text})
    return await replies(client, count, chat)


async def test_a_simulator_chat_places_an_order_and_the_admin_status_change_reaches_it(
    staff_token, staff_user, shirt
):
    owner = await connect()
    await joined(owner, "Simulator", staff_token)
    watcher = await connect()
    await joined(watcher, "Conversations", staff_token)
    chat = f"web-{uuid.uuid4().hex[:8]}"

    greeting, menu = await say(owner, chat, "oi", 2)
    assert greeting == {
        "chat": chat,
        "text": "Olá, Ana! 👋 Boas-vindas à *Marketplace Bot*.",
        "buttons": [],
    }
    assert menu["buttons"][0] == "1. Catálogo 🛍️" and len(menu["buttons"]) == 6
    seen = await next_event(watcher, "chat_message")
    assert {k: seen[k] for k in ("service", "chat", "customer", "direction", "text")} == {
        "service": "Web",
        "chat": chat,
        "customer": "Ana Teste",
        "direction": "in",
        "text": "oi",
    }
    assert (await next_event(watcher, "chat_message"))["direction"] == "out"

    await say(owner, chat, "2")
    await say(owner, chat, "camisa")
    await say(owner, chat, "1")
    await say(owner, chat, "2", 2)  # added; keep shopping / cart / checkout
    await say(owner, chat, "3")  # the address
    await say(owner, chat, "Rua das Flores, 10, São Paulo")
    await say(owner, chat, "1")  # Pix: the summary
    placed, _menu = await say(owner, chat, "1", 2)
    order = await Order.objects.select_related("customer").aget()
    assert placed["text"].startswith(f"🎉 Pedido *#{order.number}* recebido! Total: R$ 119,80")
    assert (order.channel, order.customer.web_chat) == ("web", chat)

    browser = Client()
    await sync_to_async(browser.force_login)(staff_user)
    response = await sync_to_async(browser.post)(
        "/admin/shop/order/",
        {"action": "mark_confirmed", "_selected_action": [order.pk]},
    )
    assert response.status_code == 302
    (told,) = await replies(owner, 1, chat)
    assert told["text"] == (
        f"✅ Seu pedido #{order.number} foi confirmado! Já estamos separando seus produtos."
    )
    assert await owner.receive_nothing(timeout=0.5)  # once
    notification = await CustomerNotification.objects.aget(order=order)
    assert notification.delivered_at is not None and notification.attempts == 1
    for client in (owner, watcher):
        await client.disconnect()


async def test_a_change_made_while_no_simulator_is_open_is_delivered_once_when_one_opens(
    staff_token, shirt
):
    chat = f"web-{uuid.uuid4().hex[:8]}"

    def order_shipped() -> Order:
        customer = services.get_or_create_customer(web_chat=chat, name="Ana")
        order = services.place_order(
            customer=customer,
            items=[services.OrderItem(product_id=shirt.pk, quantity=1)],
            channel="web",
            payment_method="pix",
            delivery_address="Rua das Flores, 10, São Paulo",
        )
        services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
        return services.set_order_status(order_id=order.pk, status=OrderStatus.SHIPPED)

    order = await sync_to_async(order_shipped)()
    assert await CustomerNotification.objects.filter(delivered_at__isnull=True).acount() == 2

    first = await connect()
    await joined(first, "Simulator", staff_token)
    texts = [reply["text"] for reply in await replies(first, 2, chat)]
    assert texts == [
        f"✅ Seu pedido #{order.number} foi confirmado! Já estamos separando seus produtos.",
        f"🚚 Seu pedido #{order.number} foi enviado! Já está a caminho.",
    ]
    second = await connect()
    await joined(second, "Simulator", staff_token)
    assert await second.receive_nothing(timeout=0.5)
    assert await first.receive_nothing(timeout=0.2)
    assert await CustomerNotification.objects.filter(delivered_at__isnull=True).acount() == 0
    for client in (first, second):
        await client.disconnect()


async def test_handoff_is_seen_by_the_dashboard_a_person_answers_and_gives_the_chat_back(
    staff_token, shirt
):
    owner = await connect()
    await joined(owner, "Simulator", staff_token)
    await joined(owner, "Conversations", staff_token)
    chat = f"web-{uuid.uuid4().hex[:8]}"
    await say(owner, chat, "oi", 2)

    await send(owner, "test_message", {"chat": chat, "name": "Ana Teste", "text": "6"})
    events = {frame["event"]: frame["data"] for frame in await frames_for(owner, 1.0, chat)}
    assert events["test_reply"]["text"].startswith("💬 Certo!")
    assert events["handoff_requested"] == {"service": "Web", "chat": chat, "customer": "Ana Teste"}

    await send(owner, "test_message", {"chat": chat, "name": "Ana Teste", "text": "alguém aí?"})
    heard = await next_event(owner, "chat_message")
    while heard["text"] != "alguém aí?":
        heard = await next_event(owner, "chat_message")
    assert heard["direction"] == "in"
    assert "test_reply" not in [frame["event"] for frame in await frames_for(owner, 1.0, chat)]
    await send(owner, "send_message", {"service": "Web", "chat": chat, "text": "Oi! Sou a Bia 🙂"})
    (person,) = await replies(owner, 1, chat)
    assert person == {"chat": chat, "text": "Oi! Sou a Bia 🙂", "buttons": []}

    await send(owner, "release_chat", {"service": "Web", "chat": chat})
    (back,) = await replies(owner, 1, chat)
    assert back["text"] == "🤖 Voltei! Responda *menu* para ver as opções."
    (catalog,) = await say(owner, chat, "1")
    assert catalog["text"].startswith("🛍️ *Catálogo*")
    await owner.disconnect()


async def test_the_bot_stays_quiet_in_a_chat_a_person_has(staff_token, shirt):
    owner = await connect()
    await joined(owner, "Simulator", staff_token)
    chat = f"web-{uuid.uuid4().hex[:8]}"
    await say(owner, chat, "oi", 2)
    await send(owner, "send_message", {"service": "Web", "chat": chat, "text": "x"})
    error = await next_event(owner, "error")
    assert (error["status"], error["event"]) == (401, "send_message")  # not in Conversations
    await joined(owner, "Conversations", staff_token)
    await send(owner, "send_message", {"service": "Web", "chat": chat, "text": "Oi, aqui é a Bia"})
    await replies(owner, 1, chat)
    await send(owner, "test_message", {"chat": chat, "name": "Ana", "text": "1"})
    frames = await frames_for(owner, 1.5, chat)
    assert [(f["event"], f["data"]["direction"], f["data"]["text"]) for f in frames] == [
        ("chat_message", "in", "1")
    ]
    await owner.disconnect()


async def test_a_stopped_redis_gets_a_polite_retry_reply_in_the_chat(staff_token, settings, shirt):
    from tests.live import free_port

    owner = await connect()
    await joined(owner, "Simulator", staff_token)
    chat = f"web-{uuid.uuid4().hex[:8]}"
    # The conversation store points where no Redis answers (the channel layer keeps its own).
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    (reply,) = await say(owner, chat, "oi")
    assert reply["text"] == "⚠️ Estamos com uma instabilidade. Tente de novo em instantes."
    await owner.disconnect()
