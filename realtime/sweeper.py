"""Each server process sweeps for silent bots every few seconds, so a dead bot reads as 403."""

from __future__ import annotations

import asyncio
import logging
import weakref

from redis.exceptions import RedisError

from realtime import status

logger = logging.getLogger(__name__)

_tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = (
    weakref.WeakKeyDictionary()
)


def ensure_sweeper() -> None:
    """Start this process's sweeper on the running loop, once."""
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if task is None or task.done():
        _tasks[loop] = loop.create_task(_sweep_forever(), name="silent-bot-sweeper")


async def _sweep_forever() -> None:
    redis_away = False
    while True:
        try:
            if redis_away:
                # Redis is back after an outage in which no bot could beat: give them a beat's
                # time before reaping, so a live bot does not read as 403 for a moment.
                await status.aping()
                redis_away = False
                await asyncio.sleep(status.HEARTBEAT_INTERVAL + 1)
            await status.areap_silent_bots()
        except (RedisError, OSError, TimeoutError) as failure:  # Redis away: next round
            redis_away = True
            logger.warning("silent-bot sweep failed (%s); retrying",
                           failure or type(failure).__name__)  # fmt: skip
        except Exception:  # the server keeps serving and sweeping whatever happens
            logger.exception("silent-bot sweep failed; retrying")
        await asyncio.sleep(status.SWEEP_INTERVAL)
