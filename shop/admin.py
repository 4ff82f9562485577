"""The shop owner's back office. Order statuses move only through ``set_order_status``."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ImportExportModelAdmin

from shop.errors import IllegalStatusTransition
from shop.models import (
    Cart,
    CartItem,
    Category,
    Customer,
    CustomerNotification,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
)
from shop.resources import ProductResource
from shop.services import set_order_status


class ReadOnlyInline(admin.TabularInline):
    """Snapshots and history: shown, never edited, added or removed by hand."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "position"]
    list_editable = ["position"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Product)
class ProductAdmin(ImportExportModelAdmin):
    resource_classes = [ProductResource]
    list_display = ["name", "sku", "category", "price", "stock", "is_active"]
    list_editable = ["price", "stock"]
    list_filter = ["category", "is_active"]
    list_select_related = ["category"]
    search_fields = ["name", "sku"]
    list_per_page = 50
    actions = ["activate", "deactivate"]
    readonly_fields = ["created_at", "updated_at"]
    # Prices typed as the owner writes them ("12,50" in Portuguese).
    formfield_overrides = {models.DecimalField: {"localize": True}}

    @admin.action(description=_("Activate selected products"))
    def activate(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        count = queryset.update(is_active=True)
        self.message_user(
            request,
            ngettext("%(count)d product activated.", "%(count)d products activated.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate selected products"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        count = queryset.update(is_active=False)
        self.message_user(
            request,
            ngettext("%(count)d product deactivated.", "%(count)d products deactivated.", count)
            % {"count": count},
            messages.SUCCESS,
        )


class CustomerOrderInline(ReadOnlyInline):
    model = Order
    fields = ["order_link", "status", "channel", "total", "created_at"]
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = _("orders")

    @admin.display(description=_("order"))
    def order_link(self, order: Order) -> str:
        url = reverse("admin:shop_order_change", args=[order.pk])
        return format_html('<a href="{}">#{}</a>', url, order.number)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["__str__", "whatsapp_phone", "telegram_id", "web_chat", "user", "created_at"]
    list_filter = ["language"]
    search_fields = ["name", "whatsapp_phone", "telegram_id", "web_chat", "user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]
    inlines = [CustomerOrderInline]


class CartItemInline(admin.TabularInline):
    model = CartItem
    extra = 0
    raw_id_fields = ["product"]


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ["customer", "updated_at"]
    search_fields = ["customer__name", "customer__whatsapp_phone"]
    raw_id_fields = ["customer"]
    list_select_related = ["customer", "customer__user"]
    inlines = [CartItemInline]


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["product_sku", "product_name", "unit_price", "quantity", "line_total"]
    readonly_fields = fields


class OrderStatusChangeInline(ReadOnlyInline):
    model = OrderStatusChange
    fields = ["created_at", "from_status", "to_status", "changed_by", "source", "note"]
    readonly_fields = fields


class CustomerNotificationInline(ReadOnlyInline):
    """What the customer was told in their chat about this order, and whether it went out."""

    model = CustomerNotification
    fields = ["created_at", "order_status", "channel", "delivered_at", "attempts", "last_error"]
    readonly_fields = fields


def _status_action(target: str, description: str):
    def move(modeladmin: OrderAdmin, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        moved, refused = 0, []
        for order_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                set_order_status(
                    order_id=order_id, status=target, changed_by=request.user, source="admin"
                )
                moved += 1
            except IllegalStatusTransition as exc:
                refused.append(exc.message)
        if moved:
            modeladmin.message_user(
                request,
                ngettext("%(count)d order updated.", "%(count)d orders updated.", moved)
                % {"count": moved},
                messages.SUCCESS,
            )
        for message in refused:
            modeladmin.message_user(request, message, messages.ERROR)

    move.__name__ = f"mark_{target}"
    return admin.action(description=description)(move)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "customer",
        "channel",
        "status",
        "payment_method",
        "total",
        "created_at",
    ]
    list_filter = ["status", "channel", "payment_method", "created_at"]
    list_select_related = ["customer", "customer__user"]
    date_hierarchy = "created_at"
    search_fields = ["number", "customer__whatsapp_phone", "customer__name", "customer_name"]
    inlines = [OrderLineInline, OrderStatusChangeInline, CustomerNotificationInline]
    # Orders come from the chats and the API; here they are moved along, not written by hand.
    readonly_fields = [
        "number",
        "customer",
        "channel",
        "status",
        "customer_name",
        "payment_method",
        "subtotal",
        "delivery_fee",
        "total",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields[:6], "delivery_address", *readonly_fields[6:]]
    actions = [
        _status_action(OrderStatus.CONFIRMED, _("Confirm selected orders")),
        _status_action(OrderStatus.SHIPPED, _("Mark selected orders as shipped")),
        _status_action(OrderStatus.DELIVERED, _("Mark selected orders as delivered")),
        _status_action(OrderStatus.CANCELLED, _("Cancel selected orders (stock returns)")),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(CustomerNotification)
class CustomerNotificationAdmin(admin.ModelAdmin):
    """The outbox, read-only: a message not delivered yet waits for its channel's bot."""

    list_display = [
        "order",
        "order_status",
        "channel",
        "customer",
        "created_at",
        "delivered_at",
        "attempts",
        "last_error",
    ]
    list_filter = ["channel", "order_status", ("delivered_at", admin.EmptyFieldListFilter)]
    list_select_related = ["order", "customer", "customer__user"]
    search_fields = ["order__number", "customer__name", "customer__whatsapp_phone"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
