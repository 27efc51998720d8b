"""``tongdai webhook ...`` run in-process against a real database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.cli.runner import Run, cli_runner

from tongdai.keys import store_key
from tongdai.settings import Settings
from tongdai.store.sql import open_store
from tongdai.webhooks.store import Attempt, NewDelivery


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> Run:
    return cli_runner(monkeypatch, tmp_path, capsys, unset=(
        "TONGDAI_DATABASE_URL", "TONGDAI_CONFIG", "TONGDAI_WEBHOOK_ALLOW_PRIVATE"))


def _json(run: Run, *argv: str) -> Any:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_add_shows_the_secret_once_and_the_rest_manage_the_webhook(
    run: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _json(run, "app", "create", "acme")["app_id"]
    # The only receiver here would be on loopback: refused without the setting.
    code, _, err = run("webhook", "add", "--app", app, "http://127.0.0.1:9/hook")
    assert code == 1
    assert "loopback" in err and "TONGDAI_WEBHOOK_ALLOW_PRIVATE" in err
    code, _, err = run("webhook", "add", "--app", app, "ftp://example.com/x")
    assert code == 1 and "https://" in err
    monkeypatch.setenv("TONGDAI_WEBHOOK_ALLOW_PRIVATE", "true")
    code, _, err = run("webhook", "add", "--app", app, "http://127.0.0.1:9/h", "--events",
                       "call.*,Bad Binding")
    assert code == 1 and "'bad binding' is not an event binding" in err
    added = _json(run, "webhook", "add", "--app", app, "http://127.0.0.1:9/hook",
                  "--events", "call.*, device.registered")
    wid, secret = added["webhook_id"], added["secret"]
    assert secret.startswith("whsec_") and added["events"] == "call.*,device.registered"
    code, out, _ = run("webhook", "list")
    assert code == 0 and wid in out and secret not in out
    [listed] = _json(run, "webhook", "list", "--app", app)
    assert "secret" not in listed and listed["enabled"] is True
    off = _json(run, "webhook", "disable", wid)
    assert off["enabled"] is False and off["disabled_reason"]
    on = _json(run, "webhook", "enable", wid, "--app", app)
    assert on["enabled"] is True and on["failures"] == 0
    code, _, err = run("webhook", "enable", wid, "--app", "another")
    assert code == 1 and "does not exist" in err
    assert _json(run, "webhook", "deliveries", "--app", app) == []
    assert _json(run, "webhook", "remove", wid) == {"removed": wid}
    assert _json(run, "webhook", "list") == []


def test_deliveries_show_status_attempts_and_last_error_and_redeliver_requeues(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("TONGDAI_WEBHOOK_ALLOW_PRIVATE", "true")
    app = _json(run, "app", "create", "acme")["app_id"]
    wid = _json(run, "webhook", "add", "--app", app, "http://127.0.0.1:9/h")["webhook_id"]

    async def seed() -> None:
        s = Settings(data_dir=tmp_path / "data")
        st = await open_store(s.db_url, key=store_key(s.data_dir))
        try:
            await st.add_deliveries([NewDelivery(
                delivery_id="whd_1", endpoint_id=wid, event_id="evt_1",
                event_type="call.ended", order_key="call:c1", body="{}", created_at=1.0)],
                node="somewhere")
            [(d, _)] = await st.pending_deliveries(node="somewhere", now=2.0, limit=5)
            await st.record_attempts([Attempt(seq=d.seq, ok=False, at=2.0,
                                              error="HTTP 503")], [])
        finally:
            await st.close()
    asyncio.run(seed())
    [d] = _json(run, "webhook", "deliveries", "--webhook", wid, "--status", "pending")
    assert d["delivery_id"] == "whd_1" and d["status"] == "pending"
    assert d["attempts"] == 1 and d["last_error"] == "HTTP 503" and d["event"] == "call.ended"
    code, out, _ = run("webhook", "deliveries")
    assert code == 0 and "HTTP 503" in out and "whd_1" in out
    again = _json(run, "webhook", "redeliver", "whd_1")
    assert again["delivery_id"] == "whd_1" and again["status"] == "pending"
    code, _, err = run("webhook", "redeliver", "whd_nope")
    assert code == 1 and "webhook deliveries" in err
    code, _, err = run("webhook", "deliveries", "--limit", "0")
    assert code == 1 and "--limit" in err
