"""The shop's data: catalog, customers, carts and orders with their status history.

Writes go through ``shop.services``; models hold data, constraints and small derived values only.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

E164_VALIDATOR = RegexValidator(
    regex=r"^\+[1-9]\d{7,14}$",
    message=_("Enter the phone number in international format, e.g. +5511912345678."),
)

MONEY = {"max_digits": 12, "decimal_places": 2}


def search_key(text: str) -> str:
    """``text`` as search compares it: lower case, accents dropped, spaces collapsed.

    "Tênis  de CORRIDA" -> "tenis de corrida", so "tenis" finds it on every database.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(plain.split())


class Category(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    position = models.PositiveIntegerField(
        _("position"), default=0, help_text=_("Lower numbers come first in menus.")
    )

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", verbose_name=_("category")
    )
    sku = models.CharField(_("SKU"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(
        _("price (R$)"), **MONEY, validators=[MinValueValidator(Decimal("0.00"))]
    )
    stock = models.PositiveIntegerField(_("stock"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    # Kept by save() (and by bulk writers through search_key); on PostgreSQL a trigram index
    # over it serves typo-tolerant chat search (migration 0002).
    search_name = models.CharField(_("search name"), max_length=200, editable=False, default="")
    image = models.ImageField(_("image"), upload_to="products/", blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [
            # PositiveIntegerField is only a CHECK on some backends; say it for all of them.
            models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_not_negative"),
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative"),
        ]
        indexes = [
            # The catalog page (API and chat): products on sale in name order, a page at a time.
            models.Index(
                fields=["name", "id"], condition=Q(is_active=True), name="product_on_sale_by_name"
            ),
            models.Index(fields=["category", "name", "id"], name="product_by_category_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    def save(self, *args, **kwargs) -> None:
        self.search_name = search_key(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "search_name"}
        super().save(*args, **kwargs)


class Customer(models.Model):
    """A person who buys; one row per chat identity (WhatsApp phone, Telegram id) or API user."""

    whatsapp_phone = models.CharField(
        _("WhatsApp phone"),
        max_length=16,
        unique=True,
        null=True,
        blank=True,
        validators=[E164_VALIDATOR],
        help_text=_("International format (E.164), e.g. +5511912345678."),
    )
    telegram_id = models.BigIntegerField(_("Telegram user id"), unique=True, null=True, blank=True)
    web_chat = models.CharField(
        _("web test chat"),
        max_length=200,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The dashboard's bot simulator chat this customer was created from."),
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="customer",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=150, blank=True)
    delivery_address = models.TextField(_("delivery address"), blank=True)
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("The language the bot speaks with this customer; empty for the shop's."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.CheckConstraint(
                condition=Q(whatsapp_phone__isnull=False)
                | Q(telegram_id__isnull=False)
                | Q(web_chat__isnull=False)
                | Q(user__isnull=False),
                name="customer_has_an_identity",
            ),
        ]

    def __str__(self) -> str:
        identity = self.whatsapp_phone or (
            f"telegram:{self.telegram_id}" if self.telegram_id else None
        )
        identity = identity or (f"web:{self.web_chat}" if self.web_chat else None)
        identity = identity or (self.user.get_username() if self.user_id else "")
        return f"{self.name} ({identity})" if self.name else identity


class Cart(models.Model):
    """A customer's basket, kept in the database: a chat may last days and survive a Redis flush."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, related_name="cart", verbose_name=_("customer")
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("cart")
        verbose_name_plural = _("carts")

    def __str__(self) -> str:
        return str(_("Cart of %(customer)s") % {"customer": self.customer})


class CartItem(models.Model):
    cart = models.ForeignKey(
        Cart, on_delete=models.CASCADE, related_name="items", verbose_name=_("cart")
    )
    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="+", verbose_name=_("product")
    )
    quantity = models.PositiveIntegerField(_("quantity"), validators=[MinValueValidator(1)])
    added_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        ordering = ["added_at", "pk"]
        verbose_name = _("cart item")
        verbose_name_plural = _("cart items")
        constraints = [
            models.UniqueConstraint(fields=["cart", "product"], name="cart_item_unique_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="cart_item_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product.name}"


class Channel(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"
    TELEGRAM = "telegram", "Telegram"
    WEB = "web", _("Web")


class PaymentMethod(models.TextChoices):
    PIX = "pix", "Pix"
    CARD_ON_DELIVERY = "card_on_delivery", _("Card on delivery")
    CASH = "cash", _("Cash")


class OrderStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    CONFIRMED = "confirmed", _("Confirmed")
    SHIPPED = "shipped", _("Shipped")
    DELIVERED = "delivered", _("Delivered")
    CANCELLED = "cancelled", _("Cancelled")


# The whole workflow: a move not listed here is refused everywhere (service, admin, API).
ORDER_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}

# Orders are numbered from here so the first order reads as "#1001", not "#1".
ORDER_NUMBER_OFFSET = 1000


class Order(models.Model):
    number = models.CharField(_("number"), max_length=20, unique=True, null=True, editable=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer")
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    customer_name = models.CharField(_("customer name"), max_length=150, blank=True)
    delivery_address = models.TextField(_("delivery address"))
    payment_method = models.CharField(
        _("payment method"), max_length=20, choices=PaymentMethod.choices
    )
    subtotal = models.DecimalField(_("subtotal (R$)"), **MONEY)
    delivery_fee = models.DecimalField(_("delivery fee (R$)"), **MONEY, default=Decimal("0.00"))
    total = models.DecimalField(_("total (R$)"), **MONEY)
    # The chat message that placed the order ("whatsapp:<chat>:<message id>"): a message delivered
    # twice finds its order instead of placing a second one, even if Redis forgot it.
    source_message = models.CharField(
        _("source message"), max_length=255, unique=True, null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="order_status_known"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        ]
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self) -> str:
        return f"#{self.number}" if self.number else str(_("order (not saved)"))

    def allowed_next_statuses(self) -> frozenset[str]:
        return ORDER_STATUS_TRANSITIONS[self.status]


class OrderLine(models.Model):
    """One product of an order, with its name and price as they were when the order was placed."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order")
    )
    product = models.ForeignKey(
        Product,
        on_delete=models.SET_NULL,
        null=True,
        related_name="order_lines",
        verbose_name=_("product"),
    )
    product_sku = models.CharField(_("SKU"), max_length=40)
    product_name = models.CharField(_("product name"), max_length=200)
    unit_price = models.DecimalField(_("unit price (R$)"), **MONEY)
    quantity = models.PositiveIntegerField(_("quantity"))
    line_total = models.DecimalField(_("line total (R$)"), **MONEY)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="order_line_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_name}"


class AppendOnlyError(Exception):
    """Raised when code tries to rewrite or delete a row of an append-only history."""


class OrderStatusChange(models.Model):
    """Append-only history of an order's status: who moved it, from where to where, and when."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="status_changes", verbose_name=_("order")
    )
    from_status = models.CharField(
        _("from"), max_length=16, choices=OrderStatus.choices, blank=True
    )
    to_status = models.CharField(_("to"), max_length=16, choices=OrderStatus.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )
    source = models.CharField(
        _("source"),
        max_length=40,
        help_text=_("Where the change came from: admin, api, whatsapp, telegram, web, system."),
    )
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("status change")
        verbose_name_plural = _("status history")

    def __str__(self) -> str:
        return f"{self.order}: {self.from_status or '∅'} → {self.to_status}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Order status history is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Order status history is append-only.")


class CustomerNotification(models.Model):
    """The outbox: a message the customer is owed in their chat, written with the change it tells.

    Written in the same transaction as the status change, so a committed change always has its
    message and a rolled-back one never does. The bot of ``channel`` claims rows for a short
    lease, sends them and marks them delivered: at least once, and once per (order, status).
    """

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("customer")
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("order")
    )
    order_status = models.CharField(_("order status"), max_length=16, choices=OrderStatus.choices)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    leased_until = models.DateTimeField(_("being sent until"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("customer notification")
        verbose_name_plural = _("customer notifications")
        constraints = [
            models.UniqueConstraint(
                fields=["order", "order_status"], name="one_notification_per_order_status"
            ),
        ]
        indexes = [
            models.Index(
                fields=["channel", "created_at"],
                condition=Q(delivered_at__isnull=True),
                name="notification_undelivered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order} → {self.get_order_status_display()}"
