"""The folders are the layers: each imports only the layers below it (ast, lazy imports included).

    errors -> models -> config -> data, runtime, checkpoint -> exports -> inference -> evaluation
           -> training | visualization -> annotations -> studio -> cli

Models stand alone (the backbone and decoders serve other code as they are) and sit under config: each
decoder declares its options in its own file, and the config schema reads them from ``DECODERS`` so that
``model.decoder.*`` keys are checked when a config loads. Training and visualization sit side by side above
evaluation: training borrows the evaluator (the one validation path) and nothing above it; inference never
imports training. ``exports`` (model graphs) sits
under inference because the ONNX Runtime backend exports the graph it runs. The README draws this graph.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segkit"

_BASE = {"errors"}
_CORE = _BASE | {"config", "data", "models", "runtime", "checkpoint"}
ALLOWED: Dict[str, Set[str]] = {
    "errors": set(),
    "models": _BASE,
    "config": _BASE | {"models"},
    "data": _BASE | {"config"},
    "runtime": _BASE | {"config"},
    "checkpoint": _BASE | {"config", "models", "version"},
    "exports": _CORE,
    "inference": _CORE | {"exports"},
    "evaluation": _CORE | {"exports", "inference"},
    "training": _CORE | {"exports", "inference", "evaluation", "version"},
    "visualization": _CORE | {"exports", "inference", "evaluation"},
    "annotations": _BASE | {"config", "data"},
    "studio": _CORE | {"exports", "inference", "evaluation", "visualization", "annotations"},
    "cli": set(),  # the top: anything (checked below as "everything but nothing above it")
}
ORDER = list(ALLOWED)
# names the lazy top-level API (segkit/__init__.py) resolves, by the layer that owns them
ROOT_NAMES = {"__version__": "version"}


def layer_of(module: str) -> str:
    """``segkit.training.engine`` -> ``training``; ``segkit.checkpoint`` -> ``checkpoint``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "segkit"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[Tuple[int, str]]:
    """(line, target layer) of every segkit import in the tree, at any depth (function-level too), and of
    ``importlib.import_module("segkit...")`` with a literal name."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "segkit":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base == "segkit":  # from segkit import X: the lazy API or a subpackage
                for alias in node.names:
                    yield node.lineno, "segkit." + ROOT_NAMES.get(alias.name, alias.name)
            elif base.split(".")[0] == "segkit":
                yield node.lineno, base
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("segkit.")
        ):
            yield node.lineno, node.args[0].value


def violations(source: str, module: str, is_package: bool = False) -> List[str]:
    """What ``source`` (the text of ``module``) imports against the graph."""
    own = layer_of(module)
    if own in ("segkit", "__main__"):  # segkit/__init__.py and __main__.py: the API facade and the entry point
        return []
    allowed = set(ORDER) | {"version"} if own == "cli" else ALLOWED[own] | {own}
    bad = []
    for line, target in imported(ast.parse(source), module, is_package):
        layer = layer_of(target)
        if layer not in allowed:
            bad.append(f"{module}:{line} imports {target} ({own} may import only {', '.join(sorted(allowed))})")
    return bad


def test_every_module_imports_only_layers_below_it():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "configs" in path.relative_to(PACKAGE).parts:
            continue
        module = module_name(path)
        assert layer_of(module) in ALLOWED or module in ("segkit", "segkit.__main__"), (
            f"{path}: a new top-level module or folder; give it a place in ALLOWED (and the README's diagram)"
        )
        bad += violations(path.read_text(), module, path.name == "__init__.py")
    assert not bad, "imports against the layer graph:\n" + "\n".join(bad)


def test_the_check_catches_data_importing_training():
    """The check itself can fail: a data module importing training, eagerly, lazily or relatively."""
    for source in (
        "from segkit.training.faults import STOP_SIGNALS\n",
        "def f():\n    from segkit.training import engine\n",
        "from ..training.faults import one_line\n",
        "import segkit.training.engine\n",
        "import importlib\nimportlib.import_module('segkit.training.engine')\n",
    ):
        assert violations(source, "segkit.data.loaders"), source
    assert violations("from segkit import Predictor\n", "segkit.data.io")  # the lazy API is no back door
    assert not violations("from segkit.config import ConfigError\nfrom .io import DataError\n", "segkit.data.loaders")


def test_inference_never_imports_training():
    assert "training" not in ALLOWED["inference"] | ALLOWED["evaluation"] | ALLOWED["visualization"]
    assert "training" not in ALLOWED["studio"]


def test_top_level_holds_only_the_shared_owners():
    files = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(files) <= 6, files


def test_no_command_module_imports_another():
    """What commands share lives in cli/common.py; a command importing another would load its whole stack."""
    bad = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        module = module_name(path)
        for line, target in imported(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            if target.startswith("segkit.cli.") and target != "segkit.cli.common":
                bad.append(f"{module}:{line} imports {target}")
    assert not bad, "commands importing commands (move the shared part to segkit/cli/common.py):\n" + "\n".join(bad)
