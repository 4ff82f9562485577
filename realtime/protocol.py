"""The frames of ../shared/protocol.md: parsing, validation and refusals, with no I/O.

The consumer hands every incoming frame to ``parse_frame`` and ``validate``; what comes back is
either a ``Frame`` whose data has the right shape, or a ``ProtocolError`` that becomes an ``error``
event. Nothing here touches the network, the database or Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from bots.chat import CHAT_SERVICES  # chats of the simulator ("Web") too: no bot process
from realtime.groups import CONVERSATIONS_ROOM, ROOMS, SERVICES_ROOM, SIMULATOR_ROOM
from realtime.status import SERVICES

MAX_FRAME_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4096

BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, TOO_MANY = 400, 401, 403, 404, 409, 429
UNAVAILABLE = 503


class ProtocolError(Exception):
    """A refused frame: becomes ``{"event": "error", "data": {"status", "message", "event"}}``."""

    def __init__(self, status: int, message: str, event: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.event = event

    def as_frame(self) -> dict[str, Any]:
        return error_frame(self.status, self.message, self.event)


def frame(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "data": data}


def error_frame(status: int, message: str, event: str | None = None) -> dict[str, Any]:
    return frame("error", {"status": status, "message": message, "event": event})


@dataclass(frozen=True)
class Frame:
    event: str
    data: dict[str, Any]


class _Empty(serializers.Serializer):
    pass


class _JoinRoom(serializers.Serializer):
    # "auth" is judged by realtime.auth: a missing or malformed token is a 403, not a 400.
    room = serializers.ChoiceField(choices=ROOMS)


class _Service(serializers.Serializer):
    service = serializers.ChoiceField(choices=SERVICES)


class _Chat(serializers.Serializer):
    service = serializers.ChoiceField(choices=CHAT_SERVICES)
    chat = serializers.CharField(max_length=200)


class _SendMessage(_Chat):
    text = serializers.CharField(max_length=MAX_TEXT_CHARS, trim_whitespace=False)


class _TestMessage(serializers.Serializer):
    chat = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=150, allow_blank=True, required=False, default="")
    text = serializers.CharField(max_length=MAX_TEXT_CHARS, allow_blank=True, trim_whitespace=False)


@dataclass(frozen=True)
class InboundEvent:
    shape: type[serializers.Serializer]
    room: str | None  # the room a client must have joined to send it


INBOUND: dict[str, InboundEvent] = {
    "join_room": InboundEvent(_JoinRoom, None),
    "check_services": InboundEvent(_Empty, SERVICES_ROOM),
    "generate_session": InboundEvent(_Service, SERVICES_ROOM),
    "logout_session": InboundEvent(_Service, SERVICES_ROOM),
    "send_message": InboundEvent(_SendMessage, CONVERSATIONS_ROOM),
    "release_chat": InboundEvent(_Chat, CONVERSATIONS_ROOM),
    "test_message": InboundEvent(_TestMessage, SIMULATOR_ROOM),
}


def parse_frame(text: str | None, binary: bytes | None) -> Frame:
    """The event and raw data of a frame, or ``ProtocolError`` (400 malformed, 404 unknown)."""
    if text is None:
        raise ProtocolError(BAD_REQUEST, "Binary frames are not accepted; send JSON text.")
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise ProtocolError(BAD_REQUEST, f"Frame too large: at most {MAX_FRAME_BYTES} bytes.")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested deeper than Python goes
        raise ProtocolError(BAD_REQUEST, "The frame is not valid JSON.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise ProtocolError(BAD_REQUEST, 'A frame is {"event": "<name>", "data": {...}}.')
    event = payload["event"]
    if event not in INBOUND:
        raise ProtocolError(NOT_FOUND, f"Unknown event {event[:60]!r}.", event[:60])
    data = payload.get("data", {})
    if not isinstance(data, dict):
        raise ProtocolError(BAD_REQUEST, "The data of a frame must be a JSON object.", event)
    return Frame(event=event, data=data)


def validate(frame_: Frame) -> dict[str, Any]:
    """The frame's data, checked against its event's shape; ``ProtocolError`` 400 if it is off."""
    shape = INBOUND[frame_.event].shape(data=frame_.data)
    if not shape.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in shape.errors.items()
        )
        raise ProtocolError(BAD_REQUEST, f"Invalid data: {problems}", frame_.event)
    return dict(shape.validated_data)


def required_room(event: str) -> str | None:
    return INBOUND[event].room
