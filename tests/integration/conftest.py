"""Real market processes for integration tests: ``python -m pasar market serve`` in a subprocess.

Fixtures:

- ``market_server``: a fresh devnet market on a free port, home in ``tmp_path/market``; stopped
  (SIGTERM, then SIGKILL after 10 s) when the test ends.
- ``spawn_market``: the factory behind it, ``spawn_market(home, *extra_args, devnet=True)``, for
  tests that need several markets or other options; everything it starts is stopped at the end.
- ``module_market``: one market shared by a module (for read-mostly tests such as fuzzing).

A :class:`MarketProcess` has ``.url``, ``.home``, ``.proc``; ``.stop()`` (SIGTERM; returns the
exit code), ``.kill()`` (SIGKILL, i.e. a crash), ``.restart()`` (same home and options, a new
free port: use the new object's ``.url``) and ``.log()`` (the JSON log lines so far).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LISTENING_PREFIX = "pasar market listening on "
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0  # the server gives open long polls 5 s to finish


@dataclass
class MarketProcess:
    """One running ``pasar market serve``."""

    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    extra_args: tuple[str, ...]
    devnet: bool
    launcher: MarketLauncher
    stdout_path: Path
    stderr_path: Path

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` and wait; SIGKILL if it has not exited within ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL: what a crash or a power cut looks like to the market."""
        return self.stop(signal.SIGKILL)

    def restart(self, *extra_args: str) -> MarketProcess:
        """Stop this one if running, start another on the same home (and ``extra_args``)."""
        self.stop()
        return self.launcher.start(self.home, *(extra_args or self.extra_args), devnet=self.devnet)

    def log(self) -> list[dict[str, Any]]:
        """The JSON lines the server has logged on stderr so far."""
        out = []
        for line in self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class MarketLauncher:
    """Starts market processes and remembers them, so that none outlives its test."""

    started: list[MarketProcess] = field(default_factory=list)

    def start(self, home: Path, *extra_args: str, devnet: bool = True) -> MarketProcess:
        """``python -m pasar market serve --home HOME --port 0 [--devnet] EXTRA...``.

        ``extra_args`` may override ``--port``; the port is learnt from the listening line.
        """
        home.mkdir(parents=True, exist_ok=True)
        args = ("--port", "0", *(("--devnet",) if devnet else ()), *extra_args)
        n = len(self.started)
        stdout_path = home.parent / f"{home.name}.{n}.stdout"
        stderr_path = home.parent / f"{home.name}.{n}.stderr"
        env = {**os.environ, "PASAR_HOME": str(home), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        env.pop("PASAR_DEBUG", None)
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pasar", "market", "serve", "--home", str(home), *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        market = MarketProcess("", home, proc, extra_args, devnet, self, stdout_path, stderr_path)
        self.started.append(market)
        market.url = self._wait_listening(market)
        return market

    @staticmethod
    def _wait_listening(market: MarketProcess) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in market.stdout().splitlines():
                if line.startswith(LISTENING_PREFIX):
                    return line[len(LISTENING_PREFIX) :].strip()
            if market.proc.poll() is not None:
                raise RuntimeError(
                    f"pasar market serve exited with {market.proc.returncode} before listening:"
                    f"\n{market.stderr_path.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.05)
        market.kill()
        raise RuntimeError(
            f"pasar market serve did not print its listening line within {START_TIMEOUT_S} s:"
            f"\n{market.stderr_path.read_text(errors='replace')[-4000:]}"
        )

    def stop_all(self) -> None:
        for market in self.started:
            market.stop()


@pytest.fixture
def spawn_market() -> Iterator[Callable[..., MarketProcess]]:
    launcher = MarketLauncher()
    try:
        yield launcher.start
    finally:
        launcher.stop_all()


@pytest.fixture
def market_server(spawn_market: Callable[..., MarketProcess], tmp_path: Path) -> MarketProcess:
    return spawn_market(tmp_path / "market")


@pytest.fixture(scope="module")
def module_market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketProcess]:
    launcher = MarketLauncher()
    try:
        yield launcher.start(tmp_path_factory.mktemp("module-market") / "market")
    finally:
        launcher.stop_all()


# -- provider agents ------------------------------------------------------------------------------

PROVIDER_START_TIMEOUT_S = 60.0  # the first start runs the benchmark (about a second)


@dataclass
class ProviderProcess:
    """One running ``pasar provider start``."""

    account: str
    home: Path
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        # a stopping agent drains (its grace), then waits for a warm sandbox still starting
        # (up to 30 s) and for a capacity proof to reach its next step (up to 30 s): on a
        # loaded machine (two test files at once) that passed 60 s once
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )


def user_group(user: str) -> str:
    """The name of ``user``'s primary group (``nobody`` → ``nogroup`` on Debian)."""
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


@dataclass
class ProviderLauncher:
    started: list[ProviderProcess] = field(default_factory=list)

    role: str = "provider"  # or "verifier": the same agent life, another command

    def start(
        self, market_url: str, home: Path, *extra_args: str, user: str | None = None
    ) -> ProviderProcess:
        """``pasar ROLE start --market URL --home HOME EXTRA...``; waits until it serves.
        ``user``: run it as that (unprivileged) user, who is given ``home`` (the test runs as
        root; every folder above ``home`` must let the user through)."""
        home.mkdir(parents=True, exist_ok=True)
        as_user: dict[str, Any] = {}
        if user is not None:
            shutil.chown(home, user, user_group(user))
            as_user = {"user": user, "group": user_group(user), "extra_groups": []}
        n = len(self.started)
        stdout_path = home.parent / f"{home.name}.{n}.stdout"
        stderr_path = home.parent / f"{home.name}.{n}.stderr"
        env = {**os.environ, "PASAR_HOME": str(home), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pasar",
                    self.role,
                    "start",
                    "--market",
                    market_url,
                    "--home",
                    str(home),
                    *extra_args,
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                **as_user,
            )
        provider = ProviderProcess("", home, proc, stdout_path, stderr_path)
        self.started.append(provider)
        deadline = time.monotonic() + PROVIDER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in stdout_path.read_text(errors="replace").splitlines():
                if line.startswith(f"pasar {self.role} ") and len(line.split()) > 3:
                    provider.account = line.split()[2]
                    return provider
            if proc.poll() is not None:
                raise RuntimeError(f"provider exited with {proc.returncode}:\n{provider.output()}")
            time.sleep(0.05)
        provider.kill()
        raise RuntimeError(f"provider did not start in time:\n{provider.output()[-4000:]}")

    def stop_all(self) -> None:
        for provider in self.started:
            provider.stop(timeout=15)


@pytest.fixture
def spawn_provider() -> Iterator[Callable[..., ProviderProcess]]:
    launcher = ProviderLauncher()
    try:
        yield launcher.start
    finally:
        launcher.stop_all()


@pytest.fixture
def spawn_verifier() -> Iterator[Callable[..., ProviderProcess]]:
    """``pasar verifier start``: a verifier agent, as real as a provider."""
    launcher = ProviderLauncher(role="verifier")
    try:
        yield launcher.start
    finally:
        launcher.stop_all()
