"""The dashboard page and the REST view of the services' statuses."""

from __future__ import annotations

from django.conf import settings
from django.views.generic import TemplateView
from drf_spectacular.utils import extend_schema, inline_serializer
from redis.exceptions import RedisError
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime import status


class DashboardView(TemplateView):
    """The page only; everything it shows comes through the API and the socket, for staff."""

    template_name = "realtime/dashboard.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "shop_name": settings.SHOP_NAME,
                "services": list(status.SERVICES)}  # fmt: skip


class ServiceStatusView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        responses=inline_serializer(
            "ServiceStatuses",
            {
                name: inline_serializer(
                    f"ServiceStatus{name}",
                    {
                        "status": serializers.IntegerField(),
                        "since": serializers.DateTimeField(allow_null=True),
                        "detail": serializers.CharField(),
                    },
                )
                for name in status.SERVICES
            },
        ),
        summary="Status of each bot service, with since when (staff only)",
    )
    def get(self, request: Request) -> Response:
        try:
            states = status.get_states()
        except RedisError:
            return Response(
                {"detail": "Os status dos serviços estão indisponíveis agora; tente de novo."},
                status=503,
            )
        return Response({name: state.as_dict() for name, state in states.items()})
