"""``pasar cluster up/exec/status/down`` (issue 15): a long-running cluster of three nodes takes
commands on its head as steps of the same lease; only its client may send them, in order, with
a command it uploaded; down bills each node for its verified time. (Its Ray flavour is the
bootstrap of ``cluster: ray``: tests/integration/test_gang_jobs.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pasar.client import calls
from pasar.client.client import Client
from pasar.core.errors import PasarError
from pasar.core.money import Money

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a gang's network needs a root provider")

SPEC = """\
name: a-cluster
run: echo hello from step 0
num_nodes: 3
max_price_per_hour: "0.5 USDC"
max_duration: 10m
"""


def pasar(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASAR_HOME": str(home), "PASAR_MARKET": url, "NO_COLOR": "1"}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "pasar", *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def test_a_cluster_takes_steps_until_it_is_taken_down(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    url = market_server.url
    for i in range(3):
        spawn_provider(url, tmp_path / f"p{i}", "--price-cpu-hour", "0.05", "--allow-cluster")
    home = tmp_path / "client"
    spec = tmp_path / "cluster.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    assert pasar(home, url, "faucet", "10 USDC").returncode == 0
    up = pasar(home, url, "cluster", "up", str(spec), "--yes", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    cluster = json.loads(up.stdout)["cluster"]

    gang = pasar(
        home, url, "cluster", "exec", cluster, "--", "sh", "-c", 'echo "of $PASAR_NUM_NODES"'
    )
    assert gang.returncode == 0 and gang.stdout.strip() == "of 3", gang.stdout + gang.stderr
    failing = pasar(home, url, "cluster", "exec", cluster, "--", "sh", "-c", "echo oops; exit 3")
    assert failing.returncode == 3 and failing.stdout.strip() == "oops", failing.stdout
    shown = pasar(home, url, "cluster", "status", cluster, "--json")
    (order,) = json.loads(shown.stdout)["clusters"]
    assert order["status"] == "running" and len(order["steps"]) == 2

    with Client(url, home=home) as client:  # attacks on the steps, each refused
        mallory = Client(url, home=tmp_path / "mallory")
        mallory.faucet("1 USDC")
        stray = b"echo pwned\n"
        sha = hashlib.sha256(stray).hexdigest()
        mallory._upload(sha, stray)
        with pytest.raises(PasarError) as err:  # not the cluster's client
            mallory._call(calls.cluster_exec(cluster, 3, sha))
        assert err.value.status == 403
        with pytest.raises(PasarError) as err:  # a command the client never uploaded
            client._call(calls.cluster_exec(cluster, 3, sha))
        assert err.value.code == "blob_not_owned"
        own = b"echo mine\n"
        own_sha = hashlib.sha256(own).hexdigest()
        client._upload(own_sha, own)
        with pytest.raises(PasarError) as err:  # out of order
            client._call(calls.cluster_exec(cluster, 7, own_sha))
        assert err.value.code == "invalid_step"
        assert len(client.job(cluster).status()["steps"]) == 2  # nothing was added
        assert "pwned" not in "".join(client.job(cluster).logs(shard=0))

    down = pasar(home, url, "cluster", "down", cluster, "--json")
    assert down.returncode == 0, down.stdout + down.stderr
    with Client(url, home=home) as client:
        final = client.job(cluster).status()
        assert final["status"] == "cancelled"
        account = client.balance()
    spent = sum(
        (Money.parse(x["bill"]["billed"]) + Money.parse(x["bill"]["client_fee"])
         for x in final["leases"]),
        Money.zero("USDC"),
    )  # fmt: skip
    assert account["escrow"] == "0.00 USDC"
    assert Money.parse(account["balance"]) == Money.parse("10 USDC") - spent
