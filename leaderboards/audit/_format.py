"""An audit bundle on disk: a zip archive, written deterministically, read defensively.

Members, in this order:

- ``manifest.json``: :class:`BundleManifest` (the scoring run, its published
  scores, the job, the dataset version, the shards and their runs, and the
  SHA-256 of every other member).
- ``items.jsonl``: one public item per line, in scoring order (the order of
  the bootstrap): the item's fields (``ITEM_FIELDS``), ``item_hash``, the
  accepted ``output`` and ``error``, and ``output_hash``.
- ``private_items.jsonl``: one item of a private split per line, hashes only:
  ``{"item_hash": ..., "output_hash": ...}``.
- ``card.md``: the dataset version's data card (when it has one).
- ``README.md``: how to check the bundle.

Same content, same bytes: members are stored in a fixed order with a fixed
date and mode, and JSON is written with sorted keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from sabha.platform.errors import SabhaError

from ._manifest import (
    BUNDLE_KIND,
    FORMAT_VERSION,
    BundleManifest,
    PrivateItemRow,
    PublicItemRow,
)

__all__ = [
    "CARD",
    "ITEMS",
    "ITEM_FIELDS",
    "MANIFEST",
    "PRIVATE_ITEMS",
    "AuditBundle",
    "BundleError",
    "canonical_json",
    "item_hash",
    "item_line",
    "output_hash",
    "read_bundle",
    "sha256_hex",
    "write_bundle",
]

MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
PRIVATE_ITEMS = "private_items.jsonl"
CARD = "card.md"
README = "README.md"

ITEM_FIELDS = (
    "id",
    "language",
    "region",
    "dialect",
    "split",
    "input",
    "reference",
    "label",
    "attributes",
)
"""An item's own fields, as in a benchmark's JSONL items file; ``item_hash`` covers them."""

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
_MAX_MEMBER_BYTES = 4 * 1024**3  # refuse members that would unpack to more (a zip bomb)
_FIX = "Download the bundle again from the job's page (/jobs/<id>) and pass that file."

_README = """\
# Sabha audit bundle

Everything needed to recompute the published scores of one scoring run,
offline. Check it with the `sabha` command line (no database, no network):

    sabha audit THIS_FILE.zip

It checks every member's SHA-256, each public item's hash and output hash,
the scoring identity, the counts, and recomputes every public score (value,
95% interval, n) with sacrebleu and Sabha's own scoring, comparing each with
the published number. Items of a private held-out split appear as hashes
only, so their aggregate score cannot be recomputed here.

manifest.json: the scoring run, its published scores, the job, the dataset
version and where each shard ran. items.jsonl: public items in scoring order,
with the accepted output of each. private_items.jsonl: hashes of private
items and of their outputs. card.md: the dataset version's card.
"""


class BundleError(SabhaError):
    """A file that is not a readable audit bundle of a format this Sabha knows."""


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys, no spaces and UTF-8 text: the bytes every hash is taken over."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


def item_line(item: Mapping[str, Any]) -> bytes:
    """An item's own fields (``ITEM_FIELDS``) as the line the dataset version's
    content hash is taken over (``sabha.platform.benchmarks.content_hash``)."""
    fields = {name: item.get(name) for name in ITEM_FIELDS}
    return json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")


def item_hash(item: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`item_line`: names an item without showing it."""
    return sha256_hex(item_line(item))


def output_hash(item: Mapping[str, Any], output: str, error: str | None) -> str:
    """SHA-256 of an item's fields with its output and error.

    The item's own text is part of what is hashed, so the output hash of an
    item of a private split cannot be guessed by trying likely answers.
    """
    fields = {name: item.get(name) for name in ITEM_FIELDS}
    return sha256_hex(canonical_json({"item": fields, "output": output, "error": error}))


@dataclass(frozen=True)
class AuditBundle:
    """A bundle read back: its manifest, item rows and members' bytes."""

    manifest: BundleManifest
    items: list[PublicItemRow]
    private_items: list[PrivateItemRow]
    card: str | None
    members: dict[str, bytes]


def _jsonl(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(canonical_json(dict(row)) + b"\n" for row in rows)


def write_bundle(
    manifest: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    private_items: Sequence[Mapping[str, Any]],
    card: str | None,
) -> bytes:
    """The bundle's bytes: the same arguments give the same bytes.

    Args:
        manifest: The manifest's fields except ``kind``, ``format_version``
            and ``files`` (added here).
        items: Public item rows, in scoring order.
        private_items: ``{"item_hash", "output_hash"}`` rows of private items.
        card: The dataset version's card (Markdown), or None.
    """
    members = {ITEMS: _jsonl(items), PRIVATE_ITEMS: _jsonl(private_items)}
    if card is not None:
        members[CARD] = card.encode("utf-8")
    members[README] = _README.encode("utf-8")
    full = {
        **manifest,
        "kind": BUNDLE_KIND,
        "format_version": FORMAT_VERSION,
        "files": {name: sha256_hex(data) for name, data in members.items()},
    }
    checked = BundleManifest.model_validate(full).model_dump(mode="json")
    text = json.dumps(checked, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in [(MANIFEST, text.encode("utf-8")), *members.items()]:
            entry = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            entry.create_system = 3  # Unix, whatever system writes it
            archive.writestr(entry, data, compresslevel=6)
    return buffer.getvalue()


def _open(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise BundleError(
            f"{path} is not a file.", "Pass the path of the downloaded audit bundle (.zip)."
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(
            f"{path} is not an audit bundle: not a readable zip archive ({exc}); "
            "it may be truncated.",
            _FIX,
        ) from exc


def _member(archive: zipfile.ZipFile, path: Path, name: str) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > _MAX_MEMBER_BYTES:
        raise BundleError(f"{path}: {name} would unpack to {info.file_size:,} bytes.", _FIX)
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # truncated or corrupt
        raise BundleError(
            f"{path}: {name} cannot be read ({exc}); the file is damaged.", _FIX
        ) from exc


_Row = TypeVar("_Row", PublicItemRow, PrivateItemRow)


def _rows(path: Path, name: str, data: bytes, shape: type[_Row]) -> list[_Row]:
    rows = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            rows.append(shape.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(the line)"
            raise BundleError(
                f"{path}: {name} line {number}, field '{where}': {first['msg']}.", _FIX
            ) from exc
    return rows


def _manifest(path: Path, data: bytes) -> BundleManifest:
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {MANIFEST} is not JSON ({exc}).", _FIX) from exc
    if not isinstance(raw, dict) or raw.get("kind") != BUNDLE_KIND:
        raise BundleError(
            f"{path} is not an audit bundle: its {MANIFEST} has no kind {BUNDLE_KIND!r}.", _FIX
        )
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} is an audit bundle of format version {version!r}; "
            f"this Sabha reads version {FORMAT_VERSION}.",
            "Install the Sabha release that made the bundle (or a newer one): "
            "pip install --upgrade sabha.",
        )
    try:
        return BundleManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BundleError(
            f"{path}: {MANIFEST} field '{where}': {first['msg']} "
            f"({exc.error_count()} problem(s) in all).",
            _FIX,
        ) from exc


def read_bundle(path: Path) -> AuditBundle:
    """Read an audit bundle; member hashes are checked later, by the audit.

    Raises:
        BundleError: not a file, not a zip archive (or a truncated one), no
            manifest, another format version, or a member that is not what
            the format says.
    """
    with _open(path) as archive:
        data = _member(archive, path, MANIFEST)
        if data is None:
            raise BundleError(f"{path} is not an audit bundle: it has no {MANIFEST}.", _FIX)
        manifest = _manifest(path, data)
        members: dict[str, bytes] = {}
        for name in manifest.files:
            member = _member(archive, path, name)
            if member is not None:
                members[name] = member
    card = members.get(CARD)
    return AuditBundle(
        manifest=manifest,
        items=_rows(path, ITEMS, members.get(ITEMS, b""), PublicItemRow),
        private_items=_rows(path, PRIVATE_ITEMS, members.get(PRIVATE_ITEMS, b""), PrivateItemRow),
        card=card.decode("utf-8", errors="replace") if card is not None else None,
        members=members,
    )
