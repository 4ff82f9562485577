"""The realtime pieces a person or a script meets outside the socket: the page, the REST view,
flood control, the QR rendering."""

from __future__ import annotations

import pytest

from realtime import status
from realtime.bots import qr_svg
from realtime.flood import FloodGuard
from tests.conftest import client_for


def test_flood_guard_allows_a_steady_pace_and_refuses_a_sustained_flood():
    now = [0.0]
    guard = FloodGuard(clock=lambda: now[0])
    for _ in range(600):  # 15 frames a second for 40 s
        now[0] += 1 / 15
        assert guard.allow()
    assert not guard.should_close
    now[0] += 1  # a pause refills the bucket
    burst = [guard.allow() for _ in range(25)]  # 25 at one instant: 20 pass
    assert burst.count(True) == 20
    for _ in range(100):  # 100 frames a second, sustained
        now[0] += 0.01
        guard.allow()
    assert guard.should_close


def test_the_qr_svg_is_a_standalone_svg_document():
    svg = qr_svg("2@AbCdEf123==,xyz,abc==")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg  # else no browser draws it as an image
    assert "<script" not in svg
    assert qr_svg("2@other") != svg


@pytest.mark.django_db
def test_the_dashboard_page_loads_its_own_assets_only(client):
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "dashboard.js" in html and "dashboard.css" in html
    assert "https://" not in html and "http://" not in html
    import re

    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset


@pytest.mark.django_db
def test_service_statuses_over_rest_are_for_staff(api, make_user, staff_user, redis_url):
    assert api.get("/api/services/").status_code == 401
    assert client_for(make_user("cliente")).get("/api/services/").status_code == 403
    status.heartbeat("WhatsApp")
    try:
        status.set_status("WhatsApp", status.CONNECTED)
        body = client_for(staff_user).get("/api/services/").json()
        assert body["WhatsApp"]["status"] == 200 and body["WhatsApp"]["since"]
        assert body["Telegram"]["status"] == 403
    finally:
        status.clear_heartbeat("WhatsApp")
        status.set_status("WhatsApp", status.DISCONNECTED)


@pytest.mark.django_db
def test_a_stopped_redis_gets_a_clear_503_over_rest(staff_user, settings):
    from tests.live import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    status._sync_client.cache_clear()
    try:
        response = client_for(staff_user).get("/api/services/")
    finally:
        status._sync_client.cache_clear()
    assert response.status_code == 503
    assert "indisponíveis" in response.json()["detail"]
