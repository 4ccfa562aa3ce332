"""argparse types for values that must be checked before any work starts: a bad one is a one-line
usage error naming the option, not a traceback (or a silent clamp) after the model has run."""
import argparse
from pathlib import Path


def opacity(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 (invisible) and 1 (opaque), not {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def output_folder(text: str) -> str:
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is made if missing)")
    return text
