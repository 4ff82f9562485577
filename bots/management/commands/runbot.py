"""``manage.py runbot whatsapp|telegram``: a chat channel's bot, until SIGINT or SIGTERM.

manage.py runbot whatsapp [--url URL] [--profile-dir DIR] [--headed]
manage.py runbot telegram [--webhook]
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TELEGRAM_API = "https://api.telegram.org"


class Command(BaseCommand):
    help = "Run a chat channel's bot: whatsapp (WhatsApp Web in Chromium) or telegram."

    def add_arguments(self, parser) -> None:
        parser.add_argument("service", choices=["whatsapp", "telegram"])
        parser.add_argument(
            "--webhook",
            action="store_true",
            help="telegram: take updates from the webhook view (TELEGRAM_WEBHOOK_URL)",
        )
        parser.add_argument("--url", help="whatsapp: the WhatsApp Web address (WHATSAPP_WEB_URL)")
        parser.add_argument(
            "--profile-dir", help="whatsapp: Chromium's profile, where the login is kept"
        )
        parser.add_argument("--headed", action="store_true", help="whatsapp: show the browser")

    def handle(self, *args, service: str, webhook: bool, **options) -> None:
        if service == "whatsapp":
            asyncio.run(
                self._run_whatsapp(
                    url=options["url"] or settings.WHATSAPP_WEB_URL,
                    profile_dir=Path(options["profile_dir"] or settings.WHATSAPP_PROFILE_DIR),
                    headed=options["headed"],
                )
            )
            return
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

    async def _run_whatsapp(self, *, url: str, profile_dir: Path, headed: bool) -> None:
        from bots.adapters.whatsapp.bot import WhatsAppBot

        bot = WhatsAppBot(
            url=url,
            profile_dir=profile_dir,
            headed=headed,
            unknown_page_grace=settings.WHATSAPP_UNKNOWN_PAGE_SECONDS,
            chromium_budget_mb=settings.WHATSAPP_CHROMIUM_MAX_MB,
            memory_check_s=settings.WHATSAPP_MEMORY_CHECK_SECONDS,
            page_heap_growth_mb=settings.WHATSAPP_PAGE_HEAP_GROWTH_MB,
        )
        await bot.run(_stop_on_signal())

    async def _run(self, *, webhook: bool) -> None:
        from bots.adapters.telegram import TelegramBot

        stop = _stop_on_signal()
        bot = TelegramBot(
            token=settings.TELEGRAM_BOT_TOKEN,
            api_url=settings.TELEGRAM_API_URL,
            webhook=webhook,
            poll_timeout=settings.TELEGRAM_POLL_TIMEOUT,
            max_backoff=settings.TELEGRAM_MAX_BACKOFF,
        )
        await bot.run(stop)


def _stop_on_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so the bot closes its browser or connections cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop
