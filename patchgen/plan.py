"""Config + upstream -> a validated list of text edits on the upstream file.

Every error is found here, before any text is produced. Each patch kind has one planner function;
they share a `PlanContext` and append `TextEdit`s that `render` applies.
"""

from __future__ import annotations

import ast
import copy
import difflib
import importlib.util
import re
from collections import defaultdict
from dataclasses import dataclass, field

from patchgen import banners
from patchgen.errors import PatchgenError
from patchgen.patch_source import NameContext, Resolution, free_names, read_patch_source, resolve_names
from patchgen.patch_spec import Patch, PatchConfig, PatchKind
from patchgen.source_text import Snippet, TextEdit, apply_edits, reindent, rename_edits
from patchgen.upstream import UpstreamModule, find_method
from patchgen.validation import check_exclusions, check_override_signature


# Insertions at one offset: helpers, then a class banner, then the replaced code.
ORDER_HELPER, ORDER_BANNER, ORDER_NEW_INIT, ORDER_CODE = -3, -2, -1, 0


@dataclass
class Plan:
    config: PatchConfig
    config_module: str
    upstream: UpstreamModule
    edits: list[TextEdit] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    patch_package: str = ""


@dataclass
class PlanContext:
    config: PatchConfig
    config_module: str
    upstream: UpstreamModule
    names: NameContext
    resolution: Resolution = field(default_factory=Resolution)
    edits: list[TextEdit] = field(default_factory=list)
    # helper key -> offsets of the upstream spans of the patches that need it
    helper_anchors: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))

    def fail(self, patch: Patch | None, message: str) -> PatchgenError:
        where = f"{patch.defined_at}: {patch.label}" if patch else self.config_module
        return PatchgenError(f"{self.config_module}: {where}: {message}")

    def needs_helpers(self, keys: list[tuple[str, str]], anchor: int) -> None:
        for key in keys:
            self.helper_anchors[key].append(anchor)


def make_plan(config: PatchConfig, config_module: str, upstream: UpstreamModule) -> Plan:
    _check_duplicates(config, config_module)
    excluded = {e.name for e in config.exclusions}
    for exclusion in config.exclusions:
        if exclusion.name not in upstream.definitions:
            raise PatchgenError(
                f"{config_module}: {exclusion.defined_at}: exclude_from_output {exclusion.name}: no such class or "
                f"function in {upstream.name}{_suggest(exclusion.name, upstream.definitions)}"
            )
    patch_package = config_module.split(".", 1)[0]
    replacements = {
        id(p.replacement): p.target
        for p in config.patches
        if p.kind in (PatchKind.CLASS_REPLACEMENT, PatchKind.FUNCTION_REPLACEMENT)
    }
    extra_names = set()
    for imp in config.extra_imports:
        if imp.names:
            extra_names |= {name.split(" as ")[-1].strip() for name in imp.names}
        else:
            extra_names.add(imp.alias or imp.module.split(".")[0])
    names = NameContext(
        output_names=frozenset((upstream.top_level_names() - excluded) | extra_names),
        upstream_module=upstream.module(),
        patch_package=patch_package,
        renamed_objects=replacements,
        upstream=upstream,
    )
    ctx = PlanContext(config, config_module, upstream, names)
    check_exclusions(ctx)
    _check_bindings_used(ctx)
    for patch in config.patches:
        if patch.target_class in excluded:
            raise ctx.fail(patch, f"{patch.target_class} is also excluded by exclude_from_output; drop one of the two")
        PLANNERS[patch.kind](ctx, patch)
    _plan_class_banners(ctx)
    for exclusion in config.exclusions:
        _plan_exclusion(ctx, exclusion.name)
    _plan_helpers(ctx)
    _plan_relative_imports(ctx)

    imports = [imp.statement for imp in config.extra_imports] + list(ctx.resolution.imports)
    _plan_imports(ctx, imports)
    _plan_statements(ctx)
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
                used |= free_names(read_patch_source(patch.replacement, _label(ctx, patch)).snippet())
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
    return node


# -- planners, one per patch kind -----------------------------------------------------------------


def _replacement_banner(patch: Patch, title: str) -> str:
    return banners.banner(f"{title} {patch.target}", banners.reason_lines(patch.description, patch.source_note))


def _plan_replacement(ctx: PlanContext, patch: Patch) -> None:
    is_class = patch.kind is PatchKind.CLASS_REPLACEMENT
    node = _upstream_definition(
        ctx, patch, patch.target, (ast.ClassDef,) if is_class else (ast.FunctionDef, ast.AsyncFunctionDef)
    )
    source = read_patch_source(patch.replacement, f"{ctx.config_module}: {patch.defined_at}: {patch.label}")
    snippet, helpers = resolve_names(
        source.snippet(), source.module, _label(ctx, patch), ctx.names, ctx.resolution, bindings=dict(patch.bindings)
    )
    snippet = _renamed_definition(snippet, patch.target)
    start, end = ctx.upstream.source.node_lines(node)
    text = _replacement_banner(patch, "[PATCHED CLASS]" if is_class else "[PATCHED FUNCTION]") + reindent(snippet, "")
    ctx.edits.append(TextEdit(start, end, text, ORDER_CODE))
    ctx.needs_helpers(helpers, start)


def _plan_external(ctx: PlanContext, patch: Patch) -> None:
    node = _upstream_definition(ctx, patch, patch.target, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    if importlib.util.find_spec(patch.replacement_module.split(".")[0]) is None:
        raise ctx.fail(patch, f"module {patch.replacement_module!r} is not installed")
    start, end = ctx.upstream.source.node_lines(node)
    title = "[PATCHED CLASS]" if isinstance(node, ast.ClassDef) else "[PATCHED FUNCTION]"
    statement = f"from {patch.replacement_module} import {patch.replacement_name}"
    if patch.replacement_name == patch.target:
        code = statement + "\n"
    else:
        ctx.resolution.imports.setdefault(statement, None)
        code = f"{patch.target} = {patch.replacement_name}\n"
    lines = [f"Replaced by: {patch.replacement_module}.{patch.replacement_name} (imported, not copied)"]
    text = (
        banners.banner(f"{title} {patch.target}", lines + banners.reason_lines(patch.description, patch.source_note))
        + code
    )
    ctx.edits.append(TextEdit(start, end, text, ORDER_CODE))


def _plan_method_override(ctx: PlanContext, patch: Patch) -> None:
    cls = _upstream_definition(ctx, patch, patch.target_class, (ast.ClassDef,))
    method = find_method(cls, patch.method_name)
    if method is None and not hasattr(getattr(ctx.names.upstream_module, cls.name, None), patch.method_name):
        methods = [n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        methods += [n for n in dir(getattr(ctx.names.upstream_module, cls.name, object)) if not n.startswith("__")]
        raise ctx.fail(
            patch,
            f"class {cls.name} neither defines nor inherits a method {patch.method_name!r}"
            f"{_suggest(patch.method_name, methods)}",
        )
    source = read_patch_source(patch.replacement, _label(ctx, patch))
    check_override_signature(ctx, patch, Snippet.parse(source.definition).definition, method)
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
        snippet, source.module, _label(ctx, patch), ctx.names, ctx.resolution, bindings=dict(patch.bindings)
    )
    snippet = _renamed_definition(snippet, patch.method_name)
    ctx.needs_helpers(helpers, upstream_text.line_start(upstream_text.node_start_line(cls)))
    if method is None:
        _add_method(ctx, patch, cls, source.comments, snippet)
        return
    indent = upstream_text.indentation_of(method.lineno)
    comments = "".join(indent + line.lstrip() for line in source.comments.splitlines(keepends=True))
    kept_upstream = "".join(upstream_decorators) if patch.keep_upstream_decorators else ""
    text = (
        banners.marker(f"[PATCHED METHOD] {patch.target}: see the banner above the class", indent)
        + comments
        + kept_upstream
        + reindent(snippet, indent)
    )
    start = upstream_text.line_start(upstream_text.node_start_line(method, leading_comments=False))
    ctx.edits.append(TextEdit(start, upstream_text.line_end(method.end_lineno), text, ORDER_CODE))


def _add_method(ctx: PlanContext, patch: Patch, cls: ast.ClassDef, comments: str, snippet: Snippet) -> None:
    """An inherited method overridden: written into the class body, replacing a bare `pass`/`...`."""
    src = ctx.upstream.source
    body = cls.body
    only_placeholder = len(body) == 1 and (
        isinstance(body[0], ast.Pass)
        or (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and body[0].value.value is ...)
    )
    inline = body[0].lineno == cls.lineno
    indent = (src.indentation_of(cls.lineno) + "    ") if inline else src.indentation_of(body[0].lineno)
    comments = "".join(indent + line.lstrip() for line in comments.splitlines(keepends=True))
    text = (
        banners.marker(f"[ADDED METHOD] {patch.target}: overrides the inherited one, see the banner above", indent)
        + comments
        + reindent(snippet, indent)
    )
    if only_placeholder and inline:
        start = src.offset(body[0].lineno, body[0].col_offset)
        ctx.edits.append(TextEdit(start, src.line_end(body[0].end_lineno), "\n" + text, ORDER_CODE))
    elif only_placeholder:
        ctx.edits.append(TextEdit(*src.node_lines(body[0], leading_comments=False), text, ORDER_CODE))
    else:
        at = src.line_end(cls.end_lineno)
        ctx.edits.append(TextEdit(at, at, "\n" + text, ORDER_CODE))


def _plan_init_modification(ctx: PlanContext, patch: Patch) -> None:
    cls = _upstream_definition(ctx, patch, patch.target_class, (ast.ClassDef,))
    upstream_init = find_method(cls, "__init__")
    source = read_patch_source(patch.replacement, f"{ctx.config_module}: {patch.defined_at}: {patch.label}")
    snippet = Snippet.parse(source.definition)
    func = snippet.definition
    params = [a.arg for a in func.args.posonlyargs + func.args.args]
    if params[:2] != ["original_init", "self"]:
        raise ctx.fail(
            patch, f"the patch must be 'def {func.name}(original_init, self, ...)', got ({', '.join(params)})"
        )
    if upstream_init is not None:
        _check_init_signature(ctx, patch, func, upstream_init)
    snippet, helpers = resolve_names(
        snippet,
        source.module,
        _label(ctx, patch),
        ctx.names,
        ctx.resolution,
        ignore=frozenset({"original_init"}),
        bindings=dict(patch.bindings),
    )
    func = snippet.definition
    call = _original_init_call(ctx, patch, func)
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the patch's docstring documents the patch, not the class
    lines = snippet.text.splitlines(keepends=True)
    call_index = next(i for i, stmt in enumerate(body) if stmt is call)
    first_line = body[0].lineno if call_index > 0 else call.lineno
    first_line = _with_leading_comments(lines, first_line)
    call_first = _with_leading_comments(lines, call.lineno)
    before = "".join(lines[first_line - 1 : call_first - 1]) if call_index > 0 else ""
    after = "".join(lines[call.end_lineno : func.end_lineno])
    patch_indent = _indentation(lines[call.lineno - 1])
    where = patch.defined_at

    upstream_text = ctx.upstream.source
    if upstream_init is not None:
        body_indent = upstream_text.indentation_of(upstream_init.body[0].lineno)
        upstream_body = upstream_init.body
        if (
            len(upstream_body) > 1
            and isinstance(upstream_body[0], ast.Expr)
            and isinstance(upstream_body[0].value, ast.Constant)
        ):
            upstream_body = upstream_body[1:]
        if before.strip():
            at = upstream_text.line_start(upstream_text.node_start_line(upstream_body[0]))
            text = _added_block(
                before, patch_indent, body_indent, f"added by modify_init ({where}), before the upstream body"
            )
            ctx.edits.append(TextEdit(at, at, text, ORDER_CODE))
        if after.strip():
            at = upstream_text.line_end(upstream_init.end_lineno)
            text = _added_block(
                after, patch_indent, body_indent, f"added by modify_init ({where}), after the upstream body"
            )
            ctx.edits.append(TextEdit(at, at, text, ORDER_CODE))
    else:
        # No upstream __init__: write one from the patch's signature that calls the parent's.
        inline = cls.body[0].lineno == cls.lineno  # `class X(Base): ...` on one line
        class_indent = (
            upstream_text.indentation_of(cls.lineno) + "    "
            if inline
            else upstream_text.indentation_of(cls.body[0].lineno)
        )
        body_indent = class_indent + "    "
        arguments_node = copy.deepcopy(func.args)
        if arguments_node.posonlyargs:
            arguments_node.posonlyargs.pop(0)
        else:
            arguments_node.args.pop(0)
        signature = ast.unparse(arguments_node)  # the patch's parameters without original_init
        call_args = ", ".join(ast.get_source_segment(snippet.text, a) or "" for a in call.value.args[1:])
        call_kwargs = [ast.get_source_segment(snippet.text, k) or "" for k in call.value.keywords]
        arguments = ", ".join(a for a in [call_args, *call_kwargs] if a)
        text = banners.marker(f"[ADDED METHOD] {patch.target}.__init__ written by modify_init ({where})", class_indent)
        text += f"{class_indent}def __init__({signature}):\n"
        if before.strip():
            text += reindent(Snippet.parse(before), body_indent)
        text += f"{body_indent}super().__init__({arguments})\n"
        if after.strip():
            text += reindent(Snippet.parse(after), body_indent)
        first = cls.body[0]
        if inline:
            start = upstream_text.offset(first.lineno, first.col_offset)
            ctx.edits.append(TextEdit(start, upstream_text.line_end(first.end_lineno), "\n" + text, ORDER_NEW_INIT))
            ctx.needs_helpers(helpers, upstream_text.line_start(upstream_text.node_start_line(cls)))
            return
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(cls.body) > 1:
            at = upstream_text.line_end(first.end_lineno)
            text = "\n" + text
        else:
            at = upstream_text.line_start(upstream_text.node_start_line(first))
            text = text + "\n"
        ctx.edits.append(TextEdit(at, at, text, ORDER_NEW_INIT))
    ctx.needs_helpers(helpers, upstream_text.line_start(upstream_text.node_start_line(cls)))


def _with_leading_comments(lines: list[str], lineno: int) -> int:
    while lineno > 1 and lines[lineno - 2].lstrip().startswith("#"):
        lineno -= 1
    return lineno


def _indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _added_block(text: str, from_indent: str, to_indent: str, what: str) -> str:
    moved = reindent(Snippet.parse(text), to_indent) if from_indent != to_indent else text
    moved = moved.strip("\n") + "\n"
    return banners.marker(f"[patchgen] begin: {what}", to_indent) + moved + banners.marker("[patchgen] end", to_indent)


def _original_init_call(ctx: PlanContext, patch: Patch, func: ast.FunctionDef) -> ast.Expr:
    calls = [
        stmt
        for stmt in func.body
        if isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id == "original_init"
    ]
    uses = [n for n in ast.walk(func) if isinstance(n, ast.Name) and n.id == "original_init"]
    if len(calls) != 1 or len(uses) != 1:
        raise ctx.fail(
            patch,
            "the patch body must call original_init(self, ...) exactly once, as a statement of its own "
            f"(found {len(calls)} such call(s) and {len(uses)} use(s) of original_init)",
        )
    call = calls[0].value
    own = {a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs}
    own |= {a.arg for a in (func.args.vararg, func.args.kwarg) if a is not None}
    own.discard("original_init")
    passed = [a.value if isinstance(a, ast.Starred) else a for a in call.args]
    passed += [k.value for k in call.keywords]
    keywords_renamed = any(
        k.arg is not None and not (isinstance(k.value, ast.Name) and k.value.id == k.arg) for k in call.keywords
    )
    if (
        not call.args
        or not (isinstance(call.args[0], ast.Name) and call.args[0].id == "self")
        or keywords_renamed
        or not all(isinstance(a, ast.Name) and a.id in own for a in passed)
    ):
        params = [a.arg for a in func.args.posonlyargs + func.args.args][1:]
        raise ctx.fail(
            patch,
            "original_init must be called with the patch's own parameters unchanged, e.g. "
            f"original_init({', '.join(params)}); change an argument by reassigning it before the call",
        )
    return calls[0]


def _check_init_signature(
    ctx: PlanContext, patch: Patch, func: ast.FunctionDef, upstream_init: ast.FunctionDef
) -> None:
    theirs = [a.arg for a in upstream_init.args.posonlyargs + upstream_init.args.args]
    ours = [a.arg for a in func.args.posonlyargs + func.args.args][1:]
    passthrough = func.args.vararg is not None or func.args.kwarg is not None
    if ours == theirs or (passthrough and ours == ["self"]):
        return
    raise ctx.fail(
        patch,
        f"parameters ({', '.join(['original_init', *ours])}) do not match upstream "
        f"{patch.target}.__init__({', '.join(theirs)}); use (original_init, {', '.join(theirs)})",
    )


def _renamed_definition(snippet: Snippet, new_name: str) -> Snippet:
    """The definition renamed to `new_name`. References inside the body were already mapped to the
    target by name resolution; only the `def`/`class` name itself is left."""
    definition = snippet.definition
    if definition.name == new_name:
        return snippet
    def_line = (snippet.source.line_start(definition.lineno), snippet.source.line_end(definition.lineno))
    edits = [e for e in rename_edits(snippet, {definition.name: new_name}) if def_line[0] <= e.start < def_line[1]]
    return Snippet.parse(apply_edits(snippet.text, edits))


def _label(ctx: PlanContext, patch: Patch) -> str:
    return f"{ctx.config_module}: {patch.defined_at}: {patch.label}"


PLANNERS = {
    PatchKind.CLASS_REPLACEMENT: _plan_replacement,
    PatchKind.FUNCTION_REPLACEMENT: _plan_replacement,
    PatchKind.EXTERNAL_REPLACEMENT: _plan_external,
    PatchKind.METHOD_OVERRIDE: _plan_method_override,
    PatchKind.INIT_MODIFICATION: _plan_init_modification,
}


# -- class banners, exclusions, helpers, imports --------------------------------------------------


def _plan_class_banners(ctx: PlanContext) -> None:
    by_class: dict[str, list[Patch]] = defaultdict(list)
    for patch in ctx.config.patches:
        if patch.kind in (PatchKind.METHOD_OVERRIDE, PatchKind.INIT_MODIFICATION):
            by_class[patch.target_class].append(patch)
    for class_name, patches in by_class.items():
        cls = ctx.upstream.definitions[class_name]
        lines = [f"Methods patched: {', '.join(p.method_name for p in patches)}"]
        for patch in patches:
            reason = " ".join(patch.description.split()) or "(no description given)"
            lines += [
                f"- {patch.method_name} ({patch.kind.value})",
                f"  Reason: {reason}",
                f"  Patch source: {patch.source_note}",
            ]
        at = ctx.upstream.source.line_start(ctx.upstream.source.node_start_line(cls))
        ctx.edits.append(TextEdit(at, at, banners.banner(f"[MODIFIED CLASS] {class_name}", lines), ORDER_BANNER))


def _plan_exclusion(ctx: PlanContext, name: str) -> None:
    start, end = ctx.upstream.source.node_lines(ctx.upstream.definitions[name])
    ctx.edits.append(TextEdit(start, end, "", ORDER_CODE))
    for node in ctx.upstream.tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, (ast.List, ast.Tuple))
        ):
            elements = node.value.elts
            excluded = {e.name for e in ctx.config.exclusions}
            gone = [isinstance(e, ast.Constant) and e.value in excluded for e in elements]
            for i, element in enumerate(elements):
                if not (isinstance(element, ast.Constant) and element.value == name) or (i > 0 and gone[i - 1]):
                    continue  # entries excluded side by side are cut as one run, by the run's first entry
                last = i
                while last + 1 < len(elements) and gone[last + 1]:
                    last += 1
                src = ctx.upstream.source
                if last + 1 < len(elements):
                    cut = (_start(src, element), _start(src, elements[last + 1]))
                elif i > 0:
                    cut = (_end(src, elements[i - 1]), _end(src, elements[last]))
                else:
                    cut = (_start(src, element), _end(src, elements[last]))
                ctx.edits.append(TextEdit(*cut, "", ORDER_CODE))


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
            for dep in helper.depends_on:
                for anchor in ctx.helper_anchors.get(key, []):
                    if anchor not in ctx.helper_anchors[dep]:
                        ctx.helper_anchors[dep].append(anchor)
                        changed = True
    emitted: set[tuple[str, str]] = set()

    def emit(key: tuple[str, str], anchor: int, stack: tuple = ()) -> None:
        if key in emitted or key in stack:
            return
        for dep in helpers[key].depends_on:
            emit(dep, anchor, (*stack, key))
        emitted.add(key)
        helper = helpers[key]
        users = sorted(set(helper.needed_by))
        text = banners.banner(
            f"[ADDED] {helper.name}",
            [f"Needed by: {', '.join(u.split(': ')[-1] for u in users)}", f"Patch source: {helper.location}"],
        )
        ctx.edits.append(TextEdit(anchor, anchor, text + helper.text + "\n\n", ORDER_HELPER))

    for key in sorted(helpers, key=lambda k: (min(ctx.helper_anchors.get(k) or [0]), k)):
        emit(key, min(ctx.helper_anchors.get(key) or [_import_block_end(ctx.upstream)]))


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


def _import_block_end(upstream: UpstreamModule) -> int:
    body = upstream.tree.body
    last_import = None
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            last_import = node
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and last_import is None:
            continue
        else:
            break
    if last_import is None:
        return 0
    return upstream.source.line_end(last_import.end_lineno)


def _plan_imports(ctx: PlanContext, imports: list[str]) -> None:
    if imports:
        at = _import_block_end(ctx.upstream)
        ctx.edits.append(TextEdit(at, at, "".join(f"{s}\n" for s in imports), ORDER_HELPER - 1))


def _plan_statements(ctx: PlanContext) -> None:
    """`add_statement` code, appended after everything upstream defines (so it may use any of it)."""
    end = len(ctx.upstream.source.text)
    for statement in ctx.config.statements:
        text = banners.banner("[ADDED STATEMENT]", banners.reason_lines(statement.description, statement.defined_at))
        ctx.edits.append(TextEdit(end, end, "\n\n" + text + statement.code, ORDER_CODE))


def _applied_summary(config: PatchConfig) -> list[str]:
    applied = [
        f"{p.kind.value}: {p.target}" + (f" [patch set {p.patch_set}]" if p.patch_set else "") for p in config.patches
    ]
    applied += [f"excluded: {e.name}" for e in config.exclusions]
    applied += [f"extra import: {i.statement}" for i in config.extra_imports]
    applied += [f"added statement: {s.code.strip().splitlines()[0]}" for s in config.statements]
    return applied
