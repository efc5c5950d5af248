"""The config values a patch set supports, checked against upstream's code, config defaults and at construction.

A shared set can generate cleanly on a model whose config makes upstream compute something the set's
code does not: the fused-loss forward on Granite drops `logits / config.logits_scaling`, a SwiGLU MLP on
Gemma ignores `config.hidden_activation`. Three checks, all from `PatchSet.requires_config`:

- `ignored_reads`: every `config.<attr>` / `self.config.<attr>` (or `getattr(config, "<attr>", ...)`) that
  upstream's replaced definition reads and the set's code does not read must be declared by the set with
  the values it supports; otherwise generation is refused (the set would silently ignore it);
- `default_problem`: the defaults of upstream's config class (the one the module imports from its
  `configuration_*` module, built with no arguments: no network) must be supported values;
- `plan_construction_checks`: the output calls `patchgen.runtime.config_checks.check_config_values` at the
  start of `__init__` of the upstream class that builds the patched part (or of the patched class itself,
  when it stays upstream's), so a config built later with another value fails at construction, in one line.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import linecache
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from patchgen.dsl.patch_spec import Patch, PatchKind
from patchgen.syntax.source_text import TextEdit, parse_text, read_source


CHECK_IMPORT = "from patchgen.runtime.config_checks import check_config_values"
#: before a modify_init's statements inserted at the same place (ORDER_CODE): the check runs first
ORDER_CONFIG_CHECK = -1


# -- what code reads of its config --------------------------------------------------------------------


def _is_config(node: ast.expr) -> bool:
    """`config` or `self.config`."""
    if isinstance(node, ast.Name):
        return node.id == "config"
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "config"
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def config_reads(node: ast.AST) -> dict[str, int]:
    """Attribute -> first line, for every config attribute `node` reads (method calls on the config aside)."""
    called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    found: dict[str, int] = {}
    for item in ast.walk(node):
        if isinstance(item, ast.Attribute) and _is_config(item.value) and id(item) not in called:
            found.setdefault(item.attr, item.lineno)
        elif (
            isinstance(item, ast.Call)
            and isinstance(item.func, ast.Name)
            and item.func.id in ("getattr", "hasattr")
            and len(item.args) >= 2
            and _is_config(item.args[0])
            and isinstance(item.args[1], ast.Constant)
            and isinstance(item.args[1].value, str)
        ):
            found.setdefault(item.args[1].value, item.lineno)
    return found


@dataclass(frozen=True)
class CodeReads:
    """What one piece of code reads of the config, and the plain names it calls (gathered once per text)."""

    reads: frozenset[str]
    called_names: tuple[str, ...]  # `f(...)` callees, in walk order


@lru_cache(maxsize=1024)
def code_reads(text: str) -> CodeReads | None:
    """`CodeReads` of a dedented source text; None when it does not parse. One walk per distinct text."""
    try:
        tree = parse_text(text)
    except SyntaxError:
        return None
    called = tuple(n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
    return CodeReads(frozenset(config_reads(tree)), called)


def _code_reads_of(obj: Any) -> CodeReads | None:
    try:
        return code_reads(textwrap.dedent(_source_of(obj)))
    except (OSError, TypeError):
        return None


# (file, first line, name) of a function's code -> (the file's lines as linecache holds them, its source)
_FUNCTION_SOURCES: dict[tuple[str, int, str], tuple[list[str], str]] = {}


def _source_of(obj: Any) -> str:
    """`inspect.getsource(obj)`, found once per function per file text.

    Every config imports the sets afresh (new function objects, same code), and `inspect.getsource`
    tokenizes the file from the function's first line each time. The answer is kept while linecache
    holds the same list of lines for the file (`checkcache` drops a file changed on disk, and reading it
    again gives a new list).
    """
    code = getattr(inspect.unwrap(obj), "__code__", None) if callable(obj) else None
    if code is None:
        return inspect.getsource(obj)
    key = (code.co_filename, code.co_firstlineno, code.co_name)
    linecache.checkcache(code.co_filename)  # as inspect does: a file changed on disk is read again
    lines = linecache.getlines(code.co_filename)
    known = _FUNCTION_SOURCES.get(key)
    if known is not None and known[0] is lines:
        return known[1]
    source = inspect.getsource(obj)
    _FUNCTION_SOURCES[key] = (linecache.getlines(code.co_filename), source)
    return source


def _set_code_reads(patches: list[Patch]) -> set[str]:
    """What the code of one use of a set reads of the config: every patch of it, the steps bound to it."""
    reads: set[str] = set()
    for patch in patches:
        reads |= _patch_code_reads(patch, patch.replacement)
        for _, step in patch.bindings:
            reads |= _patch_code_reads(patch, step)
    return reads


def _patch_code_reads(patch: Patch, code: Any) -> set[str]:
    """What `code` reads of the config: its own source and the functions of its module it calls by name."""
    if patch.kind is PatchKind.EXTERNAL_REPLACEMENT:
        spec = importlib.util.find_spec(patch.replacement_module)
        if spec is None or not spec.origin:
            return set()
        tree = parse_text(read_source(spec.origin))
        node = next((n for n in tree.body if getattr(n, "name", None) == patch.replacement_name), None)
        return set(config_reads(node)) if node is not None else set()
    reads: set[str] = set()
    module = inspect.getmodule(code)
    queue, seen = [code], set()
    while queue:
        obj = queue.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        found = _code_reads_of(obj)
        if found is None:
            continue
        reads |= found.reads
        for called_name in found.called_names:
            callee = getattr(module, called_name, None)
            if inspect.isfunction(callee) and inspect.getmodule(callee) is module:
                queue.append(callee)
    return reads


def replaced_definition(upstream: Any, patch: Patch) -> ast.stmt | None:
    """Upstream's code that the patch takes out of the output (None: nothing of upstream's is dropped)."""
    node = upstream.definitions.get(patch.target_class)
    if node is None or patch.keep_original_as:
        return None  # missing: reported by the planner; kept: upstream's code still runs
    if patch.kind is PatchKind.METHOD_OVERRIDE:
        method = patch.target.rsplit(".", 1)[1]
        return next(
            (n for n in getattr(node, "body", []) if isinstance(n, ast.FunctionDef) and n.name == method), None
        )
    if patch.kind in (PatchKind.CLASS_REPLACEMENT, PatchKind.FUNCTION_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT):
        return node
    return None


def config_requirements(patch: Patch) -> list[Any]:
    return [r for r in patch.requirements if r.kind == "config"]


def supported_values(patch: Patch) -> dict[str, tuple]:
    supported: dict[str, tuple] = {}
    for requirement in config_requirements(patch):
        supported.update(dict(requirement.values))
    return supported


def ignored_reads(upstream: Any, patch: Patch, patches: list[Patch]) -> str | None:
    """Why the set's code would ignore a config value upstream's replaced code reads (None when it does not).

    The set's code is that of every patch of the same `use` (`patches`: a Ulysses forward whose added method
    reads `config._attn_implementation` reads it) and of the steps bound to them.
    """
    if not patch.patch_set:
        return None  # a config's own patch is written for this upstream
    node = replaced_definition(upstream, patch)
    if node is None:
        return None
    supported = supported_values(patch)
    same_use = [
        p
        for p in patches
        if p.applied_at == patch.applied_at
        and p.patch_set
        and p.patch_set.split(".")[0] == patch.patch_set.split(".")[0]
    ]
    ours = _set_code_reads(same_use or [patch])
    for attribute, line in sorted(config_reads(node).items(), key=lambda item: item[1]):
        if attribute in ours or attribute in supported:
            continue
        code = (
            f"{patch.replacement_module}.{patch.replacement_name}"
            if patch.kind is PatchKind.EXTERNAL_REPLACEMENT
            else f"{patch.replacement.__module__.rsplit('.', 1)[-1]}.{patch.replacement.__qualname__}"
        )
        declared = ", ".join(f"{a}={v!r}" for a, v in supported.items()) or "no config values"
        role = patch.patch_set.split(".", 1)[1]
        return (
            f"upstream {patch.target} (line {line}) reads config.{attribute}, which {code} ignores; the set "
            f"supports only {declared}; use upstream's code (or a set that reads it) for this model, or declare "
            f"requires_config({role!r}, {attribute}=...) with the values for which ignoring it is right"
        )
    return None


# -- the config class's defaults -----------------------------------------------------------------------


@functools.cache
def _config_defaults(module_name: str, package: str, imports: tuple[tuple[str, int, str], ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module, level, name in imports:
        dotted = importlib.util.resolve_name("." * level + module, package) if level else module
        try:
            cls = getattr(importlib.import_module(dotted), name)
            instance = cls()
        except Exception:  # noqa: BLE001 - a config that cannot be built without arguments is not checked
            continue
        found[name] = instance
        for key in getattr(cls, "sub_configs", None) or {}:
            sub = getattr(instance, key, None)
            if sub is not None and not isinstance(sub, (dict, list)):
                found[f"{name}().{key}"] = sub
    return found


def config_defaults(upstream: Any) -> dict[str, Any]:
    """The config classes upstream imports from a `configuration_*` module, built with no arguments."""
    imports = []
    for node in upstream.tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").rsplit(".", 1)[-1].startswith("configuration_"):
            imports += [(node.module, node.level, alias.name) for alias in node.names if alias.name.endswith("Config")]
    return _config_defaults(upstream.name, upstream.package, tuple(imports))


def _annotated_config(node: ast.stmt) -> str | None:
    init = next(
        (n for n in getattr(node, "body", []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
    )
    for argument in init.args.args if init else []:
        if argument.arg == "config" and isinstance(argument.annotation, ast.Name):
            return argument.annotation.id
    return None


def default_problem(upstream: Any, node: ast.stmt, pairs: tuple) -> str | None:
    """A default of upstream's config class outside the supported values (None when all are supported)."""
    defaults = config_defaults(upstream)
    own = _annotated_config(node)
    if own is not None and own in defaults:
        defaults = {name: c for name, c in defaults.items() if name == own or name.startswith(f"{own}().")}
    for attribute, allowed in pairs:
        for name, config in defaults.items():
            if not hasattr(config, attribute):
                continue
            value = getattr(config, attribute)
            if not any(isinstance(value, bool) == isinstance(a, bool) and value == a for a in allowed):
                return f"{name}() defaults {attribute}={value!r}, outside the supported {allowed!r}"
    return None


# -- the check at construction ---------------------------------------------------------------------------


def _init_of(node: ast.stmt) -> ast.FunctionDef | None:
    if not isinstance(node, ast.ClassDef):
        return None
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None or "config" not in [a.arg for a in init.args.args]:
        return None
    return init


def _passes_config(call: ast.Call) -> bool:
    return any(isinstance(a, ast.Name) and a.id == "config" for a in call.args[:1]) or any(
        k.arg == "config" and isinstance(k.value, ast.Name) and k.value.id == "config" for k in call.keywords
    )


def construction_sites(upstream: Any, patch: Patch, replaced: set[str]) -> list[tuple[str, ast.FunctionDef]]:
    """The `__init__`s that see the config the patched part is built from.

    The patched class's own `__init__` when the class stays upstream's (a method override); else each
    upstream class (not replaced itself) whose `__init__(self, config, ...)` builds the part with that
    `config`; for a function (rope), the model classes (`...Model(config)`) deriving from a `...PreTrainedModel`.
    """
    name = patch.target_class
    node = upstream.definitions.get(name)
    if patch.kind in (PatchKind.METHOD_OVERRIDE, PatchKind.METHOD_ADDITION, PatchKind.INIT_MODIFICATION):
        init = _init_of(node)
        return [(name, init)] if init is not None else []
    sites = []
    for other, definition in upstream.definitions.items():
        init = _init_of(definition)
        if init is None or other in replaced:
            continue
        calls = [
            n for n in ast.walk(init) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        ]
        if calls and all(_passes_config(c) for c in calls):
            sites.append((other, init))
    if sites or isinstance(node, ast.ClassDef):
        return sites
    return [
        (other, init)
        for other, definition in upstream.definitions.items()
        if other.endswith("Model")
        and other not in replaced
        and any(isinstance(b, ast.Name) and b.id.endswith("PreTrainedModel") for b in definition.bases)
        and (init := _init_of(definition)) is not None
    ]


def plan_construction_checks(ctx: Any, fail: Any) -> None:
    """One `check_config_values(config, ...)` per (set, patched target, site), at the start of the site's body."""
    replaced = {
        p.target
        for p in ctx.config.patches
        if p.kind in (PatchKind.CLASS_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT, PatchKind.FUNCTION_REPLACEMENT)
    }
    by_site: dict[int, list[str]] = {}
    sites_at: dict[int, ast.stmt] = {}
    done: set[tuple[str, str]] = set()
    for patch in ctx.config.patches:
        supported = supported_values(patch)
        if not supported:
            continue
        set_name = patch.patch_set.split(".")[0]
        if (set_name, patch.target_class) in done:
            continue
        done.add((set_name, patch.target_class))
        sites = construction_sites(ctx.upstream, patch, replaced)
        if not sites:
            raise fail(
                patch,
                f"use({set_name}) declares the config values it supports, but no upstream __init__(self, config) "
                f"builds {patch.target_class} from that config to check them in",
            )
        for _site, init in sites:
            body = init.body
            first = body[1] if len(body) > 1 and _is_docstring(body[0]) else body[0]
            values = "{" + ", ".join(f"{a!r}: {v!r}" for a, v in supported.items()) + "}"
            call = f"check_config_values(config, {set_name!r}, {patch.target_class!r}, {values})"
            by_site.setdefault(first.lineno, []).append(call)
            sites_at[first.lineno] = first
    source = ctx.upstream.source
    for line, calls in by_site.items():
        first = sites_at[line]
        indent = " " * first.col_offset
        text = f"{indent}# [CONFIG CHECK] the config values the patch sets support (PatchSet.requires_config)\n"
        text += "".join(f"{indent}{call}\n" for call in calls)
        at = source.line_start(line)
        ctx.edits.append(TextEdit(at, at, text, ORDER_CONFIG_CHECK))
    if by_site:
        ctx.resolution.imports.setdefault(CHECK_IMPORT, None)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )
