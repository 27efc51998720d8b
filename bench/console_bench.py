"""Benchmark: the console's page loads and its live-update latency, in Debian's chromium.

    python bench/console_bench.py [--toggles 20] [--loads 5]

Starts tongdai (SQLite, loopback), signs in to /console with an admin key, and times
each page's load (navigation start to the end of the load event): the first load, then
the median of ``--loads`` reloads. Then a baresip softphone registers and unregisters (quits)
``--toggles`` times while the devices page is open; each change is timed from the
event's time on the server to the badge changing on screen (p50, p95, max), beside the
anchor measured in the same run: from the event's time to its arrival in the page over
the websocket. Needs chromium, baresip and the playwright package (.ci/run installs
them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import Phones, make_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = ("/console/", "/console/devices", "/console/calls", "/console/webhooks")
LOAD_JS = ("() => { const n = performance.getEntriesByType('navigation')[0];"
           " return n.loadEventEnd - n.startTime; }")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(p * len(ordered)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toggles", type=int, default=20)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = make_server(Path(tmp))
        server.start()
        phones = Phones(Path(tmp) / "phones", {"tone440": _tone(Path(tmp))})
        try:
            app_id = server.cli("app", "create", "bench")["app_id"]
            server.cli("device", "add", "--app", app_id, "alice", "--password",
                       "alice-secret-pw", "--extension", "101")
            key = server.cli("admin-key", "create")["key"]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=ARGS)
                page = browser.new_page()
                page.goto(f"{server.http}/console/signin")
                page.fill("#key", key)
                page.click("#key-submit")
                page.wait_for_selector("#live-status.on")
                print("page            first ms   reload median ms")
                for path in PAGES:
                    page.goto(f"{server.http}{path}")
                    first = float(page.evaluate(LOAD_JS))
                    again = []
                    for _ in range(args.loads):
                        page.reload()
                        again.append(float(page.evaluate(LOAD_JS)))
                    print(f"{path:<16}{first:8.1f}   {statistics.median(again):10.1f}")
                page.goto(f"{server.http}/console/devices")
                page.wait_for_selector("#live-status.on")
                phone = phones.start("alice")
                phone.add_account("alice", "alice-secret-pw", server.sip)
                page.wait_for_selector('.presence.online[data-sip-user="alice"]')
                for i in range(args.toggles):
                    online = i % 2 == 1
                    if online:
                        phone = phones.start(f"alice{i}")
                        phone.add_account("alice", "alice-secret-pw", server.sip)
                    else:
                        phone.stop()  # quitting unregisters (Expires: 0)
                    state = "online" if online else "offline"
                    page.wait_for_selector(f'.presence.{state}[data-sip-user="alice"]',
                                           timeout=15000)
                screen = [float(x) for x in page.evaluate("() => window.tdLatencies")]
                recv = [float(x) for x in page.evaluate("() => window.tdReceived")]
                print(f"live updates: n={len(screen)}")
                print(f"  event -> screen     p50 {statistics.median(screen):6.1f} ms  "
                      f"p95 {_pct(screen, 0.95):6.1f} ms  max {max(screen):6.1f} ms")
                print(f"  event -> page (anchor) p50 {statistics.median(recv):6.1f} ms  "
                      f"p95 {_pct(recv, 0.95):6.1f} ms  max {max(recv):6.1f} ms")
                browser.close()
        finally:
            phones.stop_all()
            server.stop()


def _tone(d: Path) -> Path:
    import subprocess

    wav = d / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth",
                    "10", "sine", "440", "vol", "0.5"], check=True)
    return wav


if __name__ == "__main__":
    main()
