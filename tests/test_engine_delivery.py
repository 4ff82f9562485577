"""Messages delivered twice, at once or after a restart, and customers racing for the last unit,
on real threads with their own database connections and the real Redis; and the outbox.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bots.chat import WHATSAPP, Reply
from bots.engine import Engine
from bots.gateway import ChatGateway
from bots.state import ChatStore, _chat_key
from shop import services
from shop.models import (
    CartItem,
    Category,
    Customer,
    CustomerNotification,
    Order,
    OrderStatus,
    Product,
)
from tests.bots_support import Chat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_chats"),
]


@pytest.fixture
def shop_category(db) -> Category:
    return Category.objects.create(name="Roupas", slug="roupas")


_skus = itertools.count(1)


def product(category: Category, *, name: str = "Camisa Azul", stock: int = 5) -> Product:
    return Product.objects.create(
        category=category, sku=f"SKU-{next(_skus)}", name=name, price=Decimal("59.90"), stock=stock
    )


def chat_at_confirm(product_: Product, *, quantity: int = 1, engine: Engine | None = None) -> Chat:
    """A chat whose next "1" places an order of ``quantity`` × ``product_``."""
    chat = Chat(engine)
    chat.say("oi")
    chat.say("2")
    chat.say(product_.name)
    chat.say("1")
    chat.say(str(quantity))
    chat.say("3")
    chat.say("Rua das Flores, 10, São Paulo")
    assert chat.text("1").startswith("📋 *Resumo do pedido*")
    return chat


def at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Run ``calls`` in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # surfaced by the assertions
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_one_message_delivered_many_times_at_once_is_answered_once(shop_category):
    chat = chat_at_confirm(product(shop_category))
    confirm = chat.message("1", message_id="wamid.CONFIRM-1")
    outcomes = at_once([lambda: Engine().handle(confirm) for _ in range(8)])

    answered = [o for o in outcomes if not o.duplicate]
    assert len(answered) == 1, outcomes
    assert "recebido!" in answered[0].replies[0].text
    assert all(o.duplicate and o.replies == [] for o in outcomes if o is not answered[0])
    assert Order.objects.count() == 1


def test_a_message_redelivered_after_a_restart_is_not_answered_again(shop_category):
    chat = chat_at_confirm(product(shop_category))
    confirm = chat.message("1", message_id="wamid.CONFIRM-2")
    first = Engine().handle(confirm)
    assert "recebido!" in first.replies[0].text

    restarted = Engine(ChatStore())  # a new process: nothing in memory, Redis as it was
    again = restarted.handle(confirm)
    assert again.duplicate and again.replies == []
    assert Order.objects.count() == 1


def test_a_confirm_whose_turn_was_never_saved_finds_its_order(shop_category):
    """The bot died after the order was committed but before Redis recorded the turn."""
    chat = chat_at_confirm(product(shop_category))
    before = chat.state()
    confirm = chat.message("1", message_id="wamid.CONFIRM-3")
    order_number = Order.objects.count()
    first = chat.engine.handle(confirm)
    (order,) = Order.objects.all()
    assert order_number == 0

    store = chat.engine.store
    store.save(WHATSAPP, chat.chat, before)  # the state as it was before the confirm...
    store.client.delete(f"{_chat_key(WHATSAPP, chat.chat)}:seen:wamid.CONFIRM-3")  # ...unseen
    again = chat.engine.handle(confirm)
    assert again.replies[0].text == first.replies[0].text
    assert f"#{order.number}" in again.replies[0].text
    assert Order.objects.count() == 1


def test_two_customers_racing_for_the_last_unit_one_order_one_sold_out(shop_category):
    for round_ in range(5):
        last = product(shop_category, name=f"Relógio Edição {round_}", stock=1)
        first, second = chat_at_confirm(last), chat_at_confirm(last)
        outcomes = at_once([lambda c=c: c.engine.handle(c.message("1")) for c in (first, second)])

        texts = [outcome.replies[0].text for outcome in outcomes]
        assert sum("recebido!" in text for text in texts) == 1, texts
        (refused,) = [text for text in texts if "recebido!" not in text]
        assert f"• Relógio Edição {round_}: esgotado" in refused
        assert Order.objects.filter(lines__product=last).count() == 1
        last.refresh_from_db()
        assert last.stock == 0


def test_two_messages_of_one_chat_are_handled_one_at_a_time(shop_category):
    product(shop_category, stock=50)
    chat = Chat()
    chat.say("oi")
    chat.say("2")
    chat.say("camisa azul")
    chat.say("1")
    # Ten "1"s at once. One after the other they walk quantity -> added -> results -> detail ->
    # quantity...: 4 of them add a unit. Read side by side, all ten would add.
    outcomes = at_once([lambda: chat.engine.handle(chat.message("1")) for _ in range(10)])
    added = [o for o in outcomes if o.replies[0].text.startswith("✅ Adicionado: 1 × Camisa Azul")]
    assert len(added) == 4, [o.replies[0].text[:40] for o in outcomes]
    customer = Customer.objects.get(whatsapp_phone=chat.chat)
    assert CartItem.objects.get(cart__customer=customer).quantity == 4


# --- the outbox -----------------------------------------------------------------------------------


def web_order(category: Category, *, chat: str = "web-1") -> Order:
    customer = services.get_or_create_customer(web_chat=chat, name="Ana")
    return services.place_order(
        customer=customer,
        items=[services.OrderItem(product_id=product(category).pk, quantity=1)],
        channel="web",
        payment_method="pix",
        delivery_address="Rua das Flores, 10, São Paulo",
    )


def test_a_status_change_writes_one_notification_in_the_customers_channel(shop_category, place):
    order = place((product(shop_category), 1))  # a WhatsApp customer
    services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    (notification,) = CustomerNotification.objects.all()
    assert (notification.channel, notification.order_status, notification.delivered_at) == (
        "whatsapp",
        "confirmed",
        None,
    )


def test_no_notification_for_an_api_shopper_or_a_change_that_rolled_back(shop_category, make_user):
    shopper = services.get_or_create_customer(user=make_user("api-shopper"))
    order = services.place_order(
        customer=shopper,
        items=[services.OrderItem(product_id=product(shop_category).pk, quantity=1)],
        channel="web",
        payment_method="pix",
        delivery_address="Rua das Flores, 10, São Paulo",
    )
    services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    assert not CustomerNotification.objects.exists()

    other = web_order(shop_category, chat="web-2")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.set_order_status(order_id=other.pk, status=OrderStatus.CONFIRMED)
        raise RuntimeError("the surrounding work failed")
    assert not CustomerNotification.objects.exists()


def test_claims_lease_rows_and_expired_leases_are_claimed_again(shop_category):
    order = web_order(shop_category)
    services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    (claimed,) = services.claim_notifications(channel="web")
    assert services.claim_notifications(channel="web") == []  # leased to the first claimer

    CustomerNotification.objects.update(leased_until=timezone.now() - timedelta(seconds=1))
    (again,) = services.claim_notifications(channel="web")  # its bot died: at least once
    assert again.pk == claimed.pk
    services.mark_notification_delivered(notification_id=again.pk)
    CustomerNotification.objects.update(leased_until=None)
    assert services.claim_notifications(channel="web") == []
    assert CustomerNotification.objects.get().attempts == 2


def test_concurrent_drainers_never_take_the_same_notification(shop_category):
    for number in range(12):
        order = web_order(shop_category, chat=f"web-{number}")
        services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    batches = at_once([lambda: services.claim_notifications(channel="web", limit=5)] * 4)
    claimed = [n.pk for batch in batches for n in batch]
    assert len(claimed) == len(set(claimed)) == 12


def test_a_failed_send_is_retried_and_a_notification_is_sent_once(shop_category):
    order = web_order(shop_category, chat="web-42")
    services.set_order_status(order_id=order.pk, status=OrderStatus.CANCELLED)
    sent: list[tuple[str, str]] = []
    attempts = {"count": 0}

    async def flaky_send(chat: str, reply: Reply) -> None:
        attempts["count"] += 1
        if attempts["count"] == 1:
            raise ConnectionError("the chat is unreachable")
        sent.append((chat, reply.text))

    gateway = ChatGateway("Web")
    assert asyncio.run(gateway.drain_outbox(flaky_send)) == 0
    assert CustomerNotification.objects.get().last_error == "the chat is unreachable"
    assert asyncio.run(gateway.drain_outbox(flaky_send)) == 1
    assert asyncio.run(gateway.drain_outbox(flaky_send)) == 0
    assert sent == [
        (
            "web-42",
            f"❌ Seu pedido #{order.number} foi cancelado. Dúvidas? Responda *atendente* "
            "para falar com a gente.",
        )
    ]


def test_notifications_speak_the_customers_language(shop_category):
    order = web_order(shop_category, chat="web-en")
    services.update_customer_details(customer=order.customer, language="en")
    services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    services.set_order_status(order_id=order.pk, status=OrderStatus.SHIPPED)
    sent: list[str] = []

    async def send(chat: str, reply: Reply) -> None:
        sent.append(reply.text)

    asyncio.run(ChatGateway("Web").drain_outbox(send))
    assert sent == [
        f"✅ Your order #{order.number} was confirmed! We are getting your products ready.",
        f"🚚 Your order #{order.number} was shipped! It is on its way.",
    ]
