#!/usr/bin/env python
"""Schemathesis against the REST API's own schema: no 5xx, no answer outside the schema.

The shop's ASGI server (as `make run` starts it, production settings) on a PostgreSQL database of
its own (--database-name, created and emptied here; an SQLite file when DATABASE_URL
names no PostgreSQL) holding the demo catalog, a shopper
with an order and a staff user. Schemathesis reads ``/api/schema/`` and sends --examples cases
per operation (valid and invalid ones), once as the shopper and once as staff, with these checks
on every answer: not a server error, a status code, content type, headers and body the schema
declares, and a refusal where authentication is missing (``ignored_auth``).

Writes reliability/results/api_fuzz.json and its section of docs/reliability.md.

    .venv/bin/python reliability/api_fuzz.py [--examples 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from bench import report  # noqa: E402
from bench.api_products import free_port, machine, wait_until_up  # noqa: E402
from marketplace.processes import asgi_server_command, stop_process  # noqa: E402

RESULTS = BASE_DIR / "reliability" / "results" / "api_fuzz.json"
DOC = BASE_DIR / "docs" / "reliability.md"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "ignored_auth",
)


def fresh_database(var_dir: Path, name: str) -> str:
    """An empty database of this run's own: on the PostgreSQL server of DATABASE_URL (as in
    production), else an SQLite file."""
    import psycopg

    base = urlsplit(os.environ.get("DATABASE_URL", ""))
    if not base.scheme.startswith("postgres"):
        return f"sqlite:///{var_dir / 'fuzz.sqlite3'}"
    with psycopg.connect(urlunsplit(base._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(base._replace(path=f"/{name}"))


def environment(database_url: str, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "DEBUG": "False",
        "SECRET_KEY": "fuzz-only-" + "f" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/8"),
        "LOG_LEVEL": "WARNING",
        "JWT_ACCESS_MINUTES": "240",
        "PYTHONPATH": str(BASE_DIR),
    }


def prepare(env: dict[str, str]) -> dict[str, str]:
    """Migrate, seed the demo catalog, a shopper with an order and a staff user: their tokens."""
    run = {"cwd": BASE_DIR, "env": env, "check": True}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], **run)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], **run)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    from shop import services
    from shop.demo import seed_demo
    from shop.models import Product

    seed_demo()
    users = get_user_model().objects
    shopper = users.create_user("fuzz-shopper", password="uma-senha-bem-forte-42")
    staff = users.create_superuser("fuzz-staff", "staff@example.com", "uma-senha-bem-forte-42")
    product = Product.objects.filter(is_active=True, stock__gt=2).order_by("pk").first()
    services.place_order(
        customer=services.get_or_create_customer(user=shopper),
        items=[services.OrderItem(product_id=product.pk, quantity=1)],
        channel="web",
        payment_method="pix",
        delivery_address="Rua A, 1",
    )
    return {
        "shopper": str(AccessToken.for_user(shopper)),
        "staff": str(AccessToken.for_user(staff)),
    }


def run_schemathesis(
    base: str, token: str, examples: int, report_dir: Path, seed: int
) -> dict[str, Any]:
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / "junit.xml"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/api/schema/",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(examples),
        "--header", f"Authorization: Bearer {token}",
        "--seed", str(seed),
        "--workers", "2",
        "--request-timeout", "30",
        "--continue-on-failure",
        "--report", "junit", "--report-junit-path", str(junit),
        "--suppress-health-check", "all",
        "--no-color",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True)
    return {
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "junit": junit.read_text() if junit.exists() else "",
        "output_tail": done.stdout[-6000:] + done.stderr[-2000:],
    }


def summarize(junit: str) -> dict[str, Any]:
    """Operations tested and the failures schemathesis reported, from its JUnit report."""
    import xml.etree.ElementTree as ET

    if not junit:
        return {"operations": [], "failures": ["no report: schemathesis did not run"]}
    root = ET.fromstring(junit)
    operations, failures = [], []
    for case in root.iter("testcase"):
        operations.append(case.get("name"))
        for problem in [*case.iter("failure"), *case.iter("error")]:
            text = (problem.get("message") or problem.text or "").strip().splitlines()
            failures.append(f"{case.get('name')}: {text[0] if text else problem.tag}"[:300])
    return {"operations": operations, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--database-name", default="marketplace_api_fuzz")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as var:
        database_url = fresh_database(Path(var), args.database_name)
        env = environment(database_url, Path(var))
        tokens = prepare(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(var) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                asgi_server_command(host="127.0.0.1", port=port),
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=out,
            )
        runs: dict[str, Any] = {}
        try:
            wait_until_up(f"{base}/api/products/")
            for who, token in tokens.items():
                raw = run_schemathesis(base, token, args.examples, Path(var) / who, args.seed)
                runs[who] = {**summarize(raw.pop("junit")), **raw}
        finally:
            stop_process(server)
        server_log = log.read_text(errors="replace")

    failures = [f"as {who}: {f}" for who, run in runs.items() for f in run["failures"]]
    result = {
        "database": urlsplit(database_url).scheme,
        "examples_per_operation": args.examples,
        "checks": list(CHECKS),
        "operations": runs["staff"]["operations"],
        "runs": {
            who: {k: run[k] for k in ("exit_code", "seconds", "failures")}
            for who, run in runs.items()
        },
        "server_5xx_logged": server_log.count('" 500 ') + server_log.count("Internal Server Error"),
        "passed": not failures and all(run["exit_code"] == 0 for run in runs.values()),
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python reliability/api_fuzz.py " + " ".join(sys.argv[1:]),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_doc_section(result, args.doc)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if not result["passed"]:
        for who, run in runs.items():
            print(f"--- schemathesis as {who} ---\n{run['output_tail']}")
        sys.exit("failed")


def write_doc_section(result: dict[str, Any], doc: Path) -> None:
    begin, end = "<!-- api_fuzz:begin -->", "<!-- api_fuzz:end -->"
    rows = "\n".join(
        f"| as {who} | {run['seconds']} s | {len(run['failures'])} |"
        for who, run in result["runs"].items()
    )
    verdict = "**passed**" if result["passed"] else "**failed**"
    operations = ", ".join(f"`{name}`" for name in result["operations"])
    section = f"""{begin}
### API fuzzing with schemathesis: {verdict}

{result["examples_per_operation"]} examples per operation (valid and invalid), checks:
{", ".join(f"`{c}`" for c in result["checks"])}.

| run | time | failures |
|---|---:|---:|
{rows}

- Operations: {operations}.
- Server errors in the server's log: {result["server_5xx_logged"]}. Database:
  {result["database"]}.
- Machine: {result["machine"]}; {result["measured_at"]}.
- Command: `{result["command"]}`.
{end}"""
    report.write_doc_section(begin, end, section, doc=doc)


if __name__ == "__main__":
    main()
