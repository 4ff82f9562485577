"""The service-status registry: what each bot (WhatsApp, Telegram) is doing, for every process.

Statuses live in Redis, so a new dashboard client and a restarted server see the truth. A change
(and only a change) is broadcast as ``services_change_status`` to the ``Services`` room. A running
bot refreshes a heartbeat key with a short TTL; a bot that dies without a word loses it, and the
next sweep (``reap_silent_bots``, run by every server process every few seconds) turns it to 403
and broadcasts that. The compare-and-set is one Lua script, so with several server processes the
change is made, and broadcast, exactly once.

Every function has a sync and an async form: bots and management commands are sync, consumers async.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ParamSpec, TypeVar

import redis
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from django.conf import settings

from realtime.groups import SERVICES_GROUP, room_event

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

SERVICES = ("WhatsApp", "Telegram")

INITIALIZING, AUTHENTICATING, CONNECTED, DISCONNECTED = 100, 102, 200, 403
STATUS_CODES = (INITIALIZING, AUTHENTICATING, CONNECTED, DISCONNECTED)

# A bot refreshes its heartbeat every HEARTBEAT_INTERVAL; silent for HEARTBEAT_TTL, it is dead.
# TTL + sweep interval stays under the protocol's 15 s.
HEARTBEAT_INTERVAL = 3.0
HEARTBEAT_TTL = 10
SWEEP_INTERVAL = 2.0

KEY_PREFIX = "marketplace:service:"
REDIS_TIMEOUT = 3.0

# KEYS[1] status hash; ARGV: status, since, detail. Returns 1 when something changed.
_SET_STATUS = """
local old = redis.call('HMGET', KEYS[1], 'status', 'detail')
if old[1] == ARGV[1] and (old[2] or '') == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'since', ARGV[2], 'detail', ARGV[3])
return 1
"""

# KEYS[1] status hash, KEYS[2] heartbeat; ARGV: since, detail. 403 if alive-looking but silent.
_REAP = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == '403' then return 0 end
redis.call('HSET', KEYS[1], 'status', '403', 'since', ARGV[1], 'detail', ARGV[2])
return 1
"""

# KEYS[1] status hash, KEYS[2] heartbeat; ARGV: owner, ttl, status, since, detail. The beat, and
# the bot's own status put back where it is not what the bot said: Redis lost it (restarted
# without its data) or a sweep turned it to 403 while Redis was away and the bot could not beat.
_BEAT = """
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local old = redis.call('HMGET', KEYS[1], 'status', 'detail')
if old[1] == ARGV[3] and (old[2] or '') == ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'since', ARGV[4], 'detail', ARGV[5])
return 1
"""

# ARGV: key prefix, then the services. A row per service: status, since, detail, heartbeat there.
# One script rather than a pipeline: it runs on the process's one connection (_async_client),
# where a pipeline would take a connection of its own from the pool.
_STATES = """
local rows = {}
for i = 2, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local row = redis.call('HMGET', key, 'status', 'since', 'detail')
  row[4] = redis.call('EXISTS', key .. ':heartbeat')
  rows[#rows + 1] = row
end
return rows
"""

SILENT_BOT_DETAIL = "O bot parou de responder."


class UnknownService(ValueError):
    pass


@dataclass(frozen=True)
class ServiceState:
    service: str
    status: int
    since: datetime | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "detail": self.detail,
        }


def _check(service: str) -> str:
    if service not in SERVICES:
        raise UnknownService(f"Unknown service {service!r}; expected one of {', '.join(SERVICES)}.")
    return service


def _status_key(service: str) -> str:
    return f"{KEY_PREFIX}{service}"


def _heartbeat_key(service: str) -> str:
    return f"{KEY_PREFIX}{service}:heartbeat"


@cache
def _sync_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        health_check_interval=15,
    )


# One asyncio client per event loop: a client is bound to the loop it was created on.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _async_client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # No socket_timeout here: redis-py enforces it with asyncio.wait_for, which on Python 3.11
        # can leave a cancelled task hanging forever (a dashboard that disconnects mid-command, a
        # server shutting down). Calls are bounded with asyncio.timeout instead (``_bounded``).
        # One connection per process, its commands queued: they are short, and the process holds
        # the same number of connections to Redis whatever the burst of dashboards, before an
        # outage and after it (reliability/redis_outage.py counts them).
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=1,
            timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            health_check_interval=15,
        )
        client = aioredis.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client


async def aclose_client() -> None:
    """Close this event loop's client (a bot's last word before its loop ends), so its
    connection is not left to be closed by the garbage collector after the loop is gone."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose(close_connection_pool=True)


def _bounded(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Give up on Redis after REDIS_TIMEOUT seconds (``TimeoutError``) instead of hanging."""

    @functools.wraps(function)
    async def bounded(*args: P.args, **kwargs: P.kwargs) -> T:
        async with asyncio.timeout(REDIS_TIMEOUT):
            return await function(*args, **kwargs)

    return bounded


def _states(rows: list[list[bytes | int | None]]) -> dict[str, ServiceState]:
    """``_STATES``' answer, a row per service in SERVICES' order, as ServiceStates."""
    states = {}
    for service, (code, since, detail, alive) in zip(SERVICES, rows, strict=True):
        raw = {b"status": code, b"since": since, b"detail": detail}
        states[service] = _state(service, {k: v for k, v in raw.items() if v}, bool(alive))
    return states


def _state(service: str, raw: dict[bytes, bytes], alive: bool) -> ServiceState:
    status = int(raw.get(b"status", DISCONNECTED))
    if status != DISCONNECTED and not alive:
        status = DISCONNECTED  # the sweep will record and broadcast it; readers see it now
    since = raw.get(b"since")
    return ServiceState(
        service=service,
        status=status,
        since=datetime.fromtimestamp(float(since), UTC) if since else None,
        detail=raw.get(b"detail", b"").decode(),
    )


def _change_event(service: str, state: ServiceState, codes: dict[str, int]) -> dict[str, Any]:
    return room_event(
        "services_change_status",
        {
            "service": service,
            "status": state.status,
            "services": codes,
            "since": state.since.isoformat() if state.since else None,
            "detail": state.detail,
        },
    )


# --- async API (consumers, async bots) -----------------------------------------------------------


@_bounded
async def aget_states() -> dict[str, ServiceState]:
    rows = await _async_client().eval(_STATES, 0, KEY_PREFIX, *SERVICES)
    return _states(rows)


async def aget_statuses() -> dict[str, int]:
    return {name: state.status for name, state in (await aget_states()).items()}


@_bounded
async def aset_status(service: str, status: int, *, detail: str = "") -> bool:
    """Record a service's status; broadcast it if it changed. Returns whether it changed."""
    _check(service)
    if status not in STATUS_CODES:
        raise ValueError(f"Unknown status code {status}.")
    client = _async_client()
    changed = await client.eval(
        _SET_STATUS, 1, _status_key(service), str(status), repr(time.time()), detail
    )
    if changed:
        await _abroadcast_change(service)
    return bool(changed)


@_bounded
async def aheartbeat(service: str, *, current: tuple[int, str] | None = None) -> bool:
    """The bot of ``service`` is alive. With ``current`` (its status and detail as it last said
    them), also put that status back if the registry lost it, and broadcast it; returns whether
    it had to."""
    client = _async_client()
    if current is None:
        await client.set(_heartbeat_key(_check(service)), _owner(), ex=HEARTBEAT_TTL)
        return False
    code, detail = current
    changed = await client.eval(
        _BEAT, 2, _status_key(_check(service)), _heartbeat_key(service),
        _owner(), str(HEARTBEAT_TTL), str(code), repr(time.time()), detail,
    )  # fmt: skip
    if changed:
        logger.warning("%s status was lost while Redis was away; %s again", service, code)
        await _abroadcast_change(service)
    return bool(changed)


@_bounded
async def aping() -> None:
    """Raise unless Redis answers."""
    await _async_client().ping()


@_bounded
async def aclear_heartbeat(service: str) -> None:
    await _async_client().delete(_heartbeat_key(_check(service)))


@_bounded
async def abot_is_running(service: str) -> bool:
    return bool(await _async_client().exists(_heartbeat_key(_check(service))))


@_bounded
async def areap_silent_bots() -> list[str]:
    """Turn every service whose bot stopped heartbeating to 403, once; returns those changed."""
    client = _async_client()
    reaped = []
    for service in SERVICES:
        changed = await client.eval(
            _REAP,
            2,
            _status_key(service),
            _heartbeat_key(service),
            repr(time.time()),
            SILENT_BOT_DETAIL,
        )
        if changed:
            logger.warning("%s bot stopped heartbeating: now 403", service)
            reaped.append(service)
            await _abroadcast_change(service)
    return reaped


async def _abroadcast_change(service: str) -> None:
    from channels.layers import get_channel_layer

    states = await aget_states()
    codes = {name: state.status for name, state in states.items()}
    await get_channel_layer().group_send(
        SERVICES_GROUP, _change_event(service, states[service], codes)
    )


# --- sync API (bots, management commands, shop services) -----------------------------------------


def get_states() -> dict[str, ServiceState]:
    return _states(_sync_client().eval(_STATES, 0, KEY_PREFIX, *SERVICES))


def set_status(service: str, status: int, *, detail: str = "") -> bool:
    """Record a service's status; broadcast it if it changed. Returns whether it changed."""
    _check(service)
    if status not in STATUS_CODES:
        raise ValueError(f"Unknown status code {status}.")
    changed = _sync_client().eval(
        _SET_STATUS, 1, _status_key(service), str(status), repr(time.time()), detail
    )
    if changed:
        _broadcast_change(service)
    return bool(changed)


def heartbeat(service: str) -> None:
    _sync_client().set(_heartbeat_key(_check(service)), _owner(), ex=HEARTBEAT_TTL)


def clear_heartbeat(service: str) -> None:
    _sync_client().delete(_heartbeat_key(_check(service)))


def _broadcast_change(service: str) -> None:
    from channels.layers import get_channel_layer

    states = get_states()
    codes = {name: state.status for name, state in states.items()}
    async_to_sync(get_channel_layer().group_send)(
        SERVICES_GROUP, _change_event(service, states[service], codes)
    )


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
