"""What the bot does on the WhatsApp Web page, one Selenium step at a time (blocking calls).

Selectors come from ``bots.adapters.whatsapp.selectors`` only. The bot waits for the page with a
``MutationObserver`` installed in the page (``wait_for_change``) rather than sleeping and polling.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    TimeoutException,
)
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from bots.adapters.whatsapp import selectors as s

logger = logging.getLogger(__name__)

SEND_CONFIRM_TIMEOUT_S = 30


class PageChanged(Exception):
    """No variant of a concern the page should show matches: WhatsApp changed its markup."""

    def __init__(self, concern: s.Concern) -> None:
        super().__init__(f"WhatsApp mudou a página: {concern.name} não encontrado.")
        self.concern = concern


class NotSent(Exception):
    """A message still pending after 30 s, or a number WhatsApp calls invalid."""


@dataclass(frozen=True)
class ChatMessage:
    data_id: str
    incoming: bool
    text: str | None  # None: not text (image, audio, sticker, location)
    author: str = ""
    tick: str | None = None  # ours only: "pending", "sent" or "delivered"

    @property
    def jid(self) -> str:
        return self.data_id.split("_", 2)[1]


def author_of(pre_plain_text: str | None) -> str:
    """The sender's name in ``[10:30, 29/11/2026] Maria Souza: ``; "" for a bare number."""
    if not pre_plain_text or "] " not in pre_plain_text:
        return ""
    name = pre_plain_text.split("] ", 1)[1].rstrip().removesuffix(":").strip()
    return "" if name.startswith("+") or name.replace(" ", "").isdigit() else name


# Reads a message's text as the contract says: text nodes and emoji images' alt, in order; <br>
# as a line break. One script for the whole chat: one round trip however long the chat. Our own
# messages come with their tick, so checking that a reply went out costs no extra round trip.
_READ_MESSAGES = """
const [messageSel, textSel, emojiSel, metaSel, pending, sent, delivered] = arguments;
function textOf(node) {
  let out = '';
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) out += child.nodeValue;
    else if (child.nodeName === 'BR') out += '\\n';
    else if (child.nodeName === 'IMG' && child.matches(emojiSel)) out += child.alt || '';
    else if (child.nodeType === Node.ELEMENT_NODE) out += textOf(child);
  }
  return out;
}
return Array.from(document.querySelectorAll(messageSel)).map((el) => {
  const span = el.querySelector(textSel);
  const meta = el.querySelector(metaSel);
  const id = el.getAttribute('data-id');
  const tick = !id || !id.startsWith('true_') ? null
    : el.querySelector(delivered) ? 'delivered' : el.querySelector(sent) ? 'sent'
    : el.querySelector(pending) ? 'pending' : 'sent';
  return [id, span ? textOf(span) : null,
          meta ? meta.getAttribute('data-pre-plain-text') : null, tick];
});
"""

# Resolves when the page changes (or after the timeout): how the bot waits without polling.
_WAIT_FOR_CHANGE = """
const done = arguments[arguments.length - 1];
const timeout = arguments[0];
const observer = new MutationObserver(() => {
  observer.disconnect(); clearTimeout(timer); done(true);
});
const timer = setTimeout(() => { observer.disconnect(); done(false); }, timeout);
observer.observe(document.body || document.documentElement,
  {childList: true, subtree: true, attributes: true, characterData: true});
"""


_STATE = """
const [mainSel, qrSel, syncingText, loadingSel] = arguments;
if (location.href.startsWith('chrome-error://')) return 'offline';  // Chromium's "no internet"
if (document.querySelector(mainSel)) return 'main';
if (document.querySelector(qrSel)) return 'login';
if (document.body && document.body.innerText.includes(syncingText)) return 'syncing';
if (document.querySelector(loadingSel)) return 'loading';
return 'unknown';
"""

_CHATS = """
const [mainSel, rowSel, titleSel, unreadSel, limit] = arguments;
if (!document.querySelector(mainSel)) return null;
return Array.from(document.querySelectorAll(rowSel)).slice(0, limit).map((row) => {
  const title = row.querySelector(titleSel);
  const unread = row.querySelector(unreadSel);
  return [title ? title.getAttribute('title') : null, unread ? (unread.textContent || '1') : ''];
});
"""

# Clicks where a person would: on the element at the middle of ``el`` (the innermost one, so the
# page's handlers see the click wherever they listen), then waits with a MutationObserver.
_CLICK_AND_WAIT = """
function clickMiddle(el) {
  el.scrollIntoView({block: 'nearest'});
  const box = el.getBoundingClientRect();
  const target = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  const at = target && el.contains(target) ? target : el;
  for (const type of ['mousedown', 'mouseup', 'click']) {
    at.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window}));
  }
}
function waitFor(check, timeout, done) {
  const found = check();
  if (found !== undefined) { done(found); return; }
  const observer = new MutationObserver(() => {
    const value = check();
    if (value !== undefined) { observer.disconnect(); clearTimeout(timer); done(value); }
  });
  const timer = setTimeout(() => { observer.disconnect(); done(check() ?? null); }, timeout);
  observer.observe(document.body, {childList: true, subtree: true, attributes: true,
                                   characterData: true});
}
"""

_OPEN_CHAT = (
    _CLICK_AND_WAIT
    + """
const [rowSel, titleSel, nameSel, openSel, title, timeout, done] = arguments;
const row = Array.from(document.querySelectorAll(rowSel)).find((r) => {
  const t = r.querySelector(titleSel);
  return t && t.getAttribute('title') === title;
});
if (!row) { done('no row'); return; }
clickMiddle(row);
waitFor(() => {
  const name = document.querySelector(nameSel);
  return name && name.textContent === title ? 'open' : undefined;
}, timeout, (value) => done(value || (document.querySelector(openSel) ? 'open' : 'closed')));
"""
)

_SEND = (
    _CLICK_AND_WAIT
    + """
const [boxSel, sendSel, messageSel, lines, timeout, done] = arguments;
const box = document.querySelector(boxSel);
if (!box) { done(null); return; }
const before = new Set(Array.from(document.querySelectorAll(messageSel),
                                  (m) => m.getAttribute('data-id')));
box.focus();
lines.forEach((line, index) => {
  if (index > 0) document.execCommand('insertLineBreak');
  if (line) document.execCommand('insertText', false, line);
});
waitFor(() => document.querySelector(sendSel) || undefined, timeout, (button) => {
  if (!button) { done(null); return; }
  clickMiddle(button.closest('button, [role="button"]') || button);
  waitFor(() => {
    const sent = Array.from(document.querySelectorAll(messageSel)).map(
      (m) => m.getAttribute('data-id')).filter((id) => id && id.startsWith('true_') &&
      !before.has(id));
    return sent.length ? sent[sent.length - 1] : undefined;
  }, timeout, (id) => done(id || ''));
});
"""
)


class WhatsAppPage:
    def __init__(self, driver: Chrome, url: str) -> None:
        self.driver = driver
        self.url = url if url.endswith("/") else url + "/"

    def open(self) -> None:
        try:
            self.driver.get(self.url)
        except TimeoutException:
            # A slow first load goes on in the browser; the state loop watches it from here.
            logger.info("WhatsApp Web still loading after the page-load timeout; watching it")

    def _evaluate(self, script: str, *args: object) -> Any:
        """``script`` (a function body reading ``arguments``) run in the page; its JSON value.

        Through the DevTools protocol rather than ``execute_script``: ChromeDriver keeps every
        value a script returns alive in the page (a "DevTools console" handle), so reading the
        open chat a few times a second grew the page's heap by megabytes a minute until the
        page was closed (docs/reliability.md); ``Runtime.evaluate`` returning by value keeps
        nothing."""
        expression = f"(function() {{\n{script}\n}}).apply(null, {json.dumps(args)})"
        answer = self.driver.execute_cdp_cmd(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            raise JavascriptException(text.splitlines()[0] if text else "script failed")
        return answer["result"].get("value")

    def heap_mb(self) -> float:
        """The page's JavaScript heap in use, MB, after a garbage collection (DevTools
        protocol: precise, unlike ``performance.memory``)."""
        self.driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
        return self.driver.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"] / 1024 / 1024

    def alive(self) -> bool:
        """Whether the browser still answers at all."""
        try:
            return self.driver.execute_script("return 1") == 1
        except Exception:
            return False

    # --- where the page is -----------------------------------------------------------------

    def _first(self, concern: s.Concern, root: WebElement | Chrome | None = None) -> WebElement:
        root = root or self.driver
        for variant in concern.variants:
            found = root.find_elements(By.CSS_SELECTOR, variant)
            if found:
                return found[0]
        raise NoSuchElementException(concern.name)

    def _has(self, concern: s.Concern) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, concern.any))

    def state(self) -> str:
        """ "main", "login", "syncing", "loading", "offline" or "unknown" (one round trip)."""
        return self._evaluate(_STATE, s.MAIN.any, s.QR_HOLDER.any, s.SYNCING_TEXT, s.LOADING.any)

    def wait_for_change(self, timeout_s: float) -> bool:
        try:
            return bool(self.driver.execute_async_script(_WAIT_FOR_CHANGE, int(timeout_s * 1000)))
        except (TimeoutException, JavascriptException):
            return False

    # --- login ------------------------------------------------------------------------------

    def qr_payload(self) -> str | None:
        holders = self.driver.find_elements(By.CSS_SELECTOR, s.QR_HOLDER.any)
        return holders[0].get_attribute("data-ref") if holders else None

    def qr_expired(self) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, s.QR_RELOAD.any))

    def reload_qr(self) -> None:
        self._first(s.QR_RELOAD).click()

    # --- reading ----------------------------------------------------------------------------

    def chats(self, *, unread_only: bool = True, limit: int = 50) -> list[tuple[str, int]]:
        """(title, unread count) of the chat list's rows, top first (with unread only, by
        default); one round trip."""
        rows = self._evaluate(_CHATS, s.MAIN.any, s.ROW.any, s.ROW_TITLE.any, s.UNREAD.any, limit)
        if rows is None:
            raise PageChanged(s.MAIN)
        return [
            (title, int("".join(ch for ch in unread if ch.isdigit()) or 1) if unread else 0)
            for title, unread in rows
            if title and (unread or not unread_only)
        ]

    def open_chat(self, title: str) -> None:
        """Click the row titled ``title`` and wait until the chat header names it."""
        opened = self.driver.execute_async_script(
            _OPEN_CHAT, s.ROW.any, s.ROW_TITLE.any, s.CHAT_NAME.any, s.OPEN_CHAT.any, title, 10_000
        )
        if opened == "no row":
            raise NoSuchElementException(f"row {title!r}")
        if opened != "open":
            raise PageChanged(s.OPEN_CHAT)

    def messages(self) -> list[ChatMessage]:
        """The open chat's messages, oldest first (none with no chat open); one round trip."""
        rows = self._evaluate(
            _READ_MESSAGES,
            s.MESSAGE.any,
            s.MESSAGE_TEXT.any,
            s.EMOJI_IMAGE,
            s.MESSAGE_META.any,
            s.TICK_PENDING,
            s.TICK_SENT,
            s.TICK_DELIVERED,
        )
        return [
            ChatMessage(
                data_id=data_id,
                incoming=data_id.startswith("false_"),
                text=text,
                author=author_of(meta),
                tick=tick,
            )
            for data_id, text, meta, tick in rows
            if data_id and data_id.count("_") >= 2
        ]

    # --- writing ----------------------------------------------------------------------------

    def send_text(self, text: str, *, confirm: bool = True) -> str:
        """Type ``text`` in the open chat and send it; the new message's ``data-id``.

        One round trip types it (``insertText`` per line, which takes emoji outside the BMP, and
        ``insertLineBreak`` between lines, what Shift+Enter does), clicks Send and waits for the
        message to show. With ``confirm``, then waits for WhatsApp's tick (``NotSent`` after
        30 s); without, the caller reads the tick with the chat's messages later.
        """
        before = {m.data_id for m in self.messages()} if confirm else set()
        data_id = self.driver.execute_async_script(
            _SEND, s.COMPOSE.any, s.SEND.any, s.MESSAGE.any, text.split("\n"), 10_000
        )
        if not data_id:
            raise PageChanged(s.SEND) if data_id is None else NotSent("the message did not show")
        if confirm:
            return self._confirm_sent(before)
        return data_id

    def _click_send(self) -> None:
        def button() -> WebElement | None:
            try:
                return self._first(s.SEND)
            except NoSuchElementException:
                return None

        self._wait_until(lambda: button() is not None, 10, s.SEND)
        button().click()

    def _confirm_sent(self, before: set[str]) -> str:
        deadline = time.monotonic() + SEND_CONFIRM_TIMEOUT_S
        while time.monotonic() < deadline:
            new = [m for m in self.messages() if not m.incoming and m.data_id not in before]
            if new:
                element = self.driver.find_element(
                    By.CSS_SELECTOR, f'[data-id="{new[-1].data_id}"]'
                )
                if element.find_elements(By.CSS_SELECTOR, f"{s.TICK_SENT}, {s.TICK_DELIVERED}"):
                    return new[-1].data_id
            self.wait_for_change(1.0)
        raise NotSent("WhatsApp did not confirm the message within 30 s")

    def send_to_number(self, digits: str, text: str) -> str:
        """Open ``/send?phone=`` with ``text`` in the box and send it (an order notification)."""
        self.driver.get(f"{self.url}send?phone={digits}&text={quote(text)}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dialogs = [
                d
                for d in self.driver.find_elements(By.CSS_SELECTOR, s.INVALID_DIALOG.any)
                if "invalid" in d.text.lower()
            ]
            if dialogs:
                buttons = dialogs[0].find_elements(By.CSS_SELECTOR, s.DIALOG_OK)
                if buttons:
                    buttons[0].click()
                raise NotSent(f"WhatsApp says {digits} is not a valid number")
            if self._has(s.OPEN_CHAT) and self._has(s.COMPOSE):
                before = {m.data_id for m in self.messages()}
                self._click_send()
                return self._confirm_sent(before)
            self.wait_for_change(1.0)
        raise NotSent(f"the chat with {digits} did not open")

    def _wait_until(self, condition, timeout_s: float, concern: s.Concern) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise PageChanged(concern)
            self.wait_for_change(0.5)
