"""Text that came from elsewhere, made plain: no control, format or separator characters.

A report's free-text fields (an error's text, a software version, a speedtest server's name)
reach staff's screens. Escaping stops markup, but not a right-to-left override that turns
``exe.pdf`` round, zero-width characters that hide a word from a search, a NUL that cuts a
line in a log, or line breaks that forge a new log line. Those are Unicode categories Cc
(controls), Cf (format: bidi overrides and isolates, zero-width joiners), Cs/Co/Cn
(surrogates, private use, unassigned) and Zl/Zp (line and paragraph separators).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import TypeVar

T = TypeVar("T")
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def plain(text: str) -> str:
    """``text`` with white-space controls (tab, line breaks) as one space and every other
    unsafe character removed; leading and trailing spaces dropped."""
    kept = []
    for char in text:
        if unicodedata.category(char) not in UNSAFE_CATEGORIES:
            kept.append(char)
        elif char.isspace():
            kept.append(" ")
    return "".join(kept).strip()


def plain_strings(value: T) -> T:
    """A copy of a decoded schema object (frozen dataclasses, tuples) whose free-text fields are
    ``plain``. Fields with a pattern or a closed set of values are already safe and stay as
    they are."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    changes = {}
    for field in dataclasses.fields(value):
        current = getattr(value, field.name)
        if isinstance(current, str):
            if not (field.metadata.get("pattern") or field.metadata.get("one_of") or field.metadata.get("timestamp")):
                cleaned = plain(current)
                if cleaned != current:
                    changes[field.name] = cleaned
        elif isinstance(current, tuple):
            cleaned_items = tuple(plain_strings(item) for item in current)
            if cleaned_items != current:
                changes[field.name] = cleaned_items
        elif dataclasses.is_dataclass(current):
            cleaned_value = plain_strings(current)
            if cleaned_value is not current:
                changes[field.name] = cleaned_value
    return dataclasses.replace(value, **changes) if changes else value  # type: ignore[return-value]
