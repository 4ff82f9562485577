#!/usr/bin/env python
"""Redis stops for --down seconds under a running shop: what the customers and the owner see.

A private Redis (its own port and folder, with an append-only file as production keeps it) serves
the shop's server (uvicorn, production settings, PostgreSQL), ``manage.py runbot whatsapp`` in
headless Chromium against the WhatsApp Web double, --dashboards websocket clients in the
Services room (they behave as the dashboard page does: on a drop they reconnect with back-off,
join again and ask ``check_services``) and --chats customers writing the bench's script, each
waiting for the reply to a message before the next. Then Redis is stopped for --down seconds and
started again, and the run goes on for --after seconds.

Checked, and written to reliability/results/redis_outage.json and docs/reliability.md:
- HTTP pages and the API (home, admin login, product list) answer 200 all along;
- no customer message goes without a reply; the "tente de novo em instantes" reply only for
  messages that came while Redis was away (or while the bot was still finding out it was back);
- the bot keeps its browser (same Chromium, no new QR) and every process stays up;
- within 15 s of Redis being back, every dashboard shows the statuses the registry holds
  (WhatsApp 200, Telegram 403);
- Redis' client connections return to the number before the stop.

    .venv/bin/python reliability/redis_outage.py [--down 10] [--dashboards 200] [--chats 10]
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
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from bench.api_products import free_port, machine, wait_until_up  # noqa: E402
from bench.engine import seed_catalog, staff_access_token, use_bench_environment  # noqa: E402
from bench.whatsapp_latency import SCRIPT, forget_chats, start_linked_bot  # noqa: E402
from marketplace.processes import asgi_server_command, stop_process  # noqa: E402
from reliability.private_services import PrivateRedis  # noqa: E402

RESULTS = BASE_DIR / "reliability" / "results" / "redis_outage.json"
LOGS = BASE_DIR / "var" / "reliability" / "redis_outage"  # the last run's server and bot logs
DOC = BASE_DIR / "docs" / "reliability.md"
POLITE = "Tente de novo em instantes"
REPLY_TIMEOUT_S = 60
STATUS_DEADLINE_S = 15
# A message written this long after Redis is back may still meet a bot finding that out.
RECOVERY_GRACE_S = 5
PAGES = ("/", "/admin/login/", "/api/products/")


class Customers:
    """Each customer writes, waits for the reply, reads it, writes the next."""

    def __init__(self, double: Any, chats: int) -> None:
        self.double = double
        self.phones = [f"+55219{n:08d}" for n in range(1, chats + 1)]
        self.log: list[dict[str, Any]] = []  # one per message: said, answered, polite
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, phone: str, offset: float) -> None:
        if self.stop.wait(offset):
            return
        number = 0
        while not self.stop.is_set():
            text = SCRIPT[number % len(SCRIPT)]
            before = len(self.double.sent(phone))
            said = time.time()
            self.double.customer_says(phone, text, name=f"Cliente {phone[-4:]}")
            entry: dict[str, Any] = {"phone": phone, "text": text, "said": said, "reply": None}
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while time.monotonic() < deadline:
                replies = self.double.sent(phone)
                if len(replies) > before:
                    entry["reply"] = replies[before]["text"]
                    entry["answered"] = time.time()
                    break
                time.sleep(0.05)
            with self.lock:
                self.log.append(entry)
            if entry["reply"] and POLITE.lower() not in entry["reply"].lower():
                number += 1  # told to try again: the customer says the same again
            self.stop.wait(1.5)

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.run, args=(phone, n * 0.3), daemon=True)
            for n, phone in enumerate(self.phones)
        ]
        for thread in threads:
            thread.start()
        return threads


class Dashboards:
    """--dashboards websocket clients in the Services room, each keeping the statuses it shows."""

    def __init__(self, port: int, token: str, count: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/"
        self.token = token
        self.shown: list[dict[str, int]] = [{} for _ in range(count)]
        self.reconnects = [0] * count
        self.joined = [False] * count
        self.simulator_log: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)

    async def _all(self) -> None:
        await asyncio.gather(
            self._simulator(), *(self._one(slot) for slot in range(len(self.shown)))
        )

    async def _simulator(self) -> None:
        """The owner chatting in the Simulator room all along: the server's own chat traffic
        (the engine runs in the server for it). Every message is kept with its first reply."""
        from websockets.asyncio.client import connect

        number = 0
        while not self.stop.is_set():
            try:
                async with connect(self.url, origin="http://127.0.0.1", open_timeout=20) as ws:
                    await ws.recv()  # welcome
                    join = {"room": "Simulator", "auth": self.token}
                    await ws.send(json.dumps({"event": "join_room", "data": join}))
                    while not self.stop.is_set():
                        text = SCRIPT[number % len(SCRIPT)]
                        said = time.time()
                        data = {"chat": "outage-owner", "name": "Dona", "text": text}
                        await ws.send(json.dumps({"event": "test_message", "data": data}))
                        entry = {"text": text, "said": said, "reply": None, "error": None}
                        self.simulator_log.append(entry)
                        deadline = time.monotonic() + REPLY_TIMEOUT_S
                        while entry["reply"] is None and entry["error"] is None:
                            left = deadline - time.monotonic()
                            if left <= 0:
                                break
                            frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                            if frame.get("event") in ("test_reply", "error"):
                                field = "reply" if frame["event"] == "test_reply" else "error"
                                entry[field] = frame["data"].get("text", frame["data"])
                                entry["answered"] = time.time()
                        if entry["reply"] and POLITE.lower() not in entry["reply"].lower():
                            number += 1
                        await asyncio.sleep(1.5)
            except Exception:  # a drop: reconnect, as the page does
                await asyncio.sleep(1.0)

    async def _one(self, slot: int) -> None:
        from websockets.asyncio.client import connect

        delay = 1.0
        while not self.stop.is_set():
            try:
                async with connect(self.url, origin="http://127.0.0.1", open_timeout=20) as ws:
                    await ws.recv()  # welcome
                    join = {"room": "Services", "auth": self.token}
                    await ws.send(json.dumps({"event": "join_room", "data": join}))
                    await ws.send(json.dumps({"event": "check_services", "data": {}}))
                    delay = 1.0
                    while not self.stop.is_set():
                        try:
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 1))
                        except TimeoutError:
                            continue
                        self._apply(slot, frame)
                        if frame.get("event") == "error" and not self.joined[slot]:
                            break  # refused while Redis was away: join again, as the page does
            except Exception:  # a drop, a refusal, a timeout: reconnect, as the page does
                pass
            if self.stop.is_set():
                return
            self.reconnects[slot] += 1
            self.joined[slot] = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _apply(self, slot: int, frame: dict[str, Any]) -> None:
        event, data = frame.get("event"), frame.get("data") or {}
        if event == "accept_in_room" and data.get("status") == 200:
            self.joined[slot] = True
        elif event == "services_status":
            self.shown[slot] = {k: int(v) for k, v in data.items()}
        elif event == "services_change_status":
            self.shown[slot] = {k: int(v) for k, v in data.get("services", {}).items()}

    def wrong(self, truth: dict[str, int]) -> int:
        return sum(1 for shown in self.shown if shown != truth)


class Pages:
    """Asks for each of PAGES every half second; keeps every answer's status and time."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.answers: list[tuple[float, str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for path in PAGES:
                try:
                    with urllib.request.urlopen(self.base + path, timeout=10) as response:
                        code = response.status
                except urllib.error.HTTPError as refused:
                    code = refused.code
                except OSError:
                    code = 0
                self.answers.append((time.time(), path, code))
            self.stop.wait(0.5)


def redis_clients(redis_server: PrivateRedis, server_pid: int, bot_pid: int) -> dict[str, int]:
    """Redis' client connections, by the process holding them (server, bot, this script)."""
    import psutil
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        listed = client.client_list()
        addresses = [c["addr"] for c in listed]
        asking = client.client_info()["addr"]
    finally:
        client.close()
    owners = {}
    for pid, name in ((server_pid, "server"), (bot_pid, "bot"), (os.getpid(), "script")):
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == redis_server.port:
                owners[f"{connection.laddr.ip}:{connection.laddr.port}"] = name
    counts = {"total": len(addresses) - 1, "server": 0, "bot": 0, "script": 0, "other": 0}
    for address in addresses:
        if address != asking:
            counts[owners.get(address, "other")] += 1
    return counts


def chromium_pids(bot_pid: int) -> set[int]:
    import psutil

    children = psutil.Process(bot_pid).children(recursive=True)
    return {p.pid for p in children if "chrom" in p.name() and "driver" not in p.name()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--down", type=float, default=10, help="seconds Redis stays stopped")
    parser.add_argument("--dashboards", type=int, default=200)
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--before", type=float, default=20, help="seconds of traffic before")
    parser.add_argument("--after", type=float, default=40, help="seconds of traffic after")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()

    with PrivateRedis() as redis_server, tempfile.TemporaryDirectory() as folder:
        os.environ["BENCH_REDIS_URL"] = redis_server.url
        os.environ["STATIC_ROOT"] = str(Path(folder) / "static")
        result = run(args, redis_server, Path(folder))

    report.save_result(result, args.results)
    write_doc_section(result, args.doc)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["failures"]:
        sys.exit("failed: " + "; ".join(result["failures"]))


def run(args: argparse.Namespace, redis_server: PrivateRedis, folder: Path) -> dict[str, Any]:
    use_bench_environment()
    os.environ["SECURE_SSL_REDIRECT"] = "False"  # plain http on 127.0.0.1, no TLS proxy
    os.environ["LOG_LEVEL"] = "INFO"
    import django

    django.setup()

    from realtime import status
    from tests.whatsapp_double import WhatsAppDouble

    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                   cwd=BASE_DIR, check=True)  # fmt: skip
    seed_catalog(200)
    forget_chats()
    token = staff_access_token("outage-staff")

    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    server_log_path, bot_log_path = LOGS / "server.log", LOGS / "bot.log"
    server_log, bot_log = server_log_path.open("w"), bot_log_path.open("w")
    server = subprocess.Popen(
        asgi_server_command(host="127.0.0.1", port=port),
        cwd=BASE_DIR, stdout=server_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    bot = None
    timeline: dict[str, float] = {}
    with WhatsAppDouble() as double:
        customers = Customers(double, args.chats)
        dashboards = Dashboards(port, token, args.dashboards)
        pages = Pages(port)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/api/products/")
            bot = start_linked_bot(double, str(folder / "profile"), log=bot_log)
            chromium_before = chromium_pids(bot.pid)
            qr_before = double.qr_payload()
            dashboards.thread.start()
            pages.thread.start()
            threads = customers.start()
            time.sleep(args.before)
            truth = {k: v.status for k, v in status.get_states().items()}
            clients_before = redis_clients(redis_server, server.pid, bot.pid)
            wrong_before = dashboards.wrong(truth)

            timeline["stopped"] = time.time()
            redis_server.stop()
            time.sleep(args.down)
            redis_server.start()
            timeline["back"] = time.time()

            # Every dashboard right, measured from Redis being back.
            all_right_after = None
            while time.time() - timeline["back"] < STATUS_DEADLINE_S + 15:
                truth = {k: v.status for k, v in status.get_states().items()}
                if truth.get("WhatsApp") == status.CONNECTED and not dashboards.wrong(truth):
                    all_right_after = time.time() - timeline["back"]
                    break
                time.sleep(0.2)
            wrong_at_deadline = dashboards.wrong(truth)
            time.sleep(max(0.0, timeline["back"] + args.after - time.time()))
            clients_after = redis_clients(redis_server, server.pid, bot.pid)
            truth = {k: v.status for k, v in status.get_states().items()}
            wrong_at_end = dashboards.wrong(truth)
            customers.stop.set()
            for thread in threads:
                thread.join(timeout=REPLY_TIMEOUT_S + 5)
            chromium_after = chromium_pids(bot.pid)
            qr_after = double.qr_payload()
            bot_alive, server_alive = bot.poll() is None, server.poll() is None
        finally:
            dashboards.stop.set()
            pages.stop.set()
            if bot is not None:
                stop_process(bot, timeout=30)
            stop_process(server)
            server_log.close()
            bot_log.close()

    stopped, back = timeline["stopped"], timeline["back"]
    log = customers.log
    unanswered = [e for e in log if e["reply"] is None]
    polite = [e for e in log if e["reply"] and POLITE.lower() in e["reply"].lower()]
    # Must: the message was being handled at some moment while Redis was away (or just back).
    polite_outside = [
        e for e in polite if e["answered"] < stopped or e["said"] > back + RECOVERY_GRACE_S
    ]
    during = [e for e in log if stopped <= e["said"] <= back]
    owner = dashboards.simulator_log[:-1]  # the last one may have been cut off by the end
    owner_unanswered = [e for e in owner if e["reply"] is None and e["error"] is None]
    owner_polite = [e for e in owner if e["reply"] and POLITE.lower() in e["reply"].lower()]
    polite_outside += [
        e for e in owner_polite if e["answered"] < stopped or e["said"] > back + RECOVERY_GRACE_S
    ]
    bad_pages = [(round(t - stopped, 1), path, code) for t, path, code in pages.answers
                 if code != 200]  # fmt: skip
    pages_during = sum(1 for t, _, _ in pages.answers if stopped <= t <= back)
    result = {
        "down_s": args.down,
        "dashboards": args.dashboards,
        "chats": args.chats,
        "messages": len(log),
        "messages_while_down": len(during),
        "unanswered": len(unanswered),
        "unanswered_examples": unanswered[:5],
        "polite_replies": len(polite),
        "polite_replies_outside_the_outage": len(polite_outside),
        "polite_example": polite[0]["reply"] if polite else None,
        "simulator_messages": len(owner),
        "simulator_unanswered": len(owner_unanswered),
        "simulator_polite_replies": len(owner_polite),
        "simulator_errors": [e["error"] for e in owner if e["error"]][:5],
        "page_answers": len(pages.answers),
        "page_answers_while_down": pages_during,
        "page_answers_not_200": bad_pages[:10],
        "dashboards_wrong_before": wrong_before,
        "dashboards_all_right_after_s": round(all_right_after, 1) if all_right_after else None,
        "dashboards_wrong_at_15_s": wrong_at_deadline,
        "dashboards_wrong_at_end": wrong_at_end,
        "dashboard_reconnects": sum(dashboards.reconnects),
        "statuses_at_end": truth,
        "redis_clients_before": clients_before,
        "redis_clients_after": clients_after,
        "same_chromium": bool(chromium_before) and chromium_before == chromium_after,
        "qr_shown_again": qr_after is not None and qr_after != qr_before,
        "bot_alive": bot_alive,
        "server_alive": server_alive,
        "server_log_tracebacks": server_log_path.read_text().count("Traceback"),
        "bot_log_tracebacks": bot_log_path.read_text().count("Traceback"),
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python reliability/redis_outage.py " + " ".join(sys.argv[1:]),
    }
    right_in_time = all_right_after is not None and all_right_after <= STATUS_DEADLINE_S
    ours = ("server", "bot")  # the script's own connections are the measurer's
    checks = [
        (not unanswered and not owner_unanswered, "a message went without a reply"),
        (not polite_outside, "told to try again outside the outage"),
        (bool(during), "no message came while Redis was away"),
        (not bad_pages, "a page or the API did not answer 200"),
        (right_in_time, f"dashboards not all right within {STATUS_DEADLINE_S} s"),
        (not wrong_at_end, "dashboards wrong at the end"),
        (
            all(clients_after[p] == clients_before[p] for p in ours),
            "Redis client connections did not return to their number",
        ),
        (
            result["same_chromium"] and not result["qr_shown_again"],
            "the bot lost its browser session",
        ),
        (bot_alive and server_alive, "a process died"),
    ]
    result["failures"] = [failure for passed, failure in checks if not passed]
    result["passed"] = not result["failures"]
    return result


def write_doc_section(result: dict[str, Any], doc: Path) -> None:
    begin, end = "<!-- redis_outage:begin -->", "<!-- redis_outage:end -->"
    verdict = "**passed**" if result["passed"] else "**failed**: " + "; ".join(result["failures"])
    right = result["dashboards_all_right_after_s"]
    before, after = result["redis_clients_before"], result["redis_clients_after"]
    rows = [
        (
            "pages and API (" + ", ".join(f"`{p}`" for p in PAGES) + ")",
            f"{result['page_answers']} answers, {result['page_answers_while_down']} while Redis "
            f"was away; not 200: {len(result['page_answers_not_200'])}",
        ),
        (
            f"customers ({result['chats']} chats)",
            f"{result['messages']} messages, {result['messages_while_down']} while Redis was "
            f"away; without a reply: {result['unanswered']}; told to try again: "
            f"{result['polite_replies']} (outside the outage: "
            f"{result['polite_replies_outside_the_outage']})",
        ),
        ("the polite reply", result["polite_example"] or "none sent"),
        (
            "the owner in the Simulator",
            f"{result['simulator_messages']} messages; without a reply: "
            f"{result['simulator_unanswered']}; told to try again: "
            f"{result['simulator_polite_replies']}; errors: {len(result['simulator_errors'])}",
        ),
        (
            "the bot's browser",
            f"same Chromium: {result['same_chromium']}; QR shown again: {result['qr_shown_again']}",
        ),
        (
            f"{result['dashboards']} dashboards",
            "all showing the registry's statuses "
            + (f"{right} s after Redis was back" if right is not None else "never")
            + f"; reconnects: {result['dashboard_reconnects']}; statuses at the end: "
            f"{result['statuses_at_end']}",
        ),
        (
            "Redis client connections",
            f"server {before['server']} before, {after['server']} after; bot "
            f"{before['bot']} before, {after['bot']} after",
        ),
        (
            "processes",
            f"server up: {result['server_alive']}, bot up: {result['bot_alive']}; tracebacks "
            f"logged: server {result['server_log_tracebacks']}, bot "
            f"{result['bot_log_tracebacks']}",
        ),
    ]
    section = f"""{begin}
### Redis stopped for {result["down_s"]:g} s: {verdict}

{report.two_column_table(rows)}

{report.footer(result)}
{end}"""
    report.write_doc_section(begin, end, section, doc=doc)


if __name__ == "__main__":
    main()
