"""Every write the shop makes: customers, carts, orders and their status workflow.

Each operation is one transaction. Rows that several checkouts compete for (products) are locked
with ``select_for_update`` in primary-key order, so two checkouts never wait on each other in a
circle, and stock moves with ``F()`` expressions. The customer's notification of a status change is
written to the outbox in the same transaction; dashboard events and the bot's wake-up call run only
after the transaction commits.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, PositiveIntegerField, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from realtime.events import publish_order_event, wake_outbox
from shop.errors import (
    IllegalStatusTransition,
    InsufficientStock,
    InvalidOrder,
    ProductUnavailable,
    Shortage,
)
from shop.models import (
    ORDER_NUMBER_OFFSET,
    ORDER_STATUS_TRANSITIONS,
    Cart,
    CartItem,
    Channel,
    Customer,
    CustomerNotification,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
)

logger = logging.getLogger(__name__)

MAX_QUANTITY_PER_LINE = 999


@dataclass(frozen=True)
class OrderItem:
    """One product and how many of it a customer asks for."""

    product_id: int
    quantity: int


# --- Customers ---------------------------------------------------------------------------------


def normalize_whatsapp_phone(raw: str) -> str:
    """What a phone or WhatsApp shows ("+55 11 91234-5678", "5511912345678@c.us") as E.164."""
    digits = re.sub(r"\D", "", raw.split("@", 1)[0])
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        raise InvalidOrder(_("%(phone)s is not a valid phone number.") % {"phone": raw})
    return f"+{digits}"


def get_or_create_customer(
    *,
    whatsapp_phone: str | None = None,
    telegram_id: int | None = None,
    web_chat: str | None = None,
    user: AbstractBaseUser | None = None,
    name: str = "",
) -> Customer:
    """The one customer behind a chat identity or an API user, created on first contact."""
    if whatsapp_phone:
        lookup = {"whatsapp_phone": normalize_whatsapp_phone(whatsapp_phone)}
    elif telegram_id is not None:
        lookup = {"telegram_id": int(telegram_id)}
    elif web_chat:
        lookup = {"web_chat": web_chat[:200]}
    elif user is not None:
        lookup = {"user": user}
    else:
        raise ValueError("A customer needs a WhatsApp phone, a Telegram id, a web chat or a user.")
    name = " ".join(name.split())[:150]
    try:
        customer, created = Customer.objects.get_or_create(**lookup, defaults={"name": name})
    except IntegrityError:
        # Two first messages of one new customer at once (two bots, two servers): the other
        # one created the row between our lookup and our insert.
        customer, created = Customer.objects.get(**lookup), False
    if not created and name and not customer.name:
        customer.name = name
        customer.save(update_fields=["name"])
    return customer


def update_customer_details(
    *,
    customer: Customer,
    name: str | None = None,
    delivery_address: str | None = None,
    language: str | None = None,
) -> Customer:
    """Keep what a customer told the bot (name, address, language) for their next orders."""
    changed = []
    if name is not None:
        customer.name = " ".join(name.split())[:150]
        changed.append("name")
    if delivery_address is not None:
        customer.delivery_address = delivery_address.strip()[:500]
        changed.append("delivery_address")
    if language is not None:
        customer.language = language
        changed.append("language")
    if changed:
        customer.save(update_fields=changed)
    return customer


def register_user(*, username: str, password: str, email: str = "", name: str = "") -> Customer:
    """A shopper signing up through the API: a Django user and the customer that buys as them."""
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.create_user(username=username, email=email, password=password)
        if name:
            user.first_name = name[:150]
            user.save(update_fields=["first_name"])
        return Customer.objects.create(user=user, name=name[:150])


# --- Carts -------------------------------------------------------------------------------------


def _check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY_PER_LINE:
        raise InvalidOrder(
            _("The quantity must be between 1 and %(max)d.") % {"max": MAX_QUANTITY_PER_LINE}
        )


def _sellable_product(product_id: int) -> Product:
    product = Product.objects.filter(pk=product_id, is_active=True).first()
    if product is None:
        raise ProductUnavailable([product_id])
    return product


# One statement adds to a line or creates it, for a product on sale only (PostgreSQL, and SQLite
# >= 3.35): two adds of the same product at once both count, no transaction is held across round
# trips, and a line never goes over the per-line limit. No row back: refused (which, says a
# second look).
_ITEM, _PRODUCT, _CART = CartItem._meta.db_table, Product._meta.db_table, Cart._meta.db_table
_ADD_TO_CART_SQL = f"""
INSERT INTO {_ITEM} (cart_id, product_id, quantity, added_at)
SELECT %s, id, %s, %s FROM {_PRODUCT} WHERE id = %s AND is_active
ON CONFLICT (cart_id, product_id) DO UPDATE
    SET quantity = {_ITEM}.quantity + excluded.quantity
    WHERE {_ITEM}.quantity + excluded.quantity <= %s
RETURNING quantity
"""
_TOUCH_CART_SQL = f"UPDATE {_CART} SET updated_at = %s WHERE customer_id = %s RETURNING id"


def add_to_cart(*, customer: Customer, product_id: int, quantity: int = 1) -> int:
    """Add units of a product to the customer's cart (adds to what is already there).

    Returns the line's new quantity. Two statements in the usual case: this is the chat's
    busiest write.
    """
    _check_quantity(quantity)
    cart_id = _touched_cart_id(customer)
    with connection.cursor() as cursor:
        cursor.execute(
            _ADD_TO_CART_SQL,
            [cart_id, quantity, timezone.now(), product_id, MAX_QUANTITY_PER_LINE],
        )
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    if not Product.objects.filter(pk=product_id, is_active=True).exists():
        raise ProductUnavailable([product_id])
    raise InvalidOrder(  # the line would go over the limit
        _("The quantity must be between 1 and %(max)d.") % {"max": MAX_QUANTITY_PER_LINE}
    )


def _touched_cart_id(customer: Customer) -> int:
    """The customer's cart, its ``updated_at`` now; created on the first add."""
    with connection.cursor() as cursor:
        cursor.execute(_TOUCH_CART_SQL, [timezone.now(), customer.pk])
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    try:
        with transaction.atomic():
            return Cart.objects.create(customer=customer).pk
    except IntegrityError:  # created by a concurrent first add
        return Cart.objects.get(customer=customer).pk


def set_cart_quantity(*, customer: Customer, product_id: int, quantity: int) -> CartItem | None:
    """Set a cart line to an exact quantity (0 removes it); returns the line, if one is left."""
    if quantity == 0:
        remove_from_cart(customer=customer, product_id=product_id)
        return None
    _check_quantity(quantity)
    with transaction.atomic():
        product = _sellable_product(product_id)
        cart, _created = Cart.objects.get_or_create(customer=customer)
        item, _created = CartItem.objects.update_or_create(
            cart=cart, product=product, defaults={"quantity": quantity}
        )
        cart.save(update_fields=["updated_at"])
        return item


def remove_from_cart(*, customer: Customer, product_id: int) -> bool:
    """Remove a product from the cart; tells whether there was such a line."""
    deleted, _detail = CartItem.objects.filter(
        cart__customer=customer, product_id=product_id
    ).delete()
    return deleted > 0


def clear_cart(*, customer: Customer) -> int:
    deleted, _detail = CartItem.objects.filter(cart__customer=customer).delete()
    return deleted


# --- Orders ------------------------------------------------------------------------------------


def _merge_items(items: Iterable[OrderItem]) -> dict[int, int]:
    """Sum quantities per product, so a product listed twice is locked and checked once."""
    merged: Counter[int] = Counter()
    for item in items:
        _check_quantity(item.quantity)
        merged[int(item.product_id)] += item.quantity
    if not merged:
        raise InvalidOrder(_("An order needs at least one product."))
    return dict(merged)


def place_order(
    *,
    customer: Customer,
    items: Iterable[OrderItem],
    channel: str,
    payment_method: str,
    delivery_address: str | None = None,
    placed_by: AbstractBaseUser | None = None,
    source_message: str | None = None,
) -> Order:
    """Create a pending order and take its units out of stock, all or nothing.

    Refuses with ``InsufficientStock`` naming every product short of stock, or
    ``ProductUnavailable`` for products that do not exist or are not for sale. ``source_message``
    names the chat message that asked for it; the database refuses a second order for it.
    """
    quantities = _merge_items(items)
    address = (delivery_address or customer.delivery_address or "").strip()
    if not address:
        raise InvalidOrder(_("A delivery address is needed to place the order."))

    with transaction.atomic():
        products = list(
            Product.objects.select_for_update().filter(pk__in=quantities).order_by("pk")
        )
        found = {product.pk: product for product in products}
        unavailable = sorted(pk for pk in quantities if pk not in found or not found[pk].is_active)
        if unavailable:
            raise ProductUnavailable(unavailable)
        shortages = [
            Shortage(
                product_id=product.pk,
                sku=product.sku,
                name=product.name,
                requested=quantities[product.pk],
                available=product.stock,
            )
            for product in products
            if product.stock < quantities[product.pk]
        ]
        if shortages:
            raise InsufficientStock(shortages)

        # One statement for every product's stock: -n each, by primary key.
        Product.objects.filter(pk__in=quantities).update(
            stock=F("stock")
            - Case(
                *(When(pk=pk, then=Value(quantity)) for pk, quantity in quantities.items()),
                output_field=PositiveIntegerField(),
            )
        )

        lines = [
            OrderLine(
                product=product,
                product_sku=product.sku,
                product_name=product.name,
                unit_price=product.price,
                quantity=quantities[product.pk],
                line_total=product.price * quantities[product.pk],
            )
            for product in products
        ]
        subtotal = sum((line.line_total for line in lines), Decimal("0.00"))
        delivery_fee = Decimal(settings.SHOP_DELIVERY_FEE)
        order = Order.objects.create(
            customer=customer,
            channel=channel,
            customer_name=customer.name,
            delivery_address=address,
            payment_method=payment_method,
            subtotal=subtotal,
            delivery_fee=delivery_fee,
            total=subtotal + delivery_fee,
            source_message=source_message or None,
        )
        order.number = str(ORDER_NUMBER_OFFSET + order.pk)
        order.save(update_fields=["number"])
        for line in lines:
            line.order = order
        OrderLine.objects.bulk_create(lines)
        OrderStatusChange.objects.create(
            order=order,
            from_status="",
            to_status=OrderStatus.PENDING,
            changed_by=placed_by,
            source=channel,
        )
        transaction.on_commit(lambda: _order_placed(order))
    return order


def place_order_once(*, source_message: str, **order: Any) -> tuple[Order, bool]:
    """``place_order`` for a request that may come again (``source_message`` names it): the
    order, and whether this call placed it. A retry, even one racing the first attempt, gets
    the order that attempt placed, never a second one."""
    placed = Order.objects.filter(source_message=source_message).first()
    if placed is not None:
        return placed, False
    try:
        return place_order(source_message=source_message, **order), True
    except IntegrityError:
        placed = Order.objects.filter(source_message=source_message).first()
        if placed is None:
            raise
        return placed, False


def checkout_cart(
    *,
    customer: Customer,
    channel: str,
    payment_method: str,
    delivery_address: str | None = None,
    source_message: str | None = None,
) -> Order:
    """Turn the customer's cart into an order and empty the cart, in one transaction.

    With ``source_message`` it is idempotent: the same message again returns the order it placed.
    """
    if source_message:
        placed = Order.objects.filter(source_message=source_message).first()
        if placed is not None:
            return placed
    try:
        return _checkout_cart(
            customer=customer,
            channel=channel,
            payment_method=payment_method,
            delivery_address=delivery_address,
            source_message=source_message,
        )
    except IntegrityError:
        placed = source_message and Order.objects.filter(source_message=source_message).first()
        if placed:
            return placed
        raise


def _checkout_cart(
    *,
    customer: Customer,
    channel: str,
    payment_method: str,
    delivery_address: str | None,
    source_message: str | None,
) -> Order:
    with transaction.atomic():
        # Lock the cart so a double-tapped "confirm" cannot turn one cart into two orders.
        Cart.objects.select_for_update().filter(customer=customer).first()
        items = [
            OrderItem(product_id=product_id, quantity=quantity)
            for product_id, quantity in CartItem.objects.filter(
                cart__customer=customer
            ).values_list("product_id", "quantity")
        ]
        if not items:
            raise InvalidOrder(_("Your cart is empty."))
        order = place_order(
            customer=customer,
            items=items,
            channel=channel,
            payment_method=payment_method,
            delivery_address=delivery_address,
            source_message=source_message,
        )
        clear_cart(customer=customer)
    return order


def set_order_status(
    *,
    order_id: int,
    status: str,
    changed_by: AbstractBaseUser | None = None,
    source: str = "system",
    note: str = "",
) -> Order:
    """Move an order along the workflow, or refuse with ``IllegalStatusTransition``.

    Cancelling puts the order's units back in stock; because the order row is locked and
    ``cancelled`` is final, that happens exactly once however many cancels race.
    """
    with transaction.atomic():
        order = (
            Order.objects.select_related("customer", "customer__user")
            .select_for_update(of=("self",))
            .get(pk=order_id)
        )
        previous = order.status
        if status not in ORDER_STATUS_TRANSITIONS.get(previous, frozenset()):
            raise IllegalStatusTransition(
                order_number=order.number, from_status=previous, to_status=status
            )
        if status == OrderStatus.CANCELLED:
            _return_stock(order)
        order.status = status
        order.save(update_fields=["status", "updated_at"])
        OrderStatusChange.objects.create(
            order=order,
            from_status=previous,
            to_status=status,
            changed_by=changed_by,
            source=source,
            note=note[:255],
        )
        notification = _queue_status_notification(order)
        transaction.on_commit(lambda: _order_status_changed(order, from_status=previous))
        if notification is not None:
            transaction.on_commit(lambda: wake_outbox(notification.channel))
    return order


# The identity a customer needs for a message in each channel.
_CHANNEL_IDENTITY = {
    Channel.WHATSAPP: "whatsapp_phone",
    Channel.TELEGRAM: "telegram_id",
    Channel.WEB: "web_chat",
}


def _queue_status_notification(order: Order) -> CustomerNotification | None:
    """Put "your order moved" in the outbox of the channel the customer ordered through.

    An API shopper has no chat to be told in; a status already told is not told twice.
    """
    identity = _CHANNEL_IDENTITY.get(order.channel)
    if identity is None or not getattr(order.customer, identity):
        return None
    notification, created = CustomerNotification.objects.get_or_create(
        order=order,
        order_status=order.status,
        defaults={"customer": order.customer, "channel": order.channel},
    )
    return notification if created else None


# --- The notification outbox -------------------------------------------------------------------

NOTIFICATION_LEASE = timedelta(seconds=60)


def claim_notifications(
    *, channel: str, limit: int = 20, lease: timedelta = NOTIFICATION_LEASE
) -> list[CustomerNotification]:
    """Take up to ``limit`` undelivered notifications of ``channel`` for ``lease``, oldest first.

    Rows another bot holds are skipped, not waited for; a bot that dies while sending leaves
    its rows to be claimed again once the lease runs out (at least once).
    """
    now = timezone.now()
    with transaction.atomic():
        claimed = list(
            CustomerNotification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("customer", "order")
            .filter(channel=channel, delivered_at__isnull=True)
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
            .order_by("created_at", "pk")[:limit]
        )
        if claimed:
            CustomerNotification.objects.filter(pk__in=[n.pk for n in claimed]).update(
                leased_until=now + lease, attempts=F("attempts") + 1
            )
    return claimed


def mark_notification_delivered(*, notification_id: int) -> None:
    CustomerNotification.objects.filter(pk=notification_id, delivered_at__isnull=True).update(
        delivered_at=timezone.now(), leased_until=None, last_error=""
    )


def release_notification(*, notification_id: int, error: str) -> None:
    """A send failed: give the row back now, so the next drain tries again."""
    CustomerNotification.objects.filter(pk=notification_id, delivered_at__isnull=True).update(
        leased_until=None, last_error=error[:255]
    )


def _return_stock(order: Order) -> None:
    returned: Counter[int] = Counter()
    for product_id, quantity in order.lines.filter(product__isnull=False).values_list(
        "product_id", "quantity"
    ):
        returned[product_id] += quantity
    # Same lock order as place_order: primary key.
    locked = Product.objects.select_for_update().filter(pk__in=returned).order_by("pk")
    for product_id in locked.values_list("pk", flat=True):
        Product.objects.filter(pk=product_id).update(stock=F("stock") + returned[product_id])


# --- After-commit side effects -----------------------------------------------------------------
# Called only once the order is durably stored, with the order as it was committed.


def _order_placed(order: Order) -> None:
    logger.info("order #%s placed (id %s)", order.number, order.pk)
    _publish_order("order_created", order)


def _order_status_changed(order: Order, *, from_status: str) -> None:
    logger.info(
        "order #%s moved from %s to %s (id %s)", order.number, from_status, order.status, order.pk
    )
    _publish_order("order_status_changed", order)


def _publish_order(event: str, order: Order) -> None:
    publish_order_event(
        event,
        order_id=order.pk,
        number=order.number,
        status=order.status,
        total=order.total,
        customer=order.customer_name or str(order.customer),  # customer fetched with the order
    )
