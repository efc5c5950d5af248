"""What a patch set requires of the upstream code it is applied to, checked on upstream's syntax tree.

A shared set is written against one shape of model. Applied to another shape it can generate
cleanly and then crash (a Ulysses forward reading `self.q_proj` on a model with a fused `qkv_proj`)
or, worse, train wrongly (an in-place norm kernel on a post-norm layout). A set declares what it
assumes, and the generator refuses a config whose upstream does not fit, in one line naming the
requirement, the upstream place and the set that fits instead:

    LIGER_RMS_NORM.requires_pre_norm("rms_norm", otherwise="LIGER_RMS_NORM_OUT_OF_PLACE")
    ULYSSES.requires_attributes("attention", "q_proj", "k_proj", "v_proj", otherwise="bind project_qkv=...")
    LIGER_ROPE.requires_same_code("rope", "transformers.models.llama.modeling_llama.apply_rotary_pos_emb")

Independently of any declaration, every class replacement is checked against upstream's call sites
of the class (`constructor_problems`): a replacement whose `__init__` cannot take the arguments
upstream passes (`Olmo2RMSNorm(config.hidden_size, eps=...)`) is refused at generation, not at build.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

from patchgen.dsl import config_values
from patchgen.dsl.patch_spec import SourceLocation
from patchgen.syntax.source_text import SourceText, parse_text, read_source


@dataclass(frozen=True)
class Requirement:
    """One assumption of a patch set about the upstream definition mapped to `role`."""

    role: str
    kind: str  # "attributes" | "same_code" | "pre_norm" | "config"
    # names; for "config", (attribute, supported values) pairs
    values: tuple[Any, ...]
    otherwise: str  # what to use instead when upstream does not fit
    defined_at: SourceLocation | None = None
    # A requirement of one step a set's code leaves open (`bind=`): it applies only when that step fills
    # the placeholder, bound by the config or as the patch module's default.
    placeholder: str | None = None
    step: Any = None

    def describe(self) -> str:
        if self.kind == "attributes":
            text = f"requires_attributes({self.role!r}, {', '.join(map(repr, self.values))})"
        elif self.kind == "same_code":
            text = f"requires_same_code({self.role!r}, ...)"
        elif self.kind == "config":
            text = f"requires_config({self.role!r}, {supported_text(self.values)})"
        else:
            text = f"requires_pre_norm({self.role!r})"
        if self.step is not None:
            text += f" of step {self.placeholder}={self.step.__name__}"
        return text

    def applies(self, bindings: dict[str, Any], defaults: dict[str, Any]) -> bool:
        """Whether this requirement is in force for a use of the set with these bindings."""
        if self.step is None:
            return True
        return bindings.get(self.placeholder, defaults.get(self.placeholder)) is self.step


def supported_text(pairs: tuple[Any, ...]) -> str:
    """`hidden_act=('silu', 'swish'), mlp_bias=(False,)`: a config requirement's values as they are declared."""
    return ", ".join(f"{attribute}={values!r}" for attribute, values in pairs)


def check(requirement: Requirement, upstream: Any, target: str) -> str | None:
    """Why upstream's `target` does not meet the requirement (None when it does)."""
    node = upstream.definitions.get(target.split(".", 1)[0])
    if node is None:
        return None  # a missing target is reported by its planner, with suggestions
    if requirement.kind == "attributes":
        return _missing_attributes(upstream, node, requirement.values)
    if requirement.kind == "same_code":
        return _differs_from_references(upstream, node, requirement.values)
    if requirement.kind == "config":
        return config_values.default_problem(upstream, node, requirement.values)
    return _post_norm_use(upstream, node)


# -- attributes -------------------------------------------------------------------------------------


def instance_attributes(upstream: Any, cls: ast.ClassDef) -> dict[str, int]:
    """`self.<name>` assigned in the `__init__` of the class or of its bases in the same module -> line."""
    found: dict[str, int] = {}
    seen: set[str] = set()
    queue = [cls]
    while queue:
        current = queue.pop(0)
        if current.name in seen:
            continue
        seen.add(current.name)
        for item in current.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                for node in ast.walk(item):
                    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                    for target in targets:
                        if (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                        ):
                            found.setdefault(target.attr, target.lineno)
        for base in current.bases:
            parent = upstream.definitions.get(base.id) if isinstance(base, ast.Name) else None
            if isinstance(parent, ast.ClassDef):
                queue.append(parent)
    return found


def _missing_attributes(upstream: Any, node: ast.stmt, needed: tuple[str, ...]) -> str | None:
    if not isinstance(node, ast.ClassDef):
        return f"{node.name} is not a class"
    have = instance_attributes(upstream, node)
    missing = [name for name in needed if name not in have]
    if not missing:
        return None
    close = sorted({c for name in missing for c in difflib.get_close_matches(name, list(have), n=2, cutoff=0.6)})
    hint = f" (it has {', '.join('self.' + c for c in close)})" if close else ""
    return f"{node.name}.__init__ (line {node.lineno}) defines no {', '.join('self.' + m for m in missing)}{hint}"


# -- same code --------------------------------------------------------------------------------------


def normalised(node: ast.stmt) -> str:
    """A definition's code with its own name, docstrings and annotations taken out: what it computes."""
    tree = ast.parse(ast.unparse(node))
    definition = tree.body[0]
    own = definition.name
    for item in ast.walk(tree):
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if item.body and isinstance(item.body[0], ast.Expr) and isinstance(item.body[0].value, ast.Constant):
                item.body = item.body[1:] or [ast.Pass()]
            if not isinstance(item, ast.ClassDef):
                item.returns = None
                for argument in [*item.args.posonlyargs, *item.args.args, *item.args.kwonlyargs]:
                    argument.annotation = None
        if isinstance(item, ast.Name) and item.id == own:
            item.id = "_SELF_"
    definition.name = "_SELF_"
    return ast.unparse(tree)


def _reference_definition(dotted: str) -> ast.stmt | None:
    module_name, _, name = dotted.rpartition(".")
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return None
    tree = parse_text(read_source(spec.origin))
    return next((n for n in tree.body if getattr(n, "name", None) == name), None)


def _differs_from_references(upstream: Any, node: ast.stmt, references: tuple[str, ...]) -> str | None:
    ours = normalised(node)
    first_difference = None
    for dotted in references:
        reference = _reference_definition(dotted)
        if reference is None:
            return f"the reference {dotted} of this requirement does not exist in the installed packages"
        theirs = normalised(reference)
        if ours == theirs:
            return None
        if first_difference is None:
            diff = [
                line[1:].strip()
                for line in difflib.unified_diff(theirs.splitlines(), ours.splitlines(), lineterm="", n=0)
                if line.startswith("+") and not line.startswith("+++")
            ]
            first_difference = (dotted, diff[0] if diff else "")
    dotted, line = first_difference
    return (
        f"upstream {node.name} (line {node.lineno}) is not the code this set stands in for ({dotted}); "
        f"it differs at `{line}`"
    )


# -- pre-norm ---------------------------------------------------------------------------------------


def _post_norm_use(upstream: Any, norm: ast.stmt) -> str | None:
    """Where an output of a module built from the norm class is added to something (a residual).

    An in-place norm backward overwrites the gradient it receives. In a pre-norm layer the norm's
    output feeds a projection, whose backward makes a fresh gradient; added to the residual
    (post-norm, `hidden = residual + norm(attn(x))`), that gradient is also the residual's, and
    overwriting it corrupts both. Data flow is followed through plain assignments in each method.
    """
    for cls in (n for n in upstream.tree.body if isinstance(n, ast.ClassDef)):
        attributes = _attributes_built_from(cls, norm.name)
        if not attributes:
            continue
        for method in (n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            found = _added_norm_output(method, attributes)
            if found is not None:
                line, attribute = found
                return (
                    f"{cls.name}.{method.name} (line {line}) adds the output of self.{attribute} (a {norm.name}) "
                    "to another tensor: a post-norm layout, where an in-place norm backward corrupts the gradient"
                )
    return None


def _attributes_built_from(cls: ast.ClassDef, class_name: str) -> set[str]:
    names = set()
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == class_name
        ):
            for target in node.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    names.add(target.attr)
    return names


def _norm_call(node: ast.expr, attributes: set[str]) -> str | None:
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        and node.func.attr in attributes
    ):
        return node.func.attr
    return None


def _added_norm_output(method: ast.FunctionDef, attributes: set[str]) -> tuple[int, str] | None:
    holding: dict[str, str] = {}  # local name -> norm attribute whose output it holds
    for statement in _statements_in_order(method.body):
        for node in ast.walk(statement):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                for operand in (node.left, node.right):
                    attribute = _norm_call(operand, attributes)
                    if attribute is None and isinstance(operand, ast.Name):
                        attribute = holding.get(operand.id)
                    if attribute is not None:
                        return node.lineno, attribute
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            value = statement.value
            source = _norm_call(value, attributes) if value is not None else None
            if source is None and isinstance(value, ast.Name):
                source = holding.get(value.id)
            for target in targets:
                for name in (n.id for n in ast.walk(target) if isinstance(n, ast.Name)):
                    if source is not None and isinstance(target, ast.Name):
                        holding[name] = source
                    else:
                        holding.pop(name, None)
    return None


def _statements_in_order(body: list[ast.stmt]):
    for statement in body:
        yield statement
        for block in ("body", "orelse", "finalbody"):
            if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from _statements_in_order(getattr(statement, block, []) or [])


# -- constructors ------------------------------------------------------------------------------------


def constructor_problems(upstream: Any, target: str, replacement: Any) -> str | None:
    """The first upstream call `Target(...)` that the replacement class's `__init__` cannot take."""
    try:
        signature = inspect.signature(replacement)
    except (TypeError, ValueError):
        return None
    source: SourceText = upstream.source
    for node in upstream.calls_by_callee.get(target, ()):  # `target(...)` calls, in walk order
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue  # *args / **kwargs: what arrives is not known from the text
        placeholders = [object()] * len(node.args)
        try:
            signature.bind(*placeholders, **{k.arg: object() for k in node.keywords})
        except TypeError as exc:
            call = " ".join(ast.get_source_segment(source.text, node).split())
            return f"upstream line {node.lineno} calls `{call}`, which {replacement.__name__}{signature} cannot take ({exc})"
    return None
