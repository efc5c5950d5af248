"""The differential oracle: a config's patches applied at run time to a fresh copy of upstream, compared
with the generated file.

Applying a patch at run time is what the generated file must be equivalent to:
- a class or function replacement, or an external one: `setattr(module, target, replacement)`;
- a method override: `setattr(cls, method, replacement)`, wrapped in upstream's own decorators of that
  method when the patch keeps them (evaluated in the module, as the output does);
- `modify_init`: `cls.__init__ = lambda self, *a, **k: patch(original_init, self, *a, **k)`, where
  `original_init` is the class's own `__init__` or, without one, the inherited one;
- a set's placeholder bound with `bind=`: the patch's code runs with the bound object under that name;
- an exclusion: `delattr(module, name)`; `add_statement`: executed in the module's namespace;
- `add_method` / `add_code`: `setattr` of the object; `add_block` and a block `replace_assignment`: the
  block function's body run with the patch module's and upstream's names, what it binds set on the
  module; a literal `replace_assignment`: `setattr`; `keep_original_as`: the original set under that name.
Upstream's own code looks its globals up in the module, so it calls the patched objects, as the output
does. Behaviour is compared as plain data: return values, `vars(obj)` after construction, and the
type and message of any exception.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import itertools
import sys
import textwrap
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from patchgen.commands.codegen import generate
from patchgen.dsl.patch_spec import PatchConfig, PatchKind
from patchgen.load.discovery import LoadedConfig


_COUNTER = itertools.count()


def fresh_upstream(module_name: str) -> ModuleType:
    """A new, unshared copy of an upstream module (its relative imports resolve as the original's)."""
    spec = importlib.util.find_spec(module_name)
    copy_name = f"{module_name}__oracle{next(_COUNTER)}"
    copy_spec = importlib.util.spec_from_file_location(copy_name, spec.origin)
    module = importlib.util.module_from_spec(copy_spec)
    module.__package__ = module_name if spec.submodule_search_locations is not None else module_name.rpartition(".")[0]
    sys.modules[copy_name] = module
    copy_spec.loader.exec_module(module)
    return module


def _upstream_decorators(module: ModuleType, class_name: str, method: str) -> list[str]:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            methods = [
                i for i in node.body if isinstance(i, (ast.FunctionDef, ast.AsyncFunctionDef)) and i.name == method
            ]
            if methods:  # the last definition is the one in force (earlier ones may be @overload stubs)
                return [ast.unparse(d) for d in methods[-1].decorator_list]
    return []


def _init_wrapper(patch_function, original_init):
    def __init__(self, *args, **kwargs):
        patch_function(original_init, self, *args, **kwargs)

    return __init__


def _inherited_init(cls):
    def original_init(self, *args, **kwargs):
        super(cls, self).__init__(*args, **kwargs)

    return original_init


def _run_block(function, module: ModuleType) -> None:
    """Run a block function's body as module-level code: in the patch module's names, results into `module`."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    patch_module = sys.modules[function.__module__]
    namespace = {**vars(patch_module), **vars(module)}
    before = dict(namespace)
    exec(compile(ast.Module(body=body, type_ignores=[]), "<block>", "exec"), namespace)  # noqa: S102
    for name, value in namespace.items():
        if name not in before or before[name] is not value:
            setattr(module, name, value)
    # the added names are globals of the patch module's functions too (e.g. a class reading SCALE_FACTOR)
    for name in namespace.keys() - before.keys():
        setattr(patch_module, name, namespace[name])


def _point_patch_modules_at_copy(config: PatchConfig, module: ModuleType, undo: list) -> None:
    """Patch modules import upstream's objects (`from up import Block`, `from up import fact as upstream_fact`)
    from the real upstream module, which the oracle leaves alone; applied at run time they are the patched
    module's. So each such name of a patch module reads the copy's object of the same name until `undo` runs
    (a kept recursive original then calls the patch, as it does at run time)."""
    real = importlib.import_module(config.source_module)
    names_of = {id(value): name for name, value in vars(real).items()}
    patch_modules = {sys.modules.get(getattr(p.replacement, "__module__", None) or "") for p in config.patches}
    for patch_module in patch_modules - {None}:
        for name, value in list(vars(patch_module).items()):
            upstream_name = names_of.get(id(value))
            if upstream_name is not None and not upstream_name.startswith("__") and hasattr(module, upstream_name):
                undo.append((patch_module, name, value))
                setattr(patch_module, name, getattr(module, upstream_name))


def _bound(replacement, bindings: tuple[tuple[str, Any], ...]):
    """A set's function with its placeholders bound (`bind={"combine": twice_then_add}`): the same code
    reading the bound objects under the placeholders' names (methods of a class are rebound alike)."""
    if not bindings:
        return replacement
    if isinstance(replacement, type):
        methods = {n: _bound(v, bindings) for n, v in vars(replacement).items() if isinstance(v, FunctionType)}
        return type(replacement.__name__, (replacement,), methods)
    function = FunctionType(
        replacement.__code__,
        {**replacement.__globals__, **dict(bindings)},
        replacement.__name__,
        replacement.__defaults__,
        replacement.__closure__,
    )
    function.__kwdefaults__, function.__qualname__ = replacement.__kwdefaults__, replacement.__qualname__
    return function


def apply_at_run_time(config: PatchConfig, undo: list | None = None) -> ModuleType:
    """The config's patches applied to a fresh upstream module, the way a monkey patch would. Changes made
    to patch modules are appended to `undo` as (module, name, old value)."""
    undo = [] if undo is None else undo
    module = fresh_upstream(config.source_module)
    _point_patch_modules_at_copy(config, module, undo)
    for patch in config.patches:
        patch = dataclasses.replace(patch, replacement=_bound(patch.replacement, patch.bindings))
        if patch.keep_original_as and patch.kind is PatchKind.METHOD_OVERRIDE:
            cls = getattr(module, patch.target_class)
            setattr(cls, patch.keep_original_as, cls.__dict__[patch.method_name])
        elif patch.keep_original_as:
            setattr(module, patch.keep_original_as, getattr(module, patch.target))
        if patch.kind in (PatchKind.CLASS_REPLACEMENT, PatchKind.FUNCTION_REPLACEMENT):
            setattr(module, patch.target, patch.replacement)
        elif patch.kind is PatchKind.METHOD_ADDITION:
            setattr(getattr(module, patch.target_class), patch.method_name, patch.replacement)
        elif patch.kind is PatchKind.MODULE_CODE and not patch.block:
            setattr(module, patch.replacement.__name__, patch.replacement)
        elif patch.kind is PatchKind.MODULE_CODE or (
            patch.kind is PatchKind.ASSIGNMENT_REPLACEMENT and patch.value_source is None
        ):
            _run_block(patch.replacement, module)
        elif patch.kind is PatchKind.ASSIGNMENT_REPLACEMENT:
            setattr(module, patch.target, ast.literal_eval(patch.value_source))
        elif patch.kind is PatchKind.EXTERNAL_REPLACEMENT:
            replacement = getattr(importlib.import_module(patch.replacement_module), patch.replacement_name)
            setattr(module, patch.target, replacement)
        elif patch.kind is PatchKind.METHOD_OVERRIDE:
            cls = getattr(module, patch.target_class)
            function = patch.replacement
            if patch.keep_upstream_decorators:
                for decorator in reversed(_upstream_decorators(module, patch.target_class, patch.method_name)):
                    function = eval(decorator, vars(module))(function)  # noqa: S307 - upstream's own text
            setattr(cls, patch.method_name, function)
        elif patch.kind is PatchKind.INIT_MODIFICATION:
            cls = getattr(module, patch.target_class)
            original = cls.__dict__.get("__init__") or _inherited_init(cls)
            cls.__init__ = _init_wrapper(patch.replacement, original)
    for exclusion in config.exclusions:
        delattr(module, exclusion.name)
    for statement in config.statements:
        exec(statement.code, vars(module))  # noqa: S102 - the config's own statement
    return module


def generate_module(config: PatchConfig, config_module: str, folder: Path) -> tuple[str, ModuleType]:
    """Generate `config` into `folder` and import the file; raise AssertionError with the error if refused."""
    (result,) = generate([LoadedConfig(config_module, config)], output_dir=folder, with_diff=False)
    if result.error:
        raise AssertionError(result.error)
    output = result.module_output
    path = folder / output.path.name
    path.write_text(output.text, encoding="utf-8")
    name = f"oracle_generated_{next(_COUNTER)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return output.text, module


def plain(value: Any, depth: int = 0) -> Any:
    """Behaviour as plain data: containers element-wise, objects by their attributes, never by identity."""
    if depth > 6:
        return "..."
    if isinstance(value, (int, float, str, bytes, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [plain(v, depth + 1) for v in value]]
    if isinstance(value, dict):
        return {"dict": sorted((repr(k), plain(v, depth + 1)) for k, v in value.items())}
    if callable(value) and hasattr(value, "__name__"):
        return f"<callable {value.__name__}>"
    if hasattr(value, "__dict__"):
        return {"vars": plain(vars(value), depth + 1)}
    return repr(value)


def behaviour(module: ModuleType, scenario) -> tuple:
    try:
        return ("returned", plain(scenario(module)))
    except Exception as exc:  # noqa: BLE001 - the exception is the behaviour being compared
        return ("raised", type(exc).__name__, str(exc))


def compare(config: PatchConfig, config_module: str, scenarios: dict, folder: Path) -> str:
    """Assert every scenario behaves the same on the generated file and at run time; return the output."""
    text, generated = generate_module(config, config_module, folder)
    undo = []
    patched = apply_at_run_time(config, undo)
    try:
        for name, scenario in scenarios.items():
            ours, theirs = behaviour(generated, scenario), behaviour(patched, scenario)
            assert ours == theirs, f"{name}: generated file {ours} != patches applied at run time {theirs}"
    finally:
        for patch_module, name, value in reversed(undo):
            setattr(patch_module, name, value)
    return text
