"""The commands, run in-process as `segkit <command>` runs them (no interpreter start-up): ``load_tool(name)``
reads like the command's module (``.module`` is the module itself, to monkeypatch), except that ``main(argv)``
goes through the dispatcher's ``run``, which turns a SegkitError into one ``error:`` line and its exit code.

tools/<name>.py in a checkout are thin wrappers over the same ``run``."""

import importlib

from segkit.cli import COMMANDS, run

COMMAND_OF = {
    "train": "train",
    "eval": "eval",
    "infer": "infer",
    "visualize": "visualize",
    "export": "export",
    "check_dataset": "check",
    "browse_dataset": "browse",
    "model_info": "info",
    "studio": "studio",
}


class Tool:
    def __init__(self, command: str):
        self.command, self.module = command, importlib.import_module(COMMANDS[command][0])

    def main(self, argv=None) -> int:
        return run(self.command, argv)

    def __getattr__(self, name: str):
        return getattr(self.module, name)


def load_tool(name: str) -> Tool:
    return Tool(COMMAND_OF[name])
