"""A believable Brazilian demo catalog and a staff login (``manage.py seed_demo``, ``make run``)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from shop.models import Category, Product

# (slug, name, [(sku, name, price, stock, description), ...])
DEMO_CATALOG: list[tuple[str, str, list[tuple[str, str, str, int, str]]]] = [
    (
        "roupas",
        "Roupas",
        [
            (
                "ROU-001",
                "Camisa Azul Algodão",
                "79.90",
                25,
                "Camisa social de algodão, azul-clara.",
            ),
            ("ROU-002", "Camiseta Básica Branca", "39.90", 60, "Malha 100% algodão, gola careca."),
            ("ROU-003", "Calça Jeans Tradicional", "149.90", 18, "Jeans azul-escuro, corte reto."),
            (
                "ROU-004",
                "Vestido Floral de Verão",
                "129.00",
                12,
                "Viscose leve com estampa floral.",
            ),
            (
                "ROU-005",
                "Bermuda de Sarja Cáqui",
                "89.90",
                20,
                "Sarja com elastano, quatro bolsos.",
            ),
            ("ROU-006", "Jaqueta Corta-Vento", "199.00", 8, "Impermeável, com capuz embutido."),
            (
                "ROU-007",
                "Meia Esportiva (3 pares)",
                "29.90",
                100,
                "Cano médio, algodão e poliamida.",
            ),
        ],
    ),
    (
        "calcados",
        "Calçados",
        [
            (
                "CAL-001",
                "Tênis de Corrida Leve",
                "299.90",
                15,
                "Amortecimento em EVA, tamanhos 34 a 44.",
            ),
            ("CAL-002", "Chinelo de Borracha", "34.90", 80, "O clássico brasileiro, várias cores."),
            (
                "CAL-003",
                "Sandália de Couro Artesanal",
                "119.00",
                10,
                "Couro legítimo feito no Ceará.",
            ),
            ("CAL-004", "Bota de Camurça", "349.00", 6, "Cano curto, solado antiderrapante."),
            ("CAL-005", "Sapatênis Casual", "189.90", 14, "Lona e couro sintético."),
        ],
    ),
    (
        "cozinha",
        "Cozinha",
        [
            (
                "COZ-001",
                "Panela de Pressão 4,5 L",
                "159.90",
                9,
                "Alumínio polido, válvula de segurança.",
            ),
            (
                "COZ-002",
                "Cafeteira Italiana (6 xícaras)",
                "99.90",
                16,
                "Alumínio, para fogão a gás.",
            ),
            ("COZ-003", "Jogo de Facas Inox (5 peças)", "139.00", 11, "Com cepo de madeira."),
            ("COZ-004", "Tábua de Corte de Bambu", "49.90", 30, "Bambu natural, 40 × 25 cm."),
            ("COZ-005", "Garrafa Térmica 1 L", "69.90", 22, "Mantém o café quente por 12 horas."),
            ("COZ-006", "Forma de Pão de Queijo", "39.00", 25, "Antiaderente, 12 cavidades."),
        ],
    ),
    (
        "mercearia",
        "Mercearia",
        [
            (
                "MER-001",
                "Café Torrado e Moído 500 g",
                "24.90",
                120,
                "Café do Sul de Minas, torra média.",
            ),
            ("MER-002", "Açúcar Mascavo 1 kg", "12.50", 70, "Orgânico, sem refino."),
            ("MER-003", "Doce de Leite Mineiro 400 g", "18.90", 45, "Cremoso, receita da fazenda."),
            ("MER-004", "Castanha-do-Pará 200 g", "32.00", 35, "Castanhas selecionadas do Pará."),
            ("MER-005", "Mel Silvestre 500 g", "29.90", 28, "Mel puro de florada silvestre."),
            ("MER-006", "Goiabada Cascão 600 g", "16.90", 50, "Feita no tacho de cobre."),
            ("MER-007", "Farinha de Mandioca Torrada 1 kg", "9.90", 90, "Farinha fina e crocante."),
        ],
    ),
    (
        "eletronicos",
        "Eletrônicos",
        [
            ("ELE-001", "Fone de Ouvido Bluetooth", "179.90", 20, "Até 20 horas de bateria."),
            (
                "ELE-002",
                "Carregador Turbo USB-C 20 W",
                "89.00",
                40,
                "Compatível com a maioria dos celulares.",
            ),
            ("ELE-003", "Caixa de Som Portátil", "229.00", 10, "À prova d'água, Bluetooth 5.3."),
            ("ELE-004", "Cabo USB-C Reforçado 2 m", "39.90", 75, "Trançado em nylon."),
            (
                "ELE-005",
                "Lâmpada Inteligente Wi-Fi",
                "59.90",
                33,
                "Controle pelo celular, 16 milhões de cores.",
            ),
        ],
    ),
    (
        "beleza",
        "Beleza e Cuidados",
        [
            (
                "BEL-001",
                "Sabonete de Açaí (3 unidades)",
                "27.90",
                55,
                "Vegetal, feito na Amazônia.",
            ),
            ("BEL-002", "Protetor Solar FPS 50", "64.90", 26, "Toque seco, 200 ml."),
            ("BEL-003", "Óleo de Coco Extravirgem 200 ml", "34.90", 40, "Para pele e cabelos."),
            ("BEL-004", "Escova de Cabelo de Bambu", "44.90", 18, "Cerdas macias, cabo ecológico."),
        ],
    ),
]

STAFF_USERNAME = "admin"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str | None  # None when the owner has changed it since it was printed
    created: bool


@dataclass(frozen=True)
class DemoResult:
    categories_created: int
    products_created: int
    login: DemoLogin


def _password_file() -> Path:
    return settings.VAR_DIR / "demo-admin-password.txt"


def ensure_demo_staff() -> DemoLogin:
    """A superuser ``admin``; its password is generated once, kept in var/, printed each run."""
    user_model = get_user_model()
    path = _password_file()
    stored = path.read_text().strip() if path.exists() else ""
    user = user_model.objects.filter(username=STAFF_USERNAME).first()
    if user is None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or stored or secrets.token_urlsafe(12)
        user_model.objects.create_superuser(
            username=STAFF_USERNAME, email="admin@example.com", password=password
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return DemoLogin(username=STAFF_USERNAME, password=password, created=True)
    if stored and user.check_password(stored):
        return DemoLogin(username=STAFF_USERNAME, password=stored, created=False)
    return DemoLogin(username=STAFF_USERNAME, password=None, created=False)


def seed_demo() -> DemoResult:
    """Load the demo catalog; rows that exist (by slug and SKU) are left as the owner has them."""
    categories_created = products_created = 0
    with transaction.atomic():
        for position, (slug, name, products) in enumerate(DEMO_CATALOG):
            category, created = Category.objects.get_or_create(
                slug=slug, defaults={"name": name, "position": position}
            )
            categories_created += created
            for sku, product_name, price, stock, description in products:
                _product, created = Product.objects.get_or_create(
                    sku=sku,
                    defaults={
                        "category": category,
                        "name": product_name,
                        "price": Decimal(price),
                        "stock": stock,
                        "description": description,
                    },
                )
                products_created += created
        login = ensure_demo_staff()
    return DemoResult(
        categories_created=categories_created, products_created=products_created, login=login
    )
