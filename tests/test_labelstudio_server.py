"""Accounts Sabha makes in a Label Studio it runs."""

from __future__ import annotations

import secrets

from labelstudio_fixture import LabelStudioForTests

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.labelstudio_server import add_labelstudio_user


def test_a_password_beginning_with_a_dash_makes_a_working_account(
    labelstudio: LabelStudioForTests,
) -> None:
    # token_urlsafe gives "-" first about one time in 64; argparse used to
    # read such a password as an option and `label-studio init` failed.
    password = "-" + secrets.token_urlsafe(12)
    server = labelstudio.server
    account = add_labelstudio_user(server.data_dir, server.command, "dash@sabha.test", password)

    assert account.password == password
    client = LabelStudioClient(labelstudio.url, account.token)
    me = client.whoami()
    assert labelstudio.client().list_users()["dash@sabha.test"] == me
