"""The shop's reads for its API, admin and bots, each a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.postgres.lookups import TrigramWordSimilar
from django.contrib.postgres.search import TrigramWordSimilarity
from django.db import connection
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Value

from shop.models import CartItem, Category, Customer, Order, OrderLine, Product, search_key

MAX_SEARCH_CHARS = 100


def categories_with_active_products() -> QuerySet[Category]:
    # EXISTS stops at a category's first product on sale (an index probe); a join + DISTINCT
    # walked the whole catalog (5 ms at 10,000 products).
    on_sale = Product.objects.filter(category=OuterRef("pk"), is_active=True)
    return Category.objects.filter(Exists(on_sale))


def active_products(*, category: Category | None = None, text: str = "") -> QuerySet[Product]:
    """Products on sale with their category (one query); optional category and text filter."""
    products = Product.objects.filter(is_active=True).select_related("category")
    if category is not None:
        products = products.filter(category=category)
    return matching_text(products, text=text)


def matching_text(products: QuerySet[Product], *, text: str) -> QuerySet[Product]:
    """Products whose name, SKU or description holds every word of ``text``."""
    for word in text.split():
        products = products.filter(
            Q(name__icontains=word) | Q(sku__iexact=word) | Q(description__icontains=word)
        )
    return products


def search_products(*, text: str, limit: int = 8) -> list[Product]:
    """Products on sale whose name is like ``text``, best match first.

    Case, accents and a typo or two don't matter: "camisa azl" finds "Camisa Azul". On PostgreSQL
    pg_trgm ranks by word similarity over the trigram index; elsewhere (the embedded SQLite) the
    same measure is computed in Python over the active catalog, which suits a shop of thousands.
    """
    query = search_key(text)[:MAX_SEARCH_CHARS]
    if not _trigrams(query):
        return []
    products = Product.objects.filter(is_active=True)
    if connection.vendor == "postgresql":
        # The ">=" threshold is the connection's pg_trgm.word_similarity_threshold (settings).
        return list(
            products.filter(TrigramWordSimilar(F("search_name"), Value(query)))
            .annotate(similarity=TrigramWordSimilarity(Value(query), "search_name"))
            .order_by("-similarity", "name", "pk")[:limit]
        )
    wanted = _trigrams(query)
    scored = []
    for pk, name, key in products.values_list("pk", "name", "search_name"):
        similarity = len(wanted & _trigrams(key)) / len(wanted)
        if similarity >= settings.SEARCH_MIN_SIMILARITY:
            scored.append((-similarity, name, pk))
    best = [pk for _score, _name, pk in sorted(scored)[:limit]]
    found = Product.objects.in_bulk(best)
    return [found[pk] for pk in best]


def _trigrams(text: str) -> set[str]:
    """pg_trgm's trigrams: each alphanumeric word padded with two spaces before, one after."""
    grams: set[str] = set()
    for word in "".join(c if c.isalnum() else " " for c in text).split():
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def orders_visible_to(*, user: AbstractBaseUser) -> QuerySet[Order]:
    """Staff see every order; anyone else only the orders of their own customer record."""
    orders = Order.objects.select_related("customer").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
    )
    if user.is_staff:
        return orders
    return orders.filter(customer__user=user)


def recent_orders(*, customer: Customer, limit: int = 5) -> list[Order]:
    return list(Order.objects.filter(customer=customer).order_by("-created_at", "-pk")[:limit])


@dataclass(frozen=True)
class CartLine:
    product_id: int
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal
    in_stock: int


@dataclass(frozen=True)
class CartSummary:
    lines: list[CartLine]
    total: Decimal

    @property
    def is_empty(self) -> bool:
        return not self.lines


def cart_summary(*, customer: Customer) -> CartSummary:
    """The customer's cart at today's prices (a cart is not a quote; the order snapshots prices)."""
    rows = (
        CartItem.objects.filter(cart__customer=customer)
        .order_by("added_at", "pk")
        .values_list("product_id", "product__name", "product__price", "quantity", "product__stock")
    )
    lines = [
        CartLine(
            product_id=product_id,
            name=name,
            unit_price=price,
            quantity=quantity,
            line_total=price * quantity,
            in_stock=stock,
        )
        for product_id, name, price, quantity, stock in rows
    ]
    return CartSummary(lines=lines, total=sum((line.line_total for line in lines), Decimal("0.00")))
