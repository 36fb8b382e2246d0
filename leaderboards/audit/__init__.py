"""Audit bundles: one scoring run's published numbers with everything needed to recompute them.

``_manifest`` is the shape of ``manifest.json`` and of the item rows;
``_format`` writes a bundle deterministically and reads one back with a
clear error for anything that is not one; ``_check`` checks its hashes and
counts and recomputes every public number (``sabha audit``). Nothing here
needs a database: the service ``platform.services.audit_bundle`` gathers a
run's rows and calls :func:`write_bundle`.
"""

from ._check import MATCH, MISMATCH, PRIVATE, AuditReport, NumberCheck, audit_bundle
from ._format import (
    AuditBundle,
    BundleError,
    item_hash,
    output_hash,
    read_bundle,
    sha256_hex,
    write_bundle,
)
from ._manifest import BUNDLE_KIND, FORMAT_VERSION, BundleManifest, PublishedScore

__all__ = [
    "BUNDLE_KIND",
    "FORMAT_VERSION",
    "MATCH",
    "MISMATCH",
    "PRIVATE",
    "AuditBundle",
    "AuditReport",
    "BundleError",
    "BundleManifest",
    "NumberCheck",
    "PublishedScore",
    "audit_bundle",
    "item_hash",
    "output_hash",
    "read_bundle",
    "sha256_hex",
    "write_bundle",
]
