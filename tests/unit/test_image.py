"""docker build cannot run here: read the Dockerfile, and install what it copies into a venv."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.suite_venv import OFFLINE_PIP_INSTALL, suite_backed_venv

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS: dict[str, Any] = PYPROJECT["tool"]["setuptools"]

# Run by the throwaway venv's interpreter: what the installed segstream distribution holds.
INSPECT_INSTALL = """
import importlib, importlib.metadata, importlib.resources, json, pkgutil, sys
package_data = json.loads(sys.argv[1])
dist = next(d for d in importlib.metadata.distributions(name="segstream")
            if str(d.locate_file("")).startswith(sys.prefix))
top_level = dist.read_text("top_level.txt").split()
modules, outside = [], []
for top in top_level:
    package = importlib.import_module(top)
    for name in [top, *(m.name for m in pkgutil.walk_packages(package.__path__, top + "."))]:
        if not name.endswith(".__main__"):
            modules.append(name)
            if not importlib.import_module(name).__file__.startswith(sys.prefix):
                outside.append(name)
missing = [f"{pkg}/{file}" for pkg, files in package_data.items() for file in files
           if not importlib.resources.files(pkg).joinpath(file).is_file()]
print(json.dumps({"top_level": top_level, "modules": modules, "outside": outside,
                  "missing_data": missing}))
"""


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = (line.strip() for line in text.splitlines())
    pairs = (line.partition(" ") for line in lines if line and not line.startswith("#"))
    return [(word.upper(), rest.strip()) for word, _, rest in pairs]


def copies() -> list[tuple[list[str], str]]:
    """Each COPY's sources and destination (relative to the WORKDIR)."""
    found = []
    for word, rest in instructions():
        if word == "COPY":
            *sources, dest = [arg for arg in shlex.split(rest) if not arg.startswith("--")]
            assert not dest.startswith("/"), f"COPY to {dest}: the test models WORKDIR copies only"
            found.append((sources, dest))
    return found


def glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression over slash-separated paths."""
    tokens = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(wild.get(token, re.escape(token)) for token in tokens)


def dockerignore() -> list[re.Pattern[str]]:
    path = ROOT / ".dockerignore"
    lines = [line.strip() for line in path.read_text().splitlines()] if path.exists() else []
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "the test does not model ! exceptions"
    return [re.compile(glob_regex(pattern)) for pattern in patterns]


def ignored(relative: Path, patterns: list[re.Pattern[str]]) -> bool:
    """Docker leaves out a path if it or any folder above it matches a pattern."""
    parts = relative.parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


def lay_out_workdir(workdir: Path) -> None:
    """Copy what the COPY lines put in the image's WORKDIR, less what .dockerignore leaves out."""
    patterns = dockerignore()
    for sources, dest in copies():
        for source in sources:
            top = ROOT / source
            files = sorted(top.rglob("*")) if top.is_dir() else [top]
            for file in files:
                if not file.is_file() or ignored(file.relative_to(ROOT), patterns):
                    continue
                if top.is_dir():
                    target = workdir / dest / file.relative_to(top)
                elif dest.endswith("/") or len(sources) > 1:
                    target = workdir / dest / file.name
                else:
                    target = workdir / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)


def installed_packages() -> set[str]:
    """The repository's top-level packages that pyproject.toml's find-include selects."""
    include = SETUPTOOLS["packages"]["find"]["include"]
    folders = (init.parent.name for init in ROOT.glob("*/__init__.py"))
    return {name for name in folders if any(fnmatch.fnmatch(name, p) for p in include)}


def worker_environment(data_dir: Path) -> dict[str, str]:
    """docker-compose.yml's worker environment, with its data directory moved to data_dir."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["worker"]["environment"].items()}
    return {**env, "SEGSTREAM_DATA_DIR": str(data_dir)}


def test_every_installed_package_is_copied() -> None:
    copied = {dest.strip("./") for sources, dest in copies() if (ROOT / sources[0]).is_dir()}
    assert installed_packages() - copied == set(), "the Dockerfile does not COPY these packages"
    files = {source for sources, dest in copies() for source in sources if dest in ("./", ".")}
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= files


def test_package_data_is_not_dockerignored() -> None:
    patterns = dockerignore()
    for package, names in SETUPTOOLS["package-data"].items():
        for name in names:
            relative = Path(*package.split("."), name)
            assert (ROOT / relative).is_file(), relative
            assert not ignored(relative, patterns), f".dockerignore leaves out {relative}"


def test_the_data_directory_belongs_to_the_image_user() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    data_dir = compose["environment"]["SEGSTREAM_DATA_DIR"]
    assert any(volume.endswith(f":{data_dir}") for volume in compose["volumes"])
    steps = instructions()
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert user not in ("root", "0"), "the worker should not run as root"
    run = " ".join(rest for word, rest in steps if word == "RUN")
    # A new named volume takes the ownership of the image's folder at its mount point.
    assert re.search(rf"mkdir -p (\S+ )*{re.escape(data_dir)}(\s|$)", run), run
    owner = rf"chown (-R )?{re.escape(user)}(:\S+)? (\S+ )*{re.escape(data_dir)}(\s|$)"
    assert re.search(owner, run), f"{data_dir} is not chowned to {user}: {run}"


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A venv holding `pip install .` of the Dockerfile's copies; the suite's packages, offline."""
    tmp = tmp_path_factory.mktemp("image")
    workdir, venv = tmp / "app", tmp / "venv"
    lay_out_workdir(workdir)
    python = suite_backed_venv(venv)
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **worker_environment(tmp / "data"),
    }
    done = subprocess.run(
        [python, *OFFLINE_PIP_INSTALL, workdir], cwd=tmp, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv, env


def test_the_installed_copy_runs_segstream_worker_help(
    image_venv: tuple[Path, dict[str, str]],
) -> None:
    venv, env = image_venv
    done = subprocess.run(
        [venv / "bin" / "segstream", "worker", "--help"],
        cwd=venv.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: segstream worker" in done.stdout


def test_the_installed_copy_imports_every_module_from_itself(
    image_venv: tuple[Path, dict[str, str]],
) -> None:
    venv, env = image_venv
    done = subprocess.run(
        [venv / "bin" / "python", "-c", INSPECT_INSTALL, json.dumps(SETUPTOOLS["package-data"])],
        cwd=venv.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found["top_level"]) == installed_packages()
    assert {"segstream.worker", "serving.api", "agents.customers"} <= set(found["modules"])
    assert found["outside"] == [], "imported from outside the venv"
    assert found["missing_data"] == []
