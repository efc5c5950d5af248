"""Patch sets: patches written once against *roles*, applied to a model by mapping roles to upstream names.

A Liger RMSNorm, a SwiGLU MLP or a Ulysses attention forward is the same for Llama, Qwen2 or
Mistral; only the upstream names differ. A `PatchSet` records such patches against role names
(`"rms_norm"`, `"attention"`), and `PatchConfig.use` binds them to one model's names:

    LIGER_RMS_NORM = PatchSet("liger_rms_norm", "Liger's fused Triton RMSNorm")
    LIGER_RMS_NORM.external("rms_norm", "liger_kernel.transformers.rms_norm", "LigerRMSNorm")

    ULYSSES = PatchSet("ulysses_attention", "Ulysses sequence parallelism")
    ULYSSES.modify_init("attention")(ulysses_attention_init)
    ULYSSES.override_method("attention.forward")(ulysses_attention_forward)

    config.use(LIGER_RMS_NORM, "LlamaRMSNorm")          # one role: the target positionally
    config.use(ULYSSES, attention="LlamaAttention")      # several roles: by keyword

Binding makes ordinary `Patch`es, so everything downstream (validation, banners, diffs) treats them
like patches registered in the config itself; they also carry the set's name and the config line
that applied it, for messages and banners. Like the DSL, this module is pure data.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from patchgen.dsl import arguments
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import (
    ExtraImport,
    ModuleStatement,
    Patch,
    PatchKind,
    SourceLocation,
    checked_arguments,
    checked_location,
    decorator_line,
    describe,
    location_of_caller,
)
from patchgen.dsl.requirements import Requirement


T = TypeVar("T")


@dataclass(frozen=True)
class PatchTemplate:
    """One patch of a set, written against a role: `role` stands for the upstream class or function.

    For a method override `member` is the method name (`"forward"`); the bound target is
    `"<upstream class>.<member>"`.
    """

    role: str
    kind: PatchKind
    description: str
    member: str | None = None
    replacement: Any = None
    replacement_module: str | None = None
    replacement_name: str | None = None
    keep_upstream_decorators: bool = True
    defined_at: SourceLocation | None = None
    keep_original_as: str | None = None


class PatchSet:
    """A named group of patch templates, keyed by role, plus imports/statements the output needs."""

    def __init__(self, name: str, description: str = ""):
        with checked_arguments(location_of_caller()):
            arguments.require_name(name, "name", "PatchSet(...)")
            arguments.require_text(description, "description", f"PatchSet({name!r})")
        self.name = name
        self.description = description
        self.templates: list[PatchTemplate] = []
        self.extra_imports: list[ExtraImport] = []
        self.statements: list[ModuleStatement] = []
        self.requirements: list[Requirement] = []

    def __repr__(self) -> str:
        return f"PatchSet({self.name!r}, roles={list(self.roles)})"

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.role for t in self.templates))

    # -- building a set (same vocabulary as PatchConfig) --------------------------------------------

    def replace_class(self, role: str, *, description: str = "") -> Callable[[T], T]:
        return self._decorator(role, PatchKind.CLASS_REPLACEMENT, description, inspect.isclass)

    def replace_function(self, role: str, *, description: str = "") -> Callable[[T], T]:
        return self._decorator(role, PatchKind.FUNCTION_REPLACEMENT, description, inspect.isfunction)

    def override_method(
        self,
        role_and_method: str,
        *,
        description: str = "",
        keep_upstream_decorators: bool = True,
        keep_original_as: str | None = None,
    ) -> Callable[[T], T]:
        """`"attention.forward"`: replace method `forward` of the class mapped to role `attention`."""
        role, method = self._role_and_method(role_and_method, "override_method")
        return self._decorator(
            role,
            PatchKind.METHOD_OVERRIDE,
            description,
            inspect.isfunction,
            method,
            keep_upstream_decorators,
            keep_original_as,
        )

    def add_method(self, role_and_method: str, *, description: str = "") -> Callable[[T], T]:
        """`"model.get_parallel_plan"`: a new method on the class mapped to role `model`."""
        role, method = self._role_and_method(role_and_method, "add_method")
        return self._decorator(role, PatchKind.METHOD_ADDITION, description, inspect.isfunction, method)

    def _role_and_method(self, role_and_method: str, call: str) -> tuple[str, str]:
        role, _, method = role_and_method.partition(".") if isinstance(role_and_method, str) else ("", "", "")
        if not arguments.is_identifier(role) or not arguments.is_identifier(method):
            raise PatchgenError(
                f"{location_of_caller(3)}: PatchSet {self.name}: {call}({describe(role_and_method)}): "
                "give 'role.method_name'"
            )
        return role, method

    # -- what the set requires of upstream (patchgen.dsl.requirements) ---------------------------------

    def requires_attributes(self, role: str, *names: str, otherwise: str, step: Any = None) -> None:
        """The class mapped to `role` must set `self.<name>` in its `__init__` (or a base's in upstream).

        `step=("project_qkv", separate_qkv_projection)` makes it a requirement of that step only: in force
        when the step fills the placeholder, bound with `use(..., bind=...)` or as the module's default.
        """
        self._require(role, "attributes", names, otherwise, step)

    def requires_same_code(self, role: str, *references: str, otherwise: str, step: Any = None) -> None:
        """Upstream's definition mapped to `role` must compute what one of `references` (dotted names of
        installed definitions) computes: the same code once names, docstrings and annotations are aside."""
        self._require(role, "same_code", references, otherwise, step)

    def requires_pre_norm(self, role: str, *, otherwise: str, step: Any = None) -> None:
        """No output of a module built from the norm class mapped to `role` may be added to another tensor
        (post-norm): for kernels whose backward overwrites the incoming gradient in place."""
        self._require(role, "pre_norm", (), otherwise, step)

    def requires_config(self, role: str, *, otherwise: str, step: Any = None, **supported: Any) -> None:
        """The config values the set's code for `role` supports: `hidden_act=("silu", "swish")`, `mlp_bias=False`.

        Checked at generation against the defaults of upstream's config class, and at construction (the
        generated file calls `patchgen.runtime.config_checks.check_config_values` at the start of `__init__` of
        the class that builds the part). Every `config.<attr>` that upstream's replaced code reads and the
        set's code does not must be declared here, else generation is refused: the set would ignore it.
        """
        where = location_of_caller()
        call = f"PatchSet {self.name}: requires_config({describe(role)})"
        pairs = []
        with checked_arguments(where):
            if not supported:
                raise arguments.TypeError_(f"{call}: give the supported values, e.g. hidden_act=('silu', 'swish')")
            for attribute, values in supported.items():
                values = tuple(values) if isinstance(values, (tuple, list, set, frozenset)) else (values,)
                for value in values:
                    if not (value is None or isinstance(value, (str, int, float, bool))):
                        raise arguments.TypeError_(
                            f"{call}: {attribute}= takes literal values (str, int, float, bool, None), "
                            f"got {describe(value)}"
                        )
                if not values:
                    raise arguments.TypeError_(f"{call}: {attribute}= names no supported value")
                pairs.append((attribute, values))
        self._require(role, "config", tuple(pairs), otherwise, step, where)

    def _require(
        self, role: str, kind: str, values: tuple, otherwise: str, step: Any, where: SourceLocation | None = None
    ) -> None:
        where = where or location_of_caller(3)
        call = f"PatchSet {self.name}: requires_{kind}({describe(role)})"
        with checked_arguments(where):
            arguments.require_name(role, "role", call)
            for value in values if kind != "config" else ():
                arguments.require_name(value, "each name", call, dotted=kind == "same_code")
            arguments.require_text(otherwise, "otherwise", call)
            placeholder, function = step if step is not None else (None, None)
            if step is not None:
                arguments.require_name(placeholder, "step's placeholder", call)
                if not (inspect.isfunction(function) or inspect.isclass(function)):
                    raise arguments.TypeError_(
                        f"{call}: step must be (placeholder, function), got {describe(function)}"
                    )
        self.requirements.append(Requirement(role, kind, tuple(values), otherwise, where, placeholder, function))

    def modify_init(self, role: str, *, description: str = "") -> Callable[[T], T]:
        return self._decorator(role, PatchKind.INIT_MODIFICATION, description, inspect.isfunction)

    def external(self, role: str, module: str, name: str, *, description: str = "") -> None:
        """Bind the upstream definition mapped to `role` to `name` imported from installed `module`."""
        call = f"PatchSet {self.name}: external({describe(role)})"
        with checked_arguments(location_of_caller()):
            arguments.require_name(role, "role", call)
            arguments.require_name(module, "module", call, dotted=True)
            arguments.require_name(name, "name", call)
            arguments.require_text(description, "description", call)
        self._append(
            PatchTemplate(
                role=role,
                kind=PatchKind.EXTERNAL_REPLACEMENT,
                description=description or f"use {module}.{name}",
                replacement_module=module,
                replacement_name=name,
                defined_at=location_of_caller(),
            )
        )

    def add_import(self, module: str, names: list[str] | tuple[str, ...] = ()) -> None:
        where = location_of_caller()
        call = f"PatchSet {self.name}: add_import({describe(module)})"
        with checked_arguments(where):
            arguments.require_name(module, "module", call, dotted=True)
            names = arguments.import_names(names, call)
        self.extra_imports.append(ExtraImport(module, tuple(names), None, where))

    def add_statement(self, code: str, *, description: str = "") -> None:
        where = location_of_caller()
        with checked_arguments(where):
            arguments.require_text(code, "code", f"PatchSet {self.name}: add_statement(...)")
            arguments.require_text(description, "description", f"PatchSet {self.name}: add_statement(...)")
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise PatchgenError(f"{where}: PatchSet {self.name}: add_statement: not valid Python: {exc.msg}") from None
        self.statements.append(ModuleStatement(code.strip() + "\n", description, where))

    # -- binding ------------------------------------------------------------------------------------

    def bind(
        self,
        target: str | None,
        targets: dict[str, str],
        *,
        applied_at: SourceLocation,
        note: str = "",
        override: bool = False,
        bindings: dict[str, Any] | None = None,
    ) -> list[Patch]:
        """The set's patches with roles replaced by upstream names; every role must be mapped.

        Each patch carries the requirements of its role in force for these `bindings` (see `_require`).
        """
        mapping = self._mapping(target, targets, applied_at)
        bindings = bindings or {}
        defaults: dict[str, Any] = {}
        for template in self.templates:  # a placeholder's default: its value in the module of the set's code
            if template.replacement is not None:
                home = sys.modules.get(getattr(template.replacement, "__module__", ""), None)
                defaults.update({k: v for k, v in vars(home or object()).items() if k not in defaults})
        patches = []
        for template in self.templates:
            upstream = mapping[template.role]
            if template.kind in (PatchKind.METHOD_OVERRIDE, PatchKind.METHOD_ADDITION):
                upstream = f"{upstream}.{template.member}"
            description = template.description + (f" [{note}]" if note else "")
            patches.append(
                Patch(
                    kind=template.kind,
                    target=upstream,
                    description=description,
                    replacement=template.replacement,
                    replacement_module=template.replacement_module,
                    replacement_name=template.replacement_name,
                    keep_upstream_decorators=template.keep_upstream_decorators,
                    defined_at=template.defined_at,
                    override=override,
                    keep_original_as=template.keep_original_as,
                    requirements=tuple(
                        r for r in self.requirements if r.role == template.role and r.applies(bindings, defaults)
                    ),
                    patch_set=f"{self.name}.{template.role}",
                    applied_at=applied_at,
                )
            )
        return patches

    def _mapping(self, target: str | None, targets: dict[str, str], where: SourceLocation) -> dict[str, str]:
        roles = self.roles
        if not roles:
            raise PatchgenError(f"{where}: use({self.name}): the patch set has no patches")
        if target is not None:
            if targets or len(roles) != 1:
                raise PatchgenError(
                    f"{where}: use({self.name}, {target!r}): the set has roles {', '.join(roles)}; "
                    "map each by keyword, e.g. " + ", ".join(f"{r}='...'" for r in roles)
                )
            return {roles[0]: target}
        unknown = [r for r in targets if r not in roles]
        if unknown:
            close = difflib.get_close_matches(unknown[0], roles, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PatchgenError(
                f"{where}: use({self.name}): unknown role {unknown[0]!r}{hint}; its roles are {', '.join(roles)}"
            )
        missing = [r for r in roles if r not in targets]
        if missing:
            raise PatchgenError(
                f"{where}: use({self.name}): no upstream name for role(s) {', '.join(missing)}; map every role "
                "(a set is applied whole; use a smaller set to leave a part out)"
            )
        return dict(targets)

    # -- internals ----------------------------------------------------------------------------------

    def _decorator(
        self,
        role: str,
        kind: PatchKind,
        description: str,
        expect: Callable[[Any], bool],
        member: str | None = None,
        keep_upstream_decorators: bool = True,
        keep_original_as: str | None = None,
    ) -> Callable[[T], T]:
        with checked_arguments(location_of_caller(3)):
            arguments.require_name(role, "role", f"PatchSet {self.name}: {kind.value}")
            arguments.require_text(description, "description", f"PatchSet {self.name}: {kind.value} {role}")

        def decorator(obj: T) -> T:
            label = f"PatchSet {self.name}: {kind.value} {role}"
            where = checked_location(obj, kind, expect, label, decorator_line(obj, sys._getframe(1)))
            self._append(
                PatchTemplate(
                    role=role,
                    kind=kind,
                    description=description,
                    member=member,
                    replacement=obj,
                    keep_upstream_decorators=keep_upstream_decorators,
                    defined_at=where,
                    keep_original_as=keep_original_as,
                )
            )
            return obj

        return decorator

    def _append(self, template: PatchTemplate) -> None:
        for other in self.templates:
            if other.role == template.role and _template_conflict(other, template):
                raise PatchgenError(
                    f"{template.defined_at}: PatchSet {self.name}: role {template.role!r} is already patched by "
                    f"{other.kind.value} ({other.defined_at}); a set patches each part once"
                )
        self.templates.append(template)


def _template_conflict(a: PatchTemplate, b: PatchTemplate) -> bool:
    """Bound to the same upstream name, would these two patches claim the same target?"""
    placeholder = "_"

    def as_patch(t: PatchTemplate) -> Patch:
        target = f"{placeholder}.{t.member}" if t.member else placeholder
        return Patch(kind=t.kind, target=target, description="")

    return as_patch(a).conflicts_with(as_patch(b))


def combine(name: str, *sets: PatchSet, description: str = "") -> PatchSet:
    """One set made of several, e.g. all Liger kernels of a Llama-style model; role names must not clash."""
    combined = PatchSet(name, description or " + ".join(s.name for s in sets))
    for patch_set in sets:
        clash = set(patch_set.roles) & set(combined.roles)
        if clash:
            raise PatchgenError(
                f"{location_of_caller()}: combine({name}): role {sorted(clash)[0]!r} is in more than one set"
            )
        combined.templates.extend(patch_set.templates)
        combined.extra_imports.extend(patch_set.extra_imports)
        combined.statements.extend(patch_set.statements)
        combined.requirements.extend(patch_set.requirements)
    return combined


__all__ = ["PatchSet", "PatchTemplate", "combine"]
