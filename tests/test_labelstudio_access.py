"""Who can reach what in Label Studio: accounts come only through Sabha.

Against a real Label Studio 1.23.2 started as Sabha starts it.
"""

from __future__ import annotations

import re
import uuid

import httpx
from labelstudio_fixture import LabelStudioForTests


def test_labelstudio_sign_up_page_refuses_a_stranger(labelstudio: LabelStudioForTests) -> None:
    email = f"stranger-{uuid.uuid4().hex[:8]}@example.org"
    with httpx.Client(base_url=labelstudio.url, timeout=30) as stranger:
        login = stranger.get("/user/login/")
        assert login.status_code == 200
        assert "/user/signup" not in login.text  # no sign-up link is offered
        form = stranger.get("/user/signup/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, "Label Studio's sign-up page has no CSRF field"
        answer = stranger.post(
            "/user/signup/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "email": email,
                "password": "a-long-enough-password-1",
                "how_find_us": "Other",
            },
            headers={"Referer": f"{labelstudio.url}/user/signup/"},
        )
    assert answer.status_code == 403, answer.text[:500]
    assert email not in labelstudio.client().list_users()
