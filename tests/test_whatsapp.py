"""The WhatsApp bot end to end: ``manage.py runbot whatsapp`` drives real headless Chromium through
Selenium against a local double of WhatsApp Web (tests/whatsapp_double, written from
../shared/whatsapp-web/CONTRACT.md), on this run's database and Redis, with a real server for the
dashboard's websocket. The main flows run against every selector variant of the double.
"""

from __future__ import annotations

import contextlib
import signal
import time
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from bots.adapters.whatsapp.bot import chat_of, coalesce
from bots.adapters.whatsapp.page import ChatMessage
from bots.chat import Reply
from realtime import status
from shop.models import Cart, Category, Order, Product
from tests.live import DashboardWatcher, RunbotProcess, Server
from tests.whatsapp_double import WhatsAppDouble

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_chats"),
]

PHONE = "+5511912345678"


@pytest.fixture
def shirt(db) -> Product:
    category = Category.objects.create(name="Roupas", slug="roupas")
    return Product.objects.create(
        category=category, sku="CAM-AZ", name="Camisa Azul", price=Decimal("59.90"), stock=5
    )


@pytest.fixture(params=[0, 1, 2], ids=lambda variant: f"variant{variant}")
def variant(request) -> int:
    """Every test that drives the double runs against each selector variant it serves."""
    return request.param


@pytest.fixture
def server(redis_url):
    live = Server()
    yield live
    live.stop()


@pytest.fixture
def watcher(server, staff_user):
    socket = DashboardWatcher(server, str(AccessToken.for_user(staff_user)))
    yield socket
    socket.close()


def start_bot(double: WhatsAppDouble, profile) -> RunbotProcess:
    return RunbotProcess("whatsapp", "--url", double.url, "--profile-dir", str(profile))


def start_linked_bot(double: WhatsAppDouble, profile) -> RunbotProcess:
    """A bot whose QR the phone has scanned: at 200, in the chat list."""
    bot = start_bot(double, profile)
    wait_for_status(status.AUTHENTICATING)
    double.scan()
    wait_for_status(status.CONNECTED)
    return bot


def wait_for_status(code: int, timeout: float = 60) -> status.ServiceState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = status.get_states()["WhatsApp"]
        if state.status == code:
            return state
        time.sleep(0.1)
    raise AssertionError(f"WhatsApp never read {code}: {status.get_states()['WhatsApp']}")


def wait_until_saved(profile, key: bytes, timeout: float = 20) -> None:
    """Until Chromium has written ``key`` of the page's Local Storage into ``profile``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for file in (profile / "Default" / "Local Storage").rglob("*"):
            with contextlib.suppress(OSError):
                if file.is_file() and key in file.read_bytes():
                    return
        time.sleep(0.2)
    raise AssertionError(f"Chromium never saved {key!r} in {profile}")


def say(double: WhatsAppDouble, text: str, expect: str, phone: str = PHONE) -> dict:
    """The customer writes ``text``; the bot's first new message holding ``expect``."""
    before = len(double.sent(phone))
    double.customer_says(phone, text, name="Maria Souza")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in double.sent(phone)[before:]:
            if expect in message["text"]:
                return message
        time.sleep(0.1)
    raise AssertionError(f"after {text!r} no reply with {expect!r}: {double.sent(phone)[before:]}")


def test_login_by_qr_then_a_whole_order_by_chat_and_the_admins_status_change(
    variant, shirt, watcher, staff_user, tmp_path
):
    with WhatsAppDouble(variant=variant, first_qr_seconds=60) as double:
        bot = start_bot(double, tmp_path / "profile")
        try:
            watcher.wait_for("services_change_status", lambda d: d["service"] == "WhatsApp"
                             and d["status"] == 100)  # fmt: skip
            watcher.wait_for("services_change_status", lambda d: d["service"] == "WhatsApp"
                             and d["status"] == 102)  # fmt: skip
            first = watcher.wait_for("qr_code", lambda d: d["qr"] == double.qr_payload())
            assert first["service"] == "WhatsApp" and first["svg"].startswith("<svg")
            rotated = double.rotate_qr()
            watcher.wait_for("qr_code", lambda d: d["qr"] == rotated)
            double.scan()
            watcher.wait_for("services_change_status", lambda d: d["service"] == "WhatsApp"
                             and d["status"] == 200)  # fmt: skip

            welcome = say(double, "oi", "Boas-vindas")
            assert "O que você gostaria de fazer?" in welcome["text"]
            say(double, "2", "O que você procura?")
            say(double, "camisa azl", "1. Camisa Azul — R$ 59,90")
            say(double, "1", "*Camisa Azul*")
            say(double, "2", "Adicionado: 2 × Camisa Azul")
            say(double, "3", "endereço de entrega")
            say(double, "Rua das Flores, 10, São Paulo", "Como você prefere pagar?")
            say(double, "1", "*Total: R$ 119,80*")
            placed = say(double, "1", "recebido!")

            order = Order.objects.select_related("customer").get()
            assert f"Pedido *#{order.number}* recebido!" in placed["text"]
            assert (order.channel, order.customer.whatsapp_phone) == ("whatsapp", PHONE)
            owner = Client()
            owner.force_login(staff_user)
            page = owner.get(f"/admin/shop/order/{order.pk}/change/").content.decode()
            assert "Camisa Azul" in page and "119,80" in page

            owner.post(
                "/admin/shop/order/", {"action": "mark_confirmed", "_selected_action": [order.pk]}
            )
            told = double.wait_for_sent(PHONE, "foi confirmado", timeout=60)
            assert told["text"].startswith(f"✅ Seu pedido #{order.number} foi confirmado!")
        finally:
            bot.stop()
        assert bot.process.returncode == 0
        wait_for_status(status.DISCONNECTED, timeout=15)


def test_a_restart_with_the_same_profile_needs_no_qr_and_answers_nothing_twice(
    variant, shirt, tmp_path
):
    profile = tmp_path / "profile"
    with WhatsAppDouble(variant=variant) as double:
        bot = start_linked_bot(double, profile)
        try:
            say(double, "oi", "Boas-vindas")
            say(double, "1", "escolha uma categoria")
        finally:
            bot.stop()
        answered = len(double.sent(PHONE))
        loads = double.page_loads()

        again = start_bot(double, profile)
        try:
            wait_for_status(status.CONNECTED)
            assert double.page_loads() == loads + 1 and double.linked()
            time.sleep(3)
            assert len(double.sent(PHONE)) == answered  # nothing old answered again
            say(double, "1", "Roupas")
        finally:
            again.stop()


def test_emoji_outside_the_bmp_and_line_breaks_arrive_as_the_engine_wrote_them(
    variant, shirt, tmp_path
):
    with WhatsAppDouble(variant=variant) as double:
        bot = start_linked_bot(double, tmp_path / "profile")
        try:
            welcome = say(double, "oi 🛒", "Boas-vindas")
            assert welcome["text"] == (
                "Olá, Maria! 👋 Boas-vindas à *Marketplace Bot*.\n\n"
                "O que você gostaria de fazer?\n1. Catálogo 🛍️\n2. Buscar produto 🔎\n"
                "3. Meu carrinho 🛒\n4. Finalizar pedido ✅\n5. Meus pedidos 📦\n"
                "6. Falar com atendente 💬\n\n"
                "Responda com um número. Digite *menu* para voltar aqui a qualquer momento."
            )
            assert double.received(PHONE)[-1]["text"] == "oi 🛒"
            photo = double.customer_sends_media(PHONE, "image", name="Maria Souza")
            assert photo
            reply = double.wait_for_sent(PHONE, "só consigo ler mensagens de texto")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and reply["ticks"] != "msg-dblcheck":
                time.sleep(0.1)
                reply = next(m for m in double.sent(PHONE) if m["data_id"] == reply["data_id"])
            assert reply["ticks"] == "msg-dblcheck"  # delivered
        finally:
            bot.stop()


def test_killing_chromium_reads_403_within_5_s_and_the_bot_comes_back_on_its_own(
    variant, shirt, tmp_path
):
    import psutil

    with WhatsAppDouble(variant=variant) as double:
        bot = start_linked_bot(double, tmp_path / "profile")
        try:
            say(double, "oi", "Boas-vindas")
            # Chromium writes Local Storage to the profile a few seconds after a change: one
            # killed before that loses the fresh login (so would WhatsApp's).
            wait_until_saved(tmp_path / "profile", b"wa-double-session")
            browsers = [
                child
                for child in psutil.Process(bot.process.pid).children(recursive=True)
                if "chrom" in child.name() and "driver" not in child.name()
            ]
            assert browsers
            killed_at = time.monotonic()
            for browser in browsers:
                browser.send_signal(signal.SIGKILL)
            wait_for_status(status.DISCONNECTED, timeout=5)
            assert time.monotonic() - killed_at <= 5
            double.customer_says(PHONE, "1", name="Maria Souza")  # while the bot is down
            wait_for_status(status.CONNECTED, timeout=60)
            double.wait_for_sent(PHONE, "escolha uma categoria", timeout=30)  # not lost
        finally:
            bot.stop()


def test_a_sigkilled_bot_answers_what_came_meanwhile_exactly_once_and_the_cart_is_intact(
    shirt, tmp_path
):
    profile = tmp_path / "profile"
    with WhatsAppDouble() as double:
        bot = start_linked_bot(double, profile)
        try:
            say(double, "oi", "Boas-vindas")
            say(double, "2", "O que você procura?")
            say(double, "camisa azul", "1. Camisa Azul")
            say(double, "1", "*Camisa Azul*")
            say(double, "2", "Adicionado: 2 × Camisa Azul")
            wait_until_saved(profile, b"wa-double-session")
            answered = len(double.sent(PHONE))
            bot.process.send_signal(signal.SIGKILL)  # mid-conversation, no chance to tidy up
            bot.process.wait(timeout=10)
        finally:
            bot.stop()
        # While no bot runs (its orphaned Chromium may still show the chat, read, but nobody
        # answers): see the cart, the menu, the cart again.
        for text in ("2", "menu", "3"):
            double.customer_says(PHONE, text, name="Maria Souza")
            time.sleep(0.3)

        again = start_bot(double, profile)
        try:
            wait_for_status(status.CONNECTED, timeout=90)
            deadline = time.monotonic() + 30
            while len(double.sent(PHONE)) < answered + 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(3)  # anything answered twice would show by now
            replies = [m["text"] for m in double.sent(PHONE)[answered:]]
            assert len(replies) == 3, replies
            assert replies[0].startswith("🛒 *Seu carrinho*\n• 2 × Camisa Azul — R$ 119,80")
            assert replies[1].startswith("O que você gostaria de fazer?")
            assert replies[2].startswith("🛒 *Seu carrinho*\n• 2 × Camisa Azul — R$ 119,80")
            cart = Cart.objects.get(customer__whatsapp_phone=PHONE)
            assert [(i.product_id, i.quantity) for i in cart.items.all()] == [(shirt.pk, 2)]
        finally:
            again.stop()


def test_chromium_over_its_memory_budget_is_restarted_keeping_the_login_and_every_message(
    shirt, tmp_path
):
    profile = tmp_path / "profile"
    with WhatsAppDouble() as double:
        # A budget no Chromium fits in: it is restarted at every check, 15 s after each start.
        bot = RunbotProcess(
            "whatsapp", "--url", double.url, "--profile-dir", str(profile),
            WHATSAPP_CHROMIUM_MAX_MB="1", WHATSAPP_MEMORY_CHECK_SECONDS="15",
        )  # fmt: skip
        try:
            wait_for_status(status.AUTHENTICATING)
            double.scan()
            wait_for_status(status.CONNECTED)
            say(double, "oi", "Boas-vindas")
            wait_until_saved(profile, b"wa-double-session")
            loads = double.page_loads()
            bot.wait_for_log("over its budget of 1 MB", timeout=40)
            double.customer_says(PHONE, "1", name="Maria Souza")  # while Chromium restarts
            double.wait_for_sent(PHONE, "escolha uma categoria", timeout=60)
            assert double.page_loads() > loads and double.linked()  # no new QR needed
            time.sleep(2)
            answers = [m for m in double.sent(PHONE) if "escolha uma categoria" in m["text"]]
            assert len(answers) == 1
        finally:
            bot.stop()


def test_a_page_whose_heap_grew_past_its_allowance_is_reloaded_quietly(shirt, tmp_path):
    """The page is reloaded at a quiet moment: the login stays, the dashboard keeps reading 200,
    and a message written meanwhile is answered once."""
    profile = tmp_path / "profile"
    with WhatsAppDouble() as double:
        bot = RunbotProcess(
            "whatsapp", "--url", double.url, "--profile-dir", str(profile),
            WHATSAPP_PAGE_HEAP_GROWTH_MB="16", WHATSAPP_MEMORY_CHECK_SECONDS="2",
        )  # fmt: skip
        try:
            wait_for_status(status.AUTHENTICATING)
            double.scan()
            wait_for_status(status.CONNECTED)
            say(double, "oi", "Boas-vindas")
            time.sleep(2.5)  # a check measures the page's heap once the chats show
            loads = double.page_loads()
            double.grow_page_heap(40)
            bot.wait_for_log("reloading WhatsApp Web", timeout=20)
            double.customer_says(PHONE, "1", name="Maria Souza")  # while the page reloads
            readings = []
            deadline = time.monotonic() + 30
            while not any("escolha uma categoria" in m["text"] for m in double.sent(PHONE)):
                assert time.monotonic() < deadline, double.sent(PHONE)
                readings.append(status.get_states()["WhatsApp"].status)
                time.sleep(0.1)
            assert double.page_loads() == loads + 1 and double.linked()
            assert set(readings) == {status.CONNECTED}  # no 100 or 102 for the bot's own reload
            time.sleep(2.5)  # the reloaded page is measured again and left alone
            assert double.page_loads() == loads + 1
            answers = [m for m in double.sent(PHONE) if "escolha uma categoria" in m["text"]]
            assert len(answers) == 1
        finally:
            bot.stop()


def test_sigterm_closes_chromium_and_reports_403(variant, shirt, tmp_path):
    import psutil

    with WhatsAppDouble(variant=variant) as double:
        bot = start_bot(double, tmp_path / "profile")
        wait_for_status(status.AUTHENTICATING)
        children = psutil.Process(bot.process.pid).children(recursive=True)
        assert any("chrom" in child.name() for child in children)
        bot.stop()
        assert bot.process.returncode == 0
        time.sleep(0.5)
        assert not [child for child in children if child.is_running()
                    and child.status() != psutil.STATUS_ZOMBIE]  # fmt: skip
        assert status.get_states()["WhatsApp"].status == status.DISCONNECTED


def test_a_page_that_matches_no_variant_is_reported_by_name(tmp_path):
    """WhatsApp changed its markup: the dashboard says so, and the log names what is missing."""
    import http.server
    import threading

    class Changed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><html><body><div id='app'><main>Novo layout</main></div>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Changed)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    bot = RunbotProcess(
        "whatsapp",
        "--url",
        f"http://127.0.0.1:{page.server_address[1]}/",
        "--profile-dir",
        str(tmp_path / "profile"),
        WHATSAPP_UNKNOWN_PAGE_SECONDS="2",
    )
    try:
        expected = "WhatsApp mudou a página: lista de conversas não encontrado."
        deadline = time.monotonic() + 30
        while status.get_states()["WhatsApp"].detail != expected:
            assert time.monotonic() < deadline, status.get_states()["WhatsApp"]
            time.sleep(0.1)
        assert status.get_states()["WhatsApp"].status == status.DISCONNECTED
        assert expected in bot.wait_for_log("WhatsApp mudou a página")
    finally:
        bot.stop()
        page.shutdown()


# --- translation, without a browser -------------------------------------------------------------


def test_a_turns_replies_are_one_whatsapp_message():
    assert coalesce([Reply("Olá!"), Reply("1. Sim\n2. Não", ("1. Sim", "2. Não"))]) == (
        "Olá!\n\n1. Sim\n2. Não"
    )


def test_the_chat_of_a_message_is_its_phone():
    assert chat_of(ChatMessage("false_5511912345678@c.us_3EB0AA", True, "oi")) == PHONE
    assert chat_of(ChatMessage("false_12036312345@lid_3EB0AB", True, "oi")) is None
