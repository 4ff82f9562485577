"""`manage.py seed_demo` and `make run` (manage.py runlocal) as the shop owner meets them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from io import StringIO

import pytest
from django.core.management import call_command

from marketplace.local_redis import redis_answers
from marketplace.settings import BASE_DIR
from shop.models import Category, Product
from tests.telegram_standin import TelegramStandIn
from tests.whatsapp_double import WhatsAppDouble


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_a_working_staff_login(settings, tmp_path, client):
    settings.VAR_DIR = tmp_path
    first, second = StringIO(), StringIO()

    call_command("seed_demo", stdout=first)
    counts = (Category.objects.count(), Product.objects.count())
    call_command("seed_demo", stdout=second)

    assert counts == (Category.objects.count(), Product.objects.count())
    assert counts[0] >= 5 and counts[1] >= 30
    names = list(Product.objects.values_list("name", flat=True))
    assert any(ch in "".join(names) for ch in "ãçéêóôúâí")
    assert all(p.price > 0 and p.stock > 0 for p in Product.objects.all())
    login = re.search(r"Staff login: (\S+) / (\S+)", first.getvalue())
    assert login, first.getvalue()
    assert login.group(0) in second.getvalue()  # the same login, printed again
    # The owner logs into the back office with it.
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": login.group(1), "password": login.group(2), "next": "/admin/"},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert client.get("/admin/shop/order/").status_code == 200


@pytest.mark.slow
def test_make_run_serves_the_shop_on_embedded_defaults(tmp_path):
    """What `make run` starts: a private Redis, SQLite, the demo catalog, daphne and, with a
    token, the Telegram bot (here against a stand-in of Telegram)."""
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG"}}
    env.update(VAR_DIR=str(tmp_path), REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    telegram = TelegramStandIn()
    telegram.start()
    whatsapp = WhatsAppDouble()
    whatsapp.start()
    env.update(
        TELEGRAM_BOT_TOKEN=telegram.token,
        TELEGRAM_API_URL=telegram.api_url,
        TELEGRAM_POLL_TIMEOUT="1",
        WHATSAPP_WEB_URL=whatsapp.url,
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runlocal", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Everything the product prints is read as it comes: a pipe nobody reads fills up and
    # stalls whichever child writes next, and what was printed explains a failure.
    output: list[str] = []
    banner_shown = threading.Event()

    def read_output() -> None:
        for line in server.stdout:
            output.append(line)
            if "Press Ctrl+C to stop." in line:
                banner_shown.set()
        banner_shown.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"

    def printed() -> str:
        return "".join(output)

    try:
        banner_shown.wait(timeout=90)
        text = printed()
        assert f"{base}/admin/" in text, text
        assert re.search(r"Staff login: +admin / \S+", text), text
        assert "private, started for this run" in text
        assert redis_answers(redis_url)

        def get(path: str) -> tuple[int, bytes]:
            for _ in range(100):
                try:
                    with urllib.request.urlopen(base + path, timeout=5) as response:
                        return response.status, response.read()
                except ConnectionRefusedError:
                    time.sleep(0.1)
                except urllib.error.URLError as exc:
                    if isinstance(exc.reason, ConnectionRefusedError):
                        time.sleep(0.1)
                        continue
                    raise
            raise AssertionError(f"{path} never answered")

        assert get("/admin/login/")[0] == 200
        assert get("/static/admin/css/base.css")[0] == 200
        assert json.loads(get("/api/products/")[1])["count"] >= 30
        assert get("/api/docs/")[0] == 200

        assert "Telegram bot:        running" in text
        assert "WhatsApp bot:        running" in text
        # WhatsApp Web open at its login QR, in Chromium (the issue allows a first boot 120 s).
        deadline = time.monotonic() + 120
        while whatsapp.qr_payload() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert whatsapp.state() == "login" and whatsapp.qr_payload(), (
            f"page {whatsapp.state()!r} after {whatsapp.page_loads()} load(s); printed:\n"
            + printed()[-6000:]
        )
        telegram.user_says(424242, "oi", first_name="Bia")
        assert "Olá, Bia!" in telegram.wait_for_text(424242, "Boas-vindas", timeout=30)["text"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        reader.join(timeout=5)
        time.sleep(1.5)  # a poll in flight when the bot stopped may still land
        polls = len(telegram.calls("getUpdates"))
        time.sleep(2)
        telegram.stop()
        whatsapp.stop()
    assert not redis_answers(redis_url), "the private Redis outlived make run"
    assert "Traceback" not in printed(), printed()[-6000:]
    assert len(telegram.calls("getUpdates")) == polls, "the Telegram bot outlived make run"
