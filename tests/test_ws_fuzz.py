"""Hostile websocket clients against the shop's server, a short run of reliability/ws_fuzz.py (the
script's own run lasts a minute with 3,000 connects: docs/reliability.md)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.live import run_reliability_script


@pytest.mark.slow
def test_garbage_huge_frames_floods_and_churn_leave_honest_dashboards_served(tmp_path):
    # A Redis database of its own on the test run's Redis server: the script flushes it.
    redis_url = urlunsplit(urlsplit(settings.REDIS_URL)._replace(path="/7"))
    result, _ = run_reliability_script(
        "ws_fuzz", "--duration", "6", "--honest", "10", "--garbage", "15", "--floods", "3",
        "--churn", "300", "--redis-url", redis_url, folder=tmp_path, timeout=300,
    )  # fmt: skip
    assert result["passed"], result["failures"]
    assert result["honest_lost_events"] == 0 and result["published"] >= 25
    assert result["garbage_frames_sent"] == result["garbage_frames_answered"] > 100
    assert result["flood_close_codes"] == {"4008": 3}
    assert result["churn"] == {"closed": 150, "dropped": 150}
    assert result["server_alive"] and result["http_answers_after"]
