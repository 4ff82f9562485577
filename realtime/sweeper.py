"""Each server process sweeps for silent bots every few seconds, so a dead bot reads as 403."""

from __future__ import annotations

import asyncio
import logging
import weakref

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
    while True:
        try:
            await status.areap_silent_bots()
        except Exception:  # Redis away: try again next round, the server keeps serving
            logger.warning("silent-bot sweep failed; retrying", exc_info=True)
        await asyncio.sleep(status.SWEEP_INTERVAL)
