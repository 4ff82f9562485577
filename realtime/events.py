"""Events that the shop puts in the dashboard's rooms (called after the database commits)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from decimal import Decimal
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from bots.chat import SERVICE_CHANNELS
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
        group_send_from_sync(ORDERS_GROUP, room_event(event, data))
    except Exception:
        logger.exception("could not publish %s for order #%s", event, number)


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
SEND_TIMEOUT_S = 10


def group_send_from_sync(group: str, message: dict[str, Any]) -> None:
    """``group_send`` from sync code, on an event loop that lives on.

    A sync view under the ASGI server or a bot's worker thread has its caller's loop, which
    ``async_to_sync`` uses. A plain sync process (a shell, a test, a benchmark) has none, and
    ``async_to_sync`` would build a new loop, and the channel layer a new Redis connection, for
    every event (5 ms of CPU each); such callers share one background loop instead.
    """
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid():
        async_to_sync(get_channel_layer().group_send)(group, message)
        return
    future = asyncio.run_coroutine_threadsafe(
        get_channel_layer().group_send(group, message), _background_loop()
    )
    future.result(timeout=SEND_TIMEOUT_S)


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="realtime-events", daemon=True).start()
        return _loop


# The bot of each order channel: the chat service it runs as ("Web" for the simulator).
CHANNEL_SERVICES = {channel: service for service, channel in SERVICE_CHANNELS.items()}
DRAIN_OUTBOX = "drain_outbox"


def wake_outbox(channel: str) -> None:
    """Tell the running bot of ``channel`` that its outbox has a new message.

    Only a nudge: a bot also drains when it starts and every few seconds, so a nudge lost while
    Redis is away delays a message, never loses it.
    """
    try:
        group_send_from_sync(
            bot_group(CHANNEL_SERVICES[channel]),
            {"type": "bot.command", "command": DRAIN_OUTBOX, "data": {}},
        )
    except Exception:
        logger.warning("could not wake the %s bot for its outbox", channel, exc_info=True)
