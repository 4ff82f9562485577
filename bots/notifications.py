"""The words of the outbox: what a customer reads when their order moves, and in which chat."""

from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from shop.models import Channel, CustomerNotification, OrderStatus

STATUS_MESSAGES = {
    OrderStatus.PENDING: _("⏳ Your order #%(number)s is waiting for confirmation."),
    OrderStatus.CONFIRMED: _(
        "✅ Your order #%(number)s was confirmed! We are getting your products ready."
    ),
    OrderStatus.SHIPPED: _("🚚 Your order #%(number)s was shipped! It is on its way."),
    OrderStatus.DELIVERED: _(
        "📦 Your order #%(number)s was delivered. Thank you for shopping with us! 💚"
    ),
    OrderStatus.CANCELLED: _(
        "❌ Your order #%(number)s was cancelled. Questions? Reply *atendente* to talk to us."
    ),
}


def notification_text(notification: CustomerNotification) -> str:
    """The message, in the customer's language (``select_related`` the customer and order)."""
    language = notification.customer.language or settings.BOT_LANGUAGE
    with translation.override(language):
        return str(STATUS_MESSAGES[notification.order_status]) % {
            "number": notification.order.number
        }


def notification_chat(notification: CustomerNotification) -> str:
    """The chat id the bot of the notification's channel knows the customer by."""
    customer = notification.customer
    if notification.channel == Channel.WHATSAPP:
        return customer.whatsapp_phone or ""
    if notification.channel == Channel.TELEGRAM:
        return str(customer.telegram_id or "")
    return customer.web_chat or ""
