"""Filling a benchmark's prompt template with an item's input fields: the one place it happens."""

from __future__ import annotations

__all__ = ["render_prompt"]


def render_prompt(template: str, fields: dict[str, str]) -> str:
    """A prompt template filled with an item's input fields."""
    return template.format(**fields)
