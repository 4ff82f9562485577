"""The conversation engine: a customer shops by chatting, on any transport.

``Engine.handle(message)`` takes one ``IncomingMessage`` and returns the ``Outcome``: the replies
to send and what happened. It imports no adapter; WhatsApp, Telegram and the dashboard's
simulator all call it the same way.

Each message is handled under its chat's lock, once per message id (``bots.state``). The
conversation's step lives in Redis; carts, customers and orders in the database through
``shop.services`` and ``shop.selectors``. A checkout is tied to the message that confirmed it, so
a redelivered "confirm" cannot place a second order.

Replies are written in English in the code and translated by Django's i18n; customers read
Brazilian Portuguese unless they (or ``BOT_LANGUAGE``) choose English.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone, translation
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

from bots.chat import (
    SERVICE_CHANNELS,
    TELEGRAM,
    WHATSAPP,
    IncomingMessage,
    Outcome,
    Reply,
)
from bots.state import ChatStore
from shop import selectors, services
from shop.errors import InsufficientStock, InvalidOrder, ProductUnavailable
from shop.models import (
    Category,
    Customer,
    Order,
    OrderStatus,
    PaymentMethod,
    Product,
    search_key,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 8
RECENT_ORDERS = 5
MAX_NAME_CHARS = 150
MAX_ADDRESS_CHARS = 500
MIN_ADDRESS_CHARS = 10

# Words that work at any step (compared without case or accents).
MENU_WORDS = {"menu", "inicio", "oi", "ola", "hi", "hello", "start", "/start", "comecar"}
BACK_WORDS = {"voltar", "volta", "back"}
CANCEL_WORDS = {"cancelar", "cancela", "cancel", "sair"}
AGENT_WORDS = {"atendente", "falar com atendente", "humano", "agent", "human"}
MORE_WORDS = {"mais", "more", "proxima", "next"}
YES_WORDS = {"sim", "s", "yes", "y", "ok", "confirmar", "confirmo", "confirm"}
NO_WORDS = {"nao", "n", "no"}
LANGUAGE_WORDS = {"english": "en", "ingles": "en", "portugues": "pt-br", "portuguese": "pt-br"}

# Main menu: (number, words that pick it, label).
MENU_OPTIONS = [
    ("catalog", {"catalogo", "catalog", "produtos", "products", "ver catalogo"}),
    ("search", {"buscar", "busca", "procurar", "pesquisar", "search", "buscar produto"}),
    ("cart", {"carrinho", "meu carrinho", "cart", "my cart"}),
    ("checkout", {"finalizar", "finalizar pedido", "checkout", "comprar", "fechar pedido"}),
    ("orders", {"pedidos", "meus pedidos", "orders", "my orders"}),
    ("agent", AGENT_WORDS),
]

PAYMENT_CHOICES = [
    (PaymentMethod.PIX, {"pix"}),
    (PaymentMethod.CARD_ON_DELIVERY, {"cartao", "card", "cartao na entrega", "credito", "debito"}),
    (PaymentMethod.CASH, {"dinheiro", "cash", "especie"}),
]

STATUS_WORDS = {
    OrderStatus.PENDING: pgettext_lazy("order status in chat", "awaiting confirmation ⏳"),
    OrderStatus.CONFIRMED: pgettext_lazy("order status in chat", "confirmed ✅"),
    OrderStatus.SHIPPED: pgettext_lazy("order status in chat", "on its way 🚚"),
    OrderStatus.DELIVERED: pgettext_lazy("order status in chat", "delivered 📦"),
    OrderStatus.CANCELLED: pgettext_lazy("order status in chat", "cancelled ❌"),
}

PAYMENT_WORDS = {
    PaymentMethod.PIX: gettext_lazy("Pix"),
    PaymentMethod.CARD_ON_DELIVERY: gettext_lazy("card on delivery"),
    PaymentMethod.CASH: gettext_lazy("cash"),
}

# Keycap emoji ("2️⃣") read as the digit they show.
KEYCAPS = {f"{d}\ufe0f\u20e3": str(d) for d in range(10)} | {
    f"{d}\u20e3": str(d) for d in range(10)
}
LEADING_NUMBER = re.compile(r"^\s*(\d{1,6})(?!\d)(?:\s*[.)\-:º°]?)(?:\s|$)")


def money(value: Decimal) -> str:
    """R$ 1.234,50 in Portuguese, R$ 1,234.50 in English."""
    return f"R$ {number_format(value, 2, use_l10n=True, force_grouping=True)}"


def read_number(text: str) -> int | None:
    """The number a customer typed or picked: "2", "2.", "2) Camisa", "2️⃣"; else None."""
    for keycap, digit in KEYCAPS.items():
        text = text.replace(keycap, digit)
    match = LEADING_NUMBER.match(text)
    return int(match.group(1)) if match else None


def customer_lookup(service: str, chat: str) -> dict[str, Any]:
    """The identity ``shop.services.get_or_create_customer`` knows a chat's customer by."""
    if service == WHATSAPP:
        return {"whatsapp_phone": chat}
    if service == TELEGRAM:
        return {"telegram_id": int(chat)}
    return {"web_chat": chat}


class Step:
    MENU = "menu"
    CATEGORIES = "categories"
    PRODUCTS = "products"
    QUANTITY = "quantity"
    ADDED = "added"
    SEARCH = "search"
    RESULTS = "results"
    CART = "cart"
    CART_PICK = "cart_pick"
    CART_QUANTITY = "cart_quantity"
    CART_CLEAR = "cart_clear"
    NAME = "checkout_name"
    ADDRESS = "checkout_address"
    PAYMENT = "checkout_payment"
    CONFIRM = "checkout_confirm"
    SHORTAGE = "shortage"


# Steps that wait for free text: there, only the words that work everywhere are commands.
FREE_TEXT_STEPS = {Step.SEARCH, Step.RESULTS, Step.NAME, Step.ADDRESS}


class Engine:
    """Handles messages of every chat; one instance is shared by an adapter's threads."""

    def __init__(self, store: ChatStore | None = None) -> None:
        self.store = store or ChatStore()

    def handle(self, message: IncomingMessage) -> Outcome:
        with self.store.locked(message.service, message.chat) as lock:
            seen, state = self.store.begin(message.service, message.chat, message.message_id)
            if seen:
                return Outcome(duplicate=True)
            conversation = Conversation(message, state)
            outcome = conversation.run()
            self.store.finish(
                message.service,
                message.chat,
                message.message_id,
                conversation.state,
                release=lock,
            )
            return outcome

    def set_handoff(self, *, service: str, chat: str, active: bool) -> None:
        """A person takes the chat (``True``: the bot stays quiet) or gives it back."""
        with self.store.locked(service, chat):
            state = self.store.load(service, chat) or {"step": Step.MENU, "data": {}}
            state["handoff"] = active
            if not active:
                state.update(step=Step.MENU, data={})
            self.store.save(service, chat, state)

    def language_of(self, *, service: str, chat: str) -> str:
        return (self.store.load(service, chat) or {}).get("lang") or settings.BOT_LANGUAGE


@dataclass
class _Said:
    """A message as the steps read it."""

    raw: str  # as typed, trimmed
    key: str  # lower case, no accents, single spaces, no trailing punctuation
    number: int | None


class Conversation:
    """One message's turn: reads the state, runs the step, collects the replies."""

    def __init__(self, message: IncomingMessage, state: dict | None) -> None:
        self.message = message.cleaned()
        self.is_new = state is None
        self.state: dict[str, Any] = state or {"step": Step.MENU, "data": {}}
        self.replies: list[Reply] = []
        self._customer: Customer | None = None
        self.handoff_requested = False

    # --- running a turn ---------------------------------------------------------------------------

    def _sorry(self) -> None:
        """A failed turn: the customer hears only that, and to try again. Their cart and orders
        are untouched (each write is its own transaction)."""
        self.state.pop("customer", None)
        self.replies = [
            Reply(_("😓 Sorry, something went wrong on our side. Please try again in a moment."))
        ]

    def run(self) -> Outcome:
        if self.state.get("handoff"):
            return Outcome(customer=self.message.customer_name, silenced=True)
        language = self.state.get("lang") or settings.BOT_LANGUAGE
        with translation.override(language):
            try:
                self._turn()
            except (OperationalError, InterfaceError) as failure:
                # The database restarting or away: one line, not a traceback per message.
                logger.warning(
                    "%s chat %s: message %s not handled, the customer is asked to try again "
                    "(database unavailable: %s)",
                    self.message.service,
                    self.message.chat,
                    self.message.message_id,
                    str(failure).strip().splitlines()[0] if str(failure).strip() else failure,
                )
                self._sorry()
            except Exception:
                # A bug must not leave a customer in silence either.
                logger.exception(
                    "%s chat %s: could not handle message %s",
                    self.message.service,
                    self.message.chat,
                    self.message.message_id,
                )
                self._sorry()
        return Outcome(
            replies=self.replies,
            customer=self.customer_name,
            handoff_requested=self.handoff_requested,
        )

    def _turn(self) -> None:
        said = self._read()
        if self.is_new:
            self.customer()  # a customer from the first message on: the owner sees who wrote
            self.say(
                _("Hi, %(name)s! 👋 Welcome to *%(shop)s*.")
                % {"name": self.first_name, "shop": settings.SHOP_NAME}
                if self.first_name
                else _("Hi! 👋 Welcome to *%(shop)s*.") % {"shop": settings.SHOP_NAME}
            )
            self.show_menu()
            return
        if not self.message.is_text:
            self.say(_("I can only read text messages for now 🙂"))
            self.hint(with_prefix=False)
            return
        if self._global_command(said):
            return
        step = self.state.get("step", Step.MENU)
        handler = getattr(self, f"at_{step}", None)
        if handler is None:  # a state saved by another version of the engine
            self.show_menu()
            return
        handler(said)

    def _read(self) -> _Said:
        raw = self.message.said.strip()
        key = search_key(raw).strip(" .!?,;")
        return _Said(raw=raw, key=key, number=read_number(raw))

    def _global_command(self, said: _Said) -> bool:
        step = self.state.get("step", Step.MENU)
        if said.key in MENU_WORDS:
            self.show_menu()
        elif said.key in BACK_WORDS:
            self.go_back()
        elif said.key in CANCEL_WORDS:
            self.say(_("OK, cancelled. Your cart is still saved. 👍"))
            self.show_menu()
        elif said.key in AGENT_WORDS:
            self.hand_off()
        elif said.key in LANGUAGE_WORDS:
            self.switch_language(LANGUAGE_WORDS[said.key])
        elif step not in FREE_TEXT_STEPS and (option := _menu_option(said.key)):
            self.open(option)
        else:
            return False
        return True

    # --- helpers ----------------------------------------------------------------------------------

    def say(self, text: str, buttons: list[str] | tuple[str, ...] = ()) -> None:
        self.replies.append(Reply(text=text, buttons=tuple(buttons)))

    def goto(self, step: str, **data: Any) -> None:
        self.state["step"] = step
        self.state["data"] = data

    @property
    def data(self) -> dict[str, Any]:
        return self.state.setdefault("data", {})

    @property
    def first_name(self) -> str:
        return (self.message.customer_name or "").split(" ")[0][:40]

    @property
    def customer_name(self) -> str:
        return self.message.customer_name or (self._customer.name if self._customer else "")

    def customer(self) -> Customer:
        """The customer's row (created on first contact); cached for the turn."""
        if self._customer is None:
            customer_id = self.state.get("customer")
            customer = Customer.objects.filter(pk=customer_id).first() if customer_id else None
            if customer is None:
                customer = services.get_or_create_customer(
                    **customer_lookup(self.message.service, self.message.chat),
                    name=self.message.customer_name,
                )
                self.state["customer"] = customer.pk
            self._customer = customer
        return self._customer

    def customer_ref(self) -> Customer:
        """The customer for reads and cart writes that need only its id (no query when known)."""
        if self._customer is None and self.state.get("customer"):
            return Customer(pk=self.state["customer"])
        return self.customer()

    def hint(self, *, with_prefix: bool = True) -> None:
        hints = {
            Step.MENU: _("Reply with the number of an option (1 to 6)."),
            Step.CATEGORIES: _("Reply with the number of a category, or *back*."),
            Step.PRODUCTS: _("Reply with the number of a product, *more* for others, or *back*."),
            Step.QUANTITY: _("How many? Reply with a number, or *back*."),
            Step.ADDED: _("Reply 1 to keep shopping, 2 to see your cart or 3 to check out."),
            Step.SEARCH: _("Type the name of the product you are looking for."),
            Step.RESULTS: _("Reply with the number of a product, or type another search."),
            Step.CART: _("Reply with the number of an option (1 to 5)."),
            Step.CART_PICK: _("Reply with the number of the item."),
            Step.CART_QUANTITY: _("Reply with the new quantity (0 removes the item)."),
            Step.CART_CLEAR: _("Reply 1 to empty the cart or 2 to keep it."),
            Step.NAME: _("Please type your name."),
            Step.ADDRESS: _("Please type the full address: street, number, district and city."),
            Step.PAYMENT: _("Reply 1 (Pix), 2 (card on delivery) or 3 (cash)."),
            Step.CONFIRM: _("Reply 1 to place the order, or 4 to cancel."),
            Step.SHORTAGE: _("Reply 1 to adjust the cart or 2 to see it."),
        }
        text = hints.get(self.state.get("step"), hints[Step.MENU])
        self.say(_("🤔 I didn't get that. %(hint)s") % {"hint": text} if with_prefix else text)

    # --- menu and global commands -----------------------------------------------------------------

    def show_menu(self) -> None:
        labels = [
            _("1. Catalog 🛍️"),
            _("2. Search for a product 🔎"),
            _("3. My cart 🛒"),
            _("4. Check out ✅"),
            _("5. My orders 📦"),
            _("6. Talk to a person 💬"),
        ]
        self.say(
            _("What would you like to do?")
            + "\n"
            + "\n".join(labels)
            + "\n\n"
            + _("Reply with a number. *menu* brings you back here at any time."),
            labels,
        )
        self.goto(Step.MENU)

    def at_menu(self, said: _Said) -> None:
        if said.number is not None and 1 <= said.number <= len(MENU_OPTIONS):
            self.open(MENU_OPTIONS[said.number - 1][0])
        else:
            self.hint()

    def open(self, option: str) -> None:
        {
            "catalog": self.show_categories,
            "search": self.ask_search,
            "cart": self.show_cart,
            "checkout": self.start_checkout,
            "orders": self.show_orders,
            "agent": self.hand_off,
        }[option]()

    def go_back(self) -> None:
        step = self.state.get("step")
        origin = self.data.get("origin")
        if step == Step.PRODUCTS:
            self.show_categories()
        elif step in (Step.QUANTITY, Step.ADDED) and origin:
            self.show_origin(origin)
        elif step == Step.RESULTS:
            self.ask_search()
        elif step in (
            Step.CART_PICK,
            Step.CART_QUANTITY,
            Step.CART_CLEAR,
            Step.SHORTAGE,
        ) or step in (Step.NAME, Step.ADDRESS, Step.PAYMENT):
            self.show_cart()
        elif step == Step.CONFIRM:
            self.ask_payment()
        else:
            self.show_menu()

    def hand_off(self) -> None:
        self.say(
            _("💬 All right! I'm calling a person from our team; they will answer you right here. "
              "Please wait a moment.")
        )  # fmt: skip
        self.goto(Step.MENU)
        self.state["handoff"] = True
        self.handoff_requested = True
        self.customer()  # the dashboard shows who asked

    def switch_language(self, language: str) -> None:
        self.state["lang"] = language
        services.update_customer_details(customer=self.customer(), language=language)
        translation.activate(language)
        self.say(_("OK, I will speak English. 🇬🇧") if language == "en" else _("Okay! 🇧🇷"))
        self.show_menu()

    # --- catalog ----------------------------------------------------------------------------------

    def show_categories(self) -> None:
        categories = catalog_cache.get(("categories",), _load_categories)
        if not categories:
            self.say(_("Our catalog is empty right now. 😕 Please come back soon!"))
            self.show_menu()
            return
        lines = [f"{n}. {category.name}" for n, category in enumerate(categories, 1)]
        self.say(
            _("🛍️ *Catalog*: choose a category") + "\n" + "\n".join(lines),
            [*lines, _("back")],
        )
        self.goto(Step.CATEGORIES, ids=[category.pk for category in categories])

    def at_categories(self, said: _Said) -> None:
        category_id = _pick(self.data.get("ids", []), said.number)
        if category_id is None:
            self.hint()
            return
        self.show_origin({"kind": "category", "category": category_id, "page": 0})

    def show_origin(self, origin: dict[str, Any]) -> None:
        """Show again the list a product was picked from: a category page or a search."""
        if origin.get("kind") == "search":
            self.show_results(origin.get("query", ""))
        else:
            self.show_products(origin.get("category"), origin.get("page", 0))

    def show_products(self, category_id: int | None, page: int) -> None:
        products = catalog_cache.get(
            ("page", category_id, page), lambda: _load_page(category_id, page)
        )
        if not products and page > 0:
            self.show_products(category_id, 0)
            return
        category = products[0].category if products else None
        if category is None:
            self.show_categories()
            return
        has_more = len(products) > PAGE_SIZE
        products = products[:PAGE_SIZE]
        lines = [_product_line(n, product) for n, product in enumerate(products, 1)]
        text = f"🛍️ *{category.name}*\n" + "\n".join(lines)
        buttons = [f"{n}. {product.name}"[:60] for n, product in enumerate(products, 1)]
        if has_more:
            text += "\n\n" + _("Reply *more* to see more products.")
            buttons.append(_("more"))
        text += "\n" + _("Reply with the number of a product to see it.")
        self.say(text, [*buttons, _("back")])
        self.goto(
            Step.PRODUCTS,
            ids=[product.pk for product in products],
            origin={"kind": "category", "category": category.pk, "page": page},
            more=has_more,
        )

    def at_products(self, said: _Said) -> None:
        origin = self.data.get("origin", {})
        if said.key in MORE_WORDS:
            if self.data.get("more"):
                self.show_products(origin.get("category"), origin.get("page", 0) + 1)
            else:
                self.say(_("Those are all the products of this category. 🙂"))
                self.hint(with_prefix=False)
            return
        product_id = _pick(self.data.get("ids", []), said.number)
        if product_id is None:
            self.hint()
            return
        self.show_product(product_id, origin)

    def show_product(self, product_id: int, origin: dict[str, Any]) -> None:
        product = Product.objects.filter(pk=product_id, is_active=True).first()
        if product is None:
            self.say(_("😕 This product is no longer available."))
            self.show_origin(origin)
            return
        if product.stock <= 0:
            availability = _("sold out")
        else:
            availability = ngettext("%(count)d in stock", "%(count)d in stock", product.stock) % {
                "count": product.stock
            }
        text = f"*{product.name}*\n{money(product.price)} · {availability}"
        if product.description:
            text += f"\n{product.description[:300]}"
        if product.stock <= 0:
            self.say(text + "\n\n" + _("😕 Sold out for now."))
            self.goto(Step.ADDED, origin=origin)
            self.ask_after_add()
            return
        self.say(
            text + "\n\n" + _("How many would you like? Reply with a number (e.g. 1)."),
            ["1", "2", "3", _("back")],
        )
        self.goto(Step.QUANTITY, product=product.pk, origin=origin)

    def at_quantity(self, said: _Said) -> None:
        quantity = said.number
        if quantity is None or quantity < 1 or quantity > services.MAX_QUANTITY_PER_LINE:
            self.hint()
            return
        product = Product.objects.filter(pk=self.data.get("product"), is_active=True).first()
        if product is None:
            self.say(_("😕 This product is no longer available."))
            self.show_origin(self.data.get("origin", {}))
            return
        cart = self.cart()
        in_cart = next((line.quantity for line in cart.lines if line.product_id == product.pk), 0)
        if quantity + in_cart > product.stock:
            left = product.stock - in_cart
            if left <= 0:
                self.say(
                    _("😕 You already have all %(stock)d units of %(name)s we have in your cart.")
                    % {"stock": product.stock, "name": product.name}
                )
                self.ask_after_add()
            else:
                self.say(
                    ngettext(
                        "😕 We only have %(count)d more unit of %(name)s. How many?",
                        "😕 We only have %(count)d more units of %(name)s. How many?",
                        left,
                    )
                    % {"count": left, "name": product.name}
                )
            return
        services.add_to_cart(customer=self.customer_ref(), product_id=product.pk, quantity=quantity)
        added = product.price * quantity
        self.say(
            _("✅ Added: %(quantity)d × %(name)s (%(total)s).")
            % {"quantity": quantity, "name": product.name, "total": money(added)}
            + "\n"
            + _("🛒 Cart: %(total)s") % {"total": money(cart.total + added)}
        )
        self.ask_after_add()

    def ask_after_add(self) -> None:
        labels = [_("1. Keep shopping"), _("2. See my cart"), _("3. Check out")]
        self.say("\n".join(labels), labels)
        self.goto(Step.ADDED, origin=self.data.get("origin", {}))

    def at_added(self, said: _Said) -> None:
        if said.number == 1:
            self.show_origin(self.data.get("origin", {}))
        elif said.number == 2:
            self.show_cart()
        elif said.number == 3:
            self.start_checkout()
        else:
            self.hint()

    # --- search -----------------------------------------------------------------------------------

    def ask_search(self) -> None:
        self.say(_("🔎 What are you looking for? Type the product's name."), [_("back")])
        self.goto(Step.SEARCH)

    def at_search(self, said: _Said) -> None:
        if not said.key:
            self.hint()
            return
        self.show_results(said.raw)

    def show_results(self, query: str) -> None:
        products = selectors.search_products(text=query, limit=PAGE_SIZE)
        shown = query[:60]
        if not products:
            self.say(
                _('😕 I found nothing for "%(query)s". Try another word, or *menu*.')
                % {"query": shown}
            )
            self.goto(Step.SEARCH)
            return
        lines = [_product_line(n, product) for n, product in enumerate(products, 1)]
        self.say(
            _('🔎 Results for "%(query)s":') % {"query": shown}
            + "\n"
            + "\n".join(lines)
            + "\n"
            + _("Reply with the number of a product, or type another search."),
            [f"{n}. {product.name}"[:60] for n, product in enumerate(products, 1)] + [_("back")],
        )
        self.goto(
            Step.RESULTS,
            ids=[product.pk for product in products],
            origin={"kind": "search", "query": query[:100]},
        )

    def at_results(self, said: _Said) -> None:
        product_id = _pick(self.data.get("ids", []), said.number)
        if product_id is not None:
            self.show_product(product_id, self.data.get("origin", {}))
        elif said.number is None and said.key:
            self.show_results(said.raw)  # not a number: a new search
        else:
            self.hint()

    # --- cart -------------------------------------------------------------------------------------

    def cart(self) -> selectors.CartSummary:
        return selectors.cart_summary(customer=self.customer_ref())

    def show_cart(self) -> None:
        cart = self.cart()
        if cart.is_empty:
            self.say(_("🛒 Your cart is empty."))
            self.show_menu()
            return
        labels = [
            _("1. Check out"),
            _("2. Change a quantity"),
            _("3. Remove an item"),
            _("4. Empty the cart"),
            _("5. Keep shopping"),
        ]
        self.say(
            _("🛒 *Your cart*")
            + "\n"
            + _cart_lines(cart, numbered=False)
            + "\n"
            + _("*Total: %(total)s*") % {"total": money(cart.total)}
            + "\n\n"
            + "\n".join(labels),
            labels,
        )
        self.goto(Step.CART)

    def at_cart(self, said: _Said) -> None:
        if said.number == 1:
            self.start_checkout()
        elif said.number in (2, 3):
            self.ask_cart_item("change" if said.number == 2 else "remove")
        elif said.number == 4:
            labels = [_("1. Yes, empty it"), _("2. No, keep it")]
            self.say(_("Empty the whole cart?") + "\n" + "\n".join(labels), labels)
            self.goto(Step.CART_CLEAR)
        elif said.number == 5:
            self.show_categories()
        else:
            self.hint()

    def ask_cart_item(self, action: str) -> None:
        cart = self.cart()
        if cart.is_empty:
            self.show_cart()
            return
        question = _("Which item?") if action == "change" else _("Which item should I remove?")
        buttons = [f"{n}. {line.name}"[:60] for n, line in enumerate(cart.lines, 1)]
        self.say(question + "\n" + _cart_lines(cart, numbered=True), [*buttons, _("back")])
        self.goto(Step.CART_PICK, action=action, ids=[line.product_id for line in cart.lines])

    def at_cart_pick(self, said: _Said) -> None:
        product_id = _pick(self.data.get("ids", []), said.number)
        if product_id is None:
            self.hint()
            return
        line = next((line for line in self.cart().lines if line.product_id == product_id), None)
        if line is None:
            self.show_cart()
        elif self.data.get("action") == "remove":
            services.remove_from_cart(customer=self.customer_ref(), product_id=product_id)
            self.say(_("🗑️ Removed: %(name)s.") % {"name": line.name})
            self.show_cart()
        else:
            self.say(
                _("How many %(name)s would you like? (now %(quantity)d; 0 removes it)")
                % {"name": line.name, "quantity": line.quantity}
            )
            self.goto(Step.CART_QUANTITY, product=product_id)

    def at_cart_quantity(self, said: _Said) -> None:
        quantity = said.number
        if quantity is None or quantity > services.MAX_QUANTITY_PER_LINE:
            self.hint()
            return
        product_id = self.data.get("product")
        product = Product.objects.filter(pk=product_id, is_active=True).first()
        if product is not None and quantity > product.stock:
            self.say(
                ngettext(
                    "😕 We only have %(count)d unit of %(name)s. How many would you like?",
                    "😕 We only have %(count)d units of %(name)s. How many would you like?",
                    product.stock,
                )
                % {"count": product.stock, "name": product.name}
            )
            return
        if product is None or quantity == 0:
            services.remove_from_cart(customer=self.customer_ref(), product_id=product_id)
        else:
            services.set_cart_quantity(
                customer=self.customer_ref(), product_id=product_id, quantity=quantity
            )
        self.show_cart()

    def at_cart_clear(self, said: _Said) -> None:
        if said.number == 1 or said.key in YES_WORDS:
            services.clear_cart(customer=self.customer_ref())
            self.say(_("🗑️ Your cart is empty now."))
            self.show_menu()
        elif said.number == 2 or said.key in NO_WORDS:
            self.show_cart()
        else:
            self.hint()

    # --- checkout ---------------------------------------------------------------------------------

    def start_checkout(self) -> None:
        if self.cart().is_empty:
            self.say(_("🛒 Your cart is empty: add a product first."))
            self.show_menu()
            return
        customer = self.customer()
        if not customer.name:
            self.say(_("📝 To deliver your order, what is your name?"), [_("back")])
            self.goto(Step.NAME)
        elif not customer.delivery_address:
            self.ask_address()
        else:
            self.ask_payment()

    def at_checkout_name(self, said: _Said) -> None:
        name = " ".join(said.raw.split())[:MAX_NAME_CHARS]
        if len(name) < 2 or not any(char.isalpha() for char in name):
            self.hint()
            return
        services.update_customer_details(customer=self.customer(), name=name)
        self.say(_("Nice to meet you, %(name)s! 😊") % {"name": name.split(" ")[0]})
        if self.customer().delivery_address:
            self.ask_payment()
        else:
            self.ask_address()

    def ask_address(self) -> None:
        self.say(
            _("📍 What is the delivery address? (street, number, district, city)"), [_("back")]
        )
        self.goto(Step.ADDRESS, payment=self.data.get("payment"))

    def at_checkout_address(self, said: _Said) -> None:
        address = said.raw[:MAX_ADDRESS_CHARS]
        if len(address) < MIN_ADDRESS_CHARS or not any(char.isalpha() for char in address):
            self.hint()
            return
        services.update_customer_details(customer=self.customer(), delivery_address=address)
        payment = self.data.get("payment")
        if payment:
            self.show_summary(payment)
        else:
            self.ask_payment()

    def ask_payment(self) -> None:
        labels = [_("1. Pix"), _("2. Card on delivery"), _("3. Cash")]
        self.say(_("💳 How would you like to pay?") + "\n" + "\n".join(labels), labels)
        self.goto(Step.PAYMENT)

    def at_checkout_payment(self, said: _Said) -> None:
        payment = None
        if said.number is not None and 1 <= said.number <= len(PAYMENT_CHOICES):
            payment = PAYMENT_CHOICES[said.number - 1][0]
        else:
            payment = next((method for method, words in PAYMENT_CHOICES if said.key in words), None)
        if payment is None:
            self.hint()
            return
        self.show_summary(payment)

    def show_summary(self, payment: str) -> None:
        cart = self.cart()
        if cart.is_empty:
            self.say(_("🛒 Your cart is empty: add a product first."))
            self.show_menu()
            return
        customer = self.customer()
        fee = settings.SHOP_DELIVERY_FEE
        labels = [
            _("1. Place the order"),
            _("2. Change the address"),
            _("3. Change the payment"),
            _("4. Cancel"),
        ]
        self.say(
            _("📋 *Order summary*")
            + "\n"
            + _cart_lines(cart, numbered=False)
            + "\n"
            + _("Subtotal: %(amount)s") % {"amount": money(cart.total)}
            + "\n"
            + _("Delivery: %(amount)s") % {"amount": money(fee)}
            + "\n"
            + _("*Total: %(amount)s*") % {"amount": money(cart.total + fee)}
            + "\n"
            + _("📍 Deliver to: %(address)s") % {"address": customer.delivery_address}
            + "\n"
            + _("💳 Payment: %(method)s") % {"method": PAYMENT_WORDS[payment]}
            + "\n\n"
            + "\n".join(labels),
            labels,
        )
        self.goto(Step.CONFIRM, payment=payment, quote=_quote(cart))

    def at_checkout_confirm(self, said: _Said) -> None:
        payment = self.data.get("payment", PaymentMethod.PIX)
        if said.number == 1 or said.key in YES_WORDS:
            self.place_order(payment)
        elif said.number == 2:
            self.ask_address()
        elif said.number == 3:
            self.ask_payment()
        elif said.number == 4 or said.key in NO_WORDS:
            self.say(_("OK, the order was not placed. Your cart is still saved. 👍"))
            self.show_menu()
        else:
            self.hint()

    def place_order(self, payment: str) -> None:
        message = self.message
        source = f"{message.service}:{message.chat}:{message.message_id}"[:255]
        cart = self.cart()
        if _quote(cart) != self.data.get("quote"):
            sources = {source, self.data.get("placing")} - {None}
            placed = Order.objects.filter(source_message__in=sources).first()
            if placed is not None:
                # This very message placed it before its turn could be saved (a crash, a lost
                # Redis write), or an earlier "confirm" did while the database failed around its
                # commit and the customer was asked to try again: the cart is empty, say so again.
                self.confirm_order(placed)
                return
            # The cart or a price changed since the summary (another device, the shop owner).
            self.say(_("⚠️ Your cart changed since the summary; please check it again."))
            self.show_summary(payment)
            return
        # Noted before the attempt, kept if it fails: a commit the database confirmed to no one
        # (it went away at that moment) is found by the customer's retry.
        self.data["placing"] = source
        try:
            order = services.checkout_cart(
                customer=self.customer(),
                channel=SERVICE_CHANNELS.get(message.service, "web"),
                payment_method=payment,
                source_message=source,
            )
        except InsufficientStock as short:
            lines = []
            for shortage in short.shortages:
                if shortage.available <= 0:
                    lines.append(_("• %(name)s: sold out") % {"name": shortage.name})
                else:
                    lines.append(
                        _("• %(name)s: only %(available)d left (you asked for %(requested)d)")
                        % {
                            "name": shortage.name,
                            "available": shortage.available,
                            "requested": shortage.requested,
                        }
                    )
            labels = [_("1. Adjust my cart to the stock"), _("2. See my cart")]
            self.say(
                _("😕 Some products ran out while you were choosing:")
                + "\n"
                + "\n".join(lines)
                + "\n\n"
                + "\n".join(labels),
                labels,
            )
            self.goto(
                Step.SHORTAGE,
                payment=payment,
                available={str(s.product_id): s.available for s in short.shortages},
            )
            return
        except ProductUnavailable as gone:
            for product_id in gone.product_ids:
                services.remove_from_cart(customer=self.customer_ref(), product_id=product_id)
            self.say(_("😕 Some products are no longer sold; I removed them from your cart."))
            self.show_cart()
            return
        except InvalidOrder as refused:
            self.say(f"😕 {refused}")
            self.show_menu()
            return
        self.confirm_order(order)

    def confirm_order(self, order: Order) -> None:
        self.say(
            _("🎉 Order *#%(number)s* placed! Total: %(total)s · %(method)s.")
            % {
                "number": order.number,
                "total": money(order.total),
                "method": PAYMENT_WORDS[order.payment_method],
            }
            + "\n"
            + _("📍 Delivery to: %(address)s") % {"address": order.delivery_address}
            + "\n"
            + _("I will let you know here when its status changes. Thank you! 💚")
        )
        self.show_menu()

    def at_shortage(self, said: _Said) -> None:
        if said.number == 1:
            for product_id, available in self.data.get("available", {}).items():
                if available > 0:
                    services.set_cart_quantity(
                        customer=self.customer_ref(), product_id=int(product_id), quantity=available
                    )
                else:
                    services.remove_from_cart(
                        customer=self.customer_ref(), product_id=int(product_id)
                    )
            self.say(_("✅ Cart adjusted to the stock we have."))
            self.show_summary(self.data.get("payment", PaymentMethod.PIX))
        elif said.number == 2:
            self.show_cart()
        else:
            self.hint()

    # --- my orders --------------------------------------------------------------------------------

    def show_orders(self) -> None:
        orders = selectors.recent_orders(customer=self.customer_ref(), limit=RECENT_ORDERS)
        if not orders:
            self.say(_("📦 You have no orders yet."))
            self.show_menu()
            return
        lines = [
            _("#%(number)s · %(date)s · %(total)s · %(status)s")
            % {
                "number": order.number,
                "date": _local_date(order.created_at),
                "total": money(order.total),
                "status": STATUS_WORDS[order.status],
            }
            for order in orders
        ]
        self.say(
            _("📦 *Your latest orders*")
            + "\n"
            + "\n".join(lines)
            + "\n\n"
            + _("Reply *menu* to see the options."),
            [_("menu")],
        )
        self.goto(Step.MENU)


class TimedCache:
    """Catalog pages as they were up to ``BOT_CATALOG_CACHE_SECONDS`` ago, per process.

    Browsing is most of a chat and the same pages are asked for again and again; a page a few
    seconds old is fine to look at, because a product's detail, the cart and the checkout
    always read the database.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        ttl = settings.BOT_CATALOG_CACHE_SECONDS
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < ttl:
            return entry[1]
        value = load()
        if ttl > 0:
            if len(self._entries) > 10_000:  # many categories × pages: start afresh
                self._entries.clear()
            self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


catalog_cache = TimedCache()


def _load_categories() -> list[Category]:
    return list(selectors.categories_with_active_products())


def _load_page(category_id: int | None, page: int) -> list[Product]:
    # One query for a page (and one product more, to know if there is a next page); the
    # category's name comes with its products.
    return list(
        selectors.active_products(category=Category(pk=category_id))[
            page * PAGE_SIZE : (page + 1) * PAGE_SIZE + 1
        ]
    )


def _menu_option(key: str) -> str | None:
    return next((option for option, words in MENU_OPTIONS if key in words), None)


def _pick(ids: list[int], number: int | None) -> int | None:
    if number is None or not 1 <= number <= len(ids):
        return None
    return ids[number - 1]


def _product_line(number: int, product: Product) -> str:
    line = f"{number}. {product.name} — {money(product.price)}"
    if product.stock <= 0:
        line += " · " + _("sold out")
    return line


def _cart_lines(cart: selectors.CartSummary, *, numbered: bool) -> str:
    return "\n".join(
        f"{f'{n}.' if numbered else '•'} {line.quantity} × {line.name} — {money(line.line_total)}"
        for n, line in enumerate(cart.lines, 1)
    )


def _quote(cart: selectors.CartSummary) -> list[list[Any]]:
    return [[line.product_id, line.quantity, str(line.unit_price)] for line in cart.lines]


def _local_date(moment: datetime) -> str:
    return date_format(timezone.localtime(moment), "SHORT_DATE_FORMAT")
