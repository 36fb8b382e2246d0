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
