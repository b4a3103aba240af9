"""requirements.lock locks what pyproject.toml pins: every direct dependency (runtime and dev) at
the same version, the build backend, hashes for each package, and each dependency named once.
`make install` installs from the lock alone, so a pin changed in pyproject.toml without `make
lock` would otherwise be silently ignored for dev tools (`pip check` only sees runtime ones)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK_TEXT = (ROOT / "requirements.lock").read_text()
# "name==version ; marker \" at the start of a line, then its "--hash=sha256:..." lines.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _lock_entries() -> dict[str, tuple[str, str]]:
    """canonical name -> (version, the entry's text up to the next pin)."""
    matches = list(_PIN.finditer(LOCK_TEXT))
    entries = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(LOCK_TEXT)
        entries[canonicalize_name(match[1])] = (match[2], LOCK_TEXT[match.start() : end])
    return entries


LOCKED = _lock_entries()


def _direct() -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_every_direct_dependency_is_pinned_once_and_locked_at_that_version() -> None:
    names = [canonicalize_name(r.name) for r in _direct()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    for requirement in _direct():
        [spec] = requirement.specifier
        assert spec.operator == "==", f"{requirement}: pin exactly"
        locked = LOCKED.get(canonicalize_name(requirement.name))
        assert locked is not None, f"{requirement.name} is not in requirements.lock: run `make lock`"
        assert locked[0] == spec.version, f"{requirement}: the lock has {locked[0]}; run `make lock`"


def test_the_build_backend_and_pip_are_locked_too() -> None:
    for text in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(text)
        locked = LOCKED.get(canonicalize_name(requirement.name))
        assert locked is not None and Version(locked[0]) in requirement.specifier, text
    assert "pip" in LOCKED


def test_every_locked_package_has_hashes() -> None:
    assert len(LOCKED) > len(_direct())  # transitive ones too
    assert [name for name, (_, entry) in LOCKED.items() if "--hash=sha256:" not in entry] == []
