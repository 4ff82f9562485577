"""The link between the dashboard and the running bots, both ways, over the channel layer.

Dashboard → bot: ``asend_bot_command`` puts a command (``generate_session``, ``logout_session``,
``send_message``, ``release_chat``) in the bot's group, refusing with ``NoBotRunning`` when no bot
of that service heartbeats. Bot → dashboard: a bot process holds a ``BotLink``, which keeps its
heartbeat, reports its status, publishes QR codes and yields the commands addressed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import segno
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from realtime import status
from realtime.groups import SERVICES_GROUP, bot_group, room_event

logger = logging.getLogger(__name__)

BOT_COMMAND = "bot.command"


class NoBotRunning(Exception):
    def __init__(self, service: str) -> None:
        super().__init__(f"Nenhum bot do {service} em execução.")
        self.service = service


async def asend_bot_command(service: str, command: str, data: dict[str, Any]) -> None:
    """Deliver a dashboard command to the running bot of ``service``."""
    if not await status.abot_is_running(service):
        raise NoBotRunning(service)
    await get_channel_layer().group_send(
        bot_group(service), {"type": BOT_COMMAND, "command": command, "data": data}
    )


def qr_svg(payload: str) -> str:
    """The QR code of ``payload`` as a standalone SVG document, so clients need no QR library.

    Standalone means with its namespace: without ``xmlns`` a browser shows nothing when the SVG is
    used as an image (``<img src="data:image/svg+xml,...">``), which is how the dashboard shows it.
    """
    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(
        buffer, kind="svg", scale=4, border=2, xmldecl=False, svgns=True, nl=False
    )
    return buffer.getvalue().decode()


class BotLink:
    """A running bot's side of the link. Use ``async with BotLink("WhatsApp") as link:``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._layer = get_channel_layer()
        self._channel: str | None = None
        self._heartbeat: asyncio.Task | None = None
        self._said: tuple[int, str] | None = None  # the last status this bot reported

    async def __aenter__(self) -> BotLink:
        self._channel = await self._layer.new_channel()
        await self._layer.group_add(bot_group(self.service), self._channel)
        await status.aheartbeat(self.service)
        self._heartbeat = asyncio.create_task(self._beat(), name=f"{self.service}-heartbeat")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, *, final_status: int = status.DISCONNECTED) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._channel is not None:
            await self._layer.group_discard(bot_group(self.service), self._channel)
            self._channel = None
        try:
            await status.aclear_heartbeat(self.service)
            await status.aset_status(self.service, final_status)
        finally:
            await status.aclose_client()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(status.HEARTBEAT_INTERVAL)
            try:
                await status.aheartbeat(self.service, current=self._said)
            except (RedisError, OSError, TimeoutError) as failure:  # Redis away: beat on
                logger.warning("%s heartbeat failed (%s); retrying", self.service,
                               failure or type(failure).__name__)  # fmt: skip
            except Exception:  # nothing may end the heartbeat loop
                logger.exception("%s heartbeat failed; retrying", self.service)

    async def set_status(self, code: int, *, detail: str = "") -> bool:
        # Noted first: if Redis is away now, the heartbeat says it once Redis is back.
        self._said = (code, detail)
        return await status.aset_status(self.service, code, detail=detail)

    async def publish_qr(self, payload: str) -> None:
        await self._layer.group_send(
            SERVICES_GROUP,
            room_event("qr_code", {"service": self.service, "qr": payload, "svg": qr_svg(payload)}),
        )

    async def commands(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The dashboard's commands for this bot, in order, as ``(command, data)``."""
        assert self._channel is not None, "use BotLink as an async context manager"
        while True:
            message = await self._layer.receive(self._channel)
            if message.get("type") == BOT_COMMAND:
                yield message["command"], message.get("data", {})
