"""The tools' main(argv) functions, imported from segkit.cli so tests call them in-process (no interpreter start-up).

tools/<name>.py in a checkout is a thin wrapper over the same function."""
import importlib

MODULES = {"train": "train", "eval": "eval", "infer": "infer", "visualize": "visualize", "export": "export",
           "check_dataset": "check", "browse_dataset": "browse", "model_info": "info", "studio": "studio"}


def load_tool(name: str):
    return importlib.import_module(f"segkit.cli.{MODULES[name]}")
