"""SkyPilot task files run unchanged (issue 18) on a real market with real sandboxed providers:
a two-node task that reads ``SKYPILOT_NODE_IPS``/``SKYPILOT_NODE_RANK`` and sets no price cap or
duration (the SDK decides both from the market's quote and ``pasar config``, and says so), a
task whose ``secrets`` reach the job but never the public chain, and ``pasar launch`` showing the
decided cap and duration (``--dry-run``) and refusing to escrow without a terminal or ``--yes``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from pasar.client import calls
from pasar.client.aio import AsyncClient
from pasar.client.client import Client, Decision
from pasar.client.inputs import private_part_of
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.private_part import PrivatePart, order_fields
from pasar.core.spec_draft import Draft

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "skypilot"
PRICE_CPU_HOUR = "0.05"  # each provider's ask per CPU-hour: a 1-CPU lease costs 0.05 USDC/h


def assert_conserved(url: str) -> None:
    """Every account but the mint sums to exactly what the mint issued."""
    values = httpx.get(f"{url}/v1/state/balances", timeout=10).json()["balances"]
    minted = -sum(Money.parse(v).micros for k, v in values.items() if k.startswith("mint/"))
    rest = sum(Money.parse(v).micros for k, v in values.items() if not k.startswith("mint/"))
    assert rest == minted, f"ledger not conserved: {values}"


def pasar(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pasar ARGS`` as a user runs it, stdin closed (not a terminal)."""
    env = {**os.environ, "PASAR_HOME": str(home), "PASAR_MARKET": url, "NO_COLOR": "1"}
    env["COLUMNS"] = "300"
    env.pop("PASAR_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "pasar", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def test_a_two_node_skypilot_task_runs_unchanged_with_its_cap_and_duration_decided(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    for i in range(2):
        spawn_provider(market_server.url, tmp_path / f"p{i}", "--price-cpu-hour", PRICE_CPU_HOUR)
    task = FIXTURES / "ddp-two-nodes.yaml"
    home = tmp_path / "client"
    with Client(market_server.url, home=home) as client:
        client.faucet("10 USDC")
        # the CLI shows what it would decide, and refuses to escrow without being asked
        dry = pasar(home, market_server.url, "launch", str(task), "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "max_price_per_hour: not in the spec: 0.0625 USDC = 1.25 × 0.05 USDC" in dry.stdout
        assert "max_duration: not in the spec: 1h (3600 s)" in dry.stdout
        assert "price cap 0.0625 USDC/h per lease; max duration 3600 s" in dry.stdout
        asked = pasar(home, market_server.url, "launch", str(task))
        assert asked.returncode == 2 and "--yes" in asked.stderr, asked.stdout + asked.stderr
        assert client.balance()["escrow"] == "0.00 USDC"  # nothing escrowed by either

        async def decide_async() -> Decision:
            async with AsyncClient(market_server.url, home=home) as aclient:
                return await aclient.decide(task)

        same = asyncio.run(decide_async())  # the async SDK decides the same way
        assert same.decided is not None and same.decided.lines[-1].startswith(
            "max_price_per_hour: not in the spec: 0.0625 USDC"
        )

        job = client.launch(task)
        assert job.decided is not None
        assert job.decided.max_price_from == "quote" and job.decided.max_duration_from == "config"
        cap = Money.parse(PRICE_CPU_HOUR + " USDC").scale(Fraction(5, 4))
        assert job.decided.spec.max_price_per_hour == cap
        assert job.decided.spec.max_duration == 3600
        order = job.wait(timeout=120)
        assert order["status"] == "done", order
        chain = httpx.get(f"{market_server.url}/v1/chain/txs", timeout=10)
        assert chain.status_code == 200 and cap.to_json() in chain.text  # the signed order's cap
        for lease in sorted(order["leases"], key=lambda x: x["shard"]):
            text = "".join(job.logs(shard=lease["shard"]))
            rank = lease["shard"]
            assert f"rank={rank} nodes=2 head=127.0.0.1 port=29500" in text, text
            assert f"gpus=0 task={job.id}" in text, text
            assert "ips=127.0.0.1,127.0.0.1" in text, text
    assert_conserved(market_server.url)


def test_secrets_alternatives_and_a_hostile_order_on_one_market(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    """Secrets reach the job and never the public chain; of ordered alternatives the first a
    provider takes is sent (the decision names who fits which); an order carrying its
    alternatives to the market itself is refused with the field named, nothing escrowed."""
    provider = spawn_provider(market_server.url, tmp_path / "p", "--price-cpu-hour", PRICE_CPU_HOUR)
    task = FIXTURES / "envs-secrets.yaml"
    with Client(market_server.url, home=tmp_path / "client") as client:
        client.faucet("10 USDC")
        job = client.launch(task)
        order = job.wait(timeout=60)
        assert order["status"] == "done", order
        text = "".join(job.logs())
        # the job saw the secret (its length only is printed) and its envs
        assert f"model=llama-3-8b epochs=3 token-length={len('hf_this_is_not_a_real_token')}" in (
            text
        )
        chain = httpx.get(f"{market_server.url}/v1/chain/txs", timeout=10)
        assert chain.status_code == 200 and job.id in chain.text
        assert "hf_this_is_not_a_real_token" not in chain.text
        assert "wandb_not_real_either" not in chain.text
        assert "HF_TOKEN" not in chain.text  # not even the names

        # --secret adds one from the command line; a plan never prints a secret's value
        dry = pasar(
            tmp_path / "client", market_server.url, "launch", str(task), "--dry-run", "--json",
            "--secret", "EXTRA=top-secret-value",
        )  # fmt: skip
        assert dry.returncode == 0 and "top-secret-value" not in dry.stdout + dry.stderr, dry
        plan = json.loads(dry.stdout)
        assert plan["spec"]["secrets"] == dict.fromkeys(
            ["EXTRA", "HF_TOKEN", "WANDB_API_KEY"], "***"
        )
        assert plan["decided"]["max_price_from"] == "quote"

        # ordered alternatives: nobody has 64 CPUs, so the 1-CPU one is sent
        task = {
            "run": "echo cpus=$SKYPILOT_NUM_NODES",
            "max_duration": "5m",
            "resources": {"ordered": [{"cpus": 64}, {"cpus": 1}]},
        }
        job = client.launch(task)
        assert job.decided is not None and job.decided.alternative == 1
        line = next(x for x in job.decided.lines if x.startswith("resources.alternatives"))
        assert "[0] 64 CPUs" in line and "0 provider(s) fit" in line, line
        assert f"[1] 1 CPU, 1 GB memory, 1 GB disk: 1 provider(s) fit ({provider.account})" in line
        assert job.wait(timeout=60)["status"] == "done"

        # a hostile client sends the alternatives themselves: refused, nothing moves
        before = client.balance()
        spec = Draft.of({**task, "max_price_per_hour": "1 USDC"}).spec()
        private = private_part_of(spec, [])
        client._upload(private.commitment, private.to_bytes())
        with pytest.raises(PasarError) as info:
            client._call(calls.create_order(order_fields(spec, private), None))
        assert info.value.status == 422 and info.value.field == "spec.resources.alternatives"
        with pytest.raises(PasarError) as info:  # the quote route refuses it the same way
            client._call(calls.quote(spec.public_dict(), None))
        assert info.value.field == "spec.resources.alternatives"
        assert client.balance() == before
    assert_conserved(market_server.url)


MOUNTS_TASK = """\
# SkyPilot's style: data copied to absolute paths on the machine
name: mounts
file_mounts:
  /data: ./d
  /app/config.yaml: ./cfg.yaml
run: |
  cat /data/x.txt /data/sub/y.txt /app/config.yaml > out.txt
  if [ -L /data/link ]; then echo link >> out.txt; else cat /data/link >> out.txt; fi
  echo changed > /data/x.txt && cat /data/x.txt >> out.txt
outputs: [out.txt]
max_duration: 5m
"""


def test_absolute_mounts_are_bound_per_lease(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    """A SkyPilot-style task mounting /data and a file at /app/config.yaml reads them there and
    may change its own copy; the next job on the same provider sees neither; a link in the
    uploaded folder is only ever its file's content; a hostile order mounting over the
    sandbox's own paths is refused by the market, the field named, nothing escrowed."""
    spawn_provider(market_server.url, tmp_path / "p", "--price-cpu-hour", PRICE_CPU_HOUR)
    project = tmp_path / "project"
    (project / "d" / "sub").mkdir(parents=True)
    (project / "d" / "x.txt").write_text("x-data\n")
    (project / "d" / "sub" / "y.txt").write_text("y-data\n")
    (project / "secret.txt").write_text("linked-content\n")
    (project / "d" / "link").symlink_to(project / "secret.txt")  # uploaded as the file itself
    (project / "cfg.yaml").write_text("lr: 0.1\n")
    (project / "task.yaml").write_text(MOUNTS_TASK)
    with Client(market_server.url, home=tmp_path / "client") as client:
        client.faucet("10 USDC")
        job = client.launch(project / "task.yaml")
        order = job.wait(timeout=60)
        assert order["status"] == "done", (order, "".join(job.logs()))
        job.result(tmp_path / "result")
        assert (tmp_path / "result" / "out.txt").read_text() == (
            "x-data\ny-data\nlr: 0.1\nlinked-content\nchanged\n"
        )
        assert (project / "d" / "x.txt").read_text() == "x-data\n"  # the job's copy changed

        # the next job on the same provider: no /data, no /app
        after = client.launch(
            {
                "run": "ls /data /app 2>&1 || echo absent",
                "max_duration": "5m",
                "max_price_per_hour": "1 USDC",
            }
        )
        assert after.wait(timeout=60)["status"] == "done"
        assert "absent" in "".join(after.logs()) and "x.txt" not in "".join(after.logs())

        # a hostile client skips the SDK's checks: the market refuses, nothing moves
        before = client.balance()
        fields = {"run": "cat /proc/x", "max_price_per_hour": "1 USDC", "max_duration": 60}
        spec = Draft.of(fields).spec()
        for dest in ("/proc", "/opt/pasar", "/usr", "/data/../etc"):
            honest = PrivatePart.of(spec, [], b"\7" * 32)
            private = PrivatePart(
                salt=honest.salt, spec={**honest.spec, "file_mounts": {dest: "./d"}}, inputs=()
            )
            client._upload(private.commitment, private.to_bytes())
            with pytest.raises(PasarError) as info:
                client._call(calls.create_order(order_fields(spec, private), None))
            assert 400 <= info.value.status < 500, info.value
            assert f"file_mounts.{dest}" in (info.value.field or ""), info.value.field
        assert client.balance() == before
    assert_conserved(market_server.url)
