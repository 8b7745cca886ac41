"""Sealed-job data path: streamed encryption and decryption of a file, MB/s, one JSON line.

A sealed job (docs/privacy.md §2) encrypts every input on the client and decrypts it on the
provider, and the other way round for outputs; both also hash the file (content addresses,
plaintext checks). The floor is what every job already pays: one SHA-256 pass over the file,
measured in the same run, so the ratio says what sealing adds on this machine.

    python benchmarks/bench_sealing.py [--mib 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from pasar.crypto.hashing import sha256_file
from pasar.crypto.sealing import CHUNK_BYTES, decrypt_file, encrypt_file, new_data_key


def _best(fn: Any, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(mib: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        plain, sealed, opened = Path(tmp) / "plain", Path(tmp) / "sealed", Path(tmp) / "opened"
        with plain.open("wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        key = new_data_key()
        hash_s = _best(lambda: sha256_file(plain))
        encrypt_s = _best(lambda: encrypt_file(plain, sealed, key))
        decrypt_s = _best(lambda: decrypt_file(sealed, opened, key))
        overhead = sealed.stat().st_size / plain.stat().st_size - 1
        assert sha256_file(opened) == sha256_file(plain)
    return {
        "name": "sealed_file_throughput",
        "value": round(mib / encrypt_s, 1),
        "unit": "MiB/s (encrypt + hash both sides)",
        "encrypt_mib_s": round(mib / encrypt_s, 1),
        "decrypt_mib_s": round(mib / decrypt_s, 1),
        "sha256_floor_mib_s": round(mib / hash_s, 1),
        "encrypt_vs_floor": round(hash_s / encrypt_s, 3),
        "decrypt_vs_floor": round(hash_s / decrypt_s, 3),
        "size_overhead": round(overhead, 6),
        "chunk_bytes": CHUNK_BYTES,
        "mib": mib,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="file size in MiB (default 64)")
    print(json.dumps(run(parser.parse_args().mib)))


if __name__ == "__main__":
    main()
