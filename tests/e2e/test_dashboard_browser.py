"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real market
and real sandboxed providers (``cli_network`` plus a second provider), after real jobs ran.

What a person sees: the statistics table's numbers are ``pasar stats --json``'s; a finished job
is listed with its bill; another client's job shows none of its private parts (its owner,
signed in with ``pasar dashboard login``, sees them); the chain explorer lists the latest block
and "verify" says valid (and invalid once the block's data is edited in the page); a provider
stopped with SIGTERM turns offline on an open page through the live refresh; the network page
fits a phone-width screen.

These tests FAIL, never skip, when the browser is missing: ``.ci/run`` installs ``chromium``
(scripts/ensure-system-deps). Playwright never downloads a browser here: ``executable_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pasar.client.client import Client

CHROMIUM = os.environ.get("PASAR_CHROMIUM", "/usr/bin/chromium")
SECRET = "s3cret-dashboard-value"
JOB = {
    "name": "dash-job",
    "run": "echo token=$API_TOKEN; sleep 1",
    "envs": {"API_TOKEN": SECRET},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1m",
}
WAIT_MS = 30_000  # for the live refresh to show a change (it polls every 5 s)


def _attacklib() -> Any:
    """tests/attacks/attacklib.py (its conservation and audit checks), loaded by path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "attacks" / "attacklib.py"
    spec = importlib.util.spec_from_file_location("pasar_attacklib", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")
pytestmark = needs_bwrap


def pasar(*args: str, home: Path, market: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASAR_HOME": str(home), "PASAR_MARKET": market, "NO_COLOR": "1"}
    env.pop("PASAR_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pasar", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@dataclass
class Scene:
    url: str
    alice_home: Path
    bob_home: Path
    job_id: str
    job: dict[str, Any]
    spare: Any  # the second provider (stopped by a test)
    page: Any  # a Playwright page


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no chromium at {CHROMIUM}: install it (apt-get install chromium; "
            "scripts/ensure-system-deps chromium does) or set PASAR_CHROMIUM",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def scene(
    cli_network: Any, browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    # the integration fixtures' module, loaded once by tests/e2e/conftest.py
    launcher: Any = sys.modules["pasar_integration_conftest"].ProviderLauncher
    root = tmp_path_factory.mktemp("dash-browser")
    url = cli_network.market.url
    spares = launcher()
    spare = spares.start(url, root / "spare", "--price-cpu-hour", "0.07", "--grace", "5")
    alice_home, bob_home = root / "alice", root / "bob"
    with Client(url, home=alice_home) as alice:
        alice.faucet("10 USDC")
        job = alice.launch(JOB)
        done = job.wait(timeout=60)
    assert done["status"] == "done", done
    with Client(url, home=bob_home) as bob:
        bob.faucet("1 USDC")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield Scene(url, alice_home, bob_home, job.id, done, spare, context.new_page())
    finally:
        context.close()
        spares.stop_all()


def test_statistics_table_equals_pasar_stats_json(scene: Scene) -> None:
    scene.page.goto(f"{scene.url}/ui")
    shown = {
        key: scene.page.inner_text(f'[data-stat="{key}"]')
        for key in ("providers", "gpus", "free_gpus", "h100", "a100", "cpus", "free_cpus")
    }
    stats = pasar("stats", "--json", home=scene.alice_home, market=scene.url)
    assert stats.returncode == 0, stats.stderr
    expected = json.loads(stats.stdout)
    assert shown == {key: str(expected[key]) for key in shown}
    assert scene.page.inner_text('[data-jobs="done"]') == f"{expected['jobs']['done']} jobs"


def test_a_finished_job_is_listed_with_its_bill(scene: Scene) -> None:
    page = scene.page
    page.goto(f"{scene.url}/ui/jobs")
    row = page.locator(f'tr[data-order="{scene.job_id}"]')
    assert row.get_attribute("data-status") == "done"
    billed = [x["bill"]["billed"] for x in scene.job["leases"] if x.get("bill")]
    assert billed and billed[0] in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_url(f"**/ui/jobs/{scene.job_id}")
    assert page.locator(".bill").first.get_attribute("data-billed") == billed[0]
    assert SECRET not in page.content()  # the public page: requirements, never envs
    _attacklib().assert_conserved(scene.url)  # no micro-unit lost on the way


def test_private_fields_only_for_the_signed_in_owner(scene: Scene, browser: Any) -> None:
    for home, owner in ((scene.bob_home, False), (scene.alice_home, True)):
        login = pasar("dashboard", "login", "--print", home=home, market=scene.url)
        assert login.returncode == 0, login.stderr
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(login.stdout.strip())
            page.wait_for_url("**/ui/me")
            reply = page.goto(f"{scene.url}/ui/me/jobs/{scene.job_id}")
            assert reply is not None
            if owner:
                assert reply.status == 200
                assert SECRET in page.inner_text("#spec") and SECRET in page.inner_text(".log")
            else:
                assert reply.status == 403
                assert SECRET not in page.content()
                page.goto(f"{scene.url}/ui/jobs/{scene.job_id}")
                assert SECRET not in page.content()
                # the same signed link again: a challenge signs in once
                again = page.goto(login.stdout.strip())
                assert again is not None and again.status == 409
        finally:
            context.close()


def test_chain_explorer_verifies_the_latest_block_in_the_browser(scene: Scene) -> None:
    page = scene.page
    with Client(scene.url, home=scene.alice_home) as client:
        head = client.transport.get("/v1/chain/head")
    page.goto(f"{scene.url}/ui/chain")
    latest = page.locator(f'tr[data-height="{head["height"]}"]')
    assert latest.count() == 1
    latest.locator("a").click()
    page.wait_for_url(f"**/ui/chain/{head['height']}")
    page.click("#verify")
    status = page.locator('#verify-status:not([data-state="checking"])')
    status.wait_for()
    assert status.get_attribute("data-state") == "valid", status.inner_text()
    # edit the block's data in the page: one digit of its timestamp
    page.evaluate(
        """() => {
            const node = document.getElementById("block-data");
            const data = JSON.parse(node.textContent);
            data.block.ts += 1;
            node.textContent = JSON.stringify(data);
        }"""
    )
    page.click("#verify")
    status.wait_for()
    assert status.get_attribute("data-state") == "invalid"
    assert "INVALID" in status.inner_text()


def test_a_provider_stopped_with_sigterm_turns_offline_on_an_open_page(scene: Scene) -> None:
    page = scene.page
    page.goto(f"{scene.url}/ui/providers")
    cell = f'tr[data-provider="{scene.spare.account}"] td'
    assert page.get_attribute(f"{cell}[data-online]", "data-online") == "online"
    assert scene.spare.stop() == 0  # SIGTERM: it drains and tells the market
    # no reload: the page's live refresh brings the change
    page.wait_for_selector(f'{cell}[data-online="offline"]', timeout=WAIT_MS)


def test_the_network_page_fits_a_phone(scene: Scene, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.goto(f"{scene.url}/ui")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        assert page.is_visible('[data-stat="cpus"]')
    finally:
        context.close()
