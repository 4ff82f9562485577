"""Scripted chats, one per flow, from the first "oi" to what the shop owner sees in the admin.

The engine runs for real: Redis of REDIS_URL for the conversation state, the test database for
the catalog, carts and orders. Replies are read in Brazilian Portuguese, as customers read them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bots.chat import TELEGRAM, WEB
from shop import services
from shop.models import Cart, CartItem, Category, Customer, Order, OrderStatus, Product
from tests.bots_support import Chat

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_chats")]

MENU_BUTTONS = (
    "1. Catálogo 🛍️",
    "2. Buscar produto 🔎",
    "3. Meu carrinho 🛒",
    "4. Finalizar pedido ✅",
    "5. Meus pedidos 📦",
    "6. Falar com atendente 💬",
)


@pytest.fixture
def catalog(db) -> dict[str, Product]:
    """Roupas: eight "Artigo" products, then Camisa Azul on the second page; Calçados: Tênis."""
    clothes = Category.objects.create(name="Roupas", slug="roupas", position=1)
    shoes = Category.objects.create(name="Calçados", slug="calcados", position=2)
    Category.objects.create(name="Vazia", slug="vazia", position=3)  # nothing on sale: hidden
    products = {}
    for number in range(1, 9):
        products[f"artigo{number}"] = Product.objects.create(
            category=clothes, sku=f"ART-{number}", name=f"Artigo {number:02d}",
            price=Decimal("10.00"), stock=50,
        )  # fmt: skip
    products["camisa"] = Product.objects.create(
        category=clothes, sku="CAM-AZ", name="Camisa Azul", price=Decimal("59.90"), stock=5,
        description="Algodão, manga curta.",
    )  # fmt: skip
    products["camisa_verde"] = Product.objects.create(
        category=clothes, sku="CAM-VD", name="Camisa Verde", price=Decimal("49.90"), stock=0
    )
    products["tenis"] = Product.objects.create(
        category=shoes, sku="TEN-1", name="Tênis de Corrida", price=Decimal("249.00"), stock=3
    )
    return products


def add_to_cart_by_chat(chat: Chat, search: str, quantity: int) -> str:
    chat.say("menu")
    chat.say("2")
    chat.say(search)
    chat.say("1")
    return chat.text(str(quantity))


# --- greeting and menu ----------------------------------------------------------------------------


def test_any_first_message_is_greeted_with_the_main_menu(catalog):
    chat = Chat(name="Maria Souza")
    greeting, menu = chat.say("quero comprar")
    assert greeting.text == "Olá, Maria! 👋 Boas-vindas à *Marketplace Bot*."
    assert menu.text.startswith("O que você gostaria de fazer?\n1. Catálogo 🛍️\n")
    assert menu.buttons == MENU_BUTTONS
    # The customer exists from the first message, known by their WhatsApp number.
    assert Customer.objects.get(whatsapp_phone=chat.chat).name == "Maria Souza"


def test_a_chat_without_a_display_name_is_greeted_too(catalog):
    greeting, _menu = Chat(name="").say("oi")
    assert greeting.text == "Olá! 👋 Boas-vindas à *Marketplace Bot*."


# --- catalog to an order in the admin -------------------------------------------------------------


def test_catalog_pages_detail_quantity_checkout_to_an_order_in_the_admin(
    catalog, settings, client, staff_user
):
    settings.SHOP_DELIVERY_FEE = Decimal("7.50")
    chat = Chat(name="Maria Souza")
    chat.say("oi")

    categories = chat.say("1")[0]
    assert categories.text == "🛍️ *Catálogo*: escolha uma categoria\n1. Roupas\n2. Calçados"
    assert categories.buttons == ("1. Roupas", "2. Calçados", "voltar")

    first_page = chat.text("1")
    assert "1. Artigo 01 — R$ 10,00" in first_page and "8. Artigo 08 — R$ 10,00" in first_page
    assert "Camisa Azul" not in first_page and "*mais*" in first_page

    second_page = chat.text("mais")
    assert "1. Camisa Azul — R$ 59,90" in second_page
    assert "2. Camisa Verde — R$ 49,90 · esgotado" in second_page

    detail = chat.text("1")
    assert detail.startswith("*Camisa Azul*\nR$ 59,90 · 5 em estoque\nAlgodão, manga curta.")

    added = chat.text("2")
    assert "✅ Adicionado: 2 × Camisa Azul (R$ 119,80)." in added
    assert "🛒 Carrinho: R$ 119,80" in added

    # Name known from the chat: only the address is asked.
    assert "📍" in chat.text("3")
    assert "💳" in chat.text("Rua das Flores, 10, Centro, São Paulo - SP")
    summary = chat.text("2")
    assert summary.startswith("📋 *Resumo do pedido*\n• 2 × Camisa Azul — R$ 119,80\n")
    assert "Subtotal: R$ 119,80\nEntrega: R$ 7,50\n*Total: R$ 127,30*" in summary
    assert "Rua das Flores, 10, Centro, São Paulo - SP" in summary

    placed = chat.text("1")
    order = Order.objects.get()
    assert f"🎉 Pedido *#{order.number}* recebido! Total: R$ 127,30 · cartão na entrega." in placed
    assert (order.channel, order.status, order.payment_method) == (
        "whatsapp",
        "pending",
        "card_on_delivery",
    )
    assert (order.subtotal, order.delivery_fee, order.total) == (
        Decimal("119.80"),
        Decimal("7.50"),
        Decimal("127.30"),
    )
    assert [(line.product_name, line.quantity, line.line_total) for line in order.lines.all()] == [
        ("Camisa Azul", 2, Decimal("119.80"))
    ]
    catalog["camisa"].refresh_from_db()
    assert catalog["camisa"].stock == 3
    assert not CartItem.objects.filter(cart__customer=order.customer).exists()

    client.force_login(staff_user)
    page = client.get(f"/admin/shop/order/{order.pk}/change/").content.decode()
    assert "Camisa Azul" in page and "119,80" in page and "127,30" in page
    assert "Rua das Flores, 10, Centro, São Paulo - SP" in page


def test_a_catalog_page_may_be_seconds_old_but_a_product_detail_never_is(catalog, settings):
    chat = Chat()
    chat.say("oi")
    chat.say("1")
    assert "1. Artigo 01 — R$ 10,00" in chat.text("1")
    Product.objects.filter(pk=catalog["artigo1"].pk).update(price=Decimal("12.00"))
    assert "1. Artigo 01 — R$ 10,00" in chat.text("voltar") + chat.text("1")  # cached page
    assert chat.text("1").startswith("*Artigo 01*\nR$ 12,00")  # the detail reads the database

    settings.BOT_CATALOG_CACHE_SECONDS = 0
    chat.say("voltar")
    assert "1. Artigo 01 — R$ 12,00" in chat.text("voltar") + chat.text("1")


def test_a_sold_out_product_cannot_be_added(catalog):
    chat = Chat()
    chat.say("oi")
    chat.say("1")
    chat.say("1")
    chat.say("mais")
    detail = chat.text("2")
    assert "*Camisa Verde*\nR$ 49,90 · esgotado" in detail and "Esgotado no momento" in detail
    assert not CartItem.objects.exists()


def test_asking_for_more_than_the_stock_says_how_many_are_left(catalog):
    chat = Chat()
    chat.say("oi")
    chat.say("2")
    chat.say("camisa azul")
    assert "5 em estoque" in chat.text("1")
    assert chat.text("9") == "😕 Só temos mais 5 unidades de Camisa Azul. Quantas você quer?"
    assert not CartItem.objects.exists()
    assert "Adicionado: 4 × Camisa Azul" in chat.text("4")
    chat.say("1")  # keep shopping: back to the search results
    chat.say("1")
    assert chat.text("2") == "😕 Só temos mais 1 unidade de Camisa Azul. Quantas você quer?"
    assert CartItem.objects.get().quantity == 4


# --- search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "first"),
    [
        ("camisa azl", "Camisa Azul"),
        ("CAMISA AZUL", "Camisa Azul"),
        ("tenis", "Tênis de Corrida"),
        ("Tênis corrida", "Tênis de Corrida"),
        ("cmisa azul", "Camisa Azul"),
    ],
)
def test_search_ignores_case_accents_and_a_typo_best_match_first(catalog, typed, first):
    chat = Chat()
    chat.say("oi")
    assert "🔎" in chat.text("2")
    results = chat.say(typed)[0]
    assert results.text.startswith(f'🔎 Resultados para "{typed}":\n1. {first} — R$ ')
    assert results.buttons[0] == f"1. {first}"


def test_search_with_no_match_says_so_and_a_new_search_works(catalog):
    chat = Chat()
    chat.say("oi")
    chat.say("2")
    assert 'Não encontrei nada para "geladeira"' in chat.text("geladeira")
    assert "1. Tênis de Corrida — R$ 249,00" in chat.text("tenis")
    assert "1. Camisa Azul" in chat.text("camisa azul")  # typing again is a new search
    assert chat.text("1").startswith("*Camisa Azul*")


# --- cart -----------------------------------------------------------------------------------------


def test_cart_lists_changes_removes_and_empties(catalog):
    chat = Chat()
    chat.say("oi")
    add_to_cart_by_chat(chat, "camisa azul", 2)
    add_to_cart_by_chat(chat, "tenis", 1)

    cart = chat.say("2")[0]  # "see my cart", offered after adding
    assert cart.text.startswith(
        "🛒 *Seu carrinho*\n• 2 × Camisa Azul — R$ 119,80\n• 1 × Tênis de Corrida — R$ 249,00\n"
        "*Total: R$ 368,80*"
    )

    chat.say("2")  # change a quantity
    assert chat.text("1").startswith("Quantas unidades de Camisa Azul você quer? (agora: 2;")
    assert "• 4 × Camisa Azul — R$ 239,60" in chat.text("4")
    chat.say("2")
    chat.say("1")
    assert chat.text("9") == "😕 Só temos 5 unidades de Camisa Azul. Quantas você quer?"
    assert "• 5 × Camisa Azul — R$ 299,50" in chat.text("5")

    chat.say("3")  # remove an item
    removed, cart = chat.say("2")
    assert removed.text == "🗑️ Removido: Tênis de Corrida."
    assert "Tênis" not in cart.text and "*Total: R$ 299,50*" in cart.text

    chat.say("4")  # empty the cart, after a confirmation
    assert CartItem.objects.count() == 1
    assert chat.text("1").startswith("🗑️ Seu carrinho agora está vazio.")
    assert not CartItem.objects.exists()
    assert chat.text("3").startswith("🛒 Seu carrinho está vazio.")


def test_quantity_zero_removes_a_line(catalog):
    chat = Chat()
    chat.say("oi")
    add_to_cart_by_chat(chat, "tenis", 1)
    chat.say("menu")
    chat.say("3")
    chat.say("2")
    chat.say("1")
    assert chat.text("0").startswith("🛒 Seu carrinho está vazio.")
    assert not CartItem.objects.exists()


# --- checkout -------------------------------------------------------------------------------------


def test_checkout_asks_only_what_is_missing(catalog):
    known = Chat(name="Joana")
    known.say("oi")
    services.update_customer_details(
        customer=Customer.objects.get(whatsapp_phone=known.chat),
        name="Joana Lima",
        delivery_address="Av. Brasil, 500, Rio de Janeiro",
    )
    add_to_cart_by_chat(known, "tenis", 1)
    assert known.text("3").startswith("💳")  # name and address known: straight to payment

    anonymous = Chat(name="")
    anonymous.say("oi")
    add_to_cart_by_chat(anonymous, "tenis", 1)
    assert anonymous.text("3").startswith("📝")  # the name first
    greeted, address = anonymous.say("Paulo Andrade")
    assert greeted.text == "Prazer, Paulo! 😊" and address.text.startswith("📍")
    assert anonymous.text("curto").startswith("🤔 Não entendi.")  # too short for an address
    assert anonymous.text("Rua Augusta, 1500, São Paulo").startswith("💳")
    assert "• 1 × Tênis de Corrida" in anonymous.text("pix")
    customer = Customer.objects.get(whatsapp_phone=anonymous.chat)
    assert (customer.name, customer.delivery_address) == (
        "Paulo Andrade",
        "Rua Augusta, 1500, São Paulo",
    )


def test_summary_lets_the_customer_change_the_address_and_payment(catalog):
    chat = Chat()
    chat.say("oi")
    add_to_cart_by_chat(chat, "tenis", 1)
    chat.say("3")
    chat.say("Rua A, 100, Campinas")
    chat.say("1")
    assert "📍" in chat.text("2")
    assert "Rua B, 200, Campinas" in chat.text("Rua B, 200, Campinas")
    chat.say("3")
    assert "💳 Pagamento: dinheiro" in chat.text("3")
    assert "recebido" in chat.text("1")
    order = Order.objects.get()
    assert (order.delivery_address, order.payment_method) == ("Rua B, 200, Campinas", "cash")


def test_short_of_stock_at_confirm_names_the_product_and_adjusts(catalog, place):
    chat = Chat()
    chat.say("oi")
    add_to_cart_by_chat(chat, "camisa azul", 3)
    add_to_cart_by_chat(chat, "tenis", 1)
    chat.say("3")
    chat.say("Rua das Palmeiras, 7, Recife")
    chat.say("1")
    place((catalog["camisa"], 4))  # someone else buys while this customer reads the summary
    place((catalog["tenis"], 3))

    short = chat.say("1")[0]
    assert short.text.startswith("😕 Alguns produtos esgotaram enquanto você escolhia:\n")
    assert "• Camisa Azul: só restam 1 (você pediu 3)" in short.text
    assert "• Tênis de Corrida: esgotado" in short.text
    assert Order.objects.count() == 2  # only the other customer's two

    summary = chat.text("1")  # adjust the cart to the stock
    assert "• 1 × Camisa Azul — R$ 59,90" in summary and "Tênis" not in summary
    assert "recebido" in chat.text("1")
    order = Order.objects.filter(customer__whatsapp_phone=chat.chat).get()
    assert [(line.product_name, line.quantity) for line in order.lines.all()] == [
        ("Camisa Azul", 1)
    ]
    catalog["camisa"].refresh_from_db()
    assert catalog["camisa"].stock == 0


def test_a_cart_changed_after_the_summary_is_summarised_again(catalog):
    chat = Chat()
    chat.say("oi")
    add_to_cart_by_chat(chat, "tenis", 1)
    chat.say("3")
    chat.say("Rua das Palmeiras, 7, Recife")
    chat.say("1")
    catalog["tenis"].price = Decimal("199.00")
    catalog["tenis"].save()
    again = chat.text("1")
    assert "📋 *Resumo do pedido*" in again and "R$ 199,00" in again
    assert not Order.objects.exists()
    assert "recebido! Total: R$ 199,00" in chat.text("1")


def test_a_confirm_whose_commit_nobody_heard_of_is_confirmed_on_the_retry(catalog):
    """The database went away right at the commit of a "confirm": the order was written but the
    turn failed, and the customer was asked to try again. Their retry confirms that order."""
    chat = Chat()
    chat.say("oi")
    add_to_cart_by_chat(chat, "tenis", 1)
    chat.say("3")
    chat.say("Rua das Palmeiras, 7, Recife")
    chat.say("1")  # the summary
    # What the failed turn left: the attempt noted in the state, the order in the database.
    state = chat.state()
    attempt = f"{chat.service}:{chat.chat}:msg-lost"
    state["data"]["placing"] = attempt
    chat.engine.store.save(chat.service, chat.chat, state)
    placed = services.checkout_cart(
        customer=Customer.objects.get(whatsapp_phone=chat.chat),
        channel="whatsapp",
        payment_method="pix",
        source_message=attempt,
    )

    retry = chat.text("1")

    assert f"Pedido *#{placed.number}* recebido!" in retry
    assert Order.objects.count() == 1
    catalog["tenis"].refresh_from_db()
    assert catalog["tenis"].stock == 2


def test_checkout_of_an_empty_cart_says_so(catalog):
    chat = Chat()
    chat.say("oi")
    assert chat.text("4").startswith("🛒 Seu carrinho está vazio: adicione um produto primeiro.")
    assert chat.state()["step"] == "menu"


# --- my orders ------------------------------------------------------------------------------------


def test_my_orders_lists_the_latest_with_status_in_words(catalog):
    chat = Chat()
    chat.say("oi")
    assert chat.text("5").startswith("📦 Você ainda não tem pedidos.")
    customer = Customer.objects.get(whatsapp_phone=chat.chat)
    first = services.place_order(
        customer=customer,
        items=[services.OrderItem(product_id=catalog["tenis"].pk, quantity=1)],
        channel="whatsapp",
        payment_method="pix",
        delivery_address="Rua X, 1, Natal",
    )
    second = services.place_order(
        customer=customer,
        items=[services.OrderItem(product_id=catalog["camisa"].pk, quantity=2)],
        channel="whatsapp",
        payment_method="pix",
        delivery_address="Rua X, 1, Natal",
    )
    services.set_order_status(order_id=first.pk, status=OrderStatus.CONFIRMED)
    services.set_order_status(order_id=first.pk, status=OrderStatus.SHIPPED)
    listing = chat.text("5")
    assert listing.startswith("📦 *Seus últimos pedidos*\n")
    lines = listing.splitlines()
    assert lines[1].startswith(f"#{second.number} · ") and lines[1].endswith(
        "R$ 119,80 · aguardando confirmação ⏳"
    )
    assert lines[2].startswith(f"#{first.number} · ") and lines[2].endswith(
        "R$ 249,00 · a caminho 🚚"
    )


# --- hand-off -------------------------------------------------------------------------------------


def test_atendente_hands_the_chat_to_a_person_until_released(catalog):
    chat = Chat()
    chat.say("oi")
    handoff = chat.say("6")
    assert handoff[0].text.startswith("💬 Certo!")
    assert chat.last_outcome.handoff_requested

    for text in ("oi", "menu", "1", "alô?"):
        assert chat.say(text) == []
        assert chat.last_outcome.silenced

    chat.engine.set_handoff(service=chat.service, chat=chat.chat, active=False)
    assert chat.text("1").startswith("🛍️ *Catálogo*")


def test_atendente_works_from_any_step(catalog):
    chat = Chat()
    chat.say("oi")
    chat.say("2")
    assert chat.text("atendente").startswith("💬 Certo!")
    assert chat.last_outcome.handoff_requested


# --- words that work anywhere, and what is not understood -----------------------------------------


def test_menu_voltar_and_cancelar_work_from_anywhere(catalog):
    chat = Chat()
    chat.say("oi")
    chat.say("1")
    chat.say("1")
    assert chat.text("voltar").startswith("🛍️ *Catálogo*: escolha uma categoria")
    assert chat.text("voltar").startswith("O que você gostaria de fazer?")

    add_to_cart_by_chat(chat, "tenis", 1)
    chat.say("3")  # checkout: asks the address
    assert chat.text("Voltar").startswith("🛒 *Seu carrinho*")
    chat.say("1")  # checkout again: the address was never given, so asked again
    cancelled, menu = chat.say("CANCELAR")
    assert cancelled.text == "Ok, cancelado. Seu carrinho continua salvo. 👍"
    assert menu.text.startswith("O que você gostaria de fazer?")
    assert CartItem.objects.count() == 1  # cancelling keeps the cart

    chat.say("2")
    assert chat.text("menu").startswith("O que você gostaria de fazer?")


@pytest.mark.parametrize("text", ["9", "banana", "", "   ", "🛒🛒", "-1", "1.5.6"])
def test_anything_not_understood_gets_a_one_line_hint(catalog, text):
    chat = Chat()
    chat.say("oi")
    replies = chat.say(text)
    assert len(replies) == 1
    assert replies[0].text.startswith("🤔 Não entendi.") and "\n" not in replies[0].text


def test_a_photo_gets_a_short_answer_and_keeps_the_step(catalog):
    chat = Chat()
    chat.say("oi")
    chat.say("2")
    photo, hint = chat.say("", is_text=False)
    assert photo.text == "Por enquanto só consigo ler mensagens de texto 🙂"
    assert hint.text == "Digite o nome do produto que você procura."
    assert chat.state()["step"] == "search"


def test_a_button_press_is_the_same_as_typing_its_number(catalog):
    chat = Chat()
    _greeting, menu = chat.say("oi")
    assert chat.say(choice=menu.buttons[0])[0].text.startswith("🛍️ *Catálogo*")
    assert chat.say(choice="1. Roupas")[0].text.startswith("🛍️ *Roupas*")


# --- languages and channels -----------------------------------------------------------------------


def test_a_customer_can_switch_to_english_and_back(catalog):
    chat = Chat()
    chat.say("oi")
    switched = chat.say("english")
    assert switched[0].text == "OK, I will speak English. 🇬🇧"
    assert switched[1].text.startswith("What would you like to do?\n1. Catalog 🛍️")
    assert chat.text("1").startswith("🛍️ *Catalog*: choose a category")
    assert Customer.objects.get(whatsapp_phone=chat.chat).language == "en"
    assert "O que você gostaria de fazer?" in chat.text("português")


def test_telegram_and_web_chats_are_customers_of_their_own_channel(catalog):
    telegram = Chat(service=TELEGRAM, chat="987654321", name="Rafa")
    web = Chat(service=WEB, chat="web-abc123", name="Teste")
    for chat in (telegram, web):
        chat.say("oi")
        add_to_cart_by_chat(chat, "tenis", 1)
        chat.say("3")
        chat.say("Rua das Acácias, 33, Curitiba")
        chat.say("1")
        assert "recebido" in chat.text("1")
    assert Order.objects.get(customer__telegram_id=987654321).channel == "telegram"
    assert Order.objects.get(customer__web_chat="web-abc123").channel == "web"
    assert Cart.objects.count() == 2
