"""Checks that make a patch an error at generation time instead of a broken or silently wrong file.

- `override_signature_problem`: an `override_method` patch must accept what upstream callers pass.
- `check_exclusions`: an excluded class or function must not still be needed by what remains:
  upstream code that names it in a string (`_no_split_modules = ["X"]`, which no linter sees), or
  a patch whose code uses it. Uses by plain name are caught after rendering (ruff F821/F822) and
  explained by `check_generated_output`.
- `check_generated_output`: the rendered file defines every name it uses and imports nothing from
  the patch package or the patch modules; each message names the exact name, where it is used and
  which patch or exclusion is responsible.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import SHIPPED_SETS
from patchgen.dsl.patch_spec import Exclusion, Patch, PatchKind
from patchgen.load.patch_source import free_names, read_patch_source
from patchgen.plan.import_order import forward_reads_at_import
from patchgen.plan.submodels import stock_submodels
from patchgen.syntax.definitions import definitions_named, first_line
from patchgen.syntax.module_facts import runtime_bound_names
from patchgen.syntax.sniffed import SNIFFED_CAPABILITIES, claims_without_code, sniffed_capabilities
from patchgen.syntax.source_text import parse_text


if TYPE_CHECKING:
    from patchgen.plan.context import Plan, PlanContext

_WHOLE = (PatchKind.CLASS_REPLACEMENT, PatchKind.FUNCTION_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT)
_KIND = inspect.Parameter
_MODULE_LEVEL = "module-level code"


# -- override_method signatures -------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    has_default: bool


def params_of_ast(args: ast.arguments) -> list[Param]:
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    out = [
        Param(
            a.arg,
            _KIND.POSITIONAL_ONLY if i < len(args.posonlyargs) else _KIND.POSITIONAL_OR_KEYWORD,
            i >= first_default,
        )
        for i, a in enumerate(positional)
    ]
    if args.vararg:
        out.append(Param(args.vararg.arg, _KIND.VAR_POSITIONAL, False))
    out += [
        Param(a.arg, _KIND.KEYWORD_ONLY, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg:
        out.append(Param(args.kwarg.arg, _KIND.VAR_KEYWORD, False))
    return out


def params_of_signature(signature: inspect.Signature) -> list[Param]:
    return [Param(p.name, p.kind, p.default is not p.empty) for p in signature.parameters.values()]


def format_params(params: list[Param]) -> str:
    parts, star_done = [], False
    for i, p in enumerate(params):
        if p.kind is _KIND.KEYWORD_ONLY and not star_done:
            parts.append("*")
        if p.kind in (_KIND.VAR_POSITIONAL, _KIND.KEYWORD_ONLY):
            star_done = True
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(p.kind.name, "")
        parts.append(prefix + p.name + ("=..." if p.has_default else ""))
        if p.kind is _KIND.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not _KIND.POSITIONAL_ONLY
        ):
            parts.append("/")
    return f"({', '.join(parts)})"


def override_signature_problem(patch_params: list[Param], upstream_params: list[Param]) -> str | None:
    """Why the patch cannot stand in for the upstream method, or None when every upstream call fits.

    Callers of the upstream method may pass every positional parameter by position or by name, and
    every keyword-only parameter by name. So the patch keeps the same positional parameters in the
    same order with the same names, accepts `*args` and each keyword-only parameter where upstream
    does (or takes `**kwargs`), and any parameter it adds is keyword-only with a default. Defaults of
    positional parameters are not compared: upstream's own callers pass them (a patch shared by
    several models, like Ulysses attention, relies on that).
    """
    positional = (_KIND.POSITIONAL_ONLY, _KIND.POSITIONAL_OR_KEYWORD)
    ours = [p for p in patch_params if p.kind in positional]
    theirs = [p for p in upstream_params if p.kind in positional]
    if [p.name for p in ours] != [p.name for p in theirs]:
        return "its positional parameters differ from upstream's (same names, same order needed)"
    kinds = {p.kind for p in patch_params}
    if _KIND.VAR_POSITIONAL in {p.kind for p in upstream_params} and _KIND.VAR_POSITIONAL not in kinds:
        return "upstream takes *args but the patch does not"
    if _KIND.VAR_KEYWORD in {p.kind for p in upstream_params} and _KIND.VAR_KEYWORD not in kinds:
        return "upstream takes **kwargs but the patch does not"
    our_keywords = {p.name: p for p in patch_params if p.kind is _KIND.KEYWORD_ONLY}
    their_keywords = {p.name: p for p in upstream_params if p.kind is _KIND.KEYWORD_ONLY}
    missing = [n for n in their_keywords if n not in our_keywords]
    if missing and _KIND.VAR_KEYWORD not in kinds:
        return f"upstream accepts keyword-only {', '.join(missing)} but the patch does not (add it or **kwargs)"
    for name, p in our_keywords.items():
        upstream = their_keywords.get(name)
        if not p.has_default and (upstream is None or upstream.has_default):
            return f"the patch requires keyword-only {name!r}, which upstream callers do not always pass; give it a default"
    return None


def upstream_method_params(upstream_module, class_name: str, method: ast.FunctionDef | None, name: str):
    """The upstream method's parameters: from its source when the class defines it, else from the base
    class in the same upstream module that does; None when it comes from elsewhere (then unchecked)."""
    if method is not None:
        return params_of_ast(method.args)
    cls = getattr(upstream_module, class_name, None)
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else ():
        if name in vars(klass) and klass.__module__ != upstream_module.__name__:
            return None  # nn.Module.forward, object.__repr__: the contract lives outside upstream, not checked
        if name in vars(klass):
            raw = vars(klass)[name]
            func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
            try:
                return params_of_signature(inspect.signature(func))
            except (TypeError, ValueError):
                return None
    return None


def check_override_signature(
    ctx: PlanContext, patch: Patch, patch_def: ast.FunctionDef, method: ast.FunctionDef | None
) -> None:
    """Raise when the `override_method` patch cannot be called the way upstream's method is."""
    theirs = upstream_method_params(ctx.names.upstream_module, patch.target_class, method, patch.method_name)
    if theirs is None:
        return
    ours = params_of_ast(patch_def.args)
    problem = override_signature_problem(ours, theirs)
    if problem:
        raise ctx.fail(
            patch,
            f"signature {patch_def.name}{format_params(ours)} does not accept what callers of upstream "
            f"{patch.target}{format_params(theirs)} pass: {problem}; keep upstream's parameters "
            "(extra keyword-only parameters with defaults, or **kwargs, are fine)",
        )


# -- exclusions -----------------------------------------------------------------------------------


def check_exclusions(ctx: PlanContext) -> None:
    """Raise when an excluded name is still needed by remaining upstream code or by a patch."""
    excluded = {e.name: e for e in ctx.config.exclusions}
    if not excluded:
        return
    upstream = ctx.upstream
    for patch in ctx.config.patches:
        if patch.target_class not in excluded:  # a patch on an excluded class is reported by the planner
            _check_patch_uses(ctx, patch, excluded)
    removed = set(excluded) | {p.target for p in ctx.config.patches if p.kind in _WHOLE}
    overridden = {(p.target_class, p.method_name) for p in ctx.config.patches if p.kind is PatchKind.METHOD_OVERRIDE}
    for node in upstream.tree.body:
        if getattr(node, "name", None) in removed or _is_literal_all(node):
            continue  # removed with its strings, or an `__all__` list whose entries the planner removes
        for where, line, value in _string_uses(node, set(excluded), overridden):
            exclusion = excluded[value]
            fix = f"keep {value}" + (f" or also exclude {where.split('.')[0]}" if where != _MODULE_LEVEL else "")
            raise PatchgenError(
                f"{ctx.config_module}: {exclusion.defined_at}: exclude_from_output {value}: {where} still refers to "
                f"it by the string {value!r} ({upstream.name} line {line}), which would break at run time; {fix}"
            )


def _check_patch_uses(ctx: PlanContext, patch: Patch, excluded: dict[str, Exclusion]) -> None:
    if patch.replacement is None:
        return
    source = read_patch_source(patch.replacement, f"{ctx.config_module}: {patch.defined_at}: {patch.label}")
    used = sorted(free_names(source.snippet()) & set(excluded))
    if not used:
        return
    # Only now: on the light-import path (patchgen.light_imports) this needs the real upstream module.
    namespace, upstream_namespace = vars(source.module), vars(ctx.names.upstream_module)
    for name in used:
        if namespace.get(name, upstream_namespace.get(name)) is upstream_namespace.get(name):
            raise ctx.fail(
                patch,
                f"uses {name}, which exclude_from_output ({excluded[name].defined_at}) removes from the output; "
                f"keep {name} or stop using it in the patch",
            )


def _is_literal_all(node: ast.stmt) -> bool:
    """`__all__ = [...]`, `__all__: list[str] = [...]` or `__all__ += [...]` of plain strings."""
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    value = getattr(node, "value", None)
    return (
        isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)
        and isinstance(value, (ast.List, ast.Tuple))
        and all(isinstance(e, ast.Constant) for e in value.elts)
    )


def _string_uses(node: ast.stmt, names: set[str], overridden: set[tuple[str, str]]):
    """(qualified place, line, name) for each string constant equal to one of `names`, docstrings aside.

    The place is the enclosing definition, or for a module- or class-level assignment its target:
    `Qwen3PreTrainedModel._no_split_modules`, `__all__`.
    """

    def visit(item: ast.AST, place: str, owner: str | None, statement_level: bool):
        if isinstance(item, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if owner is not None and (owner, item.name) in overridden:
                return  # the upstream method is replaced by the patch, its strings go with it
            inner = f"{place}.{item.name}" if place else item.name
            body = item.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            is_class = isinstance(item, ast.ClassDef)
            for child in [*item.decorator_list, *_header_parts(item)]:
                yield from visit(child, inner, None, False)
            for child in body:
                yield from visit(child, inner, item.name if is_class else None, is_class)
            return
        if statement_level and isinstance(item, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            named = [t.id for t in targets if isinstance(t, ast.Name)]
            place = (f"{place}.{named[0]}" if place else named[0]) if named else place
        if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value in names:
            yield (place or _MODULE_LEVEL, item.lineno, item.value)
            return
        for child in ast.iter_child_nodes(item):
            yield from visit(child, place, owner, False)

    yield from visit(node, "", None, True)


def _header_parts(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.ClassDef):
        return [*node.bases, *node.keywords]
    return [node.args, *([node.returns] if node.returns else [])]


# -- the rendered file ----------------------------------------------------------------------------


def check_generated_output(plan: Plan, path: Path, text: str, undefined: list) -> None:
    """Raise unless the formatted output defines every name it uses and imports no patch code."""
    tree = parse_text(text)  # one parse of the output for every check below (read-only)
    if undefined:
        first_by_name = {}
        for problem in sorted(undefined, key=lambda p: p.line):
            first_by_name.setdefault(_undefined_name(problem), problem)
        details = [_explain_undefined(plan, tree, text, name, p) for name, p in sorted(first_by_name.items())]
        raise PatchgenError(
            f"{plan.config_module}: generated {path.name} would be broken: {'; '.join(details)}; define or import "
            "the name in the patch module, or keep the class that defines it"
        )
    for read in forward_reads_at_import(tree):
        raise PatchgenError(
            f"{plan.config_module}: generated {path.name} would fail on import: line {read.line} runs "
            f"{read.function}() while the module is imported, which reads {read.name!r}, bound only below (line "
            f"{read.bound_line}); compute it inside the function that needs it, or patch code placed below it"
        )
    _refuse_changed_capabilities(plan, path, text)
    for stock in stock_submodels(tree, plan.upstream.module()):
        raise PatchgenError(
            f"{plan.config_module}: generated {path.name} would build transformers' own {stock.built}, not its own: "
            f"{stock.owner}.__init__ (line {stock.line}) calls AutoModel.from_config(config.{stock.attribute}), which "
            f"returns transformers' class, so no patch of the file's {stock.built} would run; apply OWN_SUBMODELS "
            f"(patchgen.sets.composite.own_submodels) to {stock.owner}, or override its __init__ to build "
            f"{stock.built}._from_config(config.{stock.attribute})"
        )
    for marker, line in claims_without_code(text, tree):
        raise PatchgenError(
            f"{plan.config_module}: generated {path.name} would claim a capability it lacks: {marker!r} appears at "
            f"line {line} only in a comment or string, and transformers reads the module text for it; reword that "
            "comment in the patch (banners never contain it)"
        )
    patch_modules = {getattr(p.replacement, "__module__", None) for p in plan.config.patches} - {None}
    forbidden = {plan.patch_package, SHIPPED_SETS} | patch_modules
    for node in _statements(tree):  # an import is a statement: expressions need not be walked
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        for module in modules:
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                owner = "patch package" if module.split(".")[0] == plan.patch_package else "patch modules"
                raise PatchgenError(
                    f"{plan.config_module}: generated {path.name} imports {module} from the {owner} "
                    f"(line {node.lineno}); generated files must be self-contained"
                )


def _statements(tree: ast.Module):
    """Every statement of the module, at any depth (bodies, branches, handlers, match cases)."""
    pending = list(tree.body)
    while pending:
        statement = pending.pop()
        yield statement
        for name in ("body", "orelse", "finalbody"):
            block = getattr(statement, name, None)
            if isinstance(block, list):
                pending += [item for item in block if isinstance(item, ast.stmt)]
        for part in (*getattr(statement, "handlers", ()), *getattr(statement, "cases", ())):
            pending += part.body


def _refuse_changed_capabilities(plan: Plan, path: Path, text: str) -> None:
    """Refuse an output for which transformers' source-reading capabilities (`patchgen.syntax.sniffed`) differ
    from upstream's: added code that defines `class ...Attention...(nn.Module):` in a module that had no
    attention class makes `set_attn_implementation(...)` refuse, and a replaced forward that drops the
    `ALL_ATTENTION_FUNCTIONS.get_interface(` call or `@use_experts_implementation` makes it silently do
    nothing. The generated models must answer what the stock ones answer."""
    before, after = dict(_stock_capabilities(plan.upstream.source.text)), sniffed_capabilities(text)
    for capability, (how, remedy) in SNIFFED_CAPABILITIES.items():
        if before[capability] != after[capability]:
            raise PatchgenError(
                f"{plan.config_module}: {_capability_blame(plan, capability, text)}: generated {path.name} would change "
                f"{capability}() from {before[capability]} (stock) to {after[capability]}: {how}; {remedy}"
            )


@functools.lru_cache(maxsize=64)  # every config of a family asks of the same upstream text; outputs are new each time
def _stock_capabilities(upstream_text: str) -> tuple[tuple[str, bool], ...]:
    return tuple(sniffed_capabilities(upstream_text).items())


def _capability_blame(plan: Plan, capability: str, text: str) -> str:
    """The patches that could change `capability` (see `_refuse_changed_capabilities`): those that put an
    attention class into the output, and those that replace upstream code holding a marker. Found by name:
    the patch modules are no longer imported when the output is checked."""
    attention_classes = set(re.findall(r"^class (\w*Attention\w*)\(nn\.Module\):", text, re.MULTILINE))
    markers = ("ALL_ATTENTION_FUNCTIONS.get_interface(", "@use_experts_implementation")
    blamed = []
    for patch in plan.config.patches:
        if capability == "_can_set_attn_implementation" and patch.target.split(".")[0] in attention_classes:
            blamed.append(patch)
        elif any(
            m in "".join(plan.upstream.source.lines[first_line(node) - 1 : node.end_lineno])
            for node in definitions_named(plan.upstream.tree, patch.target)
            for m in markers
        ):
            blamed.append(patch)
    if not blamed:
        return "the config's patches"
    return ", ".join(f"{p.defined_at}: {p.label}" for p in blamed)


def _undefined_name(problem) -> str:
    return problem.message.split("`")[1] if "`" in problem.message else problem.message


def _explain_undefined(plan: Plan, tree: ast.Module, text: str, name: str, problem) -> str:
    """`Undefined name `X` at line 90 in Cls.method (code of method_override Cls.method, at path:line)`."""
    line = _first_use(tree, name) or problem.line  # ruff's rows are from before formatting
    place = _enclosing(tree, line)
    culprit = _patch_owning(plan, place, text, line)
    if culprit:
        blame = f"code of {culprit.label}, at {culprit.defined_at}"
    else:
        blame = _added_module_code_owning(plan, tree, text, line) or "upstream code"
    bound_below = _bound_below(tree, name, line)
    if bound_below and blame != "upstream code":
        blame += f"; upstream binds {name!r} only below it (line {bound_below})"
        if blame.startswith(f"code of {PatchKind.MODULE_CODE.value}"):
            blame += f": place it with after={name!r}"
    exclusion = next((e for e in plan.config.exclusions if e.name == name), None)
    if exclusion is not None:
        blame += f"; exclude_from_output {name} ({exclusion.defined_at}) removed it"
    return f"{problem.message} at line {line} in {place or 'module-level code'} ({blame})"


def _first_use(tree: ast.Module, name: str) -> int | None:
    """The first line reading `name`: as a name, or inside a string (a quoted annotation, `__all__`)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    lines = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == name]
    if not lines:
        lines = [
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and word.search(n.value)
        ]
    return min(lines, default=None)


def _enclosing(tree: ast.Module, line: int) -> str:
    parts: list[str] = []
    body = tree.body
    while True:
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and min([n.lineno, *(d.lineno for d in n.decorator_list)]) <= line <= n.end_lineno
            ),
            None,
        )
        if node is None:
            return ".".join(parts)
        parts.append(node.name)
        body = node.body


def _patch_owning(plan: Plan, place: str, text: str, line: int) -> Patch | None:
    top, _, rest = place.partition(".")
    member = rest.split(".")[0]
    for patch in plan.config.patches:
        if patch.kind in _WHOLE and patch.target == top:
            return patch
        if patch.kind is PatchKind.MODULE_CODE and not patch.block and patch.target == top:
            return patch
        if patch.kind is PatchKind.METHOD_ADDITION and (patch.target_class, patch.method_name) == (top, member):
            return patch
        if patch.kind is PatchKind.METHOD_OVERRIDE and (patch.target_class, patch.method_name) == (top, member):
            return patch
        if patch.kind is PatchKind.INIT_MODIFICATION and (patch.target, member) == (top, "__init__"):
            if _inside_added_block(text, line) or f"written by modify_init ({patch.defined_at})" in text:
                return patch
    return None


def _added_module_code_owning(plan: Plan, tree: ast.Module, text: str, line: int) -> str | None:
    """`code of <patch>, at <where>` when `line` is in module-level statements an `add_block`, a block
    `replace_assignment` or an `add_statement` wrote: the nearest banner above names its source, and the
    patch's own statement count says whether `line` is still inside them."""
    lines = text.splitlines()
    statements = [
        n for n in tree.body if min([n.lineno, *(d.lineno for d in getattr(n, "decorator_list", []))]) <= line
    ]
    for back, node in enumerate(reversed(statements)):
        top = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        above = lines[statements[-back - 2].end_lineno if back + 1 < len(statements) else 0 : top - 1]
        sources = [a.removeprefix("# Patch source: ") for a in above if a.startswith("# Patch source: ")]
        if sources:
            owner = _module_code_by_source(plan, sources[-1])
            return f"code of {owner[0]}, at {sources[-1]}" if owner and back < owner[1] else None
    return None


def _module_code_by_source(plan: Plan, source: str) -> tuple[str, int] | None:
    """(label, number of module-level statements) of the module code written from `source`."""
    for statement in plan.config.statements:
        if str(statement.defined_at) == source:
            return "add_statement", len(ast.parse(statement.code).body)
    for patch in plan.config.patches:
        if patch.source_note != source or patch.kind not in (PatchKind.MODULE_CODE, PatchKind.ASSIGNMENT_REPLACEMENT):
            continue
        if patch.value_source is not None or not patch.block and patch.kind is PatchKind.MODULE_CODE:
            return patch.label, 1
        source = read_patch_source(patch.replacement, patch.label, patch.defined_at.line)
        body = ast.parse(textwrap.dedent(source.definition))
        statements = body.body[0].body
        docstring = isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant)
        return patch.label, len(statements) - docstring
    return None


def _bound_below(tree: ast.Module, name: str, line: int) -> int | None:
    """The first line below `line` where the module binds `name` at top level, if any."""
    for node in tree.body:
        if node.lineno > line and name in runtime_bound_names([node]):
            return node.lineno
    return None


def _inside_added_block(text: str, line: int) -> bool:
    lines = text.splitlines()
    for previous in reversed(lines[: line - 1]):
        stripped = previous.strip()
        if stripped.startswith("# [patchgen] end"):
            return False
        if stripped.startswith("# [patchgen] begin: added by modify_init"):
            return True
    return False
