"""The config layer: the typed schema (``schema``), YAML files and shipped names (``files``), dotted
overrides (``overrides``) and the checks of a config itself (``checks``). Imports nothing else of segkit."""
from segkit.config.files import ConfigError, find_config
from segkit.config.schema import Config, DecoderConfig, apply_overrides, dump, from_dict, load_config, to_dict

__all__ = ["Config", "ConfigError", "DecoderConfig", "apply_overrides", "dump", "find_config", "from_dict",
           "load_config", "to_dict"]
