"""A stand-in bot for tests: the real ``BotLink`` with a scripted bot behind it.

    python -m tests.fake_bot SERVICE [--status 200] [--qr PAYLOAD ...] [--qr-interval 1.0]

It reports ``--status``, prints "ready", and then prints every command that reaches it as a JSON
line and answers the dashboard: ``generate_session`` → status 102 and each ``--qr`` payload in
turn; ``logout_session`` → status 403. SIGTERM ends it politely (403); SIGKILL silently.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

import django


async def run(args: argparse.Namespace) -> None:
    from realtime.bots import BotLink
    from realtime.status import AUTHENTICATING, DISCONNECTED

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with BotLink(args.service) as link:
        await link.set_status(args.status)
        print("ready", flush=True)

        async def answer() -> None:
            async for command, data in link.commands():
                # Tests read what reached the bot from its output, one JSON line a command.
                print(
                    json.dumps({"command": command, "data": data}, ensure_ascii=False), flush=True
                )
                if command == "generate_session":
                    await link.set_status(AUTHENTICATING)
                    for payload in args.qr:
                        await link.publish_qr(payload)
                        await asyncio.sleep(args.qr_interval)
                elif command == "logout_session":
                    await link.set_status(DISCONNECTED)

        answering = asyncio.create_task(answer())
        await stop.wait()
        answering.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("service")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--qr", nargs="*", default=[])
    parser.add_argument("--qr-interval", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    django.setup()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
