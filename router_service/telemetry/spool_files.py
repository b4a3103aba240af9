"""The spool directory's files: kept private, locked to one owner, written whole.

The records are events (caller tags, redacted content, error messages), so the directory is 0700
and every file 0600 whatever the umask; a directory or file left looser by an earlier version or
by hand is tightened at open, with a warning. A `.lock` file, flocked for the Spool's lifetime,
keeps a second Spool (in this or another process) out of the directory.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

_DIR_MODE = 0o700
_FILE_MODE = 0o600


class SpoolLockedError(RuntimeError):
    """Another open Spool (in this or another process) owns the directory."""


def private_opener(path: str, flags: int) -> int:
    """An `open` opener: the file is created 0600 and stays so whatever the umask (fchmod)."""
    fd = os.open(path, flags, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_private_dir(directory: Path) -> None:
    """Create the spool directory 0700, or tighten an existing one that is looser.

    A directory we cannot chmod (not ours: a mounted volume, say) is used as it is, with a
    warning; the files in it are 0600 all the same."""
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        pass
    else:  # ours: mkdir's mode is subject to the umask, chmod's is not
        os.chmod(directory, _DIR_MODE)
        return
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode == _DIR_MODE:
        return
    try:
        os.chmod(directory, _DIR_MODE)
    except PermissionError as exc:
        log.warning("event spool %s is mode %o and cannot be made 0700 (%s)", directory, mode, exc)
        return
    if mode & 0o077:
        log.warning("event spool %s was mode %o, readable by others; made it 0700", directory, mode)


def tighten_files(directory: Path) -> None:
    """Make every file in the directory 0600 that others could read."""
    loose = [path for path in directory.iterdir() if path.is_file() and path.stat().st_mode & 0o077]
    for path in loose:
        os.chmod(path, _FILE_MODE)
    if loose:
        log.warning("event spool %s: %d files were readable by others; made them 0600", directory, len(loose))


def acquire_lock(path: Path) -> io.TextIOWrapper:
    """The lock file, flocked; closing it releases the lock. SpoolLockedError if held."""
    lock = open(path, "a", opener=private_opener)  # noqa: SIM115 (held open for the spool's lifetime)
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SpoolLockedError(f"spool directory {path.parent} is in use by another spool") from None
    return lock


def write_all(file: io.FileIO, data: bytes) -> None:
    """Write all of `data` to an unbuffered file: one write() but for a short write (a full disk
    makes the next one raise), so the loop almost never turns."""
    written = file.write(data) or 0
    while written < len(data):
        more = file.write(data[written:])
        if not more:  # a regular file never does this; refuse to spin
            raise OSError(f"write() took nothing of {len(data) - written} bytes")
        written += more
