"""Security gates: brute force, CSRF, production cookies and headers, and who may read what."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from shop import services
from shop.models import Order, OrderStatus
from tests.conftest import client_for
from tests.test_settings import PRODUCTION, run_manage

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
LIMIT = 10  # settings.AXES_FAILURE_LIMIT (LOGIN_FAILURE_LIMIT)


def token_attempt(username: str, password: str, *, address: str) -> tuple[int, dict, str]:
    response = APIClient().post(
        TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )
    return response.status_code, response.json(), response.get("Retry-After", "")


# --- Brute force ---------------------------------------------------------------------------------


def test_guessing_many_usernames_from_one_address_gets_that_address_blocked(make_user, password):
    make_user("ana")
    answers = [token_attempt(f"user{n}", "chute", address="203.0.113.7")[0] for n in range(100)]
    # The tenth failure is refused as a lockout already, and so is every try after it.
    assert answers[: LIMIT - 1] == [401] * (LIMIT - 1)
    assert set(answers[LIMIT - 1 :]) == {429}

    status, body, retry_after = token_attempt("ana", password, address="203.0.113.7")
    assert status == 429
    assert body["code"] == "too_many_login_attempts"
    assert "Tente de novo em 15 minutos" in body["detail"]
    assert retry_after == "900"
    # Ana at home, on another address, is not held up by the attacker's address.
    assert token_attempt("ana", password, address="198.51.100.20")[0] == 200


def test_guessing_one_password_from_many_addresses_blocks_the_username_for_a_while(
    make_user, password
):
    make_user("ana")
    answers = [
        token_attempt("ana", f"chute-{n}", address=f"10.1.{n // 250}.{n % 250 + 1}")[0]
        for n in range(100)
    ]
    assert answers[: LIMIT - 1] == [401] * (LIMIT - 1)
    assert set(answers[LIMIT - 1 :]) == {429}
    # While blocked, not even the right password gets in, from anywhere.
    assert token_attempt("ana", password, address="198.51.100.20")[0] == 429

    # The attacker going on through the cool-off does not make it longer: nothing is recorded.
    recorded = list(AccessAttempt.objects.values_list("id", "failures_since_start", "attempt_time"))
    for n in range(20):
        assert token_attempt("ana", "mais-um-chute", address=f"10.9.9.{n + 1}")[0] == 429
    assert list(
        AccessAttempt.objects.values_list("id", "failures_since_start", "attempt_time")
    ) == (recorded)

    # Fifteen minutes later (the attempts' clock moved back), Ana gets in.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))
    status, body, _ = token_attempt("ana", password, address="198.51.100.20")
    assert status == 200 and body["access"]
    # A success clears the count: one more typo is just a 401, not a lock.
    assert token_attempt("ana", "typo", address="198.51.100.20")[0] == 401
    assert token_attempt("ana", password, address="198.51.100.20")[0] == 200


def admin_login(client: Client, username: str, password: str, *, address: str):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_the_admin_login_sits_behind_the_same_protection(make_user, password):
    make_user("gerente", staff=True)
    client = Client()
    for _ in range(LIMIT // 2):  # half through the API ...
        assert token_attempt("gerente", "chute", address="203.0.113.9")[0] == 401
    for _ in range(LIMIT // 2 - 1):  # ... and half through the admin's form: one count
        response = admin_login(client, "gerente", "chute", address="203.0.113.9")
        assert response.status_code == 200
        assert "corretos" in response.content.decode()  # the admin's "enter a correct ..."

    assert admin_login(client, "gerente", "chute", address="203.0.113.9").status_code == 429
    blocked = admin_login(client, "gerente", password, address="203.0.113.9")
    assert blocked.status_code == 429
    page = blocked.content.decode()
    assert "Login bloqueado" in page
    assert "Muitas tentativas de login sem sucesso. Tente de novo em 15 minutos." in page
    assert "_auth_user_id" not in client.session
    assert token_attempt("gerente", password, address="198.51.100.3")[0] == 429

    # The owner can lift the lock at once (django-axes' command), and the manager gets in.
    from django.core.management import call_command

    call_command("axes_reset_username", "gerente")
    assert not AccessAttempt.objects.filter(username="gerente").exists()
    response = admin_login(client, "gerente", password, address="203.0.113.10")
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


# --- CSRF, cookies, headers ---------------------------------------------------------------------


def test_admin_forms_refuse_a_post_without_the_csrf_token(make_user, password):
    make_user("gerente", staff=True)
    client = Client(enforce_csrf_checks=True)
    assert admin_login(client, "gerente", password, address="127.0.0.1").status_code == 403

    login_page = client.get(reverse("admin:login"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.content.decode())
    response = client.post(
        reverse("admin:login"),
        {
            "username": "gerente",
            "password": password,
            "next": "/admin/",
            "csrfmiddlewaretoken": token.group(1),
        },
    )
    assert response.status_code == 302
    # Logged in, a state-changing admin POST without the token is still refused.
    forged = client.post(reverse("admin:shop_category_add"), {"name": "Forjada"})
    assert forged.status_code == 403


PRODUCTION_REQUEST = """
import json
from django.conf import settings
from django.db.models import F
from django.test import Client
client = Client(HTTP_HOST="loja.example.com")
plain = client.get("/admin/login/")
page = client.get("/admin/login/", secure=True)
api = client.get("/api/schema/", secure=True)
cookie = page.cookies["csrftoken"]
print(json.dumps({
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "status": page.status_code,
    "headers": dict(page.headers.items()),
    "api_headers": dict(api.headers.items()),
    "csrf_cookie": {"secure": cookie["secure"], "samesite": cookie["samesite"]},
    "session_cookie": {
        "secure": settings.SESSION_COOKIE_SECURE,
        "httponly": settings.SESSION_COOKIE_HTTPONLY,
        "samesite": settings.SESSION_COOKIE_SAMESITE,
    },
}))
"""


def test_production_forces_https_and_sets_secure_cookies_and_headers(tmp_path):
    env = {**PRODUCTION, "STATIC_ROOT": str(tmp_path / "static")}
    collected = run_manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    result = run_manage("shell", "-c", PRODUCTION_REQUEST, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain_status"] == 301
    assert seen["plain_location"] == "https://loja.example.com/admin/login/"
    assert seen["status"] == 200
    for headers in (seen["headers"], seen["api_headers"]):
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert seen["headers"]["X-Frame-Options"] == "DENY"
    assert seen["csrf_cookie"] == {"secure": True, "samesite": "Lax"}
    assert seen["session_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax"}


# --- Who may read or change what (no IDOR) ------------------------------------------------------


@pytest.fixture
def two_shoppers(make_user, make_product):
    owner, intruder = make_user("dona"), make_user("intruso")
    order = services.place_order(
        customer=services.get_or_create_customer(user=owner),
        items=[services.OrderItem(product_id=make_product(stock=5).pk, quantity=1)],
        channel="web",
        payment_method="pix",
        delivery_address="Rua A, 1",
    )
    return owner, intruder, order


# Every path of the API that names one object, and who may use it. A new one fails the test
# below until it is added here with its rule, and so gets its own access check.
PUBLIC, OWNER_READS, STAFF_ONLY = "public", "owner reads, others 404", "staff only"
OBJECT_ENDPOINTS = {
    ("/api/categories/{id}/", "get"): PUBLIC,
    ("/api/products/{id}/", "get"): PUBLIC,
    ("/api/orders/{id}/", "get"): OWNER_READS,
    ("/api/orders/{id}/status/", "post"): STAFF_ONLY,
}


def test_every_object_endpoint_refuses_another_customer(api, two_shoppers, make_product):
    owner, intruder, order = two_shoppers
    schema = json.loads(api.get("/api/schema/", {"format": "json"}).content)
    in_schema = {
        (path, method)
        for path, operations in schema["paths"].items()
        if "{" in path
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert in_schema == set(OBJECT_ENDPOINTS), "an object endpoint has no access rule here"

    product = make_product(name="Público", stock=1)
    ids = {"categories": product.category_id, "products": product.pk, "orders": order.pk}
    for (path, method), rule in OBJECT_ENDPOINTS.items():
        url = path.replace("{id}", str(ids[path.split("/")[2]]))
        body = {"status": OrderStatus.CANCELLED} if method == "post" else None
        as_intruder = getattr(client_for(intruder), method)(url, body, format="json")
        as_nobody = getattr(APIClient(), method)(url, body, format="json")
        as_owner = getattr(client_for(owner), method)(url, body, format="json")
        if rule == PUBLIC:
            assert (as_nobody.status_code, as_intruder.status_code) == (200, 200), url
        elif rule == OWNER_READS:
            assert as_nobody.status_code == 401, url
            # 404, not 403: another customer's order numbers are not even confirmed to exist.
            assert as_intruder.status_code == 404, url
            assert as_owner.status_code == 200 and as_owner.json()["number"] == order.number
        else:
            assert as_nobody.status_code == 401, url
            assert (as_intruder.status_code, as_owner.status_code) == (403, 403), url
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_the_order_list_shows_only_ones_own_orders(two_shoppers, place, make_product):
    owner, intruder, order = two_shoppers
    chat_order = place((make_product(stock=3), 1))  # a WhatsApp customer's, with no login
    assert [o["number"] for o in client_for(owner).get("/api/orders/").json()["results"]] == [
        order.number
    ]
    assert client_for(intruder).get("/api/orders/").json()["results"] == []
    assert chat_order.number != order.number
