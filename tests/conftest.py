"""Fixtures shared by the suite: a small catalog, customers, users and API clients.

Everything is real: the database of DATABASE_URL (SQLite file by default, PostgreSQL in CI) and
the Redis of REDIS_URL (a private one is started when none answers on this machine).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from marketplace.local_redis import ensure_redis
from shop import services
from shop.models import (
    ORDER_STATUS_TRANSITIONS,
    Category,
    Customer,
    Order,
    OrderStatus,
    PaymentMethod,
    Product,
)

_sku_counter = itertools.count(1)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The REDIS_URL of the settings, answering (a private server is started when needed)."""
    private = ensure_redis(settings.REDIS_URL)
    yield settings.REDIS_URL
    if private is not None:
        private.terminate()
        private.wait(timeout=10)


@pytest.fixture
def fresh_chats(redis_url) -> Iterator[None]:
    """No chat state, service status or bot bookkeeping left in Redis by an earlier test (the
    test database starts empty; this keeps Redis in step with it)."""
    import redis

    from realtime.status import KEY_PREFIX
    from tests.bots_support import forget_all_chats

    client = redis.Redis.from_url(redis_url)

    def forget() -> None:
        forget_all_chats()
        patterns = (f"{KEY_PREFIX}*", "marketplace:telegram:*", "marketplace:whatsapp:*")
        keys = [key for pattern in patterns for key in client.keys(pattern)]
        if keys:
            client.delete(*keys)

    forget()
    yield
    forget()


@pytest.fixture
def category(db) -> Category:
    return Category.objects.create(name="Roupas", slug="roupas")


@pytest.fixture
def make_product(db, category: Category) -> Callable[..., Product]:
    def make(
        *,
        name: str | None = None,
        price: str = "10.00",
        stock: int = 10,
        is_active: bool = True,
        category_: Category | None = None,
    ) -> Product:
        number = next(_sku_counter)
        return Product.objects.create(
            category=category_ or category,
            sku=f"SKU-{number:05d}",
            name=name or f"Produto {number}",
            price=Decimal(price),
            stock=stock,
            is_active=is_active,
        )

    return make


@pytest.fixture
def customer(db) -> Customer:
    return services.get_or_create_customer(whatsapp_phone="+5511912345678", name="Maria Souza")


@pytest.fixture
def place(customer: Customer) -> Callable[..., object]:
    """Place an order for ``customer`` from (product, quantity) pairs."""

    def place_(*pairs: tuple[Product, int], who: Customer | None = None, **kwargs):
        return services.place_order(
            customer=who or customer,
            items=[services.OrderItem(product_id=p.pk, quantity=q) for p, q in pairs],
            channel=kwargs.pop("channel", "whatsapp"),
            payment_method=kwargs.pop("payment_method", PaymentMethod.PIX),
            delivery_address=kwargs.pop("delivery_address", "Rua das Flores, 10, São Paulo"),
            **kwargs,
        )

    return place_


@pytest.fixture
def password() -> str:
    return "uma-senha-bem-forte-42"


@pytest.fixture
def make_user(db, password: str):
    def make(username: str, *, staff: bool = False, superuser: bool = False):
        user_model = get_user_model()
        if superuser:
            return user_model.objects.create_superuser(username=username, password=password)
        return user_model.objects.create_user(username=username, password=password, is_staff=staff)

    return make


@pytest.fixture
def staff_user(make_user):
    return make_user("gerente", superuser=True)


@pytest.fixture
def staff_token(staff_user) -> str:
    """A JWT access token of a staff user, as the dashboard sends to join a room."""
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(staff_user))


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def client_for(user) -> APIClient:
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


ALL_MOVES = list(itertools.product(OrderStatus.values, OrderStatus.values))
LEGAL_MOVES = [(a, b) for a, b in ALL_MOVES if b in ORDER_STATUS_TRANSITIONS[a]]
ILLEGAL_MOVES = [(a, b) for a, b in ALL_MOVES if b not in ORDER_STATUS_TRANSITIONS[a]]


def walk_to(order: Order, target: str) -> Order:
    """Take a fresh order to ``target`` through legal moves."""
    path = {
        OrderStatus.PENDING: [],
        OrderStatus.CONFIRMED: [OrderStatus.CONFIRMED],
        OrderStatus.SHIPPED: [OrderStatus.CONFIRMED, OrderStatus.SHIPPED],
        OrderStatus.DELIVERED: [OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED],
        OrderStatus.CANCELLED: [OrderStatus.CANCELLED],
    }[target]
    for status in path:
        order = services.set_order_status(order_id=order.pk, status=status)
    return order
