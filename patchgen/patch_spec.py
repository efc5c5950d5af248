"""The patch-spec DSL: a `PatchConfig` and the decorators that fill it.

This module is pure data. Decorators record a `Patch` and return the decorated object unchanged, so
patch modules stay importable and testable on their own. Nothing here reads upstream source or
produces code; `patchgen.codegen` does that.

    config = PatchConfig(
        source_module="transformers.models.qwen3.modeling_qwen3",
        target_file="patched_modeling_qwen3_gpu.py",
        description="Qwen3 with Liger kernels",
    )

    @config.replace_class("Qwen3RMSNorm", description="pure-torch RMSNorm")
    class FastRMSNorm(nn.Module): ...
"""

from __future__ import annotations

import enum
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from patchgen.errors import PatchgenError


T = TypeVar("T")


class PatchKind(enum.Enum):
    CLASS_REPLACEMENT = "class_replacement"
    FUNCTION_REPLACEMENT = "function_replacement"
    METHOD_OVERRIDE = "method_override"
    INIT_MODIFICATION = "init_modification"
    EXTERNAL_REPLACEMENT = "external_replacement"


# Method names of PatchConfig that register a patch when used as a decorator. The generator drops
# decorators that call one of these (`@config.replace_class(...)`) from the patch source it copies.
REGISTERING_DECORATORS = frozenset({"replace_class", "replace_function", "override_method", "modify_init"})


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
        """How messages and the header name this patch: `method_override Qwen3Attention.forward`."""
        return f"{self.kind.value} {self.target}"


@dataclass(frozen=True)
class ExtraImport:
    module: str
    names: tuple[str, ...] = ()
    alias: str | None = None
    defined_at: SourceLocation | None = None

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


def location_of_caller(depth: int = 2) -> SourceLocation:
    """The module and line of the code that called the DSL function `depth` frames up."""
    frame = sys._getframe(depth)
    module = frame.f_globals.get("__name__", "<unknown>")
    return SourceLocation(module=module, path=module_path(module, frame.f_code.co_filename), line=frame.f_lineno)


def location_of_object(obj: Any) -> SourceLocation:
    """Where a function or class is defined (the line of its `def`/`class`, after decorators)."""
    module = getattr(obj, "__module__", "<unknown>")
    try:
        filename = inspect.getsourcefile(obj) or "<unknown>"
        lines, start = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return SourceLocation(module=module, path=module_path(module, "<unknown>"), line=0)
    offset = next((i for i, text in enumerate(lines) if text.lstrip().startswith(("def ", "class ", "async def "))), 0)
    return SourceLocation(module=module, path=module_path(module, filename), line=start + offset)


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
    """

    source_module: str
    target_file: str
    description: str = ""
    model: str | None = None
    patches: list[Patch] = field(default_factory=list)
    extra_imports: list[ExtraImport] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.model is None:
            parts = self.source_module.split(".")
            self.model = parts[-2] if len(parts) >= 2 else parts[-1]
        if not self.target_file.endswith(".py") or "/" in self.target_file:
            raise PatchgenError(
                f"PatchConfig(target_file={self.target_file!r}): target_file must be a plain file name ending in .py"
            )

    # -- decorators ---------------------------------------------------------------------------------

    def replace_class(self, target: str, *, description: str = "") -> Callable[[T], T]:
        """Replace upstream class `target` by the decorated class, renamed to `target`."""
        return self._register(PatchKind.CLASS_REPLACEMENT, target, description, expect=inspect.isclass)

    def replace_function(self, target: str, *, description: str = "") -> Callable[[T], T]:
        """Replace module-level function `target` by the decorated function, renamed to `target`."""
        return self._register(PatchKind.FUNCTION_REPLACEMENT, target, description, expect=inspect.isfunction)

    def override_method(
        self, target: str, *, description: str = "", keep_upstream_decorators: bool = True
    ) -> Callable[[T], T]:
        """Replace one method, `"Class.method"`, keeping the rest of the class byte for byte.

        The upstream method's decorators are kept unless `keep_upstream_decorators=False`; then the
        decorators written on the patch function are used instead.
        """
        if "." not in target or target.count(".") != 1 or not all(target.split(".")):
            raise PatchgenError(
                f"{location_of_caller()}: override_method({target!r}): target must be 'ClassName.method_name'"
            )
        return self._register(
            PatchKind.METHOD_OVERRIDE,
            target,
            description,
            expect=inspect.isfunction,
            keep_upstream_decorators=keep_upstream_decorators,
        )

    def modify_init(self, target: str, *, description: str = "") -> Callable[[T], T]:
        """Add code around the upstream `__init__` of class `target`.

        The decorated function is `def f(original_init, self, <upstream params>)` and calls
        `original_init(self, ...)` exactly once; statements before that call run before the upstream
        body and statements after it run after. The output is one plain `__init__`.
        """
        if "." in target:
            raise PatchgenError(f"{location_of_caller()}: modify_init({target!r}): target must be a class name")
        return self._register(PatchKind.INIT_MODIFICATION, target, description, expect=inspect.isfunction)

    # -- plain registrations ------------------------------------------------------------------------

    def add_import(self, module: str, names: list[str] | tuple[str, ...] = (), alias: str | None = None) -> None:
        """Add `import module [as alias]` or `from module import names` to the output."""
        if names and alias:
            raise PatchgenError(f"{location_of_caller()}: add_import({module!r}): give names or alias, not both")
        self.extra_imports.append(ExtraImport(module, tuple(names), alias, location_of_caller()))

    def exclude_from_output(self, *names: str, reason: str = "") -> None:
        """Drop upstream classes or functions (and their `__all__` entries) from the output."""
        where = location_of_caller()
        self.exclusions.extend(Exclusion(name, reason, where) for name in names)

    def add_patch(self, patch: Patch) -> None:
        self.patches.append(patch)

    # -- internals ----------------------------------------------------------------------------------

    def _register(
        self,
        kind: PatchKind,
        target: str,
        description: str,
        *,
        expect: Callable[[Any], bool],
        keep_upstream_decorators: bool = True,
    ) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            where = location_of_object(obj)
            if not expect(obj):
                wanted = "a class" if kind is PatchKind.CLASS_REPLACEMENT else "a function"
                raise PatchgenError(f"{where}: {kind.value} {target}: the decorated object {obj!r} is not {wanted}")
            self.patches.append(
                Patch(
                    kind=kind,
                    target=target,
                    description=description,
                    replacement=obj,
                    keep_upstream_decorators=keep_upstream_decorators,
                    defined_at=where,
                )
            )
            return obj

        return decorator


def create_patch_from_external(
    target: str, replacement_module: str, replacement_name: str, *, description: str = ""
) -> Patch:
    """A patch that binds upstream `target` to an object imported from an installed package.

    The output imports `replacement_name` from `replacement_module` and assigns it to `target` where
    the upstream definition was; no source is copied. Append the result to `config.patches`.
    """
    return Patch(
        kind=PatchKind.EXTERNAL_REPLACEMENT,
        target=target,
        description=description or f"use {replacement_module}.{replacement_name}",
        replacement_module=replacement_module,
        replacement_name=replacement_name,
        defined_at=location_of_caller(),
    )
