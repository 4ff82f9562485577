"""Turns the shop's domain errors into API answers; everything else is DRF's default handling."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
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


class ShopJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested deeper than Python's JSON decoder goes ("[[[[…",
    a few kilobytes are enough) refused as a 400 like any other bad JSON, not a 500."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: dict | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
