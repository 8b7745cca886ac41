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

from money_checks import assert_conserved
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
    """Secrets reach the job and never the public chain; ordered alternatives travel with the
    order and the market takes the first a provider fits (the decision names who fits which);
    an order carrying malformed alternatives (17 of them, nested) is refused with the field
    named, nothing escrowed."""
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

        # ordered alternatives: nobody has 64 CPUs; the order carries both and the market
        # matches it under the 1-CPU one
        task = {
            "run": "echo cpus=$SKYPILOT_NUM_NODES",
            "max_duration": "5m",
            "resources": {"ordered": [{"cpus": 64}, {"cpus": 1}]},
        }
        job = client.launch(task)
        assert job.decided is not None and job.decided.alternative == 1
        assert job.decided.spec.resources.alternatives is not None  # sent with the order
        line = next(x for x in job.decided.lines if x.startswith("resources.alternatives"))
        assert "[0] 64 CPUs" in line and "0 provider(s) fit" in line, line
        assert f"[1] 1 CPU, 1 GB memory, 1 GB disk: 1 provider(s) fit ({provider.account})" in line
        order = job.wait(timeout=60)
        assert order["status"] == "done" and order["leases"][0]["alternative"] == 1, order

        # a hostile client sends malformed alternatives: refused, nothing moves
        before = client.balance()
        spec = Draft.of({**task, "max_price_per_hour": "1 USDC"}).spec()
        private = private_part_of(spec, [])
        client._upload(private.commitment, private.to_bytes())
        for resources, code in (
            ({"alternatives": [{"cpus": 1}] * 17, "pick": "ordered"}, "too_many_alternatives"),
            (
                {"alternatives": [{"alternatives": [{"cpus": 1}], "pick": "ordered"}],
                 "pick": "ordered"},
                "nested_alternatives",
            ),
        ):  # fmt: skip
            fields = order_fields(spec, private)
            fields["spec"] = {**fields["spec"], "resources": resources}
            with pytest.raises(PasarError) as info:
                client._call(calls.create_order(fields, None))
            assert info.value.status // 100 == 4, info.value
            assert "alternatives" in info.value.message, info.value
            with pytest.raises(PasarError) as info:  # the quote route refuses it too
                client._call(calls.quote(fields["spec"], None))
            assert info.value.status // 100 == 4
            assert code in {info.value.code, *(d.code for d in info.value.details or ())}
        assert client.balance() == before
    assert_conserved(market_server.url)


def test_a_waiting_order_is_matched_by_a_provider_fitting_only_its_second_alternative(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    """``any_of: [{accelerators: H100:1}, {cpus: 2, memory: 2}]`` with nobody on the market:
    the order waits with both; a provider without a GPU (it fits only the second) starts and
    gets it; the job runs under that alternative's limits (2 GB address space, 2 CPUs × the
    duration of CPU time), not the base's (1 CPU, 1 GB); ``pasar status`` names it."""
    task = {
        "run": "grep -E 'Max (address space|cpu time)' /proc/self/limits; "
        "echo gpus=$SKYPILOT_NUM_GPUS_PER_NODE",
        "max_price_per_hour": "1 USDC",
        "max_duration": "5m",
        "resources": {"any_of": [{"accelerators": "H100:1"}, {"cpus": 2, "memory": 2}]},
    }
    home = tmp_path / "client"
    with Client(market_server.url, home=home) as client:
        client.faucet("10 USDC")
        job = client.launch(task)
        assert job.decided is not None and job.decided.spec.resources.pick == "cheapest"
        waiting = job.status()
        assert waiting["status"] == "open" and not waiting["leases"], waiting
        explained = job.explain()
        assert "[0] 1× H100" in explained["request"] and "[1] 2 CPUs" in explained["request"]
        spawn_provider(market_server.url, tmp_path / "p", "--price-cpu-hour", PRICE_CPU_HOUR)
        order = job.wait(timeout=120)
        assert order["status"] == "done", order
        (lease,) = order["leases"]
        assert lease["alternative"] == 1 and lease["cpus"] == "2" and lease["gpus"] is None
        assert lease["price_per_hour"] == "0.10 USDC"  # billed at 2 CPUs × the provider's ask
        text = "".join(job.logs())
        # /proc/self/limits: "Max cpu time  <soft> <hard> seconds", "Max address space ..."
        soft = {
            " ".join(line.split()[:3]): line.split()[3]
            for line in text.splitlines()
            if line.startswith("Max ")
        }
        assert soft["Max address space"] == str(2 * 1024**3), text  # memory: 2, not 1
        assert soft["Max cpu time"] == str(2 * 300), text  # cpus: 2 × max_duration 300 s
        assert "gpus=0" in text, text
        shown = pasar(home, market_server.url, "status", job.id)
        assert shown.returncode == 0 and "[1]" in shown.stdout, shown.stdout + shown.stderr
        # explain and the launch plan say which alternative each provider satisfies
        explained = pasar(home, market_server.url, "explain", job.id)
        assert explained.returncode == 0, explained.stdout + explained.stderr
        assert "alternative" in explained.stdout and "[1]" in explained.stdout, explained.stdout
        file = tmp_path / "any-of.yaml"
        file.write_text(
            "run: echo hi\nresources:\n  any_of:\n    - accelerators: H100:1\n    - cpus: 1\n",
            encoding="utf-8",
        )
        dry = pasar(home, market_server.url, "launch", str(file), "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "[0] 1× H100" in dry.stdout and "0 provider(s) fit" in dry.stdout, dry.stdout
        flat = " ".join(dry.stdout.split())  # the terminal wraps long lines
        assert "cap 0.0625 USDC <- the market would take it now" in flat, dry.stdout
        assert "alternative" in dry.stdout and "[1]" in dry.stdout, dry.stdout
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
