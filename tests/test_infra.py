"""The deployment files in infra/ parse and agree with the code they start."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from sabha.platform.cli import cli
from sabha.platform.settings import DEFAULT_SECRET_KEY, Settings

REPO = Path(__file__).resolve().parents[1]

INFRA = Path(__file__).resolve().parents[1] / "infra"
YAML_FILES = sorted(INFRA.rglob("*.yaml"))
DOCKERFILES = sorted(INFRA.rglob("Dockerfile"))
UNIT = INFRA / "systemd" / "sabha-worker.service"


def _settings_env() -> set[str]:
    return {f"SABHA_{name.upper()}" for name in Settings.model_fields}


def _gunicorn_env() -> set[str]:
    text = (INFRA / "gunicorn.conf.py").read_text(encoding="utf-8")
    return set(re.findall(r"os\.environ\.get\(\"(SABHA_\w+)\"", text))


def _command_options(words: list[str]) -> None:
    """Fail unless ``sabha WORDS...`` names a command of the CLI and only its options."""
    assert words[0] == "sabha", words
    command: click.Command = cli
    rest = words[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        assert rest[0] in command.commands, f"no command {rest[0]!r} in {words}"
        command = command.commands[rest[0]]
        rest = rest[1:]
    assert not isinstance(command, click.Group), f"{words} names a group, not a command"
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    used = {w.split("=")[0] for w in rest if w.startswith("--")}
    assert used <= known, f"{words}: unknown options {sorted(used - known)}"


def test_every_yaml_file_parses() -> None:
    assert len(YAML_FILES) >= 3
    for path in YAML_FILES:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert documents, path


def test_compose_uses_only_settings_the_platform_knows() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    known = _settings_env() | _gunicorn_env()
    names: set[str] = set()
    for service in compose["services"].values():
        environment: dict[str, Any] = service.get("environment") or {}
        names |= set(environment)
        for value in environment.values():
            names |= set(re.findall(r"\$\{(\w+)", str(value)))
    sabha_names = {n for n in names if n.startswith("SABHA_")}
    assert {"SABHA_ENV", "SABHA_SECRET_KEY", "SABHA_DATABASE_URL"} <= sabha_names
    assert sabha_names <= known, sorted(sabha_names - known)


def test_compose_secrets_have_no_default() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    web = compose["services"]["web"]["environment"]
    assert web["SABHA_ENV"] == "production"
    assert re.fullmatch(r"\$\{SABHA_SECRET_KEY:\?[^}]+\}", web["SABHA_SECRET_KEY"])
    assert "${POSTGRES_PASSWORD:?" in web["SABHA_DATABASE_URL"]
    assert compose["services"]["postgres"]["image"] == "postgres:15"
    assert "healthcheck" in compose["services"]["postgres"]


def test_commands_in_the_files_exist_in_the_cli() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    _command_options(compose["services"]["migrate"]["command"])
    unit = UNIT.read_text(encoding="utf-8")
    exec_start = re.search(r"^ExecStart=(\S+)/sabha (.+)$", unit, re.MULTILINE)
    assert exec_start
    _command_options(["sabha", *shlex.split(exec_start.group(2))])
    agent = list(yaml.safe_load_all((INFRA / "kuberay" / "agent-deployment.yaml").read_text()))
    deployment = next(d for d in agent if d["kind"] == "Deployment")
    script = deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
    _command_options(shlex.split(script.split("&")[0]))
    worker = (INFRA / "worker" / "Dockerfile").read_text(encoding="utf-8")
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", worker, re.MULTILINE)
    assert entrypoint
    _command_options(yaml.safe_load(entrypoint.group(1)))


def test_command_check_catches_a_wrong_option() -> None:
    with pytest.raises(AssertionError):
        _command_options(["sabha", "worker", "run", "--servr", "x"])
    with pytest.raises(AssertionError):
        _command_options(["sabha", "db", "migrate"])


def test_systemd_unit_stops_like_ctrl_c_and_holds_no_secret() -> None:
    unit = UNIT.read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0].isalpha()
    )
    assert settings["KillSignal"] == "SIGINT"
    assert settings["EnvironmentFile"] == "/etc/sabha/worker.env"
    assert settings["Restart"] == "on-failure"
    for hardening in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes"):
        assert hardening in unit.splitlines()
    assert not re.search(r"^Environment=.*(SECRET|CLIENT_ID)", unit, re.MULTILINE)


def test_images_hold_no_secret() -> None:
    default_key = DEFAULT_SECRET_KEY  # published with earlier releases
    for path in DOCKERFILES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"SABHA_POOL_CLIENT_SECRET=\S", text), path
        assert not re.search(r"SABHA_SECRET_KEY=\S", text), path
        assert str(default_key) not in text, path
    worker = (INFRA / "worker" / "Dockerfile").read_text(encoding="utf-8")
    assert "STOPSIGNAL SIGINT" in worker
    assert re.search(r"^USER (?!root)\w+", worker, re.MULTILINE)


def test_platform_image_installs_no_inference_extra() -> None:
    text = (INFRA / "platform" / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install /src" in text
    assert not re.search(r"\[(cpu|gpu)\]", text)


def test_kuberay_matches_the_project_ray_version() -> None:
    pyproject = (INFRA.parent / "pyproject.toml").read_text(encoding="utf-8")
    ray_version = re.search(r'"ray\[default\]==([\d.]+)"', pyproject)
    assert ray_version
    cluster = yaml.safe_load((INFRA / "kuberay" / "raycluster.yaml").read_text())
    assert cluster["spec"]["rayVersion"] == ray_version.group(1)
    group = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert group["resources"]["limits"]["nvidia.com/gpu"] >= 1


def _locked(path: Path) -> set[str]:
    return {
        line.strip()
        for line in path.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    """`make setup` installs requirements/cpu.lock; nothing more, nothing else."""
    import subprocess
    import sys

    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    locked = _locked(REPO / "requirements" / "cpu.lock")
    assert set(frozen) == locked, (
        f"installed but not locked: {sorted(set(frozen) - locked)}; "
        f"locked but not installed: {sorted(locked - set(frozen))}. "
        "Run `make setup` (or `make lock` after changing pyproject.toml)."
    )


def test_every_locked_requirement_is_pinned_exactly() -> None:
    for lock in ("cpu.lock", "labelstudio.lock"):
        for line in _locked(REPO / "requirements" / lock):
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line), (lock, line)


def test_the_annotation_sync_unit_runs_a_real_command_and_holds_no_secret() -> None:
    unit = (INFRA / "systemd" / "sabha-annotations-sync.service").read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0].isalpha()
    )
    assert settings["ExecStart"] == "/opt/sabha/bin/sabha annotations sync --every 300"
    _command_options(["sabha", "annotations", "sync", "--every", "300"])
    assert settings["EnvironmentFile"] == "/etc/sabha/platform.env"
    assert settings["KillSignal"] == "SIGTERM" and settings["Restart"] == "on-failure"
    assert not re.search(r"^Environment=.*(TOKEN|SECRET|DATABASE_URL)", unit, re.MULTILINE)
