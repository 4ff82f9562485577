"""place_order, checkout_cart and set_order_status: what the owner and the customer see."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from shop import services
from shop.errors import (
    IllegalStatusTransition,
    InsufficientStock,
    InvalidOrder,
    ProductUnavailable,
)
from shop.models import (
    AppendOnlyError,
    Order,
    OrderStatus,
    OrderStatusChange,
    Product,
)
from tests.conftest import ILLEGAL_MOVES, LEGAL_MOVES, walk_to

pytestmark = pytest.mark.django_db


def stock_of(product: Product) -> int:
    product.refresh_from_db()
    return product.stock


def test_place_order_snapshots_lines_totals_and_takes_stock(make_product, place, customer):
    shirt = make_product(name="Camisa Azul", price="79.90", stock=5)
    coffee = make_product(name="Café 500 g", price="24.90", stock=100)

    order = place((shirt, 2), (coffee, 3))

    assert order.status == OrderStatus.PENDING
    assert order.number == str(1000 + order.pk)
    assert order.customer == customer
    assert order.customer_name == "Maria Souza"
    assert order.subtotal == Decimal("234.50")  # 2 × 79.90 + 3 × 24.90
    assert order.total == Decimal("234.50")
    lines = {line.product_name: line for line in order.lines.all()}
    assert lines["Camisa Azul"].unit_price == Decimal("79.90")
    assert lines["Camisa Azul"].line_total == Decimal("159.80")
    assert lines["Café 500 g"].quantity == 3
    assert stock_of(shirt) == 3
    assert stock_of(coffee) == 97
    history = list(order.status_changes.values_list("from_status", "to_status", "source"))
    assert history == [("", OrderStatus.PENDING, "whatsapp")]


def test_order_lines_keep_name_and_price_after_the_catalog_changes(make_product, place):
    shirt = make_product(name="Camisa Azul", price="79.90")
    order = place((shirt, 1))

    Product.objects.filter(pk=shirt.pk).update(name="Camisa Azul Nova", price=Decimal("99.00"))

    line = order.lines.get()
    assert (line.product_name, line.unit_price) == ("Camisa Azul", Decimal("79.90"))


def test_the_same_product_twice_in_one_order_is_one_line(make_product, place):
    shirt = make_product(stock=5)
    order = place((shirt, 2), (shirt, 1))
    assert [(line.quantity, line.line_total) for line in order.lines.all()] == [
        (3, Decimal("30.00"))
    ]
    assert stock_of(shirt) == 2


def test_delivery_fee_is_added_to_the_total(make_product, place, settings):
    settings.SHOP_DELIVERY_FEE = Decimal("7.50")
    order = place((make_product(price="10.00"), 2))
    assert (order.subtotal, order.delivery_fee, order.total) == (
        Decimal("20.00"),
        Decimal("7.50"),
        Decimal("27.50"),
    )


def test_shortage_names_every_product_short_and_changes_nothing(make_product, place):
    shirt = make_product(name="Camisa Azul", stock=1)
    boots = make_product(name="Bota de Camurça", stock=0)
    coffee = make_product(name="Café", stock=50)

    with pytest.raises(InsufficientStock) as refused:
        place((shirt, 2), (boots, 1), (coffee, 1))

    assert {(s.name, s.requested, s.available) for s in refused.value.shortages} == {
        ("Camisa Azul", 2, 1),
        ("Bota de Camurça", 1, 0),
    }
    assert "Camisa Azul" in refused.value.message
    assert "Bota de Camurça" in refused.value.message
    assert "Café" not in refused.value.message
    assert (stock_of(shirt), stock_of(boots), stock_of(coffee)) == (1, 0, 50)
    assert not Order.objects.exists()


def test_inactive_or_unknown_products_are_refused(make_product, place):
    hidden = make_product(is_active=False)
    with pytest.raises(ProductUnavailable) as refused:
        services.place_order(
            customer=services.get_or_create_customer(telegram_id=42),
            items=[
                services.OrderItem(product_id=hidden.pk, quantity=1),
                services.OrderItem(product_id=999_999, quantity=1),
            ],
            channel="telegram",
            payment_method="cash",
            delivery_address="Rua A, 1",
        )
    assert refused.value.product_ids == [hidden.pk, 999_999]
    assert stock_of(hidden) == 10


@pytest.mark.parametrize("quantity", [0, -1, 1000])
def test_quantities_out_of_range_are_refused(make_product, place, quantity):
    with pytest.raises(InvalidOrder):
        place((make_product(), quantity))
    assert not Order.objects.exists()


def test_an_order_needs_products_and_an_address(make_product, place, customer):
    with pytest.raises(InvalidOrder):
        place()
    with pytest.raises(InvalidOrder):
        place((make_product(), 1), delivery_address="   ")
    customer.delivery_address = "Av. Paulista, 1000"
    customer.save()
    order = place((make_product(), 1), delivery_address="")
    assert order.delivery_address == "Av. Paulista, 1000"


def test_checkout_turns_the_cart_into_an_order_and_empties_it(make_product, customer):
    shirt = make_product(name="Camisa", price="50.00", stock=4)
    coffee = make_product(name="Café", price="20.00", stock=4)
    services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=1)
    services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=1)
    services.add_to_cart(customer=customer, product_id=coffee.pk, quantity=3)
    services.set_cart_quantity(customer=customer, product_id=coffee.pk, quantity=1)

    order = services.checkout_cart(
        customer=customer, channel="whatsapp", payment_method="pix", delivery_address="Rua B, 2"
    )

    assert sorted(order.lines.values_list("product_name", "quantity")) == [
        ("Café", 1),
        ("Camisa", 2),
    ]
    assert order.total == Decimal("120.00")
    assert not customer.cart.items.exists()
    with pytest.raises(InvalidOrder):
        services.checkout_cart(customer=customer, channel="whatsapp", payment_method="pix")


def test_a_failed_checkout_keeps_the_cart(make_product, customer):
    shirt = make_product(stock=1)
    services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=2)
    with pytest.raises(InsufficientStock):
        services.checkout_cart(
            customer=customer, channel="web", payment_method="cash", delivery_address="Rua C, 3"
        )
    assert list(customer.cart.items.values_list("quantity", flat=True)) == [2]


def test_adding_to_the_cart_adds_up_and_refuses_what_cannot_be_sold(make_product, customer):
    shirt = make_product(name="Camisa", stock=5)
    hidden = make_product(name="Fora de linha", is_active=False)
    assert services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=2) == 2
    assert services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=3) == 5
    with pytest.raises(ProductUnavailable):
        services.add_to_cart(customer=customer, product_id=hidden.pk, quantity=1)
    with pytest.raises(ProductUnavailable):
        services.add_to_cart(customer=customer, product_id=999_999, quantity=1)
    with pytest.raises(InvalidOrder, match="999"):
        services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=995)
    with pytest.raises(InvalidOrder):
        services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=0)
    assert list(customer.cart.items.values_list("product__name", "quantity")) == [("Camisa", 5)]


def test_the_workflow_is_the_one_the_shop_uses():
    assert sorted(LEGAL_MOVES) == sorted(
        [
            ("pending", "confirmed"),
            ("pending", "cancelled"),
            ("confirmed", "shipped"),
            ("confirmed", "cancelled"),
            ("shipped", "delivered"),
        ]
    )


@pytest.mark.parametrize(("start", "target"), LEGAL_MOVES)
def test_legal_moves_are_made_and_recorded(make_product, place, staff_user, start, target):
    order = walk_to(place((make_product(), 1)), start)
    before = order.status_changes.count()

    order = services.set_order_status(
        order_id=order.pk, status=target, changed_by=staff_user, source="admin", note="ok"
    )

    assert Order.objects.get(pk=order.pk).status == target
    last = order.status_changes.last()
    assert order.status_changes.count() == before + 1
    assert (last.from_status, last.to_status, last.changed_by, last.source, last.note) == (
        start,
        target,
        staff_user,
        "admin",
        "ok",
    )


@pytest.mark.parametrize(("start", "target"), ILLEGAL_MOVES)
def test_illegal_moves_are_refused_and_change_nothing(make_product, place, start, target):
    product = make_product(stock=5)
    order = walk_to(place((product, 2)), start)
    stock_before = stock_of(product)
    history_before = order.status_changes.count()

    with pytest.raises(IllegalStatusTransition) as refused:
        services.set_order_status(order_id=order.pk, status=target)

    assert f"#{order.number}" in refused.value.message
    assert Order.objects.get(pk=order.pk).status == start
    assert order.status_changes.count() == history_before
    assert stock_of(product) == stock_before


@pytest.mark.parametrize("cancel_from", [OrderStatus.PENDING, OrderStatus.CONFIRMED])
def test_cancelling_returns_stock_exactly_once(make_product, place, cancel_from):
    shirt, coffee = make_product(stock=5), make_product(stock=5)
    order = walk_to(place((shirt, 2), (coffee, 5)), cancel_from)
    assert (stock_of(shirt), stock_of(coffee)) == (3, 0)

    services.set_order_status(order_id=order.pk, status=OrderStatus.CANCELLED)
    assert (stock_of(shirt), stock_of(coffee)) == (5, 5)

    with pytest.raises(IllegalStatusTransition):
        services.set_order_status(order_id=order.pk, status=OrderStatus.CANCELLED)
    assert (stock_of(shirt), stock_of(coffee)) == (5, 5)


def test_cancelling_after_a_product_was_deleted_returns_the_rest(make_product, place):
    kept, gone = make_product(stock=3), make_product(stock=3)
    order = place((kept, 1), (gone, 1))
    gone.delete()
    services.set_order_status(order_id=order.pk, status=OrderStatus.CANCELLED)
    assert stock_of(kept) == 3
    assert order.lines.count() == 2  # the snapshot stays


def test_status_history_is_append_only(make_product, place):
    order = place((make_product(), 1))
    entry = order.status_changes.get()
    entry.note = "rewritten"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    assert OrderStatusChange.objects.get(pk=entry.pk).note == ""


def test_side_effects_run_only_after_commit(
    make_product, place, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.INFO, logger="shop.services")
    order = place((make_product(), 1))
    with django_capture_on_commit_callbacks(execute=False) as pending:
        services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
    # The dashboard event and the bot's wake-up wait for the commit; the customer's message
    # itself is already in the outbox, written by the same transaction as the change.
    assert len(pending) == 2
    assert "moved from pending to confirmed" not in caplog.text
    assert order.notifications.get().order_status == OrderStatus.CONFIRMED
    for callback in pending:
        callback()
    assert f"order #{order.number} moved from pending to confirmed" in caplog.text


def test_no_side_effect_when_the_transaction_rolls_back(
    make_product, place, django_capture_on_commit_callbacks
):
    order = place((make_product(), 1))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                services.set_order_status(order_id=order.pk, status=OrderStatus.CONFIRMED)
                raise RuntimeError("the caller's transaction fails afterwards")
        except RuntimeError:
            pass
    assert callbacks == []
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_stock_cannot_go_negative_even_bypassing_the_services(make_product):
    product = make_product(stock=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(stock=-1)
    assert stock_of(product) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+55 11 91234-5678", "+5511912345678"),
        ("5511912345678@c.us", "+5511912345678"),
        ("+1 (415) 555-2671", "+14155552671"),
    ],
)
def test_whatsapp_numbers_are_stored_in_e164(raw, expected):
    assert services.get_or_create_customer(whatsapp_phone=raw).whatsapp_phone == expected


def test_one_customer_per_chat_identity():
    first = services.get_or_create_customer(whatsapp_phone="+55 11 91234-5678", name="Maria")
    again = services.get_or_create_customer(whatsapp_phone="5511912345678@c.us", name="Outra")
    tg = services.get_or_create_customer(telegram_id=123456789, name="João")
    assert first.pk == again.pk
    assert again.name == "Maria"
    assert tg.pk != first.pk
    assert services.get_or_create_customer(telegram_id=123456789).pk == tg.pk
    with pytest.raises(InvalidOrder):
        services.get_or_create_customer(whatsapp_phone="123")


def test_the_cart_summary_shows_lines_at_todays_prices(make_product, customer):
    from shop.selectors import cart_summary

    assert cart_summary(customer=customer).is_empty
    shirt = make_product(name="Camisa", price="79.90", stock=2)
    services.add_to_cart(customer=customer, product_id=shirt.pk, quantity=2)
    Product.objects.filter(pk=shirt.pk).update(price=Decimal("69.90"))

    summary = cart_summary(customer=customer)

    assert [(ln.name, ln.quantity, ln.line_total, ln.in_stock) for ln in summary.lines] == [
        ("Camisa", 2, Decimal("139.80"), 2)
    ]
    assert summary.total == Decimal("139.80")
    assert services.remove_from_cart(customer=customer, product_id=shirt.pk) is True
    assert cart_summary(customer=customer).is_empty
