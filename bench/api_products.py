#!/usr/bin/env python
"""GET /api/products/?page_size=20 against a bare Django JsonResponse of the same 20 products.

One daphne server with production settings serves both URLs from one PostgreSQL database holding
10,000 products; wrk loads each URL in turn (alternating rounds, so drift hits both alike).
Writes bench/results/api_products.json and the "API products" section of docs/benchmarks.md.

    .venv/bin/python bench/api_products.py [--duration 10] [--rounds 3] [--connections 8]

Needs PostgreSQL (DATABASE_URL's server; the bench uses its own database on it) and wrk
(`make bench` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from marketplace.processes import stop_process  # noqa: E402

RESULTS = BASE_DIR / "bench" / "results" / "api_products.json"
API_PATH = "/api/products/?page_size=20"
BARE_PATH = "/bench/bare-products/"
BENCH_DB = "marketplace_bench"
ASGI_APP = "marketplace.asgi:application"


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/api_products.py needs PostgreSQL: set DATABASE_URL to a postgres:// URL.")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def server_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": "bench-only-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "DB_CONN_MAX_AGE": "60",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(BASE_DIR),
    }


def ensure_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def seed_products(count: int) -> None:
    from shop.models import Category, Product

    if Product.objects.filter(is_active=True).count() == count:
        return
    Product.objects.all().delete()
    Category.objects.all().delete()
    categories = Category.objects.bulk_create(
        [Category(name=f"Categoria {i}", slug=f"categoria-{i}", position=i) for i in range(20)]
    )
    words = ["Camisa", "Calça", "Tênis", "Café", "Panela", "Fone", "Sabonete", "Mel", "Bota"]
    colours = ["Azul", "Verde", "Preta", "Branca", "Vermelha", "Cinza", "Amarela"]
    Product.objects.bulk_create(
        [
            Product(
                category=categories[i % len(categories)],
                sku=f"BENCH-{i:06d}",
                name=f"{words[i % len(words)]} {colours[i % len(colours)]} {i:05d}",
                description="Produto de teste de desempenho, com descrição de tamanho realista.",
                price=Decimal("10.00") + Decimal(i % 500) / 4,
                stock=i % 50,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum does soon after a bulk load
        cursor.execute("VACUUM ANALYZE")


def queries_per_request(path: str) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.get(path)  # warm caches (content types, translations) like a running server
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    return len(queries)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not come up")


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, *, seconds: int, connections: int) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99_value, p99_unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output).groups()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{output}")
    return {"rps": rps, "p99_ms": float(p99_value) * UNITS_MS[p99_unit]}


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}"


def write_doc_section(result: dict) -> None:
    begin, end = "<!-- api_products:begin -->", "<!-- api_products:end -->"
    section = f"""{begin}
## API products: `GET /api/products/?page_size=20` against a bare view

| | requests/s | p99 latency |
|---|---:|---:|
| DRF API (`/api/products/?page_size=20`) | {result["api_rps"]:.0f} \
| {result["api_p99_ms"]:.1f} ms |
| bare Django `JsonResponse`, same 20 products | {result["bare_rps"]:.0f} \
| {result["bare_p99_ms"]:.1f} ms |

- **Ratio API / bare: {result["ratio"]:.2f}** (target >= 0.6); queries per API request:
  **{result["queries_per_request"]}** (target <= 3: the page and its count; the bare view: \
{result["bare_queries_per_request"]}).
- Setup: one daphne process, production settings (`DEBUG=False`, the psycopg connection pool),
  PostgreSQL with {result["products"]:,} active products; wrk with 1 thread and \
{result["connections"]} connections, {result["rounds"]} alternating rounds of \
{result["seconds"]} s per URL after a warm-up; medians of the rounds.
- Machine: {result["machine"]}; {result["measured_at"]}.
- Command: `{result["command"]}`.
{end}"""
    report.write_doc_section(begin, end, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per round and URL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `make bench` (it installs it) or apt-get install wrk.")

    database_url = bench_database_url()
    ensure_database(database_url)
    env = server_env(database_url)
    os.environ.update(env)
    for command in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True)
    import django

    django.setup()
    seed_products(args.products)
    api_queries = queries_per_request(API_PATH)
    bare_queries = queries_per_request(BARE_PATH)

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    samples: dict[str, list[dict[str, float]]] = {"api": [], "bare": []}
    try:
        wait_until_up(base + API_PATH)
        for path in (BARE_PATH, API_PATH):  # warm-up
            run_wrk(base + path, seconds=3, connections=args.connections)
        for _ in range(args.rounds):
            for name, path in (("bare", BARE_PATH), ("api", API_PATH)):
                samples[name].append(
                    run_wrk(base + path, seconds=args.duration, connections=args.connections)
                )
                print(name, samples[name][-1], flush=True)
    finally:
        stop_process(server, timeout=30)

    def median(name: str, key: str) -> float:
        return statistics.median(sample[key] for sample in samples[name])

    result = {
        "api_rps": round(median("api", "rps"), 1),
        "bare_rps": round(median("bare", "rps"), 1),
        "ratio": round(median("api", "rps") / median("bare", "rps"), 3),
        "api_p99_ms": round(median("api", "p99_ms"), 2),
        "bare_p99_ms": round(median("bare", "p99_ms"), 2),
        "queries_per_request": api_queries,
        "bare_queries_per_request": bare_queries,
        "products": args.products,
        "server": "daphne (1 process)",
        "connections": args.connections,
        "seconds": args.duration,
        "rounds": args.rounds,
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench  (.venv/bin/python bench/api_products.py "
        f"--duration {args.duration} --rounds {args.rounds} --connections {args.connections})",
        "samples": samples,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    write_doc_section(result)
    print(json.dumps({k: result[k] for k in ("api_rps", "bare_rps", "ratio", "api_p99_ms")}))
    if result["ratio"] < 0.6 or api_queries > 3:
        sys.exit("target missed: API below 0.6 of the bare view or more than 3 queries a request")


if __name__ == "__main__":
    main()
