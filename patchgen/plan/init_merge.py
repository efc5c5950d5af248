"""`modify_init`: the patch's code merged into upstream's `__init__`, so the output is one plain `__init__`.

The patch is `def f(original_init, self, <upstream's parameters>)` calling `original_init(...)` once.
Its statements before the call go at the top of upstream's body, those after it at the end:

    upstream                          patch                                  output
    def __init__(self, config):       def f(original_init, self, config):    def __init__(self, config):
        super().__init__()                check(config)                          # [patchgen] begin: ...
        self.x = config.x                 original_init(self, config)            check(config)
                                          self.y = 2                             # [patchgen] end
                                                                                 super().__init__()
                                                                                 self.x = config.x
                                                                                 # [patchgen] begin: ...
                                                                                 self.y = 2
                                                                                 # [patchgen] end

That is only the same program as the patch wrapping upstream's `__init__` when nothing tells the two
bodies apart, so the merge refuses (one line, naming both places) when:
- the parameters, their kinds or their defaults differ from upstream's (the output keeps upstream's
  signature; with `*args, **kwargs` the patch may only hand them on, never read them);
- `original_init` is not called exactly once, with the patch's own parameters unchanged;
- upstream's body can `return` early while the patch has code after the call (it would be skipped);
- a name the patch's code binds is one upstream's body uses, or a name upstream's body rebinds is
  one the patch reads after the call (inlined, they would be one variable), or a module name the
  patch reads before the call is a local of upstream's body (inlined, it would be unbound);
- the patch reads `**kwargs` after the call while upstream's body may change that dict (through
  `original_init` upstream gets a copy);
- the patch uses private names or zero-argument `super()` (`patchgen.plan.into_class`);
- the patch reads `Cls.__init__`, which in the output is this very `__init__`.
When upstream has no `__init__`, one is written from the patch's signature that calls `super().__init__`.
"""

from __future__ import annotations

import ast
import copy
import symtable
from dataclasses import dataclass, replace

from patchgen.dsl.patch_spec import Patch
from patchgen.load.patch_source import read_patch_source
from patchgen.load.resolution import resolve_names
from patchgen.load.upstream import find_method
from patchgen.plan import banners
from patchgen.plan.context import ORDER_CODE, ORDER_NEW_INIT, PlanContext
from patchgen.plan.into_class import class_written_in, refuse_changed_meaning
from patchgen.syntax.source_text import Snippet, SourceText, TextEdit, reindent


@dataclass(frozen=True)
class InitParts:
    """The patch's body cut around its `original_init(...)` call (docstring dropped)."""

    before: str  # statements (and comments) before the call, at the patch body's indentation
    after: str  # statements after the call
    indent: str  # the patch body's indentation
    call: ast.Call


def plan_init_modification(ctx: PlanContext, patch: Patch, cls: ast.ClassDef) -> None:
    upstream_init = find_method(cls, "__init__")
    source = read_patch_source(patch.replacement, ctx.label(patch), patch.defined_at.line)
    func = Snippet.parse(source.definition).definition
    refuse_changed_meaning(func, class_written_in(patch.replacement), cls.name, ctx.label(patch))
    params = [a.arg for a in func.args.posonlyargs + func.args.args]
    if params[:2] != ["original_init", "self"]:
        raise ctx.fail(
            patch, f"the patch must be 'def {func.name}(original_init, self, ...)', got ({', '.join(params)})"
        )
    passthrough = upstream_init is not None and _check_signature(ctx, patch, func, upstream_init)
    snippet, helpers = resolve_names(
        Snippet.parse(source.definition),
        source.module,
        ctx.label(patch),
        ctx.names,
        ctx.resolution,
        ignore=frozenset({"original_init"}),
        bindings=dict(patch.bindings),
    )
    func = snippet.definition
    _refuse_calling_itself(ctx, patch, func)
    call = _original_init_call(ctx, patch, func, merging=upstream_init is not None)
    parts = split_around_original_init(snippet, func, call)
    src = ctx.upstream.source
    if upstream_init is None:
        _write_new_init(ctx, patch, cls, func, snippet, parts)
    else:
        if passthrough:
            _refuse_reading_passthrough(ctx, patch, func, parts)
        _refuse_merge_hazards(ctx, patch, snippet, func, parts, upstream_init)
        _insert_into_init(ctx, patch, upstream_init, parts)
    ctx.needs_helpers(helpers, src.line_start(src.node_start_line(cls)))


# -- checks ---------------------------------------------------------------------------------------


def _signature(args: ast.arguments, skip: int) -> list[tuple[str, str, str | None]]:
    """(kind, name, default source) for each parameter after the first `skip` positional ones."""
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = [
        ("positional-only" if i < len(args.posonlyargs) else "positional", a.arg, _text(d))
        for i, (a, d) in enumerate(zip(positional, defaults, strict=True))
    ][skip:]
    if args.vararg:
        out.append(("*", args.vararg.arg, None))
    out += [("keyword-only", a.arg, _text(d)) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        out.append(("**", args.kwarg.arg, None))
    return out


def _text(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def _format(signature: list[tuple[str, str, str | None]]) -> str:
    prefix = {"*": "*", "**": "**"}
    return ", ".join(prefix.get(k, "") + n + (f"={d}" if d is not None else "") for k, n, d in signature)


def _check_signature(ctx: PlanContext, patch: Patch, func: ast.FunctionDef, upstream_init: ast.FunctionDef) -> bool:
    """Refuse a signature that differs from upstream's; True for the pass-through `(self, *args, **kwargs)`."""
    ours = _signature(func.args, 1)  # without original_init
    theirs = _signature(upstream_init.args, 0)
    if ours == theirs:
        return False
    if [k for k, _, _ in ours] in (["positional", "*", "**"], ["positional", "*"], ["positional", "**"]):
        return True
    raise ctx.fail(
        patch,
        f"parameters (original_init, {_format(ours)}) do not match upstream {patch.target}.__init__({_format(theirs)})"
        "; the output keeps upstream's signature, so use the same names, kinds and defaults: "
        f"(original_init, {_format(theirs)}), or (original_init, self, *args, **kwargs) to pass them on",
    )


def _original_init_call(ctx: PlanContext, patch: Patch, func: ast.FunctionDef, merging: bool) -> ast.Expr:
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
    if not merging:  # a new __init__ hands the call's arguments to super().__init__: names of its own only
        own = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
        own |= {a.arg for a in (func.args.vararg, func.args.kwarg) if a is not None}
        passed = [a.value if isinstance(a, ast.Starred) else a for a in call.args] + [k.value for k in call.keywords]
        renamed = any(k.arg and not (isinstance(k.value, ast.Name) and k.value.id == k.arg) for k in call.keywords)
        first_is_self = bool(call.args) and isinstance(call.args[0], ast.Name) and call.args[0].id == "self"
        if first_is_self and not renamed and all(isinstance(a, ast.Name) and a.id in own for a in passed):
            return calls[0]
        raise ctx.fail(
            patch,
            "original_init must be called as original_init(self, ...) with the patch's own parameters unchanged; "
            "change an argument by reassigning it before the call",
        )
    if not _passes_own_parameters(func.args, call):
        expected = _expected_call(func.args)
        raise ctx.fail(
            patch,
            f"original_init must be called with every parameter of the patch unchanged, e.g. {expected}; "
            "change an argument by reassigning it before the call",
        )
    return calls[0]


def _passes_own_parameters(args: ast.arguments, call: ast.Call) -> bool:
    """`original_init(self, a, b=b, *args, **kwargs)`: every parameter handed on once, under its own name."""
    positional = [a.arg for a in args.posonlyargs + args.args][1:]  # self, a, b (original_init dropped)
    given: list[str] = []
    for index, argument in enumerate(call.args):
        if isinstance(argument, ast.Starred):
            if not (args.vararg and isinstance(argument.value, ast.Name) and argument.value.id == args.vararg.arg):
                return False
            given.append("*")
        elif isinstance(argument, ast.Name) and index < len(positional) and argument.id == positional[index]:
            given.append(argument.id)
        else:
            return False
    for keyword in call.keywords:
        if keyword.arg is None:
            if not (args.kwarg and isinstance(keyword.value, ast.Name) and keyword.value.id == args.kwarg.arg):
                return False
            given.append("**")
        elif isinstance(keyword.value, ast.Name) and keyword.value.id == keyword.arg:
            given.append(keyword.arg)
        else:
            return False
    expected = positional + [a.arg for a in args.kwonlyargs]
    expected += ["*"] if args.vararg else []
    expected += ["**"] if args.kwarg else []
    return sorted(given) == sorted(expected) and given[:1] == ["self"]


def _expected_call(args: ast.arguments) -> str:
    parts = [a.arg for a in args.posonlyargs + args.args][1:]
    parts += [f"*{args.vararg.arg}"] if args.vararg else []
    parts += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    parts += [f"**{args.kwarg.arg}"] if args.kwarg else []
    return f"original_init({', '.join(parts)})"


def _refuse_calling_itself(ctx: PlanContext, patch: Patch, func: ast.FunctionDef) -> None:
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "__init__"
            and isinstance(node.value, ast.Name)
            and node.value.id == patch.target_class
        ):
            raise ctx.fail(
                patch,
                f"the patch reads {patch.target_class}.__init__, which in the output is the merged __init__ "
                "itself: it would call itself; call original_init(...) once instead",
            )


def _refuse_reading_passthrough(ctx: PlanContext, patch: Patch, func: ast.FunctionDef, parts: InitParts) -> None:
    """With `*args, **kwargs` the patch's code is merged into upstream's `__init__`, whose parameters are
    upstream's: the names `args`/`kwargs` do not hold the call's arguments there."""
    names = {a.arg for a in (func.args.vararg, func.args.kwarg) if a is not None}
    for text in (parts.before, parts.after):
        for node in ast.walk(_parse_block(text, parts.indent).tree):
            if isinstance(node, ast.Name) and node.id in names:
                raise ctx.fail(
                    patch,
                    f"the patch reads {node.id!r} outside the original_init call; merged into upstream's "
                    f"{patch.target}.__init__ it would not hold the call's arguments: name the parameters "
                    "as upstream does instead of *args/**kwargs",
                )


def _function_table(text: str) -> symtable.SymbolTable:
    return symtable.symtable(text, "<init>", "exec").get_children()[0]


def _all_symbols(table: symtable.SymbolTable) -> set[str]:
    names = {s.get_name() for s in table.get_symbols()}
    for child in table.get_children():
        names |= _all_symbols(child)
    return names


def _refuse_merge_hazards(
    ctx: PlanContext,
    patch: Patch,
    snippet: Snippet,
    func: ast.FunctionDef,
    parts: InitParts,
    upstream_init: ast.FunctionDef,
) -> None:
    upstream_text = _node_text(ctx.upstream.source, upstream_init)
    theirs = _function_table(upstream_text)
    ours = _function_table(reindent(snippet, ""))
    parameters = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
    parameters |= {a.arg for a in (func.args.vararg, func.args.kwarg) if a is not None}
    patch_locals = {s.get_name() for s in ours.get_symbols() if s.is_local()} - parameters
    upstream_uses = _all_symbols(theirs)
    shared = sorted(patch_locals & upstream_uses)
    if shared:
        raise ctx.fail(
            patch,
            f"the patch's local {shared[0]!r} is also a name upstream {patch.target}.__init__ (line "
            f"{upstream_init.lineno}) uses; merged into one __init__ they would be one variable: rename it in the patch",
        )
    upstream_locals = {s.get_name() for s in theirs.get_symbols() if s.is_local() and not s.is_parameter()}
    before_reads = {n.id for n in ast.walk(_parse_block(parts.before, parts.indent).tree) if isinstance(n, ast.Name)}
    unbound = sorted(upstream_locals & before_reads)
    if unbound:
        raise ctx.fail(
            patch,
            f"the patch reads {unbound[0]!r} before original_init, and upstream {patch.target}.__init__ (line "
            f"{upstream_init.lineno}) makes {unbound[0]!r} a local of its own: merged, that read would find the "
            "local (unbound there), not the module's name; rename it in the patch module",
        )
    rebound = {s.get_name() for s in theirs.get_symbols() if s.is_assigned()}
    after_reads = (
        {n.id for n in ast.walk(_parse_block(parts.after, parts.indent).tree) if isinstance(n, ast.Name)}
        if parts.after.strip()
        else set()
    )
    kwargs = upstream_init.args.kwarg.arg if upstream_init.args.kwarg else None
    if kwargs in after_reads and _may_change_in_place(upstream_init, kwargs):
        raise ctx.fail(
            patch,
            f"the patch reads {kwargs!r} after original_init, and upstream {patch.target}.__init__ (line "
            f"{upstream_init.lineno}) may change that dict ({kwargs}.pop(...), ...): called through original_init "
            f"it gets a copy, merged it would be the patch's own; copy what the patch needs before the call",
        )
    clobbered = sorted(rebound & after_reads)
    if clobbered:
        raise ctx.fail(
            patch,
            f"upstream {patch.target}.__init__ (line {upstream_init.lineno}) assigns {clobbered[0]!r}, which the "
            "patch reads after original_init: merged, it would see upstream's value, not its own; "
            f"read it from self, or copy it to another name before the call",
        )
    if parts.after.strip():
        early = _early_return(upstream_init)
        if early is not None:
            raise ctx.fail(
                patch,
                f"upstream {patch.target}.__init__ can return early (line {early.lineno}), which would skip the "
                "patch's code after original_init; override the whole __init__ with override_method instead",
            )


def _may_change_in_place(func: ast.FunctionDef, name: str) -> bool:
    """Whether `func`'s body uses `name` other than unpacking it into a call (`f(**name)` copies it)."""
    unpacked = {id(k.value) for k in ast.walk(func) if isinstance(k, ast.keyword) and k.arg is None}
    return any(
        isinstance(n, ast.Name) and n.id == name and id(n) not in unpacked
        for statement in func.body
        for n in ast.walk(statement)
    )


def _early_return(func: ast.FunctionDef) -> ast.Return | None:
    """A `return` of the function itself (not of a function or lambda nested in it)."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            return node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return None


# -- cutting the patch ----------------------------------------------------------------------------


def split_around_original_init(snippet: Snippet, func: ast.FunctionDef, call: ast.Expr) -> InitParts:
    """The patch body's text before and after its `original_init(...)` statement, cut at the statement's
    exact columns, so `a = 1; original_init(self); b = 2` keeps both neighbours."""
    src = snippet.source
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and body[0] is not call:
        body = body[1:]  # the patch's docstring documents the patch, not the class
    indent = src.indentation_of(body[0].lineno)
    first = body[0]
    begin = src.line_start(_with_leading_comments(src, first.lineno)) if first is not call else None
    call_start = src.offset(call.lineno, call.col_offset)
    call_end = src.offset(call.end_lineno, call.end_col_offset)
    # comments directly above a leading call are about the call, which the output does not have
    before = src.text[begin:call_start].rstrip(" \t") if begin is not None else ""
    before = before[:-1].rstrip(" \t") if before.endswith(";") else before
    after = src.text[call_end : src.line_end(func.end_lineno)].lstrip(" \t")
    after = after[1:].lstrip(" \t") if after.startswith(";") else after
    if after and not after.startswith("\n"):
        after = indent + after  # the rest of the call's line: a statement or a comment
    else:
        after = after[1:]
    before = before if not before or before.endswith("\n") else before + "\n"
    return InitParts(before=before, after=after, indent=indent, call=call.value)


def _with_leading_comments(src: SourceText, lineno: int) -> int:
    while lineno > 1 and src.lines[lineno - 2].lstrip().startswith("#"):
        lineno -= 1
    return lineno


def _parse_block(text: str, indent: str) -> Snippet:
    """A block of statements cut from a function body, parsed with the indentation it has there."""
    if not text.strip():
        return Snippet.parse("")
    return replace(Snippet.parse(text), indent=indent)


def _moved(text: str, from_indent: str, to_indent: str) -> str:
    """A block moved from the patch body's indentation to upstream's, multi-line strings untouched."""
    snippet = _parse_block(text, from_indent)
    moved = reindent(snippet, to_indent) if from_indent != to_indent else text
    return moved.strip("\n") + "\n"


def _added_block(text: str, from_indent: str, to_indent: str, what: str) -> str:
    return (
        banners.marker(f"[patchgen] begin: {what}", to_indent)
        + _moved(text, from_indent, to_indent)
        + banners.marker("[patchgen] end", to_indent)
    )


def _node_text(src: SourceText, node: ast.stmt) -> str:
    first = src.node_start_line(node, leading_comments=False)
    return reindent(Snippet.parse("".join(src.lines[first - 1 : node.end_lineno])), "")


# -- writing --------------------------------------------------------------------------------------


def _insert_into_init(ctx: PlanContext, patch: Patch, upstream_init: ast.FunctionDef, parts: InitParts) -> None:
    src = ctx.upstream.source
    where = patch.defined_at
    body = upstream_init.body
    docstring = (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    code = body[1:] if docstring and len(body) > 1 else body
    if body[0].lineno == upstream_init.lineno:
        # `def __init__(self): self.x = 1` on one line: rewrite the body below the signature, then merge
        indent = src.indentation_of(upstream_init.lineno) + "    "
        start = src.offset(body[0].lineno, body[0].col_offset)
        end = src.line_end(upstream_init.end_lineno)
        text = "\n"
        if parts.before.strip():
            text += _added_block(
                parts.before, parts.indent, indent, f"added by modify_init ({where}), before the upstream body"
            )
        text += indent + src.text[start:end].lstrip()
        text = text if text.endswith("\n") else text + "\n"
        if parts.after.strip():
            text += _added_block(
                parts.after, parts.indent, indent, f"added by modify_init ({where}), after the upstream body"
            )
        ctx.edits.append(TextEdit(start, end, text, ORDER_CODE))
        return
    body_indent = src.indentation_of(code[0].lineno)
    if parts.before.strip():
        if code[0] is body[0] and docstring:  # only a docstring: the patch's code goes after it
            at = src.line_end(body[0].end_lineno)
        else:
            at = src.line_start(src.node_start_line(code[0]))
        text = _added_block(
            parts.before, parts.indent, body_indent, f"added by modify_init ({where}), before the upstream body"
        )
        ctx.edits.append(TextEdit(at, at, text, ORDER_CODE))
    if parts.after.strip():
        at = src.line_end(upstream_init.end_lineno)
        text = _added_block(
            parts.after, parts.indent, body_indent, f"added by modify_init ({where}), after the upstream body"
        )
        ctx.edits.append(TextEdit(at, at, text, ORDER_CODE))


def _write_new_init(
    ctx: PlanContext, patch: Patch, cls: ast.ClassDef, func: ast.FunctionDef, snippet: Snippet, parts: InitParts
) -> None:
    """No upstream `__init__`: write one from the patch's signature that calls the parent's."""
    src = ctx.upstream.source
    where = patch.defined_at
    inline = cls.body[0].lineno == cls.lineno  # `class X(Base): ...` on one line
    class_indent = src.indentation_of(cls.lineno) + "    " if inline else src.indentation_of(cls.body[0].lineno)
    body_indent = class_indent + "    "
    arguments_node = copy.deepcopy(func.args)
    if arguments_node.posonlyargs:
        arguments_node.posonlyargs.pop(0)
    else:
        arguments_node.args.pop(0)
    signature = ast.unparse(arguments_node)  # the patch's parameters without original_init
    call = parts.call
    call_args = ", ".join(ast.get_source_segment(snippet.text, a) or "" for a in call.args[1:])
    call_kwargs = [ast.get_source_segment(snippet.text, k) or "" for k in call.keywords]
    arguments = ", ".join(a for a in [call_args, *call_kwargs] if a)
    text = banners.marker(f"[ADDED METHOD] {patch.target}.__init__ written by modify_init ({where})", class_indent)
    text += f"{class_indent}def __init__({signature}):\n"
    if parts.before.strip():
        text += _moved(parts.before, parts.indent, body_indent)
    text += f"{body_indent}super().__init__({arguments})\n"
    if parts.after.strip():
        text += _moved(parts.after, parts.indent, body_indent)
    first = cls.body[0]
    if inline:
        start = src.offset(first.lineno, first.col_offset)
        ctx.edits.append(TextEdit(start, src.line_end(first.end_lineno), "\n" + text, ORDER_NEW_INIT))
        return
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        at = src.line_end(first.end_lineno)  # after the class docstring, even when it is the whole body
        text = "\n" + text
    else:
        at = src.line_start(src.node_start_line(first))
        text = text + "\n"
    ctx.edits.append(TextEdit(at, at, text, ORDER_NEW_INIT))
