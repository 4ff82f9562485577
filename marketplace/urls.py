from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bots import views as bots_views
from realtime.views import DashboardView, ServiceStatusView

admin.autodiscover()  # here, not at start-up (SimpleAdminConfig): see INSTALLED_APPS
admin.site.site_header = admin.site.site_title = settings.SHOP_NAME

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("admin/", admin.site.urls),
    path("dashboard/", DashboardView.as_view(), name="dashboard"),
    path("api/services/", ServiceStatusView.as_view(), name="api-services"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("shop.api.urls")),
    path(
        "bots/telegram/webhook/<str:secret>/",
        bots_views.telegram_webhook,
        name="telegram-webhook",
    ),
]

# Under /api/ a client reads JSON, also when no URL matched or the server failed.
handler404 = "marketplace.errors.not_found"
handler500 = "marketplace.errors.server_error"

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
