"""Where config files come from: a path, or the name of a config shipped with segkit, and its ``base:`` chain.

Shipped configs live in the checkout's top-level ``configs/`` folder; the wheel installs the same
files as ``segkit/configs/`` (pyproject's package-dir mapping), so a name works in both.
Paths inside a config (``base:``, ``data.split_file``) resolve relative to the file that names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from segkit.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1]  # segkit/: the installed configs live in segkit/configs/


def shipped_dir() -> Optional[Path]:
    """The shipped configs: installed beside the package, or the checkout's top-level folder."""
    for candidate in (PACKAGE / "configs", PACKAGE.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return None


def shipped_configs() -> List[str]:
    """Names of the shipped configs, e.g. ``sample/deeplabv3plus_r18`` (bases under ``_base`` left out)."""
    root = shipped_dir()
    if root is None:
        return []
    return sorted(
        p.relative_to(root).with_suffix("").as_posix()
        for p in root.rglob("*.yaml")
        if not p.relative_to(root).parts[0].startswith("_")
    )


def find_config(name: str | Path) -> Path:
    """A config file path as given, else the shipped config of that name (``.yaml`` optional)."""
    path = Path(name)
    if path.is_file():
        return path
    root = shipped_dir()
    if root is not None and not path.is_absolute():
        for candidate in (root / path, root / path.with_name(path.name + ".yaml")):
            if candidate.is_file():
                return candidate
    hint = "; `segkit configs` lists the shipped names" if root is not None else ""
    raise ConfigError(
        f"config file not found: {name} (give a path or a shipped name such as sample/deeplabv3plus_r18{hint})"
    )


def _resolve_split_file(node: DictConfig, path: Path) -> None:
    """A relative ``data.split_file`` whose lists lie beside the config file points there, wherever it lives."""
    split_file = OmegaConf.select(node, "data.split_file", default=None)
    if not isinstance(split_file, str) or Path(split_file).is_absolute():
        return
    beside = (path.parent / split_file).resolve()
    if any(beside.parent.glob(beside.name.replace("{split}", "*"))):
        node.data.split_file = str(beside)


def read_yaml_chain(path: Path, seen: tuple = ()) -> List[Tuple[str, DictConfig]]:
    """The chain of (source, yaml) to merge: parents first, then the file itself."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base' chain: {' -> '.join(str(s) for s in seen)}")
    try:
        node = OmegaConf.load(path)
    except Exception as exc:  # yaml.YAMLError and friends
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(node).__name__}")
    chain: List[Tuple[str, DictConfig]] = []
    bases = node.pop("base", None)
    if bases is not None:
        for b in [bases] if isinstance(bases, str) else list(bases):
            chain.extend(read_yaml_chain((path.parent / str(b)), seen + (path.resolve(),)))
    _resolve_split_file(node, path)
    chain.append((str(path), node))
    return chain
