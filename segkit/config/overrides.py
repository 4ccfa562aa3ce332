"""Command-line overrides as text: ``key=value`` strings read into (key, value) pairs, the values as
YAML would read them. ``segkit.config.apply_overrides`` checks them against the schema and merges them.
"""

from __future__ import annotations

import ast
from typing import Any, List, Sequence, Tuple

import yaml

from segkit.config.files import ConfigError


def parse_override_value(text: str) -> Any:
    """A command-line value as YAML would read it, except that a flow mapping or list is read as a
    Python literal first: ``{255:1}`` is {255: 1}, not YAML 1.1's sexagesimal key 15301."""
    stripped = text.strip()
    if stripped[:1] in "{[(":
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            pass  # e.g. [road, car]: YAML reads bare words as strings
    try:
        return yaml.safe_load(stripped) if stripped else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override value '{text}' is not valid YAML: {str(exc).splitlines()[0]}") from exc


def parse_overrides(overrides: Sequence[str]) -> List[Tuple[str, Any]]:
    """``["train.lr=0.02", "data.label_map={}"]`` -> ``[("train.lr", 0.02), ("data.label_map", {})]``."""
    parsed = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or " " in key.strip():
            raise ConfigError(f"override '{item}' must look like key=value, e.g. train.lr=0.02")
        parsed.append((key.strip(), parse_override_value(value)))
    return parsed
