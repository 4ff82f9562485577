"""Telegram: python-telegram-bot as the transport, the conversation engine behind it.

This module only translates. An update (a typed message, a pressed inline button, a photo) becomes
an ``IncomingMessage`` for ``ChatGateway``; the replies go back as messages, their choices as an
inline keyboard (a press sends the button's label, which the engine reads as typing its number).
No handler state machine: the engine has the conversation.

Around that: the status on the dashboard (100 starting, 200 once ``getMe`` answers, 403 with the
reason on a refused token, a lost network or a stop), reconnection with back-off, the dashboard's
commands (``send_message``, ``release_chat``), the outbox of Telegram customers, and Telegram's
limits (about 30 messages a second overall, one a second per chat): messages queue, never drop,
and a 429 waits its ``retry_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from django.conf import settings
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bots.chat import TELEGRAM, IncomingMessage, Reply
from bots.gateway import ChatGateway
from bots.state import TELEGRAM_WEBHOOK_QUEUE, redis_client
from realtime import status
from realtime.bots import BotLink
from realtime.events import DRAIN_OUTBOX

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096  # characters (UTF-16 code units) of one message
CALLBACK_DATA_LIMIT = 64  # bytes
OVERALL_PER_SECOND = 30
CHAT_INTERVAL_S = 1.0
OUTBOX_INTERVAL_S = 10.0
ALLOWED_UPDATES = ["message", "callback_query"]
OFFSET_KEY = "marketplace:telegram:offset"


# --- translation between the engine and Telegram --------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in pieces Telegram accepts, cut at line breaks (else spaces) where possible."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _longest_prefix(rest, limit)
        for separator in ("\n", " "):
            at = rest.rfind(separator, 0, cut)
            if at > cut // 2:
                cut = at + 1
                break
        pieces.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:]
    pieces.append(rest)
    return [piece for piece in pieces if piece.strip()] or [text[:1] or "…"]


def _longest_prefix(text: str, limit: int) -> int:
    size = 0
    for index, char in enumerate(text):
        size += 2 if ord(char) > 0xFFFF else 1
        if size > limit:
            return index
    return len(text)


BOLD = re.compile(r"\*([^*\n]+)\*")


def bold_entities(text: str) -> tuple[str, list[MessageEntity]]:
    """The engine's WhatsApp-style ``*bold*`` as Telegram bold entities, asterisks removed.

    Entities rather than a parse mode: a product named "Camisa_Azul*" cannot break the message.
    """
    plain: list[str] = []
    entities: list[MessageEntity] = []
    offset = 0  # in UTF-16 code units, as Telegram counts
    last = 0
    for match in BOLD.finditer(text):
        before = text[last : match.start()]
        plain.append(before)
        offset += utf16_len(before)
        inner = match.group(1)
        entities.append(MessageEntity(MessageEntity.BOLD, offset, utf16_len(inner)))
        plain.append(inner)
        offset += utf16_len(inner)
        last = match.end()
    plain.append(text[last:])
    return "".join(plain), entities


def callback_data(label: str) -> str:
    """A button's label as its callback data (at most 64 bytes, cut between characters)."""
    return label.encode()[:CALLBACK_DATA_LIMIT].decode(errors="ignore")


def keyboard(buttons: tuple[str, ...]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    short = [label for label in buttons if len(label) <= 14]
    pair_short = len(short) == len(buttons)  # "1", "2", "3", "voltar": two a row
    for label in buttons:
        button = InlineKeyboardButton(label, callback_data=callback_data(label))
        if pair_short and rows and len(rows[-1]) == 1:
            rows[-1].append(button)
        else:
            rows.append([button])
    return InlineKeyboardMarkup(rows)


def coalesce(replies: list[Reply]) -> list[Reply]:
    """One turn's replies as few messages as reads well: a reply without buttons joins the next.

    "Olá!" and the menu arrive as one message, which also keeps a turn within the one message a
    second that Telegram asks of a chat.
    """
    merged: list[Reply] = []
    pending: list[str] = []
    for reply in replies:
        pending.append(reply.text)
        if reply.buttons:
            merged.append(Reply("\n\n".join(pending), reply.buttons))
            pending = []
    if pending:
        merged.append(Reply("\n\n".join(pending)))
    return [part for reply in merged for part in _split_reply(reply) if part.text.strip()]


def _split_reply(reply: Reply) -> list[Reply]:
    pieces = split_text(reply.text)
    return [Reply(piece) for piece in pieces[:-1]] + [Reply(pieces[-1], reply.buttons)]


def incoming(update: Update) -> IncomingMessage | None:
    """The engine's view of an update; None for what a shop bot ignores (groups, edits)."""
    if update.callback_query is not None:
        query = update.callback_query
        if query.message is None or query.message.chat.type != "private":
            return None
        return IncomingMessage(
            service=TELEGRAM,
            chat=str(query.message.chat.id),
            message_id=f"update:{update.update_id}",
            choice=query.data or "",
            customer_name=query.from_user.full_name,
        )
    message = update.message
    if message is None or message.chat.type != "private":
        return None
    return IncomingMessage(
        service=TELEGRAM,
        chat=str(message.chat.id),
        message_id=f"update:{update.update_id}",
        text=message.text or message.caption or "",
        customer_name=message.from_user.full_name if message.from_user else "",
        is_text=message.text is not None,
    )


def seconds(delay: int | timedelta) -> float:
    return delay.total_seconds() if isinstance(delay, timedelta) else float(delay)


# --- sending within Telegram's limits -------------------------------------------------------------


@dataclass
class _ChatQueue:
    items: asyncio.Queue = field(default_factory=asyncio.Queue)
    last_sent: float = 0.0
    worker: asyncio.Task | None = None


class Sender:
    """Messages out, in order per chat, a second apart per chat and 30 a second overall.

    Nothing is dropped: a message waits its turn, and a 429 waits its ``retry_after`` and tries
    again. ``send`` returns when the message is out (or raises what Telegram refused).
    """

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        # A bucket of one, refilled 30 times a second: never more than 30 in any second (a
        # bucket of 30 would let a burst of 30 come on top of the second's 30).
        self.overall = AsyncLimiter(1, 1 / OVERALL_PER_SECOND)
        self.chats: dict[int, _ChatQueue] = {}

    async def send(self, chat_id: int, reply: Reply) -> Message:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        queue = self.chats.setdefault(chat_id, _ChatQueue())
        await queue.items.put((reply, future))
        if queue.worker is None or queue.worker.done():
            queue.worker = asyncio.create_task(self._drain(chat_id, queue))
        return await future

    async def _drain(self, chat_id: int, queue: _ChatQueue) -> None:
        while not queue.items.empty():
            reply, future = queue.items.get_nowait()
            wait = queue.last_sent + CHAT_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                message = await self._send_now(chat_id, reply)
            except Exception as failure:  # the caller decides (the outbox keeps the row)
                if not future.done():
                    future.set_exception(failure)
            else:
                if not future.done():
                    future.set_result(message)
            queue.last_sent = time.monotonic()

    async def _send_now(self, chat_id: int, reply: Reply) -> Message:
        while True:
            async with self.overall:
                text, entities = bold_entities(reply.text)
                try:
                    return await self.bot.send_message(
                        chat_id=chat_id,
                        text=text,
                        entities=entities or None,
                        reply_markup=keyboard(reply.buttons),
                    )
                except RetryAfter as flood:
                    delay = seconds(flood.retry_after)
                    logger.warning("Telegram asked to wait %.0f s (429); chat %s", delay, chat_id)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        for queue in self.chats.values():
            if queue.worker is not None:
                queue.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await queue.worker


# --- the running bot ------------------------------------------------------------------------------


class TelegramBot:
    """``manage.py runbot telegram``: long polling by default, or updates from the webhook view."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        webhook: bool = False,
        poll_timeout: int = 25,
        max_backoff: float = 30.0,
        refused_token_retry: float = 60.0,
    ) -> None:
        self.bot = Bot(
            token,
            base_url=f"{api_url.rstrip('/')}/bot",
            base_file_url=f"{api_url.rstrip('/')}/file/bot",
            request=HTTPXRequest(connection_pool_size=32, read_timeout=15),
            get_updates_request=HTTPXRequest(read_timeout=poll_timeout + 10),
        )
        self.webhook = webhook
        self.poll_timeout = poll_timeout
        self.max_backoff = max_backoff
        self.refused_token_retry = refused_token_retry
        self.offset_key = f"{OFFSET_KEY}:{token.split(':', 1)[0]}"
        self.gateway = ChatGateway(TELEGRAM)
        self.sender = Sender(self.bot)
        self.link: BotLink | None = None
        self.connected = asyncio.Event()
        self._sending: set[asyncio.Task] = set()

    async def run(self, stop: asyncio.Event) -> None:
        async with BotLink(TELEGRAM) as link:
            self.link = link
            await link.set_status(status.INITIALIZING)
            logger.info("Telegram bot starting (%s)", "webhook" if self.webhook else "long polling")
            tasks = [
                asyncio.create_task(self._receive(), name="telegram-receive"),
                asyncio.create_task(self._commands(link), name="telegram-commands"),
                asyncio.create_task(self._outbox_timer(), name="telegram-outbox"),
            ]
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.sender.close()
                with contextlib.suppress(Exception):
                    await self.bot.shutdown()
                logger.info("Telegram bot stopped")
            # BotLink reports 403 as it closes.

    # receiving ------------------------------------------------------------------------------------

    async def _receive(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._connect()
                delay = 1.0
                if self.webhook:
                    await self._from_webhook_queue()
                else:
                    await self._poll()
            except InvalidToken as refused:
                # Not a crash loop: a refused token stays refused until someone changes it.
                logger.error(
                    "Telegram refused the bot token (TELEGRAM_BOT_TOKEN): %s. Check it with "
                    "@BotFather; trying again in %.0f s.", refused, self.refused_token_retry,
                )  # fmt: skip
                await self._disconnected("O Telegram recusou o token do bot.")
                await asyncio.sleep(self.refused_token_retry)
                continue
            except (NetworkError, OSError) as lost:  # TimedOut is a NetworkError
                logger.warning("Telegram unreachable (%s); trying again in %.0f s", lost, delay)
                await self._disconnected("Sem conexão com o Telegram.")
            except RetryAfter as flood:
                delay = max(delay, seconds(flood.retry_after))
                logger.warning("Telegram asked to wait %.0f s before polling again", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _connect(self) -> None:
        me = await self.bot.get_me()
        if self.webhook:
            url = f"{settings.TELEGRAM_WEBHOOK_URL.rstrip('/')}/bots/telegram/webhook/"
            await self.bot.set_webhook(
                url=f"{url}{settings.TELEGRAM_WEBHOOK_SECRET}/",
                secret_token=settings.TELEGRAM_WEBHOOK_SECRET,
                allowed_updates=ALLOWED_UPDATES,
            )
        logger.info("Telegram connected as @%s", me.username)
        assert self.link is not None
        await self.link.set_status(status.CONNECTED)
        self.connected.set()
        await self.drain_outbox()  # what was said while this bot was away

    async def _disconnected(self, reason: str) -> None:
        self.connected.clear()
        assert self.link is not None
        try:
            await self.link.set_status(status.DISCONNECTED, detail=reason)
        except Exception:  # Redis away too: the heartbeat's absence says it anyway
            logger.warning("could not report the Telegram status", exc_info=True)

    async def _poll(self) -> None:
        offset = await asyncio.to_thread(_load_offset, self.offset_key)
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES
                )
            except Conflict:
                logger.warning("a webhook was set for this bot; removing it to poll")
                await self.bot.delete_webhook()
                continue
            for update in updates:
                await self.handle_update(update)
                offset = update.update_id + 1
                await asyncio.to_thread(_save_offset, self.offset_key, offset)

    async def _from_webhook_queue(self) -> None:
        client = redis_client()
        while True:
            item = await asyncio.to_thread(client.brpop, [TELEGRAM_WEBHOOK_QUEUE], 5)
            if item is None:
                continue
            update = Update.de_json(json.loads(item[1]), self.bot)
            if update is not None:
                await self.handle_update(update)

    async def handle_update(self, update: Update) -> None:
        message = incoming(update)
        if message is None:
            return
        query = update.callback_query
        if query is not None:
            await self._acknowledge(query)
        replies = await self.gateway.handle(message)
        chat_id = int(message.chat)
        for reply in coalesce(replies):
            # Queued, not awaited: the next update is read while these go out at Telegram's pace.
            task = asyncio.create_task(self._send_reply(chat_id, reply))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _acknowledge(self, query: Any) -> None:
        """Stop the button's spinner, and mark the message's choice so it is not pressed twice."""
        try:
            await self.bot.answer_callback_query(query.id)
            original = query.message
            if original is not None and getattr(original, "text", None):
                await self.bot.edit_message_text(
                    chat_id=original.chat.id,
                    message_id=original.message_id,
                    text=f"{original.text}\n\n➡️ {query.data}",
                )
        except TelegramError:  # an old button: the choice still counts
            logger.info("could not acknowledge button %s", query.id, exc_info=True)

    async def _send_reply(self, chat_id: int, reply: Reply) -> None:
        try:
            await self.sender.send(chat_id, reply)
        except TelegramError:
            logger.exception("reply to Telegram chat %s not sent", chat_id)

    # the dashboard and the outbox -----------------------------------------------------------------

    async def _commands(self, link: BotLink) -> None:
        async for command, data in link.commands():
            try:
                await self.on_command(command, data)
            except Exception:
                logger.exception("dashboard command %s failed", command)

    async def on_command(self, command: str, data: dict[str, Any]) -> None:
        if command == DRAIN_OUTBOX:
            await self.drain_outbox()
        elif command == "send_message":
            chat = str(data["chat"])
            await self.gateway.agent_message(chat=chat, text=data["text"])
            for part in _split_reply(Reply(data["text"])):
                await self.sender.send(int(chat), part)
        elif command == "release_chat":
            chat = str(data["chat"])
            await self.sender.send(int(chat), await self.gateway.release(chat=chat))
        else:  # generate_session / logout_session: a Telegram bot logs in with its token
            logger.info("dashboard command %s does not apply to Telegram", command)

    async def drain_outbox(self) -> int:
        if not self.connected.is_set():
            return 0

        async def send(chat: str, reply: Reply) -> None:
            await self.sender.send(int(chat), reply)

        sent = await self.gateway.drain_outbox(send)
        if sent:
            logger.info("Telegram: %d order notification(s) sent", sent)
        return sent

    async def _outbox_timer(self) -> None:
        # The wake-up after a status change is only a nudge over pub/sub; this catches any lost.
        while True:
            await asyncio.sleep(OUTBOX_INTERVAL_S)
            try:
                await self.drain_outbox()
            except Exception:
                logger.warning("Telegram outbox drain failed; next try in %s s",
                               OUTBOX_INTERVAL_S, exc_info=True)  # fmt: skip


def _load_offset(key: str) -> int | None:
    try:
        raw = redis_client().get(key)
    except Exception:
        return None  # Telegram keeps unconfirmed updates; the engine ignores repeats
    return int(raw) if raw else None


def _save_offset(key: str, offset: int) -> None:
    with contextlib.suppress(Exception):
        redis_client().set(key, offset)
