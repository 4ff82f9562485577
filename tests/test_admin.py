"""The owner's back office: every page opens, in Portuguese; order actions obey the workflow."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse

from shop import services
from shop.models import Category, Order, OrderStatus, Product
from tests.conftest import ILLEGAL_MOVES, walk_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def shop_with_an_order(make_product, place, staff_user):
    """One of each model, so every changelist and change form has a row to show."""
    product = make_product(name="Camisa Azul", price="79.90", stock=5)
    order = place((product, 2))
    services.add_to_cart(customer=order.customer, product_id=product.pk, quantity=1)
    services.get_or_create_customer(user=staff_user, name="Gerente")
    return order


def test_every_changelist_add_and_change_form_opens(owner, shop_with_an_order):
    # The admin's home first: the URLs it loads find every app's admin module (SimpleAdminConfig).
    assert owner.get(reverse("admin:index")).status_code == 200
    opened = []
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        prefix = "admin:{}_{}".format(*info)
        changelist = owner.get(reverse(f"{prefix}_changelist"))
        assert changelist.status_code == 200, info
        opened.append(info)
        if model_admin.has_add_permission(changelist.wsgi_request):
            assert owner.get(reverse(f"{prefix}_add")).status_code == 200, info
        instance = model._default_manager.first()
        if instance is not None:
            change = owner.get(reverse(f"{prefix}_change", args=[instance.pk]))
            assert change.status_code == 200, info
    assert ("shop", "order") in opened and ("shop", "product") in opened


def test_the_back_office_speaks_portuguese(owner, shop_with_an_order):
    index = owner.get(reverse("admin:index")).content.decode()
    assert "Produtos" in index and "Pedidos" in index and "Clientes" in index
    order_page = owner.get(reverse("admin:shop_order_change", args=[shop_with_an_order.pk]))
    html = order_page.content.decode()
    assert "Itens do pedido" in html and "Histórico de status" in html
    assert "Camisa Azul" in html and "79,90" in html


def test_order_changelist_filters_and_search(owner, shop_with_an_order):
    url = reverse("admin:shop_order_changelist")
    number = shop_with_an_order.number
    assert number in owner.get(url, {"q": number}).content.decode()
    assert number in owner.get(url, {"q": "912345678"}).content.decode()
    assert number not in owner.get(url, {"q": "000000"}).content.decode()
    assert number in owner.get(url, {"status__exact": "pending"}).content.decode()
    assert number not in owner.get(url, {"status__exact": "shipped"}).content.decode()
    assert number in owner.get(url, {"channel__exact": "whatsapp"}).content.decode()


def run_action(client, action: str, orders: list[Order]):
    return client.post(
        reverse("admin:shop_order_changelist"),
        {"action": action, "_selected_action": [o.pk for o in orders]},
        follow=True,
    )


def test_order_actions_walk_the_workflow(owner, shop_with_an_order, staff_user):
    order = shop_with_an_order
    for action, status in [
        ("mark_confirmed", OrderStatus.CONFIRMED),
        ("mark_shipped", OrderStatus.SHIPPED),
        ("mark_delivered", OrderStatus.DELIVERED),
    ]:
        response = run_action(owner, action, [order])
        assert response.status_code == 200
        assert "1 pedido atualizado." in response.content.decode()
        order.refresh_from_db()
        assert order.status == status
    history = list(order.status_changes.values_list("to_status", "source", "changed_by"))
    assert history[1:] == [
        ("confirmed", "admin", staff_user.pk),
        ("shipped", "admin", staff_user.pk),
        ("delivered", "admin", staff_user.pk),
    ]


def test_an_illegal_action_is_refused_with_a_message(owner, shop_with_an_order):
    order = shop_with_an_order
    response = run_action(owner, "mark_delivered", [order])
    html = response.content.decode()
    assert f"O pedido #{order.number} não pode passar de Pendente para Entregue." in html
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING


def test_cancel_action_returns_stock_once(owner, shop_with_an_order):
    product = Product.objects.get(name="Camisa Azul")
    assert product.stock == 3
    run_action(owner, "mark_cancelled", [shop_with_an_order])
    run_action(owner, "mark_cancelled", [shop_with_an_order])
    product.refresh_from_db()
    assert product.stock == 5
    shop_with_an_order.refresh_from_db()
    assert shop_with_an_order.status == OrderStatus.CANCELLED


def test_the_order_form_cannot_set_a_status(owner, shop_with_an_order):
    order = shop_with_an_order
    url = reverse("admin:shop_order_change", args=[order.pk])
    response = owner.post(
        url,
        {
            "status": "delivered",
            "delivery_address": "Rua Nova, 5",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
            "status_changes-TOTAL_FORMS": "0",
            "status_changes-INITIAL_FORMS": "0",
            "notifications-TOTAL_FORMS": "0",
            "notifications-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.delivery_address) == (OrderStatus.PENDING, "Rua Nova, 5")


def test_price_and_stock_are_editable_in_the_list_and_stock_cannot_go_negative(owner, make_product):
    product = make_product(price="10.00", stock=3)
    url = reverse("admin:shop_product_changelist")

    def save(price: str, stock: str):
        return owner.post(
            url,
            {
                "form-TOTAL_FORMS": "1",
                "form-INITIAL_FORMS": "1",
                "form-0-id": str(product.pk),
                "form-0-price": price,
                "form-0-stock": stock,
                "_save": "Salvar",
            },
        )

    saved = save("12,50", "7")
    assert saved.status_code == 302, saved.context["cl"].formset.errors
    product.refresh_from_db()
    assert (product.price, product.stock) == (Decimal("12.50"), 7)

    refused = save("12,50", "-1")
    assert refused.status_code == 200
    assert "Certifique-se que este valor seja maior ou igual a 0." in refused.content.decode()
    product.refresh_from_db()
    assert product.stock == 7


def test_bulk_activate_and_deactivate(owner, make_product):
    products = [make_product(), make_product()]
    url = reverse("admin:shop_product_changelist")
    ids = [p.pk for p in products]
    owner.post(url, {"action": "deactivate", "_selected_action": ids})
    assert not Product.objects.filter(pk__in=ids, is_active=True).exists()
    owner.post(url, {"action": "activate", "_selected_action": ids})
    assert Product.objects.filter(pk__in=ids, is_active=True).count() == 2


def test_products_search_by_name_or_sku_and_filter_by_category(owner, make_product):
    shoes = Category.objects.create(name="Calçados", slug="calcados")
    shirt = make_product(name="Camisa Azul")
    make_product(name="Tênis", category_=shoes)
    url = reverse("admin:shop_product_changelist")
    assert "Camisa Azul" in owner.get(url, {"q": "camisa"}).content.decode()
    assert "Camisa Azul" in owner.get(url, {"q": shirt.sku}).content.decode()
    by_category = owner.get(url, {"category__id__exact": shoes.pk}).content.decode()
    assert "Tênis" in by_category and "Camisa Azul" not in by_category


def test_catalog_csv_export(owner, make_product):
    make_product(name="Pão de Queijo", price="19.90", stock=4)
    response = owner.post(
        reverse("admin:shop_product_export"),
        {"format": "0", "resource": "0", **{f"productresource_{f}": "on" for f in (
            "sku", "name", "category", "description", "price", "stock", "is_active")}},
    )  # fmt: skip
    assert response.status_code == 200, response.content[:500]
    text = response.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("sku,name,category")
    assert "Pão de Queijo,Roupas,,19.90,4,1" in text


def test_catalog_csv_import_creates_and_updates_by_sku(owner, make_product):
    existing = make_product(name="Camisa", price="10.00", stock=1)
    csv = (
        "sku,name,category,description,price,stock,is_active\n"
        f"{existing.sku},Camisa,Roupas,,15.00,9,1\n"
        "NEW-1,Goiabada Cascão,Mercearia,Doce,16.90,50,1\n"
    )
    upload = io.BytesIO(csv.encode())
    upload.name = "catalogo.csv"
    confirm = owner.post(
        reverse("admin:shop_product_import"),
        {"format": "0", "resource": "0", "import_file": upload},
    )
    assert confirm.status_code == 200
    form = confirm.context["confirm_form"]
    done = owner.post(
        reverse("admin:shop_product_process_import"),
        {**form.initial, "resource": "0"},
        follow=True,
    )
    assert done.status_code == 200
    existing.refresh_from_db()
    assert (existing.price, existing.stock) == (Decimal("15.00"), 9)
    created = Product.objects.get(sku="NEW-1")
    assert (created.name, created.category.name, created.price) == (
        "Goiabada Cascão",
        "Mercearia",
        Decimal("16.90"),
    )


def test_a_negative_stock_in_an_import_is_reported_not_saved(owner, make_product):
    existing = make_product(stock=1)
    upload = io.BytesIO(
        f"sku,name,category,description,price,stock,is_active\n{existing.sku},X,Roupas,,1.00,-5,1\n".encode()
    )
    upload.name = "catalogo.csv"
    response = owner.post(
        reverse("admin:shop_product_import"),
        {"format": "0", "resource": "0", "import_file": upload},
    )
    assert response.status_code == 200
    assert "confirm_form" not in response.context or response.context["confirm_form"] is None
    existing.refresh_from_db()
    assert existing.stock == 1


def test_customer_page_lists_their_orders(owner, shop_with_an_order):
    customer = shop_with_an_order.customer
    html = owner.get(reverse("admin:shop_customer_change", args=[customer.pk])).content.decode()
    assert f"#{shop_with_an_order.number}" in html


def test_non_staff_cannot_enter(client, make_user):
    client.force_login(make_user("cliente"))
    response = client.get(reverse("admin:shop_order_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


ACTION_FOR = {
    OrderStatus.CONFIRMED: "mark_confirmed",
    OrderStatus.SHIPPED: "mark_shipped",
    OrderStatus.DELIVERED: "mark_delivered",
    OrderStatus.CANCELLED: "mark_cancelled",
}


@pytest.mark.parametrize(("start", "target"), [(a, b) for a, b in ILLEGAL_MOVES if b in ACTION_FOR])
def test_every_illegal_move_is_refused_by_the_admin_actions(
    owner, make_product, place, start, target
):
    product = make_product(stock=5)
    order = walk_to(place((product, 2)), start)
    stock_before = Product.objects.get(pk=product.pk).stock
    history_before = order.status_changes.count()

    html = run_action(owner, ACTION_FOR[target], [order]).content.decode()

    assert f"O pedido #{order.number} não pode passar de" in html
    order.refresh_from_db()
    assert order.status == start
    assert order.status_changes.count() == history_before
    assert Product.objects.get(pk=product.pk).stock == stock_before


def test_no_admin_action_can_send_an_order_back_to_pending():
    assert OrderStatus.PENDING not in ACTION_FOR
    actions = [getattr(a, "__name__", a) for a in admin.site._registry[Order].actions]
    assert sorted(actions) == sorted(ACTION_FOR.values())
