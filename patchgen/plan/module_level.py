"""Patches on module-level code: code added at a named place, and an assignment replaced by name.

- `@config.add_code(after=...)` on a class or function: that definition, under its own name;
- `@config.add_block(after=...)` on a function: its body, as module-level statements;
  `after` is `"imports"` (the end of upstream's import block) or an upstream name (right after its
  statement, e.g. a helper class right after the upstream class it subclasses);
- `config.replace_assignment("NAME", value)` / `@config.replace_assignment("NAME")`: the upstream
  statement assigning `NAME` is replaced by `NAME = <value>`, or by the decorated function's body.

The code is cut from the patch module with its comments and resolved like any patch (imports and
helpers it needs come along); every name it binds is claimed in the output's name registry, so a
block that rebinds an upstream name is refused rather than silently shadowing it.
"""

from __future__ import annotations

import ast
import difflib

from patchgen.dsl.patch_spec import AFTER_IMPORTS, Patch
from patchgen.load.patch_source import read_patch_source
from patchgen.load.resolution import resolve_names
from patchgen.plan import banners
from patchgen.plan.context import ORDER_CODE, PlanContext
from patchgen.syntax.module_facts import runtime_bound_names
from patchgen.syntax.source_text import Snippet, TextEdit, reindent


def plan_module_code(ctx: PlanContext, patch: Patch) -> None:
    at = ctx.upstream.import_block_end() if patch.anchor == AFTER_IMPORTS else _after_name(ctx, patch)
    source = read_patch_source(patch.replacement, ctx.label(patch), patch.defined_at.line)
    if patch.block:
        snippet, binds = _block_of(ctx, patch, Snippet.parse(source.definition))
    else:
        snippet = Snippet.parse(source.comments + "".join(source.decorators) + source.definition)
        binds = {snippet.definition.name}
    for name in sorted(binds):
        ctx.resolution.claim(
            name, f"added:{patch.defined_at}", f"{patch.label} ({patch.defined_at})", ctx.label(patch)
        )
    snippet, helpers = resolve_names(
        snippet,
        source.module,
        ctx.label(patch),
        ctx.names,
        ctx.resolution,
        ignore=frozenset(binds),
        bindings=dict(patch.bindings),
    )
    where = "after the imports" if patch.anchor == AFTER_IMPORTS else f"after {patch.anchor}"
    what = ", ".join(sorted(binds)) or patch.target
    title = f"[ADDED CODE] {what} ({where})"
    text = (
        "\n\n" + banners.banner(title, banners.patch_reason_lines(patch)) + reindent(snippet, "").rstrip("\n") + "\n"
    )
    ctx.edits.append(TextEdit(at, at, text, ORDER_CODE))
    ctx.needs_helpers(helpers, at)


def _after_name(ctx: PlanContext, patch: Patch) -> int:
    """Just past the upstream statement binding `patch.anchor` (refused when it is not there exactly once)."""
    upstream = ctx.upstream
    name = patch.anchor
    statements = [s for s in upstream.facts.binders(name)]
    excluded = {e.name for e in ctx.config.exclusions}
    if not statements or name in excluded:
        names = sorted(upstream.runtime_names - excluded)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        gone = " (it is excluded from the output)" if name in excluded else ""
        raise ctx.fail(
            patch,
            f"after={name!r}: upstream {upstream.name} binds no {name!r} at module level{gone}{hint}; "
            f"give an upstream name or {AFTER_IMPORTS!r}",
        )
    if len(statements) > 1:
        lines = ", ".join(str(s.node.lineno) for s in statements)
        raise ctx.fail(patch, f"after={name!r}: upstream binds {name!r} {len(statements)} times (lines {lines})")
    return upstream.source.line_end(statements[0].node.end_lineno)


def _block_of(ctx: PlanContext, patch: Patch, snippet: Snippet) -> tuple[Snippet, set[str]]:
    """The body of a block function as module-level code (docstring dropped), and the names it binds."""
    func = snippet.definition
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if not body:
        raise ctx.fail(patch, f"the block function {func.name} has no statements to add")
    if func.args.args or func.args.posonlyargs or func.args.kwonlyargs or func.args.vararg or func.args.kwarg:
        raise ctx.fail(patch, f"a block function takes no parameters; {func.name} has some")
    for node in ast.walk(func):
        if isinstance(node, (ast.Return, ast.Global, ast.Nonlocal)) and _in_own_scope(func, node):
            raise ctx.fail(
                patch,
                f"line {node.lineno} of block {func.name}: `{type(node).__name__.lower()}` means nothing at module "
                "level; write the statements as they should run there",
            )
    src = snippet.source
    start = src.line_start(src.node_start_line(body[0]))
    text = snippet.text[start : src.line_end(func.end_lineno)]
    block = reindent(Snippet.parse(text), "")
    return Snippet.parse(block), runtime_bound_names(ast.parse(block).body)


def _in_own_scope(func: ast.FunctionDef, target: ast.AST) -> bool:
    """Whether `target` belongs to `func` itself, not to a function or class nested in it."""
    stack = list(func.body)
    while stack:
        node = stack.pop()
        if node is target:
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return False


def plan_assignment_replacement(ctx: PlanContext, patch: Patch) -> None:
    upstream = ctx.upstream
    name = patch.target
    statements = upstream.facts.binders(name)
    plain = [
        s
        for s in statements
        if isinstance(s.node, ast.Assign)
        and len(s.node.targets) == 1
        and isinstance(s.node.targets[0], ast.Name)
        or isinstance(s.node, ast.AnnAssign)
        and isinstance(s.node.target, ast.Name)
        and s.node.value is not None
    ]
    if len(statements) != 1 or len(plain) != 1:
        lines = ", ".join(str(s.node.lineno) for s in statements)
        found = (
            f"upstream binds {name!r} at lines {lines}"
            if statements
            else f"upstream does not bind {name!r}{_suggest(name, upstream.runtime_names)}"
        )
        raise ctx.fail(
            patch, f"replace_assignment needs one plain `{name} = ...` statement in {upstream.name}; {found}"
        )
    node = plain[0].node
    changed_at = [
        s for s in [*upstream.facts.changers(name), *upstream.facts.unclear(name)] if s.index > plain[0].index
    ]
    if changed_at:
        lines = ", ".join(sorted({str(s.node.lineno) for s in changed_at}, key=int))
        raise ctx.fail(
            patch,
            f"upstream changes {name!r} after assigning it (line {node.lineno}), at line{'s' * (',' in lines)} {lines} "
            "while the module "
            "is imported: in the output those changes would apply to the new value, at run time the new value "
            "replaces their result; replace_assignment cannot stand for them: patch the code that reads "
            f"{name!r} instead",
        )
    if patch.value_source is not None:
        annotation = (
            f": {ast.get_source_segment(upstream.source.text, node.annotation)}"
            if isinstance(node, ast.AnnAssign)
            else ""
        )
        code = f"{name}{annotation} = {patch.value_source}\n"
        helpers: list = []
    else:
        source = read_patch_source(patch.replacement, ctx.label(patch), patch.defined_at.line)
        snippet, binds = _block_of(ctx, patch, Snippet.parse(source.definition))
        if name not in binds:
            raise ctx.fail(patch, f"the block does not assign {name!r}; it must, since it replaces that assignment")
        for other in sorted(binds - {name}):
            ctx.resolution.claim(
                other, f"added:{patch.defined_at}", f"{patch.label} ({patch.defined_at})", ctx.label(patch)
            )
        snippet, helpers = resolve_names(
            snippet, source.module, ctx.label(patch), ctx.names, ctx.resolution, ignore=frozenset(binds)
        )
        code = reindent(snippet, "").rstrip("\n") + "\n"
    start, end = upstream.source.node_lines(node)
    text = banners.banner(f"[PATCHED ASSIGNMENT] {name}", banners.patch_reason_lines(patch)) + code
    ctx.edits.append(TextEdit(start, end, text, ORDER_CODE))
    ctx.needs_helpers(helpers, start)


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
