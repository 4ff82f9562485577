"""Events that the shop puts in the dashboard's rooms (called after the database commits)."""

from __future__ import annotations

import logging
from decimal import Decimal

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime.groups import ORDERS_GROUP, bot_group, room_event

logger = logging.getLogger(__name__)


def publish_order_event(
    event: str, *, order_id: int, number: str, status: str, total: Decimal, customer: str
) -> None:
    """``order_created`` / ``order_status_changed`` to the ``Orders`` room.

    The order is already committed: a dashboard that misses this (Redis down) loses a live
    update, not data, so a failure is logged, never raised into the shop's operation.
    """
    data = {
        "id": order_id,
        "number": number,
        "status": status,
        "total": f"{total:.2f}",
        "customer": customer,
    }
    try:
        async_to_sync(get_channel_layer().group_send)(ORDERS_GROUP, room_event(event, data))
    except Exception:
        logger.exception("could not publish %s for order #%s", event, number)


# The service a bot of each order channel reports as (realtime.status), "Web" for the simulator.
CHANNEL_SERVICES = {"whatsapp": "WhatsApp", "telegram": "Telegram", "web": "Web"}
DRAIN_OUTBOX = "drain_outbox"


def wake_outbox(channel: str) -> None:
    """Tell the running bot of ``channel`` that its outbox has a new message.

    Only a nudge: a bot also drains when it starts and every few seconds, so a nudge lost while
    Redis is away delays a message, never loses it.
    """
    try:
        async_to_sync(get_channel_layer().group_send)(
            bot_group(CHANNEL_SERVICES[channel]),
            {"type": "bot.command", "command": DRAIN_OUTBOX, "data": {}},
        )
    except Exception:
        logger.warning("could not wake the %s bot for its outbox", channel, exc_info=True)
