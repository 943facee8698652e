"""The dashboard end to end in a real headless Chromium (Debian's ``chromium`` package, driven
by Playwright; Playwright's own browsers are never downloaded).

One ``ferryman start`` in front of httpbin, with basic auth, gets a known mix of traffic; then
the browser loads the overview, filters the list, opens transactions (JSON, an image, binary),
sees a live update arrive, replays and follows the link, and exports HAR. A screenshot of each
page goes to ``$FERRYMAN_SCREENSHOTS`` (or a temporary directory), whose path the test prints.
Without chromium the test skips, and fails when ``CI=true`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.dashboard.conftest import PASSWORD, SCREENSHOT_DIRECTORIES, USER, StartProxy
from tests.apps.dashboard.traffic import api, send, wait_recorded
from tests.servers.httpbin_server import HttpbinServer

CHROMIUM = os.environ.get("FERRYMAN_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        message = f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        message = f"playwright is not installed (pip install playwright; .ci/run does): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def screenshots(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    configured = os.environ.get("FERRYMAN_SCREENSHOTS")
    directory = Path(configured) if configured else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    SCREENSHOT_DIRECTORIES.append(directory)  # (printed at the end of the run: conftest.py)
    print(f"dashboard screenshots: {directory}")
    return directory


def wait_until(page: Any, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll ``expression`` in the page until it is true. (Playwright's ``wait_for_function``
    evaluates a string with ``eval``, which the dashboard's CSP rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        time.sleep(0.05)


def test_dashboard_in_chromium(
    httpbin: HttpbinServer, start_proxy: StartProxy, browser: Any, screenshots: Path
) -> None:
    proxy = start_proxy(httpbin.url, auth=True)
    kernel, endpoint = proxy.url("kernel"), proxy.url("api")
    # The traffic: 6 GETs, a JSON POST, two 500s, an image, binary bytes, a tagged request.
    for n in range(6):
        assert send(f"{endpoint}/get?n={n}") == 200
    payload = json.dumps({"order": {"id": 7, "items": ["tea", "milk"]}, "note": "it's <b>bold</b>"})
    assert (
        send(f"{endpoint}/post?x=1", "POST", payload.encode(), {"Content-Type": "application/json"})
        == 200
    )
    assert send(f"{endpoint}/status/500") == 500
    assert send(f"{endpoint}/status/500?again=1") == 500
    assert send(f"{endpoint}/image/png") == 200
    assert send(f"{endpoint}/bytes/48?seed=1") == 200
    assert send(f"{endpoint}/anything/tagged", headers={"X-Ferryman-Tag-Env": "staging"}) == 200
    # The cache: a cacheable answer stored, then served from the store; an upstream's 429.
    assert send(f"{endpoint}/cache/60") == 200
    assert send(f"{endpoint}/cache/60") == 200
    assert send(f"{endpoint}/status/429") == 429
    total = 15
    wait_recorded(kernel, total)

    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        accept_downloads=True,
        viewport={"width": 1400, "height": 1000},
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)

    def show(hash_route: str, page_name: str) -> None:
        # A hash change keeps the document: forget the page shown, to wait for the new one.
        page.evaluate("document.getElementById('main')?.removeAttribute('data-page')")
        page.goto(f"{kernel}/{hash_route}")
        page.wait_for_selector(f"main[data-page={page_name}] > .page")

    # Overview: the totals and a chart per kind.
    show("#/", "overview")
    assert page.get_by_test_id("total-requests").inner_text().startswith(str(total))
    assert page.get_by_test_id("total-errors").inner_text().startswith("2 ")
    for chart in ("chart-rpm", "chart-errors", "chart-latency-api"):
        assert page.get_by_test_id(chart).locator("path.line").count() >= 1, chart
    assert "/status/500" in page.get_by_test_id("failing").inner_text()
    # Every GET went by the cache (14 of them: one HIT, the rest MISS): 1/14 served from it.
    ratio = page.get_by_test_id("cache-hit-ratio").inner_text()
    assert ratio.startswith(f"{100 / 14:.1f}%") and "HIT 1" in ratio and "MISS 13" in ratio
    limited = page.get_by_test_id("rate-limited").inner_text()
    assert limited.startswith("1") and "0 by ferryman" in limited
    shot("overview")

    # The list, then filtered by status class (a facet), then by search.
    show("#/transactions", "transactions")
    rows = page.get_by_test_id("transactions").locator("tbody tr")
    assert rows.count() == total
    page.evaluate("document.getElementById('main').removeAttribute('data-page')")
    page.locator("[data-facet=status] label", has_text="5xx").locator("input").check()
    wait_until(page, "location.hash.includes('status=5xx')")
    page.wait_for_selector("main[data-page=transactions] > .page")
    wait_until(
        page, "document.querySelectorAll('[data-testid=transactions] tbody tr').length === 2"
    )
    statuses = page.locator("[data-testid=transactions] td.status").all_inner_texts()
    assert statuses == ["500", "500"]
    shot("transactions-5xx")

    # HAR export of the filtered list: a HAR 1.2 file with the two 5xx.
    with page.expect_download() as download_info:
        page.get_by_test_id("har").click()
    har = json.loads(Path(download_info.value.path()).read_text())
    assert har["log"]["version"] == "1.2"
    assert [entry["response"]["status"] for entry in har["log"]["entries"]] == [500, 500]
    assert all(entry["request"]["url"].startswith(endpoint) for entry in har["log"]["entries"])

    # The cache column, and its facet: HIT leaves the one answer served from the store.
    show("#/transactions", "transactions")
    headings = page.locator("[data-testid=transactions] thead th").all_inner_texts()
    assert "cache" in headings
    cells = page.get_by_test_id("cache-cell").all_inner_texts()
    assert cells.count("HIT") == 1 and cells.count("MISS") == 13
    assert cells.count("\u2013") == 1  # (a dash: the POST, which the cache did not look at)
    cache_facet = page.locator("[data-facet=cache]")
    assert {
        label.split("\n")[0]: label.split("\n")[-1]
        for label in cache_facet.locator("label").all_inner_texts()
    } == {"MISS": "13", "HIT": "1", "none": "1"}
    page.evaluate("document.getElementById('main').removeAttribute('data-page')")
    cache_facet.locator("label", has_text="HIT").locator("input").check()
    wait_until(page, "location.hash.includes('cache=HIT')")
    page.wait_for_selector("main[data-page=transactions] > .page")
    wait_until(
        page, "document.querySelectorAll('[data-testid=transactions] tbody tr').length === 1"
    )
    targets = page.locator("[data-testid=transactions] td.target a").all_inner_texts()
    assert targets == ["/cache/60"]
    assert page.get_by_test_id("cache-cell").all_inner_texts() == ["HIT"]
    shot("transactions-cache-hit")

    show("#/transactions", "transactions")
    page.get_by_test_id("search").fill("image")
    page.evaluate("document.getElementById('main').removeAttribute('data-page')")
    page.get_by_test_id("search").press("Enter")
    wait_until(page, "location.hash.includes('q=image')")
    page.wait_for_selector("main[data-page=transactions] > .page")
    targets = page.locator("[data-testid=transactions] td.target a").all_inner_texts()
    assert targets == ["/image/png"]

    # A live update: the unfiltered list, then a new request through the proxy.
    show("#/transactions", "transactions")
    page.wait_for_selector("#live:not(.off)")
    assert send(f"{endpoint}/get?live=yes") == 200
    live = page.locator("tr.live-row", has_text="/get?live=yes")
    live.wait_for()
    assert rows.count() == total + 1
    shot("transactions-live")

    # The JSON POST: heads, the body folded, copy as curl.
    post = next(i for i in api(kernel, "/api/transactions?method=POST")["items"])
    show(f"#/transactions/{post['id']}", "transactions")
    request_part = page.get_by_test_id("request")
    assert "Content-Type" in request_part.get_by_test_id("request-headers").inner_text()
    assert request_part.locator(".json details").count() >= 2  # the object and "order" fold
    assert '"tea"' in request_part.locator(".json").inner_text()
    response_part = page.get_by_test_id("response")
    assert "application/json" in response_part.get_by_test_id("response-headers").inner_text()
    assert page.get_by_test_id("waterfall").locator(".bar").count() >= 2
    page.get_by_test_id("copy-curl").click()
    command = page.get_by_test_id("curl").inner_text()
    assert command.startswith(f"curl -X 'POST' '{endpoint}/post?x=1'")
    assert "-H 'Content-Type: application/json'" in command
    assert "--data-binary '" + payload.replace("'", "'\\''") + "'" in command
    # The page took the body as data, not as markup.
    assert page.locator("b", has_text="bold").count() == 0
    shot("detail-post")

    # Replay: a new transaction, linked; following the link shows it.
    page.get_by_test_id("replay").click()
    link = page.get_by_test_id("replay-link")
    link.wait_for()
    page.evaluate("document.getElementById('main').removeAttribute('data-page')")
    link.click()
    wait_until(
        page,
        f"location.hash.startsWith('#/transactions/') && !location.hash.endsWith('{post['id']}')",
    )
    page.wait_for_selector("main[data-page=transactions] [data-testid=replay]")
    new_id = re.sub(r"^#/transactions/", "", page.evaluate("location.hash"))
    assert new_id != post["id"]
    assert page.get_by_test_id("target").inner_text() == "/post?x=1"
    assert f"replay-of={post['id']}" in page.locator(".facts").inner_text()
    shot("detail-replayed")

    # An image answer is shown as an image; binary as hex.
    items = api(kernel, "/api/transactions?limit=100")["items"]
    image = next(i for i in items if i["target"] == "/image/png")
    show(f"#/transactions/{image['id']}", "transactions")
    picture = page.get_by_test_id("response").locator("img.body-image")
    picture.wait_for()
    wait_until(page, "document.querySelector('img.body-image').naturalWidth > 0")
    shot("detail-image")
    binary = next(i for i in items if i["target"].startswith("/bytes/48"))
    show(f"#/transactions/{binary['id']}", "transactions")
    dump = page.get_by_test_id("response").locator("pre.hex").inner_text()
    assert dump.startswith("00000000  ") and "00000020  " in dump

    # System: the endpoint, its upstream, the settings with the password masked.
    show("#/system", "system")
    assert httpbin.url in page.get_by_test_id("endpoints").inner_text()
    settings = page.get_by_test_id("settings").inner_text()
    assert PASSWORD not in settings and "[redacted]" in settings
    shot("system")

    context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Error" in p], problems


def test_a_retried_request_shows_its_attempts_in_chromium(
    httpbin: HttpbinServer, start_proxy: StartProxy, browser: Any, screenshots: Path
) -> None:
    """A 503 retried twice (``retry.statuses``): the list marks it, the detail lists each try."""
    proxy = start_proxy(
        httpbin.url,
        "--set",
        "proxy.endpoints.0.retry.statuses=[503]",
        "--set",
        "proxy.endpoints.0.retry.backoff=0",
        auth=True,
    )
    kernel, endpoint = proxy.url("kernel"), proxy.url("api")
    assert send(f"{endpoint}/status/503") == 503
    assert send(f"{endpoint}/get") == 200
    [once, retried] = wait_recorded(kernel, 2)
    assert retried["attempts"] == 3 and once["attempts"] == 1

    context = browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1400, "height": 800},
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{kernel}/#/transactions")
    page.wait_for_selector("main[data-page=transactions] > .page")
    cells = page.get_by_test_id("cache-cell").all_inner_texts()
    assert [cell.split("↻")[-1] if "↻" in cell else "" for cell in cells] == ["", "3"]
    page.evaluate("document.getElementById('main').removeAttribute('data-page')")
    page.goto(f"{kernel}/#/transactions/{retried['id']}")
    page.wait_for_selector("main[data-page=transactions] [data-testid=attempts]")
    attempts = page.get_by_test_id("attempts").inner_text()
    assert attempts.startswith("attempts\n3")
    assert attempts.count(f"{httpbin.url} answered 503") == 2  # the failed tries...
    assert f"{httpbin.url}/status/503 answered 503" in attempts  # ...and the last one
    page.screenshot(path=str(screenshots / "detail-attempts.png"), full_page=True)
    context.close()
