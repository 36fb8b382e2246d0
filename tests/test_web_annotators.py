"""Annotators' pages: what to annotate next, opt-in public profiles, items' annotation histories.

Attacked as a stranger would: held-out items, names nobody chose, other
people's usernames, markup and invisible characters in names, forms without
a CSRF token or a session. On SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from annotationtools import PASSWORD, START, annotate, label, label_project, person, version_of
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from webtools import csrf_token, make_web_app, sign_in

from sabha.annotation.gates import ReleaseGates
from sabha.annotation.labelstudio import LabelStudioAnnotation
from sabha.annotation.sync import upsert_annotation
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    AnnotationAssignment,
    AnnotationProject,
    Item,
    SourceItem,
    User,
)
from sabha.platform.services.annotation import link_labelstudio_account, review_annotation
from sabha.platform.services.annotators import set_annotator_languages
from sabha.platform.services.profiles import set_profile_name
from sabha.platform.services.users import revoke_role

pytestmark = pytest.mark.postgresql
GATES = ReleaseGates(min_annotations_per_item=2, min_alpha=None, min_acceptance=None)
LABEL_STUDIO = "https://studio.example.org"


def _browser(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client, csrf_token(client.get("/account").get_data(as_text=True))


def _text(response: object) -> str:
    return " ".join(response.get_data(as_text=True).split())  # type: ignore[attr-defined]


def _main(response: object) -> str:
    """The page's ``<main>``: what it says, without the links back to its own address."""
    found = re.search(r"<main>.*</main>", _text(response))
    assert found is not None
    return found.group(0)


def _profile_name(db: Engine, username: str) -> str | None:
    with Session(db) as session:
        user = session.exec(select(User).where(User.username == username)).one()
    return user.profile_name


def test_a_profile_is_public_only_by_choice_under_a_valid_name_of_ones_own(
    db: Engine, tmp_path: Path
) -> None:
    person(db, "asha", ("annotator",))
    person(db, "Baraka", ("annotator",))
    app = make_web_app(db, tmp_path)
    stranger = app.test_client()
    unknown = stranger.get("/annotators/nobody-at-all")
    not_public = stranger.get("/annotators/asha")  # an account, but no profile chosen
    assert unknown.status_code == not_public.status_code == 404
    assert _main(unknown) == _main(not_public)

    # Signed out, or without the form's CSRF token: refused, nothing saved.
    anonymous_csrf = csrf_token(stranger.get("/login").get_data(as_text=True))
    signed_out = stranger.post(
        "/account/profile",
        data={"public": "1", "profile_name": "AshaK", "csrf_token": anonymous_csrf},
    )
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    assert stranger.get("/annotators/AshaK").status_code == 404
    browser, csrf = _browser(app, "asha")
    forged = browser.post("/account/profile", data={"public": "1", "profile_name": "AshaK"})
    assert forged.status_code == 400 and _profile_name(db, "asha") is None

    bad_names = {
        "<script>alert(1)</script>": "'<'",
        "asha\u202ekisan": "U+202E",  # right-to-left override
        "asha\u200bk": "U+200B",  # zero-width space
        "a" * 300: "300 characters",
        "as": "2 characters",
        "baraka": "taken",  # another person's username, in another case
        "BARAKA": "taken",
        "Annotator-3": "reserved",  # would pass for an anonymous label
        "admin": "reserved",
        "asha k": "U+0020",
        "": "0 characters",
    }
    for name, problem in bad_names.items():
        refused = browser.post(
            "/account/profile", data={"public": "1", "profile_name": name, "csrf_token": csrf}
        )
        page = html.unescape(_text(refused))
        assert refused.status_code == 400, name
        assert "profile name:" in page and problem in page, (name, page[-600:])
        assert "<script>alert" not in refused.get_data(as_text=True)
        assert _profile_name(db, "asha") is None

    # One's own username is allowed; another person's profile name is not, in any case.
    own = browser.post(
        "/account/profile", data={"public": "1", "profile_name": "Asha", "csrf_token": csrf}
    )
    assert own.status_code == 302 and _profile_name(db, "asha") == "Asha"
    other, other_csrf = _browser(app, "Baraka")
    clash = other.post(
        "/account/profile", data={"public": "1", "profile_name": "aSHA", "csrf_token": other_csrf}
    )
    assert clash.status_code == 400 and "taken" in _text(clash)
    assert _profile_name(db, "Baraka") is None
    tamil = other.post(
        "/account/profile",
        data={"public": "1", "profile_name": "பரக்கா_2", "csrf_token": other_csrf},
    )
    assert tamil.status_code == 302 and _profile_name(db, "Baraka") == "பரக்கா_2"

    shown = stranger.get("/annotators/ASHA")  # any case finds it
    assert shown.status_code == 200 and "Asha" in _text(shown)
    assert "/annotators/Asha" in browser.get("/account").get_data(as_text=True)

    # Unchecking "public" makes the profile private again: the page is gone.
    hidden = browser.post("/account/profile", data={"profile_name": "Asha", "csrf_token": csrf})
    assert hidden.status_code == 302 and _profile_name(db, "asha") is None
    gone = stranger.get("/annotators/Asha")
    assert gone.status_code == 404 and _main(gone) == _main(unknown)


def _released_dataset(db: Engine, tmp_path: Path) -> tuple[list[str], list[str]]:
    """A released label dataset of 8 items annotated by asha (11) and baraka (12).

    Returns:
        The released ids of its public items and of its held-out items.
    """
    keys = [f"i{n}" for n in range(8)]
    tasks = label_project(db, tmp_path, "kilimo", "sw-Latn", keys, 500)
    asha = person(db, "asha", ("annotator",))
    baraka = person(db, "baraka", ("annotator",))
    reviewer = person(db, "mkaguzi", ("reviewer",))
    link_labelstudio_account(db, asha.id or 0, 11, "asha@example.org")
    link_labelstudio_account(db, baraka.id or 0, 12, "baraka@example.org")
    for n, key in enumerate(keys):
        annotate(db, 1000 + n, tasks[key], 12, label("unsafe"))  # baraka first: annotator 1
        annotate(db, 2000 + n, tasks[key], 11, label("safe"), minutes=1)
        annotate(db, 3000 + n, tasks[key], 11, label("unsafe"), minutes=2)  # replaces 2000+n
        review_annotation(db, 3000 + n, reviewer, "accepted", version=version_of(db, 3000 + n))
    with session_scope(db) as session:
        set_profile_name(session, asha, "Asha_K")
    from sabha.platform.services.annotation import release_annotated_dataset

    release_annotated_dataset(
        db, "kilimo", tmp_path / "artifacts", gates=GATES, private_fraction=0.5
    )
    with Session(db) as session:
        splits = dict(session.exec(select(Item.key, Item.split)).all())
    public = sorted(k for k, s in splits.items() if s == "test")
    held_out = sorted(k for k, s in splits.items() if s != "test")
    assert public and held_out, splits
    return public, held_out


def test_an_items_history_shows_who_annotated_and_reviewed_it_by_their_choice(
    db: Engine, tmp_path: Path
) -> None:
    public, held_out = _released_dataset(db, tmp_path)
    app = make_web_app(db, tmp_path)
    stranger = app.test_client()
    dataset_page = stranger.get("/datasets/kilimo").get_data(as_text=True)
    assert 'href="/datasets/kilimo/items"' in dataset_page

    listing = stranger.get("/datasets/kilimo/items").get_data(as_text=True)
    for key in public:
        assert f"/datasets/kilimo/items/{key}/history" in listing
    for key in held_out:
        assert key not in listing

    page = stranger.get(f"/datasets/kilimo/items/{public[0]}/history")
    assert page.status_code == 200
    shown_html = _text(page)
    assert '<a href="/annotators/Asha_K" dir="auto">Asha_K</a>' in shown_html  # opted in
    assert "annotator 1" in shown_html  # baraka, anonymous: first to annotate in the dataset
    assert "reviewer 1" in shown_html  # the reviewer has no public profile
    for private in ("baraka", "mkaguzi", "asha@example.org", "Asha_K@", ">12<", ">11<"):
        assert private not in shown_html
    assert "replaced by their later annotation" in shown_html and "their vote" in shown_html
    assert shown_html.count("accepted by") == 1

    profile = _text(stranger.get("/annotators/asha_k"))
    assert "kilimo" in profile and "8 annotations accepted by reviewers" in profile

    # A held-out item answers exactly as an item that does not exist.
    missing = stranger.get("/datasets/kilimo/items/sw-Latn.nothing/history")
    assert missing.status_code == 404
    for key in held_out:
        hidden = stranger.get(f"/datasets/kilimo/items/{key}/history")
        assert hidden.status_code == 404 and _main(hidden) == _main(missing)
    # Also to an annotator of the item, signed in.
    asha, _csrf = _browser(app, "asha")
    assert asha.get(f"/datasets/kilimo/items/{held_out[0]}/history").status_code == 404
    for path in (
        "/datasets/nope/items",
        "/datasets/nope/items/sw-Latn.i0/history",
        f"/datasets/kilimo/items/{public[0].upper()}/history",
        "/datasets/kilimo/items/..%2F..%2Fetc/history",
    ):
        assert stranger.get(path).status_code == 404, path

    # Moving a released public item to the held-out split hides its history at once.
    source_key = public[0].removeprefix("sw-Latn.")
    with session_scope(db) as session:
        source = session.exec(select(SourceItem).where(SourceItem.key == source_key)).one()
        source.split = "private"
        session.add(source)
    moved = stranger.get(f"/datasets/kilimo/items/{public[0]}/history")
    assert moved.status_code == 404 and _main(moved) == _main(missing)


def test_what_next_lists_the_items_that_still_need_me_with_their_label_studio_tasks(
    db: Engine, tmp_path: Path
) -> None:
    keys = [f"i{n}" for n in range(7)]
    tasks = label_project(db, tmp_path, "usalama", "sw-Latn", keys, 700)
    label_project(db, tmp_path, "suraksha", "hi-Deva", ["hindi-item"], 900)
    with session_scope(db) as session:
        for project in session.exec(select(AnnotationProject)).all():
            project.labelstudio_project_id = 40 + (project.id or 0)
            session.add(project)
        project_id = session.exec(
            select(AnnotationProject.labelstudio_project_id).where(
                AnnotationProject.dataset_name == "usalama"
            )
        ).one()
    me = person(db, "mwandishi", ("annotator",))
    person(db, "mgeni", ())
    set_annotator_languages(db, me.id or 0, ["sw-Latn"])
    link_labelstudio_account(db, me.id or 0, 21, "mwandishi@example.org")
    annotate(db, 1, tasks["i0"], 21, label("safe"))  # mine already
    annotate(db, 2, tasks["i1"], 22, label("safe"))  # full: k = 2 people
    annotate(db, 3, tasks["i1"], 23, label("safe"))
    annotate(db, 4, tasks["i2"], 22, label("safe"))  # needs one more
    with session_scope(db) as session:
        upsert_annotation(  # i5: I skipped it
            session, LabelStudioAnnotation(5, tasks["i5"], 21, [], True, START, START)
        )
        item_id = dict(session.exec(select(SourceItem.key, SourceItem.id)).all())
        for key, who in (("i4", 22), ("i4", 23), ("i6", 21)):  # i4 handed to two others
            session.add(AnnotationAssignment(item_id=item_id[key], labelstudio_user_id=who))
    app = make_web_app(db, tmp_path, label_studio_url=LABEL_STUDIO)

    assert app.test_client().get("/annotate/next").status_code in (302, 401)
    outsider, _csrf = _browser(app, "mgeni")
    assert outsider.get("/annotate/next").status_code == 403
    browser, _csrf = _browser(app, "mwandishi")
    before = _assignments(db)
    page = browser.get("/annotate/next")
    assert page.status_code == 200
    shown_html = page.get_data(as_text=True)
    pattern = rf'href="{re.escape(LABEL_STUDIO)}/projects/(\d+)/data\?task=(\d+)"'
    links = re.findall(pattern, shown_html)
    assert links == [
        (str(project_id), str(tasks["i6"])),  # handed to me: first
        (str(project_id), str(tasks["i2"])),
        (str(project_id), str(tasks["i3"])),
    ]
    assert "3 items wait for you" in _text(page) and "hindi-item" not in shown_html
    assert _assignments(db) == before  # looking hands nothing out
    assert "/annotate/next" in browser.get("/annotate").get_data(as_text=True)


def _assignments(db: Engine) -> int:
    with Session(db) as session:
        return len(
            session.exec(
                select(AnnotationAssignment.id).where(col(AnnotationAssignment.id) > 0)
            ).all()
        )


def test_only_annotators_and_reviewers_take_a_public_name_but_anyone_can_leave_it(
    db: Engine, tmp_path: Path
) -> None:
    """A stranger's account cannot squat a name annotators will want; someone whose
    annotator role was revoked can still go anonymous."""
    person(db, "mgeni", ())
    person(db, "zamani", ("annotator",))
    with session_scope(db) as session:
        former = session.exec(select(User).where(User.username == "zamani")).one()
        set_profile_name(session, former, "Zamani-Lebo")
    app = make_web_app(db, tmp_path)
    stranger, csrf = _browser(app, "mgeni")
    taken = stranger.post(
        "/account/profile", data={"csrf_token": csrf, "public": "1", "profile_name": "Baraka"}
    )
    assert taken.status_code == 403 and _profile_name(db, "mgeni") is None
    assert "Public profile" not in stranger.get("/account").get_data(as_text=True)

    with session_scope(db) as session:  # the annotator role is revoked
        revoke_role(
            session, session.exec(select(User).where(User.username == "zamani")).one(), "annotator"
        )
    former_client, csrf = _browser(app, "zamani")
    assert "Public profile" in former_client.get("/account").get_data(as_text=True)
    left = former_client.post("/account/profile", data={"csrf_token": csrf})
    assert left.status_code == 302 and _profile_name(db, "zamani") is None
    assert app.test_client().get("/annotators/zamani-lebo").status_code == 404
