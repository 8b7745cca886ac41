"""The order in which a devnet starts its processes (issue 13, the cold start): over plain HTTP
the devnet binds the market's socket itself, so the providers start while the market does; a
``--port`` it cannot bind (or TLS) keeps the old order: the market listening first."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pasar.devnet import Devnet, DevnetConfig, Member


def _record_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Replace the process-level steps with ones that record what was asked, in order."""
    steps: list[tuple[Any, ...]] = []

    def spawn(
        self: Devnet, member: Member, args: list[str], pass_fds: tuple[int, ...] = ()
    ) -> None:
        steps.append(("spawn", member.name, args, pass_fds))
        self.members.append(member)

    def wait_ready(self: Devnet, members: list[Member], prefix: str, timeout: float) -> None:
        steps.append(("wait", [m.name for m in members]))
        for m in members:
            m.ready = self.url or "http://127.0.0.1:1" if m.name == "market" else f"pa1{m.name}"

    monkeypatch.setattr(Devnet, "_spawn", spawn)
    monkeypatch.setattr(Devnet, "_wait_ready", wait_ready)
    monkeypatch.setattr(Devnet, "_preflight", lambda self: self.config.logs.mkdir(parents=True))
    for step in ("_fund_providers", "_start_verifiers", "_fund_client"):
        monkeypatch.setattr(Devnet, step, lambda self, *a: None)
    monkeypatch.setattr(Devnet, "_write_record", lambda self: None)
    return steps


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_providers_start_while_the_market_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = _record_steps(monkeypatch)
    net = Devnet(DevnetConfig(home=tmp_path, providers=2, verifiers=0))
    net.start()
    kinds = [(s[0], s[1]) for s in steps]
    assert kinds == [
        ("spawn", "market"),
        ("spawn", "provider-1"),
        ("spawn", "provider-2"),
        ("wait", ["market"]),
        ("wait", ["provider-1", "provider-2"]),
    ]
    market_args, fds = steps[0][2], steps[0][3]
    port = int(_arg(market_args, "--port") or 0)
    assert port > 0 and net.url == f"http://127.0.0.1:{port}"
    assert fds == (int(_arg(market_args, "--listen-fd") or -1),)
    for provider in steps[1:3]:
        assert _arg(provider[2], "--market") == net.url


def test_a_port_it_cannot_bind_starts_the_market_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The market then binds ``--port`` itself (and fails with its own log when it is taken)."""
    steps = _record_steps(monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        Devnet(DevnetConfig(home=tmp_path, providers=1, verifiers=0, port=port)).start()
    assert [(s[0], s[1]) for s in steps] == [
        ("spawn", "market"),
        ("wait", ["market"]),
        ("spawn", "provider-1"),
        ("wait", ["provider-1"]),
    ]
    assert _arg(steps[0][2], "--listen-fd") is None and steps[0][3] == ()
    assert _arg(steps[0][2], "--port") == str(port)
