"""A real Label Studio server for the tests, on 127.0.0.1.

The data dir is migrated once per test session (about half a minute) together
with two annotators and a reviewer; the server then starts from a copy of it
(a few seconds). Its process group is killed at the end of the session.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.labelstudio_server import (
    PRIVATE_ID_BASE,
    LabelStudioAccount,
    LabelStudioServer,
    add_labelstudio_user,
    find_labelstudio_command,
    initialise_data_dir,
    number_ids_from,
)

REPO = Path(__file__).resolve().parents[1]
PEOPLE = ("annotator-a@sabha.test", "annotator-b@sabha.test", "reviewer@sabha.test")


@dataclass
class LabelStudioForTests:
    """The running server, its admin and the people who annotate in it."""

    server: LabelStudioServer
    admin: LabelStudioAccount
    people: dict[str, LabelStudioAccount]
    private: bool = False  # the private server (ids from PRIVATE_ID_BASE)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str | None = None) -> LabelStudioClient:
        """A client with the admin's token, or with the token of one of ``PEOPLE``."""
        account = self.admin if who is None else self.people[who]
        return LabelStudioClient(self.url, account.token, private=self.private)


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def labelstudio_token(url: str, email: str, password: str) -> str:
    """Sign in to Label Studio's own sign-in form as a person would; return their API token."""
    with httpx.Client(base_url=url, timeout=30) as browser:
        form = browser.get("/user/login/").text
        middleware = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert middleware, "Label Studio's sign-in page has no CSRF field"
        signed_in = browser.post(
            "/user/login/",
            data={"csrfmiddlewaretoken": middleware.group(1), "email": email, "password": password},
            headers={"Referer": f"{url}/user/login/"},
        )
        assert signed_in.status_code == 302, "Label Studio refused the e-mail and password"
        answer = browser.get("/api/current-user/token")
        assert answer.status_code == 200, answer.text[:300]
        return str(answer.json()["token"])


@pytest.fixture(scope="session")
def labelstudio_template(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, LabelStudioAccount, dict[str, LabelStudioAccount]]:
    """A migrated Label Studio data dir with an admin, two annotators and a reviewer."""
    try:
        command = find_labelstudio_command(REPO / ".venv-labelstudio")
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Label Studio is not installed (run `make labelstudio`): {exc}")
    data_dir = tmp_path_factory.mktemp("labelstudio-template")
    admin = initialise_data_dir(data_dir, command)
    people = {who: add_labelstudio_user(data_dir, command, who) for who in PEOPLE}
    return data_dir, admin, people


@pytest.fixture(scope="session")
def labelstudio(
    labelstudio_template: tuple[Path, LabelStudioAccount, dict[str, LabelStudioAccount]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LabelStudioForTests]:
    """A running Label Studio (webhooks to 127.0.0.1 allowed), shared by the session."""
    template, admin, people = labelstudio_template
    data_dir = tmp_path_factory.mktemp("labelstudio") / "data"
    shutil.copytree(template, data_dir)
    server = LabelStudioServer(
        find_labelstudio_command(REPO / ".venv-labelstudio"),
        data_dir,
        free_port(),
        allow_loopback_webhooks=True,
    )
    server.start()
    try:
        yield LabelStudioForTests(server, admin, people)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def labelstudio_private(
    labelstudio_template: tuple[Path, LabelStudioAccount, dict[str, LabelStudioAccount]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LabelStudioForTests]:
    """A second, private Label Studio, numbered as `sabha labelstudio start --private` does.

    Started from the same template, so its admin and people (made before the
    numbering) keep their small ids; users Sabha makes there get ids from
    ``PRIVATE_ID_BASE``, as do its projects, tasks and annotations.
    """
    template, admin, people = labelstudio_template
    data_dir = tmp_path_factory.mktemp("labelstudio-private") / "data"
    shutil.copytree(template, data_dir)
    number_ids_from(data_dir, PRIVATE_ID_BASE)
    server = LabelStudioServer(
        find_labelstudio_command(REPO / ".venv-labelstudio"),
        data_dir,
        free_port(),
        allow_loopback_webhooks=True,
    )
    server.start()
    try:
        yield LabelStudioForTests(server, admin, people, private=True)
    finally:
        server.stop()
