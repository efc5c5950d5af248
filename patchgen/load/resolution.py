"""What every name in copied patch code becomes in the output: upstream's, an import, or copied code.

Patch code is cut out of its module and spliced into upstream's. Each global name it reads must
mean the same object there as in its own module, or the generator refuses. In order:

1. A placeholder bound by `config.use(..., bind=...)`: the bound function or class, under its own name.
2. The replacement object of a patch of this config (`FastNorm` replacing `Qwen3RMSNorm`): renamed to
   the target, which is what the output calls it.
3. A name the patch module binds when it runs:
   - upstream's own object (same import origin, or the very object): nothing to add, unless it is the
     original of a definition this config replaces (the output's name means the patch, not the
     original: calling it recurses or calls the wrong code, so that is refused);
   - an import from an installed package: the same import in the output;
   - anything defined in the patch package: *every* top-level statement that binds or changes the
     name, copied in file order with everything they need (`FACTOR = 2` and `FACTOR *= 3`; a `def`
     and its redefinition under `if FAST:`). A statement that hands the name to an unknown call at
     import time may change it in ways no reader can tell: refused.
4. A name the patch module does not bind when it runs (imported under `if TYPE_CHECKING:`, or not at
   all): the output's own name of that spelling, e.g. the output's (maybe patched) rope; refused when
   the output does not bind it at run time either, or when it is the patch's own target (recursion).
5. A builtin the patch module does not rebind: the builtin, unless the output rebinds that name.

Every name the output gains (imports, copied statements, `add_import`, `add_statement`) is claimed
in one registry against upstream's names, builtins and each other: two different things under one
name is an error that names both places.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import SHIPPED_SETS, in_patch_space
from patchgen.dsl.patch_spec import SourceLocation
from patchgen.load.patch_source import (
    assigned_globals,
    display_path,
    free_names,
    local_names,
    locate_definition,
    module_file,
    parsed_file,
)
from patchgen.syntax.module_facts import TopStatement, changes_attribute_of, import_time_nodes
from patchgen.syntax.source_text import Snippet, TextEdit, apply_edits, reindent, rename_edits


MODULE_ATTRIBUTES = frozenset(
    {"__name__", "__file__", "__doc__", "__spec__", "__package__", "__loader__", "__cached__"}
)
BUILTIN_NAMES = frozenset(dir(builtins)) | MODULE_ATTRIBUTES
_MISSING = object()

HelperKey = tuple[str, int, str]  # (module name, top-level statement index, name it is bound as or "")


@dataclass
class Helper:
    """Top-level statements copied from the patch package into the output, under one banner."""

    key: HelperKey
    name: str  # the names it binds, for the banner
    text: str
    location: SourceLocation
    needed_by: list[str] = field(default_factory=list)
    depends_on: list[HelperKey] = field(default_factory=list)  # what must be defined above it (import time)
    uses: list[HelperKey] = field(default_factory=list)  # everything it needs in the output, run time included


@dataclass(frozen=True)
class Claim:
    """Who gives a name its value in the output: `origin` identifies the object, `where` is for messages."""

    origin: str
    where: str


@dataclass
class Resolution:
    """What the output needs beyond upstream so that every patch's names are defined."""

    imports: dict[str, None] = field(default_factory=dict)  # import statements, ordered, unique
    helpers: dict[HelperKey, Helper] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)

    def claim(self, name: str, origin: str, where: str, label: str) -> None:
        """Record that the output binds `name` to `origin`; a different earlier claim is an error."""
        if name in BUILTIN_NAMES and name not in self.claims:
            raise PatchgenError(
                f"{label}: {where} binds {name!r}, which would shadow the builtin {name!r} for all code in the "
                "output (upstream's included); rename it in the patch module"
            )
        earlier = self.claims.setdefault(name, Claim(origin, where))
        if earlier.origin != origin:
            raise PatchgenError(
                f"{label}: {where} and {earlier.where} would both define {name!r} in the output; rename one of them"
            )


@dataclass(frozen=True)
class NameContext:
    """What the output module will define, and which objects the config renames or replaces."""

    output_names: frozenset[str]  # names the output binds when it runs (upstream's, minus removed ones)
    upstream_module: ModuleType
    patch_package: str
    renamed_objects: dict[int, str]  # id(replacement or add_code object) -> its name in the output
    upstream: Any  # patchgen.load.upstream.UpstreamModule
    replaced_originals: dict[int, str] = field(default_factory=dict)  # id(upstream object) -> target replacing it
    kept_originals: dict[int, str] = field(default_factory=dict)  # id(upstream object) -> `keep_original_as` name
    upstream_type_checking_names: frozenset[str] = frozenset()

    def is_patch_space(self, module_name: str) -> bool:
        return in_patch_space(module_name, self.patch_package)


def patch_space_modules(patch_package: str) -> list[tuple[str, ModuleType]]:
    """(name, module) of every loaded module of the patch space (`in_patch_space`), sorted by name.

    Thousands of modules are loaded (torch, transformers) and a handful are patch code, and this is
    asked for every name a patch copies. The answer is kept while `sys.modules` holds as many modules
    as when it was found and still holds each module found under its name: planning only imports
    (which adds), and moving to the next config drops that config's modules (`config_runs`), among
    them the config module itself, which is always in the patch space.
    """
    known = _PATCH_SPACE.get(patch_package)
    if (
        known is not None
        and known[0] == len(sys.modules)
        and all(sys.modules.get(name) is module for name, module in known[1])
    ):
        return known[1]
    tops = (patch_package, SHIPPED_SETS)
    prefixes = (patch_package + ".", SHIPPED_SETS + ".")
    found = sorted(
        ((n, m) for n, m in list(sys.modules.items()) if n in tops or n.startswith(prefixes)), key=lambda item: item[0]
    )
    _PATCH_SPACE[patch_package] = (len(sys.modules), found)
    return found


_PATCH_SPACE: dict[str, tuple[int, list[tuple[str, ModuleType]]]] = {}


# -- origins: what a binding statement binds a name to, read from source ---------------------------


def import_origin(node: ast.Import | ast.ImportFrom, name: str, package: str) -> tuple[str, str] | None:
    """(statement binding just `name`, dotted origin of the object) for an import binding `name`."""
    for alias in node.names:
        if (alias.asname or alias.name.split(".", 1)[0]) != name:
            continue
        if isinstance(node, ast.Import):
            text = f"import {alias.name} as {alias.asname}" if alias.asname else f"import {alias.name}"
            return text, alias.name if alias.asname else name
        module = node.module or ""
        if node.level:
            module = importlib.util.resolve_name("." * node.level + module, package)
        suffix = f" as {alias.asname}" if alias.asname else ""
        return f"from {module} import {alias.name}{suffix}", f"{module}.{alias.name}"
    return None


def binding_origin(node: ast.stmt | None, name: str, module_name: str, package: str) -> str | None:
    """The dotted name of the object a top-level statement binds to `name`, from source alone: an
    import's origin, `<module>.<name>` for a `def`/`class`; None for anything else (an assignment, a block)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return f"{module_name}.{name}"
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        found = import_origin(node, name, package)
        return found[1] if found else None
    return None


def upstream_origin(upstream: Any, name: str) -> str:
    """What upstream's name refers to: an import's dotted origin, else the upstream definition itself."""
    for node in upstream.tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found = import_origin(node, name, upstream.package)
            if found is not None:
                return found[1]
    return f"{upstream.name}.{name}"


# -- resolving ------------------------------------------------------------------------------------


def resolve_names(
    snippet: Snippet,
    module: ModuleType,
    label: str,
    context: NameContext,
    resolution: Resolution,
    *,
    ignore: frozenset[str] = frozenset(),
    bindings: dict[str, Any] | None = None,
    own_target: str | None = None,
) -> tuple[Snippet, list[HelperKey]]:
    """Make every free name of `snippet` (code from `module`) mean in the output what it means there.

    Returns the snippet with renamed references (replacement objects -> their targets, placeholders ->
    the names of the objects bound to them) and the keys of the helpers it needs directly. Adds
    imports, helpers and claims to `resolution`. `own_target` is the upstream name the snippet
    replaces, if any (reading it back means recursion in the output).
    """
    resolver = _Resolver(context, resolution)
    return resolver.resolve(snippet, module, label, ignore, bindings or {}, own_target)


class _Resolver:
    def __init__(self, context: NameContext, resolution: Resolution):
        self.context = context
        self.resolution = resolution

    def resolve(
        self,
        snippet: Snippet,
        module: ModuleType,
        label: str,
        ignore: frozenset[str],
        bindings: dict[str, Any],
        own_target: str | None,
    ) -> tuple[Snippet, list[HelperKey]]:
        snippet, pairs = self.resolve_pairs(snippet, module, label, ignore, bindings, own_target)
        return snippet, [key for _, key in pairs]

    def resolve_pairs(
        self,
        snippet: Snippet,
        module: ModuleType,
        label: str,
        ignore: frozenset[str],
        bindings: dict[str, Any],
        own_target: str | None,
    ) -> tuple[Snippet, list[tuple[str, HelperKey]]]:
        """`resolve`, with each helper key paired with the name (as the code spells it) that needs it."""
        renames: dict[str, str] = {}
        needed: list[tuple[str, HelperKey]] = []
        for name in sorted(assigned_globals(snippet) & (self.context.output_names | BUILTIN_NAMES)):
            raise PatchgenError(
                f"{label}: the code assigns the module-level name {name!r} (`global {name}`); in the output that is "
                f"{'the builtin' if name in BUILTIN_NAMES and name not in self.context.output_names else 'upstream'}"
                f"'s {name!r}, so upstream's code would see the change, unlike with the patch: keep the state in a "
                "name of the patch module's own"
            )
        for name in sorted(free_names(snippet) - ignore):
            if name in bindings:
                value = bindings[name]
                bound_name = self._bound_original(name, value, label) or value.__name__
                if bound_name != name:
                    renames[name] = bound_name
                if bound_name == value.__name__:
                    needed += [(name, key) for key in self._bound_object(value, label)]
                continue
            new_name, keys = self._one_name(name, module, label, own_target)
            if new_name != name:
                renames[name] = new_name
            needed += [(name, key) for key in keys]
        if renames:
            _refuse_renaming_locals(snippet, renames, label)
            snippet = Snippet.parse(apply_edits(snippet.text, rename_edits(snippet, renames)))
        return snippet, needed

    # -- one name ---------------------------------------------------------------------------------

    def _one_name(self, name: str, module: ModuleType, label: str, own_target: str | None) -> tuple[str, list]:
        context = self.context
        facts = parsed_file(module_file(module)).facts
        value = vars(module).get(name, _MISSING)
        if value is not _MISSING and id(value) in context.renamed_objects:
            return context.renamed_objects[id(value)], []
        if name not in facts.runtime_names:
            return name, self._not_bound_here(name, module, facts, label, own_target)
        if value is not _MISSING and id(value) in context.kept_originals:
            return context.kept_originals[id(value)], []  # upstream's original, kept in the output under that name
        replaced = context.replaced_originals.get(id(value)) if value is not _MISSING else None
        if replaced is not None:
            raise PatchgenError(
                f"{label}: {display_path(module)} binds {name!r} to upstream's original {replaced}, which this "
                f"config replaces: in the output {replaced!r} is the replacement, so this code would "
                f"{'call itself forever' if replaced == own_target else 'call the replacement, not the original'}; "
                f"to call the original, register the patch with keep_original_as='upstream_{replaced}' (or any name), "
                "or call the replacement's own name"
            )
        if name in context.output_names:
            self._same_as_upstream(name, value, module, facts, label)
            return name, []
        return name, self._copy_or_import(name, module, label)

    def _not_bound_here(self, name: str, module: ModuleType, facts, label: str, own_target: str | None) -> list:
        context = self.context
        if name == own_target:
            raise PatchgenError(
                f"{label}: the code reads {name!r}, which in the output is this patch itself (it replaces "
                f"{name!r}), so it would call itself forever; to call upstream's original, register the patch with "
                "keep_original_as=... and import the original in the patch module"
            )
        if name in MODULE_ATTRIBUTES:
            raise PatchgenError(
                f"{label}: the code reads {name!r}, which is the patch module's own ({display_path(module)}) when it "
                f"runs there but the generated file's in the output; use a constant instead (a logger name, a path "
                "from importlib.resources)"
            )
        value = vars(module).get(name, _MISSING)
        if (
            value is not _MISSING
            and name not in BUILTIN_NAMES
            and value is not vars(context.upstream_module).get(name)
        ):
            # bound when the module ran, by nothing its source says: `from x import *`, `globals()[...] = ...`
            raise PatchgenError(
                f"{label}: {display_path(module)} binds {name!r} in a way the generator cannot read (a star import, "
                f"globals(), setattr on the module): the output cannot give it the same value; bind {name!r} with "
                "an import or an assignment of its own there"
            )
        if name in context.output_names:
            if name in BUILTIN_NAMES:
                raise PatchgenError(
                    f"{label}: the code reads the builtin {name!r}, but the output binds {name!r} to upstream's "
                    f"{upstream_origin(context.upstream, name)}; rename it in the patch module or upstream's use"
                )
            return []  # the output's own object of that name (e.g. its patched rope): documented late binding
        if name in BUILTIN_NAMES:
            return []
        where = display_path(module)
        if name in facts.type_checking_names:
            future = (
                " (with `from __future__ import annotations` that module never evaluates annotations; the output does)"
                if facts.future_annotations
                else ""
            )
            raise PatchgenError(
                f"{label}: name {name!r} is imported in {where} only under `if TYPE_CHECKING:`{future}, and the "
                "output does not define it when it runs; import it for real there"
            )
        if name in context.upstream_type_checking_names:
            raise PatchgenError(
                f"{label}: name {name!r} is bound in {context.upstream.name} only under `if TYPE_CHECKING:`, so "
                f"the output lacks it at run time; import it in {where}"
            )
        raise PatchgenError(
            f"{label}: name {name!r} is defined neither in the upstream module nor in {where}; import or define it there"
        )

    def _same_as_upstream(self, name: str, value: Any, module: ModuleType, facts, label: str) -> None:
        """A name the patch module binds and the output binds too: it must be the same object."""
        context = self.context
        ours = self._origin_in(module, facts, name)
        if ours is not None and ours == upstream_origin(context.upstream, name):
            self._submodule_imports(name, module, facts)
            return
        upstream_value = vars(context.upstream_module).get(name, _MISSING)
        if value is not _MISSING and value is upstream_value:
            self._submodule_imports(name, module, facts)
            return
        raise PatchgenError(
            f"{label}: name {name!r} in {display_path(module)} is not the upstream {name!r} that the output "
            f"defines ({upstream_origin(context.upstream, name)}); rename it in the patch module or import upstream's"
        )

    def _submodule_imports(self, name: str, module: ModuleType, facts) -> None:
        """`import logging.handlers` binds `logging` like `import logging` but also loads the submodule: the
        output needs the statement itself, or `logging.handlers` may not exist there."""
        for statement in facts.binders(name):
            node = statement.node
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not alias.asname and "." in alias.name and alias.name.split(".", 1)[0] == name:
                        self.resolution.imports.setdefault(f"import {alias.name}", None)

    @staticmethod
    def _origin_in(module: ModuleType, facts, name: str) -> str | None:
        binders = facts.binders(name)
        if len(binders) == 1 and isinstance(binders[0].node, (ast.Import, ast.ImportFrom)):
            found = import_origin(binders[0].node, name, module.__package__ or module.__name__)
            return found[1] if found else None
        if len(binders) == 1 and isinstance(binders[0].node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            return f"{module.__name__}.{name}"
        return None

    # -- imports and copies -----------------------------------------------------------------------

    def _copy_or_import(
        self,
        name: str,
        module: ModuleType,
        label: str,
        bound_as: str | None = None,
        importer: ModuleType | None = None,
    ) -> list:
        """Make `name` of `module` exist in the output as `bound_as` (default: `name`); `importer` is the
        patch module that imports it from `module` (its own changes to the name are copied with it)."""
        facts = parsed_file(module_file(module)).facts
        bound_as = bound_as or name
        binders = facts.binders(name)
        package = module.__package__ or module.__name__
        if binders and all(isinstance(s.node, (ast.Import, ast.ImportFrom)) for s in binders):
            statement = binders[-1]  # the binding in force when the module has run
            text, origin = import_origin(statement.node, name, package)
            keys: list = []
            if self._in_patch_space(origin, statement.node, package):
                keys = self._from_patch_module(origin, name, bound_as, module, statement, label)
            else:
                if bound_as != name:
                    text = f"{text.rsplit(' as ', 1)[0]} as {bound_as}" if " as " in text else f"{text} as {bound_as}"
                where = f"the import in {display_path(module)}:{statement.node.lineno}"
                self.resolution.claim(bound_as, origin, where, label)
                self.resolution.imports.setdefault(text, None)
            for changer in facts.changers(name):  # e.g. `torch.backends.x = y` after `import torch`
                keys.append(self._copy_statement(module, changer, label, bound_as if bound_as != name else "", name))
            self._refuse_unclear(name, module, facts, label)
            return keys
        self._refuse_unclear(name, module, facts, label)
        self._refuse_changed_elsewhere(name, module, label, importer)
        rename = bound_as if bound_as != name else ""
        return [self._copy_statement(module, s, label, rename, name) for s in facts.statements_for(name)]

    def _in_patch_space(self, origin: str, node: ast.stmt, package: str) -> bool:
        if isinstance(node, ast.ImportFrom):
            module_name = node.module or ""
            if node.level:
                module_name = importlib.util.resolve_name("." * node.level + module_name, package)
            return self.context.is_patch_space(module_name)
        return self.context.is_patch_space(origin)

    def _from_patch_module(
        self, origin: str, name: str, bound_as: str, module: ModuleType, statement: TopStatement, label: str
    ) -> list:
        """`from models.common.x import helper [as h]`: copy `helper` from its own module, bound as `h`."""
        home_name, _, attribute = origin.rpartition(".")
        home = sys.modules.get(home_name)
        if isinstance(statement.node, ast.Import) or home is None or inspect.ismodule(getattr(home, attribute, None)):
            raise PatchgenError(
                f"{label}: {name!r} is imported from the patch package ({origin}) in {display_path(module)}:"
                f"{statement.node.lineno}; generated files must not import from it, so import what it needs by "
                "name (`from package.module import helper`) so the helper can be copied"
            )
        home_facts = parsed_file(module_file(home)).facts
        if attribute not in home_facts.runtime_names:
            raise PatchgenError(f"{label}: {home_name} does not define {attribute!r} at module level")
        return self._copy_or_import(attribute, home, label, bound_as, importer=module)

    def _refuse_changed_elsewhere(self, name: str, module: ModuleType, label: str, importer: ModuleType | None):
        """Another loaded module of the patch package that changes `name` at import (`a.REG["y"] = 2` after
        `from pkg import a`, or `REG["z"] = 3` after `from pkg.a import REG`): a copy of `module`'s
        statements cannot hold that change."""
        value = vars(module).get(name, _MISSING)
        for _, other in patch_space_modules(self.context.patch_package):
            if other is module or other is importer:
                continue
            path = getattr(other, "__file__", None)
            if not path or not path.endswith(".py"):
                continue
            facts = parsed_file(path).facts
            for local, bound in vars(other).items():
                if bound is module:
                    statements = [s for s in facts.changers(local) if changes_attribute_of(s.node, local, name)]
                elif (
                    bound is value and value is not _MISSING and not _immutable(value) and local in facts.runtime_names
                ):
                    statements = facts.changers(local)
                else:
                    continue
                if statements:
                    raise PatchgenError(
                        f"{label}: the code needs {name!r} from {display_path(module)}, and "
                        f"{display_path(other)}:{statements[0].node.lineno} changes it too; a copy of "
                        f"{display_path(module)}'s statements cannot hold that change, so make it there"
                    )

    def _refuse_unclear(self, name: str, module: ModuleType, facts, label: str) -> None:
        unclear = facts.unclear(name)
        if unclear:
            line = unclear[0].node.lineno
            raise PatchgenError(
                f"{label}: the code needs {name!r} from {display_path(module)}, and the module-level statement at "
                f"line {line} passes it to a call that may change it, or changes it through another name bound to it; "
                f"a copy cannot know, so move that into the statement that defines {name!r} (or into a function "
                "the patch calls)"
            )

    def _copy_statement(
        self, module: ModuleType, statement: TopStatement, label: str, rename: str, needed_name: str = ""
    ) -> HelperKey:
        """Copy one top-level statement (with its comments) of a patch module, once, resolving what it reads."""
        key: HelperKey = (module.__name__, statement.index, rename)
        helpers = self.resolution.helpers
        if key in helpers:
            helpers[key].needed_by.append(label)
            return key
        parsed = parsed_file(module_file(module))
        node = statement.node
        location = SourceLocation(module.__name__, display_path(module), node.lineno)
        where = f"the module-level code at {location}"
        binds = sorted(statement.binds)
        if rename:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                raise PatchgenError(
                    f"{label}: {display_path(module)}:{node.lineno} is imported under another name ({rename!r}); "
                    "only a function or class can be copied under another name: import it under its own name"
                )
            binds = [rename]
        for bound in binds:
            # one origin per name of the module: its statements rebinding it in order are one definition
            source_name = node.name if rename else bound
            self.resolution.claim(bound, f"copy:{module.__name__}.{source_name}", where, label)
        helper = Helper(key=key, name=", ".join(binds) or needed_name, text="", location=location, needed_by=[label])
        helpers[key] = helper  # registered before resolving what it reads, so recursive code terminates
        start, end = parsed.source.node_lines(node)
        snippet = Snippet.parse(parsed.source.segment(start, end))
        snippet = self._absolute_imports(snippet, module, label, location)
        if rename and node.name != rename:
            _refuse_renaming_locals(snippet, {node.name: rename}, label)
            snippet = Snippet.parse(apply_edits(snippet.text, rename_edits(snippet, {node.name: rename})))
        helper_label = f"{label.split(' (via helper ')[0]} (via helper {helper.name})"
        snippet, pairs = self.resolve_pairs(snippet, module, helper_label, frozenset(statement.binds), {}, None)
        helper.text = reindent(snippet, "")
        # What must come first in the output is what this statement reads while the module is imported
        # (decorators, defaults, bases, module-level expressions) and the earlier statements giving the
        # same names their value; names only a function body reads merely have to exist by the time it runs.
        at_import = {n.id for n in import_time_nodes(snippet.definition) if isinstance(n, ast.Name)}
        earlier = [
            (module.__name__, s.index, rename)
            for name in statement.binds | statement.changes
            for s in parsed.facts.statements_for(name)
            if s.index < statement.index and (module.__name__, s.index, rename) in helpers
        ]
        helper.depends_on = list(dict.fromkeys(k for k in earlier if k != key))
        helper.depends_on += [k for name, k in pairs if name in at_import and k != key and k not in helper.depends_on]
        helper.uses = [k for _, k in pairs if k != key]
        return key

    def _absolute_imports(self, snippet: Snippet, module: ModuleType, label: str, location) -> Snippet:
        """Relative imports inside copied code become absolute; imports from the patch package are refused."""
        edits = []
        source = snippet.source
        package = module.__package__ or module.__name__
        for node in ast.walk(snippet.tree):
            if isinstance(node, ast.ImportFrom):
                absolute = node.module or ""
                if node.level:
                    absolute = importlib.util.resolve_name("." * node.level + absolute, package)
                    start = source.offset(node.lineno, node.col_offset)
                    text = source.text
                    cut = text.index("import", start + len("from"))
                    edits.append(TextEdit(start, cut, f"from {absolute} "))
                if self.context.is_patch_space(absolute):
                    raise PatchgenError(
                        f"{label}: the module-level code at {location} imports from the patch package "
                        f"({absolute}); generated files must not, so define it there or import it by name at the "
                        "top of the module"
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if self.context.is_patch_space(alias.name):
                        raise PatchgenError(
                            f"{label}: the module-level code at {location} imports the patch package "
                            f"({alias.name}); generated files must not"
                        )
        return Snippet.parse(apply_edits(snippet.text, edits)) if edits else snippet

    def _bound_original(self, placeholder: str, value: Any, label: str) -> str | None:
        """A bound upstream object the config replaces, as a name read directly is (`_one_name`): its kept name
        (`keep_original_as`), or refused; at run time the bound object is the original, in the output its name is
        the replacement's. None for any other object."""
        context = self.context
        if id(value) in context.kept_originals:
            return context.kept_originals[id(value)]
        replaced = context.replaced_originals.get(id(value))
        if replaced is not None:
            raise PatchgenError(
                f"{label}: bind: {placeholder}={replaced} is upstream's original {replaced}, which this config "
                f"replaces: in the output {replaced!r} is the replacement, so the bound step would call the "
                f"replacement, not the original; to bind the original, register the replacement with "
                f"keep_original_as='upstream_{replaced}' (or any name), or bind the replacement's own object"
            )
        return None

    def _bound_object(self, value: Any, label: str) -> list:
        """A function or class bound to a placeholder: copied from the patch package, imported otherwise."""
        context = self.context
        name, home_name = value.__name__, value.__module__
        if name in context.output_names and vars(context.upstream_module).get(name, _MISSING) is value:
            return []  # upstream's own object, wherever upstream lives (a toy upstream inside the patch package)
        if context.is_patch_space(home_name):
            home, parsed, node = locate_definition(value, label)
            statement = next(s for s in parsed.facts.statements if s.node is node or _contains(s.node, node))
            if statement.node is not node:
                raise PatchgenError(
                    f"{label}: bind: {display_path(home)}:{node.lineno} defines {name} inside a block; "
                    "bind a function or class defined at the top of its module"
                )
            if name in context.output_names:
                raise PatchgenError(
                    f"{label}: bind: {home_name}.{name} would be defined as {name!r} in the output, which "
                    f"upstream already defines; rename the bound {'class' if inspect.isclass(value) else 'function'}"
                )
            return self._copy_or_import(name, home, label)
        if name in context.output_names and vars(context.upstream_module).get(name, _MISSING) is value:
            return []
        if "." in value.__qualname__:
            raise PatchgenError(f"{label}: bind: {home_name}.{value.__qualname__} is not a module-level object")
        self.resolution.claim(name, f"{home_name}.{name}", f"bind= ({home_name}.{name})", label)
        self.resolution.imports.setdefault(f"from {home_name} import {name}", None)
        return []


def _refuse_renaming_locals(snippet: Snippet, renames: dict[str, str], label: str) -> None:
    """Renames edit every `Name` of that spelling; one that is also a local somewhere in the code (a lambda's
    parameter, a nested function's variable) would be renamed too and change meaning."""
    clash = sorted(local_names(snippet) & renames.keys())
    if clash:
        raise PatchgenError(
            f"{label}: {clash[0]!r} names a module-level object the output calls {renames[clash[0]]!r}, and is also "
            "a local name inside the code (a parameter or variable of a nested function or lambda); renaming one "
            "would rename both, so give the local another name"
        )


def _immutable(value: Any) -> bool:
    return isinstance(value, (int, float, complex, str, bytes, bool, type(None), tuple, frozenset))


def _contains(outer: ast.stmt, inner: ast.stmt) -> bool:
    return any(n is inner for n in ast.walk(outer))
