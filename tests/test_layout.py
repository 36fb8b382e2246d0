"""The package layout keeps the standard library reachable and the import rules hold."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO

CODE_FOLDERS = ["platform", "workers", "annotation", "leaderboards"]


def test_stdlib_platform_is_imported_from_the_repo_root() -> None:
    # `python -c` puts the current directory first on sys.path, as `python -m pytest` does.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import platform; print(platform.__file__); print(platform.system())",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, system = result.stdout.split()
    assert Path(module_file).parent == Path(sysconfig.get_paths()["stdlib"])
    assert system == "Linux"


def test_stdlib_platform_is_intact_inside_pytest() -> None:
    import platform

    assert Path(platform.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert platform.python_version().startswith("3.")


@pytest.mark.parametrize("folder", CODE_FOLDERS)
def test_code_folders_are_namespace_portions(folder: str) -> None:
    assert (REPO / folder).is_dir()
    assert not (REPO / folder / "__init__.py").exists(), (
        f"{folder}/__init__.py would make {folder} an importable top-level package"
    )


def test_every_code_folder_has_a_readme() -> None:
    """Each folder says in a README what lives there and what it may import (STYLE.md)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the files of the repository are unknown")
    folders = {Path(name).parent for name in listed if (REPO / name).is_file()}
    exempt = {Path("tests"), Path("platform/migrations/versions")}
    missing = sorted(
        str(folder)
        for folder in folders - exempt
        if folder.parts[:1] != ("tests",) and not (REPO / folder / "README.md").is_file()
    )
    assert missing == [], f"these folders have Python files and no README.md: {missing}"


def _imported_modules(folder: str) -> set[str]:
    modules: set[str] = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_leaderboards_never_import_ray_or_vllm() -> None:
    assert not {"ray", "vllm", "torch"} & _imported_modules("leaderboards")


def test_workers_never_import_flask() -> None:
    assert "flask" not in _imported_modules("workers")


def test_web_app_imports_without_torch_ray_or_vllm() -> None:
    code = (
        "import sys\n"
        "from sabha.platform.app import create_app\n"
        "from sabha.platform.cli import cli\n"
        "import sabha.leaderboards.scoring, sabha.leaderboards.board\n"
        "create_app()\n"
        "heavy = sorted({'torch', 'vllm', 'ray'} & set(sys.modules))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


# -- layers: imports point down only -----------------------------------------------------
# core <- leaderboards, annotation, workers <- services <- CLI, web pages, JSON API
LAYERS = {
    "core": 0,
    "leaderboards": 1,
    "annotation": 1,
    "workers": 1,
    "services": 2,
    "adapters": 3,
}
CORE_MODULES = {"settings", "db", "domain", "errors", "languages", "wire", "files", "catalog"}


def _layer_of(module: str) -> str:
    """The layer of a ``sabha.*`` module (every module must have one)."""
    parts = module.split(".")
    folder, rest = parts[1], parts[2:]
    if folder == "platform":
        if not rest or rest[0] in CORE_MODULES | {"benchmarks", "migrations"}:
            return "core"
        if rest[0] == "services":
            return "services"
        if rest[0] in {
            "cli",
            "app",
            "api",
            "web",
            "wsgi",
            "remote",
        }:
            return "adapters"
        raise AssertionError(
            f"sabha.platform.{rest[0]} has no layer: add it to tests/test_layout.py"
        )
    if folder == "leaderboards" and rest[:1] == ["web"]:
        return "adapters"
    if folder in {"leaderboards", "annotation", "workers"}:
        return folder
    raise AssertionError(f"{module} has no layer")


def _module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "sabha." + ".".join(parts)


def _is_module(name: str) -> bool:
    """Whether ``sabha.x.y`` names a module or package of the code folders."""
    parts = name.split(".")[1:]
    if not parts or parts[0] not in CODE_FOLDERS:
        return False
    path = REPO.joinpath(*parts)
    return path.with_suffix(".py").is_file() or path.is_dir()


def _imports(path: Path) -> list[tuple[str, str]]:
    """Every ``sabha`` module ``path`` imports, with the names it takes: ``(module, name)``.

    ``from sabha.platform import services`` is an import of the module
    ``sabha.platform.services``; ``importlib.import_module("sabha.x")`` and
    ``__import__`` with a literal name count too (name "").
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((a.name, "") for a in node.names if a.name.startswith("sabha."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("sabha."):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if _is_module(submodule):
                    found.append((submodule, ""))
                else:
                    found.append((target, alias.name))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) in _DYNAMIC_IMPORTS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("sabha.")
        ):
            found.append((str(node.args[0].value), ""))
    return found


_DYNAMIC_IMPORTS = {"import_module", "__import__"}


def _sabha_imports(path: Path) -> set[str]:
    return {module for module, _ in _imports(path)}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_takes_another_modules_private_names() -> None:
    """``_name`` is a module's own; ``pkg._module`` is its package's own (STYLE.md)."""
    wrong = []
    for folder in CODE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            importer = _module_name(path)
            package = importer if path.name == "__init__.py" else importer.rsplit(".", 1)[0]
            for module, name in _imports(path):
                parts = module.split(".")
                for i, part in enumerate(parts):
                    owner = ".".join(parts[:i])
                    if _private(part) and not (package == owner or package.startswith(owner + ".")):
                        wrong.append(f"{importer} imports the private module {module}")
                        break
                if name and _private(name):
                    wrong.append(f"{importer} takes the private name {name} of {module}")
    assert wrong == [], "\n".join(wrong)


def test_the_import_check_sees_package_and_dynamic_imports(tmp_path: Path) -> None:
    probe = REPO / "leaderboards" / "_layout_probe.py"
    probe.write_text(
        "import importlib\n"
        "from sabha.platform import services\n"
        "importlib.import_module('sabha.workers.agent')\n"
        "from sabha.workers.agent import _private_thing\n",
        encoding="utf-8",
    )
    try:
        found = _imports(probe)
    finally:
        probe.unlink()
    assert ("sabha.platform.services", "") in found
    assert ("sabha.workers.agent", "") in found
    assert ("sabha.workers.agent", "_private_thing") in found


def test_imports_point_down_the_layers_only() -> None:
    wrong = []
    for folder in CODE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            importer = _module_name(path)
            layer = _layer_of(importer)
            for imported in sorted(_sabha_imports(path)):
                target = _layer_of(imported)
                upward = LAYERS[target] > LAYERS[layer]
                sideways = LAYERS[target] == LAYERS[layer] == 1 and target != layer
                if upward or sideways:
                    wrong.append(f"{importer} ({layer}) imports {imported} ({target})")
    assert wrong == [], "\n".join(wrong)


def test_wire_models_import_neither_sqlmodel_nor_flask() -> None:
    names = {
        alias.name.split(".")[0]
        for path in sorted((REPO / "platform" / "wire").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom) and node.level == 0
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert "pydantic" in names  # the check reads the package's imports
    assert not {"sqlmodel", "sqlalchemy", "flask", "sabha"} & names


@pytest.mark.parametrize("module", ["sabha.platform.wire", "sabha.workers.agent"])
def test_the_wire_models_and_the_agent_load_no_platform_machinery(module: str) -> None:
    """A volunteer's agent starts without the benchmarks package, YAML or the settings."""
    code = (
        "import sys\n"
        f"import {module}\n"
        "platform = ('sabha.platform.benchmarks', 'yaml', 'pydantic_settings', 'sqlmodel')\n"
        "print(','.join(sorted(set(platform) & set(sys.modules))))\n"
        f"assert {module!r} in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
