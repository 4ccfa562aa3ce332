"""The errors segkit shows to users. Each says what is wrong, naming the file or key, and how to fix it;
the command line prints it as one ``error: ...`` line and exits 2 (a traceback means a bug in segkit).

They stay ValueErrors too, so code written against the older classes keeps catching them."""


class SegkitError(Exception):
    """The base of every error segkit raises at users; ``segkit`` commands catch it once."""


class ConfigError(SegkitError, ValueError):
    """A config file or override that does not fit the schema."""


class DataError(SegkitError, ValueError):
    """A data set problem a user must fix on disk or in the config; the message says which and how."""


class CheckpointError(SegkitError, ValueError):
    """A file that cannot be used as a segkit checkpoint; the message says why and what to do."""
