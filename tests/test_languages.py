"""Language tags and regions are checked against the registries and named from them."""

from __future__ import annotations

import pytest

from sabha.platform.languages import (
    RTL_SCRIPTS,
    autonym,
    check_language_tag,
    check_region,
    describe_language,
    describe_region,
    is_language_tag,
    primary_subtag,
    text_direction,
)


@pytest.mark.parametrize(
    "tag",
    ["hi-Deva", "sw-Latn", "ta-Taml", "ur-Arab", "bn-Beng-BD", "hi-Deva-IN", "dv-Thaa",
     "sl-Latn-IT-rozaj-biske-1994", "yue-Hant", "ff-Adlm-GN"],
)  # fmt: skip
def test_registered_tags_with_script_are_accepted_unchanged(tag: str) -> None:
    assert check_language_tag(tag) == tag
    assert is_language_tag(tag)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("hi", "'hi' has no script subtag; write e.g. hi-Deva"),
        ("sw", "'sw' has no script subtag; write e.g. sw-Latn"),
        ("xx-Latn", "'xx-Latn': 'xx' is not a registered language"),
        ("hi-Xxxx", "'Xxxx' is not a registered ISO 15924 script"),
        ("hi-Deva-QX1", "not a BCP-47 tag"),
        ("hi-Deva-foobar1", "unregistered or misplaced variant ['foobar1']"),
        ("hi-deva", "write 'hi-Deva'"),
        ("HI-DEVA-in", "write 'hi-Deva-IN'"),
        ("iw-Hebr", "deprecated subtag; write 'he-Hebr'"),
        ("hi-Deva-x-mine", "extension or private-use subtags"),
        ("und-Latn", "names no language"),
        ("Hindi", "is not a BCP-47 tag"),
        ("", "the language tag is empty"),
        ("sl-Latn-IT-rozaj-biske-1994-alalc97-x", "at most 35"),
    ],
)
def test_bad_tags_say_what_is_wrong_and_how_to_write_them(tag: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_language_tag(tag)
    assert expected in str(caught.value)
    assert not is_language_tag(tag)


def test_languages_are_described_in_english_from_the_registry() -> None:
    assert describe_language("hi-Latn") == "Hindi (Latin script)"
    assert describe_language("hi-Deva") == "Hindi (Devanagari script)"
    assert describe_language("ta-Taml-LK") == "Tamil (Tamil script, Sri Lanka)"
    # Any registered language, not a hand-written list.
    assert describe_language("mai-Deva") == "Maithili (Devanagari script)"
    assert describe_language("kab-Latn").startswith("Kabyle")
    assert primary_subtag("hi-Latn") == "hi"


@pytest.mark.parametrize(
    ("tag", "name"),
    [("hi-Deva", "हिन्दी"), ("hi-Latn", "हिन्दी"), ("sw-Latn", "Kiswahili"),
     ("ta-Taml", "தமிழ்"), ("ur-Arab", "اردو")],
)  # fmt: skip
def test_autonym_is_the_language_name_in_the_language(tag: str, name: str) -> None:
    assert autonym(tag) == name


@pytest.mark.parametrize(
    ("tag", "direction"),
    [("ur-Arab", "rtl"), ("he-Hebr", "rtl"), ("dv-Thaa", "rtl"), ("syr-Syrc", "rtl"),
     ("nqo-Nkoo", "rtl"), ("ff-Adlm", "rtl"), ("rhg-Rohg", "rtl"), ("hi-Deva", "ltr"),
     ("pa-Guru", "ltr"), ("hi-Latn", "ltr"), ("not a tag", "ltr")],
)  # fmt: skip
def test_text_direction_follows_the_script(tag: str, direction: str) -> None:
    assert text_direction(tag) == direction


def test_every_rtl_script_is_a_registered_script() -> None:
    for script in RTL_SCRIPTS:
        assert is_language_tag(f"ar-{script}"), script


@pytest.mark.parametrize(
    ("code", "name"),
    [("IN-UP", "Uttar Pradesh, India"), ("KE-30", "Nairobi City, Kenya"),
     ("BD", "Bangladesh"), ("TZ", "Tanzania"), ("IN-WB", "West Bengal, India")],
)  # fmt: skip
def test_regions_are_iso_3166_and_described(code: str, name: str) -> None:
    assert check_region(code) == code
    assert describe_region(code) == name


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("IN-XX", "'IN-XX' is not an ISO 3166-2 subdivision of India; write e.g. IN-"),
        ("XX", "'XX' is not an ISO 3166-1 alpha-2 country code"),
        ("in-up", "must be upper case; write 'IN-UP'"),
        ("Bangladesh", "write an ISO 3166-2 subdivision such as IN-UP"),
        ("IN-", "is not a region"),
    ],
)
def test_bad_regions_say_how_to_write_one(code: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_region(code)
    assert expected in str(caught.value)
