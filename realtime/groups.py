"""Rooms of the protocol, the channel-layer groups behind them, and the message carrying an event.

Any process (server, bot, shop service) puts an event in a room by sending ``room_event(...)`` to
the room's group; every consumer in that group, in whichever server process, forwards it as a frame.
"""

from __future__ import annotations

from typing import Any

SERVICES_ROOM, ORDERS_ROOM, CONVERSATIONS_ROOM, SIMULATOR_ROOM = (
    "Services",
    "Orders",
    "Conversations",
    "Simulator",
)
ROOMS = (SERVICES_ROOM, ORDERS_ROOM, CONVERSATIONS_ROOM, SIMULATOR_ROOM)

SERVICES_GROUP = "room.services"
ORDERS_GROUP = "room.orders"
CONVERSATIONS_GROUP = "room.conversations"
SIMULATOR_GROUP = "room.simulator"

ROOM_GROUPS = {
    SERVICES_ROOM: SERVICES_GROUP,
    ORDERS_ROOM: ORDERS_GROUP,
    CONVERSATIONS_ROOM: CONVERSATIONS_GROUP,
    SIMULATOR_ROOM: SIMULATOR_GROUP,
}


def bot_group(service: str) -> str:
    """The group a running bot of ``service`` listens on for dashboard commands."""
    return f"bot.{service.lower()}"


def room_event(event: str, data: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer message that consumers turn into the frame ``{"event", "data"}``."""
    return {"type": "room.event", "event": event, "data": data}
