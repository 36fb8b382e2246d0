"""The account commands as an operator runs them: users, tokens, pool credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import REPO

from sabha.platform.cli import cli
from sabha.platform.db import make_engine, session_scope
from sabha.platform.errors import AuthenticationFailed
from sabha.platform.services.accounts import (
    authenticate_password,
    verify_access_token,
    verify_client_secret,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def sabha(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner on a migrated database."""
    monkeypatch.setenv("SABHA_DATABASE_URL", migrated_url)
    return CliRunner()


def _ok(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    result = runner.invoke(cli, list(args), input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _fails(runner: CliRunner, *args: str, input: str | None = None) -> str:
    result = runner.invoke(cli, list(args), input=input)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.output


def test_create_admin_from_standard_input_in_a_subprocess(isolated_settings: Path) -> None:
    """What an operator types on a fresh deployment: the admin can then sign in."""
    env = {**os.environ, "SABHA_DATA_DIR": str(isolated_settings)}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sabha.platform.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=300,
        )

    assert run("db", "upgrade").returncode == 0
    created = run("users", "create-admin", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "Created admin admin" in created.stdout and PASSWORD not in created.stdout
    short = run("users", "create-admin", "root", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "Traceback" not in short.stderr
    assert "password: it has 5 characters" in short.stderr
    engine = make_engine(f"sqlite:///{isolated_settings / 'sabha.db'}")
    with session_scope(engine) as session:
        assert authenticate_password(session, "admin", PASSWORD).username == "admin"
    engine.dispose()


def test_create_admin_asks_for_the_password_twice(sabha: CliRunner) -> None:
    mismatch = sabha.invoke(cli, ["users", "create-admin", "admin"], input="a" * 12 + "\nb\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output.lower()
    result = _ok(sabha, "users", "create-admin", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert PASSWORD not in result.output
    assert "admin" in _ok(sabha, "users", "list").output


def test_users_roles_and_their_errors(sabha: CliRunner) -> None:
    _ok(sabha, "users", "create", "प्रिया", "--role", "submitter", "--role", "annotator")
    assert "submitter, volunteer" in _ok(sabha, "users", "grant", "प्रिया", "volunteer").output
    revoked = _ok(sabha, "users", "revoke", "प्रिया", "annotator").output
    assert "Revoked annotator" in revoked
    assert "nothing changed" in _ok(sabha, "users", "revoke", "प्रिया", "annotator").output
    listing = _ok(sabha, "users", "list").output
    assert "प्रिया" in listing and "submitter,volunteer" in listing
    assert "taken" in _fails(sabha, "users", "create", "प्रिया")
    assert "username: it contains ' '" in _fails(sabha, "users", "create", "has space")
    assert "There is no user 'nobody'" in _fails(sabha, "users", "grant", "nobody", "admin")
    assert "'overlord' is not one of" in _fails(sabha, "users", "grant", "प्रिया", "overlord")


def test_tokens_are_printed_once_and_listed_without_the_secret(
    sabha: CliRunner, migrated_url: str
) -> None:
    _ok(sabha, "users", "create", "asha", "--role", "submitter")
    created = _ok(
        sabha, "tokens", "create", "--user", "asha", "--name", "laptop", "--scope", "submit"
    )
    token = next(line for line in created.output.splitlines() if line.startswith("sabha_pat_"))
    assert "will not be shown again" in created.output
    engine = make_engine(migrated_url)
    with session_scope(engine) as session:
        assert verify_access_token(session, token)[0].username == "asha"
    listing = _ok(sabha, "tokens", "list", "--user", "asha").output
    assert token not in listing and token[: len("sabha_pat_") + 16] in listing
    assert "laptop" in listing and "active" in listing
    refused = _fails(sabha, "tokens", "create", "--user", "asha", "--name", "x", "--scope", "admin")
    assert "may not hold tokens with scope admin" in refused
    too_long = _fails(
        sabha, "tokens", "create", "--user", "asha", "--name", "x", "--scope", "submit",
        "--expires-in-days", "400",
    )  # fmt: skip
    assert "between 1 and 366" in too_long
    assert "Revoked token 1" in _ok(sabha, "tokens", "revoke", "--user", "asha", "1").output
    assert "no access token with id 9" in _fails(sabha, "tokens", "revoke", "--user", "asha", "9")
    assert "revoked" in _ok(sabha, "tokens", "list", "--user", "asha").output
    with pytest.raises(AuthenticationFailed, match="revoked"):
        with session_scope(engine) as session:
            verify_access_token(session, token)
    engine.dispose()


def test_pool_credentials_show_the_secret_once(sabha: CliRunner, migrated_url: str) -> None:
    _ok(sabha, "users", "create", "vol", "--role", "submitter")
    assert "volunteer role" in _fails(
        sabha, "credentials", "create", "--user", "vol", "--name", "x"
    )
    _ok(sabha, "users", "grant", "vol", "volunteer")
    created = _ok(sabha, "credentials", "create", "--user", "vol", "--name", "lab").output
    fields = dict(line.split(": ", 1) for line in created.splitlines() if line.startswith("client"))
    client_id, secret = fields["client id"].strip(), fields["client secret"].strip()
    engine = make_engine(migrated_url)
    with session_scope(engine) as session:
        assert verify_client_secret(session, client_id, secret).name == "lab"
    listing = _ok(sabha, "credentials", "list", "--user", "vol").output
    assert client_id in listing and secret not in listing
    _ok(sabha, "credentials", "revoke", "--user", "vol", "1")
    assert "revoked" in _ok(sabha, "credentials", "list", "--user", "vol").output
    with pytest.raises(AuthenticationFailed, match="revoked"):
        with session_scope(engine) as session:
            verify_client_secret(session, client_id, secret)
    engine.dispose()
