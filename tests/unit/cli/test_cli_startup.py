"""The CLI starts without loading what only some commands need (issue 14.10): the market's
store (SQLAlchemy, alembic), numpy (capacity proofs) and the provider agent load when a
command that uses them runs, not for `pasar --help`, `status` or `balance`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HEAVY = ("sqlalchemy", "alembic", "numpy", "pasar.market.store", "pasar.provider.agent")


def test_importing_the_cli_loads_none_of_the_heavy_modules() -> None:
    probe = f"import sys, pasar.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"pasar.cli.main loads {loaded} at start-up"


# what a starting market or provider never needs (``pasar devnet up``'s critical path, issue 13):
# Alembic (its database is already at the head revision: see the store's tests), psycopg (SQLite),
# numpy (loaded by the first capacity challenge), Jinja2 (loaded by the dashboard's first page)
# and PyYAML (loaded by the first YAML file read or written)
NOT_FOR_A_START = ("alembic", "mako", "psycopg", "numpy", "jinja2", "yaml")


@pytest.mark.parametrize(
    ("module", "unused"),
    [
        # h11: only the --mtls protocol subclasses uvicorn's h11 one (httptools parses HTTP)
        ("pasar.market.serve", (*NOT_FOR_A_START, "h11")),
        ("pasar.provider.agent", NOT_FOR_A_START),  # h11: httpx speaks HTTP/1.1 through it
    ],
)
def test_a_market_or_provider_start_loads_none_of_what_it_does_not_use(
    module: str, unused: tuple[str, ...]
) -> None:
    probe = f"import sys, {module}; print(','.join(m for m in {unused!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"{module} loads {loaded} at start-up"


# what `pasar balance` and `pasar status` never need: the job spec's models (launch, quote and
# result load them), YAML (-o yaml), the doctor's probes. (rich.syntax is not listed: httpx
# imports its own command line, which imports it, whenever rich and click are installed.)
NOT_FOR_BALANCE = ("pasar.core.spec", "pasar.client.inputs", "yaml", "pasar.doctor")


def test_the_client_a_balance_builds_loads_no_spec_machinery() -> None:
    probe = (
        "import sys, pasar.cli.main, pasar.client.client;"
        f"print(','.join(m for m in {NOT_FOR_BALANCE!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"the CLI and its client load {loaded} before any command runs"


def test_plain_http_loads_no_ca_bundle_yet_refuses_unverified_tls() -> None:
    """A plain-HTTP market's transport gets a context that trusts no CA: nothing is loaded, and
    an https request that slipped through it would fail verification rather than go unchecked."""
    import ssl

    from pasar.client.transport import tls_for

    context = tls_for("http://127.0.0.1:8000", None)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


def test_one_command_loads_its_own_module_and_no_other_command_module() -> None:
    """``pasar balance`` builds the tree of that one command (`app_for`); the whole tree, for
    ``pasar --help``, still has every command."""
    probe = (
        "import sys; from pasar.cli.main import app_for; app_for(['balance']);"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('pasar.cli.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    commands = {m for m in loaded.split(",") if m not in SUPPORT}
    assert commands == {"pasar.cli.network"}, loaded


# what every command's module may import: shared helpers, not commands
SUPPORT = {
    "pasar.cli.main",
    "pasar.cli.common",
    "pasar.cli.output",
    "pasar.cli.tables",
    "pasar.cli.help_text",
}


# what `pasar balance` and `pasar status` load only when a command needs it (issue 14.10): the
# transaction bodies (~80 models), result checking, the async client's event loop and httpx's
# own command line (pygments, rich.syntax)
LAZY = (
    "pasar.api.txs",
    "pasar.client.results",
    "pasar.crypto.merkle",
    "pasar.client.aio",
    "asyncio",
    "httpx._main",
    "pygments",
)

# runs `pasar ARGS` in a fresh interpreter, then says on stderr which of LAZY it loaded (an entry
# that is None in sys.modules is a module kept from loading, not a loaded one)
RUN_AND_LIST = (
    "import sys\n"
    "from pasar.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    f"loaded = [m for m in {LAZY!r} if sys.modules.get(m) is not None]\n"
    "print('LOADED=' + ','.join(loaded), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


class _Market(BaseHTTPRequestHandler):
    """The three reads `pasar balance` and `pasar status` make, answered as a market would."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v1/healthz":
            answer: dict[str, Any] = {"ok": True, "market": MARKET_ACCOUNT}
        elif path.startswith("/v1/accounts/"):
            answer = {"account": path.rsplit("/", 1)[1], "currency": "USDC"} | dict.fromkeys(
                ("balance", "earnings", "stake", "escrow"), "1.25 USDC"
            )
        elif path == "/v1/orders":
            answer = {"orders": []}
        else:
            self.send_error(404)
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _HostileMarket(_Market):
    """Answers an account read with something that is not a balance."""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/accounts/"):
            data = json.dumps({"balance": ["not", "money"]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()


MARKET_ACCOUNT = "pa1" + "a" * 56


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def stub_market() -> Iterator[str]:
    with _serving(_Market) as url:
        yield url


@pytest.mark.parametrize(
    ("command", "shown"), [("balance", "1.25 USDC"), ("status", "no orders yet")]
)
def test_balance_and_status_load_no_transaction_models_nor_job_machinery(
    stub_market: str, tmp_path: Path, command: str, shown: str
) -> None:
    env = {**os.environ, "PASAR_HOME": str(tmp_path), "PASAR_MARKET": stub_market}
    env.pop("PASAR_DEBUG", None)
    run = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert shown in run.stdout  # the command did its work: read, parsed and printed
    loaded = run.stderr.rsplit("LOADED=", 1)[1].strip()
    assert loaded == "", f"`pasar {command}` loads {loaded}"


def test_the_lazy_modules_are_loaded_where_a_command_needs_them() -> None:
    """The other side: building a transaction's call loads the transaction models (so the
    test above checks something that does load when it is needed)."""
    probe = (
        "import sys\n"
        "from pasar.client import calls\n"
        "before = 'pasar.api.txs' in sys.modules\n"
        "calls.faucet('1 USDC')\n"
        "print(before, 'pasar.api.txs' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]


def test_a_usage_error_is_still_exit_2_in_the_error_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The usage-error class comes from the click typer runs on (its vendored copy), without
    importing click itself: a bad option is still exit code 2, and under --json the error
    shape on stdout."""
    from pasar.cli.main import main

    assert main(["balance", "--json", "--no-such-flag"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "invalid_argument" and "--no-such-flag" in error["message"]
    assert main(["balance", "--no-such-flag"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_version_builds_no_command_yet_prints_the_version() -> None:
    """``pasar --version`` is answered by the root's eager option before any command is looked
    up: it imports no command module, and says the same as the whole tree's ``--version``."""
    probe = (
        "import sys; from pasar.cli.main import main; code = main(['--version']);"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('pasar.cli.')"
        f" and m not in {sorted(SUPPORT)!r})), code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith("pasar ") and out[1] == " 0", out


def test_a_market_answering_no_balance_is_exit_2_not_a_traceback(tmp_path: Path) -> None:
    """The answer model, imported only when the call is built, still refuses a hostile
    market's answer: one sentence and exit code 2, nothing printed as a balance."""
    with _serving(_HostileMarket) as url:
        env = {**os.environ, "PASAR_HOME": str(tmp_path), "PASAR_MARKET": url}
        env.pop("PASAR_DEBUG", None)
        run = subprocess.run(
            [sys.executable, "-m", "pasar", "balance"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "spendable" not in run.stdout
    assert "market" in run.stderr.lower()
