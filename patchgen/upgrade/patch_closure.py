"""The code a patch brings into a generated file: its own definition plus the helpers copied with it.

The lock records a hash of this code (`patchgen.upgrade.fingerprints.patch_record`) so that `upgrade_report --accept` can tell
a patch that was fixed after an upstream change from one that was not. The helpers are found the way
the generator finds them (`patchgen.load.resolution.resolve_names`), but from source alone: a free name
of the patch bound in its module by a definition, an assignment or a guarded block, or imported
there from the patch package, is a helper, transitively. Imports from anywhere else (torch, the
upstream package, `patchgen.runtime`) are not copied, so they are not part of the patch's code;
the upstream package's names are fingerprinted as dependencies instead (`patchgen.upgrade.upstream_dependencies`).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from patchgen.dsl.layout import in_patch_space
from patchgen.dsl.patch_spec import Patch, PatchKind
from patchgen.load.patch_source import free_names, read_patch_source
from patchgen.syntax.source_text import Snippet, reindent
from patchgen.upgrade.upstream_dependencies import (
    NamesInModule,
    import_origin,
    names_used,
    parsed_file,
    top_level_binding,
)


@dataclass(frozen=True)
class CodeText:
    """Dedented source of one definition and the module its names are looked up in."""

    text: str
    module: str
    path: Path


@dataclass(frozen=True)
class PatchCode:
    location: str  # `patchgen/sets/losses/fused_loss.py:42`: where the patch object is defined
    name: str  # the patch object (`linear_cross_entropy_forward`), or `module.name` it imports
    texts: tuple[CodeText, ...]  # the patch definition first, then its helpers by (module, name)
    imported: str = ""  # for an external replacement: the import that is all of its code

    def uses(self) -> list[NamesInModule]:
        return [NamesInModule(names_used(code.text), code.module, code.path) for code in self.texts]


_FOUND: dict[tuple, PatchCode] = {}


def patch_code(patch: Patch, label: str, patch_package: str) -> PatchCode:
    """The code of `patch` (`label` names it in errors); a patch set's patch is read once for all its configs."""
    key = (
        patch.kind,
        patch.replacement,
        patch.replacement_module,
        patch.replacement_name,
        patch.defined_at,
        patch_package,
    )
    if key not in _FOUND:
        _FOUND[key] = _read_patch_code(patch, label, patch_package)
    return _FOUND[key]


def _read_patch_code(patch: Patch, label: str, patch_package: str) -> PatchCode:
    if patch.kind is PatchKind.EXTERNAL_REPLACEMENT:
        name = f"{patch.replacement_module}.{patch.replacement_name}"
        return PatchCode(
            str(patch.defined_at),
            name,
            (),
            imported=f"from {patch.replacement_module} import {patch.replacement_name}",
        )
    if patch.replacement is None:  # `replace_assignment(NAME, value)`: the literal is all of its code
        return PatchCode(str(patch.defined_at), patch.target, (), imported=f"{patch.target} = {patch.value_source}")
    source = read_patch_source(patch.replacement, label, patch.defined_at.line if patch.defined_at else None)
    main = CodeText(reindent(source.snippet(), ""), source.module.__name__, Path(source.module.__file__))
    helpers: dict[tuple[str, str], CodeText] = {}
    pending = [main]
    while pending:
        code = pending.pop()
        for name in sorted(free_names(Snippet.parse(code.text))):
            found = _helper(code.module, code.path, name, patch_package)
            if found is not None and found[0] not in helpers and found[1].text != main.text:
                helpers[found[0]] = found[1]
                pending.append(found[1])
    qualname = getattr(patch.replacement, "__qualname__", str(patch.replacement))
    return PatchCode(str(patch.defined_at), qualname, (main, *(helpers[key] for key in sorted(helpers))))


def _helper(
    module: str, path: Path, name: str, patch_package: str, hops: int = 0
) -> tuple[tuple[str, str], CodeText] | None:
    source, tree = parsed_file(path)
    node = top_level_binding(tree.body, name, at_run_time=True)
    if node is None or isinstance(node, ast.Import) or hops > 20:
        return None
    if isinstance(node, ast.ImportFrom):
        origin = import_origin(node, name, module, path.name == "__init__.py")
        if origin is None or not in_patch_space(origin[0], patch_package):
            return None
        spec = importlib.util.find_spec(origin[0])
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        return _helper(origin[0], Path(spec.origin), origin[1], patch_package, hops + 1)
    first = source.node_start_line(node, leading_comments=False)
    text = reindent(Snippet.parse("".join(source.lines[first - 1 : node.end_lineno])), "")
    return (module, name), CodeText(text, module, path)
