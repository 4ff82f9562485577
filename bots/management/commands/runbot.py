"""``manage.py runbot telegram [--webhook]``: a chat channel's bot, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TELEGRAM_API = "https://api.telegram.org"


class Command(BaseCommand):
    help = "Run a chat channel's bot: telegram (WhatsApp comes with its own issue)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("service", choices=["telegram"])
        parser.add_argument(
            "--webhook",
            action="store_true",
            help="take updates from the webhook view (TELEGRAM_WEBHOOK_URL) instead of polling",
        )

    def handle(self, *args, service: str, webhook: bool, **options) -> None:
        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError(
                "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token "
                "in the environment."
            )
        if webhook and not (settings.TELEGRAM_WEBHOOK_URL and settings.TELEGRAM_WEBHOOK_SECRET):
            raise CommandError(
                "--webhook needs TELEGRAM_WEBHOOK_URL (this site's public https address) and "
                "TELEGRAM_WEBHOOK_SECRET."
            )
        asyncio.run(self._run(webhook=webhook))

    async def _run(self, *, webhook: bool) -> None:
        from bots.adapters.telegram import TelegramBot

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        bot = TelegramBot(
            token=settings.TELEGRAM_BOT_TOKEN,
            api_url=settings.TELEGRAM_API_URL,
            webhook=webhook,
            poll_timeout=settings.TELEGRAM_POLL_TIMEOUT,
            max_backoff=settings.TELEGRAM_MAX_BACKOFF,
        )
        await bot.run(stop)
