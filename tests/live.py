"""Real processes for tests: daphne servers on the test database, and a scripted bot process."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection

from marketplace.processes import asgi_server_command, stop_process
from marketplace.settings import BASE_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_database_url() -> str:
    """DATABASE_URL of the database the tests run on (pytest-django's test copy)."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    base = os.environ.get("DATABASE_URL", "")
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that shares this test run's database and Redis."""
    return {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CHANNEL_LAYER": settings.CHANNEL_LAYER,
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def run_reliability_script(name: str, *args: str, folder: Path, timeout: float) -> tuple[dict, str]:
    """``reliability/<name>.py`` with its results and document in ``folder``: (its results,
    the document it wrote); fails with what it printed if it failed."""
    results, doc = folder / f"{name}.json", folder / "reliability.md"
    done = subprocess.run(
        [sys.executable, f"reliability/{name}.py", *args,
         "--results", str(results), "--doc", str(doc)],
        cwd=BASE_DIR,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    return json.loads(results.read_text()), doc.read_text()


class Server:
    """The shop's ASGI server (marketplace.processes) on a free port of 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws/"
        self.origin = self.url
        self.process = subprocess.Popen(
            asgi_server_command(host="127.0.0.1", port=self.port),
            cwd=BASE_DIR,
            env=process_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited during start-up"
            try:
                with urllib.request.urlopen(f"{self.url}/api/categories/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"the server on port {self.port} did not come up")

    def stop(self) -> None:
        stop_process(self.process)


class BotProcess:
    """``python -m tests.fake_bot``: the real BotLink with a scripted bot behind it."""

    def __init__(self, service: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_bot", service, *args],
            cwd=BASE_DIR,
            env=process_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.strip() == "ready", line
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_lines, daemon=True).start()

    def _read_lines(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)

    def next_command(self, timeout: float = 10) -> dict:
        """The next dashboard command the bot received."""
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no command reached the bot within {timeout} s") from None

    def kill(self) -> None:
        """Die without a word, as a crashed bot would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)


class RunbotProcess:
    """``manage.py runbot <service>`` on this test run's database and Redis; its log is kept."""

    def __init__(self, service: str, *args: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runbot", service, *args],
            cwd=BASE_DIR,
            env=process_env(LOG_LEVEL="INFO", **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read_lines, daemon=True).start()

    def _read_lines(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 20) -> str:
        """The first log line holding ``text`` (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no log line with {text!r}; the log:\n{self.log}")
                self._changed.wait(timeout=min(left, 0.5))

    def stop(self) -> None:
        stop_process(self.process)


class DashboardWatcher:
    """A dashboard's websocket to ``server``, joined to ``rooms``, read on a thread of its own.

    Every frame is kept in order; ``wait_for`` blocks until one matches.
    """

    def __init__(self, server: Server, token: str, rooms: tuple[str, ...] = ("Services",)) -> None:
        import asyncio

        self.frames: list[dict] = []
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(self._read(server, token, rooms),),
            daemon=True,
        )
        self._thread.start()
        assert self._ready.wait(15), "the dashboard socket did not join its rooms"

    async def _read(self, server: Server, token: str, rooms: tuple[str, ...]) -> None:
        import websockets

        async with websockets.connect(server.ws_url, origin=server.origin) as socket:
            self._socket = socket
            for room in rooms:
                await socket.send(
                    json.dumps({"event": "join_room", "data": {"room": room, "auth": token}})
                )
            joined = 0
            async for raw in socket:
                frame = json.loads(raw)
                if frame["event"] == "accept_in_room" and frame["data"].get("status") == 200:
                    joined += 1
                    if joined == len(rooms):
                        self._ready.set()
                with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()

    def wait_for(self, event: str, predicate=lambda data: True, timeout: float = 30) -> dict:
        """The data of the first frame (since the socket opened) named ``event`` that matches."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for frame in self.frames:
                    if frame["event"] == event and predicate(frame["data"]):
                        return frame["data"]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [f["event"] for f in self.frames]
                    raise AssertionError(f"no matching {event} within {timeout} s; saw {seen}")
                self._changed.wait(min(left, 0.5))

    def events(self, event: str) -> list[dict]:
        with self._changed:
            return [f["data"] for f in self.frames if f["event"] == event]

    def close(self) -> None:
        import asyncio

        socket = getattr(self, "_socket", None)
        if socket is not None:
            asyncio.run_coroutine_threadsafe(socket.close(), self._loop)
        self._thread.join(timeout=10)


CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_driver(*, width: int = 1280, height: int = 900):
    """Headless Chromium through Selenium: the system's Chromium and ChromeDriver (CHROME_BINARY,
    CHROMEDRIVER override), else whatever Selenium Manager finds."""
    from pathlib import Path

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    binary = os.environ.get("CHROME_BINARY") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
    )
    if binary:
        options.binary_location = binary
    driver_path = os.environ.get("CHROMEDRIVER") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
