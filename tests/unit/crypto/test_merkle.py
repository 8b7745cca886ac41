"""Merkle trees: fixed construction, proofs for every leaf, refusals."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.crypto.merkle import (
    EMPTY_ROOT,
    EMPTY_ROOT_HEX,
    LEAF_PREFIX,
    NODE_PREFIX,
    MerkleError,
    MerkleProof,
    MerkleTree,
    check_path,
    file_leaf,
    hash_leaf,
    root_of_files,
    root_of_hashes,
    verify_proof,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def step(i: int) -> bytes:
    return h(f"step {i}".encode())


digests = st.binary(min_size=32, max_size=32)
unique_hash_lists = st.lists(digests, min_size=1, max_size=40, unique=True)


def test_empty_root_is_sha256_of_nothing() -> None:
    assert h(b"") == EMPTY_ROOT
    assert EMPTY_ROOT_HEX == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of_hashes([]) == EMPTY_ROOT_HEX
    assert root_of_files([]) == EMPTY_ROOT_HEX


def test_known_construction() -> None:
    a, b, c = step(0), step(1), step(2)
    la, lb, lc = (h(LEAF_PREFIX + x) for x in (a, b, c))
    assert root_of_hashes([a]) == la.hex()
    assert root_of_hashes([a, b]) == h(NODE_PREFIX + la + lb).hex()
    # odd node promoted, not duplicated
    assert root_of_hashes([a, b, c]) == h(NODE_PREFIX + h(NODE_PREFIX + la + lb) + lc).hex()


def test_no_duplicate_last_leaf_ambiguity() -> None:  # CVE-2012-2459
    a, b, c = step(0), step(1), step(2)
    assert root_of_hashes([a, b, c]) != root_of_hashes([a, b, c, c])


def test_leaf_and_node_are_domain_separated() -> None:
    a, b = step(0), step(1)
    inner = h(NODE_PREFIX + hash_leaf(a) + hash_leaf(b))
    # an inner node fed in as a leaf value does not give the same root
    assert root_of_hashes([inner]) != root_of_hashes([a, b])


def test_order_matters_for_hashes() -> None:
    assert root_of_hashes([step(0), step(1)]) != root_of_hashes([step(1), step(0)])


def test_hex_and_bytes_agree() -> None:
    hashes = [step(i) for i in range(5)]
    assert root_of_hashes(hashes) == root_of_hashes([x.hex() for x in hashes])


def test_files_sorted_by_path() -> None:
    pairs = [("b.txt", step(1).hex()), ("a/x.bin", step(0).hex()), ("c", step(2).hex())]
    assert root_of_files(pairs) == root_of_files(list(reversed(pairs)))
    tree = MerkleTree.from_files(pairs)
    assert tree.paths == ("a/x.bin", "b.txt", "c")
    i = tree.index_of("b.txt")
    assert verify_proof(tree.root_hex, file_leaf("b.txt", step(1).hex()), tree.proof(i))


def test_file_leaf_binds_path_and_digest() -> None:
    d = step(0).hex()
    assert file_leaf("a", d) != file_leaf("b", d)
    assert file_leaf("a", d) != file_leaf("a", step(1).hex())
    assert root_of_files([("a", d)]) != root_of_files([("b", d)])


def test_duplicate_paths_refused() -> None:
    with pytest.raises(MerkleError) as info:
        root_of_files([("a", step(0).hex()), ("a", step(1).hex())])
    assert info.value.code == "duplicate_path"


@pytest.mark.parametrize("path", ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/", "a\\b", "a\0"])
def test_unclean_paths_refused(path: str) -> None:
    with pytest.raises(MerkleError) as info:
        check_path(path)
    assert info.value.code == "invalid_path"


@pytest.mark.parametrize("digest", ["ABC", "g" * 64, step(0).hex().upper(), b"short"])
def test_bad_digests_refused(digest: str | bytes) -> None:
    with pytest.raises(MerkleError):
        root_of_files([("a", digest)])
    with pytest.raises(MerkleError):
        root_of_hashes([digest])


@given(unique_hash_lists)
def test_proof_verifies_for_every_leaf_and_fails_for_any_other(hashes: list[bytes]) -> None:
    tree = MerkleTree.from_hashes(hashes)
    assert tree.root_hex == root_of_hashes(hashes)
    for i, x in enumerate(hashes):
        proof = tree.proof(i)
        assert verify_proof(tree.root, hash_leaf(x), proof)
        assert verify_proof(tree.root_hex, hash_leaf(x).hex(), proof)
        for j, other in enumerate(hashes):
            if j != i:
                assert not verify_proof(tree.root, hash_leaf(other), proof)


@given(unique_hash_lists, st.data())
def test_tampered_proofs_fail(hashes: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_hashes(hashes)
    i = data.draw(st.integers(0, len(hashes) - 1))
    proof = tree.proof(i)
    leaf = hash_leaf(hashes[i])
    if proof.siblings:
        k = data.draw(st.integers(0, len(proof.siblings) - 1))
        flipped = bytes([proof.siblings[k][0] ^ 1]) + proof.siblings[k][1:]
        siblings = (*proof.siblings[:k], flipped, *proof.siblings[k + 1 :])
        assert not verify_proof(tree.root, leaf, MerkleProof(i, proof.size, siblings))
        assert not verify_proof(tree.root, leaf, MerkleProof(i, proof.size, proof.siblings[:-1]))
    assert not verify_proof(tree.root, leaf, MerkleProof(i, proof.size, (*proof.siblings, leaf)))
    other_index = data.draw(st.integers(0, len(hashes)))
    if other_index != i:
        assert not verify_proof(
            tree.root, leaf, MerkleProof(other_index, proof.size, proof.siblings)
        )
    assert not verify_proof(h(b"other root"), leaf, proof)


@given(st.lists(st.tuples(st.text(alphabet="abc/", min_size=1, max_size=6), digests), max_size=20))
def test_file_proofs(pairs: list[tuple[str, bytes]]) -> None:
    clean: dict[str, bytes] = {}
    for path, d in pairs:
        try:
            clean[check_path(path)] = d
        except MerkleError:
            continue
    tree = MerkleTree.from_files(list(clean.items()))
    for path, d in clean.items():
        assert verify_proof(tree.root, file_leaf(path, d), tree.proof(tree.index_of(path)))


def test_proof_wire_round_trip() -> None:
    tree = MerkleTree.from_hashes([step(i) for i in range(7)])
    proof = tree.proof(6)
    wire = proof.to_dict()
    assert all(isinstance(s, str) and len(s) == 64 for s in wire["siblings"])
    assert MerkleProof.from_dict(wire) == proof


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"index": 0, "size": 1},
        {"index": -1, "size": 1, "siblings": []},
        {"index": True, "size": 1, "siblings": []},
        {"index": 0, "size": 1, "siblings": ["zz"]},
        {"index": 0, "size": 1, "siblings": "ab"},
        {"index": 0, "size": 1, "siblings": [], "x": 1},
    ],
)
def test_malformed_proof_wire(bad: object) -> None:
    with pytest.raises(MerkleError) as info:
        MerkleProof.from_dict(bad)
    assert info.value.code == "invalid_proof"


def test_proof_index_bounds() -> None:
    tree = MerkleTree.from_hashes([step(0)])
    assert tree.proof(0).siblings == ()
    with pytest.raises(MerkleError):
        tree.proof(1)
    with pytest.raises(MerkleError):
        MerkleTree.from_hashes([]).proof(0)


def test_verify_proof_with_garbage_root_is_false() -> None:
    tree = MerkleTree.from_hashes([step(0), step(1)])
    assert not verify_proof("nothex", hash_leaf(step(0)), tree.proof(0))
    assert not verify_proof(tree.root, b"short", tree.proof(0))


def test_proof_sizes_are_logarithmic() -> None:
    tree = MerkleTree.from_hashes([step(i) for i in range(1000)])
    assert max(len(tree.proof(i).siblings) for i in range(0, 1000, 37)) <= 10
