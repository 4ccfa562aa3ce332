"""The region-labeling studio: a local web page to review a model's predictions, correct regions and
save the corrections as training masks. `segkit studio` (segkit/cli/studio.py) serves it."""

from .server import create_app
from .session import Studio, StudioError

__all__ = ["Studio", "StudioError", "create_app"]
