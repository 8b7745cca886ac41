"""``pasar devnet up|down|demo`` as real processes, driven through the installed ``pasar`` CLI.

A network comes up (a market and three providers, each its own process), runs the examples'
jobs through ``pasar launch`` / ``pasar result``, and Ctrl-C stops every process it started
and exits 0; a detached network is stopped by ``pasar devnet down``; a supervisor killed with
SIGKILL leaves no orphans; the showcase (``pasar devnet demo``) passes its checks and writes a
real PNG. No process of any network outlives its test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PASAR = str(Path(sys.executable).parent / "pasar")  # the installed console script
UP_TIMEOUT_S = 120.0
ORDER_ID = re.compile(r"\bo-[0-9a-f]{16}\b")

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **extra}
    for name in ("PASAR_MARKET", "PASAR_DEBUG"):
        if name not in extra:
            env.pop(name, None)
    return env


def pasar(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    proc = subprocess.run(
        [PASAR, *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


class Up:
    """A running ``pasar devnet up``; its output goes to a file the test reads."""

    def __init__(self, home: Path, *args: str) -> None:
        self.home = home
        self.out = home.parent / f"{home.name}.up.out"
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [PASAR, "devnet", "up", "--home", str(home), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_env(),
            )
        self.exports = self._wait_exports()
        self.record = json.loads((home / "devnet.json").read_text())

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def _wait_exports(self) -> dict[str, str]:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            found = dict(re.findall(r"^export (PASAR_\w+)=(.+)$", self.text(), re.M))
            if "PASAR_HOME" in found and "PASAR_MARKET" in found:
                return found
            if self.proc.poll() is not None:
                raise AssertionError(f"devnet up exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"devnet up printed no export lines:\n{self.text()}")

    @property
    def pids(self) -> list[int]:
        return [int(p["pid"]) for p in self.record["processes"]]

    def client_env(self) -> dict[str, str]:
        return _env(**self.exports)

    def interrupt(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: list[int], timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if not gone(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if not gone(p)]


def processes_under(folder: Path) -> list[psutil.Process]:
    """Processes whose command line names ``folder`` (every devnet process does: --home)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(folder) in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[Up]]:
    """Whatever a test started is stopped at its end, even when it fails."""
    started: list[Up] = []
    yield started
    for up in started:
        up.kill()
    for proc in processes_under(tmp_path):
        proc.kill()


def read_png(path: Path) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of an 8-bit RGB PNG, checking every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, color) == (8, 2)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    return width, height, raw


def cli_has_jobs() -> bool:
    return pasar("launch", "--help").returncode == 0


@pytest.mark.parametrize(
    "spec", ["hello.yaml", "render/render.yaml", "train/train.yaml"], ids=lambda s: s
)
def test_the_showcase_specs_are_valid(spec: str) -> None:
    result = pasar("spec", "check", str(EXAMPLES / spec))
    assert result.returncode == 0, result.stderr


def test_default_prices_are_distinct_and_the_second_provider_is_cheapest() -> None:
    from pasar.devnet import provider_price

    prices = [provider_price(i) for i in range(1, 9)]
    assert len(set(prices)) == 8
    assert min(prices[:3]) == prices[1] == "0.20"
    assert provider_price(2, ("1", "0.5")) == "0.5"


# -- up, jobs, Ctrl-C ------------------------------------------------------------------------------


@needs_bwrap
def test_up_runs_the_examples_and_ctrl_c_stops_every_process(
    tmp_path: Path, cleanup: list[Up]
) -> None:
    up = Up(tmp_path / "net", "--providers", "3")
    cleanup.append(up)
    record = up.record
    assert [p["name"] for p in record["processes"]] == [
        "market",
        "provider-1",
        "provider-2",
        "provider-3",
        "verifier-1",  # the preset's 2N+1 checkers, for replicate jobs
        "verifier-2",
        "verifier-3",
    ]
    providers_started = [p for p in record["processes"] if p["name"].startswith("provider-")]
    accounts = {p["id"] for p in record["processes"][1:]}
    assert len(accounts) == 6  # distinct keys
    assert len({p["price_cpu_hour"] for p in providers_started}) == 3  # distinct prices
    assert up.exports["PASAR_HOME"] == str(tmp_path / "net" / "client")
    config = (tmp_path / "net" / "client" / "config.toml").read_text()
    assert config == f'market = "{up.exports["PASAR_MARKET"]}"\n'
    assert f"dashboard: {up.exports['PASAR_MARKET']}/ui" in up.text()
    assert all(not gone(pid) for pid in up.pids)

    env = up.client_env()
    out = tmp_path / "render-out"
    if cli_has_jobs():
        hello = pasar("launch", "--yes", str(EXAMPLES / "hello.yaml"), env=env)
        assert hello.returncode == 0, hello.stdout + hello.stderr
        hello_id = ORDER_ID.findall(hello.stdout)[-1]
        render = pasar("launch", "--yes", str(EXAMPLES / "render" / "render.yaml"), env=env)
        assert render.returncode == 0, render.stdout + render.stderr
        render_id = ORDER_ID.findall(render.stdout)[-1]
        got = pasar("result", render_id, "-d", str(out), env=env)
        assert got.returncode == 0, got.stdout + got.stderr
        assert pasar("result", hello_id, "-d", str(tmp_path / "hello-out"), env=env).returncode == 0
        logs = pasar("logs", hello_id, env=env)
        assert "hello from " + hello_id in logs.stdout
        explain = pasar("explain", hello_id, "--json", env=env)
        providers = json.loads(explain.stdout)["providers"]
    else:  # the SDK, in a process of its own, with the same environment
        script = (
            "import json, sys, pasar\n"
            "c = pasar.Client()\n"
            f"h = c.launch({str(EXAMPLES / 'hello.yaml')!r})\n"
            f"r = c.launch({str(EXAMPLES / 'render' / 'render.yaml')!r})\n"
            f"r.result({str(out)!r}); h.wait(120)\n"
            "print(json.dumps(h.explain()))\n"
        )
        sdk = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180
        )
        assert sdk.returncode == 0, sdk.stderr
        providers = json.loads(sdk.stdout.splitlines()[-1])["providers"]
    # the hello auction: three bids, the cheapest (provider-2, 0.20/h) won
    price = {p["id"]: p["price_cpu_hour"] for p in providers_started}
    (winner,) = [p["provider"] for p in providers if p["won"]]
    assert price[winner] == min(price.values()) == "0.20"
    assert sum(1 for p in providers if p.get("price_per_hour")) == 3, providers
    # the render's six tiles came back (verified) and stitch into the whole image
    assert len(list(out.rglob("tile.ppm"))) == 6
    stitch = subprocess.run(
        [sys.executable, str(EXAMPLES / "render" / "stitch.py"), str(out), str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
    )
    assert stitch.returncode == 0, stitch.stderr
    assert read_png(tmp_path / "r.png")[:2] == (600, 400)

    pids = [*up.pids, up.proc.pid]
    assert up.interrupt() == 0, up.text()
    assert wait_gone(pids, 5) == []
    assert "devnet stopped" in up.text()
    assert not (tmp_path / "net" / "devnet.json").exists()
    assert processes_under(tmp_path / "net") == []


# -- detached, down, refusals ----------------------------------------------------------------------


@needs_bwrap
def test_detached_devnet_is_stopped_by_down(tmp_path: Path, cleanup: list[Up]) -> None:
    home = tmp_path / "net"
    started = pasar(
        "devnet", "up", "--providers", "1", "--verifiers", "1", "--detach", "--home", str(home)
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "export PASAR_MARKET=http://127.0.0.1:" in started.stdout
    record = json.loads((home / "devnet.json").read_text())
    assert record["supervisor"] is None
    pids = [int(p["pid"]) for p in record["processes"]]
    assert len(pids) == 3 and all(not gone(pid) for pid in pids)  # market, provider, verifier

    again = pasar("devnet", "up", "--providers", "1", "--home", str(home))
    assert again.returncode == 2
    assert "already running" in again.stderr and "pasar devnet down" in again.stderr

    stopped = pasar("devnet", "down", "--home", str(home))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert '{"' not in stopped.stdout + stopped.stderr  # a clean stop: no log tail, no JSON
    assert wait_gone(pids, 5) == []
    assert not (home / "devnet.json").exists()
    nothing = pasar("devnet", "down", "--home", str(home))
    assert nothing.returncode == 2 and "no devnet" in nothing.stderr


@needs_bwrap
def test_a_tls_devnet_runs_a_job_over_https_with_every_member_pinned(
    tmp_path: Path, cleanup: list[Up]
) -> None:
    """``pasar devnet up --tls``: the market serves HTTPS with its own certificate, every
    member (providers, verifiers, the client) has it pinned, and a job runs end to end."""
    home = tmp_path / "net"
    started = pasar(
        "devnet", "up", "--tls", "--providers", "1", "--verifiers", "0", "--detach",
        "--home", str(home),
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert "export PASAR_MARKET=https://127.0.0.1:" in started.stdout
    assert "its certificate is sha256:" in started.stdout
    record = json.loads((home / "devnet.json").read_text())
    url = record["url"]
    (tmp_path / "job.yaml").write_text(
        'name: tls\nrun: echo over tls\nmax_price_per_hour: "1 USDC"\nmax_duration: 1m\n'
    )
    env = _env(PASAR_MARKET=url, PASAR_HOME=str(home / "client"))
    ran = pasar("launch", str(tmp_path / "job.yaml"), "--yes", "--wait", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "settled (exit 0" in ran.stdout
    assert "trusting" not in ran.stderr  # pinned by the devnet: no first-use trust needed
    stopped = pasar("devnet", "down", "--home", str(home))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@needs_bwrap
def test_down_stops_a_foreground_devnet_through_its_supervisor(
    tmp_path: Path, cleanup: list[Up]
) -> None:
    up = Up(tmp_path / "net", "--providers", "1", "--verifiers", "0")
    cleanup.append(up)
    stopped = pasar("devnet", "down", "--home", str(tmp_path / "net"))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert up.proc.wait(30) == 0  # stopped as on Ctrl-C
    assert wait_gone(up.pids, 5) == []


@needs_bwrap
def test_a_killed_supervisor_leaves_no_orphans(tmp_path: Path, cleanup: list[Up]) -> None:
    up = Up(tmp_path / "net", "--providers", "1", "--verifiers", "1")
    cleanup.append(up)
    names = {int(p["pid"]): p["name"] for p in up.record["processes"]}
    up.proc.kill()  # SIGKILL: no chance to clean up; the kernel tells the children
    up.proc.wait(10)
    left = wait_gone(up.pids, 30)
    assert [names[pid] for pid in left] == [], up.text()


def test_an_unusable_runtime_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = pasar("devnet", "up", "--runtime", "no-such-runtime", "--home", str(tmp_path / "n"))
    assert result.returncode == 2
    assert "no-such-runtime" in result.stderr
    assert processes_under(tmp_path) == []


@needs_bwrap
def test_a_taken_port_fails_with_the_markets_log_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = pasar("devnet", "up", "--port", str(port), "--home", str(tmp_path / "n"))
    assert result.returncode == 2
    assert "market exited" in result.stderr
    assert processes_under(tmp_path) == []
    assert not (tmp_path / "n" / "devnet.json").exists()


# -- the showcase ----------------------------------------------------------------------------------


@needs_bwrap
@pytest.mark.slow
def test_demo_passes_its_checks_and_writes_render_png(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    home = tmp_path / "demo-net"
    # --no-pol: part 6b (about a minute of training and dispute) is the integration test
    # tests/integration/test_pol_market.py's perturb case, run there on its own
    proc = pasar("devnet", "demo", "--home", str(home), "--out", str(out), "--no-pol", timeout=240)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    passed = re.search(r"(\d+)/(\d+) checks passed", text)
    assert passed and passed.group(1) == passed.group(2), text
    for part in ("reverse auction", "render", "training", "@pasar.remote", "cheater", "audit"):
        assert part in text
    assert "✗" not in text
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/ui", text)  # it ends by saying where
    assert "outvoted and not paid" in text and "was slashed" in text  # the caught cheater
    width, height, raw = read_png(out / "render.png")
    assert (width, height) == (600, 400)
    assert len(set(raw)) > 50  # an image, not a blank
    assert processes_under(home) == []
    flat = " ".join(text.split())  # rich wraps lines at the pipe's width
    assert "6b. proof of learning" in flat and "skipped: --no-pol" in flat
