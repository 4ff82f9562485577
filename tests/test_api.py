"""The REST API as a front end or a script sees it: status codes, bodies, who may see what."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase
from rest_framework.test import APIClient

from shop import services
from shop.models import Order, OrderStatus, Product
from tests.conftest import ILLEGAL_MOVES, client_for, walk_to

pytestmark = pytest.mark.django_db


# --- Auth ----------------------------------------------------------------------------------------


def test_register_creates_a_shopper_with_an_argon2_password(api, password):
    response = api.post(
        "/api/auth/register/",
        {"username": "ana", "password": password, "email": "ana@example.com", "name": "Ana Lima"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["username"], body["name"]) == ("ana", "Ana Lima")
    assert body["access"] and body["refresh"]
    user = get_user_model().objects.get(username="ana")
    assert user.password.startswith("argon2$")
    assert user.customer.name == "Ana Lima"
    assert not user.is_staff


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "uma-senha-bem-forte-42"}, "username"),
        ({"username": "ana"}, "password"),
        ({"username": "ana", "password": "123"}, "password"),
        ({"username": "ana", "password": "password"}, "password"),
        ({"username": "ana", "password": "uma-senha-bem-forte-42", "email": "x"}, "email"),
        ({"username": "a b/c", "password": "uma-senha-bem-forte-42"}, "username"),
    ],
)
def test_register_refuses_bad_bodies_with_field_errors(api, body, field):
    response = api.post("/api/auth/register/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_register_refuses_a_taken_username(api, make_user, password):
    make_user("ana")
    response = api.post(
        "/api/auth/register/", {"username": "ANA", "password": password}, format="json"
    )
    assert response.status_code == 400
    assert "username" in response.json()


def test_token_pair_and_rotating_refresh(api, make_user, password):
    make_user("ana")
    tokens = api.post(
        "/api/auth/token/", {"username": "ana", "password": password}, format="json"
    ).json()
    assert set(tokens) == {"access", "refresh"}

    rotated = api.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != tokens["refresh"]

    reused = api.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert reused.status_code == 401

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated.json()['access']}")
    assert api.get("/api/orders/").status_code == 200


def test_wrong_password_gets_401(api, make_user):
    make_user("ana")
    response = api.post(
        "/api/auth/token/", {"username": "ana", "password": "errada"}, format="json"
    )
    assert response.status_code == 401


# --- Catalog -------------------------------------------------------------------------------------


def test_products_are_public_paginated_and_active_only(api, make_product):
    for _ in range(25):
        make_product()
    hidden = make_product(name="Escondido", is_active=False)

    first = api.get("/api/products/").json()
    assert first["count"] == 25
    assert len(first["results"]) == 20
    assert first["next"]
    assert hidden.pk not in {p["id"] for p in first["results"]}
    assert len(api.get("/api/products/?page_size=5").json()["results"]) == 5
    assert len(api.get("/api/products/?page_size=1000").json()["results"]) == 25  # capped at 100
    assert api.get(f"/api/products/{hidden.pk}/").status_code == 404


def test_product_body_shows_price_as_exact_decimal(api, make_product):
    product = make_product(name="Camisa Azul", price="79.90", stock=0)
    body = api.get(f"/api/products/{product.pk}/").json()
    assert body["price"] == "79.90"
    assert body["in_stock"] is False
    assert body["category"]["name"] == "Roupas"


def test_filter_by_category_and_search(api, make_product, category):
    from shop.models import Category

    shoes = Category.objects.create(name="Calçados", slug="calcados")
    make_product(name="Camisa Azul")
    make_product(name="Tênis de Corrida", category_=shoes)
    make_product(name="Camisa Verde")

    by_category = api.get(f"/api/products/?category={shoes.pk}").json()["results"]
    assert [p["name"] for p in by_category] == ["Tênis de Corrida"]
    found = api.get("/api/products/?search=camisa azul").json()["results"]
    assert [p["name"] for p in found] == ["Camisa Azul"]
    assert api.get("/api/products/?category=999999").status_code == 400


def test_categories_list_only_those_with_products_on_sale(api, make_product, category):
    from shop.models import Category

    Category.objects.create(name="Vazia", slug="vazia")
    make_product()
    assert [c["name"] for c in api.get("/api/categories/").json()] == ["Roupas"]


# --- Orders --------------------------------------------------------------------------------------


def test_orders_need_a_token(api):
    assert api.get("/api/orders/").status_code == 401
    assert api.post("/api/orders/", {}, format="json").status_code == 401
    assert api.get("/api/orders/1/").status_code == 401


def test_a_forged_token_is_refused(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxfQ.")
    assert api.get("/api/orders/").status_code == 401


def test_place_an_order_and_see_it(make_user, make_product):
    client = client_for(make_user("ana"))
    shirt = make_product(name="Camisa Azul", price="79.90", stock=3)

    response = client.post(
        "/api/orders/",
        {
            "items": [{"product": shirt.pk, "quantity": 2}],
            "payment_method": "pix",
            "delivery_address": "Rua das Flores, 10",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["status_display"] == "Pendente"
    assert body["total"] == "159.80"
    assert body["channel"] == "web"
    assert body["lines"][0]["product_name"] == "Camisa Azul"
    shirt.refresh_from_db()
    assert shirt.stock == 1
    listed = client.get("/api/orders/").json()["results"]
    assert [o["number"] for o in listed] == [body["number"]]
    assert client.get(f"/api/orders/{body['id']}/").json()["total"] == "159.80"


def test_an_order_sent_again_with_its_idempotency_key_is_placed_once(make_user, make_product):
    ana, bia = client_for(make_user("ana")), client_for(make_user("bia"))
    shirt = make_product(name="Camisa Azul", price="79.90", stock=5)
    body = {"items": [{"product": shirt.pk, "quantity": 1}], "payment_method": "pix",
            "delivery_address": "Rua das Flores, 10"}  # fmt: skip

    first = ana.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="pedido-1")
    again = ana.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="pedido-1")
    other = ana.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="pedido-2")
    # The key is per user: another customer's "pedido-1" is an order of theirs.
    bias = bia.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="pedido-1")

    assert (first.status_code, again.status_code, other.status_code, bias.status_code) == (
        201, 201, 201, 201,
    )  # fmt: skip
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert other.json()["number"] != first.json()["number"]
    assert bias.json()["number"] not in (first.json()["number"], other.json()["number"])
    assert Order.objects.count() == 3
    shirt.refresh_from_db()
    assert shirt.stock == 2


@pytest.mark.parametrize("key", ["x" * 201, "tab\there"])
def test_a_bad_idempotency_key_is_a_400_naming_the_header(make_user, make_product, key):
    shirt = make_product(stock=5)
    body = {"items": [{"product": shirt.pk, "quantity": 1}], "payment_method": "pix",
            "delivery_address": "Rua A, 1"}  # fmt: skip
    response = client_for(make_user("ana")).post(
        "/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_order_the_database_cannot_take_now_gets_503_with_retry_after(make_user, make_product):
    """A real database error (the table locked elsewhere, past this connection's lock wait), as a
    restarting database gives: a 503 saying to retry, nothing written; the retry is served."""
    from django.db import connection

    shirt = make_product(name="Camisa Azul", stock=5)
    client = client_for(make_user("ana"))
    body = {"items": [{"product": shirt.pk, "quantity": 1}], "payment_method": "pix",
            "delivery_address": "Rua A, 1"}  # fmt: skip
    blocker = connection.copy()  # a second connection to the same database
    try:
        with blocker.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("BEGIN")
                cursor.execute("LOCK TABLE shop_product IN ACCESS EXCLUSIVE MODE")
            else:
                cursor.execute("BEGIN EXCLUSIVE")
            with connection.cursor() as own:
                if connection.vendor == "postgresql":
                    own.execute("SET lock_timeout = '200ms'")
                else:
                    own.execute("PRAGMA busy_timeout = 200")
            refused = client.post(
                "/api/orders/", body, format="json", HTTP_ACCEPT_LANGUAGE="pt-br",
                HTTP_IDEMPOTENCY_KEY="pedido-1",
            )  # fmt: skip
            cursor.execute("ROLLBACK")
    finally:
        blocker.close()

    assert refused.status_code == 503
    assert refused["Retry-After"] == "5"
    assert refused.json() == {
        "detail": "O banco de dados está indisponível; tente de novo em instantes.",
        "code": "database_unavailable",
    }
    assert not Order.objects.exists()
    shirt.refresh_from_db()
    assert shirt.stock == 5
    retried = client.post("/api/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="pedido-1")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    shirt.refresh_from_db()
    assert shirt.stock == 4


def test_short_of_stock_is_a_409_naming_every_product(make_user, make_product):
    client = client_for(make_user("ana"))
    shirt = make_product(name="Camisa Azul", stock=1)
    boots = make_product(name="Bota", stock=0)
    response = client.post(
        "/api/orders/",
        {
            "items": [{"product": shirt.pk, "quantity": 2}, {"product": boots.pk, "quantity": 1}],
            "payment_method": "cash",
            "delivery_address": "Rua A, 1",
        },
        format="json",
        HTTP_ACCEPT_LANGUAGE="pt-br",
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "insufficient_stock"
    assert {s["name"] for s in body["shortages"]} == {"Camisa Azul", "Bota"}
    assert "Camisa Azul" in body["detail"] and "Bota" in body["detail"]
    assert "Estoque insuficiente" in body["detail"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": [], "payment_method": "pix", "delivery_address": "Rua A"},
        {"items": "nope", "payment_method": "pix", "delivery_address": "Rua A"},
        {"items": [{"product": "x", "quantity": 1}], "payment_method": "pix"},
        {"items": [{"product": 1, "quantity": 0}], "payment_method": "pix"},
        {"items": [{"product": 1, "quantity": -5}], "payment_method": "pix"},
        {"items": [{"product": 1, "quantity": 10**12}], "payment_method": "pix"},
        {"items": [{"product": 1}], "payment_method": "pix"},
        {"items": [{"product": 1, "quantity": 1}], "payment_method": "bitcoin"},
        {"items": [{"product": 1, "quantity": 1}]},
        {"items": [None], "payment_method": "pix"},
        {"items": [{"product": 1, "quantity": 1}] * 101, "payment_method": "pix"},
    ],
)
def test_malformed_order_bodies_get_400_with_field_errors(make_user, make_product, body):
    make_product()
    response = client_for(make_user("ana")).post("/api/orders/", body, format="json")
    assert response.status_code == 400
    assert isinstance(response.json(), dict) and response.json()


@pytest.mark.parametrize("body", ["{not json", "[" * 50_000, '{"items": ' + "[" * 20_000])
def test_not_json_at_all_is_a_400(make_user, body):
    response = client_for(make_user("ana")).post(
        "/api/orders/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_an_unknown_product_or_missing_address_is_a_400(make_user, make_product):
    client = client_for(make_user("ana"))
    unknown = client.post(
        "/api/orders/",
        {"items": [{"product": 987654, "quantity": 1}], "payment_method": "pix",
         "delivery_address": "Rua A"},
        format="json",
    )  # fmt: skip
    assert (unknown.status_code, unknown.json()["code"]) == (400, "product_unavailable")
    no_address = client.post(
        "/api/orders/",
        {"items": [{"product": make_product().pk, "quantity": 1}], "payment_method": "pix"},
        format="json",
    )
    assert (no_address.status_code, no_address.json()["code"]) == (400, "invalid_order")


def test_a_customer_cannot_see_or_change_another_customers_order(make_user, make_product):
    owner, intruder = make_user("dona"), make_user("intruso")
    order = services.place_order(
        customer=services.get_or_create_customer(user=owner),
        items=[services.OrderItem(product_id=make_product().pk, quantity=1)],
        channel="web",
        payment_method="pix",
        delivery_address="Rua A",
    )
    client = client_for(intruder)
    assert client.get(f"/api/orders/{order.pk}/").status_code == 404
    assert client.get("/api/orders/").json()["results"] == []
    change = client.post(f"/api/orders/{order.pk}/status/", {"status": "cancelled"}, format="json")
    assert change.status_code == 403
    # Not even the owner (a shopper) may move the status.
    own = client_for(owner).post(
        f"/api/orders/{order.pk}/status/", {"status": "cancelled"}, format="json"
    )
    assert own.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


@pytest.fixture
def chat_order(make_product, place):
    return place((make_product(stock=5), 2))


def test_staff_list_every_order_and_move_statuses(staff_user, chat_order):
    client = client_for(staff_user)
    assert [o["number"] for o in client.get("/api/orders/").json()["results"]] == [
        chat_order.number
    ]
    moved = client.post(
        f"/api/orders/{chat_order.pk}/status/", {"status": "confirmed"}, format="json"
    )
    assert moved.status_code == 200
    assert moved.json()["status"] == "confirmed"
    change = chat_order.status_changes.last()
    assert (change.changed_by, change.source) == (staff_user, "api")


@pytest.mark.parametrize(("start", "target"), ILLEGAL_MOVES)
def test_every_illegal_move_through_the_api_is_409_and_changes_nothing(
    staff_user, make_product, place, start, target
):
    product = make_product(stock=5)
    order = walk_to(place((product, 2)), start)
    stock_before = Product.objects.get(pk=product.pk).stock

    response = client_for(staff_user).post(
        f"/api/orders/{order.pk}/status/", {"status": target}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "illegal_status_transition"
    assert Order.objects.get(pk=order.pk).status == start
    assert Product.objects.get(pk=product.pk).stock == stock_before


def test_api_cancel_returns_stock_once(staff_user, chat_order):
    client = client_for(staff_user)
    url = f"/api/orders/{chat_order.pk}/status/"
    assert client.post(url, {"status": "cancelled"}, format="json").status_code == 200
    assert client.post(url, {"status": "cancelled"}, format="json").status_code == 409
    assert Product.objects.get().stock == 5


@pytest.mark.parametrize("body", [{}, {"status": "lost"}, {"status": None}, []])
def test_bad_status_bodies_are_400(staff_user, chat_order, body):
    response = client_for(staff_user).post(
        f"/api/orders/{chat_order.pk}/status/", body, format="json"
    )
    assert response.status_code == 400


def test_english_is_available(make_user, make_product):
    client = client_for(make_user("ana"))
    response = client.post(
        "/api/orders/",
        {"items": [{"product": make_product(stock=0).pk, "quantity": 1}],
         "payment_method": "pix", "delivery_address": "Rua A"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert response.json()["detail"].startswith("Not enough stock for:")


# --- Schema and docs -----------------------------------------------------------------------------


def test_an_unknown_api_address_is_a_json_404_and_a_page_elsewhere(client, settings):
    settings.DEBUG = False
    api = client.get("/api/nada/")  # no route of the API
    assert api.status_code == 404
    assert api.json() == {"detail": "Não encontrado.", "code": "not_found"}
    page = client.get("/nao-existe/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_openapi_schema_and_docs_without_any_cdn(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/auth/token/", "/api/products/", "/api/orders/", "/api/orders/{id}/status/"]:
        assert path in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "https://" not in html
    # the assets the page loads are served by us
    import re

    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset


# --- Property: no body makes the order endpoint fail with a 5xx ----------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
order_bodies = st.fixed_dictionaries(
    {},
    optional={
        "items": st.lists(
            st.fixed_dictionaries(
                {}, optional={"product": json_values | st.integers(), "quantity": json_values}
            )
            | json_values,
            max_size=4,
        )
        | json_values,
        "payment_method": st.sampled_from(["pix", "cash", "card_on_delivery"]) | json_values,
        "delivery_address": json_values,
    },
)


class TestOrderBodiesNeverCrash(HypothesisTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        from shop.models import Category

        category = Category.objects.create(name="C", slug="c")
        cls.product = Product.objects.create(
            category=category, sku="P1", name="P", price=Decimal("1.00"), stock=1000
        )
        cls.user = get_user_model().objects.create_user(username="fuzz", password="x")

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=order_bodies)
    def test_any_json_body_gets_a_4xx_or_201(self, body):
        client: APIClient = client_for(self.user)
        response = client.post("/api/orders/", body, format="json")
        assert response.status_code in {201, 400, 409}, (body, response.content[:300])


def test_the_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/api/orders/{id}/status/" in target.read_text()


def test_the_fast_product_body_equals_drfs_own_walk(api, make_product, tmp_path, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIRequestFactory

    from shop.api.serializers import ProductSerializer

    settings.MEDIA_ROOT = tmp_path
    with_image = make_product(name="Com Foto", price="5.50", stock=0)
    with_image.image = SimpleUploadedFile("foto.png", b"\x89PNG\r\n", content_type="image/png")
    with_image.save()
    plain = make_product(name="Sem Foto", price="1234.00", stock=3)
    request = APIRequestFactory().get("/api/products/")
    for product in (with_image, plain):
        serializer = ProductSerializer(product, context={"request": request})
        generic = super(ProductSerializer, serializer).to_representation(product)
        assert serializer.data == generic
