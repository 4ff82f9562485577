"""Stopping the child processes we start (servers, Redis, bots), the same way everywhere."""

from __future__ import annotations

import subprocess


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
