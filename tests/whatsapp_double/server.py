"""A local test double of WhatsApp Web (https://web.whatsapp.com/), for tests.

It follows the page contract in ``/work/shared/whatsapp-web/CONTRACT.md`` and stands in for
WhatsApp's servers only: a real bot drives the page in a real browser, and the test plays the phone
and the customers through :class:`WhatsAppDouble` (``scan``, ``customer_says``...) and inspects
what the bot did (``sent``, ``state``...).

The page (``static/``) walks the contract's states: refused browser (user agent with
``HeadlessChrome``), loading, login (QR), syncing, main. All state lives here, server-side: chats,
messages, unread counts, the QR cycle and the linked sessions, so the page can be reloaded or the
browser restarted. The page keeps its session token in ``localStorage``, asks for snapshots by long
polling ``/api/poll`` and reports its state, the chat it opens and what it sends through
``/api/*`` POSTs.

``variant`` picks the markup: 0 renders the first-listed variant of every concern, 1 the second,
2 the third where the contract lists three (the QR holder ``[data-testid="qrcode"]`` and the send
button ``span[data-icon="send"]``) and the last listed elsewhere. A variant never carries the
markers of the other variants, so a bot that only knows one of them fails on the others.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["WhatsAppDouble", "format_phone"]

STATIC_DIR = Path(__file__).with_name("static")
OWN_NAME = "Loja Teste"  # the linked account's name, in the data-pre-plain-text of sent messages
MEDIA_KINDS = ("image", "audio", "sticker", "location", "video", "document")
MEDIA_PREVIEWS = {
    "image": "Photo",
    "audio": "Voice message",
    "sticker": "Sticker",
    "location": "Location",
    "video": "Video",
    "document": "Document",
}
CHECK_AFTER = 0.2  # seconds from sending to msg-check
DBLCHECK_AFTER = 0.5  # seconds from sending to msg-dblcheck
POLL_WAIT = 15.0  # longest wait of a long poll
# An opened chat shows its latest messages, as WhatsApp Web does ("older messages load above",
# CONTRACT.md): a chat's whole history is not rendered again each time it is opened.
SHOWN_MESSAGES = 50
TICK = 0.05  # the clock of timed changes (QR rotation, ticks)
PAGE_STATES = ("loading", "login", "syncing", "main")

LOADING_MARKUP = {
    0: (
        '<div class="startup"><div class="startup-logo" aria-hidden="true"></div>'
        '<progress class="startup-progress" value="0" max="100"></progress>'
        '<div class="startup-title">WhatsApp</div>'
        '<div class="startup-sub">End-to-end encrypted</div></div>'
    ),
    1: (
        '<div class="startup" data-testid="wa-web-loading-screen">'
        '<div class="startup-logo" aria-hidden="true"></div>'
        '<div class="startup-bar"><div class="startup-bar-fill"></div></div>'
        '<div class="startup-title">WhatsApp</div>'
        '<div class="startup-sub">End-to-end encrypted</div></div>'
    ),
}


def digits_of(phone: str) -> str:
    return re.sub(r"\D", "", phone or "")


def format_phone(digits: str) -> str:
    """A phone number as WhatsApp titles a chat: ``+55 11 91234-5678`` (Brazil),
    ``+1 (415) 555-0100`` (North America), else ``+<first two digits> <rest>``."""
    digits = digits_of(digits)
    if digits.startswith("55") and len(digits) in (12, 13):
        local = digits[4:]
        return f"+55 {digits[2:4]} {local[:-4]}-{local[-4:]}"
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 ({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return f"+{digits[:2]} {digits[2:]}".rstrip()


def new_qr_payload() -> str:
    """Like WhatsApp's: ``2@`` then four comma-separated base64 strings."""
    parts = (secrets.token_bytes(n) for n in (48, 32, 32, 16))
    return "2@" + ",".join(base64.b64encode(p).decode() for p in parts)


@dataclass
class _Message:
    data_id: str
    digits: str
    jid: str
    out: bool
    kind: str  # "text" or one of MEDIA_KINDS
    text: str | None
    author: str
    wall: float  # time.time()
    at: float  # time.monotonic()
    ticks: str | None = None  # sent messages: msg-time, msg-check, msg-dblcheck


@dataclass
class _Chat:
    digits: str
    jid: str
    name: str | None = None
    messages: list[_Message] = field(default_factory=list)
    unread: int = 0
    activity: int = 0

    @property
    def title(self) -> str:
        return self.name or format_phone(self.digits)


@dataclass
class _Qr:
    page: int
    payload: str
    due: float  # monotonic time of the next change (or of the expiry)
    changes: int = 0
    expired: bool = False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    double: WhatsAppDouble

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the browser went away (page unloaded during a long poll)
        self.double.errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    server_version = "WhatsAppDouble/1.0"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET", b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle("POST", self.rfile.read(length) if length else b"")

    def _handle(self, method: str, body: bytes) -> None:
        double = self.server.double
        try:
            status, content_type, payload = double._http(method, self.path, self.headers, body)
        except Exception:
            double.errors.append(traceback.format_exc())
            status, content_type, payload = 500, "text/plain; charset=utf-8", b"internal error"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)
        except (ConnectionError, TimeoutError):
            pass


class WhatsAppDouble:
    """WhatsApp Web's servers, on ``http://127.0.0.1:<port>/``; thread-safe.

    ``with WhatsAppDouble(variant=1) as wa: ...`` or ``start()``/``stop()``.
    """

    def __init__(
        self,
        *,
        variant: int = 0,
        port: int | None = None,
        loading_seconds: float = 1.0,
        sync_seconds: float = 1.0,
        first_qr_seconds: float = 60,
        qr_seconds: float = 20,
        qr_rotations_before_expiry: int = 5,
        stall_sending: bool = False,
    ) -> None:
        if variant not in (0, 1, 2):
            raise ValueError(f"variant must be 0, 1 or 2, not {variant!r}")
        self.variant = variant
        self.loading_seconds = loading_seconds
        self.sync_seconds = sync_seconds
        self.first_qr_seconds = first_qr_seconds
        self.qr_seconds = qr_seconds
        self.qr_rotations_before_expiry = qr_rotations_before_expiry
        self.stall_sending = stall_sending
        self.invalid_numbers: set[str] = set()
        self.errors: list[str] = []  # tracebacks of the double's own failures

        self._cond = threading.Condition(threading.RLock())
        self._version = 0
        self._sessions: set[str] = set()
        self._link: tuple[int, str] | None = None  # (page, token) the page has still to store
        self._qr: _Qr | None = None
        self._pages = itertools.count(1)
        self._page: int | None = None  # the app page last served: the only one that is live
        self._loads = 0
        self._ballast: tuple[int, int] | None = None  # (page, MB) the page is told to hold
        self._state = "none"
        self._history: list[str] = []
        self._open: str | None = None  # jid of the chat open in the live page
        self._chats: dict[str, _Chat] = {}  # by digits
        self._by_jid: dict[str, _Chat] = {}
        self._activity = itertools.count(1)
        self._sent: list[_Message] = []
        self._received: list[_Message] = []
        self._pending: list[_Message] = []  # sent messages whose ticks still advance
        self._stopping = False
        self._threads: list[threading.Thread] = []

        self._httpd = _HTTPServer(("127.0.0.1", port or 0), _Handler)
        self._httpd.double = self
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        for target, name in (
            (self._httpd.serve_forever, "whatsapp-double-http"),
            (self._tick_loop, "whatsapp-double-clock"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        if self._threads:
            self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> WhatsAppDouble:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the phone ------------------------------------------------------------------------------

    def qr_payload(self) -> str | None:
        """The payload the login page shows (still shown, greyed, once expired; see
        ``qr_expired``); None outside login."""
        with self._cond:
            self._advance()
            qr = self._live_qr()
            return qr.payload if qr else None

    def qr_expired(self) -> bool:
        """Whether the login page shows the "Click to reload QR code" button."""
        with self._cond:
            self._advance()
            qr = self._live_qr()
            return bool(qr and qr.expired)

    def rotate_qr(self) -> str:
        """A new payload now (in place); on an expired QR, a fresh cycle as the reload button."""
        with self._cond:
            qr = self._require_qr()
            if qr.expired:
                self._restart_qr(qr)
            else:
                qr.payload = new_qr_payload()
                qr.changes += 1
                qr.due = time.monotonic() + self.qr_seconds
            self._bump()
            return qr.payload

    def expire_qr(self) -> None:
        """The QR expires now: the reload button shows."""
        with self._cond:
            qr = self._require_qr()
            qr.expired = True
            self._bump()

    def scan(self) -> None:
        """The phone scans the QR on the page: the browser is linked (syncing, then main)."""
        with self._cond:
            self._advance()
            qr = self._require_qr()
            if qr.expired:
                raise RuntimeError("the QR code has expired: it cannot be scanned")
            token = secrets.token_urlsafe(24)
            self._sessions.add(token)
            self._link = (qr.page, token)
            self._qr = None
            self._bump()

    def log_out(self) -> None:
        """The phone unlinks the browser: every session ends; the page goes back to login."""
        with self._cond:
            self._sessions.clear()
            self._link = None
            self._bump()

    def linked(self) -> bool:
        with self._cond:
            return bool(self._sessions)

    def state(self) -> str:
        """What the page last reported: refused, loading, login, syncing, main ("none" before any
        page load)."""
        with self._cond:
            return self._state

    def state_history(self) -> list[str]:
        """Every state change reported, in order."""
        with self._cond:
            return list(self._history)

    def page_loads(self) -> int:
        with self._cond:
            return self._loads

    def grow_page_heap(self, mb: int) -> None:
        """Make the page loaded now hold ``mb`` MB more of JavaScript objects (as WhatsApp Web's
        own heap grows over hours); a new page load starts without them."""
        with self._cond:
            self._ballast = (self._page, mb)
            self._bump()

    def open_chat(self) -> str | None:
        """The phone (``+<digits>``) of the chat open in the page, if any."""
        with self._cond:
            chat = self._by_jid.get(self._open or "")
            return f"+{chat.digits}" if chat else None

    # -- customers ------------------------------------------------------------------------------

    def customer_says(
        self, phone: str, text: str, *, name: str | None = None, lid: bool = False
    ) -> str:
        """A text from a customer; returns its data-id (``false_<jid>_<id>``)."""
        text = str(text).replace("\r\n", "\n")
        with self._cond:
            chat = self._chat(phone, name=name, lid=lid)
            return self._add(chat, out=False, kind="text", text=text).data_id

    def customer_sends_media(
        self, phone: str, kind: str = "image", *, name: str | None = None
    ) -> str:
        """A message that is not text (image, audio, sticker, location, video, document)."""
        if kind not in MEDIA_KINDS:
            raise ValueError(f"kind must be one of {MEDIA_KINDS}, not {kind!r}")
        with self._cond:
            chat = self._chat(phone, name=name)
            return self._add(chat, out=False, kind=kind, text=None).data_id

    def received(self, phone: str) -> list[dict]:
        """What the customer of ``phone`` said, in order."""
        digits = digits_of(phone)
        with self._cond:
            return [
                {
                    "data_id": m.data_id,
                    "phone": f"+{m.digits}",
                    "jid": m.jid,
                    "name": m.author,
                    "kind": m.kind,
                    "text": m.text,
                    "at": m.at,
                }
                for m in self._received
                if m.digits == digits
            ]

    # -- what the bot sent ----------------------------------------------------------------------

    def sent(self, phone: str | None = None) -> list[dict]:
        """Messages sent from the page (to ``phone``, or all), in order, with their ticks now."""
        digits = digits_of(phone) if phone is not None else None
        with self._cond:
            self._advance()
            return [
                {
                    "data_id": m.data_id,
                    "phone": f"+{m.digits}",
                    "jid": m.jid,
                    "text": m.text,
                    "ticks": m.ticks,
                    "at": m.at,
                }
                for m in self._sent
                if digits is None or m.digits == digits
            ]

    def wait_for_sent(self, phone: str, contains: str, timeout: float = 15) -> dict:
        """The first message sent to ``phone`` whose text holds ``contains`` (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.sent(phone):
                    if contains in (message["text"] or ""):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"nothing holding {contains!r} was sent to {phone} within {timeout} s; "
                        f"sent: {self.sent()!r}; page state: {self._state}"
                    )
                self._cond.wait(timeout=min(left, 0.25))

    # -- internals (all under self._cond) -------------------------------------------------------

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _live_qr(self) -> _Qr | None:
        qr = self._qr
        return qr if qr is not None and qr.page == self._page else None

    def _require_qr(self) -> _Qr:
        qr = self._live_qr()
        if qr is None:
            raise RuntimeError(f"the page shows no QR code (page state: {self._state})")
        return qr

    def _restart_qr(self, qr: _Qr) -> None:
        qr.payload = new_qr_payload()
        qr.changes = 0
        qr.expired = False
        qr.due = time.monotonic() + self.first_qr_seconds

    def _tick_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                self._advance()
                self._cond.wait(timeout=TICK)

    def _advance(self) -> None:
        """Apply what time brought: ticks of sent messages, QR changes and expiry."""
        now = time.monotonic()
        changed = False
        if self._pending:
            still = []
            for message in self._pending:
                age = now - message.at
                ticks = (
                    "msg-dblcheck"
                    if age >= DBLCHECK_AFTER
                    else "msg-check"
                    if age >= CHECK_AFTER
                    else "msg-time"
                )
                if ticks != message.ticks:
                    message.ticks = ticks
                    changed = True
                if ticks != "msg-dblcheck":
                    still.append(message)
            self._pending = still
        qr = self._qr
        if qr is not None and not qr.expired and now >= qr.due:
            if qr.changes >= self.qr_rotations_before_expiry:
                qr.expired = True
            else:
                qr.payload = new_qr_payload()
                qr.changes += 1
                qr.due = now + self.qr_seconds
            changed = True
        if changed:
            self._bump()

    def _chat(self, phone: str, *, name: str | None = None, lid: bool = False) -> _Chat:
        digits = digits_of(phone)
        if not digits:
            raise ValueError(f"not a phone number: {phone!r}")
        chat = self._chats.get(digits)
        if chat is None:
            # a linked id is opaque: 15 digits that are not the phone number
            lid_digits = secrets.randbelow(9 * 10**14) + 10**14
            jid = f"{lid_digits}@lid" if lid else f"{digits}@c.us"
            chat = _Chat(digits=digits, jid=jid)
            self._chats[digits] = chat
            self._by_jid[jid] = chat
        if name:
            chat.name = name
        return chat

    def _add(self, chat: _Chat, *, out: bool, kind: str, text: str | None) -> _Message:
        prefix = "true_" if out else "false_"
        key = ("3EB0" if out else "3A") + secrets.token_hex(8).upper()
        message = _Message(
            data_id=f"{prefix}{chat.jid}_{key}",
            digits=chat.digits,
            jid=chat.jid,
            out=out,
            kind=kind,
            text=text,
            author=OWN_NAME if out else chat.title,
            wall=time.time(),
            at=time.monotonic(),
            ticks="msg-time" if out else None,
        )
        chat.messages.append(message)
        chat.activity = next(self._activity)
        if out:
            self._sent.append(message)
            if not self.stall_sending:
                self._pending.append(message)
        else:
            self._received.append(message)
            if not (self._state == "main" and self._open == chat.jid):
                chat.unread += 1
        self._bump()
        return message

    def _message_json(self, message: _Message) -> dict:
        when = time.localtime(message.wall)
        clock = time.strftime("%H:%M", when)
        return {
            "id": message.data_id,
            "out": message.out,
            "kind": message.kind,
            "text": message.text,
            "pre": f"[{clock}, {time.strftime('%d/%m/%Y', when)}] {message.author}: ",
            "time": clock,
            "ticks": message.ticks,
        }

    def _snapshot(self, page: int, token: str) -> dict:
        live = page == self._page
        valid = bool(token) and token in self._sessions
        snap: dict[str, Any] = {
            "v": self._version,
            "current": live,
            "token": token,
            "session": "valid" if valid else "invalid" if token else "none",
        }
        if not live:
            return snap
        if self._link and self._link[0] == page:
            snap["link_token"] = self._link[1]
        qr = self._live_qr()
        if qr is not None:
            snap["qr"] = {"payload": qr.payload, "expired": qr.expired}
        if self._ballast and self._ballast[0] == page:
            snap["ballast_mb"] = self._ballast[1]
        if valid:
            chats = sorted(
                (c for c in self._chats.values() if c.messages),
                key=lambda c: (c.unread > 0, c.activity),
                reverse=True,
            )
            snap["chats"] = [
                {
                    "jid": c.jid,
                    "title": c.title,
                    "unread": c.unread,
                    "preview": c.messages[-1].text or MEDIA_PREVIEWS[c.messages[-1].kind],
                    "time": time.strftime("%H:%M", time.localtime(c.messages[-1].wall)),
                }
                for c in chats
            ]
            chat = self._by_jid.get(self._open or "")
            if chat is not None:
                snap["open"] = chat.jid
                snap["open_title"] = chat.title
                snap["messages"] = [self._message_json(m) for m in chat.messages[-SHOWN_MESSAGES:]]
        return snap

    # -- HTTP -----------------------------------------------------------------------------------

    def _http(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, str, bytes]:
        url = urlsplit(path)
        route = url.path
        if method == "GET" and route in ("/", "/send"):
            query = parse_qs(url.query, keep_blank_values=True)
            return self._serve_app(route, query, headers.get("User-Agent") or "")
        if route == "/favicon.ico":
            return 204, "image/x-icon", b""
        if method == "GET" and route.startswith("/static/"):
            return self._serve_static(route.removeprefix("/static/"))
        if route.startswith("/api/"):
            if method == "GET":
                data = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            else:
                data = json.loads(body or b"{}")
            return self._api(route.removeprefix("/api/"), data)
        return 404, "text/plain; charset=utf-8", b"not found"

    def _serve_app(self, route: str, query: dict, user_agent: str) -> tuple[int, str, bytes]:
        html = "text/html; charset=utf-8"
        with self._cond:
            if "HeadlessChrome" in user_agent:
                self._page = None
                self._qr = None
                self._open = None
                self._set_state("refused")
                self._bump()
                return 200, html, (STATIC_DIR / "refused.html").read_bytes()
            page = next(self._pages)
            self._page = page
            self._loads += 1
            self._qr = None
            self._open = None
            self._link = None
            self._set_state("loading")
            self._bump()
        send = None
        if route == "/send":
            send = {
                "phone": (query.get("phone") or [""])[-1],
                "text": (query.get("text") or [""])[-1],
            }
        config = {
            "variant": self.variant,
            "page": page,
            "loading_seconds": self.loading_seconds,
            "sync_seconds": self.sync_seconds,
            "send": send,
        }
        template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        page_html = template.replace(
            "{{CONFIG}}", json.dumps(config).replace("<", "\\u003c")
        ).replace("{{LOADING}}", LOADING_MARKUP[min(self.variant, 1)])
        return 200, html, page_html.encode("utf-8")

    def _serve_static(self, name: str) -> tuple[int, str, bytes]:
        types = {
            ".js": "text/javascript; charset=utf-8",
            ".css": "text/css; charset=utf-8",
            ".html": "text/html; charset=utf-8",
            ".svg": "image/svg+xml",
        }
        file = STATIC_DIR / name
        if not re.fullmatch(r"[\w-]+\.\w+", name) or not file.is_file():
            return 404, "text/plain; charset=utf-8", b"not found"
        return 200, types.get(file.suffix, "application/octet-stream"), file.read_bytes()

    def _api(self, name: str, data: dict) -> tuple[int, str, bytes]:
        page = int(data.get("page") or 0)
        token = str(data.get("token") or "")
        if name == "poll":
            answer = self._poll(page, int(data.get("v") or 0), token)
        else:
            with self._cond:
                answer = self._action(name, page, token, data)
        if answer is None:
            return 404, "text/plain; charset=utf-8", b"not found"
        return 200, "application/json", json.dumps(answer).encode()

    def _poll(self, page: int, version: int, token: str) -> dict:
        deadline = time.monotonic() + POLL_WAIT
        with self._cond:
            while self._version == version and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(timeout=left)
            return self._snapshot(page, token)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._history.append(state)

    def _action(self, name: str, page: int, token: str, data: dict) -> dict | None:
        live = page == self._page
        valid = bool(token) and token in self._sessions
        extra: dict[str, Any] = {}
        if name == "snapshot":
            pass
        elif name == "state":
            state = data.get("state")
            if live and state in PAGE_STATES:
                self._set_state(state)
                if state != "main":
                    self._open = None
                if state == "login":
                    self._ensure_qr(page)
                else:
                    self._qr = None
                if state in ("syncing", "main") and self._link and self._link[0] == page:
                    self._link = None
                self._bump()
        elif name == "qr":
            if live:
                self._ensure_qr(page)
        elif name == "qr/reload":
            qr = self._live_qr()
            if live and qr is not None and qr.expired:
                self._restart_qr(qr)
                self._bump()
        elif name == "open":
            chat = self._by_jid.get(str(data.get("jid")))
            if live and valid and chat is not None:
                self._open_chat(chat)
        elif name == "open_phone":
            digits = digits_of(str(data.get("phone") or ""))
            invalid = (
                not 8 <= len(digits) <= 15
                or digits in self.invalid_numbers
                or f"+{digits}" in self.invalid_numbers
            )
            if invalid:
                extra["invalid"] = True
            elif live and valid:
                chat = self._chat(digits)
                self._open_chat(chat)
                extra["jid"] = chat.jid
        elif name == "send":
            chat = self._by_jid.get(str(data.get("jid")))
            text = str(data.get("text") or "").replace("\r\n", "\n")
            if valid and chat is not None and text.strip():
                extra["sent"] = self._add(chat, out=True, kind="text", text=text).data_id
        else:
            return None
        return {**self._snapshot(page, token), **extra}

    def _ensure_qr(self, page: int) -> None:
        if self._qr is None or self._qr.page != page:
            self._qr = _Qr(
                page=page,
                payload=new_qr_payload(),
                due=time.monotonic() + self.first_qr_seconds,
            )
            self._bump()

    def _open_chat(self, chat: _Chat) -> None:
        self._open = chat.jid
        chat.unread = 0
        self._bump()
