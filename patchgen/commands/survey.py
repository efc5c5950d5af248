"""`patchgen survey`: the component-wise scaffold over every causal-LM model type of the installed transformers.

    patchgen survey [--only granite,helium] [--jobs 2] [--timeout 240] [--output docs/survey.md]

For each model type whose auto mapping (`MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`) names a `*ForCausalLM` class,
one child process (`--jobs` at a time, each with `--timeout` seconds) scaffolds the model into a scratch
project of its own (a temporary folder: the project's `models/` and `generated/` are never touched),
generates its `_cpu` and `_gpu` files, builds stock and the generated `_cpu` class from one tiny config
(`tiny_config`: hidden 32, 2 layers, vocab 99, model-specific multipliers and scales set away from their
defaults; latent-attention sizes to match, per-layer lists cut to the two layers), loads stock's weights into the generated model and compares, in fp32 with eager attention,
the logits, a loss and every gradient (`torch.testing.assert_close` defaults).

Each type ends in one status:

- `equal`: generated, and the `_cpu` file computes what stock computes;
- `different`: generated, and it does not (a defect of a set or of the scaffold);
- `error`: the scaffold accepted the model but generating, importing or building the generated file failed
  (a defect too), or scaffolding, generating or the generated model ran past the time limit;
- `not compared`: stock itself does not build or run on the tiny config, or not within the time limit (nothing
  to compare against);
- `refused`: the scaffold refuses the model (not a decoder, or no shared set fits any component).

The table is written as Markdown (`--output`, default `docs/survey.md`); the last line printed is
`N types: A generated equal, B generated different, C refused, ...`. Exit status 1 when any type is
`different` or `error`, else 0.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import click

from patchgen.commands.cli_errors import run_command


STATUSES = ("equal", "different", "error", "not compared", "refused")
DEFECTS = ("different", "error")
#: the tiny dimensions every model is built with; a key the config class does not know is left out
TINY = dict(
    vocab_size=99,
    hidden_size=32,
    intermediate_size=48,  # grouped_mm (upstream's default experts kernel) wants rows of a multiple of 16 bytes
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    moe_intermediate_size=16,
    shared_expert_intermediate_size=16,
    num_experts=4,
    num_local_experts=4,
    n_routed_experts=4,
    n_group=2,  # group-limited routing: 2 groups of 2 experts, the best 1 taken
    topk_group=1,
    mamba_n_heads=4,  # Mamba-2 heads must divide the expanded hidden size (2 x 32)
    attn_layer_period=2,  # Jamba: an attention layer (layer 1) among the two
    attn_layer_offset=1,
    num_experts_per_tok=2,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
#: multi-head latent attention (DeepSeek-V2/V3 and kin, a config with `kv_lora_rank`): latent and head sizes to
#: match, one key/value head per query head (the latent's heads are not grouped)
TINY_LATENT = dict(
    q_lora_rank=16,
    kv_lora_rank=16,
    qk_nope_head_dim=8,
    qk_rope_head_dim=8,
    v_head_dim=8,
    num_key_value_heads=4,
)
#: float config values that change what a model computes (Granite's multipliers, a logits scale): set away
#: from their defaults so a generated forward that dropped one would differ from stock
SCALES = re.compile(r"multiplier|scaling|scale$|_scale_|softcap")


@dataclass
class Row:
    """One model type's line in the table."""

    model_type: str
    status: str
    patched: list[str] = field(default_factory=list)  # components a shared set patches
    kept: list[str] = field(default_factory=list)  # "component: reason"
    detail: str = ""  # why refused / what differed / the error
    seconds: float = 0.0


def causal_lm_types() -> dict[str, str]:
    """Model type -> its `*ForCausalLM` class, from transformers' auto mapping."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return {
        model_type: name
        for model_type, name in sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items())
        if isinstance(name, str) and name.endswith("ForCausalLM")
    }


# -- one model type, in its own process ---------------------------------------------------------------


def tiny_config(config_class, **extra):
    """A tiny config of `config_class`: the `TINY` keys it has, and its float scales set away from their defaults."""
    defaults = config_class()
    kwargs = {key: value for key, value in TINY.items() if hasattr(defaults, key) or key == "head_dim"}
    if not hasattr(defaults, "head_dim"):
        kwargs.pop("head_dim")  # (a config whose head_dim defaults to None gets 8, which hidden 32 / 4 heads is)
    if hasattr(defaults, "n_shared_experts") and defaults.n_shared_experts is None:
        kwargs["n_shared_experts"] = 1  # a count the defaults leave unset (Dots1: sized as moe_intermediate_size x it)
    if hasattr(defaults, "attn_layer_indices") and defaults.attn_layer_indices is None:
        kwargs["attn_layer_indices"] = [1]  # Bamba: no attention layer at all unless named; the second one
    if isinstance(getattr(defaults, "num_experts_per_tok", None), int) and defaults.num_experts_per_tok < 2:
        kwargs["num_experts_per_tok"] = defaults.num_experts_per_tok  # a top-1 router (ZAYA's only) stays top-1
    if hasattr(defaults, "kv_lora_rank"):
        kwargs.update((key, value) for key, value in TINY_LATENT.items() if hasattr(defaults, key))
    layers = getattr(defaults, "num_hidden_layers", None)
    for key, value in vars(defaults).items():
        if key.endswith("layer_types") and isinstance(value, list) and len(value) == layers:
            kwargs[key] = _two_layers(value)  # one entry per layer: the tiny model's two
    for key, value in vars(defaults).items():
        if SCALES.search(key) and isinstance(value, float) and not isinstance(value, bool):
            kwargs[key] = round(value * 0.75 + 0.1, 4)  # away from the default (1.0 -> 0.85, 0.0 -> 0.1)
    kwargs.update(extra)
    return config_class(**kwargs)


def _two_layers(kinds: list) -> list:
    """Two layers' kinds out of a per-layer list: the first and, where the list has another, the first other
    (a hybrid's linear and full attention, a dense and a sparse MLP), so both kinds run."""
    other = next((kind for kind in kinds if kind != kinds[0]), kinds[0])
    return [kinds[0], other]


def _inputs():
    import torch

    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, 99, (2, 11), generator=generator)
    labels = input_ids.clone()
    labels[0, :3] = -100  # ignored positions count in no loss
    return input_ids, labels


def _run(model):
    """Logits, loss and every gradient of `model` on the survey's inputs."""
    input_ids, labels = _inputs()
    logits = model(input_ids).logits
    loss = model(input_ids, labels=labels).loss
    loss.backward()
    return logits, loss, {name: parameter.grad for name, parameter in model.named_parameters()}


def _difference(ours, theirs) -> str | None:
    """Where the generated model's results differ from stock's (logits, loss, gradients), or None."""
    import torch

    for what, mine, stock in (("logits", ours[0], theirs[0]), ("loss", ours[1], theirs[1])):
        try:
            torch.testing.assert_close(mine, stock)
        except AssertionError as exc:
            return f"{what}: {' '.join(str(exc).split())[:160]}"
    for name, grad in ours[2].items():
        stock = theirs[2].get(name)
        if (grad is None) != (stock is None):
            return f"gradient of {name}: present in one model only"
        if grad is not None:
            try:
                torch.testing.assert_close(grad, stock)
            except AssertionError:
                return f"gradient of {name}"
    return None


def survey_one(model_type: str, causal_lm: str, scratch: Path, checkpoint=None) -> Row:
    """Scaffold, generate and compare one model type in the scratch project `scratch` (made here).

    `checkpoint(row)`, when given, is told the row each step would end in if the next ran past the time limit:
    stock's build or run (`not compared`: nothing to compare against), then the generated model's (`error`)."""
    import importlib
    import importlib.util

    import torch
    import transformers

    from patchgen.commands import new_model
    from patchgen.dsl.errors import PatchgenError
    from patchgen.dsl.layout import enter_project

    row = Row(model_type, "refused")
    stock_class = getattr(transformers, causal_lm)
    module = stock_class.__module__  # transformers.models.<folder>.modeling_<folder>, or modeling_<folder>_text
    folder = module.split(".")[2]
    (scratch / "models").mkdir(parents=True)
    (scratch / "models" / "__init__.py").write_text("")
    os.chdir(scratch)
    try:
        layout = enter_project()
        new_model.plan_scaffold(folder, causal_lm, module)  # a refusal: the scaffold finds nothing to patch
    except PatchgenError as exc:
        row.detail = " ".join(str(exc).split())
        return row
    except Exception as exc:  # noqa: BLE001 - a crash of the scaffold is a defect to report, not to hide
        row.status, row.detail = "error", f"scaffold: {type(exc).__name__}: {exc}"
        return row
    try:  # accepted: generating it must work
        scaffold, _, _, _ = new_model.scaffold_into(
            layout, folder, causal_lm=causal_lm, source_module=module, write_generated=True
        )
    except Exception as exc:  # noqa: BLE001 - the components fit one by one, together they do not generate
        row.status, row.detail = "error", f"generation: {' '.join(str(exc).split())[:300]}"
        return row
    row.patched = scaffold.patched
    row.kept = [f"{kept.component}: {kept.reason}" for kept in scaffold.kept]
    if checkpoint:
        checkpoint(replace(row, status="not compared", detail="stock did not build and run on the tiny config in"))
    try:
        torch.manual_seed(0)
        config = tiny_config(stock_class.config_class)
        config._attn_implementation = "eager"
        stock = stock_class(config).eval()
        with torch.no_grad():
            for parameter in stock.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))  # norm weights away from 1, zero biases away from 0
        state = {name: tensor.clone() for name, tensor in stock.state_dict().items()}
        expected = _run(stock)
    except Exception as exc:  # noqa: BLE001
        row.status, row.detail = "not compared", f"stock does not run on the tiny config: {_short(exc)}"
        return row
    if checkpoint:
        checkpoint(replace(row, status="error", detail="the generated model did not build and run in"))
    try:
        path = scratch / "generated" / folder / f"patched_modeling_{folder}_cpu.py"
        spec = importlib.util.spec_from_file_location(f"survey_{folder}_cpu", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        patched = getattr(module, causal_lm)(config).eval()
        loaded = patched.load_state_dict(state, strict=False)
        if loaded.missing_keys or loaded.unexpected_keys:
            keys = [*loaded.missing_keys, *loaded.unexpected_keys]
            row.status, row.detail = "different", f"state-dict keys differ: {', '.join(keys[:3])}"
            return row
        difference = _difference(_run(patched), expected)
    except Exception as exc:  # noqa: BLE001
        row.status, row.detail = "error", f"generated file: {_short(exc)}"
        return row
    row.status, row.detail = ("different", difference) if difference else ("equal", "")
    return row


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


# -- many types, and the table --------------------------------------------------------------------------


def _run_child(model_type: str, causal_lm: str, scratch_root: Path, timeout: float) -> Row:
    started = time.monotonic()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    # `--jobs` children already run at once: a child forking one worker per CPU would oversubscribe
    env["PATCHGEN_JOBS"] = "1"
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "patchgen.commands.survey", "--child", model_type, causal_lm, str(scratch_root)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        # the last step the child reached (`survey_one`'s checkpoints): stock too slow is nothing to compare against
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        reached = [line for line in out.splitlines() if line.startswith("{")]
        if reached:
            row = Row(**json.loads(reached[-1]))
            row.detail += f" the time limit ({timeout:.0f} s)"
        else:
            row = Row(model_type, "error", detail=f"ran past the time limit ({timeout:.0f} s)")
    else:
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode == 0 and lines:
            row = Row(**json.loads(lines[-1]))
        else:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
            row = Row(model_type, "error", detail=f"child exited {done.returncode}: {tail[:200]}")
    row.seconds = round(time.monotonic() - started, 1)
    return row


def summary(rows: list[Row]) -> str:
    counts = {status: sum(row.status == status for row in rows) for status in STATUSES}
    text = (
        f"{len(rows)} types: {counts['equal']} generated equal, {counts['different']} generated different, "
        f"{counts['refused']} refused"
    )
    extra = [f"{counts[status]} {status}" for status in ("error", "not compared") if counts[status]]
    return text + "".join(f", {part}" for part in extra)


def _cell(text: str, limit: int = 220) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(rows: list[Row], *, transformers_version: str, complete: bool = True) -> str:
    lines = [
        "# Survey: the scaffold over every causal-LM model type",
        "",
        f"`patchgen survey` (`make survey`) over transformers {transformers_version}: for each model type with a",
        "`*ForCausalLM` class, `patchgen new-model` in a scratch project, the generated `_cpu` file built from a",
        "tiny config (hidden 32, 2 layers, vocab 99, multipliers and scales away from their defaults) and compared",
        "with stock in fp32, eager attention: logits, loss and gradients. Components: `attention` (Ulysses SP),",
        "`rms_norm`, `mlp`, `rope`, `experts` (the fused experts kernels), `router`, `causal_lm` (the fused-loss",
        "forward). How to read and rerun it: [Adding a model](adding-a-model.md).",
        "",
        f"**{summary(rows)}.**" + ("" if complete else " (partial run: the types not listed were not reached)"),
        "",
        "| type | status | patched | kept as upstream (why) | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=lambda r: r.model_type):
        kept = "<br>".join(_cell(item, 160) for item in row.kept)
        lines.append(
            f"| `{row.model_type}` | {row.status} | {', '.join(row.patched) or '-'} | {kept or '-'} | "
            f"{_cell(row.detail) or '-'} |"
        )
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--only", default="", help="Comma-separated model types (default: every causal-LM type).")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1), help="Model types surveyed at once.")
@click.option("--timeout", default=240.0, show_default=True, type=float, help="Seconds allowed per model type.")
@click.option(
    "--output", default="docs/survey.md", show_default=True, type=click.Path(dir_okay=False), help="The table."
)
@click.option("--child", nargs=3, hidden=True, default=None)
def main(only: str, jobs: int, timeout: float, output: str, child) -> None:
    """Run the component-wise scaffold over every model type with a *ForCausalLM and compare with stock.

    Writes a Markdown coverage table (type, components patched, components kept and why, equal /
    different / error) to OUTPUT and prints `N types: A generated equal, B generated different, C refused`.
    Works in a temporary folder; the project's models/ and generated/ are not touched. Exit status 1 when
    a generated model differs from stock or fails, 2 on bad input.
    """
    if child:
        model_type, causal_lm, scratch_root = child
        scratch = Path(tempfile.mkdtemp(prefix=f"{model_type}-", dir=scratch_root))
        report = lambda row: click.echo(json.dumps(asdict(row)))  # noqa: E731 - click.echo flushes each line
        report(survey_one(model_type, causal_lm, scratch, checkpoint=report))
        return
    import transformers

    types = causal_lm_types()
    if only:
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in types]
        if unknown:
            raise click.UsageError(f"no causal-LM model type {', '.join(map(repr, unknown))} in transformers")
        types = {name: types[name] for name in wanted}
    output_path = Path(output).resolve()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="patchgen-survey-") as scratch_root:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run_child, name, cls, Path(scratch_root), timeout) for name, cls in types.items()]
            try:
                for future in futures:
                    row = future.result()
                    rows.append(row)
                    click.echo(f"{row.model_type}: {row.status} ({row.seconds} s) {row.detail[:120]}".rstrip())
                    # the table so far, after every type: an interrupted run leaves a partial table
                    output_path.write_text(
                        render_table(rows, transformers_version=transformers.__version__, complete=False)
                    )
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                raise
    output_path.write_text(render_table(rows, transformers_version=transformers.__version__))
    click.echo(summary(rows))
    if any(row.status in DEFECTS for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    run_command(main)
