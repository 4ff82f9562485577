"""What every chat adapter shares: the engine behind it, the dashboard's view of the chats, and
the outbox.

An adapter (WhatsApp, Telegram, the dashboard's simulator) only translates: it turns what its
transport delivers into ``IncomingMessage``, hands it to ``ChatGateway.handle`` and sends back
the replies. The gateway runs the engine off the event loop, puts ``chat_message`` and
``handoff_requested`` in the ``Conversations`` room, and answers politely when Redis is away.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from bots.chat import SERVICE_CHANNELS, IncomingMessage, Reply
from bots.engine import Engine
from bots.notifications import notification_chat, notification_text
from bots.state import ChatBusy
from realtime.groups import CONVERSATIONS_GROUP, room_event
from shop import services
from shop.models import CustomerNotification

logger = logging.getLogger(__name__)

Send = Callable[[str, Reply], Awaitable[None]]


def _off_loop(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    # Each call in a worker thread of its own (chats do not wait on each other), with Django's
    # connection hygiene around it as for a request.
    return database_sync_to_async(func, thread_sensitive=False)


class ChatGateway:
    """One adapter's link to the engine and to the dashboard, for ``service``."""

    def __init__(self, service: str, engine: Engine | None = None) -> None:
        self.service = service
        self.channel = SERVICE_CHANNELS[service]
        self.engine = engine or Engine()

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        """The replies to send for ``message`` (none for a duplicate or a chat a person has)."""
        await self._publish_chat(message.chat, message.customer_name, "in", _shown_text(message))
        try:
            outcome = await _off_loop(self.engine.handle)(message)
        except (RedisError, ChatBusy, TimeoutError) as failure:
            # One line each: while Redis is away every message meets the same error.
            logger.warning(
                "%s chat %s: message %s not handled, the customer is asked to try again "
                "(state store unavailable: %s)",
                self.service,
                message.chat,
                message.message_id,
                failure or type(failure).__name__,
            )
            with translation.override(await self._language(message.chat)):
                return [Reply(_("⚠️ We are having a hiccup. Please try again in a moment."))]
        if outcome.duplicate:
            logger.info("%s chat %s: message %s already answered", self.service, message.chat,
                        message.message_id)  # fmt: skip
            return []
        for reply in outcome.replies:
            await self._publish_chat(message.chat, outcome.customer, "out", reply.text)
        if outcome.handoff_requested:
            await self._publish(
                "handoff_requested",
                {"service": self.service, "chat": message.chat, "customer": outcome.customer},
            )
        return outcome.replies

    async def agent_message(self, *, chat: str, text: str) -> None:
        """A person wrote ``text`` in ``chat`` from the dashboard: the bot keeps quiet there."""
        await _off_loop(self.engine.set_handoff)(service=self.service, chat=chat, active=True)
        await self._publish_chat(chat, "", "out", text)

    async def release(self, *, chat: str) -> Reply:
        """The dashboard gives ``chat`` back to the bot; returns the message for the customer."""
        await _off_loop(self.engine.set_handoff)(service=self.service, chat=chat, active=False)
        with translation.override(await self._language(chat)):
            reply = Reply(_("🤖 I'm back! Reply *menu* to see the options."))
        await self._publish_chat(chat, "", "out", reply.text)
        return reply

    async def drain_outbox(self, send: Send, *, limit: int = 20) -> int:
        """Send the channel's undelivered notifications through ``send``; returns how many went.

        A failed send gives the notification back for the next drain; one that was sent but not
        yet marked (the bot died in between) is sent again when its lease ends: at least once.
        """
        sent = 0
        claimed = await _off_loop(_claim_with_texts)(channel=self.channel, limit=limit)
        for notification_id, chat, text in claimed:
            try:
                await send(chat, Reply(text))
            except Exception as failure:
                logger.warning("%s: notification %s not sent: %s", self.service, notification_id,
                               failure)  # fmt: skip
                await _off_loop(services.release_notification)(
                    notification_id=notification_id, error=str(failure) or type(failure).__name__
                )
                continue
            await _off_loop(services.mark_notification_delivered)(notification_id=notification_id)
            await self._publish_chat(chat, "", "out", text)
            sent += 1
        return sent

    async def _language(self, chat: str) -> str:
        try:
            return await _off_loop(self.engine.language_of)(service=self.service, chat=chat)
        except (RedisError, TimeoutError):
            return settings.BOT_LANGUAGE

    async def _publish_chat(self, chat: str, customer: str, direction: str, text: str) -> None:
        await self._publish(
            "chat_message",
            {
                "service": self.service,
                "chat": chat,
                "customer": customer,
                "direction": direction,
                "text": text,
                "at": timezone.now().isoformat(),
            },
        )

    async def _publish(self, event: str, data: dict[str, Any]) -> None:
        # The dashboard's view is a live mirror: losing it while Redis is away loses no data.
        try:
            await get_channel_layer().group_send(CONVERSATIONS_GROUP, room_event(event, data))
        except (RedisError, OSError, TimeoutError) as failure:
            logger.warning("could not publish %s for %s chat %s: %s", event, self.service,
                           data.get("chat"), failure or type(failure).__name__)  # fmt: skip
        except Exception:
            logger.exception("could not publish %s for %s chat %s", event, self.service,
                             data.get("chat"))  # fmt: skip


def _claim_with_texts(*, channel: str, limit: int) -> list[tuple[int, str, str]]:
    notifications: list[CustomerNotification] = services.claim_notifications(
        channel=channel, limit=limit
    )
    return [(n.pk, notification_chat(n), notification_text(n)) for n in notifications]


def _shown_text(message: IncomingMessage) -> str:
    if not message.is_text:
        return "[mídia]" if not message.text else message.text
    return message.said
