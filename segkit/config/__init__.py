"""The config layer: the typed schema (``schema``), YAML files and shipped names (``files``), dotted
overrides (``overrides``) and the checks of a config itself (``checks``). Of segkit it imports only
``errors`` and, when a config loads, ``models.DECODERS`` (each decoder declares its own ``model.decoder.*`` keys)."""

from segkit.config.files import ConfigError, find_config
from segkit.config.schema import (
    Config,
    DecoderConfig,
    apply_overrides,
    decoder_config,
    dump,
    from_dict,
    load_config,
    to_dict,
)

__all__ = [
    "Config",
    "ConfigError",
    "DecoderConfig",
    "apply_overrides",
    "decoder_config",
    "dump",
    "find_config",
    "from_dict",
    "load_config",
    "to_dict",
]
