#!/usr/bin/env python
"""Fan-out of ``services_change_status`` to N dashboard websockets over two server processes.

For each layer, server and N: two server processes of one kind (daphne or uvicorn) share one Redis;
N clients (asyncio + websockets, in client processes of their own) connect to /ws/, spread evenly
over the two, and join the Services room; a bot-like publisher process changes the WhatsApp status
every --interval seconds for --duration seconds, its detail carrying a sequence number and the send
time. Reports p50/p99 delivery latency, lost, duplicate and out-of-order events, the servers' RSS
per idle connection and where the CPU went. Writes bench/results/ws_fanout.json and the
"ws_fanout" section of docs/benchmarks.md.

    .venv/bin/python bench/ws_fanout.py [--duration 60] [--interval 0.2] [--sizes 100,500,1000]
        [--servers daphne,uvicorn] [--layers pubsub] [--compare-layers core]
        [--redis-url redis://127.0.0.1:6379/5]

Short trial: ``.venv/bin/python bench/ws_fanout.py --duration 5 --sizes 50,100 --results
/tmp/ws.json --doc /tmp/benchmarks.md``. Needs Redis (its database from --redis-url is flushed;
never database 0). The database is a throw-away SQLite file holding the one staff user whose token
the clients join with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench.api_products import free_port, machine, wait_until_up  # noqa: E402
from marketplace.processes import stop_process  # noqa: E402

RESULTS = BASE_DIR / "bench" / "results" / "ws_fanout.json"
DOC = BASE_DIR / "docs" / "benchmarks.md"
BEGIN, END = "<!-- ws_fanout:begin -->", "<!-- ws_fanout:end -->"
ASGI_APP = "marketplace.asgi:application"
SETTINGS_MODULE = "bench.ws_settings"
ORIGIN = "http://127.0.0.1"
UP_PATH = "/api/products/"
SERVICE = "WhatsApp"
STAFF_USERNAME = "bench-staff"

TARGET_CLIENTS, TARGET_P99_MS, TARGET_KIB = 1000, 300.0, 100.0

JOIN_TIMEOUT = 30.0  # one client's connect + welcome + join
WARM_UP_CLIENTS = 8  # per server, before the idle RSS: loads the websocket code paths once
SETTLE = 2.0  # after the last join, before the idle RSS
QUIET = 2.0  # after the publisher stops, wait until no event arrived for this long...
DRAIN_CAP = 30.0  # ...but no longer than this
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- environment ---------------------------------------------------------------------------------


def bench_env(redis_url: str, var_dir: Path, layer: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'bench.sqlite3'}",
        "REDIS_URL": redis_url,
        "CHANNEL_LAYER": layer,
        "DEBUG": "False",
        "SECRET_KEY": "bench-only-" + "w" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
        "JWT_ACCESS_MINUTES": "120",
        "PYTHONPATH": str(BASE_DIR),
    }


def check_redis_url(redis_url: str) -> None:
    database = urlsplit(redis_url).path.strip("/") or "0"
    if database == "0":
        sys.exit("--redis-url must name a Redis database of the bench's own, not 0: it is flushed.")


def flush_redis(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def redis_cpu_seconds(redis_url: str) -> float:
    import redis

    info = redis.Redis.from_url(redis_url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def staff_token(env: dict[str, str]) -> str:
    """Migrate the throw-away database and mint an access token of a staff user."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    users = get_user_model().objects
    user = users.filter(username=STAFF_USERNAME).first() or users.create_superuser(
        STAFF_USERNAME, "bench@example.com", secrets.token_urlsafe(16)
    )
    return str(AccessToken.for_user(user))


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- processes -----------------------------------------------------------------------------------


def server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP]
    if kind == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", ASGI_APP,
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(f"unknown server {kind!r}")


def stop_child(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join(timeout=5)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server that forks workers is measured whole)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in task.read_text().split())
    return pids


def rss_kib(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{member}/status").read_text())
            total += int(match.group(1)) if match else 0
    return total


def cpu_seconds(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            # Fields after the command name (which may hold spaces): utime and stime are 12 and 13.
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, not idle or waiting on I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def log_errors(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    wanted = re.compile(r"Traceback|ERROR|CRITICAL|Exception|Error:")
    return list(dict.fromkeys(line.strip()[:200] for line in lines if wanted.search(line)))[:8]


# --- clients (client processes) ------------------------------------------------------------------


class JoinRefused(Exception):
    pass


async def expect_frame(ws: Any, event: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("event") == event:
            return frame.get("data", {})


async def open_dashboard(port: int, token: str, compression: bool) -> Any:
    """A websocket to /ws/ joined to the Services room, as the dashboard page opens it."""
    from websockets.asyncio.client import connect

    ws = await connect(
        f"ws://127.0.0.1:{port}/ws/",
        origin=ORIGIN,
        compression="deflate" if compression else None,
        ping_interval=None,  # browsers do not ping; the server's pings are answered
        close_timeout=2,
        open_timeout=JOIN_TIMEOUT,
    )
    try:
        await expect_frame(ws, "welcome")
        auth = {"room": "Services", "auth": token}
        await ws.send(json.dumps({"event": "join_room", "data": auth}))
        answer = await expect_frame(ws, "accept_in_room")
        if answer.get("status") != 200:
            raise JoinRefused(f"accept_in_room {answer}")
    except BaseException:
        await ws.close()
        raise
    return ws


@dataclass
class Client:
    port: int
    pattern: re.Pattern[str]
    ws: Any = None
    failure: str | None = None
    dropped: bool = False
    stopping: bool = False
    seqs: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    other_events: int = 0
    last_event: float = 0.0

    async def join(self, token: str, compression: bool, gate: asyncio.Semaphore) -> None:
        try:
            async with gate, asyncio.timeout(JOIN_TIMEOUT):
                self.ws = await open_dashboard(self.port, token, compression)
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"[:160]

    async def listen(self) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                self.on_message(message)
        if not self.stopping:
            self.dropped = True

    def on_message(self, message: str | bytes) -> None:
        now = time.time()
        match = self.pattern.search(message if isinstance(message, str) else message.decode())
        if match is None:
            self.other_events += 1
            return
        self.seqs.append(int(match.group(1)))
        self.latencies_ms.append((now - float(match.group(2))) * 1000)
        self.last_event = time.monotonic()

    def tally(self, published: set[int]) -> dict[str, int]:
        seen: set[int] = set()
        duplicates = out_of_order = 0
        previous = -1
        for seq in self.seqs:
            if seq in seen:
                duplicates += 1
            elif seq < previous:
                out_of_order += 1
            seen.add(seq)
            previous = seq
        return {
            "lost": len(published - seen),
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "unexpected": len(seen - published),
        }


def by_event(clients: list[Client]) -> dict[int, list[float]]:
    """Every delivery's latency, grouped by the event's sequence number."""
    grouped: dict[int, list[float]] = {}
    for client in clients:
        for seq, ms in zip(client.seqs, client.latencies_ms, strict=True):
            grouped.setdefault(seq, []).append(ms)
    return grouped


async def drain(clients: list[Client], published: set[int]) -> float:
    """Wait for late events: until every live client has them all, or none came for QUIET s."""
    started = time.monotonic()
    live = [client for client in clients if client.ws is not None and not client.dropped]
    while time.monotonic() - started < DRAIN_CAP:
        if all(len(set(client.seqs) & published) == len(published) for client in live):
            break
        last = max((client.last_event for client in live), default=0.0)
        if time.monotonic() - max(last, started) >= QUIET:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def run_clients(
    conn: Connection, ports: list[int], token: str, run_id: str, compression: bool
) -> None:
    pattern = re.compile(rf"bench={run_id} seq=(\d+) t=([\d.]+)")
    clients = [Client(port, pattern) for port in ports]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    await asyncio.gather(*(client.join(token, compression, gate) for client in clients))
    joined = [client for client in clients if client.ws is not None]
    listeners = [asyncio.create_task(client.listen()) for client in joined]
    conn.send(
        (
            "ready",
            {
                "joined_per_port": dict(Counter(client.port for client in joined)),
                "failures": dict(Counter(c.failure for c in clients if c.failure is not None)),
            },
        )
    )
    cpu_ready = time.process_time()
    loop = asyncio.get_running_loop()
    _, published_list = await loop.run_in_executor(None, conn.recv)  # ("stop", seqs)
    cpu_listening = time.process_time() - cpu_ready
    published = set(published_list)
    drained = await drain(clients, published)
    for client in joined:
        client.stopping = True
    await asyncio.gather(*(client.ws.close() for client in joined), return_exceptions=True)
    for listener in listeners:
        listener.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    tallies = Counter[str]()
    for client in joined:
        tallies.update(client.tally(published))
    conn.send(
        (
            "done",
            {
                **tallies,
                "dropped": sum(client.dropped for client in joined),
                "other_events": sum(client.other_events for client in joined),
                "latencies_ms": by_event(joined),
                "cpu_seconds_listening": cpu_listening,
                "drain_seconds": drained,
            },
        )
    )


def client_main(
    conn: Connection, ports: list[int], token: str, run_id: str, compression: bool
) -> None:
    """A client process: opens its share of the websockets and reports on them."""
    raise_fd_limit()
    try:
        import uvloop  # the load generator should cost the shared cores as little as it can
    except ImportError:
        asyncio.run(run_clients(conn, ports, token, run_id, compression))
    else:
        uvloop.run(run_clients(conn, ports, token, run_id, compression))


async def warm_up(ports: list[int], token: str, compression: bool) -> dict[int, str]:
    """Join and leave a few clients per server; returns the extensions each server negotiated."""
    extensions: dict[int, str] = {}
    for port in ports:
        sockets = await asyncio.gather(
            *(open_dashboard(port, token, compression) for _ in range(WARM_UP_CLIENTS))
        )
        extensions[port] = sockets[0].response.headers.get("Sec-WebSocket-Extensions", "none")
        await asyncio.gather(*(ws.close() for ws in sockets))
    return extensions


# --- publisher (its own process, like a bot) -----------------------------------------------------


async def publish(conn: Connection, run_id: str, duration: float, interval: float) -> None:
    from realtime.bots import BotLink
    from realtime.status import AUTHENTICATING

    published: list[int] = []
    lags_ms, call_ms, errors = [], [], Counter[str]()
    async with BotLink(SERVICE) as link:  # heartbeats, so the sweeper leaves the status alone
        conn.send(("started", time.time()))
        cpu_start, start = time.process_time(), time.monotonic()
        for seq in range(round(duration / interval)):
            delay = start + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lags_ms.append(max(0.0, -delay) * 1000)
            sent = time.time()
            try:
                detail = f"bench={run_id} seq={seq} t={sent:.6f}"
                if await link.set_status(AUTHENTICATING, detail=detail):
                    published.append(seq)
            except Exception as exc:
                errors[type(exc).__name__] += 1
            call_ms.append((time.time() - sent) * 1000)
    conn.send(
        (
            "done",
            {
                "published": published,
                "errors": dict(errors),
                "max_lag_ms": max(lags_ms, default=0.0),
                "set_status_p50_ms": percentile(sorted(call_ms), 0.50),
                "set_status_max_ms": max(call_ms, default=0.0),
                "cpu_seconds": round(time.process_time() - cpu_start, 3),
            },
        )
    )


def publisher_main(
    conn: Connection, env: dict[str, str], run_id: str, duration: float, interval: float
) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    asyncio.run(publish(conn, run_id, duration, interval))


# --- one measurement -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    layer: str
    server: str
    clients: int
    duration: float
    interval: float
    client_procs: int
    compression: bool

    @property
    def label(self) -> str:
        return f"{self.layer}-{self.server}-{self.clients}"


def spread(clients: int, ports: list[int], procs: int) -> list[list[int]]:
    """Each client process's ports, one per client, alternating over the servers overall."""
    shares, offset = [], 0
    for index in range(procs):
        count = clients // procs + (index < clients % procs)
        shares.append([ports[(offset + i) % len(ports)] for i in range(count)])
        offset += count
    return [share for share in shares if share]


def receive(conn: Connection, process: BaseProcess, kind: str, timeout: float) -> Any:
    """The ``kind`` message of a child process; fails early if the child died."""
    deadline = time.monotonic() + timeout
    while not conn.poll(0.5):
        if not process.is_alive():
            raise RuntimeError(f"{process.name} died (exit code {process.exitcode}) before {kind}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name}: no {kind!r} message within {timeout:.0f} s")
    got, payload = conn.recv()
    if got != kind:
        raise RuntimeError(f"{process.name}: expected {kind!r}, got {got!r}")
    return payload


def two_ports() -> list[int]:
    ports: list[int] = []
    while len(ports) < 2:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def servers_running(run: Run, env: dict[str, str], logs: Path) -> Iterator[list[tuple[int, int]]]:
    """Two servers of ``run.server``; yields their (port, pid) once both answer HTTP."""
    processes: list[subprocess.Popen] = []
    try:
        ports = two_ports()
        for port in ports:
            with open(logs / f"{run.label}-{port}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        server_command(run.server, port),
                        cwd=BASE_DIR,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        for port in ports:
            wait_until_up(f"http://127.0.0.1:{port}{UP_PATH}")
        yield [(port, process.pid) for port, process in zip(ports, processes, strict=True)]
    finally:
        for process in processes:
            stop_process(process)


def cpu_snapshot(servers: list[tuple[int, int]], redis_url: str) -> dict[str, Any]:
    return {
        "wall": time.monotonic(),
        "servers": [cpu_seconds(pid) for _, pid in servers],
        "redis": redis_cpu_seconds(redis_url),
        "machine": machine_busy_seconds(),
    }


def start_child(name: str, target: Any, args: tuple) -> tuple[BaseProcess, Connection]:
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    process = spawn.Process(target=target, args=(child, *args), name=name, daemon=True)
    process.start()
    child.close()
    return process, parent


def measure(run: Run, env: dict[str, str], token: str, redis_url: str, logs: Path) -> dict:
    """One (layer, server, N): the raw figures, summarised by ``summarise``."""
    flush_redis(redis_url)
    run_id = secrets.token_hex(4)
    raw: dict[str, Any] = {}
    children: list[BaseProcess] = []
    try:
        with servers_running(run, env, logs) as servers:
            raw["servers"] = servers
            ports = [port for port, _ in servers]
            raw["extensions"] = asyncio.run(warm_up(ports, token, run.compression))
            time.sleep(1)
            raw["rss_before"] = [rss_kib(pid) for _, pid in servers]

            clients = [
                start_child(
                    f"client process {i}", client_main, (share, token, run_id, run.compression)
                )
                for i, share in enumerate(spread(run.clients, ports, run.client_procs))
            ]
            children.extend(process for process, _ in clients)
            connect_timeout = 60 + run.clients * JOIN_TIMEOUT / CONNECT_CONCURRENCY
            raw["ready"] = [receive(conn, p, "ready", connect_timeout) for p, conn in clients]
            time.sleep(SETTLE)
            raw["rss_idle"] = [rss_kib(pid) for _, pid in servers]

            publisher, conn = start_child(
                "publisher", publisher_main, (env, run_id, run.duration, run.interval)
            )
            children.append(publisher)
            receive(conn, publisher, "started", 60)
            raw["cpu_start"] = cpu_snapshot(servers, redis_url)
            raw["published"] = receive(conn, publisher, "done", run.duration + 60)
            raw["cpu_end"] = cpu_snapshot(servers, redis_url)
            raw["rss_after"] = [rss_kib(pid) for _, pid in servers]

            for _, conn in clients:
                conn.send(("stop", raw["published"]["published"]))
            raw["done"] = [receive(conn, p, "done", DRAIN_CAP + 60) for p, conn in clients]
    finally:
        for process in children:
            stop_child(process)
    raw["errors"] = [
        line for path in sorted(logs.glob(f"{run.label}-*.log")) for line in log_errors(path)
    ]
    return summarise(run, raw)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``, rounded to 0.1."""
    if not values:
        return None
    return round(values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))], 1)


def cpu_cores(raw: dict[str, Any]) -> dict[str, Any]:
    """Where the CPU went while the events flowed, in cores (1.0 = one core busy)."""
    start, end = raw["cpu_start"], raw["cpu_end"]
    wall = end["wall"] - start["wall"]
    cores = {
        "servers": [
            round((b - a) / wall, 3) for a, b in zip(start["servers"], end["servers"], strict=True)
        ],
        "client_processes": [round(r["cpu_seconds_listening"] / wall, 3) for r in raw["done"]],
        "publisher": round(raw["published"]["cpu_seconds"] / wall, 3),
        "redis": round((end["redis"] - start["redis"]) / wall, 3),
        "machine": round((end["machine"] - start["machine"]) / wall, 3),
    }
    ours = (
        sum(cores["servers"]) + sum(cores["client_processes"]) + cores["publisher"] + cores["redis"]
    )
    # Whatever else runs on the machine (another engineer's tests) competes for the same cores.
    cores["others"] = round(max(0.0, cores["machine"] - ours), 3)
    cores["wall_seconds"] = round(wall, 2)
    return cores


def summarise(run: Run, raw: dict[str, Any]) -> dict[str, Any]:
    joined, failures = Counter[int](), Counter[str]()
    for report in raw["ready"]:
        joined.update(report["joined_per_port"])
        failures.update(report["failures"])
    kib = [
        (idle - before) / joined[port]
        for (port, _), before, idle in zip(
            raw["servers"], raw["rss_before"], raw["rss_idle"], strict=True
        )
        if joined[port]
    ]
    done, published = raw["done"], raw["published"]
    events: dict[int, list[float]] = {}
    for report in done:
        for seq, values in report["latencies_ms"].items():
            events.setdefault(seq, []).extend(values)
    latencies = sorted(ms for values in events.values() for ms in values)
    # first and last delivery of each event: how long one event takes to reach every client
    spans = sorted((max(values), min(values), seq) for seq, values in events.items())
    cores = cpu_cores(raw)
    server_seconds = sum(cores["servers"]) * cores["wall_seconds"]
    us_per_delivery = server_seconds / max(1, len(latencies)) * 1e6

    def total(key: str) -> int:
        return sum(report[key] for report in done)

    return {
        "layer": run.layer,
        "server": run.server,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": percentile(latencies, 1.0),
        "lost": total("lost"),
        "out_of_order": total("out_of_order"),
        "duplicates": total("duplicates"),
        "received_unpublished": total("unexpected"),  # a set_status that failed yet broadcast
        "kib_per_connection": round(sum(kib) / len(kib), 1) if kib else None,
        "kib_per_connection_per_server": [round(value, 1) for value in kib],
        "clients": run.clients,
        "connected": sum(joined.values()),
        "connect_failures": dict(failures),
        "dropped": total("dropped"),
        "events_published": len(published["published"]),
        "events_scheduled": round(run.duration / run.interval),
        "deliveries": len(latencies),
        "event_spread_ms_p50": percentile(sorted(last - first for last, first, _ in spans), 0.5),
        "slowest_events": [
            {"seq": seq, "first_ms": round(first, 1), "last_ms": round(last, 1)}
            for last, first, seq in spans[-3:][::-1]
        ],
        "other_events": total("other_events"),
        "publisher": {key: value for key, value in published.items() if key != "published"},
        "cpu_cores": cores,
        "server_cpu_us_per_delivery": round(us_per_delivery, 1),
        # A server fans an event out one client after the other on its single event loop.
        "server_fanout_ms_per_event": round(us_per_delivery * run.clients / 2 / 1000, 1),
        "rss_kib": {
            "before": raw["rss_before"],
            "idle": raw["rss_idle"],
            "after_events": raw["rss_after"],
        },
        "ws_extensions": sorted(set(raw["extensions"].values())),
        "drain_seconds": round(max(report["drain_seconds"] for report in done), 2),
        "server_log_errors": raw["errors"],
    }


# --- verdict -------------------------------------------------------------------------------------

LAYER_HOW = {
    "pubsub": "pub/sub publishes an event once; each server process copies it to its consumers "
    "in memory",
    "core": "core writes one copy per consumer into Redis lists, which each server process then "
    "pops one message at a time",
}


def measured(figures: dict[str, Any]) -> bool:
    return "error" not in figures


def num(value: float | None, digits: int = 0) -> str:
    """A figure for the doc; "–" when there is none (no delivery at all, no connection)."""
    return "–" if value is None else f"{value:,.{digits}f}"


def badness(figures: dict[str, Any]) -> tuple[int, float]:
    """Events missed (a client that never joined or dropped misses them all), then p99."""
    missing = figures["clients"] - figures["connected"] + figures["dropped"]
    p99 = figures["p99_ms"]
    return figures["lost"] + missing * figures["events_scheduled"], math.inf if p99 is None else p99


def misses(figures: dict[str, Any]) -> list[str]:
    found = []
    if figures["connected"] < figures["clients"] or figures["dropped"]:
        found.append(
            f"{figures['connected']:,} of {figures['clients']:,} clients joined, "
            f"{figures['dropped']} dropped"
        )
    if (figures["p99_ms"] or 0) > TARGET_P99_MS:
        found.append(f"p99 {figures['p99_ms']:.0f} ms > {TARGET_P99_MS:.0f} ms")
    if figures["lost"] or figures["events_published"] < figures["events_scheduled"]:
        found.append(
            f"{figures['lost']:,} deliveries lost, {figures['events_published']} of "
            f"{figures['events_scheduled']} events published"
        )
    if (figures["kib_per_connection"] or 0) > TARGET_KIB:
        found.append(f"{figures['kib_per_connection']:.0f} KiB per connection > {TARGET_KIB:.0f}")
    return found


def cpu_story(figures: dict[str, Any]) -> str:
    cpu = figures["cpu_cores"]
    return (
        f"the machine's {os.cpu_count()} cores were {cpu['machine']:.2f} cores busy: servers "
        f"{' + '.join(f'{c:.2f}' for c in cpu['servers'])}, clients "
        f"{sum(cpu['client_processes']):.2f}, publisher {cpu['publisher']:.2f}, Redis "
        f"{cpu['redis']:.2f}, other processes {cpu['others']:.2f}"
    )


def latency_bound(figures: dict[str, Any]) -> str:
    cpu = figures["cpu_cores"]
    per_server = figures["clients"] // 2
    fanout = (
        f"each server spends {figures['server_cpu_us_per_delivery']:.0f} µs of CPU per frame "
        "delivered (channel layer, consumer, JSON, websocket framing), one client after the "
        f"other on its one event loop, so an event's {per_server:,} frames take about "
        f"{figures['server_fanout_ms_per_event']:.0f} ms of a core per server (measured: "
        f"{num(figures['event_spread_ms_p50'])} ms from an event's first client to its last, "
        "median over events)"
    )
    if cpu["machine"] >= 0.9 * (os.cpu_count() or 1):
        return f"CPU: {fanout}, and the cores are shared ({cpu_story(figures)})"
    if figures["server_fanout_ms_per_event"] >= figures["p99_ms"] / 3:
        return f"CPU of the server processes: {fanout} ({cpu_story(figures)})"
    slowest = ", ".join(
        f"#{event['seq']} {event['first_ms']:.0f}-{event['last_ms']:.0f} ms"
        for event in figures["slowest_events"]
    )
    return (
        f"not steady CPU load ({cpu_story(figures)}; {fanout}): a few events were held up "
        f"(slowest, first to last client: {slowest}), i.e. pauses of a server process (such "
        f"as a full garbage collection) or waits in the {figures['layer']} layer or Redis"
    )


def bound(server: str, figures: dict[str, Any]) -> str:
    """What limits ``figures``, read from where the CPU and memory went."""
    reasons = []
    missed = " ".join(misses(figures))
    if "p99" in missed or "lost" in missed:
        reasons.append(latency_bound(figures))
    if "joined" in missed:
        failures = ", ".join(f"{n} × {why}" for why, n in figures["connect_failures"].items())
        reasons.append(f"connections: {failures or 'none failed to join'}")
    if "KiB" in missed:
        if any("deflate" in ext for ext in figures["ws_extensions"]):
            reasons.append(
                f"memory: {server} accepts permessage-deflate, which browsers offer, so each "
                "connection holds a zlib compressor and decompressor"
            )
        else:
            reasons.append(
                "memory: the per-connection objects of the server, Channels and the layer "
                "(consumer instance, its queues and tasks, the protocol object and buffers)"
            )
    return "; ".join(reasons)


def choose_layer(layers: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The layer with no (or the fewest) lost events, then the lowest p99; and why, in figures."""
    candidates = {layer: figures for layer, figures in layers.items() if measured(figures)}
    if not candidates:
        return "none", "no layer could be measured"
    chosen = min(candidates, key=lambda layer: badness(candidates[layer]))
    described = "; ".join(
        f"{layer}: p99 {num(f['p99_ms'])} ms, p50 {num(f['p50_ms'])} ms, {f['lost']:,} lost, "
        f"{f['server_cpu_us_per_delivery']:.0f} µs of server CPU per frame, Redis "
        f"{f['cpu_cores']['redis']:.2f} cores"
        for layer, f in candidates.items()
    )
    if len(candidates) == 1:
        return chosen, f"only {chosen} was measured: {described}"
    return chosen, f"{described}. {LAYER_HOW[chosen][0].upper()}{LAYER_HOW[chosen][1:]}"


def pick_server(at_largest: dict[str, dict[str, Any]]) -> str:
    return min(
        (server for server, figures in at_largest.items() if measured(figures)),
        key=lambda server: (len(misses(at_largest[server])), *badness(at_largest[server])),
    )


def conclusion(result: dict[str, Any], servers: list[str]) -> str:
    layer = result["layer_choice"]
    sentences = [
        f"**Layer: {layer['chosen']}** (measured at {layer['clients']:,} clients on "
        f"{layer['server']}: {layer['why']})."
    ]
    largest = max(int(n) for server in servers for n in result[server])
    at_largest = {
        server: result[server][str(largest)]
        for server in servers
        if measured(result[server].get(str(largest), {"error": "not run"}))
    }
    if not at_largest:
        return " ".join([*sentences, f"No server could be measured at {largest:,} clients."])
    if len(at_largest) > 1:
        better = pick_server(at_largest)
        figures = at_largest[better]
        sentences.append(
            f"**Server: {better}** at {largest:,} clients (p99 {num(figures['p99_ms'])} ms, "
            f"{figures['lost']:,} lost, {num(figures['kib_per_connection'])} KiB per connection)."
        )
    if largest < TARGET_CLIENTS:
        sentences.append(
            f"The largest size measured is {largest:,}, below the target's "
            f"{TARGET_CLIENTS:,} clients: the other targets are judged there."
        )
    for server, figures in at_largest.items():
        missed = misses(figures)
        if missed:
            sentences.append(
                f"{server} misses a target at {largest:,} clients ({'; '.join(missed)}). "
                f"What bounds it: {bound(server, figures)}."
            )
        else:
            sentences.append(f"{server} meets every target at {largest:,} clients.")
    return " ".join(sentences)


# --- output --------------------------------------------------------------------------------------

TABLE_HEAD = (
    "| server | N | joined | p50 ms | p99 ms | max ms | lost | out of order | dropped "
    "| KiB per idle connection | server µs CPU per frame "
    "| CPU cores: servers / clients / Redis / others / machine |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def table_row(server: str, clients: int, figures: dict[str, Any]) -> str:
    if not measured(figures):
        return f"| {server} | {clients:,} | error: {figures['error']} |" + " |" * 9
    cpu = figures["cpu_cores"]
    return (
        f"| {server} | {clients:,} | {figures['connected']:,} "
        f"| {num(figures['p50_ms'], 1)} | {num(figures['p99_ms'], 1)} | {num(figures['max_ms'])} "
        f"| {figures['lost']:,} | {figures['out_of_order']} | {figures['dropped']} "
        f"| {num(figures['kib_per_connection'], 1)} | {figures['server_cpu_us_per_delivery']:.0f} "
        f"| {sum(cpu['servers']):.2f} / {sum(cpu['client_processes']):.2f} / {cpu['redis']:.2f} "
        f"/ {cpu['others']:.2f} / {cpu['machine']:.2f} |"
    )


def doc_section(result: dict[str, Any], servers: list[str], default_layer: str) -> str:
    rows = [
        table_row(server, int(n), result[server][n])
        for server in servers
        for n in sorted(result[server], key=int)
    ]
    choice = result["layer_choice"]
    layer_rows = [
        table_row(f"{choice['server']} ({layer})", choice["clients"], by_n[str(choice["clients"])])
        for layer, by_server in result["layers"].items()
        if str(choice["clients"]) in (by_n := by_server.get(choice["server"], {}))
    ]
    settings = result["settings"]
    offered = "offered, as browsers do" if settings["compression"] else "not offered"
    return f"""{BEGIN}
## Websocket fan-out: `services_change_status` to N dashboard clients

N dashboard clients (websockets, `Origin` set, joined to the `Services` room with a staff token)
spread evenly over **two server processes** of one kind sharing one Redis; a bot-like publisher
process changes the WhatsApp status every {settings["interval"] * 1000:.0f} ms for \
{settings["duration"]:.0f} s, the detail
carrying a sequence number and the send time. Latency is receive time in the client minus send
time in the publisher (one machine, one clock), over every delivery. Lost = events
published but never received, summed over clients. KiB per idle connection = growth of the
server's RSS from before the clients joined (after a warm-up) to 2 s after the last join, over its
connections, averaged over both servers. CPU is in cores (1.00 = one core busy) while the events
flowed; "server µs CPU per frame" is both servers' CPU time over the frames delivered.

Channel layer **{default_layer}**:

{TABLE_HEAD}
{chr(10).join(rows)}

### Channel layer: pub/sub or core

{TABLE_HEAD}
{chr(10).join(layer_rows)}

### Conclusion

{result["conclusion"]}

- Targets: {TARGET_CLIENTS:,} clients, p99 <= {TARGET_P99_MS:.0f} ms, zero lost events, <= \
{TARGET_KIB:.0f} KiB per idle connection.
- Setup: production settings (`DEBUG=False`); the channel layer on Redis database \
{settings["redis_db"]}; client processes:
  {settings["client_processes"]} (asyncio + websockets on uvloop, permessage-deflate {offered});
  negotiated extensions: {result["extensions_seen"]}.
  The clients, the publisher, Redis and both servers share the machine's cores; "others" is
  whatever else ran on the machine meanwhile.
- Machine: {result["machine"]}; {result["measured_at"]}.
- Command: `{result["command"]}`.
{END}"""


def write_doc(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text:
        pattern = re.escape(BEGIN) + r".*?" + re.escape(END)
        text = re.sub(pattern, lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


# --- main ----------------------------------------------------------------------------------------


def csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of events")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between events")
    parser.add_argument("--sizes", type=csv, default=csv("100,500,1000"), help="client counts")
    parser.add_argument("--servers", type=csv, default=csv("daphne,uvicorn"))
    parser.add_argument(
        "--layers", type=csv, default=csv("pubsub"), help="layers measured for every server and N"
    )
    parser.add_argument(
        "--compare-layers",
        type=csv,
        default=csv("core"),
        help="layers measured only at the largest N on the first server ('' for none)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="client processes (one used under a tenth of a core for 1,000 clients)",
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes)
    for layer in args.layers + args.compare_layers:
        if layer not in ("pubsub", "core"):
            parser.error(f"unknown layer {layer!r}: pubsub or core")
    for server in args.servers:
        if server not in ("daphne", "uvicorn"):
            parser.error(f"unknown server {server!r}: daphne or uvicorn")
    return args


def plan(args: argparse.Namespace) -> list[Run]:
    def run(layer: str, server: str, clients: int) -> Run:
        return Run(
            layer, server, clients, args.duration, args.interval, args.client_procs,
            not args.no_compression,
        )  # fmt: skip

    runs = [run(layer, s, n) for layer in args.layers for s in args.servers for n in args.sizes]
    extra = [layer for layer in args.compare_layers if layer not in args.layers]
    return runs + [run(layer, args.servers[0], args.sizes[-1]) for layer in extra]


def print_figures(run: Run, figures: dict[str, Any]) -> None:
    if not measured(figures):
        print(f"{run.label}: ERROR {figures['error']}", flush=True)
        return
    cpu = figures["cpu_cores"]
    print(
        f"{run.label}: joined {figures['connected']}/{run.clients}, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, lost {figures['lost']}, "
        f"out of order {figures['out_of_order']}, dropped {figures['dropped']}, "
        f"{figures['kib_per_connection']} KiB/conn {figures['kib_per_connection_per_server']}, "
        f"published {figures['events_published']}/{figures['events_scheduled']}, "
        f"server CPU {figures['server_cpu_us_per_delivery']} µs/frame, cores {cpu}, "
        f"ws {figures['ws_extensions']}",
        flush=True,
    )
    for line in figures["server_log_errors"]:
        print(f"  server log: {line}", flush=True)


def assemble(args: argparse.Namespace, by_run: dict[Run, dict[str, Any]]) -> dict[str, Any]:
    default_layer = args.layers[0]
    result: dict[str, Any] = {
        server: {
            str(run.clients): figures
            for run, figures in by_run.items()
            if run.layer == default_layer and run.server == server
        }
        for server in args.servers
    }
    layers: dict[str, dict[str, dict[str, Any]]] = {}
    for run, figures in by_run.items():
        layers.setdefault(run.layer, {}).setdefault(run.server, {})[str(run.clients)] = figures
    compared = {
        run.layer: figures
        for run, figures in by_run.items()
        if run.server == args.servers[0] and run.clients == args.sizes[-1]
    }
    chosen, why = choose_layer(compared)
    result["layers"] = layers
    result["layer_choice"] = {
        "server": args.servers[0],
        "clients": args.sizes[-1],
        "chosen": chosen,
        "why": why,
    }
    result["extensions_seen"] = ", ".join(
        sorted(
            {
                f"{run.server}: {'; '.join(figures['ws_extensions'])}"
                for run, figures in by_run.items()
                if measured(figures)
            }
        )
    )
    result["settings"] = {
        "duration": args.duration,
        "interval": args.interval,
        "client_processes": args.client_procs,
        "compression": not args.no_compression,
        "redis_db": urlsplit(args.redis_url).path.strip("/"),
        "targets": {
            "clients": TARGET_CLIENTS,
            "p99_ms": TARGET_P99_MS,
            "lost": 0,
            "kib_per_connection": TARGET_KIB,
        },
    }
    result["machine"] = machine()
    result["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result["command"] = " ".join([".venv/bin/python bench/ws_fanout.py", *sys.argv[1:]])
    result["conclusion"] = conclusion(result, args.servers)
    return result


def main() -> None:
    args = parse_args()
    check_redis_url(args.redis_url)
    raise_fd_limit()  # the servers and client processes inherit it
    # A SIGTERM must run the finally blocks that stop the servers and client processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("ws_fanout: terminated"))
    runs = plan(args)
    by_run: dict[Run, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ws_fanout-") as scratch:
        var_dir = Path(scratch)
        logs = args.logs or var_dir
        logs.mkdir(parents=True, exist_ok=True)
        token = staff_token(bench_env(args.redis_url, var_dir, args.layers[0]))
        for run in runs:
            env = bench_env(args.redis_url, var_dir, run.layer)
            try:
                by_run[run] = measure(run, env, token, args.redis_url, logs)
            except (RuntimeError, OSError) as exc:  # a server that never came up, a dead child
                by_run[run] = {"error": str(exc)[:300]}
            print_figures(run, by_run[run])
    result = assemble(args, by_run)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    write_doc(args.doc, doc_section(result, args.servers, args.layers[0]))
    print(result["conclusion"])


if __name__ == "__main__":
    main()
