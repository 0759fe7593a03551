"""Reading TOML config files into frozen, typed objects; unknown keys are rejected by name."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from sessionready.typed import SchemaError, decode

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid. The message is one sentence for a person."""


def read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a file") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read ({error.strerror or error.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def section_of(document: Mapping[str, object], path: Path, section: str, allowed: set[str]) -> Mapping[str, object]:
    """The table ``section`` of a parsed document; other top-level tables must be in ``allowed``."""
    for key in document:
        if key not in allowed:
            raise ConfigError(f"config file {path}: unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})")
    table = document.get(section, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"config file {path}: '{section}' must be a table")
    return table


def decode_section(cls: type[T], table: Mapping[str, object], path: Path | str, section: str) -> T:
    try:
        return decode(cls, table, section)
    except SchemaError as error:
        raise ConfigError(f"config file {path}: key '{error.path}': {error.message}") from None
