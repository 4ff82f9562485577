"""Turns the shop's domain errors into API answers; everything else is DRF's default handling."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from shop.errors import IllegalStatusTransition, InsufficientStock, ShopError

# Refusals caused by the current state of the shop (stock, workflow) rather than by the request.
CONFLICTS = (InsufficientStock, IllegalStatusTransition)


def shop_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ShopError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if isinstance(exc, InsufficientStock):
            body["shortages"] = [asdict(shortage) for shortage in exc.shortages]
        code = (
            status.HTTP_409_CONFLICT if isinstance(exc, CONFLICTS) else status.HTTP_400_BAD_REQUEST
        )
        return Response(body, status=code)
    return exception_handler(exc, context)
