"""Config + upstream -> a validated list of text edits on the upstream file.

Every error is found here, before any text is produced. Each patch kind has one planner function;
they share a `PlanContext` and append `TextEdit`s that `render` applies.
"""

from __future__ import annotations

import ast
import codecs
import difflib
import importlib
import importlib.util
import inspect
import re
from collections import defaultdict

from patchgen.dsl import config_values, requirements
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import METHOD_LEVEL, Patch, PatchConfig, PatchKind
from patchgen.load.installed import import_problem
from patchgen.load.patch_source import free_names, read_patch_source
from patchgen.load.resolution import Claim, HelperKey, NameContext, resolve_names, upstream_origin
from patchgen.load.upstream import UpstreamModule, member_bindings
from patchgen.plan import banners
from patchgen.plan.context import ORDER_BANNER, ORDER_CODE, ORDER_HELPER, ORDER_IMPORTS, Plan, PlanContext
from patchgen.plan.init_merge import plan_init_modification
from patchgen.plan.into_class import (
    class_written_in,
    refuse_changed_meaning,
    refuse_private_member,
    refuse_renamed_private_names,
)
from patchgen.plan.module_level import plan_assignment_replacement, plan_module_code
from patchgen.plan.validation import check_exclusions, check_override_signature
from patchgen.syntax.module_facts import runtime_bound_names
from patchgen.syntax.source_text import Snippet, TextEdit, apply_edits, python_lines, reindent, rename_edits


def make_plan(config: PatchConfig, config_module: str, upstream: UpstreamModule) -> Plan:
    _check_duplicates(config, config_module)
    excluded = {e.name for e in config.exclusions}
    for exclusion in config.exclusions:
        label = f"{config_module}: {exclusion.defined_at}: exclude_from_output {exclusion.name}"
        if exclusion.name not in upstream.definitions:
            raise PatchgenError(
                f"{label}: no such class or function in {upstream.name}{_suggest(exclusion.name, upstream.definitions)}"
            )
        _refuse_bound_twice(upstream, exclusion.name, label)
    patch_package = config_module.split(".", 1)[0]
    upstream_module = upstream.module()
    whole = (PatchKind.CLASS_REPLACEMENT, PatchKind.FUNCTION_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT)
    replacements = {id(p.replacement): p.target for p in config.patches if p.kind in whole[:2]}
    # an `add_code` object is in the output under its own name: other patches reading it read that one
    replacements |= {
        id(p.replacement): p.target for p in config.patches if p.kind is PatchKind.MODULE_CODE and not p.block
    }
    originals = {
        id(vars(upstream_module)[p.target]): p.target
        for p in config.patches
        if p.kind in whole and p.target in vars(upstream_module)
    }
    extra_names = {name for imp in config.extra_imports for name in imp.bound_names}
    kept = {
        id(vars(upstream_module)[p.target]): p.keep_original_as
        for p in config.patches
        if p.keep_original_as and p.kind in whole and p.target in vars(upstream_module)
    }
    extra_names |= set(kept.values()) | _names_added_by_code(config)
    names = NameContext(
        output_names=frozenset((upstream.runtime_names - excluded) | extra_names),
        upstream_module=upstream_module,
        patch_package=patch_package,
        renamed_objects=replacements,
        upstream=upstream,
        replaced_originals=originals,
        kept_originals=kept,
        upstream_type_checking_names=upstream.type_checking_names,
    )
    ctx = PlanContext(config, config_module, upstream, names)
    _claim_output_names(ctx, excluded)
    check_exclusions(ctx)
    _check_bindings_used(ctx)
    for patch in config.patches:
        if patch.target_class in excluded:
            raise ctx.fail(patch, f"{patch.target_class} is also excluded by exclude_from_output; drop one of the two")
        _check_requirements(ctx, patch)
        PLANNERS[patch.kind](ctx, patch)
    config_values.plan_construction_checks(ctx, ctx.fail)
    _plan_class_banners(ctx)
    for exclusion in config.exclusions:
        _plan_exclusion(ctx, exclusion.name)
    _plan_helpers(ctx)
    _plan_relative_imports(ctx)

    imports = [imp.statement for imp in config.extra_imports] + list(ctx.resolution.imports)
    _plan_imports(ctx, imports)
    _plan_statements(ctx)
    _plan_coding_line(ctx)
    return Plan(
        config=config,
        config_module=config_module,
        upstream=upstream,
        edits=ctx.edits,
        applied=_applied_summary(config),
        patch_package=patch_package,
    )


# -- validation -----------------------------------------------------------------------------------


def _check_duplicates(config: PatchConfig, config_module: str) -> None:
    claimed: dict[str, Patch] = {}
    for patch in config.patches:
        keys = [patch.target]
        if patch.kind in (PatchKind.CLASS_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT):
            keys.append(f"{patch.target}.*")
        elif patch.kind in (PatchKind.METHOD_OVERRIDE, PatchKind.INIT_MODIFICATION):
            keys = [f"{patch.target_class}.{patch.method_name}", f"{patch.target_class}.*"]
        for key in keys:
            other = claimed.get(key)
            whole_class = key.endswith(".*")
            if other is not None and not (
                whole_class
                and other.kind in (PatchKind.METHOD_OVERRIDE, PatchKind.INIT_MODIFICATION)
                and patch.kind in (PatchKind.METHOD_OVERRIDE, PatchKind.INIT_MODIFICATION)
            ):
                raise PatchgenError(
                    f"{config_module}: {patch.defined_at}: {patch.label}: {other.label} "
                    f"({other.defined_at}) already patches this target; keep only one"
                )
            claimed.setdefault(key, patch)


def _names_added_by_code(config: PatchConfig) -> set[str]:
    """What `add_code`/`add_block`/block `replace_assignment` patches bind: other patches may use those names."""
    names: set[str] = set()
    for patch in config.patches:
        if patch.kind is PatchKind.MODULE_CODE and not patch.block:
            names.add(patch.replacement.__name__)
        elif patch.kind is PatchKind.MODULE_CODE or (
            patch.kind is PatchKind.ASSIGNMENT_REPLACEMENT and patch.value_source is None
        ):
            try:
                function = Snippet.parse(
                    read_patch_source(patch.replacement, patch.label, patch.defined_at.line).definition
                )
            except PatchgenError:
                continue  # reported with its location when the patch itself is planned
            names |= runtime_bound_names(function.definition.body)
    return names


def _claim_output_names(ctx: PlanContext, excluded: set[str]) -> None:
    """Register what the output binds before any patch code is resolved: upstream's names, then the
    config's `add_import`s (an import binding a name upstream binds to something else is an error)."""
    upstream = ctx.upstream
    for name in upstream.runtime_names - excluded:
        ctx.resolution.claims[name] = Claim(upstream_origin(upstream, name), f"upstream {upstream.name}")
    for imp in ctx.config.extra_imports:
        names = tuple(entry.partition(" as ")[0].strip() for entry in imp.names)
        problem = import_problem(imp.module, names)
        if problem:
            raise PatchgenError(f"{ctx.config_module}: add_import({imp.module!r}) at {imp.defined_at}: {problem}")
        for name, origin in imp.bound_origins:
            ctx.resolution.claim(name, origin, f"add_import({imp.module!r}) at {imp.defined_at}", ctx.config_module)


def _check_requirements(ctx: PlanContext, patch: Patch) -> None:
    """What the patch's set requires of upstream (`PatchSet.requires_*`), checked before it is planned, and
    that the set's code reads every config value upstream's replaced code reads (`config_values`)."""
    set_name = (patch.patch_set or "").split(".")[0]
    for requirement in patch.requirements:
        problem = requirements.check(requirement, ctx.upstream, patch.target_class)
        if problem:
            raise PatchgenError(
                f"{ctx.config_module}: {patch.applied_at}: use({set_name}) on {patch.target}: "
                f"{requirement.describe()} ({requirement.defined_at}) fails: {problem}; {requirement.otherwise}"
            )
    problem = config_values.ignored_reads(ctx.upstream, patch, ctx.config.patches)
    if problem:
        raise PatchgenError(f"{ctx.config_module}: {patch.applied_at}: use({set_name}) on {patch.target}: {problem}")


def _check_constructor(ctx: PlanContext, patch: Patch, replacement: object) -> None:
    """A replacement class must accept every upstream call of the class it replaces."""
    if inspect.isclass(replacement):
        problem = requirements.constructor_problems(ctx.upstream, patch.target, replacement)
        if problem:
            raise ctx.fail(patch, f"{problem}; give the replacement upstream's constructor parameters")


def _check_bindings_used(ctx: PlanContext) -> None:
    """Every placeholder of a `use(..., bind=...)` must be a name the code of that use's patches reads."""
    by_use: dict[object, list[Patch]] = defaultdict(list)
    for patch in ctx.config.patches:
        if patch.bindings:
            by_use[(patch.applied_at, patch.patch_set and patch.patch_set.split(".")[0])].append(patch)
    for patches in by_use.values():
        used: set[str] = set()
        for patch in patches:
            if patch.replacement is not None:
                used |= free_names(read_patch_source(patch.replacement, ctx.label(patch)).snippet())
        unused = [name for name, _ in patches[0].bindings if name not in used]
        if unused:
            raise ctx.fail(
                patches[0],
                f"bind: the patch set's code never uses the placeholder {unused[0]!r}"
                f"{_suggest(unused[0], used)}; bind only names its code calls",
            )


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _upstream_definition(ctx: PlanContext, patch: Patch, name: str, kinds: tuple[type, ...]) -> ast.stmt:
    node = ctx.upstream.definitions.get(name)
    if node is None or not isinstance(node, kinds):
        what = "class" if kinds == (ast.ClassDef,) else "function" if ast.ClassDef not in kinds else "definition"
        candidates = [n for n, d in ctx.upstream.definitions.items() if isinstance(d, kinds)]
        raise ctx.fail(patch, f"no {what} {name!r} in {ctx.upstream.name}{_suggest(name, candidates)}")
    _refuse_bound_twice(ctx.upstream, name, ctx.label(patch))
    return node


def _refuse_bound_twice(upstream: UpstreamModule, name: str, label: str) -> None:
    """A name upstream binds more than once at module level (a redefinition, a later assignment): replacing
    or removing one definition would leave the other in force, so the output would not do what was asked.
    (`@typing.overload` stubs do not count: the definition after them is the one in force.)"""
    lines = upstream.binding_lines(name)
    if len(lines) > 1:
        raise PatchgenError(
            f"{label}: upstream {upstream.name} binds {name!r} {len(lines)} times (lines "
            f"{', '.join(map(str, lines))}); patching or excluding one of them would leave the others in force: "
            "patch the code that uses it instead"
        )


# -- planners, one per patch kind -----------------------------------------------------------------


def _replacement_banner(patch: Patch, title: str) -> str:
    return banners.banner(f"{title} {patch.target}", banners.patch_reason_lines(patch))


def _plan_replacement(ctx: PlanContext, patch: Patch) -> None:
    is_class = patch.kind is PatchKind.CLASS_REPLACEMENT
    node = _upstream_definition(
        ctx, patch, patch.target, (ast.ClassDef,) if is_class else (ast.FunctionDef, ast.AsyncFunctionDef)
    )
    if is_class:
        _refuse_class_changed_later(ctx, patch, node, None)
    _check_constructor(ctx, patch, patch.replacement)
    source = read_patch_source(patch.replacement, ctx.label(patch), patch.defined_at.line)
    if is_class:
        definition = Snippet.parse(source.definition).definition
        refuse_changed_meaning(definition, definition.name, patch.target, ctx.label(patch))
    snippet, helpers = resolve_names(
        source.snippet(),
        source.module,
        ctx.label(patch),
        ctx.names,
        ctx.resolution,
        bindings=dict(patch.bindings),
        own_target=patch.target,
    )
    snippet = _renamed_definition(snippet, patch.target)
    start, end = ctx.upstream.source.node_lines(node)
    code = reindent(snippet, "")
    hub = _hub_kernel_decorator(ctx, node)
    if hub:
        code = _with_first_decorator(snippet, code, hub)
    text = _replacement_banner(patch, "[PATCHED CLASS]" if is_class else "[PATCHED FUNCTION]") + code
    if patch.keep_original_as:
        text = _kept_original(ctx, patch, node, "") + "\n\n" + text
    ctx.edits.append(TextEdit(start, end, text, ORDER_CODE))
    ctx.needs_helpers(helpers, start)


def _kept_original(ctx: PlanContext, patch: Patch, node: ast.stmt, indent: str) -> str:
    """Upstream's definition `node`, renamed to `patch.keep_original_as`, under a one-line marker."""
    kept = patch.keep_original_as
    src = ctx.upstream.source
    first = src.node_start_line(node, leading_comments=False)
    snippet = Snippet.parse("".join(src.lines[first - 1 : node.end_lineno]))
    if isinstance(node, ast.ClassDef):
        advice = "override the methods you change with override_method(..., keep_original_as=...) instead"
        refuse_renamed_private_names(node, kept, ctx.label(patch), advice)
    snippet = _renamed_definition(snippet, kept)
    if patch.kind is not PatchKind.METHOD_OVERRIDE:  # a module-level name: one meaning in the output
        origin = f"kept:{ctx.upstream.name}.{patch.target}"
        ctx.resolution.claim(kept, origin, f"{patch.label} keep_original_as", ctx.label(patch))
    marker = banners.marker(f"[KEPT ORIGINAL] upstream's {patch.target}, as {kept}, for {patch.label}", indent)
    return marker + reindent(snippet, indent)


def _plan_external(ctx: PlanContext, patch: Patch) -> None:
    node = _upstream_definition(ctx, patch, patch.target, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    _check_external_exists(ctx, patch)
    if isinstance(node, ast.ClassDef):
        imported = getattr(importlib.import_module(patch.replacement_module), patch.replacement_name)
        _check_constructor(ctx, patch, imported)
    start, end = ctx.upstream.source.node_lines(node)
    title = "[PATCHED CLASS]" if isinstance(node, ast.ClassDef) else "[PATCHED FUNCTION]"
    statement = f"from {patch.replacement_module} import {patch.replacement_name}"
    origin = f"{patch.replacement_module}.{patch.replacement_name}"
    hub = _hub_kernel_decorator(ctx, node)
    if patch.replacement_name == patch.target and not hub:
        code = statement + "\n"
    else:
        if patch.replacement_name == patch.target:
            raise ctx.fail(
                patch,
                f"upstream registers {patch.target} as a hub kernel ({hub.strip()}), which the output keeps on the "
                f"replacement: import it under another name (replace_function or a wrapper named otherwise)",
            )
        ctx.resolution.claim(patch.replacement_name, origin, f"{patch.label} ({patch.source_note})", ctx.label(patch))
        ctx.resolution.imports.setdefault(statement, None)
        value = f"{hub.strip()[1:]}({patch.replacement_name})" if hub else patch.replacement_name
        code = f"{patch.target} = {value}\n"
    lines = [f"Replaced by: {origin} (imported, not copied)"]
    text = banners.banner(f"{title} {patch.target}", lines + banners.patch_reason_lines(patch)) + code
    ctx.edits.append(TextEdit(start, end, text, ORDER_CODE))


# Decorators by which upstream registers a function with transformers' kernel hub. Since transformers 5.25
# (`kernels` a required dependency) upstream classes list such functions in `@use_kernelized_func(...)`, which
# rejects a function the decorator did not register: a replacement keeps the registration, so the classes
# import and `kernelize` sees the function as on stock (it runs the patch unless a hub kernel is mapped to it).
HUB_KERNEL_DECORATORS = frozenset({"use_kernel_forward_from_hub"})


def _hub_kernel_decorator(ctx: PlanContext, node: ast.stmt) -> str | None:
    """Upstream's `@use_kernel_forward_from_hub("name")` line on the function `node`, or None."""
    for decorator in getattr(node, "decorator_list", ()):
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(node, ast.ClassDef) or not isinstance(call, ast.Name) or call.id not in HUB_KERNEL_DECORATORS:
            continue
        return "@" + ast.get_source_segment(ctx.upstream.source.text, decorator) + "\n"
    return None


def _with_first_decorator(snippet: Snippet, code: str, decorator: str) -> str:
    """`code` (the snippet's text at column 0) with `decorator` as its outermost decorator."""
    definition = snippet.definition
    first = min([d.lineno for d in definition.decorator_list] + [definition.lineno])
    lines = python_lines(code)
    return "".join(lines[: first - 1]) + decorator + "".join(lines[first - 1 :])


def _check_external_exists(ctx: PlanContext, patch: Patch) -> None:
    """The imported replacement must exist in an installed module, or the output would not import."""
    module_name, name = patch.replacement_module, patch.replacement_name
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ctx.fail(patch, f"module {module_name!r} is not installed; install it or fix the module name")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the user's to fix, in one line
        raise ctx.fail(patch, f"module {module_name!r} fails to import ({type(exc).__name__}: {exc})") from None
    if not hasattr(module, name):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise ctx.fail(patch, f"module {module_name!r} has no {name!r}{_suggest(name, public)}")


def _plan_method_override(ctx: PlanContext, patch: Patch) -> None:
    cls = _upstream_definition(ctx, patch, patch.target_class, (ast.ClassDef,))
    method = _overridable_method(ctx, patch, cls)
    _refuse_class_changed_later(ctx, patch, cls, patch.method_name)
    source = read_patch_source(patch.replacement, ctx.label(patch), patch.defined_at.line)
    check_override_signature(ctx, patch, Snippet.parse(source.definition).definition, method)
    _refuse_moved_into_class(ctx, patch, source, cls)
    upstream_text = ctx.upstream.source
    upstream_decorators = (
        ["".join(upstream_text.lines[d.lineno - 1 : d.end_lineno]) for d in method.decorator_list] if method else []
    )
    own_decorators = list(source.decorators)
    if patch.keep_upstream_decorators:
        seen = {d.strip() for d in upstream_decorators}
        own_decorators = [d for d in own_decorators if d.strip() not in seen]
    snippet = Snippet.parse("".join(own_decorators) + source.definition)
    snippet, helpers = resolve_names(
        snippet, source.module, ctx.label(patch), ctx.names, ctx.resolution, bindings=dict(patch.bindings)
    )
    snippet = _renamed_definition(snippet, patch.method_name)
    _refuse_calling_itself(ctx, patch, snippet)
    ctx.needs_helpers(helpers, upstream_text.line_start(upstream_text.node_start_line(cls)))
    if method is None:
        _add_method(ctx, patch, cls, source.comments, snippet, "overrides the inherited one")
        return
    indent = upstream_text.indentation_of(method.lineno)
    comments = "".join(indent + line.lstrip() for line in python_lines(source.comments))
    kept_upstream = "".join(upstream_decorators) if patch.keep_upstream_decorators else ""
    text = (
        banners.marker(f"[PATCHED METHOD] {patch.target}: see the banner above the class", indent)
        + comments
        + kept_upstream
        + reindent(snippet, indent)
    )
    if patch.keep_original_as:
        refuse_private_member(cls.name, patch.keep_original_as, ctx.label(patch), "keep_original_as")
        taken = member_bindings(cls, patch.keep_original_as)
        upstream_class = getattr(ctx.names.upstream_module, cls.name, None)
        if taken or inspect.getattr_static(upstream_class, patch.keep_original_as, _ABSENT) is not _ABSENT:
            raise ctx.fail(
                patch, f"keep_original_as={patch.keep_original_as!r}: {cls.name} already has that name; pick another"
            )
        text = _kept_original(ctx, patch, method, indent) + "\n" + text
    start = upstream_text.line_start(upstream_text.node_start_line(method, leading_comments=False))
    ctx.edits.append(TextEdit(start, upstream_text.line_end(method.end_lineno), text, ORDER_CODE))


def _refuse_class_changed_later(ctx: PlanContext, patch: Patch, cls: ast.ClassDef, member: str | None) -> None:
    """Upstream module-level code that changes the class after defining it (`Block.forward = f`, a function
    doing so at import, `setattr(Block, ...)`) runs after the patched code in the output and would undo
    it there, while a patch applied after import wins. A plain `Block.other = ...` is fine for a method
    patch of another member; any change is refused for a replaced class (it would change the replacement)."""
    facts = ctx.upstream.facts
    for statement in sorted({*facts.changers(cls.name), *facts.unclear(cls.name)}, key=lambda s: s.index):
        node = statement.node
        if member is not None and isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            attributes = {t.attr for t in targets if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)}
            if len(attributes) == len(targets) and member not in attributes:
                continue  # `Block.other = ...`: names exactly which attributes it sets
        what = f"{cls.name}.{member}" if member else f"the replaced class {cls.name}"
        raise ctx.fail(
            patch,
            f"upstream {ctx.upstream.name} changes {cls.name} after defining it (line {node.lineno}), which may "
            f"overwrite {what} in the output after the patched code: patch that statement's target instead (or "
            "exclude it)",
        )


def _overridable_method(ctx: PlanContext, patch: Patch, cls: ast.ClassDef) -> ast.FunctionDef | None:
    """The upstream method the override replaces (None: an inherited method, added to the class).

    Refused: a name the class body binds more than once (a property and its setter, a method redefined
    later: replacing one would leave the others), or binds to something that is not a method (a class
    attribute), or inherits as something that is not a function.
    """
    name = patch.method_name
    members = member_bindings(cls, name)
    if len(members) > 1:
        lines = ", ".join(str(m.lineno) for m in members)
        raise ctx.fail(
            patch,
            f"upstream {cls.name} binds {name!r} {len(members)} times (lines {lines}: e.g. a property and its setter, "
            "or a redefinition); one override cannot stand for all of them: replace the class, or override a "
            "method with one definition",
        )
    if members and not isinstance(members[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ctx.fail(
            patch,
            f"upstream {cls.name}.{name} is a class attribute (line {members[0].lineno}), not a method; "
            "override_method replaces methods only",
        )
    if members:
        return members[0]
    if patch.keep_original_as:
        raise ctx.fail(
            patch,
            f"keep_original_as: {cls.name} only inherits {name!r}, so there is no upstream method of its own to keep; "
            "call the parent's with super()",
        )
    upstream_class = getattr(ctx.names.upstream_module, cls.name, None)
    inherited = inspect.getattr_static(upstream_class, name, _ABSENT) if upstream_class is not None else _ABSENT
    if inherited is _ABSENT:
        methods = [n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        methods += [n for n in dir(upstream_class or object) if not n.startswith("__")]
        raise ctx.fail(
            patch,
            f"class {cls.name} neither defines nor inherits a method {name!r}{_suggest(name, methods)}",
        )
    if not (inspect.isroutine(inherited) or isinstance(inherited, (staticmethod, classmethod))):
        raise ctx.fail(
            patch,
            f"{cls.name} inherits {name!r} as a {type(inherited).__name__}, not a method; override_method "
            "replaces methods only",
        )
    return None


_ABSENT = object()


def _refuse_calling_itself(ctx: PlanContext, patch: Patch, snippet: Snippet) -> None:
    """`Norm.forward(self, x)` inside the override of `Norm.forward` is the override itself in the output."""
    for node in ast.walk(snippet.definition):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == patch.method_name
            and isinstance(node.value, ast.Name)
            and node.value.id == patch.target_class
        ):
            raise ctx.fail(
                patch,
                f"the patch reads {patch.target_class}.{patch.method_name} (line {node.lineno} of the patch), which "
                "in the output is this override itself: it would call itself forever; call the parent's with "
                "super(), or keep upstream's under another name (see the README)",
            )


def _refuse_moved_into_class(ctx: PlanContext, patch: Patch, source, cls: ast.ClassDef) -> None:
    definition = Snippet.parse("".join(source.decorators) + source.definition).definition
    refuse_changed_meaning(definition, class_written_in(patch.replacement), cls, ctx.label(patch))


def _add_method(ctx: PlanContext, patch: Patch, cls: ast.ClassDef, comments: str, snippet: Snippet, why: str) -> None:
    """A method written into the class body: at its end, or in place of a bare `pass`/`...` body (which
    is cut once, whatever the number of methods added)."""
    src = ctx.upstream.source
    body = cls.body
    only_placeholder = len(body) == 1 and (
        isinstance(body[0], ast.Pass)
        or (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and body[0].value.value is ...)
    )
    inline = body[0].lineno == cls.lineno
    indent = (src.indentation_of(cls.lineno) + "    ") if inline else src.indentation_of(body[0].lineno)
    comments = "".join(indent + line.lstrip() for line in python_lines(comments))
    text = banners.marker(f"[ADDED METHOD] {patch.target}: {why}, see the banner above", indent)
    text += comments + reindent(snippet, indent)
    if only_placeholder:
        if inline:
            cut = (src.offset(body[0].lineno, body[0].col_offset), src.line_end(body[0].end_lineno))
        else:
            cut = src.node_lines(body[0], leading_comments=False)
        if cut not in ctx.removed_placeholders:
            ctx.removed_placeholders.add(cut)
            ctx.edits.append(TextEdit(*cut, "\n" if inline else "", ORDER_CODE))
        ctx.edits.append(TextEdit(cut[1], cut[1], text, ORDER_CODE))
    else:
        at = src.line_end(cls.end_lineno)
        ctx.edits.append(TextEdit(at, at, "\n" + text, ORDER_CODE))


def _plan_method_addition(ctx: PlanContext, patch: Patch) -> None:
    cls = _upstream_definition(ctx, patch, patch.target_class, (ast.ClassDef,))
    name = patch.method_name
    refuse_private_member(cls.name, name, ctx.label(patch), "the added method")
    _refuse_class_changed_later(ctx, patch, cls, name)
    members = member_bindings(cls, name)
    upstream_class = getattr(ctx.names.upstream_module, cls.name, None)
    inherited = inspect.getattr_static(upstream_class, name, _ABSENT) if upstream_class is not None else _ABSENT
    if members or inherited is not _ABSENT:
        where = f"defines it (line {members[0].lineno})" if members else "inherits it"
        raise ctx.fail(
            patch,
            f"upstream {cls.name} already {where}; add_method adds only new methods: use "
            f"override_method({patch.target!r}) to replace it",
        )
    source = read_patch_source(patch.replacement, ctx.label(patch), patch.defined_at.line)
    _refuse_moved_into_class(ctx, patch, source, cls)
    snippet = Snippet.parse("".join(source.decorators) + source.definition)
    snippet, helpers = resolve_names(
        snippet, source.module, ctx.label(patch), ctx.names, ctx.resolution, bindings=dict(patch.bindings)
    )
    snippet = _renamed_definition(snippet, name)
    src = ctx.upstream.source
    ctx.needs_helpers(helpers, src.line_start(src.node_start_line(cls)))
    _add_method(ctx, patch, cls, source.comments, snippet, "new method")


def _plan_init_modification(ctx: PlanContext, patch: Patch) -> None:
    cls = _upstream_definition(ctx, patch, patch.target_class, (ast.ClassDef,))
    _refuse_class_changed_later(ctx, patch, cls, "__init__")
    members = member_bindings(cls, "__init__")
    if len(members) > 1:
        raise ctx.fail(
            patch,
            f"upstream {cls.name} binds __init__ {len(members)} times (lines "
            f"{', '.join(str(m.lineno) for m in members)}); modify_init cannot tell which one runs: replace the class",
        )
    plan_init_modification(ctx, patch, cls)


def _renamed_definition(snippet: Snippet, new_name: str) -> Snippet:
    """The definition renamed to `new_name`. References inside the body were already mapped to the
    target by name resolution; only the `def`/`class` name itself is left."""
    definition = snippet.definition
    if definition.name == new_name:
        return snippet
    def_line = (snippet.source.line_start(definition.lineno), snippet.source.line_end(definition.lineno))
    edits = [e for e in rename_edits(snippet, {definition.name: new_name}) if def_line[0] <= e.start < def_line[1]]
    return Snippet.parse(apply_edits(snippet.text, edits))


PLANNERS = {
    PatchKind.CLASS_REPLACEMENT: _plan_replacement,
    PatchKind.FUNCTION_REPLACEMENT: _plan_replacement,
    PatchKind.EXTERNAL_REPLACEMENT: _plan_external,
    PatchKind.METHOD_OVERRIDE: _plan_method_override,
    PatchKind.INIT_MODIFICATION: _plan_init_modification,
    PatchKind.METHOD_ADDITION: _plan_method_addition,
    PatchKind.MODULE_CODE: plan_module_code,
    PatchKind.ASSIGNMENT_REPLACEMENT: plan_assignment_replacement,
}


# -- class banners, exclusions, helpers, imports --------------------------------------------------


def _plan_class_banners(ctx: PlanContext) -> None:
    by_class: dict[str, list[Patch]] = defaultdict(list)
    for patch in ctx.config.patches:
        if patch.kind in METHOD_LEVEL:
            by_class[patch.target_class].append(patch)
    for class_name, patches in by_class.items():
        cls = ctx.upstream.definitions[class_name]
        lines = [f"Methods patched: {', '.join(p.method_name for p in patches)}"]
        for patch in patches:
            lines += [f"- {patch.method_name} ({patch.kind.value})"]
            lines += [f"  {line}" for line in banners.patch_reason_lines(patch)]
        at = ctx.upstream.source.line_start(ctx.upstream.source.node_start_line(cls))
        ctx.edits.append(TextEdit(at, at, banners.banner(f"[MODIFIED CLASS] {class_name}", lines), ORDER_BANNER))


def _plan_exclusion(ctx: PlanContext, name: str) -> None:
    start, end = ctx.upstream.source.node_lines(ctx.upstream.definitions[name])
    ctx.edits.append(TextEdit(start, end, "", ORDER_CODE))
    excluded = {e.name for e in ctx.config.exclusions}
    for elements in all_lists(ctx.upstream.tree):
        cut = _entry_cut(ctx.upstream.source, elements, name, excluded)
        if cut is not None:
            ctx.edits.append(TextEdit(*cut, "", ORDER_CODE))


def all_lists(tree: ast.Module) -> list[list[ast.expr]]:
    """The elements of every literal list or tuple upstream assigns or adds to `__all__` at module level:
    `__all__ = [...]`, `__all__: list[str] = [...]`, `__all__ += [...]`."""
    found = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)
            and isinstance(value, (ast.List, ast.Tuple))
        ):
            found.append(value.elts)
    return found


def _entry_cut(src, elements: list[ast.expr], name: str, excluded: set[str]) -> tuple[int, int] | None:
    """The text to cut for the `__all__` entry `name` (None when absent or cut with the run before it).

    When every entry sits on lines of its own, an entry goes with its whole lines, comment included, so
    no comment lands on a neighbour. Otherwise a run of excluded entries side by side is cut as one span,
    by its first entry, with the comma after it (or, at the end, the comma before it).
    """
    gone = [isinstance(e, ast.Constant) and e.value in excluded for e in elements]
    index = next((i for i, e in enumerate(elements) if isinstance(e, ast.Constant) and e.value == name), None)
    if index is None:
        return None
    element = elements[index]
    if all(_on_own_lines(src, elements, i) for i in range(len(elements))):
        return src.line_start(element.lineno), src.line_end(element.end_lineno)
    if index > 0 and gone[index - 1]:
        return None  # cut with the run it belongs to
    last = index
    while last + 1 < len(elements) and gone[last + 1]:
        last += 1
    if last + 1 < len(elements):
        return _start(src, element), _start(src, elements[last + 1])
    if index > 0:
        return _end(src, elements[index - 1]), _end(src, elements[last])
    return _start(src, element), _end(src, elements[last])


def _on_own_lines(src, elements: list[ast.expr], index: int) -> bool:
    element = elements[index]
    line = src.lines[element.lineno - 1]
    starts_line = not line[: src.offset(element.lineno, element.col_offset) - src.line_start(element.lineno)].strip()
    shared = any(
        not (other.end_lineno < element.lineno or other.lineno > element.end_lineno)
        for i, other in enumerate(elements)
        if i != index
    )
    return starts_line and not shared


def _start(src, node: ast.expr) -> int:
    return src.offset(node.lineno, node.col_offset)


def _end(src, node: ast.expr) -> int:
    return src.offset(node.end_lineno, node.end_col_offset)


def _plan_helpers(ctx: PlanContext) -> None:
    helpers = ctx.resolution.helpers
    # A helper is needed wherever the helpers that depend on it are needed.
    changed = True
    while changed:
        changed = False
        for key, helper in helpers.items():
            for dep in [*helper.depends_on, *helper.uses]:
                for anchor in ctx.helper_anchors.get(key, []):
                    if anchor not in ctx.helper_anchors[dep]:
                        ctx.helper_anchors[dep].append(anchor)
                        changed = True
    emitted: set[HelperKey] = set()

    def emit(key: HelperKey, anchor: int, stack: tuple = ()) -> None:
        if key in emitted or key in stack:
            return
        for dep in helpers[key].depends_on:
            emit(dep, anchor, (*stack, key))
        emitted.add(key)
        helper = helpers[key]
        text = banners.banner(
            f"[ADDED] {helper.name}",
            [f"Needed by: {', '.join(_users(helper.needed_by))}", f"Patch source: {helper.location}"],
        )
        ctx.edits.append(TextEdit(anchor, anchor, text + helper.text + "\n\n", ORDER_HELPER))

    for key in sorted(helpers, key=lambda k: (min(ctx.helper_anchors.get(k) or [0]), k)):
        anchor = min(ctx.helper_anchors.get(key) or [ctx.upstream.import_block_end()])
        _refuse_calling_ahead_of_upstream(ctx, key, anchor)
        emit(key, anchor)


def _refuse_calling_ahead_of_upstream(ctx: PlanContext, key: HelperKey, anchor: int) -> None:
    """A copied statement that runs copied functions while the module is imported (`TABLE = build()`, a
    decorator) must not come before the upstream definitions those functions read: ruff sees only the
    statement's own names, and the file would fail on import."""
    helpers = ctx.resolution.helpers
    called = [k for k in helpers[key].depends_on if isinstance(_definition(helpers[k].text), ast.FunctionDef)]
    closure, todo = set(), list(called)
    while todo:
        current = todo.pop()
        if current not in closure:
            closure.add(current)
            todo += helpers[current].uses
    copied = {name for k in helpers for name in helpers[k].name.split(", ")}
    src = ctx.upstream.source
    for current in sorted(closure):
        for name in sorted(free_names(Snippet.parse(helpers[current].text)) - copied):
            binders = ctx.upstream.facts.binders(name) if name in ctx.names.output_names else []
            if binders and src.line_start(binders[0].node.lineno) >= anchor:
                raise PatchgenError(
                    f"{ctx.config_module}: {helpers[key].location}: this module-level code runs "
                    f"{helpers[current].name}() while the module is imported, which reads {name!r}; in the output "
                    f"it would run above upstream's {name!r} (line {binders[0].node.lineno}) and fail on import: "
                    "compute it inside the function that needs it instead"
                )


def _definition(text: str) -> ast.stmt | None:
    tree = ast.parse(text)
    return tree.body[0] if len(tree.body) == 1 else None


def _users(labels: list[str]) -> list[str]:
    """The patches a helper serves, each once: `method_override X.forward`, or `... (via helper h)` when
    only another helper of that patch needs it."""
    shown = [label.split(": ")[-1] for label in labels]
    direct = {label for label in shown if " (via helper " not in label}
    kept = [label for label in shown if label in direct or label.split(" (via helper ")[0] not in direct]
    return sorted(dict.fromkeys(kept))


_RELATIVE_FROM = re.compile(r"from\s+(\.+\s*[\w.]*)\s+import\b")


def _plan_relative_imports(ctx: PlanContext) -> None:
    src = ctx.upstream.source
    for node in ctx.upstream.relative_imports:
        absolute = importlib.util.resolve_name("." * node.level + (node.module or ""), ctx.upstream.package)
        start = src.offset(node.lineno, node.col_offset)
        match = _RELATIVE_FROM.match(src.text, start)
        if match is None:  # pragma: no cover - the parser guarantees this shape
            raise PatchgenError(f"{ctx.upstream.name}:{node.lineno}: cannot read relative import")
        ctx.edits.append(TextEdit(match.start(1), match.end(1), absolute, ORDER_CODE))


def _plan_imports(ctx: PlanContext, imports: list[str]) -> None:
    if imports:
        at = ctx.upstream.import_block_end()
        ctx.edits.append(TextEdit(at, at, "".join(f"{s}\n" for s in imports), ORDER_IMPORTS))


def _plan_statements(ctx: PlanContext) -> None:
    """`add_statement` code, appended after everything upstream defines (so it may use any of it). What it
    binds is claimed like any added name: rebinding an upstream name this way is refused."""
    end = len(ctx.upstream.source.text)
    for statement in ctx.config.statements:
        label = f"{ctx.config_module}: {statement.defined_at}: add_statement"
        for name in sorted(runtime_bound_names(ast.parse(statement.code).body)):
            ctx.resolution.claim(
                name, f"statement:{statement.defined_at}", f"add_statement at {statement.defined_at}", label
            )
        text = banners.banner("[ADDED STATEMENT]", banners.reason_lines(statement.description, statement.defined_at))
        ctx.edits.append(TextEdit(end, end, "\n\n" + text + statement.code, ORDER_CODE))


_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def _plan_coding_line(ctx: PlanContext) -> None:
    """The output is written in UTF-8: a PEP 263 line declaring another encoding would make Python misread
    it, so it is rewritten to `utf-8` (the text itself is unchanged)."""
    src = ctx.upstream.source
    for lineno in (1, 2):
        if lineno > len(src.lines):
            return
        match = _CODING.match(src.lines[lineno - 1])
        if match:
            if codecs.lookup(match.group(1)).name != "utf-8":
                start = src.line_start(lineno)
                ctx.edits.append(TextEdit(start + match.start(1), start + match.end(1), "utf-8", ORDER_CODE))
            return
        if not src.lines[lineno - 1].lstrip().startswith("#"):
            return


def _applied_summary(config: PatchConfig) -> list[str]:
    applied = [
        f"{p.kind.value}: {p.target}"
        + (f" [patch set {p.patch_set}]" if p.patch_set else "")
        + (f" (overrides {p.overrides.split(' (')[0]})" if p.overrides else "")
        for p in config.patches
    ]
    applied += [f"excluded: {e.name}" for e in config.exclusions]
    applied += [f"extra import: {i.statement}" for i in config.extra_imports]
    applied += [f"added statement: {s.code.strip().splitlines()[0]}" for s in config.statements]
    return applied
