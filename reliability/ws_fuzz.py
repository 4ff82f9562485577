#!/usr/bin/env python
"""Hostile websocket clients against one daphne server, while honest dashboards keep watching.

For --duration seconds, against ``/ws/`` of a daphne process (production settings, a throw-away
SQLite database, Redis database --redis-url):

- honest dashboards (--honest) join the Services room and count every ``services_change_status``
  that a bot-like publisher sends five times a second, and ask ``check_services`` now and then;
- garbage clients (--garbage) send, under the flood limit, random frames: random text, binary,
  JSON of every wrong shape, unknown events, forged tokens, strings of every script, arrays nested
  50,000 deep; each frame must get an ``error`` (or a refused ``accept_in_room``) and the
  connection must stay open;
- huge frames: 64 KiB + 1, 1 MiB and 16 MiB, each must be refused (an ``error``, or the
  connection closed) without harm to anyone else;
- floods (--floods connections) send as fast as they can and must be closed with 4008;
- churn: --churn connects and disconnects, --churn-concurrency at a time, half of them dropped
  without a closing handshake.

Passes when the server is still up and answering HTTP, every honest dashboard is still connected
and lost no event, every garbage frame was answered, and every flood was closed with 4008. Writes
reliability/results/ws_fuzz.json and its section of docs/reliability.md.

    .venv/bin/python reliability/ws_fuzz.py [--duration 60] [--honest 20] [--garbage 40]
        [--floods 5] [--churn 3000] [--redis-url redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from bench.api_products import free_port, machine, wait_until_up  # noqa: E402
from bench.ws_fanout import (  # noqa: E402
    ORIGIN,
    bench_env,
    check_redis_url,
    expect_frame,
    flush_redis,
    open_dashboard,
    raise_fd_limit,
    rss_kib,
    server_command,
    staff_token,
)
from marketplace.processes import asgi_server_command, stop_process  # noqa: E402

RESULTS = BASE_DIR / "reliability" / "results" / "ws_fuzz.json"
DOC = BASE_DIR / "docs" / "reliability.md"
SERVICE = "WhatsApp"
GARBAGE_RATE = 8  # frames a second per garbage client: under the protocol's 20/s flood limit
ANSWER_TIMEOUT = 10.0
SEQ = re.compile(r"fuzz seq=(\d+)")  # the publisher's sequence number, in the status detail


# --- hostile frames ------------------------------------------------------------------------------


def random_text(rng: random.Random, size: int) -> str:
    alphabets = [
        string.printable,
        "áéíóúãõçÁÉÍÓÚÃÕÇ",
        "😀🛒🇧🇷👍🏽👨‍👩‍👧",
        "\u0000\u200b\u202e\ufeff\ud7ff",
        '{}[]":,\\',
        "中文日本語한국어العربية",
    ]
    alphabet = rng.choice(alphabets) + string.ascii_letters
    return "".join(rng.choice(alphabet) for _ in range(size))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 2**63, 1e308, -0.0])
    if kind == 2:
        return rng.uniform(-1e9, 1e9)
    if kind in (3, 4):
        return random_text(rng, rng.randrange(0, 40))
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["event", "data", "room", "auth", "service", "chat", "text", "name", random_text(rng, 5)]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


EVENTS = [
    "join_room", "check_services", "generate_session", "logout_session", "send_message",
    "release_chat", "test_message", "welcome", "error", "", "JOIN_ROOM", "__proto__",
]  # fmt: skip


def garbage_frame(rng: random.Random) -> str | bytes:
    """One frame no honest client sends; each is answered with an error."""
    kind = rng.randrange(10)
    if kind == 0:
        return random_text(rng, rng.randrange(1, 300))
    if kind == 1:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 2:
        return json.dumps(random_json(rng))
    if kind == 3:
        return json.dumps({"event": rng.choice(EVENTS), "data": random_json(rng)})
    if kind == 4:
        forged = "eyJhbGciOiJIUzI1NiJ9." + random_text(rng, 40) + ".x"
        room = rng.choice(["Services", "Orders", "Conversations", "Simulator", "Root", ""])
        return json.dumps({"event": "join_room", "data": {"room": room, "auth": forged}})
    if kind == 5:
        return "[" * 50_000
    if kind == 6:
        return '{"event": "join_room", "data": ' + "{" * 20_000
    if kind == 7:
        data = {"service": random_text(rng, 10), "chat": random_text(rng, 30), "text": "x"}
        return json.dumps({"event": rng.choice(["send_message", "release_chat"]), "data": data})
    if kind == 8:  # not in any room yet: 401
        return json.dumps({"event": "check_services", "data": {}})
    return json.dumps({"event": "test_message", "data": {"chat": 1, "text": ["x"]}})


def answered(frame: dict[str, Any]) -> bool:
    """Whether a frame from the server is the answer a refused frame gets."""
    event, data = frame.get("event"), frame.get("data") or {}
    if event == "error":
        return data.get("status") in {400, 401, 404, 409, 429}
    return event == "accept_in_room" and data.get("status") in {400, 403}


# --- clients -------------------------------------------------------------------------------------


@dataclass
class Tally:
    honest_events: dict[int, set[int]] = field(default_factory=dict)
    honest_failures: list[str] = field(default_factory=list)
    checks_answered: int = 0
    garbage_sent: int = 0
    garbage_answered: int = 0
    garbage_closed: list[str] = field(default_factory=list)
    huge: dict[str, str] = field(default_factory=dict)
    flood_closes: Counter[str] = field(default_factory=Counter)
    flood_frames_before_close: list[int] = field(default_factory=list)
    flood_seconds_to_close: list[float] = field(default_factory=list)
    churn: Counter[str] = field(default_factory=Counter)


async def honest(port: int, token: str, number: int, tally: Tally, stop: asyncio.Event) -> None:
    seen: set[int] = set()
    tally.honest_events[number] = seen
    try:
        ws = await open_dashboard(port, token, compression=False)
    except Exception as exc:  # reported, not raised: the run goes on
        tally.honest_failures.append(f"join: {type(exc).__name__}: {exc}")
        return
    try:
        next_check = time.monotonic() + 5
        while not stop.is_set() or time.monotonic() < stop_time(stop) + 3:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                raw = None
            if raw is not None:
                event = json.loads(raw).get("event")
                if event == "services_change_status" and (match := SEQ.search(raw)):
                    seen.add(int(match.group(1)))
                elif event == "services_status":
                    tally.checks_answered += 1
            if time.monotonic() >= next_check and not stop.is_set():
                next_check = time.monotonic() + 5
                await ws.send(json.dumps({"event": "check_services", "data": {}}))
    except Exception as exc:
        tally.honest_failures.append(f"dashboard {number}: {type(exc).__name__}: {exc}")
    finally:
        await ws.close()


def stop_time(stop: asyncio.Event) -> float:
    return getattr(stop, "at", time.monotonic())


async def garbage(port: int, seed: int, tally: Tally, stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    rng = random.Random(seed)
    async with connect(f"ws://127.0.0.1:{port}/ws/", origin=ORIGIN, max_size=None) as ws:
        await expect_frame(ws, "welcome")
        while not stop.is_set():
            frame = garbage_frame(rng)
            await ws.send(frame)
            tally.garbage_sent += 1
            try:
                while True:  # skip anything that is not the answer (none is expected)
                    reply = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
                    if answered(reply):
                        tally.garbage_answered += 1
                        break
            except Exception as exc:
                tally.garbage_closed.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            await asyncio.sleep(1 / GARBAGE_RATE)


async def huge_frames(port: int, tally: Tally) -> None:
    from websockets.asyncio.client import connect

    for label, size in (("64 KiB + 1", 64 * 1024 + 1), ("1 MiB", 2**20), ("16 MiB", 2**24)):
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/", origin=ORIGIN, max_size=None) as ws:
                await expect_frame(ws, "welcome")
                pad = json.dumps({"event": "check_services", "data": {"pad": "x" * size}})
                await ws.send(pad)
                reply = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
                tally.huge[label] = f"error {reply.get('data', {}).get('status')}"
        except Exception as exc:  # a close is an acceptable refusal
            tally.huge[label] = f"closed ({type(exc).__name__})"


async def flood(port: int, tally: Tally) -> None:
    """As many frames as the connection takes, while reading what comes back (to see the close
    code: an unread close frame would wait behind unread errors)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    frame = json.dumps({"event": "check_services", "data": {}})

    sent = 0
    started = time.monotonic()

    async def send_all(ws: Any) -> None:
        nonlocal sent
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await ws.send(frame)
            sent += 1
            await asyncio.sleep(0)

    async with connect(f"ws://127.0.0.1:{port}/ws/", origin=ORIGIN) as ws:
        await expect_frame(ws, "welcome")
        sender = asyncio.create_task(send_all(ws))
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            tally.flood_closes[str(closed.rcvd.code if closed.rcvd else None)] += 1
            tally.flood_frames_before_close.append(sent)
            tally.flood_seconds_to_close.append(round(time.monotonic() - started, 2))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender


async def churn(port: int, count: int, concurrency: int, tally: Tally) -> None:
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            try:
                ws = await connect(f"ws://127.0.0.1:{port}/ws/", origin=ORIGIN, open_timeout=20)
                if n % 2:
                    await ws.close()
                    tally.churn["closed"] += 1
                else:
                    ws.transport.abort()  # gone without a closing handshake
                    tally.churn["dropped"] += 1
            except Exception as exc:
                tally.churn[f"failed: {type(exc).__name__}"] += 1

    await asyncio.gather(*(one(n) for n in range(count)))


async def publish(duration: float, interval: float, stop: asyncio.Event) -> list[int]:
    from realtime.bots import BotLink
    from realtime.status import AUTHENTICATING

    published: list[int] = []
    async with BotLink(SERVICE) as link:
        start = time.monotonic()
        for seq in range(round(duration / interval)):
            await asyncio.sleep(max(0.0, start + seq * interval - time.monotonic()))
            if await link.set_status(AUTHENTICATING, detail=f"fuzz seq={seq}"):
                published.append(seq)
    stop.at = time.monotonic()  # type: ignore[attr-defined]
    stop.set()
    return published


async def attack(port: int, token: str, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    stop = asyncio.Event()
    honest_tasks = [
        asyncio.create_task(honest(port, token, n, tally, stop)) for n in range(args.honest)
    ]
    await asyncio.sleep(3)  # the dashboards are in before the first event
    publisher = asyncio.create_task(publish(args.duration, 0.2, stop))
    hostile = [
        *(garbage(port, seed, tally, stop) for seed in range(args.garbage)),
        huge_frames(port, tally),
        *(flood(port, tally) for _ in range(args.floods)),
        churn(port, args.churn, args.churn_concurrency, tally),
    ]
    outcomes = await asyncio.gather(*hostile, return_exceptions=True)
    published = await publisher
    await asyncio.gather(*honest_tasks)
    crashed = [repr(o)[:200] for o in outcomes if isinstance(o, BaseException)]
    lost = {number: len(set(published) - seen) for number, seen in tally.honest_events.items()}
    return {
        "published": len(published),
        "honest_clients": args.honest,
        "honest_lost_events": sum(lost.values()),
        "honest_clients_missing_events": sum(1 for v in lost.values() if v),
        "honest_failures": tally.honest_failures,
        "honest_checks_answered": tally.checks_answered,
        "garbage_frames_sent": tally.garbage_sent,
        "garbage_frames_answered": tally.garbage_answered,
        "garbage_connections_lost": tally.garbage_closed,
        "huge_frames": tally.huge,
        "flood_close_codes": dict(tally.flood_closes),
        "flood_frames_sent_before_close": tally.flood_frames_before_close,
        "flood_seconds_to_close": tally.flood_seconds_to_close,
        "churn": dict(tally.churn),
        "client_task_crashes": crashed,
    }


def http_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/products/", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--honest", type=int, default=20)
    parser.add_argument("--garbage", type=int, default=40)
    parser.add_argument("--floods", type=int, default=5)
    parser.add_argument("--churn", type=int, default=3000)
    parser.add_argument("--churn-concurrency", type=int, default=50)
    parser.add_argument(
        "--server",
        choices=["uvicorn", "daphne"],
        default="uvicorn",
        help="uvicorn: the shop's server as make run starts it; daphne: for comparison",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    if args.results is None:
        suffix = "" if args.server == "uvicorn" else f"_{args.server}"
        args.results = RESULTS.with_name(f"ws_fuzz{suffix}.json")
    check_redis_url(args.redis_url)
    raise_fd_limit()

    with tempfile.TemporaryDirectory() as var:
        env = bench_env(args.redis_url, Path(var), "pubsub")
        flush_redis(args.redis_url)
        token = staff_token(env)
        port = free_port()
        log = Path(var) / "server.log"
        with log.open("w") as out:
            command = (
                asgi_server_command(host="127.0.0.1", port=port)
                if args.server == "uvicorn"
                else server_command(args.server, port)
            )
            server = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=out)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/api/products/")
            rss_before = rss_kib(server.pid) / 1024
            started = time.monotonic()
            result = {"server": args.server, **asyncio.run(attack(port, token, args))}
            result["seconds"] = round(time.monotonic() - started, 1)
            time.sleep(2)
            result["server_alive"] = server.poll() is None
            result["http_answers_after"] = http_answers(port)
            result["server_rss_mb"] = {
                "before": round(rss_before, 1),
                "after": round(rss_kib(server.pid) / 1024, 1),
            }
        finally:
            stop_process(server)
        server_log = log.read_text(errors="replace")
        result["server_tracebacks"] = server_log.count("Traceback")
        # The last line of each distinct traceback: what to look at first when this fails.
        result["server_errors"] = sorted(
            {
                block.strip().splitlines()[-1][:200]
                for block in server_log.split("Traceback")[1:]
                if block.strip()
            }
        )[:10]

    result.update(
        machine=machine(),
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command="python reliability/ws_fuzz.py " + " ".join(sys.argv[1:]),
    )
    failures = verdict(result, args)
    result["passed"] = not failures
    result["failures"] = failures
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_doc_section(result, args.doc)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if failures:
        sys.exit("failed: " + "; ".join(failures))


def verdict(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    checks = {
        "the server is still running": result["server_alive"],
        "HTTP still answers": result["http_answers_after"],
        "no honest dashboard lost an event": result["honest_lost_events"] == 0,
        "every honest dashboard stayed connected": not result["honest_failures"],
        "every garbage frame was answered": (
            result["garbage_frames_sent"] == result["garbage_frames_answered"]
            and not result["garbage_connections_lost"]
        ),
        "every flood was closed with 4008": result["flood_close_codes"] == {"4008": args.floods},
        "every churn connection opened": set(result["churn"]) <= {"closed", "dropped"},
        "no traceback in the server's log": result["server_tracebacks"] == 0,
        "no client task crashed": not result["client_task_crashes"],
    }
    return [name for name, ok in checks.items() if not ok]


def write_doc_section(result: dict[str, Any], doc: Path) -> None:
    begin, end = (
        f"<!-- ws_fuzz_{result['server']}:begin -->",
        f"<!-- ws_fuzz_{result['server']}:end -->",
    )
    huge = ", ".join(f"{k}: {v}" for k, v in result["huge_frames"].items())
    churn = ", ".join(f"{v} {k}" for k, v in result["churn"].items())
    floods = ", ".join(f"{v} × {k}" for k, v in result["flood_close_codes"].items())
    verdict_line = (
        "**passed**" if result["passed"] else "**failed**: " + "; ".join(result["failures"])
    )
    section = f"""{begin}
### Websocket fuzzer against {result["server"]}: {verdict_line}

| | |
|---|---|
| honest dashboards | {result["honest_clients"]}; events published {result["published"]}, lost {result["honest_lost_events"]}; `check_services` answered {result["honest_checks_answered"]} times |
| garbage frames | {result["garbage_frames_sent"]} sent, {result["garbage_frames_answered"]} answered with an error, connections lost {len(result["garbage_connections_lost"])} |
| huge frames | {huge} |
| floods | closed with {floods}; frames each sent before its close: {result["flood_frames_sent_before_close"]} |
| connects and disconnects | {churn} |
| server afterwards | running: {result["server_alive"]}; HTTP answers: {result["http_answers_after"]}; RSS {result["server_rss_mb"]["before"]} → {result["server_rss_mb"]["after"]} MB; tracebacks in its log: {result["server_tracebacks"]} |

- {result["seconds"]} s; machine: {result["machine"]}; {result["measured_at"]}.
- Command: `{result["command"]}`.
{end}"""  # noqa: E501
    report.write_doc_section(begin, end, section, doc=doc)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
