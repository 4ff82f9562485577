"""Input and output shapes of the REST API. Inputs validate; outputs only describe."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from shop.models import Category, Order, OrderLine, OrderStatus, PaymentMethod, Product
from shop.services import MAX_QUANTITY_PER_LINE

MAX_LINES_PER_ORDER = 100


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "slug"]


class ProductSerializer(serializers.ModelSerializer):
    category = CategorySerializer(read_only=True)
    in_stock = serializers.SerializerMethodField()
    image = serializers.ImageField(read_only=True, allow_null=True)  # null: no picture

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "description",
            "price",
            "stock",
            "in_stock",
            "category",
            "image",
        ]

    def get_in_stock(self, product: Product) -> bool:
        return product.stock > 0

    def to_representation(self, product: Product) -> dict:
        """The same fields and types as declared above, built directly.

        The catalog is the hottest read of the API (bench/api_products.py); DRF's field-by-field
        walk costs more than the queries here. tests/test_api.py checks both give the same body.
        """
        category = product.category
        request = self.context.get("request")
        image = product.image.url if product.image else None
        if image and request is not None:
            image = request.build_absolute_uri(image)
        return {
            "id": product.pk,
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "price": f"{product.price:.2f}",
            "stock": product.stock,
            "in_stock": product.stock > 0,
            "category": {"id": category.pk, "name": category.name, "slug": category.slug},
            "image": image,
        }


class RegisterInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=128, write_only=True, style={"input_type": "password"}
    )
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        user_model = get_user_model()
        user_model.username_validator(value)
        if user_model.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError(_("This username is already taken."))
        return value

    def validate(self, attrs: dict) -> dict:
        candidate = get_user_model()(username=attrs["username"], email=attrs.get("email", ""))
        try:
            validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class RegisterOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    # A plain string: "" when no address was given, which no "email" format accepts.
    email = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)
    access = serializers.CharField()
    refresh = serializers.CharField()


class LockedOutSerializer(serializers.Serializer):
    """Too many failed logins (django-axes): when to try again, in words."""

    detail = serializers.CharField()
    code = serializers.CharField()


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = ["product", "product_sku", "product_name", "unit_price", "quantity", "line_total"]


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    customer = serializers.CharField(source="customer_name", read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "status",
            "status_display",
            "channel",
            "customer",
            "payment_method",
            "delivery_address",
            "subtotal",
            "delivery_fee",
            "total",
            "created_at",
            "lines",
        ]


class OrderItemInputSerializer(serializers.Serializer):
    product = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY_PER_LINE)


IDEMPOTENCY_HEADER = "Idempotency-Key"


class IdempotencyKeySerializer(serializers.Serializer):
    key = serializers.CharField(
        max_length=200, required=False, allow_null=True, allow_blank=True, default=None
    )

    def validate_key(self, value: str | None) -> str | None:
        if not value:
            return None  # no key: an order like any other
        if not value.isprintable():
            raise serializers.ValidationError(_("Use printable characters only."))
        return value

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as refused:
            # Named as the client sent it: the header, not a field of the body.
            raise serializers.ValidationError({IDEMPOTENCY_HEADER: refused.detail["key"]}) from None


class OrderCreateInputSerializer(serializers.Serializer):
    items = OrderItemInputSerializer(many=True, allow_empty=False, max_length=MAX_LINES_PER_ORDER)
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    delivery_address = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )


class OrderStatusInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    note = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
