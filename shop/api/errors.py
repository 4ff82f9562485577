"""Turns the shop's domain errors into API answers; everything else is DRF's default handling."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler

from shop.errors import IllegalStatusTransition, InsufficientStock, ShopError

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5

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
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is restarting or unreachable. Each operation is one transaction, so it
        # was written whole or not at all; a failure at the commit itself cannot say which.
        logger.warning(
            "database unavailable: %s", str(exc).strip().splitlines()[0] if str(exc) else exc
        )
        body = {"detail": _("The database is unavailable; try again in a moment."),
                "code": "database_unavailable"}  # fmt: skip
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
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
