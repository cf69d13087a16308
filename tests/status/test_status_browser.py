"""The status page in a real headless Chromium, against a real ``serve --workers 2``.

Mail goes to two sites: ``ok.test`` delivers, ``defer.test`` answers 451. The browser
must see the counters move and the deferring site's response, and a suspension made
with the page's own button must stop deliveries for ``ok.test`` at the sink. The
console must stay free of errors. A screenshot is saved (``STATUS_SCREENSHOT`` names
where; ``make status-screenshot`` points it at docs/images/status.png).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver

from bench.common.status_node import Node, Sinks

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:  # pragma: no cover - setup.sh installs both
    pytest.fail("chromium and chromium-driver are required (scripts/setup.sh installs them)")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it is truthy. An element replaced by the page's once-a-second
    re-render while ``check`` looked at it counts as "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except StaleElementReferenceException:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Node, Sinks]]:
    sinks = Sinks().start()
    node = Node(tmp_path, sinks.port, sinks.dns.address)
    try:
        node.wait_ready()
        yield node, sinks
    finally:
        node.stop()
        sinks.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kumocore-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1366,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def cell_texts(driver: Any, table: str) -> list[list[str]]:
    """The table's cells as text, read in one script call: the page re-renders its tables
    every second, so element-by-element reads could meet a replaced row."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(r => [...r.cells].map(c => c.innerText.trim()))", f"#{table} tbody tr")
    return [list(map(str, row)) for row in rows]


def click(driver: Any, what: str, find: Callable[[], list[Any]], timeout: float = 30.0) -> None:
    """Click the first element ``find`` returns, finding it again if a re-render replaced
    it between the find and the click."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            found = find()
            if found:
                found[0].click()
                return
        except StaleElementReferenceException:
            pass
        assert time.monotonic() < deadline, f"timed out waiting to click {what}"
        time.sleep(0.1)


def counter(driver: Any, name: str) -> int:
    for row in cell_texts(driver, "counters"):
        if row and row[0] == name:
            return int(row[1])
    raise AssertionError(f"no counter row {name!r}")


def test_page_shows_live_numbers_responses_and_suspends_a_queue_from_its_button(
        world: tuple[Node, Sinks], browser: Any) -> None:  # fmt: skip
    node, sinks = world
    browser.get(node.url + "/status")
    wait_for("the live stream", lambda: browser.find_element("id", "live").text == "live")
    assert counter(browser, "received") == 0
    # Both workers answer: the page shows the node, not the worker that served it.
    wait_for("both workers", lambda: "workers\t2" in browser.execute_script(
        "return [...document.querySelectorAll('#node tbody tr')].map(r => r.innerText)"))

    node.send([f"user{i}@ok.test" for i in range(20)]
              + [f"tempfail{i}@defer.test" for i in range(5)])  # fmt: skip

    # The numbers move without a reload.
    wait_for("received to reach 25", lambda: counter(browser, "received") == 25)
    wait_for("deliveries", lambda: counter(browser, "delivered") >= 20)
    wait_for("transient failures", lambda: counter(browser, "transient failures") >= 5)
    # The deferring site's response is listed, with its code and text.
    responses = wait_for("the 451 of mx.defer.test", lambda: [
        r for r in cell_texts(browser, "responses")
        if r[:1] == ["mx.defer.test"] and "451" in r and "tempfail requested" in r])
    assert responses[0][3] == "4.3.0"
    # The deferring queue waits in the scheduled table; the chart is drawn.
    wait_for("defer.test queued", lambda: any(
        r[0] == "defer.test" and r[1] == "5" for r in cell_texts(browser, "scheduled")))
    assert browser.find_elements("css selector", "#chart svg polyline.s1")

    # ok.test delivered everything, so its queue is gone: one deferral brings it back
    # (tempfail-once), then the page's suspend button suspends it.
    node.send(["tempfail-once-a@ok.test"])
    press(browser, "ok.test", "suspend")
    wait_for("the suspension listed", lambda: any(
        r[0] == "suspend" and r[1] == "ok.test" for r in cell_texts(browser, "rules")))
    save_screenshot(browser)

    before = sinks.delivered()["ok.test"]
    node.send([f"late{i}@ok.test" for i in range(5)])
    wait_for("the suspended messages queued", lambda: any(
        r[0] == "ok.test" and int(r[1]) >= 5 and r[4].startswith("suspended")
        for r in cell_texts(browser, "scheduled")))
    time.sleep(4)  # longer than the retry interval: nothing may reach the sink
    assert sinks.delivered()["ok.test"] == before

    # Click-through: the queue's messages, then one message's inspect view.
    click(browser, "messages of ok.test", lambda: queue_button(browser, "ok.test", "messages"))
    click(browser, "a message id", lambda: browser.find_elements("css selector", "a.msgid"))
    inspect = wait_for("the inspect view", lambda: browser.find_elements("id", "inspect"))
    assert "@ok.test" in inspect[0].text and "hello" in inspect[0].text

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def queue_button(browser: Any, name: str, button: str) -> list[Any]:
    """The ``button`` of queue ``name``'s row (empty while there is none)."""
    return [b for r in browser.find_elements("css selector", "#scheduled tbody tr")
            if r.find_elements("css selector", ".qname")
            and r.find_element("css selector", ".qname").text == name
            for b in r.find_elements("css selector", f"button.{button}")]  # fmt: skip


def press(browser: Any, name: str, button: str, *, confirm: bool = True) -> None:
    """Press ``button`` on queue ``name``'s row, then confirm (or cancel) the dialog."""
    click(browser, f"{button} of {name}", lambda: queue_button(browser, name, button))
    wait_for("the confirmation", lambda: browser.find_element("id", "confirm").is_displayed())
    browser.find_element("id", "confirm-ok" if confirm else "confirm-cancel").click()
    wait_for("the dialog to close",
             lambda: not browser.find_element("id", "confirm").is_displayed())


def background(browser: Any, scheme: str) -> str:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": scheme}]})  # fmt: skip
    return str(browser.execute_script(
        "return getComputedStyle(document.body).backgroundColor"))  # fmt: skip


def test_page_buttons_resume_retry_bounce_and_cancel_and_follow_dark_mode(
        world: tuple[Node, Sinks], browser: Any) -> None:  # fmt: skip
    node, sinks = world
    browser.get(node.url + "/status")
    wait_for("the live stream", lambda: browser.find_element("id", "live").text == "live")
    assert background(browser, "dark") == "rgb(21, 23, 26)"
    assert background(browser, "light") == "rgb(247, 247, 245)"

    # Cancelling the dialog changes nothing; suspend then resume leaves no rule.
    node.send([f"tempfail{i}@defer.test" for i in range(3)])
    press(browser, "defer.test", "suspend", confirm=False)
    time.sleep(1.5)
    assert node.api("/api/admin/suspend/v1") == []
    press(browser, "defer.test", "suspend")
    wait_for("suspended", lambda: queue_button(browser, "defer.test", "resume"))
    press(browser, "defer.test", "resume")
    wait_for("no rule left", lambda: node.api("/api/admin/suspend/v1") == [])
    # A suspension made elsewhere (by domain, through the API) is resumed the same way.
    node.api("/api/admin/suspend/v1", {"domain": "defer.test", "reason": "from the CLI"})
    wait_for("the domain rule listed", lambda: any(
        r[:2] == ["suspend", "domain=defer.test"] for r in cell_texts(browser, "rules")))
    press(browser, "defer.test", "resume")
    wait_for("the domain rule cancelled", lambda: node.api("/api/admin/suspend/v1") == [])

    # Retry now: a message deferred for an hour is delivered at once.
    node.send(["tempfail-once-r@slow.test"])
    wait_for("the deferral", lambda: any(
        r[0] == "slow.test" and r[1] == "1" for r in cell_texts(browser, "scheduled")))
    time.sleep(1)
    assert sinks.delivered()["slow.test"] == 0
    press(browser, "slow.test", "retry")
    wait_for("delivery after retry now", lambda: sinks.delivered()["slow.test"] == 1, 15)

    # Bounce: the queue's messages are bounced; the rule is listed and can be cancelled.
    press(browser, "defer.test", "bounce")
    wait_for("the queue emptied", lambda: not any(
        r[0] == "defer.test" and r[1] != "0" for r in cell_texts(browser, "scheduled")))
    assert node.api("/api/admin/status/v1")["counters"]["admin_bounced"] == 3
    click(browser, "the rule's cancel", lambda: browser.find_elements(
        "css selector", "#rules tbody button.cancel"))  # fmt: skip
    wait_for("the confirmation", lambda: browser.find_element("id", "confirm").is_displayed())
    browser.find_element("id", "confirm-ok").click()
    wait_for("the rule cancelled", lambda: node.api("/api/admin/bounce/v1") == [])

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def save_screenshot(browser: Any) -> None:
    target = os.environ.get("STATUS_SCREENSHOT")
    path = Path(target) if target else Path(tempfile.gettempdir()) / "kumocore-status.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The whole page, not just the first screen.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1366, int(height) + 140)
    browser.save_screenshot(str(path))
    browser.set_window_size(1366, 1000)


def test_page_without_javascript_is_a_readable_snapshot(world: tuple[Node, Sinks]) -> None:
    node, _ = world
    node.send(["tempfail-x@defer.test", "a@ok.test"])
    wait_for("the deferral", lambda: node.api("/api/admin/status/v1")["recent"]["responses"])
    import urllib.request

    with urllib.request.urlopen(node.url + "/status", timeout=30) as response:
        html = response.read().decode()
        csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert '<html lang="en" class="nojs">' in html
    assert "<td>mx.defer.test</td>" in html and "tempfail requested" in html
    assert '<span class="qname">defer.test</span>' in html


def test_rule_lists_are_answered_for_the_node_with_two_workers(
        world: tuple[Node, Sinks]) -> None:  # fmt: skip
    # The page reads these lists; the fan-out once took a GET list for a rule creation.
    node, _ = world
    assert node.api("/api/admin/suspend/v1") == []
    assert node.api("/api/admin/bounce/v1") == []
