"""The Telegram webhook: Telegram POSTs updates here when the bot runs with ``--webhook``.

The view only checks that the request is Telegram's (the secret in the path and in the
``X-Telegram-Bot-Api-Secret-Token`` header) and queues the update in Redis for the running bot;
an answer other than 200 makes Telegram deliver it again later, so nothing is lost.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from bots.state import TELEGRAM_WEBHOOK_QUEUE, redis_client

logger = logging.getLogger(__name__)

MAX_UPDATE_BYTES = 1024 * 1024


@csrf_exempt
@require_POST
def telegram_webhook(request: HttpRequest, secret: str) -> HttpResponse:
    expected = settings.TELEGRAM_WEBHOOK_SECRET
    header = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not expected or not (
        hmac.compare_digest(secret, expected) and hmac.compare_digest(header, expected)
    ):
        return JsonResponse({"detail": "Not Telegram."}, status=403)
    if len(request.body) > MAX_UPDATE_BYTES:
        return JsonResponse({"detail": "Update too large."}, status=413)
    try:
        update = json.loads(request.body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested deeper than Python goes
        return JsonResponse({"detail": "The body is not JSON."}, status=400)
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return JsonResponse({"detail": "Not a Telegram update."}, status=400)
    try:
        redis_client().lpush(TELEGRAM_WEBHOOK_QUEUE, json.dumps(update))
    except RedisError:
        logger.warning("Telegram update %s not queued: Redis unavailable", update["update_id"])
        return JsonResponse({"detail": "Try again later."}, status=503)
    return JsonResponse({"ok": True})
