"""Whatever a customer types, at any step, the engine answers and touches nothing it should not.

Hypothesis throws random text, emoji, 10,000-character messages, empty and whitespace-only
messages and the engine's own keywords at every step of the conversation, restored before each
example. The engine must answer with non-empty replies, never fall into its "something went
wrong" apology (that would be a bug it caught), and change stock or orders only when the
message confirmed a checkout.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.chat import WHATSAPP
from shop import services
from shop.models import CartItem, Category, Customer, Order, Product
from tests.bots_support import Chat

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_chats")]

EXAMPLES_PER_STEP = 150

KEYWORDS = [
    "menu", "voltar", "cancelar", "mais", "sim", "não", "ok", "pix", "dinheiro", "cartão",
    "english", "português", "carrinho", "finalizar", "pedidos", "buscar", "catálogo", "0", "1",
    "2", "3", "4", "5", "6", "7", "99", "1000", "-1", "2️⃣", "1.", "3)", "/start", "oi",
]  # fmt: skip
EMOJI = ["🛒", "😀", "👍🏽", "🇧🇷", "👨‍👩‍👧", "❤️", "🔥", "2️⃣", "\u200d", "\ufe0f"]

messages = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(EMOJI), max_size=12).map("".join),
    st.sampled_from(["", " ", "   ", "\n", "\t \n ", "\u00a0", "\u200b", "\x00", "\r\n"]),
    st.sampled_from(KEYWORDS),
    st.integers(min_value=-10, max_value=2000).map(str),
    st.characters().map(lambda char: char * 10_000),
    st.text(min_size=1, max_size=20).map(lambda text: (text * 10_000)[:10_000]),
)

STEP_SCRIPTS = {
    "menu": [],
    "categories": ["1"],
    "products": ["1", "1"],
    "quantity": ["2", "camisa", "1"],
    "added": ["2", "camisa", "1", "2"],
    "search": ["2"],
    "results": ["2", "camisa"],
    "cart": ["2", "camisa", "1", "2", "2"],
    "cart_pick": ["2", "camisa", "1", "2", "2", "2"],
    "cart_quantity": ["2", "camisa", "1", "2", "2", "2", "1"],
    "cart_clear": ["2", "camisa", "1", "2", "2", "4"],
    "checkout_address": ["2", "camisa", "1", "2", "3"],
    "checkout_payment": ["2", "camisa", "1", "2", "3", "Rua das Flores, 10, São Paulo"],
    "checkout_confirm": ["2", "camisa", "1", "2", "3", "Rua das Flores, 10, São Paulo", "1"],
}

HYPOTHESIS = settings(
    max_examples=EXAMPLES_PER_STEP,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def catalog(db) -> list[Product]:
    category = Category.objects.create(name="Roupas", slug="roupas")
    return [
        Product.objects.create(
            category=category, sku="CAM-1", name="Camisa Azul", price=Decimal("59.90"), stock=40
        ),
        Product.objects.create(
            category=category, sku="CAM-2", name="Camisa Verde", price=Decimal("49.90"), stock=40
        ),
    ]


class Checkpoint:
    """A chat brought to a step, put back there before every example."""

    def __init__(self, script: list[str], *, name: str = "Maria Souza") -> None:
        self.chat = Chat(name=name)
        self.chat.say("oi")
        for text in script:
            self.chat.say(text)
        self.state = self.chat.state()
        self.customer = Customer.objects.get(whatsapp_phone=self.chat.chat)
        self.cart = list(
            CartItem.objects.filter(cart__customer=self.customer).values_list(
                "product_id", "quantity"
            )
        )

    def restore(self) -> None:
        self.chat.engine.store.save(WHATSAPP, self.chat.chat, self.state)
        services.clear_cart(customer=self.customer)
        for product_id, quantity in self.cart:
            services.add_to_cart(customer=self.customer, product_id=product_id, quantity=quantity)


def shop_totals() -> tuple[int, int]:
    return Order.objects.count(), Product.objects.aggregate(stock=Sum("stock"))["stock"]


def check_answer(checkpoint: Checkpoint, text: str, catalog: list[Product]) -> None:
    checkpoint.restore()
    orders, stock = shop_totals()
    replies = checkpoint.chat.say(text)

    assert replies, f"no reply to {text[:40]!r} at {checkpoint.state['step']}"
    assert all(reply.text.strip() for reply in replies)
    assert not any(reply.text.startswith("😓") for reply in replies), replies[0].text
    placed = any("recebido!" in reply.text for reply in replies)
    if placed:
        assert checkpoint.state["step"] == "checkout_confirm"
        assert shop_totals() == (orders + 1, stock - sum(q for _p, q in checkpoint.cart))
        Product.objects.filter(pk__in=[p.pk for p in catalog]).update(stock=40)
    else:
        assert shop_totals() == (orders, stock)


@pytest.mark.parametrize("step", list(STEP_SCRIPTS))
def test_every_message_at_every_step_gets_an_answer_and_changes_nothing_else(catalog, step):
    checkpoint = Checkpoint(STEP_SCRIPTS[step])
    assert checkpoint.state["step"] == step

    @HYPOTHESIS
    @given(text=messages)
    def answer(text: str) -> None:
        check_answer(checkpoint, text, catalog)

    answer()


def test_every_message_when_asked_for_a_name_gets_an_answer(catalog):
    checkpoint = Checkpoint(["2", "camisa", "1", "2", "3"], name="")
    assert checkpoint.state["step"] == "checkout_name"

    @HYPOTHESIS
    @given(text=messages)
    def answer(text: str) -> None:
        Customer.objects.filter(pk=checkpoint.customer.pk).update(name="")
        check_answer(checkpoint, text, catalog)

    answer()


def test_every_message_after_a_shortage_gets_an_answer(catalog):
    checkpoint = Checkpoint(STEP_SCRIPTS["checkout_confirm"])
    Product.objects.filter(pk=catalog[0].pk).update(stock=0)
    assert "esgotado" in checkpoint.chat.text("1")
    checkpoint.state = checkpoint.chat.state()
    assert checkpoint.state["step"] == "shortage"

    @HYPOTHESIS
    @given(text=messages)
    def answer(text: str) -> None:
        check_answer(checkpoint, text, catalog)

    answer()


def test_a_chat_with_a_person_stays_silent_whatever_is_typed(catalog):
    checkpoint = Checkpoint(["2", "camisa", "1", "2", "atendente"])
    assert checkpoint.state["handoff"]

    @HYPOTHESIS
    @given(text=messages)
    def silent(text: str) -> None:
        checkpoint.restore()
        before = shop_totals()
        assert checkpoint.chat.say(text) == []
        assert checkpoint.chat.last_outcome.silenced
        assert shop_totals() == before

    silent()
