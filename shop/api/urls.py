from django.urls import include, path
from rest_framework.routers import DefaultRouter

from shop.api.views import (
    CategoryViewSet,
    OrderViewSet,
    ProductViewSet,
    RegisterView,
    TokenObtainView,
    TokenRotateView,
)

router = DefaultRouter()
router.register("categories", CategoryViewSet, basename="category")
router.register("products", ProductViewSet, basename="product")
router.register("orders", OrderViewSet, basename="order")

urlpatterns = [
    path("auth/register/", RegisterView.as_view(), name="auth-register"),
    path("auth/token/", TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/refresh/", TokenRotateView.as_view(), name="auth-token-refresh"),
    path("", include(router.urls)),
]
