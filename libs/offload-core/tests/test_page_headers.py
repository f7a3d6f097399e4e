"""The pages' security headers, judged by a real browser (Debian's headless chromium)."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload_core.page_headers import page_headers

NONCE = "n0nce-for-the-test"
# A page an attacker managed to put a script into, beside the page's own nonced style.
PAGE = f"""<!doctype html><html><head><style nonce="{NONCE}">p {{ color: red }}</style></head>
<body><p id="out">untouched</p>
<script>document.getElementById("out").textContent = "script ran";</script></body></html>"""


def serve(headers: dict[str, str]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def rendered_dom(url: str, profile: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--no-first-run", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]
    done = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.browser
@pytest.mark.parametrize("with_policy", [True, False], ids=["policy", "control-no-policy"])
def test_an_injected_inline_script_does_not_run(with_policy, tmp_path):
    """With the policy the browser refuses the inline script; the control serves the same page
    without it, and the script runs (so the check can see a script run)."""
    headers = page_headers(NONCE) if with_policy else {}
    for url in serve(headers):
        dom = rendered_dom(url, tmp_path / "profile")
    assert ("untouched" if with_policy else "script ran") in dom, dom


def test_the_policy_allows_no_script_no_framing_and_no_referrer():
    headers = page_headers("abc")
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert policy["style-src"] == "'nonce-abc'" and "unsafe-inline" not in headers["Content-Security-Policy"]
    assert policy["frame-ancestors"] == "'none'" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
