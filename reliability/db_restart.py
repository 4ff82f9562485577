#!/usr/bin/env python
"""The database restarts during checkouts: no order half-written, customers told to retry,
stock consistent.

A private PostgreSQL and a private Redis (their own ports and folders) serve the shop:
--chats customers shop by chat through the same path the bots take (``ChatGateway.handle``,
the engine in a worker thread, as ``manage.py runbot`` does), each one in a loop: search a
product, add it, check out, confirm; and --buyers API clients place orders with
``POST /api/orders/`` on the shop's server (uvicorn, production settings). Meanwhile PostgreSQL
is restarted --restarts times: an operator's restart (fast shutdown) and a crash
(immediate shutdown), each down for --down seconds.

Checked afterwards, and written to reliability/results/db_restart.json and docs/reliability.md:
- every message got a reply and every API call an answer; while the database was away the
  customer was asked to try again (the engine's reply; the API's 503 with Retry-After);
- no order is half-written: each has its items, a total equal to their sum, and its first
  status change; no order was placed twice by one confirmation;
- stock is consistent: each product's stock is what it was less what its orders hold;
- every order in the database was confirmed to its buyer (in the chat or with a 201), and
  every confirmation names an order that is there;
- checkouts work again after the last restart, and the server never stopped.

    .venv/bin/python reliability/db_restart.py [--chats 12] [--buyers 4] [--restarts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from bench.api_products import machine, wait_until_up  # noqa: E402
from marketplace.processes import asgi_server_command, stop_process  # noqa: E402
from reliability.private_services import PrivatePostgres, PrivateRedis, free_port  # noqa: E402

RESULTS = BASE_DIR / "reliability" / "results" / "db_restart.json"
DOC = BASE_DIR / "docs" / "reliability.md"
LOGS = BASE_DIR / "var" / "reliability" / "db_restart"
PRODUCTS = 8
STOCK = 10_000
RETRY = re.compile(r"tente de novo|try again", re.I)
PLACED = re.compile(r"Pedido \*#([^*]+)\* recebido")


class ChatCustomer:
    """A customer shopping by chat, answering what the bot asks, retrying when told to."""

    def __init__(self, number: int, products: list[str], stop: threading.Event) -> None:
        from bots.chat import WHATSAPP
        from bots.gateway import ChatGateway

        self.chat = f"+55319{number:08d}"
        self.name = f"Cliente {number}"
        self.products = products
        self.stop = stop
        self.gateway = ChatGateway(WHATSAPP)
        self.log: list[dict[str, Any]] = []  # every message: said, replies, when
        self.placed: list[str] = []  # order numbers the bot confirmed
        self._ids = 0

    def say(self, text: str) -> str:
        from bots.chat import WHATSAPP, IncomingMessage

        self._ids += 1
        message = IncomingMessage(
            service=WHATSAPP, chat=self.chat, message_id=f"{self.chat}-{self._ids}",
            text=text, customer_name=self.name,
        )  # fmt: skip
        said = time.time()
        try:
            replies = asyncio.run(self.gateway.handle(message))
            answer = "\n".join(reply.text for reply in replies)
        except Exception as failure:  # what the bot would die of: counted, never hidden
            answer = None
            self.log.append({"text": text, "said": said, "error": repr(failure)})
            return ""
        self.log.append({"text": text, "said": said, "answer": answer, "at": time.time()})
        self.placed += PLACED.findall(answer)
        return answer

    def insist(self, text: str) -> str:
        """Say ``text``; while the bot asks to try again, wait a moment and say it again."""
        answer = self.say(text)
        while RETRY.search(answer) and not self.stop.is_set():
            time.sleep(1.0)
            answer = self.say(text)
        return answer

    def run(self) -> None:
        round_ = 0
        while not self.stop.is_set():
            product = self.products[(round_ + len(self.chat)) % len(self.products)]
            round_ += 1
            self.insist("menu")
            self.insist("2")  # search
            self.insist(product)
            self.insist("1")  # the first match
            self.insist("1")  # one unit
            answer = self.insist("3")  # check out
            for _ in range(6):  # name, address, payment, summary: what the bot asks for
                if self.stop.is_set():
                    return
                if "📝" in answer:
                    answer = self.insist(self.name)
                elif "📍" in answer and "Entrega" not in answer:
                    answer = self.insist("Rua das Flores, 123, Belo Horizonte")
                elif "💳" in answer and "1." in answer and "Pagamento:" not in answer:
                    answer = self.insist("1")  # Pix
                else:
                    break
            answer = self.insist("1")  # confirm
            if "⚠️" in answer and "1." in answer:  # the cart changed: confirm the new summary
                self.insist("1")


class ApiBuyer:
    """A customer of the REST API placing one-item orders in a loop."""

    def __init__(self, base: str, number: int, product_ids: list[int], stop: threading.Event):
        self.base = base
        self.username = f"comprador{number}"
        self.product_ids = product_ids
        self.stop = stop
        self.answers: list[tuple[float, int, str]] = []  # when, status, what
        self.placed: list[str] = []  # order numbers answered with 201
        self.token = ""

    def call(
        self, method: str, path: str, body: dict | None = None, *, key: str = ""
    ) -> tuple[int, dict, dict]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if key:
            headers["Idempotency-Key"] = key
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, method=method, data=data, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
        except urllib.error.HTTPError as refused:
            raw = refused.read()
            try:
                return refused.code, json.loads(raw or b"{}"), dict(refused.headers)
            except ValueError:
                return refused.code, {"raw": raw[:200].decode(errors="replace")}, {}

    def run(self) -> None:
        password = "uma-senha-bem-forte-42"
        account = {"username": self.username, "password": password, "name": self.username}
        self.call("POST", "/api/auth/register/", account)
        round_ = 0
        while not self.stop.is_set():
            if not self.token:
                code, body, _ = self.call(
                    "POST", "/api/auth/token/", {"username": self.username, "password": password}
                )
                self.answers.append((time.time(), code, "token"))
                if code != 200:
                    self.stop.wait(1.0)
                    continue
                self.token = body["access"]
            product = self.product_ids[round_ % len(self.product_ids)]
            round_ += 1
            order = {"items": [{"product": product, "quantity": 1}],
                     "payment_method": "pix", "delivery_address": "Rua A, 1, Recife"}  # fmt: skip
            # One key per order, the same on every retry of it: a retry after a 503 whose commit
            # did happen answers that order instead of placing a second one.
            key = f"{self.username}-{round_}"
            code, body, headers = self.call("POST", "/api/orders/", order, key=key)
            while code == 503 and not self.stop.is_set():
                self.answers.append((time.time(), code, body.get("detail", "")))
                self.stop.wait(float(headers.get("Retry-After", "1")))
                code, body, headers = self.call("POST", "/api/orders/", order, key=key)
            self.answers.append((time.time(), code, body.get("detail", "") if code != 201 else ""))
            if code == 201 and body["number"] not in self.placed:
                self.placed.append(str(body["number"]))
            self.stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=12)
    parser.add_argument("--buyers", type=int, default=4)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--down", type=float, default=3.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--between", type=float, default=12.0, help="seconds between restarts")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()

    with PrivatePostgres() as database, PrivateRedis() as redis_server:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="marketplace.settings",
            DATABASE_URL=database.url,
            REDIS_URL=redis_server.url,
            DEBUG="False",
            SECRET_KEY="reliability-only-" + "k" * 50,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="False",
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(BASE_DIR),
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, check=True)
        result = run(args, database)

    report.save_result(result, args.results)
    write_doc_section(result, args.doc)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["failures"]:
        sys.exit("failed: " + "; ".join(result["failures"]))


def seed() -> dict[int, str]:
    from shop.models import Category, Product

    category = Category.objects.create(name="Casa", slug="casa")
    names = ["Caneca", "Toalha", "Almofada", "Vaso", "Tapete", "Luminária", "Relógio", "Espelho"]
    return {
        Product.objects.create(
            category=category, sku=f"CASA-{n}", name=f"{name} Reliability", price=Decimal("19.90"),
            stock=STOCK,
        ).pk: f"{name} Reliability"
        for n, name in enumerate(names[:PRODUCTS])
    }  # fmt: skip


def run(args: argparse.Namespace, database: PrivatePostgres) -> dict[str, Any]:
    import django

    django.setup()
    products = seed()

    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    server_log_path = LOGS / "server.log"
    server_log = server_log_path.open("w")
    server = subprocess.Popen(
        asgi_server_command(host="127.0.0.1", port=port),
        cwd=BASE_DIR, stdout=server_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stop = threading.Event()
    customers = [ChatCustomer(n, list(products.values()), stop) for n in range(1, args.chats + 1)]
    buyers = [ApiBuyer(f"http://127.0.0.1:{port}", n, list(products), stop)
              for n in range(1, args.buyers + 1)]  # fmt: skip
    outages: list[dict[str, Any]] = []
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/products/")
        threads = [threading.Thread(target=who.run, daemon=True) for who in customers + buyers]
        for thread in threads:
            thread.start()
        for number in range(args.restarts):
            time.sleep(args.between)
            mode = "immediate" if number % 2 else "fast"
            stopped = time.time()
            database.restart(down_s=args.down, mode=mode)
            outages.append({"mode": mode, "stopped": stopped, "back": time.time()})
        time.sleep(args.between)  # checkouts after the last restart
        recovered_from = time.time()
        time.sleep(args.between)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server_alive = server.poll() is None
    finally:
        stop.set()
        stop_process(server)
        server_log.close()

    return verdict(args, customers, buyers, outages, recovered_from, server_alive,
                   server_log_path, products)  # fmt: skip


def verdict(
    args: argparse.Namespace,
    customers: list[ChatCustomer],
    buyers: list[ApiBuyer],
    outages: list[dict[str, Any]],
    recovered_from: float,
    server_alive: bool,
    server_log_path: Path,
    products: dict[int, str],
) -> dict[str, Any]:
    from django.db import connection
    from django.db.models import Count, Sum

    from shop.models import Order, OrderLine, Product

    connection.close()  # the one from before the restarts is gone
    messages = [entry for c in customers for entry in c.log]
    errors = [entry for entry in messages if "error" in entry]
    unanswered = [entry for entry in messages if "error" not in entry and not entry["answer"]]
    told_to_retry = [e for e in messages if e.get("answer") and RETRY.search(e["answer"])]
    api = [answer for b in buyers for answer in b.answers]
    api_by_code: dict[str, int] = {}
    for _, code, _ in api:
        api_by_code[str(code)] = api_by_code.get(str(code), 0) + 1
    api_unexpected = [a for a in api if a[1] not in (200, 201, 503)]
    confirmed_chat = {n for c in customers for n in c.placed}
    confirmed_api = {n for b in buyers for n in b.placed}
    confirmed = confirmed_chat | confirmed_api

    orders = Order.objects.prefetch_related("lines", "status_changes")
    numbers = set(orders.values_list("number", flat=True))
    half_written = [
        o.number for o in orders
        if not o.lines.all()
        or o.subtotal != sum((line.line_total for line in o.lines.all()), Decimal(0))
        or any(line.line_total != line.unit_price * line.quantity for line in o.lines.all())
        or o.total != o.subtotal + o.delivery_fee
        or not o.status_changes.all()
    ]  # fmt: skip
    twice = list(
        Order.objects.exclude(source_message__isnull=True).exclude(source_message="")
        .values("source_message").annotate(n=Count("id")).filter(n__gt=1)
        .values_list("source_message", flat=True)
    )  # fmt: skip
    sold = dict(
        OrderLine.objects.values("product_id").annotate(n=Sum("quantity"))
        .values_list("product_id", "n")
    )  # fmt: skip
    stock = dict(Product.objects.filter(pk__in=products).values_list("pk", "stock"))
    inconsistent = {
        products[pk]: {"stock": stock[pk], "sold": sold.get(pk, 0)}
        for pk in products
        if stock[pk] != STOCK - sold.get(pk, 0)
    }
    negative = Product.objects.filter(stock__lt=0).count()
    after = Order.objects.filter(created_at__gte=datetime.fromtimestamp(recovered_from, UTC))
    windows = [(o["stopped"], o["back"] + 15) for o in outages]
    # Asked to retry rightly: the message was being handled at some moment of a restart.
    retry_outside = [
        e for e in told_to_retry if not any(e["at"] >= a and e["said"] <= b for a, b in windows)
    ]
    log = server_log_path.read_text()
    result = {
        "restarts": [
            {"mode": o["mode"], "down_s": round(o["back"] - o["stopped"], 1)} for o in outages
        ],
        "chat_customers": args.chats,
        "api_buyers": args.buyers,
        "chat_messages": len(messages),
        "chat_unanswered": len(unanswered),
        "chat_errors": [e["error"] for e in errors][:5],
        "chat_told_to_retry": len(told_to_retry),
        "chat_told_to_retry_outside_restarts": len(retry_outside),
        "retry_example": told_to_retry[0]["answer"] if told_to_retry else None,
        "retry_outside_examples": [
            {
                "text": e["text"],
                "answer": e["answer"][:120],
                "seconds_from_restarts": [round(e["said"] - o["stopped"], 1) for o in outages],
            }
            for e in retry_outside[:5]
        ],
        "api_answers": api_by_code,
        "api_unexpected": [list(a) for a in api_unexpected[:5]],
        "api_503_example": next((a[2] for a in api if a[1] == 503), None),
        "orders": len(numbers),
        "orders_confirmed_in_chat": len(confirmed_chat),
        "orders_confirmed_by_api": len(confirmed_api),
        "orders_never_confirmed": sorted(numbers - confirmed)[:10],
        "confirmations_without_order": sorted(confirmed - numbers)[:10],
        "half_written_orders": half_written[:10],
        "orders_placed_twice_by_one_message": twice[:10],
        "stock_inconsistent": inconsistent,
        "negative_stock": negative,
        "orders_after_the_last_restart": after.count(),
        "server_alive": server_alive,
        "server_log_tracebacks": log.count("Traceback"),
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python reliability/db_restart.py " + " ".join(sys.argv[1:]),
    }
    checks = [
        (not unanswered and not errors, "a message went without a reply"),
        (bool(told_to_retry) or bool(api_by_code.get("503")), "nobody was told to retry"),
        (not retry_outside, "told to retry while the database was up"),
        (not api_unexpected, "the API answered something else than 200, 201 or 503"),
        (not half_written, "half-written orders"),
        (not twice, "an order placed twice by one message"),
        (not inconsistent and not negative, "stock inconsistent"),
        (numbers == confirmed, "orders and confirmations differ"),
        (result["orders_after_the_last_restart"] > 0, "no checkout after the last restart"),
        (server_alive, "the server died"),
    ]
    result["failures"] = [failure for passed, failure in checks if not passed]
    result["passed"] = not result["failures"]
    return result


def write_doc_section(result: dict[str, Any], doc: Path) -> None:
    begin, end = "<!-- db_restart:begin -->", "<!-- db_restart:end -->"
    verdict_ = "**passed**" if result["passed"] else "**failed**: " + "; ".join(result["failures"])
    restarts = ", ".join(f"{r['mode']} ({r['down_s']} s)" for r in result["restarts"])
    rows = [
        ("restarts of PostgreSQL", restarts),
        (
            f"chat ({result['chat_customers']} customers)",
            f"{result['chat_messages']} messages; without a reply: {result['chat_unanswered']}; "
            f"told to try again: {result['chat_told_to_retry']} (while the database was up: "
            f"{result['chat_told_to_retry_outside_restarts']})",
        ),
        ("the chat's retry reply", result["retry_example"] or "none"),
        (
            f"API ({result['api_buyers']} buyers)",
            f"answers by status: {result['api_answers']}; 503 says: "
            f"{result['api_503_example'] or 'none'}",
        ),
        (
            "orders",
            f"{result['orders']}: confirmed in the chat {result['orders_confirmed_in_chat']}, "
            f"by the API {result['orders_confirmed_by_api']}; never confirmed: "
            f"{len(result['orders_never_confirmed'])}; confirmations without an order: "
            f"{len(result['confirmations_without_order'])}; after the last restart: "
            f"{result['orders_after_the_last_restart']}",
        ),
        (
            "integrity",
            f"half-written orders: {len(result['half_written_orders'])}; placed twice by one "
            f"message: {len(result['orders_placed_twice_by_one_message'])}; products whose stock "
            f"is not the initial less the sold: {len(result['stock_inconsistent'])}",
        ),
        (
            "server",
            f"up: {result['server_alive']}; tracebacks logged: {result['server_log_tracebacks']}",
        ),
    ]
    section = f"""{begin}
### PostgreSQL restarted during checkouts: {verdict_}

{report.two_column_table(rows)}

{report.footer(result)}
{end}"""
    report.write_doc_section(begin, end, section, doc=doc)


if __name__ == "__main__":
    main()
