"""A local stand-in of the Telegram Bot API (https://core.telegram.org/bots/api), for tests.

It speaks the published HTTP contract, as a real client meets it, on 127.0.0.1:

* requests go to ``{api_url}/bot<token>/<method>`` (method names are case-insensitive), GET or
  POST, with parameters in the query string and/or the body as ``application/json``,
  ``application/x-www-form-urlencoded`` or ``multipart/form-data`` (in form encodings complex
  fields such as ``reply_markup`` or ``allowed_updates`` are JSON-serialized strings);
* files are downloaded from ``{api_url}/file/bot<token>/<file_path>`` (see ``getFile``);
* every answer is JSON: ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code": N, "description": "..."}`` with the same HTTP status
  (429 adds ``"parameters": {"retry_after": N}``).

Methods: getMe, getUpdates (long polling), sendMessage, sendPhoto, sendChatAction,
answerCallbackQuery, editMessageText, editMessageReplyMarkup, deleteMessage, getFile, setWebhook,
deleteWebhook, getWebhookInfo, setMyCommands, getMyCommands, deleteMyCommands. Anything else
answers 404 "Not Found".

Texts are parsed as Telegram does (``parse_mode`` HTML, MarkdownV2 or Markdown): the Message
keeps the plain text plus ``entities``, malformed markup is 400 "Bad Request: can't parse
entities: ...", leading/trailing whitespace is trimmed and the 4096-character limit applies to the
parsed text. A bot can only write to a chat whose user has written to it (else 400 "Bad Request:
chat not found"), as in a private chat. ``editMessageText`` without ``reply_markup`` removes the
inline keyboard, and an edit that changes nothing is 400 "Bad Request: message is not modified:
...". A second ``getUpdates`` while one is waiting ends the first one with 409 "Conflict:
terminated by other getUpdates request; ...". Webhooks are recorded (HTTPS URLs only) but updates
are not pushed to them.

For python-telegram-bot: ``Bot(token, base_url=f"{standin.api_url}/bot",
base_file_url=f"{standin.api_url}/file/bot")``.

The test drives the user's side through :class:`TelegramStandIn` (``user_says``,
``user_presses``...) and inspects what the bot did (``sent``, ``edits``, ``calls``...).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["TelegramStandIn", "UploadedFile"]

BOT_FIRST_NAME = "Loja Teste"
BOT_USERNAME = "loja_teste_bot"
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024

# An 8x6 JPEG, the default content of the photos users send.
DEFAULT_PHOTO = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4"
    "UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAGAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
    "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRol"
    "JicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAA"
    "AAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLR"
    "ChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaX"
    "mJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEA"
    "PwCSiiivGPWP/9k="
)

_METHODS = (
    "getMe",
    "getUpdates",
    "sendMessage",
    "sendPhoto",
    "sendChatAction",
    "answerCallbackQuery",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "getFile",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
)
_CANONICAL = {name.lower(): name for name in _METHODS}

# Parameters that form encodings carry as JSON-serialized strings.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "commands",
        "scope",
        "media",
        "results",
    }
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


class _ApiError(Exception):
    """An unsuccessful answer of the API."""

    def __init__(self, error_code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


class _Aborted(Exception):
    """The server is stopping: the request gets no answer (the connection is dropped)."""


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart/form-data request (how parameters carry uploads)."""

    filename: str | None
    content_type: str
    content: bytes


@dataclass
class _Described:
    """A successful result that also carries a ``description`` (as setWebhook's do)."""

    result: Any
    description: str


# --- parameters -----------------------------------------------------------------------------


def _parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = _form_value(key, value)
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise _bad("can't parse JSON object") from exc
            if not isinstance(data, dict):
                raise _bad("can't parse JSON object")
            params.update(data)
    elif mime == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise _bad("can't parse multipart/form-data")
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                params[name] = UploadedFile(filename, part.get_content_type(), payload)
            else:
                charset = part.get_content_charset() or "utf-8"
                params[name] = _form_value(name, payload.decode(charset, "replace"))
    elif body.strip():  # application/x-www-form-urlencoded (and clients that do not say)
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            params[key] = _form_value(key, value)
    return params


def _form_value(key: str, value: str) -> Any:
    if key in _JSON_FIELDS and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value  # the method reports the field it cannot parse
    return value


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _int_param(params: dict, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    number = _to_int(value)
    if number is None:
        try:
            number = int(float(value))
        except (TypeError, ValueError) as exc:
            raise _bad(f'field "{name}" must be of type Integer') from exc
    return number


def _bool_param(params: dict, name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _str_param(params: dict, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, UploadedFile):
        return value.content.decode("utf-8", "replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_param(params: dict, name: str, error: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _bad(error) from exc
    return value


# --- formatted text -------------------------------------------------------------------------


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8", "surrogatepass"))


def _entities_error(detail: str) -> _ApiError:
    return _bad(f"can't parse entities: {detail}")


class _TextBuilder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict] = []

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.pos += _u16(text)

    def entity(self, type_: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append(
                {"offset": start, "length": self.pos - start, "type": type_, **extra}
            )

    def result(self) -> tuple[str, list[dict]]:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


_HTML_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_HTML_TAGS = frozenset({*_HTML_SIMPLE, "a", "span", "tg-emoji"})
_TAG_RE = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
    r"((?:\s+[a-zA-Z][a-zA-Z0-9-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*/?>"
)
_ATTR_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+)))?")
_CHARREF_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")
_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_charref(ref: str) -> str | None:
    if ref.startswith(("#x", "#X")):
        code = int(ref[2:], 16)
    elif ref.startswith("#"):
        code = int(ref[1:])
    else:
        return _NAMED_REFS.get(ref.lower())
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return None


def _parse_html(source: str) -> tuple[str, list[dict]]:
    out = _TextBuilder()
    stack: list[tuple[str, dict | None, int]] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "<":
            match = _TAG_RE.match(source, i)
            offset = _byte_offset(source, i)
            if match is None:
                name = re.match(r"</?([^\s<>/]*)", source[i:])
                raise _entities_error(
                    f'Unsupported start tag "{name.group(1) if name else ""}" '
                    f"at byte offset {offset}"
                )
            closing, name, raw_attributes = match.group(1), match.group(2), match.group(3)
            tag = name.lower()
            if closing:
                if not stack:
                    raise _entities_error(f'Unexpected end tag "{tag}" at byte offset {offset}')
                open_tag, entity, start = stack.pop()
                if open_tag != tag:
                    raise _entities_error(
                        f'Unmatched end tag at byte offset {offset}, expected "</{open_tag}>", '
                        f'found "</{tag}>"'
                    )
                if entity is not None:
                    extra = {k: v for k, v in entity.items() if k != "type"}
                    out.entity(entity["type"], start, **extra)
            else:
                if tag not in _HTML_TAGS:
                    raise _entities_error(f'Unsupported start tag "{tag}" at byte offset {offset}')
                attributes = {
                    m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
                    for m in _ATTR_RE.finditer(raw_attributes)
                }
                stack.append((tag, _html_entity(tag, attributes, stack, offset), out.pos))
            i = match.end()
            continue
        if char == "&":
            match = _CHARREF_RE.match(source, i)
            decoded = _html_charref(match.group(1)) if match else None
            if match and decoded is not None:
                out.emit(decoded)
                i = match.end()
                continue
        out.emit(char)
        i += 1
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _html_entity(
    tag: str, attributes: dict[str, str], stack: list[tuple[str, dict | None, int]], offset: int
) -> dict | None:
    if tag == "a":
        href = attributes.get("href")
        return {"type": "text_link", "url": href} if href else None
    if tag == "span":
        if attributes.get("class") != "tg-spoiler":
            raise _entities_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        return {"type": "spoiler"}
    if tag == "tg-emoji":
        emoji_id = attributes.get("emoji-id")
        if not emoji_id:
            raise _entities_error(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {offset}'
            )
        return {"type": "custom_emoji", "custom_emoji_id": emoji_id}
    if tag == "code" and stack and stack[-1][0] == "pre" and stack[-1][1] is not None:
        language = attributes.get("class", "")
        if language.startswith("language-"):
            stack[-1][1]["language"] = language[len("language-") :]
        return None
    if tag == "blockquote" and "expandable" in attributes:
        return {"type": "expandable_blockquote"}
    return {"type": _HTML_SIMPLE[tag]}


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
}


def _find_unescaped(source: str, start: int, delimiter: str) -> int:
    i = start
    while i < len(source):
        if source[i] == "\\":
            i += 2
        elif source.startswith(delimiter, i):
            return i
        else:
            i += 1
    return -1


def _unescape_markdown_v2(text: str) -> str:
    return re.sub(r"\\([\x01-\x7e])", r"\1", text)


def _split_language(content: str) -> tuple[str, str]:
    if "\n" in content:
        first, rest = content.split("\n", 1)
        if not re.search(r"\s", first):
            return first, rest
    return "", content


def _parse_markdown_v2(source: str) -> tuple[str, list[dict]]:
    out = _TextBuilder()
    open_styles: dict[str, tuple[int, int]] = {}
    links: list[tuple[int, int, bool]] = []
    quote_start: int | None = None
    quote_end = 0
    at_line_start = True
    i, n = 0, len(source)

    def toggle(style: str, index: int) -> None:
        if style in open_styles:
            start, _ = open_styles.pop(style)
            out.entity(style, start)
        else:
            open_styles[style] = (out.pos, index)

    while i < n:
        char = source[i]
        if at_line_start:
            at_line_start = False
            if char == ">":
                if quote_start is None:
                    quote_start = out.pos
                i += 1
                continue
            if quote_start is not None:
                out.entities.append(
                    {"offset": quote_start, "length": quote_end - quote_start, "type": "blockquote"}
                )
                quote_start = None
        if char == "\\":
            if i + 1 < n and 0 < ord(source[i + 1]) < 127:
                out.emit(source[i + 1])
                i += 2
            else:
                out.emit(char)
                i += 1
            continue
        if char == "`":
            pre = source.startswith("```", i)
            delimiter = "```" if pre else "`"
            end = _find_unescaped(source, i + len(delimiter), delimiter)
            if end == -1:
                kind = "Pre" if pre else "Code"
                raise _entities_error(
                    f"Can't find end of {kind} entity at byte offset {_byte_offset(source, i)}"
                )
            content = source[i + len(delimiter) : end]
            language = ""
            if pre:
                language, content = _split_language(content)
            start = out.pos
            out.emit(_unescape_markdown_v2(content))
            if pre:
                out.entity("pre", start, **({"language": language} if language else {}))
            else:
                out.entity("code", start)
            i = end + len(delimiter)
            continue
        if char == "*":
            toggle("bold", i)
            i += 1
        elif char == "_":
            if source.startswith("__", i):
                toggle("underline", i)
                i += 2
            else:
                toggle("italic", i)
                i += 1
        elif char == "~":
            toggle("strikethrough", i)
            i += 1
        elif char == "|" and source.startswith("||", i):
            toggle("spoiler", i)
            i += 2
        elif char == "[":
            links.append((out.pos, i, False))
            i += 1
        elif char == "!" and source.startswith("![", i):
            links.append((out.pos, i, True))
            i += 2
        elif char == "]" and links and source.startswith("(", i + 1):
            end = _find_unescaped(source, i + 2, ")")
            if end == -1:
                raise _entities_error(
                    f"Can't find end of a URL at byte offset {_byte_offset(source, i + 1)}"
                )
            url = _unescape_markdown_v2(source[i + 2 : end])
            start, _, emoji = links.pop()
            if emoji:
                emoji_id = url.rsplit("id=", 1)[-1]
                out.entity("custom_emoji", start, custom_emoji_id=emoji_id)
            else:
                out.entity("text_link", start, url=url)
            i = end + 1
        elif char in _MDV2_RESERVED:
            raise _entities_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            if char == "\n":
                if quote_start is not None:
                    quote_end = out.pos
                at_line_start = True
            out.emit(char)
            i += 1
    if quote_start is not None:
        out.entity("blockquote", quote_start)
    if open_styles:
        style, (_, index) = min(open_styles.items(), key=lambda item: item[1][1])
        raise _entities_error(
            f"Can't find end of {_MDV2_NAMES[style]} entity at byte offset "
            f"{_byte_offset(source, index)}"
        )
    if links:
        raise _entities_error(
            f"Can't find end of TextUrl entity at byte offset {_byte_offset(source, links[0][1])}"
        )
    return out.result()


def _parse_markdown(source: str) -> tuple[str, list[dict]]:
    """The legacy ``Markdown`` mode: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out = _TextBuilder()
    i, n = 0, len(source)

    def missing_end(index: int) -> _ApiError:
        return _entities_error(
            f"Can't find end of the entity starting at byte offset {_byte_offset(source, index)}"
        )

    while i < n:
        char = source[i]
        if char == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.emit(source[i + 1])
            i += 2
        elif char in "*_":
            end = source.find(char, i + 1)
            if end == -1:
                raise missing_end(i)
            start = out.pos
            out.emit(source[i + 1 : end])
            out.entity("bold" if char == "*" else "italic", start)
            i = end + 1
        elif char == "`":
            delimiter = "```" if source.startswith("```", i) else "`"
            end = source.find(delimiter, i + len(delimiter))
            if end == -1:
                raise missing_end(i)
            content = source[i + len(delimiter) : end]
            start = out.pos
            if delimiter == "```":
                language, content = _split_language(content)
                out.emit(content)
                out.entity("pre", start, **({"language": language} if language else {}))
            else:
                out.emit(content)
                out.entity("code", start)
            i = end + len(delimiter)
        elif char == "[":
            close = source.find("]", i + 1)
            if close == -1:
                raise missing_end(i)
            if not source.startswith("(", close + 1):
                out.emit(source[i : close + 1])
                i = close + 1
                continue
            url_end = source.find(")", close + 2)
            if url_end == -1:
                raise missing_end(i)
            start = out.pos
            out.emit(source[i + 1 : close])
            out.entity("text_link", start, url=source[close + 2 : url_end])
            i = url_end + 1
        else:
            out.emit(char)
            i += 1
    return out.result()


def _strip(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Trim surrounding whitespace, as Telegram does, keeping the entities in place."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = _u16(text[: len(text) - len(text.lstrip())])
    total = _u16(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def _formatted(params: dict, text_field: str, entities_field: str) -> tuple[str, list[dict]]:
    """The text of a message or caption after entity parsing (not yet length-checked)."""
    source = _str_param(params, text_field) or ""
    explicit = _json_param(params, entities_field, f"can't parse {entities_field} JSON object")
    if explicit:
        if not isinstance(explicit, list):
            raise _bad(f"can't parse {entities_field} JSON object")
        return _strip(source, [dict(e) for e in explicit if isinstance(e, dict)])
    parse_mode = (_str_param(params, "parse_mode") or "").strip()
    parsers = {"html": _parse_html, "markdownv2": _parse_markdown_v2, "markdown": _parse_markdown}
    if not parse_mode:
        return _strip(source, [])
    parser = parsers.get(parse_mode.lower())
    if parser is None:
        raise _bad("unsupported parse_mode")
    return _strip(*parser(source))


_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")


def _command_entities(text: str) -> list[dict]:
    return [
        {"offset": _u16(text[: m.start()]), "length": _u16(m.group()), "type": "bot_command"}
        for m in _COMMAND_RE.finditer(text)
    ]


# --- keyboards ------------------------------------------------------------------------------

_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def _reply_markup(params: dict) -> dict | None:
    markup = _json_param(params, "reply_markup", "can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad(
                'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                _check_inline_button(button)
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays')
    elif "remove_keyboard" not in markup and "force_reply" not in markup:
        raise _bad("can't parse reply keyboard markup JSON object")
    return copy.deepcopy(markup)


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    if not isinstance(button.get("text"), str):
        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not any(action in button for action in _BUTTON_ACTIONS):
        raise _bad(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise _bad("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https", "tg") or not parts.netloc:
            raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _inline_keyboard(markup: dict | None) -> dict | None:
    """What a Message shows of a reply_markup: only a non-empty inline keyboard."""
    if markup and markup.get("inline_keyboard"):
        return {"inline_keyboard": copy.deepcopy(markup["inline_keyboard"])}
    return None


# --- the server -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        try:
            status, content_type, data = self.server.standin._handle_http(
                self.path, self.headers.get("Content-Type", ""), body
            )
        except _Aborted:
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: TelegramStandIn):
        self.standin = standin
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients going away while we answer are expected (e.g. at stop())


class TelegramStandIn:
    """The Telegram Bot API on 127.0.0.1, with the users' side driven by the test.

    State (chats, messages, pending updates, webhook) survives ``stop()``/``start()``: only the
    network goes away, as when api.telegram.org is unreachable.
    """

    def __init__(self, token: str = "123456:TEST-TOKEN", port: int | None = None):
        bot_id = _to_int(token.split(":", 1)[0])
        if bot_id is None or ":" not in token:
            raise ValueError(f"not a bot token (<bot id>:<secret>): {token!r}")
        self.token = token
        if port is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port: int = port
        self._bot_id = bot_id
        self._cond = threading.Condition(threading.RLock())
        self._lifecycle = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._refused = False
        self._failures: dict[str, list[_ApiError]] = {}
        self._calls: list[dict] = []
        self.internal_errors: list[BaseException] = []  # bugs of the stand-in (answered 500)
        # chats and messages
        self._users: dict[int, dict] = {}
        self._chats: dict[int, dict] = {}
        self._blocked: set[int] = set()
        self._next_message_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._bot_messages: set[tuple[int, int]] = set()
        self._sent: list[dict] = []
        self._edits: list[dict] = []
        # updates
        self._update_ids = itertools.count(500_000_001)
        self._updates: list[dict] = []
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._poll_terminated_by = ""
        # callback queries
        self._query_ids = itertools.count(6_200_000_000_000_000_001)
        self._open_queries: set[str] = set()
        self._answered: list[dict] = []
        # files, webhook, commands
        self._file_counter = itertools.count(1)
        self._files: dict[str, dict] = {}
        self._file_paths: dict[str, str] = {}
        self._photos: dict[str, list[dict]] = {}
        self._webhook: dict | None = None
        self._commands: dict[str, list[dict]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self._lifecycle:
            if self._server is not None:
                return
            server = _Server(("127.0.0.1", self.port), self)
            with self._cond:
                self._stopping = False
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"telegram-standin-{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread

    def stop(self) -> None:
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            server.shutdown()  # no new connections are served
            with self._cond:
                self._stopping = True  # pending long polls end, unanswered
                self._cond.notify_all()
            with server.connections_lock:
                connections = list(server.connections)
            for connection in connections:  # idle keep-alive connections too
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            server.server_close()  # closes the listening socket, joins the handler threads
            thread.join()
            self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> TelegramStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- controls ---------------------------------------------------------------------------

    def refuse_token(self, refused: bool = True) -> None:
        """Every call answers 401 Unauthorized, as for a revoked token."""
        with self._cond:
            self._refused = refused

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` fail that way, without doing anything."""
        canonical = _CANONICAL.get(method.lower())
        if canonical is None:
            raise ValueError(f"the stand-in does not implement {method!r}")
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, "Internal Server Error")
        parameters = {"retry_after": retry_after} if error_code == 429 else None
        with self._cond:
            queue = self._failures.setdefault(canonical, [])
            queue.extend(_ApiError(error_code, description, parameters) for _ in range(times))

    def user_blocks_bot(self, chat_id: int, blocked: bool = True) -> None:
        """Sending to the chat answers 403 "Forbidden: bot was blocked by the user"."""
        with self._cond:
            if blocked:
                self._blocked.add(chat_id)
            else:
                self._blocked.discard(chat_id)

    # --- the users' side --------------------------------------------------------------------

    def user_says(
        self, chat_id: int, text: str, *, first_name: str = "Ana", last_name: str | None = None
    ) -> dict:
        """Queue a private-chat ``message`` update; returns the Message."""
        text = text.strip()
        if not text or len(text) > MESSAGE_LIMIT:
            raise ValueError(f"a Telegram message has 1-{MESSAGE_LIMIT} characters")
        with self._cond:
            message = self._user_message(chat_id, first_name, last_name)
            message["text"] = text
            entities = _command_entities(text)
            if entities:
                message["entities"] = entities
            return self._deliver(chat_id, message)

    def user_sends_photo(
        self,
        chat_id: int,
        *,
        first_name: str = "Ana",
        caption: str | None = None,
        content: bytes = DEFAULT_PHOTO,
    ) -> dict:
        """Queue a private-chat message with a ``photo`` (three PhotoSizes); returns it.

        ``content`` is what getFile + the file URL serve for each size.
        """
        with self._cond:
            message = self._user_message(chat_id, first_name, None)
            message["photo"] = self._new_photo(content)
            if caption:
                message["caption"] = caption.strip()[:CAPTION_LIMIT]
                entities = _command_entities(message["caption"])
                if entities:
                    message["caption_entities"] = entities
            return self._deliver(chat_id, message)

    def user_presses(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        first_name: str = "Ana",
        forged: bool = False,
    ) -> dict:
        """Queue a ``callback_query`` update for a button of a bot message; returns it.

        The message must be the bot's and (unless ``forged``: a bad client can send any data)
        show an inline button with that ``callback_data``.
        """
        with self._cond:
            key = (chat_id, message_id)
            message = self._messages.get(key)
            if message is None or key not in self._bot_messages:
                raise ValueError(f"the bot has no message {message_id} in chat {chat_id}")
            if not forged:
                buttons = [
                    button.get("callback_data")
                    for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                    for button in row
                ]
                if data not in buttons:
                    raise AssertionError(
                        f"message {message_id} in chat {chat_id} has no button with "
                        f"callback_data {data!r}; its buttons: {buttons!r}"
                    )
            user = self._meet(chat_id, first_name, self._users[chat_id].get("last_name"))
            query = {
                "id": str(next(self._query_ids)),
                "from": dict(user),
                "message": copy.deepcopy(message),
                "chat_instance": str((chat_id * 1_000_003 + 4_242_424_242) % 2**63),
                "data": data,
            }
            self._open_queries.add(query["id"])
            self._queue_update("callback_query", query)
            return copy.deepcopy(query)

    # --- what the bot did -------------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Messages the bot sent, in order, as sent (with the ``reply_markup`` it gave)."""
        with self._cond:
            return [
                copy.deepcopy(m)
                for m in self._sent
                if chat_id is None or m["chat"]["id"] == chat_id
            ]

    def wait_for_sent(self, chat_id: int, count: int, timeout: float = 10) -> list[dict]:
        """Block until the bot has sent at least ``count`` messages to the chat; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(messages := self.sent(chat_id)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected at least {count} bot messages in chat {chat_id} within "
                        f"{timeout}s, got {len(messages)}: {[_shown(m) for m in messages]!r}"
                    )
                self._cond.wait(remaining)
            return messages

    def wait_for_text(self, chat_id: int, contains: str, timeout: float = 10) -> dict:
        """The first bot message to the chat whose text (or caption) contains ``contains``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                messages = self.sent(chat_id)
                for message in messages:
                    if contains in _shown(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no bot message in chat {chat_id} contains {contains!r} within "
                        f"{timeout}s; sent: {[_shown(m) for m in messages]!r}"
                    )
                self._cond.wait(remaining)

    def edits(self, chat_id: int | None = None) -> list[dict]:
        """Successful editMessageText calls, in order: the Message as each edit left it."""
        with self._cond:
            return [
                copy.deepcopy(m)
                for m in self._edits
                if chat_id is None or m["chat"]["id"] == chat_id
            ]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """A message as the chat shows it now (after edits), or None (unknown or deleted)."""
        with self._cond:
            return copy.deepcopy(self._messages.get((chat_id, message_id)))

    def answered_callbacks(self) -> list[str]:
        """The callback_query ids answered with answerCallbackQuery, in order."""
        with self._cond:
            return [answer["callback_query_id"] for answer in self._answered]

    def callback_answers(self) -> list[dict]:
        """The answerCallbackQuery calls that succeeded: their parameters."""
        with self._cond:
            return copy.deepcopy(self._answered)

    def calls(self, method: str | None = None) -> list[dict]:
        """Every request, in arrival order: ``{"method", "params", "at", "status"}``.

        ``at`` is ``time.monotonic()`` on arrival; ``status`` is the HTTP status (None while
        pending, or when stop() dropped it).
        """
        wanted = _CANONICAL.get(method.lower(), method) if method else None
        with self._cond:
            return [
                copy.deepcopy(c) for c in self._calls if wanted is None or c["method"] == wanted
            ]

    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._cond:
            return len(self._updates)

    @property
    def webhook(self) -> dict | None:
        """``{"url", "secret_token"}`` while a webhook is set."""
        with self._cond:
            if self._webhook is None:
                return None
            return {"url": self._webhook["url"], "secret_token": self._webhook["secret_token"]}

    # --- internals: chats and updates -------------------------------------------------------

    def _meet(self, chat_id: int, first_name: str, last_name: str | None) -> dict:
        if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id <= 0:
            raise ValueError(f"a private chat id is the user's id, a positive int: {chat_id!r}")
        user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
        chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": first_name}
        if last_name:
            user["last_name"] = chat["last_name"] = last_name
        self._users[chat_id] = user
        self._chats[chat_id] = chat
        return user

    def _user_message(self, chat_id: int, first_name: str, last_name: str | None) -> dict:
        user = self._meet(chat_id, first_name, last_name)
        self._blocked.discard(chat_id)  # writing to the bot again restarts it
        return {
            "message_id": self._new_message_id(chat_id),
            "from": dict(user),
            "chat": dict(self._chats[chat_id]),
            "date": int(time.time()),
        }

    def _deliver(self, chat_id: int, message: dict) -> dict:
        self._messages[(chat_id, message["message_id"])] = message
        self._queue_update("message", message)
        return copy.deepcopy(message)

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _queue_update(self, kind: str, payload: dict) -> None:
        if self._allowed_updates is not None and kind not in self._allowed_updates:
            return  # Telegram does not create updates of types the bot did not ask for
        self._updates.append({"update_id": next(self._update_ids), kind: copy.deepcopy(payload)})
        self._cond.notify_all()

    def _new_photo(self, content: bytes) -> list[dict]:
        sizes = []
        for width, height in ((90, 68), (320, 240), (800, 600)):
            number = next(self._file_counter)
            file_id = f"AgACAgEAAxkBAAIC{number:08d}"
            unique_id = f"AQAD{number:08d}"
            self._files[file_id] = {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "file_size": len(content),
                "content": content,
            }
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": unique_id,
                    "file_size": len(content),
                    "width": width,
                    "height": height,
                }
            )
        for size in sizes:
            self._photos[size["file_id"]] = sizes
        return copy.deepcopy(sizes)

    def _bot_user(self) -> dict:
        return {
            "id": self._bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        }

    # --- internals: HTTP --------------------------------------------------------------------

    def _handle_http(self, path: str, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        arrived = time.monotonic()
        parts = urlsplit(path)
        path = unquote(parts.path)  # clients may percent-encode the token's ":"
        file_match = re.fullmatch(r"/file/bot([^/]*)/(.+)", path)
        if file_match:
            return self._serve_file(file_match.group(1), file_match.group(2), arrived)
        match = re.fullmatch(r"/bot([^/]*)/([^/]*)", path)
        token, name = (match.group(1), match.group(2)) if match else (None, path)
        method = _CANONICAL.get(name.lower(), name)
        record: dict[str, Any] = {"method": method, "params": {}, "at": arrived, "status": None}
        with self._cond:
            self._calls.append(record)
        try:
            params = _parse_params(parts.query, content_type, body)
            with self._cond:
                record["params"] = copy.deepcopy(params)
            result = self._dispatch(token, method, params)
        except _ApiError as error:
            status, payload = error.error_code, error.payload()
        except _Aborted:
            raise
        except Exception as error:  # a bug of the stand-in: say so, loudly
            traceback.print_exc()
            with self._cond:
                self.internal_errors.append(error)
            status, payload = 500, _ApiError(500, f"Internal Server Error: {error!r}").payload()
        else:
            status, payload = 200, {"ok": True, "result": result}
            if isinstance(result, _Described):
                payload = {"ok": True, "result": result.result, "description": result.description}
        with self._cond:
            record["status"] = status
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return status, "application/json", data

    def _serve_file(self, token: str, file_path: str, arrived: float) -> tuple[int, str, bytes]:
        with self._cond:
            record = {"method": "file", "params": {"file_path": file_path}, "at": arrived}
            file_id = self._file_paths.get(file_path)
            if self._refused or token != self.token:
                error: _ApiError | None = _ApiError(401, "Unauthorized")
            elif file_id is None:
                error = _ApiError(404, "Not Found")
            else:
                error = None
            record["status"] = error.error_code if error else 200
            self._calls.append(record)
            if error is not None:
                return error.error_code, "application/json", json.dumps(error.payload()).encode()
            content_type = (
                "image/jpeg" if file_path.endswith(".jpg") else "application/octet-stream"
            )
            return 200, content_type, self._files[file_id]["content"]

    def _dispatch(self, token: str | None, method: str, params: dict) -> Any:
        with self._cond:
            if token is None:
                raise _ApiError(404, "Not Found")
            if self._refused or token != self.token:
                raise _ApiError(401, "Unauthorized")
            if method not in _METHODS:
                raise _ApiError(404, "Not Found")
            failures = self._failures.get(method)
            if failures:
                raise failures.pop(0)
            return getattr(self, f"_api_{method}")(params)

    def _chat(self, params: dict, *, sending: bool = False) -> dict:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat_id = _to_int(raw)
        if chat_id is None or chat_id not in self._chats:
            raise _bad("chat not found")
        if sending and chat_id in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return self._chats[chat_id]

    def _bot_message(self, chat_id: int, message: dict, markup: dict | None) -> dict:
        self._messages[(chat_id, message["message_id"])] = message
        self._bot_messages.add((chat_id, message["message_id"]))
        record = copy.deepcopy(message)
        if markup is not None:
            record["reply_markup"] = copy.deepcopy(markup)
        self._sent.append(record)
        self._cond.notify_all()
        return copy.deepcopy(message)

    def _new_bot_message(self, params: dict, chat: dict) -> dict:
        chat_id = chat["id"]
        message: dict[str, Any] = {
            "message_id": 0,
            "from": self._bot_user(),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        reply_to = _to_int(params.get("reply_to_message_id"))
        allow_without = _bool_param(params, "allow_sending_without_reply")
        reply_parameters = _json_param(params, "reply_parameters", "can't parse reply parameters")
        if isinstance(reply_parameters, dict):
            reply_to = _to_int(reply_parameters.get("message_id"))
            allow_without = bool(reply_parameters.get("allow_sending_without_reply"))
        if reply_to is not None:
            replied = self._messages.get((chat_id, reply_to))
            if replied is not None:
                replied = {k: v for k, v in replied.items() if k != "reply_to_message"}
                message["reply_to_message"] = copy.deepcopy(replied)
            elif not allow_without:
                raise _bad("message to be replied not found")
        return message

    # --- internals: the methods -------------------------------------------------------------

    def _api_getMe(self, params: dict) -> dict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _api_getUpdates(self, params: dict) -> list[dict]:
        if self._webhook is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _int_param(params, "offset", 0) or 0
        limit = min(max(_int_param(params, "limit", 100) or 100, 1), 100)
        timeout = max(_int_param(params, "timeout", 0) or 0, 0)
        allowed = _json_param(params, "allowed_updates", "can't parse allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(map(str, allowed)) or None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        # an earlier getUpdates still waiting is terminated by this one
        self._poll_generation += 1
        self._poll_terminated_by = (
            "other getUpdates request; make sure that only one bot instance is running"
        )
        self._cond.notify_all()
        generation = self._poll_generation
        deadline = time.monotonic() + timeout
        while not self._updates:
            if self._stopping:
                raise _Aborted
            if generation != self._poll_generation:
                raise _ApiError(409, f"Conflict: terminated by {self._poll_terminated_by}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        return copy.deepcopy(self._updates[:limit])

    def _api_sendMessage(self, params: dict) -> dict:
        chat = self._chat(params, sending=True)
        if not params.get("text"):
            raise _bad("message text is empty")
        text, entities = _formatted(params, "text", "entities")
        if not text:
            raise _bad("message text is empty")
        if len(text) > MESSAGE_LIMIT:
            raise _bad("message is too long")
        markup = _reply_markup(params)
        message = self._new_bot_message(params, chat)
        message["message_id"] = self._new_message_id(chat["id"])
        message["text"] = text
        if entities:
            message["entities"] = entities
        if shown := _inline_keyboard(markup):
            message["reply_markup"] = shown
        return self._bot_message(chat["id"], message, markup)

    def _api_sendPhoto(self, params: dict) -> dict:
        chat = self._chat(params, sending=True)
        photo = params.get("photo")
        if isinstance(photo, UploadedFile):
            sizes = self._new_photo(photo.content)
        elif isinstance(photo, str) and photo.startswith("attach://"):
            attached = params.get(photo[len("attach://") :])
            if not isinstance(attached, UploadedFile):
                raise _bad("there is no photo in the request")
            sizes = self._new_photo(attached.content)
        elif isinstance(photo, str) and photo in self._photos:
            sizes = copy.deepcopy(self._photos[photo])
        elif isinstance(photo, str) and re.match(r"https?://", photo):
            sizes = self._new_photo(DEFAULT_PHOTO)
        elif not photo:
            raise _bad("there is no photo in the request")
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        caption, entities = _formatted(params, "caption", "caption_entities")
        if len(caption) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        markup = _reply_markup(params)
        message = self._new_bot_message(params, chat)
        message["message_id"] = self._new_message_id(chat["id"])
        message["photo"] = sizes
        if caption:
            message["caption"] = caption
        if entities:
            message["caption_entities"] = entities
        if shown := _inline_keyboard(markup):
            message["reply_markup"] = shown
        return self._bot_message(chat["id"], message, markup)

    def _api_sendChatAction(self, params: dict) -> bool:
        self._chat(params, sending=True)
        if _str_param(params, "action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _api_answerCallbackQuery(self, params: dict) -> bool:
        query_id = _str_param(params, "callback_query_id") or ""
        if query_id not in self._open_queries:
            raise _bad(_QUERY_INVALID)
        self._open_queries.discard(query_id)
        answer: dict[str, Any] = {"callback_query_id": query_id}
        for name in ("text", "url", "cache_time"):
            if params.get(name) not in (None, ""):
                answer[name] = params[name]
        answer["show_alert"] = _bool_param(params, "show_alert")
        self._answered.append(answer)
        return True

    def _edited_message(self, params: dict) -> dict:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._chat(params)
        message_id = _to_int(params.get("message_id"))
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = self._messages.get((chat["id"], message_id))
        if message is None:
            raise _bad("message to edit not found")
        if (chat["id"], message_id) not in self._bot_messages:
            raise _bad("message can't be edited")
        return message

    def _api_editMessageText(self, params: dict) -> dict:
        message = self._edited_message(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        if not params.get("text"):
            raise _bad("message text is empty")
        text, entities = _formatted(params, "text", "entities")
        if not text:
            raise _bad("message text is empty")
        if len(text) > MESSAGE_LIMIT:
            raise _bad("MESSAGE_TOO_LONG")
        shown = _inline_keyboard(_reply_markup(params))
        if (
            text == message["text"]
            and entities == message.get("entities", [])
            and shown == message.get("reply_markup")
        ):
            raise _bad(_NOT_MODIFIED)
        message["text"] = text
        message.pop("entities", None)
        message.pop("reply_markup", None)
        if entities:
            message["entities"] = entities
        if shown:
            message["reply_markup"] = shown
        message["edit_date"] = int(time.time())
        self._edits.append(copy.deepcopy(message))
        self._cond.notify_all()
        return copy.deepcopy(message)

    def _api_editMessageReplyMarkup(self, params: dict) -> dict:
        message = self._edited_message(params)
        shown = _inline_keyboard(_reply_markup(params))
        if shown == message.get("reply_markup"):
            raise _bad(_NOT_MODIFIED)
        message.pop("reply_markup", None)
        if shown:
            message["reply_markup"] = shown
        message["edit_date"] = int(time.time())
        self._cond.notify_all()
        return copy.deepcopy(message)

    def _api_deleteMessage(self, params: dict) -> bool:
        chat = self._chat(params)
        message_id = _to_int(params.get("message_id"))
        if message_id is None or (chat["id"], message_id) not in self._messages:
            raise _bad("message to delete not found")
        del self._messages[(chat["id"], message_id)]
        self._bot_messages.discard((chat["id"], message_id))
        return True

    def _api_getFile(self, params: dict) -> dict:
        file_id = _str_param(params, "file_id") or ""
        stored = self._files.get(file_id)
        if stored is None:
            raise _bad("invalid file_id")
        path = stored.get("file_path")
        if path is None:
            path = stored["file_path"] = f"photos/file_{len(self._file_paths)}.jpg"
            self._file_paths[path] = file_id
        return {k: stored[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    def _api_setWebhook(self, params: dict) -> _Described:
        url = (_str_param(params, "url") or "").strip()
        if not url:
            return self._delete_webhook(params)
        parts = urlsplit(url)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if parts.port not in (None, 80, 88, 443, 8443):
            raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = _str_param(params, "secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _bad("secret token contains unallowed characters")
        max_connections = _int_param(params, "max_connections", 40) or 40
        allowed = _json_param(params, "allowed_updates", "can't parse allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(map(str, allowed)) or None
        if _bool_param(params, "drop_pending_updates"):
            self._updates.clear()
        webhook = {"url": url, "secret_token": secret, "max_connections": max(1, max_connections)}
        already = self._webhook == webhook
        self._webhook = webhook
        # a waiting getUpdates is ended
        self._poll_generation += 1
        self._poll_terminated_by = "setWebhook request"
        self._cond.notify_all()
        return _Described(True, "Webhook is already set" if already else "Webhook was set")

    def _api_deleteWebhook(self, params: dict) -> _Described:
        return self._delete_webhook(params)

    def _delete_webhook(self, params: dict) -> _Described:
        if _bool_param(params, "drop_pending_updates"):
            self._updates.clear()
        existed = self._webhook is not None
        self._webhook = None
        return _Described(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    def _api_getWebhookInfo(self, params: dict) -> dict:
        info: dict[str, Any] = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._allowed_updates is not None:
                info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    def _commands_key(self, params: dict) -> str:
        scope = _json_param(params, "scope", "can't parse BotCommandScope JSON object")
        scope_type = scope.get("type", "default") if isinstance(scope, dict) else "default"
        return f"{scope_type}:{_str_param(params, 'language_code') or ''}"

    def _api_setMyCommands(self, params: dict) -> bool:
        commands = _json_param(params, "commands", "can't parse commands JSON object")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(
                r"[a-z0-9_]{1,32}", str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _api_getMyCommands(self, params: dict) -> list[dict]:
        return copy.deepcopy(self._commands.get(self._commands_key(params), []))

    def _api_deleteMyCommands(self, params: dict) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True


def _shown(message: dict) -> str:
    return message.get("text") or message.get("caption") or ""
