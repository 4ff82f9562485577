"""Stopping the child processes we start (servers, Redis, bots), the same way everywhere."""

from __future__ import annotations

import subprocess
import sys

ASGI_APP = "marketplace.asgi:application"


def asgi_server_command(*, host: str, port: int) -> list[str]:
    """The ASGI server the shop runs on: uvicorn, with websockets through the ``websockets``
    library. Measured against daphne (reliability/ws_fuzz.py, docs/reliability.md): a client
    flooding its websocket as fast as it can made daphne queue every frame (~1 GB, honest
    dashboards starved for 45 s); uvicorn stops reading a connection whose 32 frames wait
    unhandled, so the flood slows itself and everyone else is served. A frame over 1 MiB closes
    the connection before it is buffered (the protocol refuses over 64 KiB anyway)."""
    return [
        sys.executable, "-m", "uvicorn", ASGI_APP,
        "--host", host, "--port", str(port),
        "--ws", "websockets", "--ws-max-queue", "32", "--ws-max-size", str(2**20),
        "--lifespan", "off", "--no-server-header",
    ]  # fmt: skip


def stop_process(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGTERM, so the child can close cleanly; SIGKILL if it has not gone within ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
