"""``make run``: the whole product on one machine with embedded defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from marketplace.local_redis import RedisUnavailable, ensure_redis
from marketplace.processes import asgi_server_command, stop_process
from marketplace.settings import env_bool
from shop.demo import seed_demo


class Command(BaseCommand):
    help = (
        "Run the whole product locally: Redis (a private one if none answers), migrations, "
        "the demo catalog and the ASGI server (uvicorn)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, host: str, port: int, **options) -> None:
        try:
            private_redis = ensure_redis(settings.REDIS_URL)
        except RedisUnavailable as exc:
            raise CommandError(str(exc)) from exc
        children: list[subprocess.Popen] = [private_redis] if private_redis else []
        try:
            call_command("migrate", interactive=False, verbosity=0)
            demo = seed_demo()
            server = subprocess.Popen(
                asgi_server_command(host=host, port=port),
                env={**os.environ, "REDIS_URL": settings.REDIS_URL},
            )
            children.append(server)
            whatsapp = self._whatsapp_note()
            if whatsapp.startswith("running"):
                children.append(
                    subprocess.Popen(
                        [sys.executable, "manage.py", "runbot", "whatsapp"],
                        env={**os.environ, "REDIS_URL": settings.REDIS_URL},
                    )
                )
            if settings.TELEGRAM_BOT_TOKEN:
                children.append(
                    subprocess.Popen(
                        [sys.executable, "manage.py", "runbot", "telegram"],
                        env={**os.environ, "REDIS_URL": settings.REDIS_URL},
                    )
                )
            self._print_banner(host, port, demo.login, private_redis is not None, whatsapp)
            self._stop_server_on_signal(server)
            server.wait()
        finally:
            for child in reversed(children):
                stop_process(child)

    @staticmethod
    def _whatsapp_note() -> str:
        from bots.adapters.whatsapp.browser import find_binary

        if not env_bool("WHATSAPP_BOT", True):
            return "off (WHATSAPP_BOT=false)"
        if not find_binary("CHROME_BINARY", "chromium", "chromium-browser", "google-chrome"):
            return "off (no Chromium found: apt-get install chromium chromium-driver)"
        return f'running ({settings.WHATSAPP_WEB_URL}; "Gerar sessão" on the dashboard)'

    def _print_banner(
        self, host: str, port: int, login, private_redis: bool, whatsapp: str
    ) -> None:
        base = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"
        password = login.password or "(changed by you since it was generated)"
        redis_note = " (private, started for this run)" if private_redis else ""
        lines = [
            "",
            f"Marketplace Bot is running at {base}/",
            f"  Dashboard (live):    {base}/dashboard/",
            f"  Admin (back office): {base}/admin/",
            f"  API docs:            {base}/api/docs/",
            f"  API schema:          {base}/api/schema/",
            f"  Staff login:         {login.username} / {password}",
            f"  Database:            {settings.DATABASES['default']['NAME']}",
            f"  Redis:               {settings.REDIS_URL}{redis_note}",
            f"  WhatsApp bot:        {whatsapp}",
            "  Telegram bot:        "
            + (
                "running (TELEGRAM_BOT_TOKEN)"
                if settings.TELEGRAM_BOT_TOKEN
                else "off (set TELEGRAM_BOT_TOKEN to run it)"
            ),
            '  Test the chat bot:   the dashboard\'s "Testar o bot" panel',
            "Press Ctrl+C to stop.",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    @staticmethod
    def _stop_server_on_signal(server: subprocess.Popen) -> None:
        """Ctrl+C or SIGTERM stops the server; the ``finally`` above then stops the bots and,
        last, the private Redis they report to (stopped first, it made them print tracebacks)."""

        def stop(signum: int, frame) -> None:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
