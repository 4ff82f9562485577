"""Several real processes on one Redis: two servers, a status setter, a bot that dies.

Every event a room receives must reach its clients in whichever server process holds them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import redis
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from marketplace.settings import BASE_DIR
from realtime import status
from tests.live import BotProcess, Server, process_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clean_statuses(redis_url):
    client = redis.Redis.from_url(redis_url)

    def clean() -> None:
        keys = client.keys(f"{status.KEY_PREFIX}*")
        if keys:
            client.delete(*keys)

    clean()
    yield
    clean()


@pytest.fixture
def two_servers(clean_statuses):
    servers = [Server(), Server()]
    yield servers
    for server in servers:
        server.stop()


async def dashboard(server: Server, token: str):
    """A dashboard client of ``server`` that has joined the Services room."""
    socket = await websockets.connect(server.ws_url, origin=server.origin, open_timeout=10)
    assert json.loads(await socket.recv())["event"] == "welcome"
    await socket.send(
        json.dumps({"event": "join_room", "data": {"room": "Services", "auth": token}})
    )
    assert json.loads(await socket.recv())["data"]["status"] == 200
    return socket


async def next_change(socket, *, service: str, code: int, timeout: float) -> tuple[dict, float]:
    """The next services_change_status of ``service`` to ``code``, and when it arrived."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), deadline - time.monotonic()))
        if frame["event"] == "services_change_status":
            data = frame["data"]
            if data["service"] == service and data["status"] == code:
                return data, time.time()


def change_on_all(sockets, *, service: str, code: int, timeout: float) -> asyncio.Future:
    """Start waiting, on every socket at once, for ``service`` to turn ``code``."""
    return asyncio.gather(
        *(next_change(s, service=service, code=code, timeout=timeout) for s in sockets)
    )


def set_status_from_another_process(service: str, code: int) -> float:
    """A third process sets the status; returns the moment it did (epoch seconds)."""
    script = (
        "import django, time; django.setup(); from realtime import status; "
        f"status.heartbeat({service!r}); t = time.time(); "
        f"status.set_status({service!r}, {code}); print(t)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=process_env(DJANGO_SETTINGS_MODULE="marketplace.settings"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def test_a_status_set_in_a_third_process_reaches_clients_of_both_servers(two_servers, staff_user):
    token = str(AccessToken.for_user(staff_user))

    async def scenario() -> list[float]:
        sockets = [await dashboard(server, token) for server in two_servers]
        waiting = change_on_all(sockets, service="WhatsApp", code=102, timeout=30)
        set_at = await asyncio.to_thread(set_status_from_another_process, "WhatsApp", 102)
        arrivals = await waiting
        for socket in sockets:
            await socket.close()
        return [arrived - set_at for _data, arrived in arrivals]

    delays = asyncio.run(scenario())
    assert all(delay < 1.0 for delay in delays), delays


def test_a_killed_bot_reads_403_on_both_servers_within_15_seconds(two_servers, staff_user):
    token = str(AccessToken.for_user(staff_user))

    async def scenario() -> list[float]:
        sockets = [await dashboard(server, token) for server in two_servers]
        connected = change_on_all(sockets, service="Telegram", code=200, timeout=30)
        bot = await asyncio.to_thread(BotProcess, "Telegram", "--status", "200")
        await connected
        disconnected = change_on_all(sockets, service="Telegram", code=403, timeout=20)
        killed_at = time.time()
        bot.kill()
        arrivals = await disconnected
        for socket in sockets:
            await socket.close()
        assert all(data["detail"] == status.SILENT_BOT_DETAIL for data, _ in arrivals)
        return [arrived - killed_at for _data, arrived in arrivals]

    delays = asyncio.run(scenario())
    assert all(delay <= 15 for delay in delays), delays


def test_a_bot_that_stops_politely_reads_403_at_once(two_servers, staff_user):
    token = str(AccessToken.for_user(staff_user))

    async def scenario() -> float:
        socket = await dashboard(two_servers[0], token)
        up = asyncio.create_task(next_change(socket, service="WhatsApp", code=200, timeout=30))
        bot = await asyncio.to_thread(BotProcess, "WhatsApp", "--status", "200")
        await up
        down = asyncio.create_task(next_change(socket, service="WhatsApp", code=403, timeout=10))
        stopped_at = time.time()
        await asyncio.to_thread(bot.stop)
        data, arrived = await down
        await socket.close()
        assert data["detail"] == ""
        return arrived - stopped_at

    assert asyncio.run(scenario()) < 3
