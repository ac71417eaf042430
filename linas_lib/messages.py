"""How error messages quote a value they were given: its repr, cut to a readable length.

A hostile or mistaken input (a 10,000-gene list, a whole YAML document in one field)
must not flood the terminal; the start of it is enough to recognise it.
"""
from __future__ import annotations

from typing import Any


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
