"""Settings come from the environment: safe to develop with none, strict in production."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from marketplace.settings import BASE_DIR

PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": "x7!k2#pQ9v@Lm4$wZ8^tR1&yB6*nC3(hF5)jD0_sG9+uE2=aK7-oI4~qW1|eT8",
    "ALLOWED_HOSTS": "loja.example.com",
    "DATABASE_URL": "postgres://shop:secret@db.example.com:5432/shop",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_check_deploy():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY is not set"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS is not set"),
    ],
)
def test_production_refuses_to_start_without(missing, message):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_misspelt_boolean_is_a_clear_error():
    result = run_manage("check", env={"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_shop_locale_and_clock():
    assert settings.LANGUAGE_CODE == "pt-br"
    assert "en" in dict(settings.LANGUAGES)
    assert settings.TIME_ZONE == "America/Sao_Paulo"
    assert settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


def test_a_separate_front_end_may_call_the_api(client, db):
    allowed = client.options(
        "/api/products/",
        HTTP_ORIGIN="http://localhost:5173",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:5173"
    foreign = client.get("/api/products/", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in foreign


def test_the_channel_layer_talks_through_redis(redis_url):
    layer = get_channel_layer()
    assert type(layer).__module__.startswith("channels_redis.")

    async def round_trip() -> dict:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "ping", "text": "olá 🛒"})
        return await layer.receive(channel)

    assert async_to_sync(round_trip)() == {"type": "ping", "text": "olá 🛒"}
