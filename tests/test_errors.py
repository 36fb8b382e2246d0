"""One translation of infrastructure errors, shared by the CLI and the web pages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from sabha.platform.errors import (
    DatabaseBusy,
    PrerequisiteError,
    SabhaError,
    translate_error,
)


def _locked() -> OperationalError:
    return OperationalError("UPDATE shard", {}, sqlite3.OperationalError("database is locked"))


def test_missing_extra_names_the_extra_to_install() -> None:
    error = translate_error(ModuleNotFoundError("No module named 'vllm'", name="vllm"))
    assert isinstance(error, PrerequisiteError)
    assert "'vllm'" in error.message and ".[cpu]" in str(error.hint)


def test_locked_database_and_refused_value_read_clearly() -> None:
    assert isinstance(translate_error(_locked()), DatabaseBusy)
    refused = translate_error(
        IntegrityError("INSERT", {}, sqlite3.IntegrityError("CHECK constraint failed: status"))
    )
    assert refused is not None and "database refused a value" in refused.message
    assert translate_error(RuntimeError("a bug")) is None


@pytest.mark.parametrize("path", ["/api/boom", "/boom"])
def test_web_shows_the_same_message_without_a_traceback(path: str, tmp_path: Path) -> None:
    from sabha.platform.app import create_app
    from sabha.platform.settings import Settings

    app = create_app(Settings(data_dir=tmp_path))

    def boom() -> str:
        raise _locked()

    app.add_url_rule(path, "boom", boom)
    response = app.test_client().get(path)
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "locked by another Sabha process" in body and "Traceback" not in body
    if path.startswith("/api/"):
        assert response.get_json()["hint"].startswith("Wait for the other command")


def test_cli_prints_the_translation(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from sabha.platform import cli

    def locked(*_args: object, **_kwargs: object) -> None:
        raise _locked()

    monkeypatch.setattr("sabha.platform.db.upgrade_database", locked)
    result = CliRunner().invoke(cli.cli, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "Error: The database is locked by another Sabha process" in result.output
    assert isinstance(translate_error(SabhaError("x")), SabhaError)
