"""Every benchmark script says the settings it changes and the machine's load before it measures,
and runs against the shipped rate limits (issue 16: leaderboard_latency.py stopped with 429)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BENCHMARKS = REPO / "benchmarks"
# Run by another script, which announces for it: lm-eval's side of throughput_vs_raw_vllm.py.
RUN_BY_ANOTHER = {"lm_eval_peer.py"}
SCRIPTS = sorted(
    path
    for path in BENCHMARKS.glob("*.py")
    if "__main__" in path.read_text(encoding="utf-8")  # the runnable ones, not the helpers
    and path.name not in RUN_BY_ANOTHER
)


def _main(path: Path) -> ast.FunctionDef:
    """The script's main(), or the function of the script that main() hands its work to."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "main" in functions, f"{path.name} has no main()"
    main = functions["main"]
    if "announce" not in _called(main):
        for name in sorted(_called(main) & set(functions)):
            if "announce" in _called(functions[name]):
                return functions[name]
    return main


def test_the_scripts_are_found() -> None:
    names = {path.name for path in SCRIPTS}
    assert {"leaderboard_latency.py", "lease_throughput.py", "gpu_throughput.py"} <= names
    assert "settings_changed.py" not in names and "synthetic.py" not in names


# What a script may do before it announces: read its arguments, settings and the clock.
_BEFORE_ANNOUNCE = {
    "ArgumentParser",
    "add_argument",
    "parse_args",
    "setdefault",
    "split",
    "range",
    "getLogger",
    "setLevel",
    "monotonic",
    "perf_counter",
    "Settings",
    "dict",
    "str",
    "Path",
    "error",
}


def _called(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            if isinstance(call.func, ast.Name):
                names.add(call.func.id)
            elif isinstance(call.func, ast.Attribute):
                names.add(call.func.attr)
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_every_script_announces_its_settings_and_load_before_measuring(script: Path) -> None:
    body = _main(script).body
    at = [i for i, statement in enumerate(body) if "announce" in _called(statement)]
    assert at, f"{script.name}: main() must call settings_changed.announce at its top level"
    for statement in body[: at[0]]:
        done = _called(statement) - _BEFORE_ANNOUNCE
        assert not done, f"{script.name}: {sorted(done)} run before announce; announce first"


def test_announce_prints_the_machine_and_the_changed_settings() -> None:
    code = (
        "import settings_changed as s\n"
        "s.announce({})\n"
        "s.announce({'SABHA_RATE_LIMITS': 'false'}, 'four clients')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    cores = os.cpu_count()
    assert out[0].startswith(f"machine at start: {cores} CPU cores, load average ")
    assert out[1] == "settings: the shipped defaults"
    assert out[3] == (
        "settings changed from the shipped defaults: SABHA_RATE_LIMITS=false (four clients)"
    )


@pytest.mark.slow
def test_leaderboard_latency_runs_against_the_shipped_defaults_otherwise() -> None:
    """It turns only rate limits off (and says so), and a small run gets no 429: its 840
    requests from one address are more than the shipped 600 a minute."""
    run = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "leaderboard_latency.py"),
            "--models",
            "5",
            "--requests",
            "200",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "SABHA_RATE_LIMITS=false" in run.stdout
    assert "429" not in run.stdout + run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("/")]
    assert len(rows) == 4  # page and JSON, 1 and 4 clients: every measurement finished
