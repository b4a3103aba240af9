"""Keys in a YAML file (hashes only), for small fleets and the embedded stack.

The file is read at start and again whenever it changes (checked every `poll_s`, and on
`reload()`, which SIGHUP calls): calls in flight keep the identity they were given, new calls see
the new keys, nothing is dropped. A file that fails to parse or validate on reload is logged and
ignored: the keys last read stay in force (a typo must not lock every caller out).

`put` rewrites the file atomically (temporary file, fsync, rename), mode 0600: that is how
`routerctl keys create|rotate|disable --keys-file` manage it; a running router picks it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from router_service.identity.records import KeyRecord
from router_service.keystore.schema import KeyConfig, KeyFileConfig, error_path

log = logging.getLogger(__name__)


class KeyFileError(ValueError):
    pass


def read_key_file(path: Path) -> dict[str, KeyRecord]:
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError) as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    try:
        parsed = KeyFileConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{error_path(e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False))
        raise KeyFileError(f"{path}: {problems}") from None
    return {key.id: key.to_record() for key in parsed.keys}


def write_key_file(path: Path, records: list[KeyRecord]) -> None:
    # The id first in each entry: the file is read by people too.
    keys = [KeyConfig.from_record(r).model_dump(mode="json", exclude_defaults=True) for r in records]
    document = {"keys": [{"id": k.pop("id"), **k} for k in keys]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write("# Virtual keys: hashes only. Managed with `routerctl keys`.\n")
            yaml.safe_dump(document, out, sort_keys=False)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FileKeyStore:
    def __init__(self, path: Path, *, poll_s: float = 2.0) -> None:
        self.path = path
        self._poll_s = poll_s
        self._records: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.reload_failures = 0

    async def start(self) -> None:
        """Reads the file; a bad file at start is an error (the router does not start)."""
        self._records = read_key_file(self.path)
        self._stamp = self._file_stamp()
        if self._poll_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="key-file-poll")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    async def list(self) -> list[KeyRecord]:
        return list(self._records.values())

    async def put(self, record: KeyRecord) -> None:
        records = dict(read_key_file(self.path))
        records[record.key_id] = record
        write_key_file(self.path, list(records.values()))
        self.reload()

    def reload(self) -> bool:
        """Re-read the file now. Returns whether the keys in force changed."""
        stamp = self._file_stamp()
        try:
            fresh = read_key_file(self.path)
        except KeyFileError as exc:
            self.reload_failures += 1
            log.error("key file reload failed, keeping the keys in force: %s", exc)
            self._stamp = stamp  # do not log the same broken file every poll
            return False
        self._stamp = stamp
        # Unchanged records keep their object, so verified secrets stay cached.
        merged = {k: self._records[k] if self._records.get(k) == r else r for k, r in fresh.items()}
        changed = merged != self._records
        self._records = merged
        self.reloads += 1
        if changed:
            log.info("key file %s reloaded: %d keys", self.path, len(merged))
        return changed

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            if self._file_stamp() != self._stamp:
                self.reload()
