"""The transformers releases this patchgen supports, and the one-line refusal outside them.

The range is written once: the `transformers` requirement in pyproject.toml's `[project]`
dependencies. pip resolves against it, and every command reads it back from the installed
distribution's metadata (`importlib.metadata.requires("patchgen")`), so the check and the resolver
cannot disagree. Outside the range a command refuses before reading any config: the planners match
upstream source shapes that were only verified inside it, and a generated file made from an untested
release would be written as if nothing had changed.

`PATCHGEN_ALLOW_UNSUPPORTED_TRANSFORMERS=1` runs anyway. It exists for upgrade trials, which must run
the upgrade report and the equivalence harness against a release beyond the range before the range
can move (`make upgrade-check`, the upstream-canary workflow).

Imports nothing from patchgen but its error type (`patchgen.dsl.layout.enter_project` calls it).
"""

from __future__ import annotations

import importlib.metadata
import os

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from patchgen.dsl.errors import PatchgenError


DISTRIBUTION = "patchgen"
UPSTREAM = "transformers"
ALLOW_UNSUPPORTED = "PATCHGEN_ALLOW_UNSUPPORTED_TRANSFORMERS"  # "1": an upgrade trial runs anyway


def supported_range() -> SpecifierSet | None:
    """The installed patchgen's transformers requirement; None when patchgen's metadata is not installed
    (a bare source checkout on sys.path: nothing to read, nothing refused)."""
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != UPSTREAM:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            return requirement.specifier
    return None


def installed_version() -> str | None:
    """The installed transformers release, or None when it is not installed."""
    try:
        return importlib.metadata.version(UPSTREAM)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe(specifier: SpecifierSet) -> str:
    """`>=5.17.0,<5.26`: lower bound first (SpecifierSet's own str sorts the operators as text)."""
    return ",".join(str(s) for s in sorted(specifier, key=lambda s: (s.version, s.operator.startswith("<"))))


def unsupported_reason(version: str | None, specifier: SpecifierSet | None) -> str | None:
    """Why `version` of transformers cannot be used with a patchgen requiring `specifier`, or None."""
    if specifier is None:
        return None
    wanted = f"{UPSTREAM}{describe(specifier)}"
    if version is None:
        return f"transformers is not installed; this patchgen supports {wanted}: pip install '{wanted}'"
    if specifier.contains(version, prereleases=True):
        return None
    return (
        f"transformers {version} is installed, but this patchgen supports {wanted} only; install a release "
        f"in that range (pip install '{wanted}') or a patchgen whose range includes {version} "
        f"({ALLOW_UNSUPPORTED}=1 runs anyway, for an upgrade trial)"
    )


def require_supported_transformers() -> None:
    """Raise a one-line `PatchgenError` when the installed transformers is outside the supported range."""
    if os.environ.get(ALLOW_UNSUPPORTED) == "1":
        return
    reason = unsupported_reason(installed_version(), supported_range())
    if reason is not None:
        raise PatchgenError(reason)
