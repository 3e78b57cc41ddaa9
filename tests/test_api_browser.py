"""A real cross-origin browser request: a page served on another loopback port reads
/api/recommend from the app in Chromium (a simple GET, and a JSON POST that needs a preflight)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright==1.63.0)"
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FETCHES = """async (api) => {
  const got = await fetch(api + "/api/recommend?user_id=1&k=3&time_of_day=evening");
  const posted = await fetch(api + "/api/recommend", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({history: [1, 260], k: 2}),
  });
  return {
    get: (await got.json()).items.length,
    version: got.headers.get("x-api-version"),
    post: (await posted.json()).items.length,
  };
}"""


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain static page on another port: a different origin from the app's."""
    folder = tmp_path_factory.mktemp("other-origin")
    (folder / "index.html").write_text("<!doctype html><title>another site</title>")
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def test_a_page_on_another_origin_reads_recommendations(app_url: str, other_origin: str) -> None:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(other_origin)
            assert page.evaluate("location.origin") != app_url
            result = page.evaluate(FETCHES, app_url)
        finally:
            browser.close()
    assert result == {"get": 3, "version": "1", "post": 2}
