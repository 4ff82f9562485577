#!/usr/bin/env python
"""Soak: simulated customers at a steady rate for an hour, through the WhatsApp bot and the double.

The shop's server (uvicorn, production settings, PostgreSQL) with dashboards watching the
Conversations room, and ``manage.py runbot whatsapp`` in headless Chromium against the WhatsApp
Web double, logged in by QR. --chats customers write the bench's script of messages (greeting,
catalog, a product, search with a typo, menu, my orders) at --rate messages a minute in all, each
waiting for the bot's reply before its next message. Every minute: memory (PSS) of the server,
the bot, ChromeDriver and Chromium. At the end: replies lost (a message with no reply within
60 s), p50/p99 reply latency, and each process's memory growth from the first minute (after the
warm-up) to the last.

Passes with no reply lost and no process grown by more than 10 %. Writes
reliability/results/soak.json and its section of docs/reliability.md.

    .venv/bin/python reliability/soak.py [--minutes 60] [--chats 20] [--rate 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from bench.api_products import free_port, machine, wait_until_up  # noqa: E402
from bench.engine import (  # noqa: E402
    percentile,
    seed_catalog,
    staff_access_token,
    use_bench_environment,
)
from bench.whatsapp_latency import (  # noqa: E402
    SCRIPT,
    forget_chats,
    memory_mb,
    start_linked_bot,
)
from marketplace.processes import asgi_server_command, stop_process  # noqa: E402
from reliability.private_services import PrivateRedis  # noqa: E402

RESULTS = BASE_DIR / "reliability" / "results" / "soak.json"
DOC = BASE_DIR / "docs" / "reliability.md"
REPLY_TIMEOUT_S = 60
DASHBOARDS = 5
GROWTH_LIMIT = 0.10


class Customers:
    """--chats threads, each one customer writing, waiting for the reply, then pausing so that
    all of them together keep the rate."""

    def __init__(self, double: Any, chats: int, rate_per_minute: float) -> None:
        self.double = double
        self.phones = [f"+55119{n:08d}" for n in range(1, chats + 1)]
        self.interval = chats * 60 / rate_per_minute  # between one customer's messages
        self.latencies_ms: list[float] = []
        self.lost: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, phone: str, offset: float) -> None:
        if self.stop.wait(offset):
            return
        number = 0
        while not self.stop.is_set():
            started = time.monotonic()
            text = SCRIPT[number % len(SCRIPT)]
            number += 1
            before = len(self.double.sent(phone))
            self.double.customer_says(phone, text, name=f"Cliente {phone[-4:]}")
            said_at = self.double.received(phone)[-1]["at"]
            with self.lock:
                self.sent += 1
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while True:
                replies = self.double.sent(phone)
                if len(replies) > before:
                    with self.lock:
                        self.latencies_ms.append((replies[before]["at"] - said_at) * 1000)
                    break
                if time.monotonic() > deadline:
                    with self.lock:
                        self.lost.append(f"{phone}: {text!r}")
                    break
                time.sleep(0.02)
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(
                target=self.run, args=(phone, n * self.interval / len(self.phones)), daemon=True
            )
            for n, phone in enumerate(self.phones)
        ]
        for thread in threads:
            thread.start()
        return threads


def watch_conversations(port: int, token: str, seen: list[int], stop: threading.Event) -> None:
    """DASHBOARDS websockets in the Conversations room, counting the chat messages they see."""
    from websockets.asyncio.client import connect

    async def one(slot: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/", origin="http://127.0.0.1") as ws:
            await ws.recv()  # welcome
            auth = {"room": "Conversations", "auth": token}
            await ws.send(json.dumps({"event": "join_room", "data": auth}))
            while not stop.is_set():
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 1))
                except TimeoutError:
                    continue
                if frame.get("event") == "chat_message":
                    seen[slot] += 1

    async def all_of_them() -> None:
        await asyncio.gather(*(one(slot) for slot in range(DASHBOARDS)))

    asyncio.run(all_of_them())


def server_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss / 1024 / 1024
        except psutil.Error:
            continue
    return round(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--rate", type=float, default=60, help="messages a minute, all chats")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()

    with PrivateRedis() as redis_server:
        # A Redis of its own: an hour of traffic shares nothing with what else runs here.
        os.environ["BENCH_REDIS_URL"] = redis_server.url
        soak(args)


def soak(args: argparse.Namespace) -> None:
    use_bench_environment()
    os.environ["LOG_LEVEL"] = "INFO"  # the bot's reloads and restarts are counted from its log
    os.environ["SECURE_SSL_REDIRECT"] = "False"  # plain http on 127.0.0.1, no TLS proxy
    import django

    django.setup()

    from tests.whatsapp_double import WhatsAppDouble

    seed_catalog(1_000)
    forget_chats()
    token = staff_access_token("soak-staff")

    port = free_port()
    timeline: list[dict[str, Any]] = []
    seen = [0] * DASHBOARDS
    watching = threading.Event()
    with WhatsAppDouble() as double, tempfile.TemporaryDirectory() as profile:
        server_log = (Path(profile) / "server.log").open("w")
        bot_log_path = Path(profile) / "bot.log"
        bot_log = bot_log_path.open("w")
        server = subprocess.Popen(
            asgi_server_command(host="127.0.0.1", port=port),
            cwd=BASE_DIR,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        customers = Customers(double, args.chats, args.rate)
        bot = None
        try:
            wait_until_up(f"http://127.0.0.1:{port}/api/products/")
            dashboards = threading.Thread(
                target=watch_conversations, args=(port, token, seen, watching), daemon=True
            )
            dashboards.start()
            bot = start_linked_bot(double, str(Path(profile) / "chromium"), log=bot_log)
            started = time.monotonic()
            threads = customers.start()
            end = started + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(min(60.0, max(0.0, end - time.monotonic())))
                timeline.append(
                    {
                        "minute": round((time.monotonic() - started) / 60, 1),
                        "server": server_mb(server.pid),
                        **memory_mb(bot.pid),
                        "messages": customers.sent,
                        "lost": len(customers.lost),
                    }
                )
                print(json.dumps(timeline[-1]), flush=True)
            customers.stop.set()
            for thread in threads:
                thread.join(timeout=REPLY_TIMEOUT_S + 5)
            bot_alive, server_alive = bot.poll() is None, server.poll() is None
        finally:
            watching.set()
            if bot is not None:
                stop_process(bot, timeout=30)
            stop_process(server)
            server_log.close()
            bot_log.close()
            bot_says = bot_log_path.read_text()

    first, last = timeline[0], timeline[-1]
    parts = ("server", "bot", "chromedriver", "chromium", "pss")
    growth = {p: round((last[p] - first[p]) / first[p], 3) if first[p] else 0.0 for p in parts}
    latencies = sorted(customers.latencies_ms)
    result = {
        "minutes": args.minutes,
        "chats": args.chats,
        "rate_per_minute": args.rate,
        "messages": customers.sent,
        "replies": len(latencies),
        "replies_lost": len(customers.lost),
        "lost_examples": customers.lost[:10],
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "memory_first_minute_mb": {p: first[p] for p in parts},
        "memory_last_minute_mb": {p: last[p] for p in parts},
        "memory_peak_mb": {p: max(row[p] for row in timeline) for p in parts},
        "growth": growth,
        "dashboard_chat_messages_seen": seen,
        "page_reloads": bot_says.count("reloading WhatsApp Web"),
        "chromium_restarts": bot_says.count("over its budget"),
        "bot_log_errors": bot_says.count(" ERROR "),
        "bot_alive": bot_alive,
        "server_alive": server_alive,
        "timeline": timeline,
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python reliability/soak.py " + " ".join(sys.argv[1:]),
    }
    failures = [
        *(f"{p} grew by {g:.0%}" for p, g in growth.items() if p != "pss" and g > GROWTH_LIMIT),
        *(["replies lost"] if customers.lost else []),
        *(["a process died"] if not (bot_alive and server_alive) else []),
    ]
    result["passed"], result["failures"] = not failures, failures
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_doc_section(result, args.doc)
    print(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=2))
    if failures:
        sys.exit("failed: " + "; ".join(failures))


def write_doc_section(result: dict[str, Any], doc: Path) -> None:
    begin, end = "<!-- soak:begin -->", "<!-- soak:end -->"
    rows = "\n".join(
        f"| {p} | {result['memory_first_minute_mb'][p]} | {result['memory_last_minute_mb'][p]} "
        f"| {result['growth'][p]:+.1%} | {result['memory_peak_mb'][p]} |"
        for p in ("server", "bot", "chromedriver", "chromium", "pss")
    )
    verdict = "**passed**" if result["passed"] else "**failed**: " + "; ".join(result["failures"])
    section = f"""{begin}
### Soak, {result["minutes"]:g} minutes: {verdict}

{result["messages"]} messages from {result["chats"]} customers at {result["rate_per_minute"]:g} a
minute; replies lost: {result["replies_lost"]}; reply latency p50 {result["p50_ms"]} ms, p99
{result["p99_ms"]} ms; chat messages seen by each of {DASHBOARDS} dashboards:
{result["dashboard_chat_messages_seen"]}.

| process (PSS, MB) | first minute | last minute | growth | peak |
|---|---:|---:|---:|---:|
{rows}

The bot reloaded the page {result["page_reloads"]} times (its JavaScript heap had grown by
`WHATSAPP_PAGE_HEAP_GROWTH_MB`) and restarted Chromium {result["chromium_restarts"]} times (over
`WHATSAPP_CHROMIUM_MAX_MB`); errors in its log: {result["bot_log_errors"]}.

{report.footer(result)}
{end}"""
    report.write_doc_section(begin, end, section, doc=doc)


if __name__ == "__main__":
    main()
