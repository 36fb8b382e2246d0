"""Pydantic's validation errors as problems that name their file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ValidationFailed
from ._fields import FieldProblems
from ._yaml import FieldLines

__all__ = ["json_type", "pydantic_problems", "validate_file"]

Model = TypeVar("Model", bound=BaseModel)


def _field_path(loc: tuple[Any, ...]) -> str:
    # pydantic marks a problem with a mapping's key by appending "[key]"
    # and a tagged union (``dataset:``) adds its tag, which names no field
    parts = [str(part) for part in loc if part != "[key]"]
    return ".".join(part for part in parts if not part.startswith("§")) or "(top level)"


def json_type(value: Any) -> str:
    """What JSON calls the type of ``value`` ("an object", "a number"...), for messages."""
    names = {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def pydantic_problems(
    where: str, error: ValidationError, lines: FieldLines | None = None
) -> list[str]:
    """One line per problem: ``<where>[:<line>]: field '<name>': <message>``.

    ``lines`` (a YAML file's) adds the line each field is written on; rows of
    an items file pass their line in ``where`` instead.
    """

    def at(field: str) -> str:
        return f"{where}:{lines.line_of(field)}" if lines is not None else where

    problems: list[str] = []
    for detail in error.errors():
        field = _field_path(detail["loc"])
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblems):
            for sub, message in cause.problems:
                name = f"{field}.{sub}"
                problems.append(f"{at(name)}: field '{name}': {message}")
            continue
        kind = detail["type"]
        if kind == "string_type":
            message = f"must be a string, not {json_type(detail['input'])}"
        elif kind == "string_unicode":
            message = "contains a lone surrogate, which is not valid Unicode; fix the \\u escape"
        elif kind in ("dict_type", "model_type"):
            message = f"must be an object, not {json_type(detail['input'])}"
        elif kind == "extra_forbidden":
            message = "is not a known field; remove it or check its spelling"
        else:
            message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{at(field)}: field '{field}': {message}")
    return problems


def validate_file(
    model: type[Model],
    raw: dict[str, Any],
    path: Path,
    lines: FieldLines,
    kind: str,
    max_field_chars: int,
) -> Model:
    """``raw``, read from the YAML file ``path``, validated as ``model``.

    Raises:
        ValidationFailed: ``<path> is not a valid <kind>.``, with every problem
            as ``<file>:<line>: field '<name>': <message>``.
    """
    try:
        return model.model_validate(raw, context={"max_field_chars": max_field_chars})
    except ValidationError as exc:
        raise ValidationFailed(
            f"{path} is not a valid {kind}.",
            pydantic_problems(str(path), exc, lines),
            "Correct the fields listed above.",
        ) from exc
