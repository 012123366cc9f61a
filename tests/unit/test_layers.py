"""Layers only look down: no module imports from a layer above its own.

config < streams < engine < segstream.faust_patches < the offline tools (stack, offline, bench)
< the Faust app (segstream.app: the app, its topics and tables) < serving < agents < the
worker and the command line. Every import counts, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),
    ("streams",),
    ("engine",),
    ("segstream.faust_patches",),
    ("segstream.stack", "segstream.offline", "segstream.bench", "segstream.gc_policy"),
    ("segstream.app",),
    ("serving",),
    ("agents",),
    ("segstream.worker", "segstream.cli", "segstream.__main__"),
)
PACKAGES = ("config", "streams", "engine", "segstream", "serving", "agents")


def layer_of(module: str) -> int | None:
    """The layer of a project module (None: not one of the project's)."""
    for index, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The project modules ``path`` imports (``from x import y`` counts as x.y when that is a
    module, else as x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    ROOT / candidate.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(candidate if is_module else node.module)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def project_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_every_project_module_has_a_layer() -> None:
    unplaced = [module_name(path) for path in project_modules()]
    unplaced = [name for name in unplaced if name != "segstream" and layer_of(name) is None]
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


@pytest.mark.parametrize("path", project_modules(), ids=lambda path: module_name(path))
def test_imports_only_look_down(path: Path) -> None:
    own = layer_of(module_name(path))
    if own is None:  # the segstream package's empty __init__
        return
    upward = sorted(
        f"{name} ({' / '.join(LAYERS[layer])})"
        for name in imported(path)
        if (layer := layer_of(name)) is not None and layer > own
    )
    assert not upward, f"{module_name(path)} imports from a layer above its own: {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("from segstream.app import app\nimport agents.customers\n")
    assert {"segstream.app", "agents.customers"} <= imported(source)
    assert layer_of("engine.step") < layer_of("segstream.app.topics") < layer_of("serving.api")


def test_the_worker_runs_every_agents_module() -> None:
    from segstream.worker import WORKER_MODULES

    agents = {module_name(path) for path in (ROOT / "agents").glob("*.py")} - {"agents"}
    assert agents <= set(WORKER_MODULES), sorted(agents - set(WORKER_MODULES))
