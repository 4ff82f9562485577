"""The dashboard's "Testar o bot" channel: the shop owner chats with the engine as a customer.

The third adapter, as thin as the others: a ``test_message`` frame becomes an ``IncomingMessage``
of service ``Web`` and every reply a ``test_reply`` event in the ``Simulator`` room. It runs in the
server process, called by the websocket consumer.
"""

from __future__ import annotations

import uuid

from channels.layers import get_channel_layer

from bots.chat import WEB, IncomingMessage, Reply
from bots.gateway import ChatGateway
from realtime.groups import SIMULATOR_GROUP, room_event

_gateway: ChatGateway | None = None


def gateway() -> ChatGateway:
    global _gateway
    if _gateway is None:
        _gateway = ChatGateway(WEB)
    return _gateway


async def test_message(*, chat: str, name: str, text: str) -> None:
    """A message typed in the simulator; the replies go to the ``Simulator`` room in order."""
    message = IncomingMessage(
        service=WEB, chat=chat, message_id=uuid.uuid4().hex, text=text, customer_name=name
    )
    for reply in await gateway().handle(message):
        await send(chat, reply)


async def send(chat: str, reply: Reply) -> None:
    await get_channel_layer().group_send(
        SIMULATOR_GROUP,
        room_event(
            "test_reply", {"chat": chat, "text": reply.text, "buttons": list(reply.buttons)}
        ),
    )


async def agent_message(*, chat: str, text: str) -> None:
    """``send_message`` from the Conversations room for a simulator chat."""
    await gateway().agent_message(chat=chat, text=text)
    await send(chat, Reply(text))


async def release_chat(*, chat: str) -> None:
    await send(chat, await gateway().release(chat=chat))


async def drain_outbox() -> int:
    """Order notifications of simulator customers, shown in the simulator."""
    return await gateway().drain_outbox(send)
