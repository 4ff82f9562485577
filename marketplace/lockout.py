"""What a locked-out login sees (django-axes): the API's JSON error, or a page for the admin."""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

LOCKED_OUT_CODE = "too_many_login_attempts"


def cool_off_seconds() -> int:
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    return max(1, math.ceil(cool_off.total_seconds()))


def lockout_message() -> str:
    minutes = max(1, math.ceil(cool_off_seconds() / 60))
    return ngettext(
        "Too many failed logins. Try again in %(minutes)d minute.",
        "Too many failed logins. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: the admin's login form, and any other login through
    a plain Django request."""
    detail = lockout_message()
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": detail, "code": LOCKED_OUT_CODE}, status=status
        )
    else:
        response = render(
            request,
            "marketplace/locked_out.html",
            {"detail": detail, "title": _("Login blocked")},
            status=status,
        )
    # The whole cool-off: a client that retries sooner is refused again (and it is not extended).
    response["Retry-After"] = str(cool_off_seconds())
    return response
