"""The CLI as a user runs it: clear errors for bad input, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import generation_items, run_sabha, write_benchmark


def _ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = run_sabha(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _fails(*args: str, env: dict[str, str] | None = None) -> str:
    result = run_sabha(*args, env=env)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_default_database_is_sqlite_under_the_data_dir(isolated_settings: Path) -> None:
    out = _ok("db", "upgrade")
    assert f"sqlite:///{isolated_settings}/sabha.db" in out
    assert (isolated_settings / "sabha.db").is_file()


@pytest.mark.postgresql
def test_load_and_list_on_sqlite_and_postgresql(database_url: str) -> None:
    env = {"SABHA_DATABASE_URL": database_url}
    _ok("db", "upgrade", env=env)
    assert "loaded" in _ok("benchmarks", "load", env=env)
    assert "unchanged" in _ok("benchmarks", "load", env=env)
    listing = _ok("benchmarks", "list", env=env)
    assert "kisan-advisory" in listing and "indic-safety" in listing


def test_database_that_does_not_answer(tmp_path: Path) -> None:
    env = {"SABHA_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"}
    err = _fails("benchmarks", "list", env=env)
    assert "does not answer" in err and "SABHA_DATABASE_URL" in err


def test_malformed_database_url() -> None:
    err = _fails("db", "upgrade", env={"SABHA_DATABASE_URL": "not a url"})
    assert "SABHA_DATABASE_URL is not a valid database URL" in err


def test_unmigrated_database_says_to_upgrade() -> None:
    err = _fails("benchmarks", "list")
    assert "sabha db upgrade" in err


def test_unknown_model_and_benchmark_list_the_known_names() -> None:
    _ok("db", "upgrade")
    _ok("benchmarks", "load")
    err = _fails("eval", "--model", "nope", "--benchmark", "kisan-advisory")
    assert "Unknown model 'nope'" in err and "make-tiny" in err
    err = _fails("eval", "--model", "nope", "--benchmark", "hisaab")
    assert "Unknown benchmark 'hisaab'" in err and "indic-safety, kisan-advisory" in err


def test_bad_benchmark_file_loads_nothing(tmp_path: Path) -> None:
    _ok("db", "upgrade")
    good = write_benchmark(tmp_path / "good", generation_items(2))
    items = generation_items(2)
    items[1]["language"] = "swahili"
    bad = write_benchmark(tmp_path / "bad", items)
    err = _fails("benchmarks", "load", str(good), str(bad))
    assert "tiny-gen.jsonl:2: field 'language'" in err
    assert "No benchmarks loaded" in _ok("benchmarks", "list")


def test_models_add_rejects_folders_vllm_cannot_read(tmp_path: Path) -> None:
    _ok("db", "upgrade")
    folder = tmp_path / "model"
    folder.mkdir()
    err = _fails("models", "add", "m", "--path", str(folder))
    assert "config.json is missing" in err
    (folder / "config.json").write_text("{broken", encoding="utf-8")
    assert "not valid JSON" in _fails("models", "add", "m", "--path", str(folder))
    err = _fails("models", "add", "m", "--hub", "org/model", "--revision", "main")
    assert "40-character commit hash" in err
    # The rule of submissions and leases: every registered model can be leased.
    err = _fails("models", "add", "m", "--hub", "org/model/extra", "--revision", "f" * 40)
    assert "is not a hub id (OWNER/NAME" in err
    assert "No models registered" in _ok("models", "list")


def test_models_add_registers_a_pinned_hub_model() -> None:
    _ok("db", "upgrade")
    out = _ok("models", "add", "hub-m", "--hub", "org/model", "--revision", "f" * 40)
    assert f"org/model@{'f' * 40}" in out
    # The hub's oldest models have no owner (gpt2); older databases hold such rows too.
    assert f"gpt2@{'f' * 40}" in _ok(
        "models", "add", "old", "--hub", "gpt2", "--revision", "f" * 40
    )
    assert "already registered" in _fails(
        "models", "add", "hub-m", "--hub", "org/model", "--revision", "f" * 40
    )


def test_serve_on_a_busy_port_says_so() -> None:
    import socket

    _ok("db", "upgrade")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _fails("serve", "--port", str(port))
    assert f"Cannot serve on 127.0.0.1:{port}" in err and "--port" in err


def test_changed_local_model_folder_is_refused(tmp_path: Path) -> None:
    _ok("db", "upgrade")
    _ok("benchmarks", "load")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "model.safetensors").write_bytes(b"weights v1")
    (folder / "tokenizer.json").write_text("{}")
    _ok("models", "add", "local-m", "--path", str(folder))
    (folder / "model.safetensors").write_bytes(b"weights v2")
    err = _fails("eval", "--model", "local-m", "--benchmark", "kisan-advisory")
    assert "changed since it was registered" in err


def test_invalid_setting_names_the_variable() -> None:
    err = _fails("db", "upgrade", env={"SABHA_EVAL_BATCH_SIZE": "0"})
    assert "SABHA_EVAL_BATCH_SIZE='0'" in err and "greater than or equal to 1" in err
