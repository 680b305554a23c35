"""The served htmx works in the real browser with no network but a local server: it loads from the served dir,
an hx-get swaps in a fragment, and Chinese renders in the Noto CJK font (the screenshot is looked at, not
committed: docs/screenshots/browser-smoke.png)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import screenshot
from tools.infra.assets import HTMX

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>待办案件</title>
<script src="/assets/htmx.min.js"></script>
<style>
  body { font-family: "Noto Sans CJK SC", sans-serif; font-size: 18px; margin: 32px; }
  table { border-collapse: collapse; margin: 16px 0; }
  td, th { border: 1px solid #bbb; padding: 6px 12px; }
  #detail { margin-top: 16px; padding: 12px; background: #f3f6fa; }
</style></head>
<body>
<h1>待办案件</h1>
<table>
  <tr><th>案件编号</th><th>诉求</th><th>紧急程度</th><th>操作</th></tr>
  <tr><td>GT-20261127-0001</td><td>小区夜间施工噪音扰民，多次反映未解决</td><td>一般</td>
      <td><button>签收</button> <button>退单</button> <button>办结</button></td></tr>
</table>
<button id="load" hx-get="/fragment" hx-target="#detail" hx-swap="innerHTML">查看详情</button>
<div id="detail">（尚未加载）</div>
</body></html>
"""
FRAGMENT = "<p id='loaded'>已签收：派出所民警将于今日联系投诉人。</p>"


@dataclass
class Site:
    url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers) in order


@pytest.fixture
def site(assets_dir: Path) -> Iterator[Site]:
    """The page, its fragment and the served assets dir on a free local port: nothing else is reachable."""
    served = {f"/assets/{p.name}": p for p in assets_dir.iterdir() if p.is_file()}
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, dict(self.headers)))
            if self.path == "/":
                self._reply(PAGE.encode(), "text/html; charset=utf-8")
            elif self.path == "/fragment":
                self._reply(FRAGMENT.encode(), "text/html; charset=utf-8")
            elif self.path in served:
                self._reply(served[self.path].read_bytes(), "text/javascript; charset=utf-8")
            else:
                self.send_error(404)

        def _reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: the test reads `seen`
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


def test_the_chinese_font_is_the_one_fontconfig_picks() -> None:
    """Without fonts-noto-cjk Chromium draws boxes for Chinese; `make browser` installs it."""
    family = subprocess.run(["fc-match", "-f", "%{family}", ":lang=zh-cn"], capture_output=True, text=True).stdout
    assert "Noto Sans CJK" in family, f"fontconfig picks {family!r} for Chinese: run `make browser`"


def test_the_local_htmx_loads_and_swaps_in_a_fragment(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/")
    assert browser.title == "待办案件"
    assert browser.execute_script("return typeof window.htmx") == "object", "htmx did not load from the served dir"
    assert browser.execute_script("return window.htmx.version") == HTMX.version
    # every resource came from the local server: no CDN, no network
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert site.url + "/assets/htmx.min.js" in loaded
    assert all(name.startswith(site.url + "/") for name in loaded), loaded
    assert site.requests[0][1].get("Accept-Language", "").startswith("zh-CN")

    browser.find_element(By.ID, "load").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "loaded"))
    assert browser.find_element(By.ID, "detail").text == "已签收：派出所民警将于今日联系投诉人。"
    fragment_request = next(headers for path, headers in site.requests if path == "/fragment")
    assert fragment_request.get("HX-Request") == "true", "the swap was htmx's request"

    path = screenshot(browser, "browser-smoke")
    assert path.stat().st_size > 10_000 and path.read_bytes().startswith(b"\x89PNG")
