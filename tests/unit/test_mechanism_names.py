"""Nothing outside ``core/pricing/`` compares mechanism names (DESIGN.md §2).

Callers ask the mechanism object what they need (``takes_bids``, ``opens_window``, its
``candidates``); a new mechanism is then a new module, not a new ``if`` in the state, the
agent or the CLI. This test reads every module of ``src/pasar`` and fails on a comparison with
a mechanism's name (``x == "auction"``, ``"book" != y``, ``x in ("auction", ...)``, a ``match``
case) or a table keyed by mechanism names, outside the pricing package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pasar.core.pricing import MECHANISM_NAMES

SRC = Path(__file__).resolve().parents[2] / "src" / "pasar"
PRICING = SRC / "core" / "pricing"
NAMES = frozenset(MECHANISM_NAMES)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES:
        return node.value
    return None


def _names_in(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {n for n in map(_name, node.elts) if n is not None}
    return set()


def offences(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, what)`` for each mechanism-name comparison or name-keyed table in ``tree``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.Eq | ast.NotEq):
                    name = next((n for n in map(_name, operands) if n is not None), None)
                    if name is not None:
                        found.append((node.lineno, f"compares with {name!r}"))
                        break
                if isinstance(op, ast.In | ast.NotIn) and len(_names_in(right)) >= 2:
                    found.append((node.lineno, f"tests membership in {sorted(_names_in(right))}"))
                    break
        elif isinstance(node, ast.MatchValue) and _name(node.value) is not None:
            found.append((node.lineno, f"matches case {_name(node.value)!r}"))
        elif isinstance(node, ast.Dict):
            keys = {n for n in (k and _name(k) for k in node.keys) if n is not None}
            if len(keys) >= 2:
                found.append((node.lineno, f"a table keyed by {sorted(keys)}"))
    return found


def test_no_module_outside_pricing_compares_mechanism_names() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if PRICING in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(SRC)}:{line}: {what}" for line, what in offences(tree)]
    assert problems == [], "mechanism names compared outside core/pricing:\n" + "\n".join(problems)


def test_the_check_finds_each_kind_of_comparison() -> None:
    """The structural test can fail: each form a name comparison takes is caught."""
    samples = {
        'if record.mechanism == "auction": pass': 1,
        'ok = "book" != mechanism': 1,
        'ok = m in ("tender", "stake")': 1,
        'match m:\n    case "performance": pass': 1,
        'TABLE = {"book": 1, "auction": 2}': 1,
        'ok = kind == "order.create"': 0,  # not a mechanism name
        'ok = m in ("stake", "unstake")': 0,  # one name among transaction types: not a table
    }
    for source, expected in samples.items():
        assert len(offences(ast.parse(source))) == expected, source
