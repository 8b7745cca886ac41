"""What `make demo` shows until the local network exists: the foundation, working for real.

Each step prints what it demonstrates. Nothing is simulated: a real key pair is written to a
temporary $PASAR_HOME with mode 0600, a real job spec file is validated, a real signature is
checked and a tampered copy refused, and a Merkle root is built over real output files.
"""

from __future__ import annotations

import copy
import stat
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from pasar import __version__
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.resources import Inventory, fit
from pasar.core.spec import load_spec
from pasar.crypto.envelope import sign, verify, wall_clock_ms
from pasar.crypto.hashing import sha256_file
from pasar.crypto.identity import Identity, load_identity, save_identity
from pasar.crypto.merkle import MerkleTree, verify_proof

console = Console()
EXAMPLES = Path(__file__).resolve().parent


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def main() -> int:
    console.print(f"[bold]pasar {__version__}[/] — foundation demo (the market itself comes next)")
    with tempfile.TemporaryDirectory(prefix="pasar-demo-") as tmp:
        home = Path(tmp) / "home"

        step("1. an identity: Ed25519 key file, mode 0600, account id with a checksum")
        path = save_identity(Identity.generate(), "client", home)
        client = load_identity("client", home)
        console.print(f"key file {path} mode {stat.filemode(path.stat().st_mode)}")
        console.print(f"account id {client.account_id}")

        step("2. a job spec: validated, normalized, escrow computed in integer micro-units")
        spec = load_spec((EXAMPLES / "gpu-train.yaml").read_text(), "examples/gpu-train.yaml")
        request = spec.to_request()
        console.print(f"'{spec.name}' needs per lease: {request.describe()}")
        console.print(f"max escrow: {spec.max_escrow()} ({spec.max_escrow().micros} micro-units)")
        bad = "run: echo\nmax_price_per_hour: 1.5\nresources: {accelerators: A10O:1}\n"
        try:
            load_spec(bad, "typo.yaml")
        except PasarError as err:
            console.print("a spec with mistakes gets every one of them at once:")
            console.print(err.render(), markup=False, highlight=False)

        step("3. resources: does a provider fit the job, and if not, why")
        for name, inventory in {
            "8× H100 box": Inventory.build(gpus={"H100-80GB": 8}, cpus=64, memory_gb=512,
                                          disk_gb=2000),
            "gaming PC": Inventory.build(gpus={"NVIDIA GeForce RTX 4090": 1}, cpus=16,
                                         memory_gb=32, disk_gb=500),
        }.items():  # fmt: skip
            result = fit(request, inventory)
            verdict = "fits" if result.ok else "does not fit: " + "; ".join(result.reasons)
            console.print(f"{name} ({inventory.describe_gpus()}): {verdict}")

        step("4. a signed envelope: verified, and any tampering refused")
        body = {"order": spec.to_dict(), "escrow": str(spec.max_escrow())}
        market = Identity.generate().account_id  # the market the request is for
        envelope = sign(body, client, now_ms=wall_clock_ms(), market=market)
        ok = verify(
            envelope, now_ms=wall_clock_ms(), market=market, expected_signer=client.account_id
        )
        console.print(f"verified: signer {ok.signer[:16]}…, tx digest {ok.digest[:16]}…")
        forged = copy.deepcopy(envelope)
        forged["body"]["escrow"] = str(Money.parse("999 USDC"))
        try:
            verify(forged, now_ms=wall_clock_ms(), market=market)
            console.print("[red]tampered envelope accepted — this is a bug[/]")
            return 1
        except PasarError as err:
            console.print(f"tampered escrow refused: {err.code} ({err.status}) — {err.message}")

        step("5. a result: Merkle root over (path, sha256) of output files, with a proof")
        out = Path(tmp) / "outputs"
        out.mkdir()
        for i in range(5):
            (out / f"frame-{i}.txt").write_text(f"frame {i}\n" * (i + 1))
        pairs = [(p.name, sha256_file(p)) for p in sorted(out.iterdir())]
        tree = MerkleTree.from_files(pairs)
        proof = tree.proof(2)
        console.print(f"root {tree.root_hex} over {tree.size} files")
        console.print(f"proof for {pairs[2][0]}: {verify_proof(tree.root, tree.leaf(2), proof)}")
        console.print(
            f"same proof for another file: {verify_proof(tree.root, tree.leaf(3), proof)}"
        )

    console.print("[green]demo finished: every step above ran for real on this machine[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
