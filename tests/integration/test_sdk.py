"""The SDK against a real market process, with the provider's part played over HTTP.

:class:`ProviderDouble` does what a provider agent does, minus the sandbox: it registers, hears
of its leases on its feed, downloads the inputs into a work folder, answers a heartbeat
challenge, "runs" the job (a Python callable, or the spec's ``run`` command as a subprocess),
posts the output as logs, uploads the outputs and signs the receipt. The client side is only
the public SDK: ``Client``/``AsyncClient``, ``Job`` and ``@remote``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pasar.client.aio import AsyncClient
from pasar.client.client import Client
from pasar.client.remote import RemoteError, remote
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.crypto.identity import Identity
from pasar.crypto.merkle import root_of_files

if TYPE_CHECKING:
    from conftest import MarketProcess

Execute = Callable[[Path, dict[str, Any]], tuple[int, str]]
"""(work folder, lease view with ``spec``) -> (exit code, what the job printed)."""


class ProviderDouble:
    """A provider agent's HTTP conversation, in a background thread."""

    def __init__(self, market: MarketProcess, work: Path, execute: Execute, cpus: int = 8):
        self.identity = Identity.generate()
        self.id = self.identity.account_id
        self.api = Transport(market.url, identity=self.identity)
        self.work = work
        self.execute = execute
        self.done: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self.post(
            "/v1/providers",
            type="provider.register",
            inventory={"gpus": [], "cpus": cpus, "memory_gb": 32, "disk_gb": 100},
            asks={"cpu_core": "0.05"},
            score=100,
        )
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def post(self, path: str, **body: Any) -> Any:
        return self.api.post_signed(path, body, self.identity)

    def stop(self) -> None:
        """Stop serving; re-raise the first error the serving thread met (once)."""
        self._stop.set()
        self._thread.join(10)
        if self.errors:
            raise self.errors.pop(0)

    def _loop(self) -> None:
        after = 0
        while not self._stop.is_set():
            try:
                running = self.api.get(f"/v1/providers/{self.id}")["running"]
                for lease_id in running:
                    if lease_id not in self.done:
                        self.serve(lease_id)
                        self.done.append(lease_id)
                feed = self.api.get(
                    f"/v1/providers/{self.id}/feed", {"after": after, "timeout": 1}, timeout=10
                )
                after = feed["next"]
            except BaseException as exc:
                self.errors.append(exc)
                return

    def serve(self, lease_id: str) -> None:
        lease = self.api.get(f"/v1/leases/{lease_id}")
        workdir = self.work / lease_id
        workdir.mkdir(parents=True)
        for item in lease["inputs"]:
            data = self.api.request("GET", f"/v1/blobs/{item['sha256']}").content
            (workdir / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            (workdir / item["path"]).write_bytes(data)
        challenge = self.api.get(f"/v1/leases/{lease_id}/challenge")
        self.post(
            "/v1/heartbeats",
            type="heartbeat",
            lease_id=lease_id,
            interval=challenge["interval"],
            challenge=challenge["challenge"],
        )
        exit_code, printed = self.execute(workdir, lease)
        if printed:
            self.post(
                f"/v1/leases/{lease_id}/logs",
                type="logs",
                lease_id=lease_id,
                offset=0,
                data=printed,
            )
        outputs = []
        for path in lease["spec"].get("outputs", []):
            file = workdir / path
            if file.is_file():  # collected whatever the exit code
                sha = _put(self.api, file)
                outputs.append({"path": path, "sha256": sha, "size": file.stat().st_size})
        self.post(
            "/v1/receipts",
            type="receipt",
            lease_id=lease_id,
            exit_code=exit_code,
            outputs=outputs,
            root=root_of_files((o["path"], o["sha256"]) for o in outputs),
        )


def _put(api: Transport, file: Path) -> str:
    from pasar.crypto.hashing import sha256_file

    sha = sha256_file(file)
    api.upload(f"/v1/blobs/{sha}", file)
    return sha


def shout(workdir: Path, lease: dict[str, Any]) -> tuple[int, str]:
    """The test job: upper-case words.txt into out/loud.txt (what `run` would have done)."""
    words = (workdir / "words.txt").read_text()
    (workdir / "out").mkdir()
    (workdir / "out" / "loud.txt").write_text(words.upper())
    return 0, f"shouted {len(words.split())} words\n"


def run_command(workdir: Path, lease: dict[str, Any]) -> tuple[int, str]:
    """Run the spec's ``run`` for real, the way a provider executor must: through a shell, in
    the work folder, with the provider's Python first on PATH and the PASAR_* variables set."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PASAR_SHARD": str(lease["shard"]),
        "PASAR_SHARDS": str(lease["shards"]),
        "PASAR_LEASE": lease["lease_id"],
    }
    proc = subprocess.run(
        ["bash", "-c", lease["spec"]["run"]],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def client(market_server: MarketProcess, tmp_path: Path) -> Iterator[Client]:
    with Client(market_server.url, home=tmp_path / "client-home") as c:
        c.faucet("20 USDC")
        yield c


@pytest.fixture
def providers(market_server: MarketProcess, tmp_path: Path) -> Iterator[Any]:
    """``providers(execute, n=1)`` registers ``n`` provider doubles; all stop at the end."""
    started: list[ProviderDouble] = []

    def start(execute: Execute, n: int = 1) -> list[ProviderDouble]:
        new = [
            ProviderDouble(market_server, tmp_path / f"provider-{len(started) + i}", execute)
            for i in range(n)
        ]
        started.extend(new)
        return new

    yield start
    for p in started:
        p.stop()


SPEC = {
    "name": "shout",
    "run": "tr a-z A-Z < words.txt > out/loud.txt",
    "inputs": ["words.txt"],
    "outputs": ["out/loud.txt"],
    "resources": {"cpus": 1},
    "max_price_per_hour": "1 USDC",
    "max_duration": "10m",
}


def test_launch_wait_logs_and_a_verified_result(
    client: Client, providers: Any, tmp_path: Path
) -> None:
    (prov,) = providers(shout)
    project = tmp_path / "project"
    project.mkdir()
    (project / "words.txt").write_text("hello pasar market\n")
    job = client.launch(SPEC, base_dir=project)
    order = job.wait(timeout=30)
    assert order["status"] == "done"
    result = job.result(tmp_path / "result")
    assert (tmp_path / "result" / "out" / "loud.txt").read_text() == "HELLO PASAR MARKET\n"
    assert result.ok and result.shards[0].provider == prov.id
    assert "".join(job.logs()) == "shouted 3 words\n"
    assert "".join(job.logs(follow=True)) == "shouted 3 words\n"  # the lease is over: it ends
    assert job.status()["leases"][0]["bill"] is not None
    assert client.balance()["escrow"] == "0.00 USDC"
    assert any(j["order_id"] == job.id for j in client.jobs())
    assert client.stats()["providers"] == 1
    assert client.offers("cpus>=4", order="dph")[0]["provider"] == prov.id


def test_a_tampered_output_blob_is_refused(
    market_server: MarketProcess, client: Client, providers: Any, tmp_path: Path
) -> None:
    (prov,) = providers(shout)
    (tmp_path / "words.txt").write_text("trust but verify\n")
    job = client.launch(SPEC, base_dir=tmp_path)
    order = job.wait(timeout=30)
    prov.stop()
    (output,) = order["leases"][0]["receipt"]["outputs"]
    stored = market_server.home / "blobs" / output["sha256"][:2] / output["sha256"]
    stored.chmod(0o644)
    stored.write_bytes(b"TRUST BLINDLY\n")  # the market's copy is replaced behind its back
    with pytest.raises(PasarError) as err:
        job.result(tmp_path / "result")
    assert err.value.code == "output_mismatch"
    assert not (tmp_path / "result" / "out" / "loud.txt").exists()


def cube(x: int) -> dict[str, Any]:
    return {"cube": x**3, "shard": os.environ.get("PASAR_SHARD")}


def check_positive(x: int) -> int:
    if x < 0:
        raise ValueError(f"{x} is negative")
    return x * 10


def test_remote_returns_the_value_and_re_raises_remote_exceptions(
    client: Client, providers: Any, tmp_path: Path
) -> None:
    providers(run_command)[0]
    remote_cube = remote(client=client, max_duration="5m")(cube)
    assert remote_cube.remote(3) == {"cube": 27, "shard": "0"}

    async def both() -> list[Any]:  # .aio: awaitable, and two run at once on one loop
        return list(await asyncio.gather(remote_cube.remote.aio(2), remote_cube.remote.aio(4)))

    assert asyncio.run(both()) == [{"cube": 8, "shard": "0"}, {"cube": 64, "shard": "0"}]
    call = remote(client=client)(check_positive).spawn(-4)
    with pytest.raises(ValueError, match="-4 is negative") as err:
        call.get(timeout=60)
    notes = "\n".join(getattr(err.value, "__notes__", []))
    assert "remote traceback" in notes and "check_positive" in notes
    assert call.job.id in notes


def test_map_spreads_shards_and_raises_for_the_first_failing_index(
    client: Client, providers: Any, tmp_path: Path
) -> None:
    provs = providers(run_command, n=3)
    fn = remote(client=client)(check_positive)
    assert fn.map([1, 2, 3]) == [10, 20, 30]
    with pytest.raises(ValueError, match="-2 is negative") as err:
        fn.map([1, -2, -3])
    assert ".map element #1" in "\n".join(getattr(err.value, "__notes__", []))
    orders = client.jobs()
    assert orders[0]["spec"]["shards"] == 3  # one order of three shards, not three orders
    served = [len(p.done) for p in provs]
    assert sum(served) == 6


def test_a_remote_job_with_no_provider_fails_with_the_markets_reasons(
    market_server: MarketProcess, client: Client, tmp_path: Path
) -> None:
    fn = remote(client=client, cpus=64, ttl_s=1)(cube)
    with pytest.raises(PasarError) as err:
        fn.remote(1)
    assert err.value.code == "not_matched"
    assert not isinstance(err.value, RemoteError)


def test_async_client_launch_wait_result(
    market_server: MarketProcess, client: Client, providers: Any, tmp_path: Path
) -> None:
    providers(shout)
    (tmp_path / "words.txt").write_text("async too\n")

    async def flow() -> dict[str, Any]:
        async with AsyncClient(market_server.url, home=tmp_path / "client-home") as aclient:
            job = await aclient.launch(SPEC, base_dir=tmp_path)
            order = await job.wait(timeout=30)
            result = await job.result(tmp_path / "result")
            assert result.ok
            logs = [chunk async for chunk in job.logs(follow=True)]
            assert "".join(logs) == "shouted 2 words\n"
            assert (await aclient.balance())["account"] == client.account_id
            return order

    order = asyncio.run(flow())
    assert order["status"] == "done"
    assert (tmp_path / "result" / "out" / "loud.txt").read_text() == "ASYNC TOO\n"
