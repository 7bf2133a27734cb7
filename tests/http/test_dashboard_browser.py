"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

Playwright is used with the system executable only (``executable_path``);
``scripts/test`` installs chromium.  Waits poll the page's DOM with a bound
(``wait_for_function``): no sleeps, no timing thresholds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
BOUND_MS = 30_000  # an upper bound for the page to catch up, not a expectation


def chromium() -> str:
    found = os.environ.get("AONODE_CHROMIUM") or shutil.which("chromium")
    if found is None:
        pytest.fail("no chromium executable: run scripts/test, which installs Debian's chromium")
    return found


async def test_dashboard_shows_the_process_and_follows_its_slot(
    live: Live, user_wallet: Wallet, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    executable = chromium()
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    pid = proc.id

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))

            # a browser asking for / gets the dashboard (Accept: text/html)
            response = await page.goto(ln.url + "/")
            assert response is not None and response.status == 200
            assert await page.title() == "aonode"
            row = f'tr[data-process="{pid}"]'
            await page.wait_for_selector(row, timeout=BOUND_MS)
            assert await page.text_content("#address") == ln.node.address
            assert await page.text_content("#mode") == "local_confirmation"
            assert (await page.text_content("#store") or "").startswith("sqlite://")
            assert await page.text_content(f"{row} td.slot") == "0"

            posted = 5
            for i in range(posted):
                m = sign_message(user_wallet, pid, data=f"m{i}".encode())
                r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
                assert r.status_code == 200, r.text

            # no reload: the page's own polling brings the slot to the posted count
            await page.wait_for_function(
                """([sel, want]) => {
                    const td = document.querySelector(sel);
                    return td !== null && td.textContent === want;
                }""",
                arg=[f"{row} td.slot", str(posted)],
                timeout=BOUND_MS,
            )
            await page.wait_for_function(
                "(want) => document.querySelectorAll('#assignments tbody tr').length === want",
                arg=posted + 1,
                timeout=BOUND_MS,
            )
            slots = await page.eval_on_selector_all(
                "#assignments tbody tr", "rows => rows.map(r => r.dataset.slot)"
            )
            assert slots == [str(s) for s in range(posted, -1, -1)]
            links = await page.eval_on_selector_all(
                "#assignments tbody tr td:nth-child(4)", "cells => cells.map(c => c.textContent)"
            )
            assert links == ["✓"] * (posted + 1)  # every hash-chain link checks out
            assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0
            assert problems == []
        finally:
            await browser.close()
