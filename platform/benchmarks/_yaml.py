"""Read a YAML file together with the line of every field, so each refusal can name it.

PyYAML's composer keeps each node's position; ``read_positioned_yaml`` builds
the plain value from the node tree and a map from dotted field paths
(``dataset.license``, ``answer.aliases.unsafe.1``) to 1-based line numbers.
Duplicate keys, which PyYAML would silently resolve to the last one, are
refused with both lines. ``read_yaml_mapping`` reads a benchmark or dataset
file that way and refuses, with their lines, what is not a mapping of fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ValidationFailed

__all__ = [
    "MAX_BENCHMARK_FILE_BYTES",
    "FieldLines",
    "PositionedYaml",
    "read_positioned_yaml",
    "read_yaml_mapping",
]

MAX_BENCHMARK_FILE_BYTES = 1024 * 1024  # the YAML file holds no items


@dataclass(frozen=True)
class FieldLines:
    """Where each field of a YAML file is written: dotted path -> 1-based line."""

    lines: Mapping[str, int]

    def line_of(self, field: str) -> int:
        """The line of ``field``, else of its nearest written parent (the file's first line)."""
        path = field
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return self.lines.get("", 1)


@dataclass(frozen=True)
class PositionedYaml:
    """A YAML document's value, its fields' lines and any duplicate keys (as problems)."""

    value: Any
    lines: FieldLines
    duplicates: list[tuple[int, str]]


def _walk(
    node: yaml.Node, path: str, lines: dict[str, int], duplicates: list[tuple[int, str]]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue  # merge keys and complex keys: the schema refuses what matters
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            field = f"{path}.{key}" if path else key
            if key in seen:
                duplicates.append(
                    (
                        line,
                        f"field '{field}': written twice (lines {seen[key]} and {line}); "
                        "YAML keeps only the last: remove one",
                    )
                )
            seen.setdefault(key, line)
            lines.setdefault(field, line)
            _walk(value_node, field, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            field = f"{path}.{index}" if path else str(index)
            lines.setdefault(field, item.start_mark.line + 1)
            _walk(item, field, lines, duplicates)


def read_positioned_yaml(text: str) -> PositionedYaml:
    """Parse one YAML document (safe constructors only) and note where each field is.

    Raises:
        yaml.YAMLError: the text is not valid YAML (its ``problem_mark`` has the line).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[str, int] = {"": node.start_mark.line + 1 if node is not None else 1}
    duplicates: list[tuple[int, str]] = []
    if node is not None:
        _walk(node, "", lines, duplicates)
    return PositionedYaml(value=value, lines=FieldLines(lines), duplicates=duplicates)


def read_yaml_mapping(path: Path, kind: str, expected: str) -> tuple[dict[str, Any], FieldLines]:
    """The fields of the ``kind`` file ``path`` ("benchmark", "dataset") and their lines.

    Raises:
        ValidationFailed: the file is too large, not UTF-8, not valid YAML, not a
            mapping (``expected`` says of what), or writes a field twice.
    """
    if path.stat().st_size > MAX_BENCHMARK_FILE_BYTES:
        raise ValidationFailed(
            f"{path} is too large for a {kind} file.",
            [f"{path}: {path.stat().st_size:,} bytes; the limit is {MAX_BENCHMARK_FILE_BYTES:,}"],
            "Keep items in the JSONL file the file names.",
        )
    try:
        document = read_positioned_yaml(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationFailed(
            f"{path} is not valid YAML.", [f"{where}: {problem}"], "Fix the YAML syntax."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"{path} is not UTF-8 text.", [f"{path}: {exc}"], "Save the file as UTF-8."
        ) from exc
    if not isinstance(document.value, dict):
        raise ValidationFailed(
            f"{path} does not describe a {kind}.",
            [f"{path}:{document.lines.line_of('')}: expected a mapping with {expected}"],
        )
    if document.duplicates:
        raise ValidationFailed(
            f"{path} writes a field twice.",
            [f"{path}:{line}: {problem}" for line, problem in document.duplicates],
            "Keep one of each field.",
        )
    return document.value, document.lines
