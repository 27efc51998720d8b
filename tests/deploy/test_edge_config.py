"""The edge's configuration (deploy/kamailio/tongdai-edge.cfg) as deploy/run fills it
in: every placeholder replaced, the dispatcher list in Kamailio's format, and Kamailio
itself accepting the result (``kamailio -c``; skipped without kamailio outside CI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tongdai.deploy.edge import CONFIG, dispatcher_list, render


def test_every_placeholder_is_filled_in(tmp_path: Path) -> None:
    text = render(CONFIG.read_text(), host="127.0.0.1", port=5999, ws_port=5998,
                  run_dir=tmp_path)
    assert "@" not in text.replace("sip:edge@tongdai.invalid", "")
    assert "listen=udp:127.0.0.1:5999" in text and "listen=tcp:127.0.0.1:5999" in text
    assert "listen=tcp:127.0.0.1:5998" in text and "$Rp == 5998" in text
    assert f'"{tmp_path}/dispatcher.list"' in text


def test_the_dispatcher_list_names_every_node_in_set_1() -> None:
    assert dispatcher_list(["127.0.0.1:5071", "10.0.0.2:5060"]) == (
        "1 sip:127.0.0.1:5071\n1 sip:10.0.0.2:5060\n")


def test_kamailio_accepts_the_configuration(tmp_path: Path) -> None:
    if shutil.which("kamailio") is None:
        if os.environ.get("CI"):
            pytest.fail("kamailio is not installed (.ci/run installs it)")
        pytest.skip("kamailio is not installed")
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render(CONFIG.read_text(), host="127.0.0.1", port=5999, ws_port=5998,
                          run_dir=tmp_path))
    (tmp_path / "dispatcher.list").write_text(dispatcher_list(["127.0.0.1:5071"]))
    res = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


def _block(text: str, opening: str) -> str:
    """The body of the route block that starts with ``opening`` (braces balanced)."""
    start = text.index(opening) + len(opening)
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    raise AssertionError(f"{opening} is not closed")


def test_a_busy_node_is_marked_down_by_its_probes_not_by_one_late_answer() -> None:
    text = CONFIG.read_text()
    threshold = re.search(r'modparam\("dispatcher", "ds_probing_threshold", (\d+)\)', text)
    assert threshold is not None and int(threshold.group(1)) >= 3
    failed = _block(text, "failure_route[NODE_FAILED] {")
    marks = [line for line in failed.splitlines() if "ds_mark_dst" in line]
    assert len(marks) == 1  # in the branch of a 503 only, not of a timeout or a 500
    before_mark = failed[:failed.index("ds_mark_dst")].splitlines()[-2]
    assert 't_check_status("503")' in before_mark and "timeout" not in before_mark


def test_a_register_is_never_moved_to_another_node() -> None:
    route = _block(CONFIG.read_text(), "request_route {")
    register = _block(route, 'if (is_method("REGISTER")) {\n        # No failover')
    assert "t_on_failure" not in register and "t_set_fr(" in register
    assert route.count('t_on_failure("NODE_FAILED")') == 1
