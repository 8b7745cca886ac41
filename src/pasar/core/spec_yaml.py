"""Line-number-aware YAML loading for job specs, and the one error type specs raise.

Why not ``yaml.safe_load``: it forgets where each value came from, so a validation error could
name the field but not the line; and it silently keeps the last of two duplicate keys. Here the
text is composed into nodes, turned into plain Python data by hand, and every path (``("resources",
"accelerators")``, ``("inputs", 2)``) is mapped to the line it starts on. Anchors, aliases and
merge keys (``<<``) keep working; custom tags are refused.

Pure: takes the text and the name to report; whoever reads the file does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pasar.core.errors import ErrorDetail, PasarError

if TYPE_CHECKING:  # PyYAML loads with the first file read (~15 ms a process that reads none)
    from yaml.nodes import MappingNode, Node

Path = tuple[str | int, ...]


class SpecError(PasarError):
    """Everything wrong with one job spec: ``details`` has one entry (line, field) per problem."""

    @classmethod
    def of(cls, source: str, details: Sequence[ErrorDetail]) -> SpecError:
        n = len(details)
        noun = "problem" if n == 1 else "problems"
        first = details[0] if details else None
        hint = first.hint if n == 1 and first is not None else None
        if n == 1 and first is not None:
            where = f"{source}, line {first.line}" if first.line is not None else source
            at = f" ({first.field})" if first.field else ""
            message = f"{where}: invalid job spec{at}: {first.message}"
        else:
            message = f"{source}: {n} {noun} in the job spec"
        return cls(
            message,
            code=first.code if n == 1 and first is not None else "invalid_spec",
            field=first.field if n == 1 and first is not None else None,
            hint=hint,
            details=list(details),
        )

    def render(self) -> str:
        """Like :meth:`PasarError.render`, without repeating a lone problem the message states."""
        if len(self.details) != 1:
            return super().render()
        return f"error: {self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class LoadedYaml:
    """Plain data (dicts, lists, scalars) and the line (1-based) each path starts on."""

    data: Any
    lines: Mapping[Path, int]


def describe_value(value: object) -> str:
    """How a found value is shown in an error: ``1.5 (a number)``, ``a list``, ``nothing``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"{shown!r} (text)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def dotted(path: Sequence[str | int]) -> str:
    """``("inputs", 2)`` → ``inputs[2]``; ``("resources", "cpus")`` → ``resources.cpus``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def line_of(lines: Mapping[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its nearest ancestor that the file has (a missing key)."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


class _Builder:
    def __init__(self) -> None:
        import yaml

        self.yaml = yaml
        self.loader = yaml.SafeLoader("")
        self.lines: dict[Path, int] = {}
        self.errors: list[ErrorDetail] = []

    def _error(self, node: Node, path: Path, message: str, hint: str | None = None) -> None:
        self.errors.append(
            ErrorDetail(
                "yaml_syntax",
                message,
                field=dotted(path) or None,
                hint=hint,
                line=node.start_mark.line + 1,
            )
        )

    def build(self, node: Node, path: Path) -> Any:
        from yaml.nodes import MappingNode, SequenceNode

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, i)))
            return items
        return self._scalar(node, path)

    def _scalar(self, node: Node, path: Path) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except self.yaml.YAMLError as exc:
            self._error(node, path, f"cannot read this value: {exc}", "remove the custom tag")
            return None

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        try:
            self.loader.flatten_mapping(node)  # resolves merge keys (<<) in place, merged first
        except self.yaml.YAMLError as exc:
            self._error(node, path, f"cannot merge keys: {exc}")
            return {}
        merged = len(node.value) - explicit
        out: dict[str, Any] = {}
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, self.yaml.ScalarNode):
                self._error(key_node, path, "a key must be a plain word, found a list or mapping")
                continue
            key = key_node.value  # the text as written: "yes:" is the key "yes", not True
            key_path = (*path, key)
            if key in from_merge:  # an explicit key overrides a merged one, as YAML says
                out.pop(key)
                from_merge.discard(key)
            if index < merged:
                from_merge.add(key)
            if key in out:
                first = self.lines.get(key_path)
                self._error(
                    key_node,
                    key_path,
                    f"duplicate key {key!r} (first on line {first})",
                    "keep one of them; YAML would silently use the last",
                )
                continue
            self.lines[key_path] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, key_path)
        return out


def load_yaml(text: str, source: str) -> LoadedYaml:
    """Parse one YAML document; syntax errors become a :class:`SpecError` naming the line."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "not valid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise SpecError.of(
            source,
            [
                ErrorDetail(
                    "yaml_syntax",
                    f"invalid YAML: {problem}{context}",
                    hint="check the indentation and that every `key: value` pair is on its own "
                    "line; quote values that contain ': ' or start with a special character",
                    line=line,
                )
            ],
        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare (encoding)
        raise SpecError.of(source, [ErrorDetail("yaml_syntax", f"invalid YAML: {exc}")]) from None
    if node is None:
        raise SpecError.of(
            source,
            [
                ErrorDetail(
                    "empty_spec",
                    "the file is empty",
                    hint="a job needs at least run, max_price_per_hour and max_duration, e.g. "
                    "run: echo hello",
                    line=1,
                )
            ],
        )
    builder = _Builder()
    data = builder.build(node, ())
    if builder.errors:
        raise SpecError.of(source, builder.errors)
    return LoadedYaml(data, dict(builder.lines))
