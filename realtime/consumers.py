"""The dashboard's websocket at /ws/: translates frames to calls and room events to frames.

The rules live elsewhere: ``realtime.protocol`` (frame shapes and refusals), ``realtime.auth``
(who may join), ``realtime.status`` (service statuses), ``realtime.bots`` (commands to bots),
``realtime.flood`` (rate limits).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from bots.adapters import web
from realtime import protocol, status
from realtime.auth import RoomRefused, staff_user_for_token
from realtime.bots import NoBotRunning, asend_bot_command
from realtime.events import DRAIN_OUTBOX
from realtime.flood import FloodGuard
from realtime.groups import ROOM_GROUPS, SIMULATOR_ROOM, bot_group
from realtime.protocol import ProtocolError
from realtime.sweeper import ensure_sweeper

logger = logging.getLogger(__name__)

FLOOD_CLOSE_CODE = 4008
WELCOME = "Bem-vindo ao Marketplace Bot."
BOT_COMMANDS = ("generate_session", "logout_session", "send_message", "release_chat")
# The simulator's chats are served here, in the server: its "bot" is every Simulator client.
WEB_BOT_GROUP = bot_group("Web")


class DashboardConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.rooms: set[str] = set()
        self.flood = FloodGuard()
        self.closed_for_flooding = False
        await self.accept()
        ensure_sweeper()
        await self.send_frame(protocol.frame("welcome", {"message": WELCOME}))

    async def disconnect(self, code: int) -> None:
        for room in getattr(self, "rooms", ()):
            await self.channel_layer.group_discard(ROOM_GROUPS[room], self.channel_name)
            if room == SIMULATOR_ROOM:
                await self.channel_layer.group_discard(WEB_BOT_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed_for_flooding:
            # Frames the flood had queued before the close: dropped at the least cost, so one
            # flooding client does not take the server's time from everyone else.
            return
        if not self.flood.allow():
            if self.flood.should_close:
                self.closed_for_flooding = True
                await self.close(code=FLOOD_CLOSE_CODE)
            else:
                await self.send_frame(
                    protocol.error_frame(protocol.TOO_MANY, "Muitas mensagens: desacelere.")
                )
            return
        frame = None
        try:
            frame = protocol.parse_frame(text_data, bytes_data)
            await self.dispatch_frame(frame)
        except ProtocolError as refused:
            await self.send_frame(refused.as_frame())
        except (RedisError, TimeoutError) as failure:
            logger.warning("Redis unavailable while handling %s: %s",
                           frame.event if frame else "a frame",
                           failure or type(failure).__name__)  # fmt: skip
            await self.send_frame(
                protocol.error_frame(
                    protocol.UNAVAILABLE,
                    "Serviço temporariamente indisponível; tente de novo.",
                    frame.event if frame else None,
                )
            )

    async def dispatch_frame(self, frame: protocol.Frame) -> None:
        if frame.event == "join_room":
            await self.join_room(frame)
            return
        room = protocol.required_room(frame.event)
        if room not in self.rooms:
            raise ProtocolError(
                protocol.UNAUTHORIZED, f"Entre na sala {room} antes de enviar {frame.event}.",
                frame.event,
            )  # fmt: skip
        data = protocol.validate(frame)
        if frame.event == "check_services":
            await self.send_frame(protocol.frame("services_status", await status.aget_statuses()))
        elif frame.event == "test_message":
            await web.test_message(chat=data["chat"], name=data["name"], text=data["text"])
        elif frame.event == "send_message" and data["service"] == web.WEB:
            await web.agent_message(chat=data["chat"], text=data["text"])
        elif frame.event == "release_chat" and data["service"] == web.WEB:
            await web.release_chat(chat=data["chat"])
        elif frame.event in BOT_COMMANDS:
            try:
                await asend_bot_command(data["service"], frame.event, data)
            except NoBotRunning as missing:
                raise ProtocolError(protocol.CONFLICT, str(missing), frame.event) from None

    async def join_room(self, frame: protocol.Frame) -> None:
        try:
            data = protocol.validate(frame)
        except ProtocolError as refused:
            await self.send_frame(
                protocol.frame("accept_in_room", {"status": 400, "message": refused.message})
            )
            return
        try:
            await database_sync_to_async(staff_user_for_token)(frame.data.get("auth"))
        except RoomRefused as refused:
            await self.send_frame(
                protocol.frame("accept_in_room", {"status": 403, "message": str(refused)})
            )
            return
        room = data["room"]
        await self.channel_layer.group_add(ROOM_GROUPS[room], self.channel_name)
        self.rooms.add(room)
        await self.send_frame(protocol.frame("accept_in_room", {"status": 200, "room": room}))
        if room == SIMULATOR_ROOM:
            await self.channel_layer.group_add(WEB_BOT_GROUP, self.channel_name)
            await self.bot_command({"command": DRAIN_OUTBOX})  # told while no simulator was open

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Room events touch no database: skip the connection clean-up Channels runs before every
        # handler, a hop to the sync thread that was most of the cost of a broadcast (bench).
        if message["type"] == "room.event":
            await self.room_event(message)
        else:
            await super().dispatch(message)

    async def room_event(self, message: dict[str, Any]) -> None:
        """A room's event, from any process, forwarded as a frame."""
        try:
            await self.send_frame(protocol.frame(message["event"], message["data"]))
        except RuntimeError:
            # The client went away while the event was on its way (uvicorn refuses a send after
            # its close handshake). Nothing to deliver; the disconnect that follows cleans up.
            logger.debug("room event for a closing connection dropped", exc_info=True)

    async def bot_command(self, message: dict[str, Any]) -> None:
        """A command for the simulator's "bot": the outbox has new web notifications."""
        if message.get("command") == DRAIN_OUTBOX:
            try:
                await web.drain_outbox()
            except Exception:  # the next wake-up or join tries again; the rows are kept
                logger.warning("simulator outbox drain failed", exc_info=True)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))
