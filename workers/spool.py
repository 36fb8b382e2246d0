"""The agent's spool: finished shard results kept on disk until the platform has them.

A result is written to the spool before it is posted, so a network outage, a
platform restart or an agent restart loses nothing: the agent posts what the
spool holds whenever the platform answers again. Each result is one file,
``<run_id>.json``, written atomically (a temporary file in the same folder,
flushed and fsynced, then renamed over the final name, and the folder
fsynced), so a crash leaves either the whole result or nothing. Files are
readable by their owner only: they carry the lease token.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from sabha.platform.wire import ShardResult

__all__ = ["MemorySpool", "Spool"]


class Spool:
    """A folder of finished results waiting to be posted.

    Args:
        folder: Where the files live; created (mode 0700) if missing.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in folder.glob(".*.tmp"):  # a crash mid-write in an earlier process
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _path(self, run_id: int) -> Path:
        return self.folder / f"{run_id}.json"

    def put(self, result: ShardResult) -> Path:
        """Store a result durably; a result for the same run replaces the older one."""
        data = result.model_dump_json().encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{result.run_id}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            final = self._path(result.run_id)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_folder()
        return final

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> list[ShardResult]:
        """The stored results, oldest run first.

        A file that does not parse is moved aside as ``<name>.bad`` so it never
        blocks the rest. (Temporary files of a crash mid-write are removed when
        the spool is opened.)
        """
        results = []
        for path in sorted(self.folder.glob("*.json"), key=_run_order):
            try:
                results.append(ShardResult.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError):
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
        return results

    def remove(self, run_id: int) -> None:
        """Forget a result the platform has (or refused for good)."""
        self.remove_all([run_id])

    def remove_all(self, run_ids: Iterable[int]) -> None:
        """Forget several results at once (one sync of the folder)."""
        for run_id in run_ids:
            with contextlib.suppress(FileNotFoundError):
                self._path(run_id).unlink()
        self._sync_folder()

    def __len__(self) -> int:
        return sum(1 for p in self.folder.glob("*.json"))


def _run_order(path: Path) -> tuple[int, str]:
    return (int(path.stem) if path.stem.isdigit() else 0, path.name)


class MemorySpool:
    """A spool in memory, for an agent whose platform is in the same process.

    ``sabha eval``'s platform cannot be away, so its results never wait long;
    a crash loses only what the engine finished and nobody stored yet (the
    leases expire and the shards run again).
    """

    def __init__(self) -> None:
        self._results: dict[int, ShardResult] = {}
        self._lock = threading.Lock()

    def put(self, result: ShardResult) -> None:
        """Keep a result; a result for the same run replaces the older one."""
        with self._lock:
            self._results[result.run_id] = result

    def pending(self) -> list[ShardResult]:
        """The kept results, oldest run first."""
        with self._lock:
            return [self._results[run_id] for run_id in sorted(self._results)]

    def remove(self, run_id: int) -> None:
        """Forget a result the platform has (or refused for good)."""
        self.remove_all([run_id])

    def remove_all(self, run_ids: Iterable[int]) -> None:
        """Forget several results at once."""
        with self._lock:
            for run_id in run_ids:
                self._results.pop(run_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)
