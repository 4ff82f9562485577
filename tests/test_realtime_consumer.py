"""The /ws/ protocol through the full ASGI stack (router, origin validator), with real Redis.

Each test speaks to ``marketplace.asgi.application`` as a dashboard would; the channel layer and
the status registry are the real ones, on the Redis of REDIS_URL.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import jwt
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from marketplace.asgi import application
from realtime import status
from realtime.bots import BotLink
from shop.models import OrderStatus

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture(autouse=True)
def clean_statuses(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"{status.KEY_PREFIX}*")
    if keys:
        client.delete(*keys)
    yield
    keys = client.keys(f"{status.KEY_PREFIX}*")
    if keys:
        client.delete(*keys)


async def connect(*headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    client = WebsocketCommunicator(application, "/ws/", headers=list(headers) or [ORIGIN])
    connected, _ = await client.connect()
    assert connected
    welcome = await client.receive_json_from()
    assert welcome["event"] == "welcome" and welcome["data"]["message"]
    return client


async def send(client: WebsocketCommunicator, event: str, data: object = None) -> None:
    frame = {"event": event} if data is None else {"event": event, "data": data}
    await client.send_to(text_data=json.dumps(frame))


async def next_event(client: WebsocketCommunicator, name: str, timeout: float = 3) -> dict:
    """The data of the next frame named ``name``, skipping others (broadcasts may interleave)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {name} within {timeout} s"
        frame = await client.receive_json_from(timeout=left)
        if frame["event"] == name:
            return frame["data"]


async def joined(client: WebsocketCommunicator, room: str, token: str) -> None:
    await send(client, "join_room", {"room": room, "auth": token})
    assert await next_event(client, "accept_in_room") == {"status": 200, "room": room}


# --- connection and frames -----------------------------------------------------------------------


async def test_a_foreign_origin_cannot_open_the_socket():
    client = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await client.connect()
    assert not connected


async def test_a_client_without_origin_is_refused_too():
    client = WebsocketCommunicator(application, "/ws/")
    connected, _ = await client.connect()
    assert not connected


@pytest.mark.parametrize(
    ("raw", "status_code", "event"),
    [
        ("not json at all", 400, None),
        ("[1, 2, 3]", 400, None),
        ('{"data": {}}', 400, None),
        ('{"event": 42}', 400, None),
        ('{"event": "dance"}', 404, "dance"),
        ('{"event": "check_services", "data": "oops"}', 400, "check_services"),
        ('{"event": "join_room", "data": []}', 400, "join_room"),
        # Nested deeper than Python's JSON decoder goes, in well under 64 KiB.
        ("[" * 50_000, 400, None),
        ('{"event": "join_room", "data": {"auth": ' + "[" * 30_000 + "}}", 400, None),
    ],
)
async def test_malformed_frames_get_an_error_and_the_connection_stays(raw, status_code, event):
    client = await connect()
    await client.send_to(text_data=raw)
    error = await next_event(client, "error")
    assert (error["status"], error["event"]) == (status_code, event)
    assert error["message"]
    await send(client, "check_services", {})  # still served
    assert (await next_event(client, "error"))["status"] == 401
    await client.disconnect()


async def test_binary_and_oversize_frames_are_refused():
    client = await connect()
    await client.send_to(bytes_data=b"\x00\x01")
    assert (await next_event(client, "error"))["status"] == 400
    huge = json.dumps({"event": "check_services", "data": {"pad": "x" * (64 * 1024)}})
    await client.send_to(text_data=huge)
    error = await next_event(client, "error")
    assert (error["status"] == 400 and "64" in error["message"]) or "large" in error["message"]
    await client.disconnect()


async def test_a_flood_is_refused_then_closed_with_4008():
    client = await connect()
    for _ in range(200):
        await send(client, "check_services", {})
    statuses, close_code = [], None
    while True:
        output = await client.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            close_code = output.get("code")
            break
        statuses.append(json.loads(output["text"])["data"]["status"])
    assert 401 in statuses  # the first frames were read (and refused for the room)
    assert 429 in statuses
    assert close_code == 4008
    await client.disconnect()


# --- join_room -----------------------------------------------------------------------------------


async def test_staff_join_every_room(staff_token):
    client = await connect()
    for room in ("Services", "Orders", "Conversations", "Simulator"):
        await joined(client, room, staff_token)
    await client.disconnect()


def _forged(user_id: int, **claims) -> str:
    payload = {"token_type": "access", "user_id": str(user_id), "jti": "x", **claims}
    return jwt.encode(payload, "not-our-secret-key-at-all-not-our-secret", algorithm="HS256")


@pytest.fixture
def bad_tokens(staff_user, make_user):
    customer = make_user("cliente")
    expired = AccessToken.for_user(staff_user)
    expired.set_exp(lifetime=-timedelta(minutes=1))
    unsigned = jwt.encode(
        {"token_type": "access", "user_id": str(staff_user.pk), "jti": "n", "exp": 4102444800},
        None,
        algorithm="none",
    )
    no_exp = jwt.encode(
        {"token_type": "access", "user_id": str(staff_user.pk), "jti": "e"},
        settings.SIMPLE_JWT["SIGNING_KEY"],
        algorithm="HS256",
    )
    return {
        "missing": None,
        "empty": "",
        "not a string": {"token": "x"},
        "garbage": "abc.def.ghi",
        "expired": str(expired),
        "forged": _forged(staff_user.pk, exp=4102444800),
        "alg none": unsigned,
        "no exp": no_exp,
        "refresh token": str(RefreshToken.for_user(staff_user)),
        "non-staff": str(AccessToken.for_user(customer)),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "empty",
        "not a string",
        "garbage",
        "expired",
        "forged",
        "alg none",
        "no exp",
        "refresh token",
        "non-staff",
    ],
)
async def test_bad_tokens_get_403(bad_tokens, kind):
    client = await connect()
    data = {"room": "Services"}
    if bad_tokens[kind] is not None:
        data["auth"] = bad_tokens[kind]
    await send(client, "join_room", data)
    answer = await next_event(client, "accept_in_room")
    assert answer["status"] == 403 and answer["message"]
    await send(client, "check_services", {})
    assert (await next_event(client, "error"))["status"] == 401
    await client.disconnect()


async def test_a_deactivated_staff_member_is_refused(staff_user, staff_token):
    staff_user.is_active = False
    await sync_to_async(staff_user.save)()
    client = await connect()
    await send(client, "join_room", {"room": "Services", "auth": staff_token})
    assert (await next_event(client, "accept_in_room"))["status"] == 403
    await client.disconnect()


@pytest.mark.parametrize("data", [{"room": "Kitchen", "auth": "x"}, {"auth": "x"}, {"room": 5}])
async def test_unknown_room_or_malformed_join_is_400(data):
    client = await connect()
    await send(client, "join_room", data)
    answer = await next_event(client, "accept_in_room")
    assert answer["status"] == 400 and answer["message"]
    await client.disconnect()


# --- Services room -------------------------------------------------------------------------------


async def test_check_services_needs_the_room_then_answers_every_service(staff_token):
    client = await connect()
    await send(client, "check_services", {})
    error = await next_event(client, "error")
    assert (error["status"], error["event"]) == (401, "check_services")
    await joined(client, "Services", staff_token)
    await send(client, "check_services", {})
    assert await next_event(client, "services_status") == {"WhatsApp": 403, "Telegram": 403}
    await client.disconnect()


async def test_a_status_change_from_sync_code_is_broadcast_once(staff_token):
    client = await connect()
    await joined(client, "Services", staff_token)
    await sync_to_async(status.heartbeat)("WhatsApp")

    assert await sync_to_async(status.set_status)("WhatsApp", status.AUTHENTICATING)
    change = await next_event(client, "services_change_status")
    assert change["service"] == "WhatsApp" and change["status"] == 102
    assert change["services"] == {"WhatsApp": 102, "Telegram": 403}
    assert change["since"]

    assert not await sync_to_async(status.set_status)("WhatsApp", status.AUTHENTICATING)
    assert await client.receive_nothing(timeout=0.5)
    await send(client, "check_services", {})
    assert await next_event(client, "services_status") == {"WhatsApp": 102, "Telegram": 403}
    await client.disconnect()


async def test_generate_session_with_no_bot_is_409(staff_token):
    client = await connect()
    await joined(client, "Services", staff_token)
    for event in ("generate_session", "logout_session"):
        await send(client, event, {"service": "WhatsApp"})
        error = await next_event(client, "error")
        assert (error["status"], error["event"]) == (409, event)
        assert "WhatsApp" in error["message"]
    await send(client, "generate_session", {"service": "Orkut"})
    assert (await next_event(client, "error"))["status"] == 400
    await client.disconnect()


async def test_generate_session_reaches_the_bot_and_its_qr_codes_reach_the_room(staff_token):
    client = await connect()
    await joined(client, "Services", staff_token)
    async with BotLink("WhatsApp") as bot:
        commands = bot.commands()
        await send(client, "generate_session", {"service": "WhatsApp"})
        assert await asyncio.wait_for(anext(commands), 3) == (
            "generate_session",
            {"service": "WhatsApp"},
        )

        await bot.set_status(status.AUTHENTICATING)
        assert (await next_event(client, "services_change_status"))["status"] == 102
        for payload in ("2@first-qr-payload,abc==", "2@second-qr-payload,def=="):
            await bot.publish_qr(payload)
            qr = await next_event(client, "qr_code")
            assert (qr["service"], qr["qr"]) == ("WhatsApp", payload)
            assert qr["svg"].startswith("<svg") and "</svg>" in qr["svg"]

        await send(client, "logout_session", {"service": "WhatsApp"})
        assert await asyncio.wait_for(anext(commands), 3) == (
            "logout_session",
            {"service": "WhatsApp"},
        )
    # Leaving the link says so.
    assert (await next_event(client, "services_change_status"))["status"] == 403
    await client.disconnect()


async def test_a_bot_that_dies_silently_reads_403_within_15_seconds(staff_token):
    client = await connect()
    await joined(client, "Services", staff_token)
    await status.aheartbeat("Telegram")
    await status.aset_status("Telegram", status.CONNECTED)
    assert (await next_event(client, "services_change_status"))["status"] == 200

    # The bot vanishes: no goodbye, its heartbeat just runs out.
    await status._async_client().pexpire(status._heartbeat_key("Telegram"), 300)
    change = await next_event(client, "services_change_status", timeout=15)
    assert (change["service"], change["status"]) == ("Telegram", 403)
    assert change["detail"] == status.SILENT_BOT_DETAIL
    await client.disconnect()


@pytest.mark.parametrize("loss", ["reaped while Redis was away", "Redis lost its data"])
async def test_a_live_bot_puts_back_a_status_the_registry_lost_with_its_next_beat(
    staff_token, loss, monkeypatch
):
    client = await connect()
    await joined(client, "Services", staff_token)
    async with BotLink("Telegram") as link:
        await link.set_status(status.CONNECTED)
        assert (await next_event(client, "services_change_status"))["status"] == 200
        link._heartbeat.cancel()  # the bot cannot beat while Redis is away
        if loss == "reaped while Redis was away":
            # The bot could not beat; its heartbeat ran out; a sweep turned it to 403.
            await status._async_client().delete(status._heartbeat_key("Telegram"))
            assert await status.areap_silent_bots() == ["Telegram"]
            assert (await next_event(client, "services_change_status"))["status"] == 403
        else:
            await status._async_client().delete(
                status._status_key("Telegram"), status._heartbeat_key("Telegram")
            )
        monkeypatch.setattr(status, "HEARTBEAT_INTERVAL", 0.2)
        link._heartbeat = asyncio.create_task(link._beat())  # Redis is back: it beats again
        change = await next_event(client, "services_change_status", timeout=3)
        assert (change["service"], change["status"]) == ("Telegram", 200)
        assert (await status.aget_statuses())["Telegram"] == 200
    assert (await next_event(client, "services_change_status"))["status"] == 403
    await client.disconnect()


# --- Orders, Conversations, Simulator ------------------------------------------------------------


async def test_orders_room_sees_orders_placed_and_moved(staff_token, make_product, place):
    client = await connect()
    await joined(client, "Orders", staff_token)
    product = await sync_to_async(make_product)(price="79.90", stock=3)

    order = await sync_to_async(place)((product, 2))
    created = await next_event(client, "order_created")
    assert created == {
        "id": order.pk,
        "number": order.number,
        "status": "pending",
        "total": "159.80",
        "customer": "Maria Souza",
    }

    from shop.services import set_order_status

    await sync_to_async(set_order_status)(order_id=order.pk, status=OrderStatus.CONFIRMED)
    changed = await next_event(client, "order_status_changed")
    assert (changed["number"], changed["status"]) == (order.number, "confirmed")
    await client.disconnect()


async def test_conversation_commands_reach_the_right_bot(staff_token):
    client = await connect()
    await send(client, "send_message", {"service": "WhatsApp", "chat": "5511", "text": "oi"})
    assert (await next_event(client, "error"))["status"] == 401
    await joined(client, "Conversations", staff_token)

    await send(client, "send_message", {"service": "Telegram", "chat": "42", "text": "Olá!"})
    assert (await next_event(client, "error"))["status"] == 409

    await send(client, "send_message", {"service": "Telegram", "chat": "42"})
    assert (await next_event(client, "error"))["status"] == 400

    async with BotLink("Telegram") as telegram, BotLink("WhatsApp") as whatsapp:
        await send(
            client, "send_message", {"service": "Telegram", "chat": "42", "text": "Olá! 🛒\nok"}
        )
        assert await asyncio.wait_for(anext(telegram.commands()), 3) == (
            "send_message",
            {"service": "Telegram", "chat": "42", "text": "Olá! 🛒\nok"},
        )
        await send(client, "release_chat", {"service": "WhatsApp", "chat": "5511912345678"})
        assert await asyncio.wait_for(anext(whatsapp.commands()), 3) == (
            "release_chat",
            {"service": "WhatsApp", "chat": "5511912345678"},
        )
    await client.disconnect()


async def test_room_events_from_any_process_reach_every_client_of_the_room(staff_token):
    from channels.layers import get_channel_layer

    from realtime.groups import CONVERSATIONS_GROUP, room_event

    first, second, outsider = await connect(), await connect(), await connect()
    await joined(first, "Conversations", staff_token)
    await joined(second, "Conversations", staff_token)
    await joined(outsider, "Orders", staff_token)
    message = {
        "service": "WhatsApp",
        "chat": "5511912345678",
        "customer": "Maria",
        "direction": "in",
        "text": "oi",
        "at": "2026-11-29T10:30:00-03:00",
    }
    await get_channel_layer().group_send(CONVERSATIONS_GROUP, room_event("chat_message", message))
    assert await next_event(first, "chat_message") == message
    assert await next_event(second, "chat_message") == message
    assert await outsider.receive_nothing(timeout=0.5)
    for client in (first, second, outsider):
        await client.disconnect()


async def test_the_simulator_room_needs_a_join_before_test_messages(staff_token):
    client = await connect()
    await send(client, "test_message", {"chat": "t1", "name": "Ana", "text": "oi"})
    error = await next_event(client, "error")
    assert (error["status"], error["event"]) == (401, "test_message")
    await send(client, "join_room", {"room": "Simulator", "auth": "not-a-token"})
    assert (await next_event(client, "accept_in_room"))["status"] == 403
    await client.disconnect()


async def test_a_stopped_redis_gets_a_clear_503_and_the_socket_stays(staff_token, settings):
    from tests.live import free_port

    client = await connect()
    await joined(client, "Services", staff_token)
    # The registry's next client (one per event loop) points where no Redis answers.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    status._async_clients.clear()
    await send(client, "check_services", {})
    error = await next_event(client, "error", timeout=10)
    assert (error["status"], error["event"]) == (503, "check_services")
    assert "tente de novo" in error["message"]
    status._async_clients.clear()
    await client.disconnect()
