"""SHA-256 Merkle trees: a result's root over ``(path, sha256)`` pairs, and a root over step hashes.

Construction (fixed: roots are signed and compared across implementations):

- a leaf hashes as ``sha256(0x00 || leaf_data)`` and an inner node as
  ``sha256(0x01 || left || right)``. The distinct prefixes stop an inner node from posing as a
  leaf (a second-preimage attack that would "prove" a leaf that was never in the tree);
- levels are built left to right in pairs; an odd last node is **promoted** unchanged to the
  next level, not paired with a copy of itself. Duplicating it, as Bitcoin does, gives the lists
  ``[a, b, c]`` and ``[a, b, c, c]`` the same root (CVE-2012-2459), so a root would not pin down
  its contents;
- the empty tree's root is :data:`EMPTY_ROOT`, ``sha256(b"")``, which no leaf or node can equal
  since both hash at least one prefix byte.

Leaf data:

- files: ``len(path)`` as 4 bytes big-endian, the path in UTF-8, then the 32-byte digest. The
  length prefix keeps ``("ab", h)`` and ``("a", "b" + h…)`` apart. Pairs are sorted by path
  (code-point order, which is also UTF-8 byte order) so the root does not depend on listing
  order; a path may occur once, and must be a clean relative POSIX path;
- step hashes: the 32-byte hash itself, in the order given (step order is the point).

A proof carries the leaf's ``index`` and the tree's ``size`` besides the sibling hashes: the two
numbers fix which side each sibling sits on and where promotions happen, so a proof also pins
the leaf's position (step *i* of proof-of-learning, not merely "some step").
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pasar.core.errors import PasarError
from pasar.crypto.hashing import DIGEST_SIZE, HashError, parse_sha256

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
EMPTY_ROOT_HEX = EMPTY_ROOT.hex()  # e3b0c442…b855
MAX_PATH_BYTES = 4096


class MerkleError(PasarError):
    """Bad input to a tree (a duplicate or unclean path, a malformed digest) or a bad proof."""


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def check_path(path: object) -> str:
    """Refuse paths that could name one file two ways or escape a result folder."""

    def bad(why: str) -> MerkleError:
        return MerkleError(
            f"invalid path {path!r} in a file list: {why}",
            code="invalid_path",
            field="path",
            hint="use relative POSIX paths such as 'out/model.pt' (no '/', '.', '..' or '\\\\' "
            "tricks)",
        )

    if not isinstance(path, str):
        raise bad("not a string")
    if path == "":
        raise bad("empty")
    if path.startswith("/"):
        raise bad("absolute")
    if "\\" in path or "\x00" in path:
        raise bad("contains a backslash or NUL")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise bad("has an empty, '.' or '..' component")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad("not valid Unicode") from None
    if size > MAX_PATH_BYTES:
        raise bad(f"longer than {MAX_PATH_BYTES} bytes")
    return path


def path_conflict(paths: Iterable[str]) -> tuple[str, str] | None:
    """Two checked paths that cannot both be files of one folder — one is a folder of the
    other (``a`` and ``a/b``) — or None. Duplicates are not conflicts here (callers refuse
    them on their own). Why: such a list cannot be laid out on disk, so a lease given it fails
    the same way on every provider; refusing it up front keeps it off the fleet."""
    files = set(paths)
    for path in sorted(files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in files:
                return folder, path
    return None


def file_leaf(path: str, sha256: str | bytes) -> bytes:
    """The leaf hash of one ``(path, sha256)`` pair (for :func:`verify_proof`)."""
    encoded = check_path(path).encode("utf-8")
    digest = _digest(sha256, f"sha256 of {path}")
    return _leaf_hash(len(encoded).to_bytes(4, "big") + encoded + digest)


def hash_leaf(step_hash: str | bytes) -> bytes:
    """The leaf hash of one 32-byte step hash (bytes or hex)."""
    return _leaf_hash(_digest(step_hash, "step hash"))


def _digest(value: str | bytes, what: str) -> bytes:
    try:
        return parse_sha256(value, field=what)
    except HashError as exc:
        raise MerkleError(
            f"{what}: {exc.message}", code=exc.code, field=what, hint=exc.hint
        ) from None


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    out = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        out.append(level[-1])  # promoted, never duplicated (CVE-2012-2459)
    return out


@dataclass(frozen=True)
class MerkleProof:
    """An inclusion proof: the leaf's index, the tree's size, and siblings from leaf to root."""

    index: int
    size: int
    siblings: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        """Wire form: ``{"index", "size", "siblings": [hex, ...]}``."""
        return {
            "index": self.index,
            "size": self.size,
            "siblings": [s.hex() for s in self.siblings],
        }

    @classmethod
    def from_dict(cls, data: object) -> MerkleProof:
        """Parse the wire form, refusing anything malformed with a :class:`MerkleError`."""

        def bad(why: str) -> MerkleError:
            return MerkleError(
                f"malformed Merkle proof: {why}", code="invalid_proof", field="proof"
            )

        if not isinstance(data, Mapping) or set(data) != {"index", "size", "siblings"}:
            raise bad("expected an object with exactly index, size and siblings")
        index, size, siblings = data["index"], data["size"], data["siblings"]
        for name, value in (("index", index), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad(f"{name} must be a non-negative integer")
        if not isinstance(siblings, list) or len(siblings) > 64:
            raise bad("siblings must be a list of at most 64 hex digests")
        try:
            parsed = tuple(parse_sha256(s, field="proof.siblings") for s in siblings)
        except HashError as exc:
            raise bad(exc.message) from None
        return cls(index=index, size=size, siblings=parsed)


class MerkleTree:
    """A tree over leaf hashes (see :func:`file_leaf`, :func:`hash_leaf`), kept for proofs."""

    __slots__ = ("_levels", "paths")

    def __init__(self, leaves: Iterable[bytes], *, paths: Sequence[str] = ()) -> None:
        level = [bytes(leaf) for leaf in leaves]
        if any(len(leaf) != DIGEST_SIZE for leaf in level):
            raise MerkleError("every leaf hash is 32 bytes", code="invalid_leaf")
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = _next_level(level)
            self._levels.append(level)
        self.paths: tuple[str, ...] = tuple(paths)

    @classmethod
    def from_files(cls, pairs: Iterable[tuple[str, str | bytes]]) -> MerkleTree:
        """A tree over ``(path, sha256)`` pairs, sorted by path; duplicate paths are refused."""
        items = sorted(pairs, key=lambda pair: check_path(pair[0]))
        for (a, _), (b, _) in itertools.pairwise(items):
            if a == b:
                raise MerkleError(
                    f"path {a!r} occurs twice in the file list",
                    code="duplicate_path",
                    field="path",
                    hint="list each file once",
                )
        return cls((file_leaf(p, h) for p, h in items), paths=[p for p, _ in items])

    @classmethod
    def from_hashes(cls, hashes: Iterable[str | bytes]) -> MerkleTree:
        """A tree over 32-byte hashes (bytes or hex) in the order given."""
        return cls(hash_leaf(h) for h in hashes)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    @property
    def root_hex(self) -> str:
        return self.root.hex()

    def leaf(self, index: int) -> bytes:
        return self._levels[0][self._check_index(index)]

    def index_of(self, path: str) -> int:
        """The leaf index of ``path`` in a tree built by :meth:`from_files`."""
        try:
            return self.paths.index(path)
        except ValueError:
            raise MerkleError(f"no file {path!r} in this tree", code="unknown_path") from None

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not 0 <= index < self.size:
            raise MerkleError(
                f"leaf index {index} is outside a tree of {self.size} leaves", code="invalid_index"
            )
        return index

    def proof(self, index: int) -> MerkleProof:
        """The inclusion proof of leaf ``index``."""
        i = self._check_index(index)
        siblings: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):  # otherwise this node is promoted: no sibling at this level
                siblings.append(level[sibling])
            i //= 2
        return MerkleProof(index=index, size=self.size, siblings=tuple(siblings))


def root_of_files(pairs: Iterable[tuple[str, str | bytes]]) -> str:
    """The hex root over ``(path, sha256)`` pairs (any order in, sorted by path inside)."""
    return MerkleTree.from_files(pairs).root_hex


def root_of_hashes(hashes: Iterable[str | bytes]) -> str:
    """The hex root over 32-byte hashes (bytes or hex) in the order given, e.g. training steps."""
    return MerkleTree.from_hashes(hashes).root_hex


def verify_proof(root: str | bytes, leaf: str | bytes, proof: MerkleProof) -> bool:
    """True when ``proof`` shows that leaf hash ``leaf`` sits at ``proof.index`` under ``root``.

    ``root`` and ``leaf`` may be hex or 32 bytes; a malformed one is simply not proven (False).
    """
    try:
        root_b = parse_sha256(root)
        node = parse_sha256(leaf)
    except HashError:
        return False
    index, size = proof.index, proof.size
    if not 0 <= index < size:
        return False
    siblings = iter(proof.siblings)
    while size > 1:
        if index % 2 == 0 and index == size - 1:
            pass  # the odd last node is promoted unchanged
        else:
            sibling = next(siblings, None)
            if sibling is None or len(sibling) != DIGEST_SIZE:
                return False
            node = _node_hash(node, sibling) if index % 2 == 0 else _node_hash(sibling, node)
        index //= 2
        size = (size + 1) // 2
    if next(siblings, None) is not None:
        return False  # extra siblings: not the proof of this position
    return node == root_b
