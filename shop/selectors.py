"""The shop's reads for its API, admin and bots, each a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Prefetch, Q, QuerySet

from shop.models import CartItem, Category, Customer, Order, OrderLine, Product


def categories_with_active_products() -> QuerySet[Category]:
    return Category.objects.filter(products__is_active=True).distinct()


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


def orders_visible_to(*, user: AbstractBaseUser) -> QuerySet[Order]:
    """Staff see every order; anyone else only the orders of their own customer record."""
    orders = Order.objects.select_related("customer").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
    )
    if user.is_staff:
        return orders
    return orders.filter(customer__user=user)


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
    items = CartItem.objects.filter(cart__customer=customer).select_related("product")
    lines = [
        CartLine(
            product_id=item.product_id,
            name=item.product.name,
            unit_price=item.product.price,
            quantity=item.quantity,
            line_total=item.product.price * item.quantity,
            in_stock=item.product.stock,
        )
        for item in items
    ]
    return CartSummary(lines=lines, total=sum((line.line_total for line in lines), Decimal("0.00")))
