"""`patchgen new-model <model_type>`: the base, `_cpu` and `_gpu` configs of a decoder, written for review.

    patchgen new-model granite          # or: python -m patchgen.new_model granite

reads `transformers.models.<model_type>.modeling_<model_type>` (its syntax tree; nothing is run), finds
the family's names (`<P>Attention`, `<P>RMSNorm`, `<P>MLP`, `apply_rotary_pos_emb`, `<P>Experts`,
`<P>ForCausalLM`), and picks, component by component, the first shared set of `patchgen.sets` that fits,
or keeps the component upstream's and says why (one line per component, printed and written into the base
config's docstring):

- attention: the Ulysses forward with the steps whose shape upstream has. Each candidate binding names
  the upstream forward it reproduces (three projections and no q/k norm: Llama's; a per-head q/k norm:
  Qwen3's; a q/k norm over the whole projection: OLMo-2's; a fused `qkv_proj`: Phi-3's). A binding fits
  when upstream's attention has the attributes its steps read and its forward is that reference forward,
  names aside (the `sliding_window=` argument aside too: the shared forward passes the layer's or the
  config's window). No binding fits: the attention stays upstream's (no sequence parallelism).
- RMSNorm, MLP, rope, loss, experts: the set fits when upstream's definition computes what the kernel
  stands in for (the same code as the reference, `requirements.check(... "same_code" ...)`).
- Every candidate is then planned alone against upstream (`_Probe`: `patchgen.plan.make_plan`, the
  generator's own checks of the set's declared requirements on code and config values), so the scaffold
  never writes a use the generator would refuse (e.g. `LIGER_RMS_NORM` on a post-norm layout: the
  out-of-place set is tried next; `LIGER_SWIGLU_MLP` on Gemma's GELU MLP: kept upstream's).

The configs are then generated in memory (nothing written to the output folder unless `--generate`); a
failure removes the configs again. Refused in one line, exit 2: the model has no upstream module, already
has a folder, is not a decoder (no `*ForCausalLM`), or no shared set fits any component.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from patchgen.commands.cli_errors import one_line_errors, run_command
from patchgen.commands.config_runs import run_configs
from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.layout import Layout, enter_project
from patchgen.dsl.requirements import Requirement, check, instance_attributes, normalised
from patchgen.load.upstream import UpstreamModule, find_method, read_upstream
from patchgen.plan.submodels import stock_submodels
from patchgen.render.outputs import display_path, write_all


REFERENCE = "transformers.models.{0}.modeling_{0}"
LOSS_REFERENCE = ("llama", "LlamaForCausalLM")  # the forward the fused-loss forward stands in for


@dataclass(frozen=True)
class Binding:
    """One way to bind the Ulysses steps, and the upstream attention whose forward it reproduces."""

    project_qkv: str
    qk_norm: str
    reference: tuple[str, str]  # (model, attention class) in transformers
    needs: tuple[str, ...]  # attributes the steps read from the attention
    lacks: tuple[str, ...] = ()  # attributes whose presence means a step would skip upstream work


BINDINGS = (
    Binding("separate_qkv_projection", "no_qk_norm", ("llama", "LlamaAttention"), ("q_proj", "k_proj", "v_proj"), ("q_norm", "k_norm")),
    Binding("separate_qkv_projection", "per_head_qk_norm", ("qwen3", "Qwen3Attention"), ("q_proj", "k_proj", "v_proj", "q_norm", "k_norm")),
    Binding("separate_qkv_projection", "full_projection_qk_norm", ("olmo2", "Olmo2Attention"), ("q_proj", "k_proj", "v_proj", "q_norm", "k_norm")),
    Binding("fused_qkv_projection", "no_qk_norm", ("phi3", "Phi3Attention"), ("qkv_proj",), ("q_norm", "k_norm")),
)  # fmt: skip


@dataclass(frozen=True)
class Kernel:
    """A kernel set pair (GPU, CPU twin) for one role, and the upstream code it stands in for."""

    role: str
    gpu: str  # "module:SET"
    cpu: str
    references: tuple[str, ...]  # dotted names of installed definitions upstream's must equal
    note: str = ""


NORMS = (
    Kernel("rms_norm", "patchgen.sets.kernels.liger_kernels:LIGER_RMS_NORM", "patchgen.sets.kernels.torch_kernels:TORCH_RMS_NORM",
           ("llama.LlamaRMSNorm", "olmo2.Olmo2RMSNorm")),
    Kernel("rms_norm", "patchgen.sets.kernels.liger_kernels:LIGER_RMS_NORM_OUT_OF_PLACE",
           "patchgen.sets.kernels.torch_kernels:TORCH_RMS_NORM", ("llama.LlamaRMSNorm", "olmo2.Olmo2RMSNorm"),
           "post-norm layers: the in-place kernel would corrupt the residual's gradient"),
)  # fmt: skip
MLPS = (
    Kernel("mlp", "patchgen.sets.kernels.liger_kernels:LIGER_SWIGLU_MLP", "patchgen.sets.kernels.torch_kernels:TORCH_SWIGLU_MLP",
           ("llama.LlamaMLP", "qwen3.Qwen3MLP")),
    Kernel("mlp", "patchgen.sets.kernels.liger_kernels:LIGER_FUSED_SWIGLU_MLP",
           "patchgen.sets.kernels.torch_kernels:TORCH_FUSED_SWIGLU_MLP", ("phi3.Phi3MLP",),
           "keeps the fused gate_up_proj (state-dict keys unchanged)"),
)  # fmt: skip
ROPES = (
    Kernel("rope", "patchgen.sets.kernels.liger_kernels:LIGER_ROPE", "patchgen.sets.kernels.torch_kernels:TORCH_ROPE",
           ("llama.apply_rotary_pos_emb", "olmo2.apply_rotary_pos_emb")),
    Kernel("rope", "patchgen.sets.kernels.liger_kernels:LIGER_ROPE", "patchgen.sets.kernels.torch_kernels:TORCH_ROPE",
           ("phi3.apply_rotary_pos_emb",), "sees only the rotated channels (the partial_rotary step)"),
)  # fmt: skip
LOSS = Kernel(
    "causal_lm",
    "patchgen.sets.training_sets:CHUNKED_LINEAR_CROSS_ENTROPY",
    "patchgen.sets.training_sets:TORCH_LINEAR_CROSS_ENTROPY",
    (),
)
EXPERTS = Kernel(
    "experts",
    "patchgen.sets.experts.liger_moe_experts:LIGER_EXPERTS",
    "patchgen.sets.experts.torch_moe_experts:TORCH_EXPERTS",
    ("qwen3_moe.Qwen3MoeExperts",),
    "the experts class keeps upstream's dispatch",
)
EXPERT_MARKERS = ("Experts", "SparseMoe", "MoE", "Moe", "Router")  # in class names after the family prefix


@dataclass(frozen=True)
class Kept:
    """One component the scaffold leaves as upstream's, and why (one line for the report and the config)."""

    component: str  # attention, rms_norm, mlp, rope, experts, router, causal_lm
    target: str  # the upstream name it would have patched
    reason: str

    @property
    def line(self) -> str:
        return f"{self.component}: {self.target} kept as upstream: {self.reason}"


@dataclass
class Scaffold:
    """What the scaffold picked for one model: upstream names, the Ulysses steps, the set per component."""

    model: str
    prefix: str
    source_module: str
    config_class: str
    attention: str | None  # None: the attention stays upstream's (see `kept`)
    steps: tuple[str, str, str, str] | None  # project_qkv, qk_norm, rotary, project_output
    excluded: list[str]
    kernels: list[tuple[Kernel, str]] = field(default_factory=list)  # (kernel, upstream target)
    kept: list[Kept] = field(default_factory=list)
    causal_lm_class: str = ""

    @property
    def causal_lm(self) -> str:
        return self.causal_lm_class or f"{self.prefix}ForCausalLM"

    @property
    def fused_loss(self) -> bool:
        return any(kernel is LOSS for kernel, _ in self.kernels)

    @property
    def not_fitted(self) -> list[str]:
        """One line per component kept as upstream."""
        return [kept.line for kept in self.kept]

    @property
    def patched(self) -> list[str]:
        """The components a shared set patches, in scaffold order."""
        roles = ["attention"] if self.attention else []
        return roles + [kernel.role for kernel, _ in self.kernels]


# -- reading upstream -----------------------------------------------------------------------------------


def plan_scaffold(model: str, causal_lm: str | None = None, source_module: str | None = None) -> Scaffold:
    """Everything the configs will say, from upstream's syntax tree, component by component.

    Each component (attention with Ulysses SP, RMSNorm, MLP, rope, experts, causal-LM loss) gets the first
    shared set that fits, tried by planning it alone against upstream (the generator's own checks: declared
    requirements on the code and on the config values the set reads), or is kept as upstream with the reason.
    Raises PatchgenError only when the module is not a decoder (no `*ForCausalLM`) or nothing fits.
    `causal_lm` picks the class when the module defines several (the survey passes transformers' auto mapping);
    `source_module` is the modeling module when it is not `modeling_<model>` (Data2Vec's `modeling_data2vec_text`).
    """
    source_module = source_module or REFERENCE.format(model)
    upstream = read_upstream(source_module)
    causal_lms = [name for name in upstream.definitions if name.endswith("ForCausalLM")]
    if causal_lm is None and len(causal_lms) == 1:
        causal_lm = causal_lms[0]
    if causal_lm not in causal_lms:
        found = f"{len(causal_lms)} *ForCausalLM classes" if causal_lm is None else f"no class {causal_lm}"
        raise PatchgenError(f"{source_module}: not a decoder to scaffold: {found}, expected one")
    prefix = causal_lm.removesuffix("ForCausalLM")
    scaffold = Scaffold(
        model=model,
        prefix=prefix,
        source_module=source_module,
        config_class=_config_class(source_module, causal_lm),
        attention=None,
        steps=None,
        excluded=excluded_heads(upstream, causal_lm),
        causal_lm_class=causal_lm,
    )
    probe = _Probe(upstream, scaffold)
    binding = _pick_attention(scaffold, upstream, probe)
    _pick_kernel(scaffold, upstream, probe, _component(upstream, prefix, "RMSNorm"), NORMS)
    _pick_kernel(scaffold, upstream, probe, _component(upstream, prefix, "MLP"), MLPS)
    rope = _pick_kernel(scaffold, upstream, probe, "apply_rotary_pos_emb", ROPES, also=("rotate_half",))
    if rope is ROPES[1]:  # the kernel rotates all it is given: the partial_rotary step hands it the rotated channels
        if binding is None:
            scaffold.kernels.pop()
            scaffold.kept.append(
                Kept("rope", "apply_rotary_pos_emb", "Phi-3's partial rope needs the Ulysses partial_rotary step "
                     "to hand the kernel the rotated channels, and the attention stays upstream's")
            )  # fmt: skip
        else:
            scaffold.steps = (binding.project_qkv, binding.qk_norm, "partial_rotary", "output_projection")
    _pick_experts(scaffold, upstream, probe)
    _pick_loss(scaffold, upstream, probe)
    if not scaffold.patched:
        reasons = "; ".join(f"{kept.component}: {kept.reason}" for kept in scaffold.kept)
        raise PatchgenError(f"{source_module}: no shared set fits any component ({reasons})")
    return scaffold


def excluded_heads(upstream: UpstreamModule, causal_lm: str) -> list[str]:
    """The task heads the base config leaves out of the output: the `<P>For<Task>` classes besides `causal_lm`,
    and the composite models whose `__init__` builds a part through `AutoModel` (Gemma 3's, Qwen3.5's), that no
    kept code names (by name, or by a string such as `_no_split_modules`; `__all__` aside, its entries go
    with them). A class that only looks like a head (`<P>ForgetGate`) or a head kept code still names (an
    `isinstance` check in `<P>PreTrainedModel._init_weights`) is carried along, since excluding it would leave
    that code naming what the file no longer defines (the generator refuses such a file)."""
    head = re.compile(re.escape(causal_lm.removesuffix("ForCausalLM")) + "For[A-Z]")
    excluded = {name for name in upstream.definitions if head.match(name) and name != causal_lm}
    # a composite that builds a part with AutoModel.from_config gets transformers' class, not the file's copy: the
    # generator refuses such an output (`patchgen.plan.submodels`); the causal LM does not go through it
    excluded |= {found.owner for found in stock_submodels(upstream.tree, upstream.module())} - {causal_lm}
    named: dict[int, set[str]] = {}  # id of a top-level statement -> the candidates it names
    for node in upstream.tree.body:
        words = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        words |= {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        named[id(node)] = words & excluded
    while True:  # a head kept because kept code names it keeps what it names in turn
        kept = [node for node in upstream.tree.body if getattr(node, "name", None) not in excluded]
        used = set().union(*(named[id(node)] for node in kept if not _is_all(node)))
        if not used & excluded:
            return [name for name in upstream.definitions if name in excluded]
        excluded -= used


def _exclusion_reason(excluded: list[str]) -> str:
    if all("For" in name for name in excluded):
        return "heads not used for causal-LM training"
    return "heads, and composites whose AutoModel parts would be transformers' own, not used for causal-LM training"


def _is_all(node: ast.stmt) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets)


def _component(upstream: UpstreamModule, prefix: str, role: str) -> str:
    """`<P><role>`, or `<P>Text<role>` where only that is defined (Gemma-4's and Llama-4's text decoders name
    their attention and MLP after the text model, the causal LM after the family)."""
    name = f"{prefix}{role}"
    text = f"{prefix}Text{role}"
    return text if name not in upstream.definitions and text in upstream.definitions else name


class _Probe:
    """Plans one `config.use(...)` alone against upstream: the generator's checks for one component's set."""

    def __init__(self, upstream: UpstreamModule, scaffold: Scaffold) -> None:
        self.upstream, self.scaffold = upstream, scaffold

    def problem(self, where: str, target: str | None = None, bind: dict | None = None, **roles: str) -> str | None:
        """Why the generator refuses `config.use(<set at where>, target, bind=bind, **roles)`, or None."""
        from patchgen.dsl.patch_spec import PatchConfig
        from patchgen.load.native_code import with_native_model_code
        from patchgen.plan.plan import make_plan

        model = self.scaffold.model
        patch_set = _load_set(where)
        try:
            config = PatchConfig(
                source_module=self.scaffold.source_module, target_file=f"patched_modeling_{model}_probe.py"
            )
            config.use(patch_set, target, bind=bind, **roles)
            module = f"models.{model}.{model}_probe_patch_gen_config"
            make_plan(with_native_model_code(config, self.upstream), module, self.upstream)
        except PatchgenError as exc:
            message = " ".join(str(exc).split())
            on = f" on {target or next(iter(roles.values()), '')}: "
            return message.split(on, 1)[1] if on in message else message
        return None


def _pick_attention(scaffold: Scaffold, upstream: UpstreamModule, probe: _Probe) -> Binding | None:
    """The Ulysses binding whose reference forward upstream's attention is and whose plan passes; else kept."""
    attention = _component(upstream, scaffold.prefix, "Attention")
    node = upstream.definitions.get(attention)
    if not isinstance(node, ast.ClassDef) or find_method(node, "forward") is None:
        scaffold.kept.append(Kept("attention", attention, "upstream defines no such class with a forward"))
        return None
    have = instance_attributes(upstream, node)
    ours = _comparable_forward(node, attention)
    for binding in BINDINGS:
        if all(name in have for name in binding.needs) and not any(name in have for name in binding.lacks):
            if ours == _comparable_forward(_reference_class(*binding.reference), binding.reference[1]):
                steps = (binding.project_qkv, binding.qk_norm, "full_rotary", "output_projection")
                problem = probe.problem(
                    "patchgen.sets.training_sets:ULYSSES_ATTENTION", bind=_step_objects(steps), attention=attention
                )
                if problem is not None:
                    scaffold.kept.append(Kept("attention", attention, f"ULYSSES_ATTENTION: {problem}"))
                    return None
                scaffold.attention, scaffold.steps = attention, steps
                return binding
    llama = _comparable_forward(_reference_class(*BINDINGS[0].reference), BINDINGS[0].reference[1])
    added = [line.strip() for line in difflib.unified_diff(llama.splitlines(), ours.splitlines(), lineterm="", n=0)]
    first = next((line[1:].strip() for line in added if line.startswith("+") and not line.startswith("+++")), "")
    scaffold.kept.append(
        Kept(
            "attention",
            attention,
            "its forward is none of the Ulysses step bindings (separate or fused q/k/v, no/per-head/full-projection "
            f"q/k norm); against Llama's it differs at `{first}`",
        )
    )
    return None


def _step_objects(steps: tuple[str, ...]) -> dict:
    from patchgen.sets.attention import ulysses_attention

    slots = ("project_qkv", "qk_norm", "rotary", "project_output")
    return {slot: getattr(ulysses_attention, step) for slot, step in zip(slots, steps, strict=True)}


def _comparable_forward(cls: ast.ClassDef, class_name: str) -> str:
    """The forward's code as the shared forward would have to reproduce it: names, docstrings, annotations and
    the `sliding_window=` argument aside (the shared forward passes the layer's or the config's window)."""
    forward = ast.parse(normalised(find_method(cls, "forward"))).body[0]
    for node in ast.walk(forward):
        if isinstance(node, ast.Call):
            node.keywords = [k for k in node.keywords if k.arg != "sliding_window"]
    # parameter names and the body: defaults and annotations are the shared forward's own
    parameters = ", ".join(argument.arg for argument in [*forward.args.args, *forward.args.kwonlyargs])
    body = "\n".join(ast.unparse(statement) for statement in forward.body)
    prefix = class_name.removesuffix("Attention")
    return f"({parameters})\n{body}".replace(prefix, "_P_")


def _reference_class(model: str, name: str) -> ast.ClassDef:
    return read_upstream(REFERENCE.format(model)).definitions[name]


def _config_class(source_module: str, causal_lm: str) -> str:
    return getattr(importlib.import_module(source_module), causal_lm).config_class.__name__


def _pick_kernel(
    scaffold: Scaffold,
    upstream: UpstreamModule,
    probe: _Probe,
    target: str,
    kernels: tuple[Kernel, ...],
    also: tuple[str, ...] = (),
) -> Kernel | None:
    """The first kernel whose reference code upstream's `target` (and its helpers `also`) has and whose sets the
    generator accepts on `target` (declared requirements, config values); None (kept, with the reason) else."""
    role = kernels[0].role
    if target not in upstream.definitions:
        scaffold.kept.append(Kept(role, target, "upstream defines none; nothing to replace"))
        return None
    refused: dict[str, list[str]] = {}  # why -> the sets refused for it (sets with one reference share one)
    for kernel in kernels:
        problem = _kernel_problem(kernel, upstream, probe, target, also)
        if problem is None:
            scaffold.kernels.append((kernel, target))
            return kernel
        refused.setdefault(problem, []).append(_set_name(kernel.gpu))
    reasons = [f"{', '.join(dict.fromkeys(names))}: {problem}" for problem, names in refused.items()]
    scaffold.kept.append(Kept(role, target, "; ".join(reasons)))
    return None


def _kernel_problem(
    kernel: Kernel, upstream: UpstreamModule, probe: _Probe, target: str, helpers: tuple[str, ...]
) -> str | None:
    """Why `kernel` does not fit upstream's `target`: other code than it stands in for (the target, or a helper
    of it such as `rotate_half`), or what the generator refuses when it plans the set on `target`."""
    problem = _same_code(upstream, target, kernel.references, kernel.role)
    for helper in helpers:
        if problem is None and helper in upstream.definitions:
            references = tuple(f"{reference.partition('.')[0]}.{helper}" for reference in kernel.references)
            problem = _same_code(upstream, helper, references)
    for where in (kernel.gpu, kernel.cpu):
        problem = problem or probe.problem(where, target)
    return problem


def _pick_experts(scaffold: Scaffold, upstream: UpstreamModule, probe: _Probe) -> None:
    """Routed experts: the fused experts kernels where upstream's experts class is Qwen3-MoE's (SiLU gates, fused
    `gate_up_proj`), registered through its `<P>PreTrainedModel`; the router always stays upstream's."""
    prefix = scaffold.prefix
    routed = [
        name
        for name in upstream.definitions
        if name.startswith(prefix) and any(marker in name.removeprefix(prefix) for marker in EXPERT_MARKERS)
    ]
    if not routed:
        return
    experts, pretrained = _component(upstream, prefix, "Experts"), f"{prefix}PreTrainedModel"
    if experts not in upstream.definitions:
        problem = f"upstream defines no {experts} (its experts are {routed[0]}, not a shape the experts sets know)"
    elif pretrained not in upstream.definitions:
        problem = f"upstream defines no {pretrained} to register the experts kernel through"
    else:
        problem = _same_code(upstream, experts, EXPERTS.references, "experts")
        hidden_act = getattr(_config_defaults(scaffold), "hidden_act", None)
        if problem is None and hidden_act not in ("silu", "swish"):
            problem = f"{scaffold.config_class}() defaults hidden_act={hidden_act!r}; the fused kernels gate with SiLU"
        for where in (EXPERTS.gpu, EXPERTS.cpu):
            problem = problem or probe.problem(where, pretrained)
    if problem is None:
        scaffold.kernels.append((EXPERTS, pretrained))
    else:
        scaffold.kept.append(Kept("experts", experts, f"{_set_name(EXPERTS.gpu)}: {problem}"))
    router = next((name for name in routed if "Router" in name or "Gate" in name.removeprefix(prefix)), routed[0])
    scaffold.kept.append(Kept("router", router, "no shared set for routers: routing stays upstream's code"))


def _pick_loss(scaffold: Scaffold, upstream: UpstreamModule, probe: _Probe) -> None:
    model, name = LOSS_REFERENCE
    ours = normalised(find_method(upstream.definitions[scaffold.causal_lm], "forward"))
    theirs = normalised(find_method(_reference_class(model, name), "forward"))
    ours, theirs = ours.replace(scaffold.prefix, "_P_"), theirs.replace("Llama", "_P_")
    target = scaffold.causal_lm
    if ours == theirs:
        problem = probe.problem(LOSS.gpu, causal_lm=target) or probe.problem(LOSS.cpu, causal_lm=target)
        if problem is None:
            scaffold.kernels.append((LOSS, target))
            return
        scaffold.kept.append(Kept("causal_lm", f"{target}.forward", f"no fused loss: {problem}"))
        return
    diff = difflib.unified_diff(theirs.splitlines(), ours.splitlines(), lineterm="", n=0)
    first = next((line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")), "")
    scaffold.kept.append(
        Kept(
            "causal_lm",
            f"{target}.forward",
            "no fused loss: it is not Llama's forward, which the fused-loss forward stands in for; it differs at "
            f"`{first}`",
        )
    )


def _same_code(upstream: UpstreamModule, target: str, references: tuple[str, ...], role: str = "") -> str | None:
    dotted = tuple(REFERENCE.format(r.split(".")[0]) + "." + r.split(".", 1)[1] for r in references)
    return check(Requirement(role or target, "same_code", dotted, otherwise=""), upstream, target)


def _load_set(where: str):
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def _set_name(where: str) -> str:
    return where.partition(":")[2]


# -- writing ----------------------------------------------------------------------------------------------


def render_configs(scaffold: Scaffold, package: str) -> dict[str, str]:
    """File name -> text of `__init__.py` and the three configs (ruff-formatted shape, line length 119)."""
    m, title = scaffold.model, scaffold.prefix
    base_module = f"{package}.{m}_base_patch_gen_config"
    return {
        "__init__.py": "",
        f"{m}_base_patch_gen_config.py": _base_text(scaffold, title),
        f"{m}_cpu_patch_gen_config.py": _variant_text(scaffold, "cpu", base_module),
        f"{m}_gpu_patch_gen_config.py": _variant_text(scaffold, "gpu", base_module),
    }


def _base_text(scaffold: Scaffold, title: str) -> str:
    lines = [
        f'"""{title}: what every generated {title} file shares. A base: the _cpu and _gpu variants extend it.',
        "",
        f"Written by `patchgen new-model {scaffold.model}` from {scaffold.source_module}; review it like",
        "hand-written code. Not generated on its own (`PatchConfig.base`).",
        *_not_fitted_lines(scaffold),
        '"""',
        "",
    ]
    lines.append("from patchgen import PatchConfig")  # imports in isort's order, formatted as ruff formats them
    if scaffold.steps is not None:
        steps = sorted(set(scaffold.steps))
        one_line = f"from patchgen.sets.attention.ulysses_attention import {', '.join(steps)}"
        if len(one_line) <= 119:
            lines.append(one_line)
        else:
            lines += ["from patchgen.sets.attention.ulysses_attention import (", *(f"    {s}," for s in steps), ")"]
        lines.append("from patchgen.sets.training_sets import ULYSSES_ATTENTION")
    lines += [
        "",
        "",
        "config = PatchConfig.base(",
        f'    source_module="{scaffold.source_module}",',
        f'    description="{title}, causal-LM training heads only",',
        ")",
    ]
    if scaffold.excluded:
        lines += [
            "config.exclude_from_output(",
            *(f'    "{name}",' for name in scaffold.excluded),
            f'    reason="{_exclusion_reason(scaffold.excluded)}",',
            ")",
        ]
    if scaffold.steps is not None:
        project, norm, rotary, output = scaffold.steps
        lines += [
            "config.use(",
            "    ULYSSES_ATTENTION,",
            f'    attention="{scaffold.attention}",',
            "    bind={",
            f'        "project_qkv": {project},',
            f'        "qk_norm": {norm},',
            f'        "rotary": {rotary},',
            f'        "project_output": {output},',
            "    },",
            ")",
        ]
    return "\n".join(lines) + "\n"


def _not_fitted_lines(scaffold: Scaffold) -> list[str]:
    if not scaffold.not_fitted:
        return []
    return [
        "",
        "Kept as upstream by the scaffold (no shared set fits), one line per component:",
        "",
        *(
            wrapped
            for line in scaffold.not_fitted
            for wrapped in textwrap.wrap(
                line, 115, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False
            )
        ),
    ]


def _variant_text(scaffold: Scaffold, variant: str, base_module: str) -> str:
    title, m = scaffold.prefix, scaffold.model
    uses = [(getattr(kernel, variant), target, kernel.note) for kernel, target in scaffold.kernels]
    imports: dict[str, set[str]] = {}
    for where, _, _ in uses:
        module, _, name = where.partition(":")
        imports.setdefault(module, set()).add(name)
    kernels = ", ".join(_set_name(where) for where, _, _ in uses) or "no kernel sets"
    if variant == "cpu":
        summary = f"{title}, CPU-runnable: the structure of the GPU variant with pure-torch stand-ins for its kernels."
        description = f"{title} with pure-torch stand-ins for the GPU file's kernels"
    else:
        summary = f"{title} for GPU training: the base plus {kernels}."
        description = f"{title} with {kernels}; written by the scaffold, not measured on a GPU yet"
    lines = [
        f'"""{summary}',
        "",
        f"Generated file: generated/{m}/patched_modeling_{m}_{variant}.py",
        '"""',
        "",
        *(f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(imports.items())),
        "from patchgen import PatchConfig",
        "",
        "",
        "config = PatchConfig.extend(",
        f'    "{base_module}",',
        f'    target_file="patched_modeling_{m}_{variant}.py",',
        f'    description="{description}",',
        ")",
    ]
    for where, target, note in uses:
        note_text = f', note="{note}"' if note else ""
        lines.append(f'config.use({_set_name(where)}, "{target}"{note_text})')
    return "\n".join(_wrapped(line) for line in lines) + "\n"


def _wrapped(line: str) -> str:
    """A `config.use(...)` or import longer than 119 characters, split the way ruff format splits it."""
    if len(line) <= 119:
        return line
    if line.startswith("config.use("):
        arguments = line.removeprefix("config.use(").removesuffix(")")
        return "config.use(\n    " + arguments + ",\n)"
    if line.startswith("from "):
        head, _, names = line.partition(" import ")
        return f"{head} import (\n" + "".join(f"    {n},\n" for n in names.split(", ")) + ")"
    return line


def table_entry(scaffold: Scaffold) -> str:
    """The entry to add to TABLE in tests/families.py (this repository's one table of tested families)."""
    config = _tiny_config_keys(scaffold)
    fields = [f'"{scaffold.config_class}"', f'"{scaffold.causal_lm}"']
    if config:
        fields.append(repr(config))
    if _derives_head_dim(scaffold):
        fields.append("derives_head_dim=True")
    liger = _liger_objects(scaffold)
    if liger:
        fields.append(
            "liger={\n" + "".join(f'            "{name}": "{where}",\n' for name, where in liger.items()) + "        }"
        )
    if scaffold.steps is not None:
        steps = "".join(f'            "{name}",\n' for name in (scaffold.attention, *scaffold.steps))
        fields.append("attention_steps=(\n" + steps + "        )")
    else:
        fields.append("sequence_parallel=False")
    if not scaffold.fused_loss:
        fields.append("fused_loss=False")
    return f'    "{scaffold.model}": Family(\n' + "".join(f"        {field_},\n" for field_ in fields) + "    ),"


def _liger_objects(scaffold: Scaffold) -> dict[str, str]:
    """Upstream name -> "module:object" each GPU set binds by import (its `external` patches)."""
    objects = {}
    for kernel, target in scaffold.kernels:
        for template in _load_set(kernel.gpu).templates:
            if template.replacement_module and template.replacement_module.startswith("liger_kernel"):
                objects[target] = f"{template.replacement_module}:{template.replacement_name}"
    return objects


def _config_defaults(scaffold: Scaffold):
    import transformers

    return getattr(transformers, scaffold.config_class)()


def _tiny_config_keys(scaffold: Scaffold) -> dict[str, int]:
    """Special-token ids whose defaults fall outside a tiny vocabulary (~100 tokens): set to 1 and 2."""
    defaults = _config_defaults(scaffold)
    keys = {}
    for name, tiny in (("bos_token_id", 1), ("eos_token_id", 2)):
        value = getattr(defaults, name, None)
        if isinstance(value, int) and value >= 99:
            keys[name] = tiny
    return keys


def _derives_head_dim(scaffold: Scaffold) -> bool:
    return getattr(_config_defaults(scaffold), "head_dim", None) is None


def _config_folder(layout: Layout) -> Path:
    """Where the scaffold's configs go: the project's first configs folder (the sets ship with patchgen)."""
    return layout.config_folders[0].path


def _generate(layout: Layout, modules: list[str], write: bool) -> list[str]:
    """Generate the variants in memory (every check of the generator); write the outputs when asked."""
    runs = run_configs(layout.root, modules, with_diff=True)
    errors = [run.generation.error for run in runs if run.generation.error]
    if errors:
        raise PatchgenError(errors[0])
    outputs = {output.path: output.text for run in runs for output in run.generation.outputs}
    if write:
        write_all({path: text for path, text in outputs.items() if not path.exists() or path.name != "__init__.py"})
    return [display_path(path) for path in outputs if path.suffix == ".py" and path.name != "__init__.py"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_type")
@click.option("--generate", "write_generated", is_flag=True, help="Also write generated/<model>/ (with --diff).")
def main(model_type: str, write_generated: bool) -> None:
    """Write models/MODEL_TYPE/ (base, _cpu and _gpu configs) for a transformers decoder, component by component.

    MODEL_TYPE is the folder name under transformers.models (granite, helium, ...). Prints what was
    picked, what was left as upstream and why, and the next commands. Exit status 2, nothing written,
    when no shared set fits any component, the model is not a decoder, already has a folder, or its configs
    do not generate.
    """
    with one_line_errors():
        layout = enter_project()
        scaffold, written, generated, variants = scaffold_into(layout, model_type, write_generated=write_generated)
    for line in _report(scaffold, written, generated, write_generated, variants):
        click.echo(line)


def scaffold_into(
    layout: Layout,
    model_type: str,
    *,
    causal_lm: str | None = None,
    source_module: str | None = None,
    write_generated: bool = False,
) -> tuple[Scaffold, dict[Path, str], list[str], list[str]]:
    """Plan, write `models/<model_type>/` of `layout` and generate it (in memory, or written with
    `write_generated`); a generation failure removes the configs again. Returns the scaffold, the files
    written, the generated paths and the variant config modules."""
    folder = _config_folder(layout) / model_type
    if folder.exists():
        raise PatchgenError(f"{display_path(folder)} already exists; edit its configs instead of scaffolding")
    scaffold = plan_scaffold(model_type, causal_lm, source_module)
    package = layout.module_name_for_path(folder / "__init__.py").removesuffix(".__init__")
    texts = render_configs(scaffold, package)
    written = {folder / name: text for name, text in texts.items()}
    write_all(written)
    try:
        variants = [f"{package}.{model_type}_{v}_patch_gen_config" for v in ("cpu", "gpu")]
        generated = _generate(layout, variants, write_generated)
    except BaseException:
        _remove(written, folder)
        raise
    return scaffold, written, generated, variants


def _remove(written: dict[Path, str], folder: Path) -> None:
    for path in written:
        path.unlink(missing_ok=True)
    for leftover in (folder / "__pycache__",):
        if leftover.is_dir():
            for cached in leftover.iterdir():
                cached.unlink()
            leftover.rmdir()
    folder.rmdir()


def _report(scaffold: Scaffold, written, generated, write_generated: bool, variants: list[str]) -> Iterator[str]:
    for path in written:
        yield f"wrote {display_path(path)}"
    if scaffold.steps is not None:
        yield f"attention: ULYSSES_ATTENTION on {scaffold.attention} with {', '.join(scaffold.steps)}"
    for kernel, target in scaffold.kernels:
        yield f"{target}: {_set_name(kernel.gpu)} (gpu), {_set_name(kernel.cpu)} (cpu)"
    for line in scaffold.not_fitted:
        yield f"kept: {line}"
    verb = "wrote" if write_generated else "generates"
    yield f"{verb}: {', '.join(generated)}"
    yield "next:"
    if not write_generated:
        yield "  patchgen generate --all --diff        # writes generated/" + scaffold.model + "/; read the .diff"
    yield "  add to TABLE in tests/families.py:"
    yield table_entry(scaffold)
    yield f"  pytest tests/test_families.py tests/test_models_families.py tests/test_hf_behaviours.py -k {scaffold.model}"


if __name__ == "__main__":
    run_command(main)
