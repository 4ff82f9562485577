"""``manage.py runbot whatsapp``: WhatsApp Web in Chromium, the conversation engine behind it.

One task drives the page (every Selenium call runs on one thread of its own: a WebDriver is not
thread-safe) and reports the page's state as the service status: 100 while it loads (a first boot
may take minutes: never a false 403), 102 while a QR shows or the chats sync, 200 in the chat
list, 403 when logged out, crashed or stopped. Another task takes the dashboard's commands and
hands the Selenium work to the first. A dead browser is noticed at the next page call (the page
is watched at least every 2 s): 403, then a new Chromium on the same profile, with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from selenium.common.exceptions import NoSuchElementException, WebDriverException
from urllib3.exceptions import HTTPError as ChromeDriverUnreachable

from bots.adapters.whatsapp import selectors
from bots.adapters.whatsapp.browser import chromium_mb, kill_leftovers, start_chromium
from bots.adapters.whatsapp.page import ChatMessage, NotSent, PageChanged, WhatsAppPage
from bots.chat import WHATSAPP, IncomingMessage, Reply
from bots.gateway import ChatGateway
from bots.state import redis_client
from realtime import status
from realtime.bots import BotLink
from realtime.events import DRAIN_OUTBOX

logger = logging.getLogger(__name__)

T = TypeVar("T")

WATCH_INTERVAL_S = 2.0
CHAT_INTERVAL_S = 1.0  # replies: at most one message a second in a chat
NOTIFICATION_INTERVAL_S = 3.0  # notifications: at most 20 a minute overall, with jitter
SESSION_REQUEST_WINDOW_S = 300  # an expired QR is reloaded only this long after "Gerar sessão"
UNKNOWN_PAGE_GRACE_S = 60
OUTBOX_INTERVAL_S = 15.0
RESCAN_CHATS = 10  # recent chats a (re)started browser looks into
SEND_CONFIRM_S = 30  # a message still pending this long counts as not sent
HANDLED_KEY = "marketplace:whatsapp:last-handled"
MEMORY_CHECK_S = 60.0  # how often Chromium's memory is looked at against its budget
# A page whose heap is large when loaded (the real WhatsApp Web's is) may grow by this share of
# it before a reload, and is reloaded at most once in this many memory checks: a reload costs
# seconds.
PAGE_HEAP_GROWTH_SHARE = 0.5
PAGE_RELOAD_MIN_CHECKS = 5


class OverMemoryBudget(Exception):
    """Chromium passed its memory budget: restart it (the login is in the profile)."""


class BrowserDied(Exception):
    pass


class PageMoved(Exception):
    """The page changed under a step (an element went stale): the next look tries again."""


class LoggedOut(Exception):
    """The dashboard logged the bot out: start again on an empty profile (a new QR)."""


def coalesce(replies: list[Reply]) -> str:
    """One turn's replies as one WhatsApp message: the options are already in the text."""
    return "\n\n".join(reply.text for reply in replies if reply.text.strip())


def chat_of(message: ChatMessage) -> str | None:
    """The engine's chat id for a message: the phone, from a ``<digits>@c.us`` jid."""
    user, _, server = message.jid.partition("@")
    return f"+{user}" if server == "c.us" and user.isdigit() else None


class WhatsAppBot:
    def __init__(
        self,
        *,
        url: str,
        profile_dir: Path,
        headed: bool = False,
        unknown_page_grace: float = UNKNOWN_PAGE_GRACE_S,
        chromium_budget_mb: float = 0,
        memory_check_s: float = MEMORY_CHECK_S,
        page_heap_growth_mb: float = 0,
    ) -> None:
        self.url = url
        # A guard for what the page keeps over hours (docs/reliability.md): once its JavaScript
        # heap has grown this much over its size when the chats first showed, the page is
        # reloaded at a quiet moment (seconds; the login and every message stay). 0: never.
        self.page_heap_growth_mb = page_heap_growth_mb
        self._page_heap_base_mb: float | None = None
        self._memory_reload = False  # between such a reload and the chats showing again
        self._page_loaded_at = 0.0
        self.chromium_budget_mb = chromium_budget_mb  # over this, Chromium is restarted
        self.memory_check_s = memory_check_s
        self._next_memory_check = 0.0
        self.unknown_page_grace = unknown_page_grace
        self.profile_dir = profile_dir
        self.headed = headed
        self.gateway = ChatGateway(WHATSAPP)
        self.link: BotLink | None = None
        self.page: WhatsAppPage | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whatsapp-page")
        self._work: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._session_requested_at = 0.0
        self._last_qr: str | None = None
        self._reported: tuple[int, str] | None = None
        self._was_main = False
        self._known: dict[str, set[str]] = {}  # chat jid -> data-ids seen in it
        self._last_sent: dict[str, float] = {}
        self._next_notification = 0.0
        self._next_outbox = 0.0
        self._rescanned = False
        self._unconfirmed: dict[str, tuple[str, float]] = {}  # data-id -> (chat, deadline)

    # --- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        async with BotLink(WHATSAPP) as link:
            self.link = link
            tasks = [
                asyncio.create_task(self._keep_browser(), name="whatsapp-browser"),
                asyncio.create_task(self._commands(link), name="whatsapp-commands"),
            ]
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._quit_browser()
                self._thread.shutdown(wait=False, cancel_futures=True)
                logger.info("WhatsApp bot stopped; Chromium closed")

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the page's thread. A WebDriver error means a dead browser only
        if the browser no longer answers at all; a page that changed under a click (a stale
        element) is tried again by the loop."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, function, *args)
        except (PageChanged, NoSuchElementException):
            raise
        except (ChromeDriverUnreachable, OSError) as failure:
            # ChromeDriver gone, or a call past its timeout: the browser hangs or is dead.
            reason = f"ChromeDriver did not answer ({type(failure).__name__})"
            raise BrowserDied(reason) from failure
        except WebDriverException as failure:
            reason = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
            if self.page is not None and await loop.run_in_executor(self._thread, self.page.alive):
                raise PageMoved(reason) from failure
            raise BrowserDied(reason) from failure

    async def _report(self, code: int, detail: str = "") -> None:
        if self._reported == (code, detail):
            return
        self._reported = (code, detail)
        logger.info("WhatsApp status %s%s", code, f": {detail}" if detail else "")
        assert self.link is not None
        try:
            await self.link.set_status(code, detail=detail)
        except Exception:
            self._reported = None  # Redis away: say it again next time
            logger.warning("could not report the WhatsApp status", exc_info=True)

    async def _keep_browser(self) -> None:
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                await self._report(status.INITIALIZING, "Abrindo o WhatsApp Web…")
                driver = await asyncio.get_running_loop().run_in_executor(
                    self._thread,
                    lambda: start_chromium(profile_dir=self.profile_dir, headed=self.headed),
                )
                self.page = WhatsAppPage(driver, self.url)
                self._page_loaded_at = time.monotonic()
                self._next_memory_check = time.monotonic() + self.memory_check_s
                self._page_heap_base_mb = None
                self._memory_reload = False
                await self._call(self.page.open)
                await self._drive()
            except LoggedOut:
                delay = 0.0
            except OverMemoryBudget as over:
                logger.warning("%s; restarting it", over)
                delay = 0.0
            except BrowserDied as died:
                logger.warning("Chromium stopped answering (%s); restarting", died)
                await self._report(status.DISCONNECTED, "O navegador parou; reiniciando.")
            except PageChanged as changed:
                logger.error("%s", changed)
                await self._report(status.DISCONNECTED, str(changed))
            except WebDriverException as failure:  # Chromium or ChromeDriver would not start
                logger.error("could not start Chromium: %s", str(failure).splitlines()[0])
                await self._report(status.DISCONNECTED, "Não foi possível abrir o navegador.")
            await self._quit_browser()
            # A browser that ran a while gets a quick restart; one that keeps failing, a slower one.
            delay = 1.0 if time.monotonic() - started > 60 else min(max(delay, 1.0) * 2, 30.0)
            await asyncio.sleep(delay)

    async def _quit_browser(self) -> None:
        page, self.page = self.page, None
        if page is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._thread, page.driver.quit)
            # A hung Chromium may outlive quit(); it would hold the profile the next one needs.
            await loop.run_in_executor(None, lambda: kill_leftovers(profile_dir=self.profile_dir))
        self._known.clear()
        self._rescanned = False

    # --- the page ---------------------------------------------------------------------------

    async def _drive(self) -> None:
        assert self.page is not None
        page = self.page
        unknown_since: float | None = None
        while True:
            try:
                state = await self._step(page, unknown_since)
            except (PageMoved, NoSuchElementException) as moved:
                logger.info("the page moved under a step (%s); looking again", moved)
                state = "moved"
            unknown_since = None if state != "unknown" else (unknown_since or time.monotonic())
            await self._call(page.wait_for_change, WATCH_INTERVAL_S)

    async def _step(self, page: WhatsAppPage, unknown_since: float | None) -> str:
        """One look at the page and what it calls for; returns the page's state."""
        state = await self._call(page.state)
        if state in ("loading", "syncing") and self._memory_reload:
            pass  # the bot's own reload: the dashboard keeps showing 200 for its second or two
        elif state == "loading":
            await self._report(status.INITIALIZING, "Carregando o WhatsApp Web…")
        elif state == "login":
            await self._at_login(page)
        elif state == "syncing":
            await self._report(status.AUTHENTICATING, "Sincronizando as conversas…")
        elif state == "offline":
            await self._report(status.DISCONNECTED, "Sem conexão com o WhatsApp Web.")
            await asyncio.sleep(5)
            await self._call(page.open)
        elif state == "main":
            self._was_main = True
            self._memory_reload = False
            await self._report(status.CONNECTED)
            await self._serve(page)
        elif unknown_since and time.monotonic() - unknown_since > self.unknown_page_grace:
            raise PageChanged(selectors.MAIN)  # no variant of any page state matches
        return state

    async def _at_login(self, page: WhatsAppPage) -> None:
        if self._was_main:
            self._was_main = False
            logger.warning("WhatsApp logged this browser out")
            await self._report(status.DISCONNECTED, "O celular desconectou o WhatsApp Web.")
        payload = await self._call(page.qr_payload)
        if await self._call(page.qr_expired):
            if time.monotonic() - self._session_requested_at < SESSION_REQUEST_WINDOW_S:
                logger.info("QR code expired; reloading it (a session was asked for)")
                await self._call(page.reload_qr)
            else:
                await self._report(
                    status.AUTHENTICATING, "QR code expirado: clique em Gerar sessão."
                )
            return
        if payload and payload != self._last_qr:
            self._last_qr = payload
            logger.info("new QR code shown")
            assert self.link is not None
            await self._report(status.AUTHENTICATING, "Escaneie o QR code com o celular.")
            await self.link.publish_qr(payload)

    async def _serve(self, page: WhatsAppPage) -> None:
        """Main state: dashboard work, then unread chats, then the open chat, then the outbox."""
        while not self._work.empty():
            command, data = self._work.get_nowait()
            await self._do(page, command, data)
        if not self._rescanned:
            # A (re)started browser: look into recent chats too, for messages that arrived while
            # the bot was down in a chat the old page had open (they never showed as unread).
            self._rescanned = True
            rows = await self._call(lambda: page.chats(unread_only=False, limit=RESCAN_CHATS))
        else:
            rows = await self._call(page.chats)
        for title, count in rows:
            # A message that arrives in the open chat is read there and never shows as unread:
            # answer the open chat before leaving it.
            await self._answer_open_chat(page, unread=0)
            await self._call(page.open_chat, title)
            await self._answer_open_chat(page, unread=count)
        await self._answer_open_chat(page, unread=0)
        if time.monotonic() >= self._next_outbox:
            self._next_outbox = time.monotonic() + OUTBOX_INTERVAL_S
            await self._drain_outbox(page)
        await self._check_memory(page)

    async def _check_memory(self, page: WhatsAppPage) -> None:
        """Reload the page when its heap grew past its allowance; raise ``OverMemoryBudget``
        when Chromium is over its budget. Checked here, once every chat with news was answered,
        so neither interrupts a conversation."""
        if time.monotonic() < self._next_memory_check:
            return
        self._next_memory_check = time.monotonic() + self.memory_check_s
        if self.page_heap_growth_mb:
            heap = await self._call(page.heap_mb)
            base = self._page_heap_base_mb
            allowance = max(self.page_heap_growth_mb, (base or 0) * PAGE_HEAP_GROWTH_SHARE)
            loaded_for = time.monotonic() - self._page_loaded_at
            if base is None:
                self._page_heap_base_mb = heap
            elif (
                heap > base + allowance
                and loaded_for > PAGE_RELOAD_MIN_CHECKS * self.memory_check_s
            ):
                logger.info(
                    "the page's heap grew from %.0f MB to %.0f MB; reloading WhatsApp Web",
                    self._page_heap_base_mb,
                    heap,
                )
                self._page_heap_base_mb = None  # measured again on the new page
                self._rescanned = False  # a message may land in the open chat meanwhile
                self._memory_reload = True
                self._page_loaded_at = time.monotonic()
                await self._call(page.open)
                return
        if not self.chromium_budget_mb:
            return
        used = await asyncio.get_running_loop().run_in_executor(None, chromium_mb, page.driver)
        if used > self.chromium_budget_mb:
            raise OverMemoryBudget(
                f"Chromium uses {used:.0f} MB, over its budget of {self.chromium_budget_mb:.0f} MB"
            )

    async def _answer_open_chat(self, page: WhatsAppPage, *, unread: int) -> None:
        """Answer the open chat's new messages, again and again until none came meanwhile."""
        while await self._answer_new_messages(page, unread=unread):
            unread = 0

    async def _answer_new_messages(self, page: WhatsAppPage, *, unread: int) -> bool:
        messages = await self._call(page.messages)  # none with no chat open: one round trip
        self._note_ticks(messages)
        if not messages:
            return False
        jid = messages[-1].jid
        if jid not in self._known:
            self._known[jid] = await self._history(jid, messages, unread)
        known = self._known[jid]
        new = [m for m in messages if m.incoming and m.data_id not in known]
        for message in new:
            known.add(message.data_id)
            chat = chat_of(message)
            if chat is None:
                logger.warning("message %s from an unsupported chat; skipped", message.data_id)
                continue
            replies = await self.gateway.handle(
                IncomingMessage(
                    service=WHATSAPP,
                    chat=chat,
                    message_id=message.data_id,
                    text=message.text or "",
                    customer_name=message.author,
                    is_text=message.text is not None,
                )
            )
            if replies:
                await self._send_here(page, chat, coalesce(replies))
            await asyncio.to_thread(_remember_handled, jid, message.data_id)
        return bool(new)

    async def _history(self, jid: str, messages: list[ChatMessage], unread: int) -> set[str]:
        """The messages of a chat first seen by this browser that are not new.

        New: those after the last one the bot handled in that chat (remembered in Redis across
        restarts); for a chat it never handled, its ``unread`` last incoming messages.
        """
        last = await asyncio.to_thread(_last_handled, jid)
        ids = [m.data_id for m in messages]
        if last in ids:
            return set(ids[: ids.index(last) + 1]) | {m.data_id for m in messages if not m.incoming}
        incoming = [m for m in messages if m.incoming]
        fresh = {m.data_id for m in incoming[len(incoming) - unread :]} if unread else set()
        return set(ids) - fresh

    async def _send_here(self, page: WhatsAppPage, chat: str, text: str) -> None:
        wait = self._last_sent.get(chat, 0) + CHAT_INTERVAL_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            # Not waiting for WhatsApp's tick here keeps other chats from waiting on it; the tick
            # is read with the chat's messages on the next look at it (_note_ticks).
            data_id = await self._call(lambda: page.send_text(text, confirm=False))
            self._known.setdefault(data_id.split("_", 2)[1], set()).add(data_id)
            self._unconfirmed[data_id] = (chat, time.monotonic() + SEND_CONFIRM_S)
        except NotSent:
            logger.error("a reply to %s did not show in the chat", chat)
        self._last_sent[chat] = time.monotonic()

    def _note_ticks(self, messages: list[ChatMessage]) -> None:
        """Forget replies WhatsApp confirmed; report those still pending after 30 s."""
        if not self._unconfirmed:
            return
        ticks = {m.data_id: m.tick for m in messages if m.tick}
        now = time.monotonic()
        for data_id, (chat, deadline) in list(self._unconfirmed.items()):
            tick = ticks.get(data_id)
            if tick in ("sent", "delivered"):
                del self._unconfirmed[data_id]
            elif now > deadline and tick == "pending":
                del self._unconfirmed[data_id]
                logger.error("a reply to %s is still pending after 30 s: not sent", chat)
            elif now > deadline + 300:  # never seen again in its chat: stop tracking it
                del self._unconfirmed[data_id]

    async def _send_to(self, page: WhatsAppPage, chat: str, text: str) -> None:
        """A message nobody asked for (notification, a person's answer): paced for WhatsApp."""
        wait = self._next_notification - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        digits = "".join(ch for ch in chat if ch.isdigit())
        try:
            await self._call(page.send_to_number, digits, text)
        finally:
            self._next_notification = (
                time.monotonic() + NOTIFICATION_INTERVAL_S + random.uniform(0, 1)
            )
            self._last_sent[chat] = time.monotonic()

    async def _drain_outbox(self, page: WhatsAppPage) -> None:
        async def send(chat: str, reply: Reply) -> None:
            await self._send_to(page, chat, reply.text)

        sent = await self.gateway.drain_outbox(send, limit=5)
        if sent:
            logger.info("WhatsApp: %d order notification(s) sent", sent)

    # --- the dashboard ------------------------------------------------------------------------

    async def _commands(self, link: BotLink) -> None:
        async for command, data in link.commands():
            logger.info("dashboard command: %s", command)
            if command == "generate_session":
                self._session_requested_at = time.monotonic()
                self._last_qr = None  # show the current QR again
            elif command == DRAIN_OUTBOX:
                self._next_outbox = 0.0
            else:
                await self._work.put((command, data))

    async def _do(self, page: WhatsAppPage, command: str, data: dict[str, Any]) -> None:
        try:
            if command == "send_message":
                await self.gateway.agent_message(chat=data["chat"], text=data["text"])
                await self._send_to(page, data["chat"], data["text"])
            elif command == "release_chat":
                reply = await self.gateway.release(chat=data["chat"])
                await self._send_to(page, data["chat"], reply.text)
            elif command == "logout_session":
                await self._log_out()
        except NotSent as failure:
            logger.error("dashboard %s not done: %s", command, failure)

    async def _log_out(self) -> None:
        logger.info("logging out: closing Chromium and deleting the saved session")
        await self._quit_browser()
        await asyncio.to_thread(shutil.rmtree, self.profile_dir, True)
        await self._report(status.DISCONNECTED, "Sessão encerrada pelo painel.")
        raise LoggedOut


def _last_handled(jid: str) -> str | None:
    try:
        raw = redis_client().hget(HANDLED_KEY, jid)
    except Exception:  # Redis away: fall back on the unread marks
        return None
    return raw.decode() if raw else None


def _remember_handled(jid: str, data_id: str) -> None:
    with contextlib.suppress(Exception):
        redis_client().hset(HANDLED_KEY, jid, data_id)
