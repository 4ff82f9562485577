"""Helpers for driving the conversation engine as a customer would, with real Redis."""

from __future__ import annotations

import itertools
import random
import uuid

import redis
from django.conf import settings

from bots.chat import WHATSAPP, IncomingMessage, Reply
from bots.engine import Engine, catalog_cache
from bots.state import PREFIX

_message_numbers = itertools.count(1)


def forget_all_chats() -> None:
    """Drop every conversation's state from Redis (the database of a test starts empty too),
    and the catalog pages the engine keeps for a few seconds."""
    catalog_cache.clear()
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = client.keys(f"{PREFIX}:*")
    if keys:
        client.delete(*keys)


def random_phone() -> str:
    return f"+55119{random.randrange(10**7, 10**8)}"


class Chat:
    """One customer's chat with the engine: ``say`` returns the replies, in order."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        service: str = WHATSAPP,
        chat: str | None = None,
        name: str = "Maria Souza",
    ) -> None:
        self.engine = engine or Engine()
        self.service = service
        self.chat = chat or (random_phone() if service == WHATSAPP else uuid.uuid4().hex[:12])
        self.name = name
        self.last_outcome = None

    def message(self, text: str = "", **kwargs) -> IncomingMessage:
        return IncomingMessage(
            service=self.service,
            chat=self.chat,
            message_id=kwargs.pop("message_id", f"msg-{next(_message_numbers)}"),
            text=text,
            customer_name=kwargs.pop("customer_name", self.name),
            **kwargs,
        )

    def say(self, text: str = "", **kwargs) -> list[Reply]:
        self.last_outcome = self.engine.handle(self.message(text, **kwargs))
        return self.last_outcome.replies

    def text(self, text: str = "", **kwargs) -> str:
        """All replies to ``text`` as one string."""
        return "\n---\n".join(reply.text for reply in self.say(text, **kwargs))

    def state(self) -> dict:
        return self.engine.store.load(self.service, self.chat) or {}
