"""Where a conversation stands, in Redis: its step and pending question, a per-chat lock, and
the message ids already answered.

Keys are per service and chat (``marketplace:chat:<service>:<chat>:...``). The state expires after
``BOT_STATE_TTL`` of silence (the cart and orders are in the database, not here); answered ids
are kept for ``BOT_SEEN_MESSAGE_TTL``, so a message redelivered after a restart is recognised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from redis.exceptions import LockError
from redis.lock import Lock

PREFIX = "marketplace:chat"
# Telegram updates the webhook view received, for the bot running with --webhook to handle.
TELEGRAM_WEBHOOK_QUEUE = "marketplace:telegram:updates"
# A message is handled in milliseconds; a lock older than this belongs to a dead process.
LOCK_TIMEOUT_S = 30
# How long a second message of the same chat waits for the first one to be handled.
LOCK_WAIT_S = 20


class ChatBusy(Exception):
    """Another message of this chat is still being handled after ``LOCK_WAIT_S``."""


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )


def redis_client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def _chat_key(service: str, chat: str) -> str:
    # Chat ids come from outside (the simulator lets a client pick any): hash long ones so a
    # key stays short and holds no ":" of its own.
    if len(chat) > 64 or ":" in chat:
        chat = hashlib.sha256(chat.encode()).hexdigest()
    return f"{PREFIX}:{service.lower()}:{chat}"


class ChatStore:
    """The Redis side of every conversation (one instance serves all chats, from any thread)."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client

    @property
    def client(self) -> redis.Redis:
        return self._client or redis_client()

    @contextlib.contextmanager
    def locked(self, service: str, chat: str) -> Iterator[Lock]:
        """Hold the chat's lock: its messages are handled one at a time, across processes."""
        lock = self.client.lock(
            f"{_chat_key(service, chat)}:lock",
            timeout=LOCK_TIMEOUT_S,
            blocking_timeout=LOCK_WAIT_S,
        )
        if not lock.acquire():
            raise ChatBusy(f"{service} chat {chat} is busy")
        try:
            yield lock
        finally:
            if lock.local.token is not None:  # finish() did not free it already
                with contextlib.suppress(LockError):  # expired meanwhile: nothing to free
                    lock.release()

    def begin(self, service: str, chat: str, message_id: str) -> tuple[bool, dict | None]:
        """Whether ``message_id`` was answered already, and the chat's state (None if new)."""
        key = _chat_key(service, chat)
        seen, raw = (
            self.client.pipeline(transaction=False)
            .exists(f"{key}:seen:{_message_key(message_id)}")
            .get(f"{key}:state")
            .execute()
        )
        return bool(seen), (json.loads(raw) if raw else None)

    def finish(
        self,
        service: str,
        chat: str,
        message_id: str,
        state: dict[str, Any],
        *,
        release: Lock | None = None,
    ) -> None:
        """Save the new state and remember the message as answered, in one round trip.

        With ``release``, the chat's lock is freed in that same round trip (by redis-py's own
        release script, which frees it only if this holder still owns it).
        """
        key = _chat_key(service, chat)
        pipe = (
            self.client.pipeline(transaction=True)
            .set(
                f"{key}:state", json.dumps(state, separators=(",", ":")), ex=settings.BOT_STATE_TTL
            )
            .set(f"{key}:seen:{_message_key(message_id)}", 1, ex=settings.BOT_SEEN_MESSAGE_TTL)
        )
        if release is not None and release.local.token is not None:
            release.lua_release(keys=[release.name], args=[release.local.token], client=pipe)
            release.local.token = None
        pipe.execute()

    def load(self, service: str, chat: str) -> dict | None:
        raw = self.client.get(f"{_chat_key(service, chat)}:state")
        return json.loads(raw) if raw else None

    def save(self, service: str, chat: str, state: dict[str, Any]) -> None:
        self.client.set(
            f"{_chat_key(service, chat)}:state",
            json.dumps(state, separators=(",", ":")),
            ex=settings.BOT_STATE_TTL,
        )


def _message_key(message_id: str) -> str:
    return message_id if len(message_id) <= 80 else hashlib.sha256(message_id.encode()).hexdigest()
