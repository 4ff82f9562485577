"""The shop's URLs plus a bare Django view of the same 20 products (bench/api_products.py)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from marketplace.urls import urlpatterns as shop_urlpatterns
from shop.models import Product

FIELDS = ["id", "sku", "name", "description", "price", "stock", "image"]


def bare_products(request: HttpRequest) -> JsonResponse:
    """What the API's first page holds, built by hand: no DRF, no serializer, no count query."""
    rows = (
        Product.objects.filter(is_active=True)
        .select_related("category")
        .order_by("name", "pk")[:20]
    )
    results = [
        {
            **{field: getattr(product, field) for field in FIELDS},
            "price": str(product.price),
            "image": product.image.url if product.image else None,
            "in_stock": product.stock > 0,
            "category": {
                "id": product.category.pk,
                "name": product.category.name,
                "slug": product.category.slug,
            },
        }
        for product in rows
    ]
    return JsonResponse({"results": results})


urlpatterns = [path("bench/bare-products/", bare_products), *shop_urlpatterns]
