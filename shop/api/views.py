"""Thin API views: validate input, call a service or selector, describe the result."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from marketplace.lockout import LOCKED_OUT_CODE, cool_off_seconds, lockout_message
from shop import selectors, services
from shop.api.serializers import (
    IDEMPOTENCY_HEADER,
    CategorySerializer,
    IdempotencyKeySerializer,
    LockedOutSerializer,
    OrderCreateInputSerializer,
    OrderSerializer,
    OrderStatusInputSerializer,
    ProductSerializer,
    RegisterInputSerializer,
    RegisterOutputSerializer,
)
from shop.models import Category, Channel, Order, Product


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        request=RegisterInputSerializer,
        responses={201: RegisterOutputSerializer},
        summary="Create a shopper account and return its first token pair",
    )
    def post(self, request: Request) -> Response:
        payload = RegisterInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        customer = services.register_user(**payload.validated_data)
        user = customer.user
        refresh = RefreshToken.for_user(user)
        body = RegisterOutputSerializer(
            {
                "id": user.pk,
                "username": user.get_username(),
                "email": user.email,
                "name": customer.name,
                "access": str(refresh.access_token),
                "refresh": str(refresh),
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class TokenObtainView(TokenObtainPairView):
    """simplejwt's token pair behind django-axes: too many failures from one address or for one
    username get a 429 for the cool-off. (Axes flags the DRF request, which its middleware never
    sees, so the lockout is turned into an answer here.)"""

    @extend_schema(
        request=TokenObtainPairSerializer,
        responses={
            200: TokenObtainPairSerializer,
            401: OpenApiResponse(description="Wrong username or password"),
            429: OpenApiResponse(LockedOutSerializer, description="Too many failed logins"),
        },
        summary="Log in: a token pair for a username and password",
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            if not getattr(request, "axes_locked_out", False):
                raise
        return Response(
            {"detail": lockout_message(), "code": LOCKED_OUT_CODE},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(cool_off_seconds())},
        )


@extend_schema(
    request=TokenRefreshSerializer,
    responses={
        200: TokenRefreshSerializer,
        401: OpenApiResponse(description="The refresh token is bad, expired or already used"),
    },
    summary="A new token pair for a refresh token (which is used up)",
)
class TokenRotateView(TokenRefreshView):
    """simplejwt's refresh, its refusal documented: refresh tokens rotate, and a used one is
    blacklisted (SIMPLE_JWT)."""


class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """Categories that have something on sale."""

    permission_classes = [AllowAny]
    serializer_class = CategorySerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Category]:
        return selectors.categories_with_active_products()


class ProductFilter(django_filters.FilterSet):
    category = django_filters.ModelChoiceFilter(queryset=Category.objects.all())
    search = django_filters.CharFilter(method="filter_search", max_length=100)

    class Meta:
        model = Product
        fields = ["category", "search"]

    def filter_search(
        self, queryset: QuerySet[Product], name: str, value: str
    ) -> QuerySet[Product]:
        return selectors.matching_text(queryset, text=value)


class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """Products on sale: ``category`` (id) and ``search`` filter; ``page_size`` pages."""

    permission_classes = [AllowAny]
    serializer_class = ProductSerializer
    filterset_class = ProductFilter

    def get_queryset(self) -> QuerySet[Product]:
        return selectors.active_products()


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's own orders (staff: every order). Another customer's order is a 404."""

    serializer_class = OrderSerializer

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return Order.objects.none()
        return selectors.orders_visible_to(user=self.request.user)

    @extend_schema(
        request=OrderCreateInputSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Any string of yours naming this order (at most 200 characters, "
                "say a UUID): sent again, for instance after a timeout or a 503, it answers "
                "the order it placed the first time (with `Idempotent-Replayed: true`) "
                "instead of placing a second one.",
            )
        ],
        responses={
            201: OrderSerializer,
            400: OpenApiResponse(description="Malformed body or unavailable product"),
            409: OpenApiResponse(description="Not enough stock; names every product short"),
        },
    )
    def create(self, request: Request) -> Response:
        key = IdempotencyKeySerializer(data={"key": request.headers.get(IDEMPOTENCY_HEADER)})
        key.is_valid(raise_exception=True)
        payload = OrderCreateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        customer = services.get_or_create_customer(
            user=request.user, name=request.user.get_full_name()
        )
        order_fields = {
            "customer": customer,
            "items": [
                services.OrderItem(product_id=item["product"], quantity=item["quantity"])
                for item in data["items"]
            ],
            "channel": Channel.WEB,
            "payment_method": data["payment_method"],
            "delivery_address": data["delivery_address"],
            "placed_by": request.user,
        }
        headers = {}
        if key.validated_data["key"]:
            # The key is the client's, so it is kept per user: two clients cannot collide.
            source = f"api:{request.user.pk}:{key.validated_data['key']}"
            order, placed_now = services.place_order_once(source_message=source, **order_fields)
            if not placed_now:
                headers["Idempotent-Replayed"] = "true"
        else:
            order = services.place_order(**order_fields)
        order = self.get_queryset().get(pk=order.pk)
        return Response(
            OrderSerializer(order).data, status=status.HTTP_201_CREATED, headers=headers
        )

    @extend_schema(
        request=OrderStatusInputSerializer,
        responses={
            200: OrderSerializer,
            409: OpenApiResponse(description="The workflow does not allow that move"),
        },
        summary="Move an order to another status (staff only)",
    )
    @action(detail=True, methods=["post"], url_path="status", permission_classes=[IsAdminUser])
    def change_status(self, request: Request, pk: str | None = None) -> Response:
        order = self.get_object()
        payload = OrderStatusInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.set_order_status(
            order_id=order.pk,
            status=payload.validated_data["status"],
            changed_by=request.user,
            source="api",
            note=payload.validated_data["note"],
        )
        return Response(OrderSerializer(self.get_queryset().get(pk=order.pk)).data)
