"""Screenshots of the dashboard's pages for the docs (``make screenshots``).

Starts a local devnet (a market, two providers, no verifiers), runs a few jobs, signs the
devnet's client in, and saves each page at 1280x800 and the network page at phone width (390 px)
as PNGs in the folder given (default docs/screenshots). Drives Debian's chromium with
Playwright; never downloads a browser.

    python scripts/dashboard_screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from pasar.client.client import Client
from pasar.devnet import Devnet, DevnetConfig

CHROMIUM = "/usr/bin/chromium"
JOB = {
    "name": "screenshot-job",
    "run": "echo hello from the dashboard's screenshots; sleep 2",
    "max_price_per_hour": "1 USDC",
    "max_duration": "1m",
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="pasar-shots-"))
    net = Devnet(DevnetConfig(home=home, providers=2, verifiers=0), say=lambda _line: None)
    net.start()
    try:
        with Client(net.url, home=net.config.client_home) as client:
            jobs = [client.launch(JOB) for _ in range(3)]
            for job in jobs:
                job.wait(timeout=120)
            running = client.launch({**JOB, "run": "sleep 30"})
            login = client.dashboard_login_url()
            provider = client.offers()[0]["provider"]
            shots = {
                "network": "/ui",
                "prices": "/ui/prices",
                "providers": "/ui/providers",
                "provider": f"/ui/providers/{provider}",
                "jobs": "/ui/jobs",
                "job": f"/ui/jobs/{jobs[0].id}",
                "chain": "/ui/chain",
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for name, path in shots.items():
                    page.goto(net.url + path)
                    page.screenshot(path=str(out / f"{name}.png"))
                page.click("#blocks tr[data-height] a")  # the latest block, verified
                page.click("#verify")
                page.wait_for_selector('#verify-status[data-state="valid"]')
                page.screenshot(path=str(out / "block.png"))
                page.goto(login)
                page.goto(f"{net.url}/ui/me/jobs/{jobs[0].id}")
                page.screenshot(path=str(out / "my-job.png"))
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone.goto(net.url + "/ui")
                phone.screenshot(path=str(out / "network-phone.png"), full_page=True)
                browser.close()
            running.cancel()
    finally:
        net.stop()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshots"))
