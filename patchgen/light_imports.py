"""Load configs without importing torch, transformers or Liger: a fast path with a safe fallback.

Generating a file needs the *text* of upstream and of the patches, not their objects, yet patch
modules import torch and transformers at the top (about 6 s on two cores, most of a check). While
the CLIs load configs and generate, `run_light` replaces the heavy packages (`HEAVY_PACKAGES`) by
stubs: `import torch` succeeds when torch is installed (a missing package still raises
`ModuleNotFoundError`), but gives a module whose attributes are placeholders. Classes can subclass a
placeholder (`class X(nn.Module)`), decorators pass the function through, annotations evaluate.

Correctness never depends on the stubs: any attempt to *use* a placeholder as a value (`bool`,
`str`, comparisons, iteration, ...), any question about a real upstream object (identity of a name,
an inherited method; see `guard_upstream_module`), and any error at all makes `run_light` throw the
stubbed modules away and run the same work again with real imports. So the light path either gives
exactly what the real path gives, or the real path runs. `PATCHGEN_REAL_IMPORTS=1` forces the real
path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
import types
from collections.abc import Callable
from typing import Any, TypeVar


R = TypeVar("R")

HEAVY_PACKAGES = frozenset(
    {
        "torch",
        "transformers",
        "liger_kernel",
        "triton",
        "flash_attn",
        "safetensors",
        "accelerate",
        "peft",
        "numpy",
        "huggingface_hub",
        "tokenizers",
        "einops",
        "deepspeed",
        "kernels",
    }
)
FORCE_REAL_ENV = "PATCHGEN_REAL_IMPORTS"


class NeedsRealImport(Exception):
    """A stub was asked for something only the real object knows; the caller reruns with real imports."""


# -- placeholders ---------------------------------------------------------------------------------


def _needs_real(what: str) -> Callable[..., Any]:
    def method(self, *args, **kwargs):
        raise NeedsRealImport(f"{what} of {object.__getattribute__(self, '_origin')}")

    return method


class StubObject:
    """Any attribute of a stubbed module: `torch.nn.Module`, `torch.float32`, `ACT2FN["silu"]`, ..."""

    __slots__ = ("_origin", "_children")

    def __init__(self, origin: str):
        object.__setattr__(self, "_origin", origin)
        object.__setattr__(self, "_children", {})

    def __getattr__(self, name: str) -> StubObject:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # protocol probes (`__wrapped__`, `__signature__`, ...) find nothing
        children = object.__getattribute__(self, "_children")
        if name not in children:
            children[name] = StubObject(f"{object.__getattribute__(self, '_origin')}.{name}")
        return children[name]

    def __call__(self, *args, **kwargs):
        # `@torch.no_grad()`, `@use_kernel_forward_from_hub("RMSNorm")`: a decorator returns what it decorates
        if len(args) == 1 and not kwargs and (inspect.isfunction(args[0]) or inspect.isclass(args[0])):
            return args[0]
        return StubObject(f"{object.__getattribute__(self, '_origin')}(...)")

    def __getitem__(self, key) -> StubObject:  # `Unpack[TransformersKwargs]`, `ACT2FN["silu"]`
        return StubObject(f"{object.__getattribute__(self, '_origin')}[...]")

    def __or__(self, other) -> StubObject:  # `torch.Tensor | None` in an evaluated annotation
        return StubObject(f"{object.__getattribute__(self, '_origin')} | ...")

    __ror__ = __or__

    def __mro_entries__(self, bases) -> tuple[type, ...]:  # `class TorchRMSNorm(nn.Module)`
        return (_stub_base(object.__getattribute__(self, "_origin")),)

    def __repr__(self) -> str:
        return f"<stub {object.__getattribute__(self, '_origin')}>"

    __bool__ = _needs_real("truth value")
    __str__ = _needs_real("str()")
    __format__ = _needs_real("format()")
    __iter__ = _needs_real("iteration")
    __len__ = _needs_real("len()")
    __contains__ = _needs_real("'in'")
    __index__ = _needs_real("use as an integer")
    __int__ = _needs_real("int()")
    __float__ = _needs_real("float()")
    __lt__ = _needs_real("comparison")
    __le__ = _needs_real("comparison")
    __gt__ = _needs_real("comparison")
    __ge__ = _needs_real("comparison")
    __setattr__ = _needs_real("attribute assignment")
    __instancecheck__ = _needs_real("isinstance()")


_BASES: dict[str, type] = {}


def _stub_base(origin: str) -> type:
    """A real, empty class standing in for a stubbed base class (one per name, so MROs stay valid)."""
    if origin not in _BASES:
        module, _, name = origin.rpartition(".")
        _BASES[origin] = type(name or origin, (), {"__module__": module or origin, "__patchgen_stub__": origin})
    return _BASES[origin]


class StubModule(types.ModuleType):
    """A stubbed module: real name, spec and package path (so submodules resolve), placeholder attributes."""

    def __getattr__(self, name: str) -> StubObject:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = StubObject(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> StubModule:
        return StubModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # nothing runs: that is the point


class _StubFinder(importlib.abc.MetaPathFinder):
    """Finds heavy modules where they are installed (so missing ones still fail) and stubs them."""

    def __init__(self, packages: frozenset[str]):
        self.packages = packages

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in self.packages:
            return None
        real = importlib.machinery.PathFinder.find_spec(fullname, path)
        if real is None:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, _StubLoader(), origin=real.origin, is_package=real.submodule_search_locations is not None
        )
        if real.submodule_search_locations is not None:
            spec.submodule_search_locations = list(real.submodule_search_locations)
        spec.has_location = real.has_location
        return spec


# -- upstream objects are never stubbed quietly ---------------------------------------------------


class _RealNamespaceRequired:
    """`vars()` of a guarded module: reading any entry needs the real module."""

    def __init__(self, module_name: str):
        self._module_name = module_name

    def _fail(self, *args, **kwargs):
        raise NeedsRealImport(f"the namespace of {self._module_name}")

    get = __getitem__ = __contains__ = __iter__ = keys = items = values = _fail


class _RealModuleRequired:
    """Stands in for a stubbed upstream module: every question about its objects needs the real one."""

    def __init__(self, module_name: str):
        object.__setattr__(self, "_module_name", module_name)

    @property
    def __dict__(self):  # what `vars(module)` reads
        return _RealNamespaceRequired(object.__getattribute__(self, "_module_name"))

    def __getattr__(self, name: str):
        raise NeedsRealImport(f"{object.__getattribute__(self, '_module_name')}.{name}")


def guard_upstream_module(module: Any) -> Any:
    """`module`, or for a stubbed module an object that raises `NeedsRealImport` on any use."""
    return _RealModuleRequired(module.__name__) if isinstance(module, StubModule) else module


def is_stub(value: Any) -> bool:
    return isinstance(value, (StubObject, StubModule))


# -- running work on the light path, with the real path as fallback ------------------------------


def run_light(work: Callable[[], R], *, succeeded: Callable[[R], bool]) -> tuple[R, str]:
    """Run `work()` with heavy packages stubbed; rerun it with real imports unless it succeeded there.

    `work` must have no side effects (it loads and generates; the caller writes). Returns the result
    and the path that produced it, `"light"` or `"real"`.
    """
    if os.environ.get(FORCE_REAL_ENV) or any(
        name in sys.modules and not isinstance(sys.modules[name], StubModule) for name in HEAVY_PACKAGES
    ):
        return work(), "real"  # forced, or already imported for real (e.g. in a test process)
    before = set(sys.modules)
    finder = _StubFinder(HEAVY_PACKAGES)
    sys.meta_path.insert(0, finder)
    try:
        result = work()
        if succeeded(result):
            return result, "light"
    except Exception:  # noqa: BLE001 - any failure on the light path is decided by the real path
        pass
    finally:
        sys.meta_path.remove(finder)
    for name in set(sys.modules) - before:  # everything imported against stubs is thrown away
        del sys.modules[name]
    importlib.invalidate_caches()
    return work(), "real"
