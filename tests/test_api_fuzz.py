"""Schemathesis against the running API, a short run of reliability/api_fuzz.py (the script's
own run takes 500 examples per operation: docs/reliability.md)."""

from __future__ import annotations

import pytest

from tests.live import run_reliability_script


@pytest.mark.slow
def test_the_api_answers_every_generated_request_within_its_schema(tmp_path):
    result, doc = run_reliability_script(
        "api_fuzz", "--examples", "15", "--database-name", "marketplace_api_fuzz_ci",
        folder=tmp_path, timeout=400,
    )  # fmt: skip
    assert result["passed"] and result["server_5xx_logged"] == 0
    assert {"POST /api/orders/", "GET /api/orders/{id}/", "POST /api/auth/token/"} <= set(
        result["operations"]
    )
    assert all(not run["failures"] for run in result["runs"].values())
    assert "API fuzzing with schemathesis: **passed**" in doc
