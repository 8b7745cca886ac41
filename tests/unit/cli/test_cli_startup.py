"""The CLI starts without loading what only some commands need (issue 14.10): the market's
store (SQLAlchemy, alembic), numpy (capacity proofs) and the provider agent load when a
command that uses them runs, not for `pasar --help`, `status` or `balance`."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "numpy", "pasar.market.store", "pasar.provider.agent")


def test_importing_the_cli_loads_none_of_the_heavy_modules() -> None:
    probe = f"import sys, pasar.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"pasar.cli.main loads {loaded} at start-up"


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
