#!/usr/bin/env python
"""The conversation engine in-process, on real PostgreSQL and Redis: throughput, latency, search.

1. Search: ``shop.selectors.search_products`` (what the engine runs for "buscar") over catalogs of
   1,000, 10,000 and 100,000 products, with typos and accents in the queries: p50 and p99.
2. Throughput: worker processes, each a chat adapter's worth of customers, drive
   ``Engine.handle`` through a mix of flows (greeting, catalog pages, product detail, add to cart,
   search, cart, my orders, checkout, placed orders) on a 10,000-product catalog. Messages of
   different chats interleave as they would on a busy shop. Per message: wall time (p50/p99).
   Per core: messages per CPU second of the engine process; also per CPU second of everything
   (the engine plus its PostgreSQL backend plus Redis), and per second of wall time.

Writes bench/results/engine.json and the "Engine" section of docs/benchmarks.md.

    .venv/bin/python bench/engine.py [--messages 6000] [--chats 100] [--sizes 1000,10000,100000]

Needs PostgreSQL (DATABASE_URL's server; the bench uses its own database on it) and Redis
(REDIS_URL's server; the bench uses database 6 and its own key prefix).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from bench.api_products import bench_database_url, ensure_database, machine  # noqa: E402

RESULTS = BASE_DIR / "bench" / "results" / "engine.json"
TARGETS = {"msgs_per_s_per_core": 1000, "p99_ms": 20, "search_p99_ms_100000": 50}

# One cycle of a customer's chat: 18 messages over every flow, ending in a placed order.
# Customers are known (name and address saved), so checkout goes straight to payment.
CYCLE = [
    "oi",  # main menu (the greeting on the first cycle)
    "1",  # categories
    "2",  # a category's first page
    "mais",  # its second page
    "3",  # a product's detail
    "1",  # one unit: added
    "menu",
    "2",  # search
    "camisa azl",  # results, typo included
    "1",  # detail
    "2",  # two units: added
    "menu",
    "3",  # the cart
    "menu",
    "5",  # my orders
    "4",  # checkout: payment
    "1",  # Pix: the summary
    "1",  # confirm: the order (or "4", leave it for later: see CHECKOUT_EVERY)
]
# Most summaries are not confirmed on the spot: by default one cycle in three ends in an order,
# the others leave the cart for later ("4": cancel at the summary). --checkout-every 1 is the
# stress mix where every cycle buys.
CHECKOUT_EVERY = 3
SEARCHES = [
    "camisa azl",
    "tenis corrida",
    "Tênis de Corrida",
    "panela pressao",
    "fone bluetoth",
    "cafe especial",
    "CALÇA JEANS",
    "sabonete",
    "garrafa termica inox",
    "mochila notebok",
    "relogio",
    "xyzzy",
]

KINDS = [
    "Camisa", "Calça Jeans", "Tênis de Corrida", "Bermuda", "Vestido", "Jaqueta", "Meia", "Boné",
    "Panela de Pressão", "Frigideira", "Garrafa Térmica", "Caneca", "Faca", "Café Especial",
    "Chá", "Mel", "Azeite", "Fone Bluetooth", "Carregador", "Caixa de Som", "Mouse", "Teclado",
    "Sabonete", "Shampoo", "Hidratante", "Perfume", "Mochila", "Relógio", "Óculos", "Carteira",
]  # fmt: skip
QUALITIES = [
    "Azul", "Verde", "Preta", "Branca", "Vermelha", "Cinza", "Amarela", "Rosa", "Bege", "Marrom",
    "Slim", "Premium", "Básica", "Inox", "Orgânico", "Sem Fio", "Infantil", "Esportiva", "Clássica",
    "Compacta",
]  # fmt: skip
BRANDS = ["Aurora", "Brisa", "Cerrado", "Dunas", "Estrela", "Flora", "Garoa", "Horizonte"]


def product_name(i: int) -> str:
    return (
        f"{KINDS[i % len(KINDS)]} {QUALITIES[(i // len(KINDS)) % len(QUALITIES)]} "
        f"{BRANDS[(i // 7) % len(BRANDS)]} {i:06d}"
    )


def seed_catalog(count: int) -> None:
    """``count`` active products over 12 categories, names varied like a real shop's."""
    from django.db import connection

    from shop.models import Category, Product, search_key

    if Product.objects.filter(is_active=True).count() == count:
        return
    with connection.cursor() as cursor:  # orders, carts and the rest that point at products
        cursor.execute(
            f"TRUNCATE {Product._meta.db_table}, {Category._meta.db_table} RESTART IDENTITY CASCADE"
        )
    categories = Category.objects.bulk_create(
        [Category(name=f"Categoria {i:02d}", slug=f"categoria-{i}", position=i) for i in range(12)]
    )
    for start in range(0, count, 10_000):
        Product.objects.bulk_create(
            [
                Product(
                    category=categories[i % len(categories)],
                    sku=f"ENG-{i:06d}",
                    name=product_name(i),
                    search_name=search_key(product_name(i)),
                    description="Produto de teste de desempenho.",
                    price=Decimal("9.90") + Decimal(i % 400) / 4,
                    stock=1_000_000,
                )
                for i in range(start, min(count, start + 10_000))
            ],
            batch_size=2000,
        )
    with connection.cursor() as cursor:  # what autovacuum does soon after a bulk load
        cursor.execute("VACUUM ANALYZE")


def use_bench_environment() -> None:
    """Production settings on the bench's own PostgreSQL database and Redis database 6, in this
    process's environment (children inherit it), the schema migrated."""
    database_url = bench_database_url()
    ensure_database(database_url)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.bench_settings",
        DATABASE_URL=database_url,
        DEBUG="False",
        SECRET_KEY="bench-only-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(BASE_DIR),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, check=True)


def measure_search(size: int, *, repeats: int) -> dict[str, float]:
    from shop.selectors import search_products

    seed_catalog(size)
    for text in SEARCHES:  # warm the plan cache and the pages
        search_products(text=text)
    timings = []
    for _ in range(repeats):
        for text in SEARCHES:
            started = time.perf_counter()
            search_products(text=text, limit=8)
            timings.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(timings, 50), 2),
        "p99_ms": round(percentile(timings, 99), 2),
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds() -> float:
    from bots.state import redis_client

    info = redis_client().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def worker(worker_id: int, chats: int, messages: int, checkout_every: int, start, queue) -> None:
    """One adapter's worth of customers: ``messages`` messages over ``chats`` interleaved chats."""
    import django

    django.setup()
    from django.db import connection

    from bots.chat import WHATSAPP, IncomingMessage
    from bots.engine import Engine
    from shop import services

    engine = Engine()
    phones = [f"+55119{worker_id:02d}{n:05d}" for n in range(chats)]
    for phone in phones:
        customer = services.get_or_create_customer(whatsapp_phone=phone, name="Cliente Bench")
        services.update_customer_details(
            customer=customer, delivery_address="Rua do Benchmark, 100, São Paulo - SP"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    position = dict.fromkeys(phones, 0)
    ids = itertools.count()
    order = itertools.cycle(phones)
    # Warm-up: one message per chat (imports, translations, prepared plans).
    for phone in phones:
        engine.handle(IncomingMessage(WHATSAPP, phone, f"w{next(ids)}", "menu", "Cliente Bench"))
    start.wait()
    cpu0, backend0, wall0 = time.process_time(), process_cpu_seconds(backend), time.perf_counter()
    latencies = []
    placed = 0
    for _ in range(messages):
        phone = next(order)
        step, cycle = position[phone] % len(CYCLE), position[phone] // len(CYCLE)
        text = CYCLE[step]
        if step == len(CYCLE) - 1 and cycle % checkout_every != checkout_every - 1:
            text = "4"
        position[phone] += 1
        message = IncomingMessage(WHATSAPP, phone, f"m{worker_id}-{next(ids)}", text, "Cliente")
        began = time.perf_counter()
        outcome = engine.handle(message)
        latencies.append((time.perf_counter() - began) * 1000)
        placed += any("#" in reply.text and "🎉" in reply.text for reply in outcome.replies)
    queue.put(
        {
            "latencies": latencies,
            "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0,
            "db_cpu_s": process_cpu_seconds(backend) - backend0,
            "orders": placed,
        }
    )


def run_workers(processes: int, *, chats: int, messages: int, checkout_every: int) -> dict:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    queue = context.Queue()
    workers = [
        context.Process(target=worker, args=(n, chats, messages, checkout_every, start, queue))
        for n in range(processes)
    ]
    for process in workers:
        process.start()
    start.wait()
    redis0, wall0 = redis_cpu_seconds(), time.perf_counter()
    results = [queue.get(timeout=600) for _ in workers]
    wall, redis_cpu = time.perf_counter() - wall0, redis_cpu_seconds() - redis0
    for process in workers:
        process.join(timeout=60)
    latencies = [value for result in results for value in result["latencies"]]
    total = len(latencies)
    engine_cpu = sum(result["cpu_s"] for result in results)
    db_cpu = sum(result["db_cpu_s"] for result in results)
    return {
        "processes": processes,
        "checkout_every": checkout_every,
        "messages": total,
        "orders_placed": sum(result["orders"] for result in results),
        "wall_s": round(wall, 2),
        "msgs_per_s": round(total / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "cpu_s": {
            "engine": round(engine_cpu, 2),
            "postgres": round(db_cpu, 2),
            "redis": round(redis_cpu, 2),
        },
        "msgs_per_cpu_s_all": round(total / (engine_cpu + db_cpu + redis_cpu), 1),
        "msgs_per_cpu_s_engine": round(total / engine_cpu, 1),
    }


def write_doc_section(result: dict) -> None:
    begin, end = "<!-- engine:begin -->", "<!-- engine:end -->"
    one, many, stress = result["single"], result["parallel"], result["stress"]
    search_rows = "\n".join(
        f"| {int(size):,} | {figures['p50_ms']:.1f} ms | {figures['p99_ms']:.1f} ms |"
        for size, figures in result["search"].items()
    )

    def row(name: str, run: dict) -> str:
        return (
            f"| {name} | {run['processes']} | {run['msgs_per_cpu_s_engine']:,.0f} "
            f"| {run['msgs_per_cpu_s_all']:,.0f} | {run['msgs_per_s']:,.0f} "
            f"| {run['p50_ms']:.2f} ms | {run['p99_ms']:.2f} ms | {run['orders_placed']} |"
        )

    section = f"""{begin}
## Engine: chat messages in-process, on PostgreSQL and Redis

| | value | target |
|---|---:|---:|
| messages per second per core (per CPU second of the engine) \
| **{result["msgs_per_s_per_core"]:,.0f}** | >= 1,000 |
| p50 per message | {result["p50_ms"]:.2f} ms | |
| p99 per message | **{result["p99_ms"]:.2f} ms** | <= 20 ms |
| search p99, 100,000 products \
| **{result["search_p99_ms"].get("100000", float("nan")):.1f} ms** | <= 50 ms |

| run | workers | msgs per engine CPU s | msgs per CPU s, all | msgs/s (wall) | p50 | p99 \
| orders |
|---|---:|---:|---:|---:|---:|---:|---:|
{row(f"mix, an order every {one['checkout_every']} cycles", one)}
{row("same, one worker per core", many)}
{row("stress: an order every cycle", stress)}

- "Per core" is the engine's own CPU: what a bot process spends per message, the figure
  that says how many bot cores a shop needs. PostgreSQL and Redis are servers of their own in
  production; "all" also counts their CPU (the backends' /proc times and Redis's `INFO cpu`)
  on this one machine, where they share the two cores with the workers.
- The mix, per customer, over and over (18 messages): menu, categories, a category's two
  pages, a product, add to cart, search with a typo ("camisa azl"), a result, add, cart, my
  orders, checkout with Pix, then confirm (a real order: stock locked and moved) or, in two
  cycles of three, leave the summary for later. {result["chats"]} chats per worker,
  interleaved; catalog of {result["products"]:,} products.
- Search (`shop.selectors.search_products`: pg_trgm word similarity over a GIN index), \
{len(SEARCHES)} queries with typos and accents, {result["search_repeats"]} rounds:

| catalog | p50 | p99 |
|---:|---:|---:|
{search_rows}

- Machine: {result["machine"]}; {result["measured_at"]}.
- Command: `{result["command"]}`.
{end}"""
    report.write_doc_section(begin, end, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=6000, help="messages per worker")
    parser.add_argument("--chats", type=int, default=100, help="chats per worker")
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--sizes", default="1000,10000,100000", help="catalog sizes for search")
    parser.add_argument("--search-repeats", type=int, default=20)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--checkout-every", type=int, default=CHECKOUT_EVERY)
    args = parser.parse_args()

    use_bench_environment()
    import django

    django.setup()
    from bots.state import PREFIX, redis_client

    def forget_chats() -> None:
        keys = list(redis_client().scan_iter(f"{PREFIX}:*", count=1000))
        for batch in range(0, len(keys), 1000):
            redis_client().delete(*keys[batch : batch + 1000])

    random.seed(7)
    search = {}
    for size in sorted(int(s) for s in args.sizes.split(",")):
        search[str(size)] = measure_search(size, repeats=args.search_repeats)
        print("search", size, search[str(size)], flush=True)

    seed_catalog(args.products)
    from django.db import connections

    connections.close_all()  # the workers open their own
    forget_chats()
    runs = {}
    for name, processes, checkout_every in (
        ("single", 1, args.checkout_every),
        ("parallel", args.processes, args.checkout_every),
        ("stress", 1, 1),
    ):
        runs[name] = run_workers(
            processes, chats=args.chats, messages=args.messages, checkout_every=checkout_every
        )
        print(name, runs[name], flush=True)
        forget_chats()
    single, parallel, stress = runs["single"], runs["parallel"], runs["stress"]

    result = {
        "msgs_per_s_per_core": single["msgs_per_cpu_s_engine"],
        "p50_ms": single["p50_ms"],
        "p99_ms": single["p99_ms"],
        "search_p99_ms": {size: figures["p99_ms"] for size, figures in search.items()},
        "search": search,
        "single": single,
        "parallel": parallel,
        "stress": stress,
        "products": args.products,
        "chats": args.chats,
        "search_repeats": args.search_repeats,
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench  (.venv/bin/python bench/engine.py "
        f"--messages {args.messages} --chats {args.chats} --sizes {args.sizes} "
        f"--checkout-every {args.checkout_every})",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    write_doc_section(result)
    print(json.dumps({k: result[k] for k in ("msgs_per_s_per_core", "p50_ms", "p99_ms",
                                               "search_p99_ms")}))  # fmt: skip
    missed = [
        name
        for name, ok in (
            ("msgs_per_s_per_core", result["msgs_per_s_per_core"] >= 1000),
            ("p99_ms", result["p99_ms"] <= 20),
            ("search_p99_ms", result["search_p99_ms"].get("100000", 0) <= 50),
        )
        if not ok
    ]
    if missed:
        sys.exit(f"target missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()


def staff_access_token(username: str) -> str:
    """An access token of a superuser named ``username`` (made the first time), for dashboards."""
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    users = get_user_model().objects
    staff = users.filter(username=username).first() or users.create_superuser(
        username, f"{username}@example.com", "uma-senha-bem-forte-42"
    )
    return str(AccessToken.for_user(staff))
