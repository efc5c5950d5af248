"""The state one planning run shares: the config, upstream, the output's names, and the edits so far.

A leaf module: the planners (`plan`, `init_merge`) and the checks (`validation`) import it and not
each other.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import Patch, PatchConfig
from patchgen.load.resolution import HelperKey, NameContext, Resolution
from patchgen.load.upstream import UpstreamModule
from patchgen.syntax.source_text import TextEdit


# Edits inserted at one offset are applied in this order (`TextEdit.order`, lowest first):
ORDER_IMPORTS = -4  #: the config's and the patches' imports, at the end of upstream's import block
ORDER_HELPER = -3  #: code copied from the patch package, above the first upstream definition needing it
ORDER_BANNER = -2  #: a class's [MODIFIED CLASS] banner, directly above the class
ORDER_NEW_INIT = -1  #: an `__init__` written by modify_init, before the class body's first statement
ORDER_CODE = 0  #: replaced definitions and everything else


@dataclass
class Plan:
    """What `render` needs: the upstream text and the edits that turn it into the output."""

    config: PatchConfig
    config_module: str
    upstream: UpstreamModule
    edits: list[TextEdit] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  #: the header's "Patches applied" lines
    patch_package: str = ""  #: top-level package of the config: the output must never import from it


@dataclass
class PlanContext:
    config: PatchConfig
    config_module: str
    upstream: UpstreamModule
    names: NameContext  #: what the output binds, and which objects the config renames or replaces
    resolution: Resolution = field(default_factory=Resolution)  #: imports, copied code and name claims so far
    edits: list[TextEdit] = field(default_factory=list)
    #: helper key -> offsets of the upstream spans of the patches that need it (it goes above the first)
    helper_anchors: dict[HelperKey, list[int]] = field(default_factory=lambda: defaultdict(list))
    #: `pass`/`...` class bodies already cut (several added methods share one cut)
    removed_placeholders: set[tuple[int, int]] = field(default_factory=set)

    def fail(self, patch: Patch | None, message: str) -> PatchgenError:
        where = f"{patch.defined_at}: {patch.label}" if patch else self.config_module
        return PatchgenError(f"{self.config_module}: {where}: {message}")

    def label(self, patch: Patch) -> str:
        """How messages about `patch` start: config module, patch source location, patch label."""
        return f"{self.config_module}: {patch.defined_at}: {patch.label}"

    def needs_helpers(self, keys: list[HelperKey], anchor: int) -> None:
        for key in keys:
            self.helper_anchors[key].append(anchor)
