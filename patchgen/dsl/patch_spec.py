"""The patch-spec DSL: a `PatchConfig` and the decorators that fill it.

This module is pure data. Decorators record a `Patch` and return the decorated object unchanged, so
patch modules stay importable and testable on their own. Nothing here reads upstream source or
produces code; `patchgen.commands.codegen` does that.

    config = PatchConfig(
        source_module="transformers.models.qwen3.modeling_qwen3",
        target_file="patched_modeling_qwen3_gpu.py",
        description="Qwen3 with Liger kernels",
    )

    @config.replace_class("Qwen3RMSNorm", description="pure-torch RMSNorm")
    class FastRMSNorm(nn.Module): ...
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import enum
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from patchgen.dsl import arguments
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import load_layout
from patchgen.syntax.definitions import definition_at, line_inside, parse_file


T = TypeVar("T")
_NO_VALUE = object()  # `replace_assignment` called without a value: used as a decorator


class PatchKind(enum.Enum):
    CLASS_REPLACEMENT = "class_replacement"
    FUNCTION_REPLACEMENT = "function_replacement"
    METHOD_OVERRIDE = "method_override"
    INIT_MODIFICATION = "init_modification"
    EXTERNAL_REPLACEMENT = "external_replacement"
    METHOD_ADDITION = "method_addition"
    MODULE_CODE = "module_code"
    ASSIGNMENT_REPLACEMENT = "assignment_replacement"


# The kinds that patch one method of a class (several may patch one class, each its own method).
METHOD_LEVEL = frozenset({PatchKind.METHOD_OVERRIDE, PatchKind.INIT_MODIFICATION, PatchKind.METHOD_ADDITION})

# Method names of PatchConfig that register a patch when used as a decorator. The generator drops
# decorators that call one of these (`@config.replace_class(...)`) from the patch source it copies.
REGISTERING_DECORATORS = frozenset(
    {
        "replace_class",
        "replace_function",
        "override_method",
        "modify_init",
        "add_method",
        "add_code",
        "add_block",
        "replace_assignment",
    }
)

# Where `add_code`/`add_block` may put code besides "after an upstream name": right after the imports.
AFTER_IMPORTS = "imports"


@dataclass(frozen=True)
class SourceLocation:
    """Where a patch was declared: the module's dotted name, its repo-style path and a line."""

    module: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Patch:
    kind: PatchKind
    target: str
    description: str
    replacement: Any = None
    replacement_module: str | None = None
    replacement_name: str | None = None
    keep_upstream_decorators: bool = True
    defined_at: SourceLocation | None = None
    # Composition (see `PatchConfig.use` / `PatchConfig.extend`): `override=True` lets this patch replace
    # an earlier one on the same target; `patch_set` ("liger_kernels.rms_norm") and `applied_at` (the
    # config line that mapped the set onto this target) say where a shared patch came from.
    override: bool = False
    patch_set: str | None = None
    applied_at: SourceLocation | None = None
    # `config.use(SET, ..., bind={"project_qkv": fused_qkv_projection})`: placeholder names in the patch's own
    # code and the functions or classes they stand for in this config. The output calls the bound object by
    # its own name (copied from the patch package, or imported from an installed one).
    bindings: tuple[tuple[str, Any], ...] = ()
    # `keep_original_as="upstream_forward"`: upstream's original stays in the output under that name, so
    # the patch can call it (a replaced function/class, or the method an override replaces).
    keep_original_as: str | None = None
    # `add_code`/`add_block`: where the code goes (`"imports"` or an upstream name it follows); whether
    # the patch object is a block function whose body is the code (else the definition itself is added).
    anchor: str | None = None
    block: bool = False
    # `replace_assignment(NAME, value=...)`: the literal value's source text (None: the decorated block).
    value_source: str | None = None
    # the label of the earlier patch this one replaced with `override=True` (for banners and the header)
    overrides: str | None = None
    # what the patch set this patch comes from requires of upstream (`patchgen.dsl.requirements.Requirement`)
    requirements: tuple[Any, ...] = ()

    @property
    def target_class(self) -> str:
        """The class a method override or `__init__` modification touches."""
        return self.target.split(".", 1)[0]

    @property
    def method_name(self) -> str:
        if self.kind is PatchKind.INIT_MODIFICATION:
            return "__init__"
        return self.target.split(".", 1)[1]

    @property
    def label(self) -> str:
        """How messages name this patch: `method_override Qwen3Attention.forward`, plus its patch set if any."""
        label = f"{self.kind.value} {self.target}"
        if self.patch_set:
            label += f" (patch set {self.patch_set}, applied at {self.applied_at})"
        return label

    @property
    def source_note(self) -> str:
        """Where a reader finds the patch: its source, and for a shared patch the set and the mapping line."""
        if self.patch_set:
            return f"{self.defined_at} (patch set {self.patch_set}, applied at {self.applied_at})"
        return str(self.defined_at)

    @property
    def claims(self) -> tuple[str, ...]:
        """The keys this patch owns in the output: `X` and `X.*` for a whole definition, `X.m` and `X.*` for
        a method. Two patches conflict when they share a key, except two method-level patches sharing
        only the class key `X.*` (different methods of one class)."""
        if self.kind in METHOD_LEVEL:
            return (f"{self.target_class}.{self.method_name}", f"{self.target_class}.*")
        if self.kind in (PatchKind.CLASS_REPLACEMENT, PatchKind.EXTERNAL_REPLACEMENT):
            return (self.target, f"{self.target}.*")
        if self.kind is PatchKind.MODULE_CODE:
            return (f"+{self.target}",)  # new names: clashes are caught by the output's name registry
        return (self.target,)

    def conflicts_with(self, other: Patch) -> bool:
        shared = set(self.claims) & set(other.claims)
        if self.kind in METHOD_LEVEL and other.kind in METHOD_LEVEL:
            shared = {key for key in shared if not key.endswith(".*")}
        return bool(shared)


@dataclass(frozen=True)
class ExtraImport:
    module: str
    names: tuple[str, ...] = ()
    alias: str | None = None
    defined_at: SourceLocation | None = None

    @property
    def bound_names(self) -> tuple[str, ...]:
        """The names this import binds in the output."""
        return tuple(name for name, _ in self.bound_origins)

    @property
    def bound_origins(self) -> tuple[tuple[str, str], ...]:
        """(name bound, dotted origin of the object) for each name the import binds."""
        if self.names:
            pairs = []
            for entry in self.names:
                name, _, alias = (part.strip() for part in entry.partition(" as "))
                pairs.append((alias or name, f"{self.module}.{name}"))
            return tuple(pairs)
        if self.alias:
            return ((self.alias, self.module),)
        top = self.module.split(".")[0]
        return ((top, top),)

    @property
    def statement(self) -> str:
        if self.names:
            return f"from {self.module} import {', '.join(self.names)}"
        if self.alias:
            return f"import {self.module} as {self.alias}"
        return f"import {self.module}"


@dataclass(frozen=True)
class Exclusion:
    name: str
    reason: str = ""
    defined_at: SourceLocation | None = None


@dataclass(frozen=True)
class ModuleStatement:
    """Module-level code appended to the output (after upstream's `__all__`), under its own banner."""

    code: str
    description: str = ""
    defined_at: SourceLocation | None = None


def location_of_caller(depth: int = 2) -> SourceLocation:
    """The module and line of the code that called the DSL function `depth` frames up."""
    frame = sys._getframe(depth)
    module = frame.f_globals.get("__name__", "<unknown>")
    return SourceLocation(module=module, path=module_path(module, frame.f_code.co_filename), line=frame.f_lineno)


def location_of_object(obj: Any, line_hint: int | None = None) -> SourceLocation:
    """Where a function or class is defined: the line of its `def`/`class` (after decorators).

    Found by location (`patchgen.syntax.definitions`): a function by its code's first line, a class by
    `line_hint`, a line its statement holds (a decorator passes the line it runs on), so a name defined
    twice in one module resolves to the definition that was registered.
    """
    inner = getattr(obj, "fget", None) or getattr(obj, "__func__", None)  # property, staticmethod, classmethod
    obj = inner if inspect.isfunction(inner) else obj
    module = getattr(obj, "__module__", None) or "<unknown>"
    target = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
    filename = getattr(sys.modules.get(module), "__file__", None) or "<unknown>"
    qualname = getattr(target, "__qualname__", None)
    code = getattr(target, "__code__", None)
    node = None
    if filename.endswith(".py") and isinstance(qualname, str) and "<locals>" not in qualname:
        try:
            _, tree = parse_file(filename)
        except (OSError, SyntaxError):
            tree = None
        if tree is not None:
            node, _ = definition_at(
                tree, qualname, code.co_firstlineno if code is not None else line_hint or line_inside(target)
            )
    line = node.lineno if node else (code.co_firstlineno if code is not None else 0)  # a lambda, a nested def
    return SourceLocation(module=module, path=module_path(module, filename), line=line)


def decorator_line(obj: Any, frame: FrameType) -> int | None:
    """The line `frame` (a decorator's caller) runs, as a hint to which definition of `obj` it decorates;
    None when it runs in another file (a config calling `replace_class("X")(module.Fast)`: that line says
    nothing about where in the patch module `Fast` is defined)."""
    module_file = getattr(sys.modules.get(getattr(obj, "__module__", "") or ""), "__file__", None)
    if module_file and os.path.realpath(frame.f_code.co_filename) == os.path.realpath(module_file):
        return frame.f_lineno
    return None


def checked_location(
    obj: Any, kind: PatchKind, expect: Callable[[Any], bool], label: str, line_hint: int | None = None
) -> SourceLocation:
    """Where a decorated patch object is defined, after checking it is the kind of object `kind` needs."""
    where = location_of_object(obj, line_hint)
    if not expect(obj):
        wanted = "a class" if kind is PatchKind.CLASS_REPLACEMENT else "a function"
        raise PatchgenError(f"{where}: {label}: the decorated object ({_kind_of(obj)}) is not {wanted}")
    return where


def _kind_of(obj: Any) -> str:
    """How a message names an object: its type and name, never a repr with a memory address."""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{type(obj).__name__} {name}" if isinstance(name, str) else f"a {type(obj).__name__}"


def module_path(module: str, filename: str) -> str:
    """A stable repo-relative path for a module: its dotted name as a path, never an absolute path."""
    if module in ("<unknown>", "__main__") or not filename.endswith(".py"):
        return filename.rsplit("/", 1)[-1]
    tail = "/__init__.py" if filename.endswith("__init__.py") else ".py"
    return module.replace(".", "/") + tail


@dataclass
class PatchConfig:
    """Everything one generated file is made of: an upstream module and the patches applied to it.

    `model` names the output folder (`generated/<model>/`); by default it is taken from the source
    module (`transformers.models.<model>.modeling_<model>`).

    Composition (README "Composing configs"): `PatchConfig.base(...)` declares a config that is only
    built upon, never generated; `PatchConfig.extend(base, ...)` starts a config from everything a
    base has, in the base's order; `config.use(patch_set, ...)` maps a shared patch set onto upstream
    names. A patch whose target an earlier patch already claims is an error unless it is registered
    with `override=True`, which replaces the earlier one (and is itself an error when nothing is
    overridden).
    """

    source_module: str
    target_file: str
    description: str = ""
    model: str | None = None
    patches: list[Patch] = field(default_factory=list)
    extra_imports: list[ExtraImport] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    statements: list[ModuleStatement] = field(default_factory=list)
    extends: str | None = None  # dotted name of the config module this one was built from
    abstract: bool = False  # a base for other configs: validated through them, never generated itself
    declared_in: str | None = None  # dotted name of the module that created this config

    def __post_init__(self) -> None:
        with checked_arguments(location_of_caller_outside(__name__)):
            arguments.require_name(self.source_module, "source_module", "PatchConfig(...)", dotted=True)
            arguments.require_text(self.target_file, "target_file", "PatchConfig(...)")
            arguments.require_text(self.description, "description", "PatchConfig(...)")
            if self.model is not None:
                arguments.require_name(self.model, "model", "PatchConfig(...)")
        if self.model is None:
            parts = self.source_module.split(".")
            self.model = parts[-2] if len(parts) >= 2 else parts[-1]
        if self.declared_in is None:
            self.declared_in = _first_caller_outside(__name__)
        if self.abstract and not self.target_file:
            return
        if not self.target_file.endswith(".py") or "/" in self.target_file:
            raise PatchgenError(
                f"PatchConfig(target_file={self.target_file!r}): target_file must be a plain file name ending in .py"
            )

    @property
    def variant(self) -> str:
        """`gpu` for `patched_modeling_<model>_gpu.py`; `base` for an abstract config."""
        if self.abstract:
            return "base"
        stem = self.target_file.removesuffix(".py")
        prefix = f"patched_modeling_{self.model}_"
        return stem[len(prefix) :] if stem.startswith(prefix) else stem

    # -- composition --------------------------------------------------------------------------------

    @classmethod
    def base(cls, source_module: str, *, description: str = "", model: str | None = None) -> PatchConfig:
        """A config other configs extend; it has no target file and is not generated on its own."""
        return cls(source_module=source_module, target_file="", description=description, model=model, abstract=True)

    @classmethod
    def extend(
        cls, base: PatchConfig | str, *, target_file: str, description: str = "", model: str | None = None
    ) -> PatchConfig:
        """A config that starts with everything `base` has (patches, imports, exclusions, statements).

        `base` is a `PatchConfig` or the dotted name of the config module that defines it as `config`.
        What the new config adds comes after the base's patches; replacing an inherited patch needs
        `override=True` on the new one.
        """
        where = location_of_caller()
        base_config = _resolve_base(base, where)
        derived = cls(
            source_module=base_config.source_module,
            target_file=target_file,
            description=description,
            model=model or base_config.model,
            extends=base_config.declared_in,
            declared_in=where.module,
        )
        derived.patches = list(base_config.patches)
        derived.extra_imports = list(base_config.extra_imports)
        derived.exclusions = list(base_config.exclusions)
        derived.statements = list(base_config.statements)
        return derived

    def use(
        self,
        patch_set: Any,
        target: str | None = None,
        /,
        *,
        override: bool = False,
        note: str = "",
        bind: dict[str, Any] | None = None,
        **targets: str,
    ) -> None:
        """Apply a shared patch set (`patchgen.dsl.patch_sets.PatchSet`) to upstream names.

        `config.use(LIGER_RMS_NORM, "LlamaRMSNorm")` for a set with one role; for several roles,
        `config.use(SET, attention="LlamaAttention", causal_lm="LlamaForCausalLM")`. Every role of the
        set must be mapped. `note` is added to each patch's description (say what is model-specific).

        `bind` picks the steps a set's code leaves open: `bind={"project_qkv": fused_qkv_projection}` makes
        every call of the placeholder name `project_qkv` in the set's code a call of `fused_qkv_projection`,
        which the output defines (copied from the patch package) or imports (from an installed package).
        """
        where = location_of_caller()
        call = f"use({getattr(patch_set, 'name', describe(patch_set))})"
        with checked_arguments(where):
            if not hasattr(patch_set, "bind") or not hasattr(patch_set, "templates"):
                raise arguments.TypeError_(
                    f"use(...): the first argument must be a PatchSet, got {describe(patch_set)}"
                )
            if target is not None:
                arguments.require_name(target, "the upstream name", call)
            for role, name in targets.items():
                arguments.require_name(name, f"{role}=", call)
            arguments.require_flag(override, "override", call)
            arguments.require_text(note, "note", call)
        bindings = _checked_bindings(bind, where, patch_set)
        bound = patch_set.bind(
            target, targets, applied_at=where, note=note, override=override, bindings=dict(bindings)
        )
        for patch in bound:
            self._add(dataclasses.replace(patch, bindings=bindings) if bindings else patch)
        for imp in patch_set.extra_imports:
            if all(imp.statement != mine.statement for mine in self.extra_imports):
                self.extra_imports.append(imp)
        for statement in patch_set.statements:
            if all(statement.code != mine.code for mine in self.statements):
                self.statements.append(statement)

    # -- decorators ---------------------------------------------------------------------------------

    def replace_class(
        self, target: str, *, description: str = "", override: bool = False, keep_original_as: str | None = None
    ) -> Callable[[T], T]:
        """Replace upstream class `target` by the decorated class, renamed to `target`.

        `keep_original_as="UpstreamNorm"` keeps upstream's class in the output under that name, so the
        patch can use it (import it from upstream in the patch module; the output renames the use).
        """
        return self._register(
            PatchKind.CLASS_REPLACEMENT,
            target,
            description,
            expect=inspect.isclass,
            override=override,
            keep_original_as=keep_original_as,
        )

    def replace_function(
        self, target: str, *, description: str = "", override: bool = False, keep_original_as: str | None = None
    ) -> Callable[[T], T]:
        """Replace module-level function `target` by the decorated function, renamed to `target`.

        `keep_original_as="upstream_scale"` keeps upstream's function under that name for the patch to call.
        """
        return self._register(
            PatchKind.FUNCTION_REPLACEMENT,
            target,
            description,
            expect=inspect.isfunction,
            override=override,
            keep_original_as=keep_original_as,
        )

    def override_method(
        self,
        target: str,
        *,
        description: str = "",
        keep_upstream_decorators: bool = True,
        override: bool = False,
        keep_original_as: str | None = None,
    ) -> Callable[[T], T]:
        """Replace one method, `"Class.method"`, keeping the rest of the class byte for byte.

        The upstream method's decorators are kept unless `keep_upstream_decorators=False`; then the
        decorators written on the patch function are used instead. `keep_original_as="upstream_forward"`
        keeps upstream's method in the class under that name: the patch calls `self.upstream_forward(...)`.
        """
        if not isinstance(target, str) or target.count(".") != 1 or not arguments.is_dotted(target):
            raise PatchgenError(
                f"{location_of_caller()}: override_method({describe(target)}): target must be 'ClassName.method_name'"
            )
        return self._register(
            PatchKind.METHOD_OVERRIDE,
            target,
            description,
            expect=inspect.isfunction,
            keep_upstream_decorators=keep_upstream_decorators,
            override=override,
            keep_original_as=keep_original_as,
        )

    def add_method(self, target: str, *, description: str = "") -> Callable[[T], T]:
        """Add method `"Class.name"`, which upstream's class neither defines nor inherits (for one it has,
        use `override_method`). It goes at the end of the class body, under its own name."""
        if not isinstance(target, str) or target.count(".") != 1 or not arguments.is_dotted(target):
            raise PatchgenError(
                f"{location_of_caller()}: add_method({describe(target)}): target must be 'ClassName.method_name'"
            )
        return self._register(PatchKind.METHOD_ADDITION, target, description, expect=inspect.isfunction)

    def add_code(self, *, after: str, description: str = "") -> Callable[[T], T]:
        """Add the decorated class or function to the output, under its own name, right after `after`:
        `"imports"` (the end of upstream's import block) or an upstream name (e.g. the class it subclasses).
        Its code is copied from the patch module like any patch, comments included."""
        return self._register_code(after, description, block=False)

    def add_block(self, *, after: str, description: str = "") -> Callable[[T], T]:
        """Add the *body* of the decorated function as module-level statements right after `after`
        (`"imports"` or an upstream name): constants, registrations, a group of definitions. The function
        itself (its `def` line and docstring) is not copied; write the block as a function so it is
        linted and keeps its comments."""
        return self._register_code(after, description, block=True)

    def replace_assignment(
        self, target: str, value: Any = _NO_VALUE, *, description: str = "", override: bool = False
    ) -> Callable[[T], T] | None:
        """Replace upstream's module-level assignment to `target`.

        `config.replace_assignment("MAX_LEN", 4096)` writes `MAX_LEN = 4096` (a literal: numbers,
        strings, booleans, None, and tuples/lists/dicts of them). Without a value it is a decorator: the
        body of the decorated function is the new statement(s), which must bind `target`.
        """
        where = location_of_caller()
        call = f"replace_assignment({describe(target)})"
        with checked_arguments(where):
            arguments.require_name(target, "target", call)
            arguments.require_text(description, "description", call)
            arguments.require_flag(override, "override", call)
        if value is _NO_VALUE:
            return self._register(
                PatchKind.ASSIGNMENT_REPLACEMENT, target, description, expect=inspect.isfunction, override=override
            )
        text = repr(value)
        try:
            literal_ok = ast.literal_eval(text) == value
        except (ValueError, SyntaxError, TypeError):
            literal_ok = False
        if not literal_ok:
            raise PatchgenError(
                f"{where}: {call}: the value {describe(value)} is not a Python literal; give the new statement as a "
                "decorated function instead (@config.replace_assignment(...) on def f(): NAME = ...)"
            )
        patch = Patch(PatchKind.ASSIGNMENT_REPLACEMENT, target, description, defined_at=where, value_source=text)
        self._add(dataclasses.replace(patch, override=override), registered_at=where)
        return None

    def modify_init(self, target: str, *, description: str = "", override: bool = False) -> Callable[[T], T]:
        """Add code around the upstream `__init__` of class `target`.

        The decorated function is `def f(original_init, self, <upstream params>)` and calls
        `original_init(self, ...)` exactly once; statements before that call run before the upstream
        body and statements after it run after. The output is one plain `__init__`.
        """
        if isinstance(target, str) and "." in target:
            raise PatchgenError(f"{location_of_caller()}: modify_init({target!r}): target must be a class name")
        return self._register(
            PatchKind.INIT_MODIFICATION, target, description, expect=inspect.isfunction, override=override
        )

    # -- plain registrations ------------------------------------------------------------------------

    def add_import(self, module: str, names: list[str] | tuple[str, ...] = (), alias: str | None = None) -> None:
        """Add `import module [as alias]` or `from module import names` to the output."""
        where = location_of_caller()
        call = f"add_import({describe(module)})"
        with checked_arguments(where):
            arguments.require_name(module, "module", call, dotted=True)
            names = arguments.import_names(names, call)
            if alias is not None:
                arguments.require_name(alias, "alias", call)
        if names and alias:
            raise PatchgenError(f"{where}: add_import({module!r}): give names or alias, not both")
        self.extra_imports.append(ExtraImport(module, tuple(names), alias, where))

    def exclude_from_output(self, *names: str, reason: str = "") -> None:
        """Drop upstream classes or functions (and their `__all__` entries) from the output."""
        where = location_of_caller()
        with checked_arguments(where):
            for name in names:
                arguments.require_name(name, "each name", "exclude_from_output(...)")
            arguments.require_text(reason, "reason", "exclude_from_output(...)")
        self.exclusions.extend(Exclusion(name, reason, where) for name in names)

    def add_statement(self, code: str, *, description: str = "") -> None:
        """Append module-level code to the output (after `__all__`), e.g. a `patchgen.runtime` call that
        registers something with transformers. Import what it uses with `add_import`."""
        where = location_of_caller()
        with checked_arguments(where):
            arguments.require_text(code, "code", "add_statement(...)")
            arguments.require_text(description, "description", "add_statement(...)")
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise PatchgenError(f"{where}: add_statement({code!r}): not valid Python: {exc.msg}") from None
        self.statements.append(ModuleStatement(code.strip() + "\n", description, where))

    def add_patch(self, patch: Patch, *, override: bool = False) -> None:
        """Register a ready-made `Patch` (e.g. from `create_patch_from_external`)."""
        self._add(dataclasses.replace(patch, override=True) if override else patch)

    # -- internals ----------------------------------------------------------------------------------

    def _register(
        self,
        kind: PatchKind,
        target: str,
        description: str,
        *,
        expect: Callable[[Any], bool],
        keep_upstream_decorators: bool = True,
        override: bool = False,
        keep_original_as: str | None = None,
        anchor: str | None = None,
        block: bool = False,
    ) -> Callable[[T], T]:
        call = f"{_DSL_NAMES[kind]}({describe(target)})"
        with checked_arguments(location_of_caller(3)):
            if kind is not PatchKind.MODULE_CODE:
                arguments.require_name(target, "target", call, dotted=kind in METHOD_LEVEL)
            arguments.require_text(description, "description", call)
            arguments.require_flag(override, "override", call)
            arguments.require_flag(keep_upstream_decorators, "keep_upstream_decorators", call)
            if keep_original_as is not None:
                arguments.require_name(keep_original_as, "keep_original_as", call)

        def decorator(obj: T) -> T:
            where = checked_location(
                obj, kind, expect, f"{kind.value} {target}", decorator_line(obj, sys._getframe(1))
            )
            patch = Patch(
                kind=kind,
                target=target if kind is not PatchKind.MODULE_CODE else getattr(obj, "__name__", "code"),
                description=description,
                replacement=obj,
                keep_upstream_decorators=keep_upstream_decorators,
                defined_at=where,
                override=override,
                keep_original_as=keep_original_as,
                anchor=anchor,
                block=block,
            )
            self._add(patch, registered_at=location_of_caller())
            return obj

        return decorator

    def _register_code(self, after: str, description: str, *, block: bool) -> Callable[[T], T]:
        with checked_arguments(location_of_caller(3)):
            arguments.require_name(after, "after", "add_block(...)" if block else "add_code(...)")
        expect = inspect.isfunction if block else (lambda obj: inspect.isclass(obj) or inspect.isfunction(obj))
        return self._register(PatchKind.MODULE_CODE, after, description, expect=expect, anchor=after, block=block)

    def _add(self, patch: Patch, registered_at: SourceLocation | None = None) -> None:
        """Append `patch`, enforcing the composition rule: one patch per target unless `override=True`."""
        where = registered_at or patch.applied_at or patch.defined_at
        earlier = [p for p in self.patches if p.conflicts_with(patch)]
        if patch.override:
            if not earlier:
                raise PatchgenError(
                    f"{where}: {patch.label}: override=True but no earlier patch claims {patch.target}; "
                    "drop override=True"
                )
            self.patches = [p for p in self.patches if all(p is not e for e in earlier)]
            patch = dataclasses.replace(patch, overrides=", ".join(f"{e.label} ({e.defined_at})" for e in earlier))
        elif earlier:
            other = earlier[0]
            raise PatchgenError(
                f"{where}: {patch.label}: {other.label} ({other.defined_at}) already patches this target; "
                "keep only one, or pass override=True to the one that should win"
            )
        self.patches.append(patch)


_DSL_NAMES = {
    PatchKind.METHOD_ADDITION: "add_method",
    PatchKind.MODULE_CODE: "add_code",
    PatchKind.ASSIGNMENT_REPLACEMENT: "replace_assignment",
    PatchKind.CLASS_REPLACEMENT: "replace_class",
    PatchKind.FUNCTION_REPLACEMENT: "replace_function",
    PatchKind.METHOD_OVERRIDE: "override_method",
    PatchKind.INIT_MODIFICATION: "modify_init",
    PatchKind.EXTERNAL_REPLACEMENT: "create_patch_from_external",
}
describe = arguments.describe


@contextlib.contextmanager
def checked_arguments(where: SourceLocation):
    """Turn an argument check's failure into a one-line `PatchgenError` located at the DSL call."""
    try:
        yield
    except arguments.TypeError_ as exc:
        raise PatchgenError(f"{where}: {exc}") from None


def location_of_caller_outside(module: str) -> SourceLocation:
    """The location of the nearest frame not in `module` (where a `PatchConfig(...)` was written)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (module, "dataclasses"):
        frame = frame.f_back
    if frame is None:
        return SourceLocation("<unknown>", "<unknown>", 0)
    name = frame.f_globals.get("__name__", "<unknown>")
    return SourceLocation(name, module_path(name, frame.f_code.co_filename), frame.f_lineno)


def _checked_bindings(bind: Any, where: SourceLocation, patch_set: Any) -> tuple[tuple[str, Any], ...]:
    """`bind` as sorted (placeholder, object) pairs, after checking each is a name and a function or class."""
    if bind is None:
        return ()
    label = f"{where}: use({getattr(patch_set, 'name', patch_set)!r}, bind=...)"
    if not isinstance(bind, dict):
        raise PatchgenError(f"{label}: bind must be a dict of placeholder name -> function or class")
    for name, value in bind.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise PatchgenError(f"{label}: placeholder {name!r} is not a Python name")
        if not (inspect.isfunction(value) or inspect.isclass(value)) or "<locals>" in value.__qualname__:
            raise PatchgenError(
                f"{label}: {name!r} is bound to a {type(value).__name__}; bind a module-level function or class"
            )
    return tuple(sorted(bind.items()))


def _first_caller_outside(module: str) -> str:
    """The module name of the nearest frame not in `module` (who created the config)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == module:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "<unknown>") if frame is not None else "<unknown>"


def _resolve_base(base: PatchConfig | str, where: SourceLocation) -> PatchConfig:
    """The `PatchConfig` that `PatchConfig.extend(base)` starts from, with one-line errors."""
    if isinstance(base, PatchConfig):
        return base
    if not isinstance(base, str):
        raise PatchgenError(f"{where}: PatchConfig.extend({base!r}): give a PatchConfig or a config module name")
    try:
        module = importlib.import_module(base)
    except ModuleNotFoundError as exc:
        if not (exc.name and (base == exc.name or base.startswith(exc.name + "."))):
            raise
        raise PatchgenError(
            f"{where}: PatchConfig.extend({base!r}): no such config module{_suggest_config(base)}; "
            "extend an existing config (python -m patchgen.run_codegen --list shows them)"
        ) from None
    config = getattr(module, "config", None)
    if not isinstance(config, PatchConfig):
        circular = getattr(getattr(module, "__spec__", None), "_initializing", False)
        hint = " yet: the two configs extend each other" if circular else ""
        raise PatchgenError(
            f"{where}: PatchConfig.extend({base!r}): that module defines no PatchConfig 'config'{hint}"
        )
    return config


def _suggest_config(name: str) -> str:
    close = difflib.get_close_matches(name, load_layout(Path.cwd()).config_modules(), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def create_patch_from_external(
    target: str, replacement_module: str, replacement_name: str, *, description: str = ""
) -> Patch:
    """A patch that binds upstream `target` to an object imported from an installed package.

    The output imports `replacement_name` from `replacement_module` and assigns it to `target` where
    the upstream definition was; no source is copied. Append the result to `config.patches`.
    """
    where = location_of_caller()
    call = f"create_patch_from_external({describe(target)})"
    with checked_arguments(where):
        arguments.require_name(target, "target", call)
        arguments.require_name(replacement_module, "replacement_module", call, dotted=True)
        arguments.require_name(replacement_name, "replacement_name", call)
        arguments.require_text(description, "description", call)
    return Patch(
        kind=PatchKind.EXTERNAL_REPLACEMENT,
        target=target,
        description=description or f"use {replacement_module}.{replacement_name}",
        replacement_module=replacement_module,
        replacement_name=replacement_name,
        defined_at=where,
    )
