"""Expert parallelism: every MoE family's generated file under transformers' own EP plan, on 2 and 4 gloo ranks.

The models are distributed as `from_pretrained(..., distributed_config=DistributedConfig(...))` does before
loading (`initialize_distributed_mesh` + `maybe_distribute_model`), and the shards are filled from the weights
in memory, as tests/test_tensor_parallel.py fills its TP shards. The plan is the model's own
`base_model_ep_plan`: `grouped_gemm` splits the experts' `gate_up_proj`/`down_proj` (and GPT-OSS's biases)
whole across the EP ranks and sets the experts module's `num_experts` to the local count, and
`ep_dispatch_experts` brings each expert its tokens through an `EPImplementation`. Two of those, each run:

- `all_to_all` beside FSDP2 (VeOmni's layout, `DistributedConfig(fsdp_size=N, ep_size=E)`): every rank holds
  its own rows, the dense parameters are FSDP2-sharded over all ranks (the experts over the `efsdp` ranks
  holding the same experts), and each (token, expert) pair travels to its expert's rank and back with two
  all-to-alls; the experts kernel sees local expert ids only.
- `all_reduce` (`DistributedConfig(tp_size=N, tp_plan={}, ep_size=N)`): every rank holds the whole batch and
  runs its own experts on it; the routes to other ranks' experts reach the experts kernel as the "routed
  elsewhere" id (`num_experts`, weight 0), which the generated kernel (`torch_fused_moe`) skips, and an
  all-reduce sums the ranks' outputs. Making that slot contribute anything fails these layouts only.

Per family, forked CPU processes run forward + backward of stock and of the generated `_cpu` file under the
same plan on one seeded batch of 4 rows (each data-parallel rank its rows, every row with the same number of
labels, so the mean of the ranks' losses is the whole batch's), and the loss and every gradient (gathered to
full tensors) must equal stock's under the plan bitwise and stock's in one process on the whole batch.

Layouts: EP 2 on 2 ranks and EP 4 on 4 ranks (one expert per rank for 4-expert families), with each
implementation, and EP 2 x Ulysses SP 2 on 4 ranks for the families with Ulysses: the SP pairs {0, 2} {1, 3}
split a sequence, the EP pairs {0, 1} {2, 3} (FSDP2 over all 4) exchange tokens between sequences. Stock has no
Ulysses path, so there the generated file is compared with stock in one process only.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import transformers
from conftest import TINY_DENSE

from patchgen.runtime import sequence_parallel as sp
from patchgen.runtime.sequence_batch import shard_batch
from tests.families import TABLE, covered_where


# every covered family whose entry in tests/families.py has expert_parallel=True
FAMILIES = covered_where("expert_parallel")
EP_CONFIG = dict(TINY_DENSE, pad_token_id=0, use_cache=False)
ROWS, SEQ_LEN, IGNORED_PREFIX = 4, 16, 3


@dataclass(frozen=True)
class Layout:
    """How the ranks split the work: `world` ranks, experts split over `ep` of them, Ulysses over `sp`."""

    world: int
    ep: int
    sp: int = 1
    #: every rank holds the whole batch and runs its experts on it (`AllReduceEP`: off-rank routes go to the
    #: experts kernel as the "routed elsewhere" id, the partial outputs are summed); else each data-parallel
    #: rank holds its own rows beside FSDP2 and tokens travel to their experts (`AllToAllEP`)
    shared_batch: bool = False

    def distributed_config(self):
        from transformers.distributed import DistributedConfig

        if self.shared_batch:  # the EP plan alone across the ranks of one (empty) TP group: `ep_size == tp_size`
            return DistributedConfig(tp_size=self.world, tp_plan={}, ep_size=self.ep, ep_implementation="all_reduce")
        return DistributedConfig(fsdp_size=self.world, ep_size=self.ep, ep_implementation="all_to_all")


LAYOUTS = {
    "ep2": Layout(world=2, ep=2),
    "ep4": Layout(world=4, ep=4),  # every expert of Qwen3-MoE, Qwen3-Next and GPT-OSS on its own rank
    "ep2_all_reduce": Layout(world=2, ep=2, shared_batch=True),
    "ep4_all_reduce": Layout(world=4, ep=4, shared_batch=True),
    "ep2_sp2": Layout(world=4, ep=2, sp=2),
}


def make_config(family: str):
    entry = TABLE[family]
    config = getattr(transformers, entry.config_class)(**entry.config_kwargs(EP_CONFIG, "expert_parallel"))
    # GPT-OSS (attention sinks) has no sdpa path; the Ulysses tests run eager too
    config._attn_implementation = "eager"
    return config


def build(family: str, module) -> torch.nn.Module:
    torch.manual_seed(0)
    model = getattr(module, TABLE[family].causal_lm)(make_config(family))
    with torch.no_grad():  # norm weights away from their init, so a norm that drops its weight shows
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def global_batch() -> dict[str, torch.Tensor]:
    """ROWS rows with the same number of labels each (the first IGNORED_PREFIX ignored)."""
    input_ids = torch.randint(1, EP_CONFIG["vocab_size"], (ROWS, SEQ_LEN), generator=torch.Generator().manual_seed(42))
    labels = input_ids.clone()
    labels[:, :IGNORED_PREFIX] = -100
    return {"input_ids": input_ids, "labels": labels}


def distribute(model: torch.nn.Module, layout: Layout) -> torch.nn.Module:
    """Apply the model's EP (and FSDP2) plans as from_pretrained(distributed_config=...) does, then fill the shards."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    from transformers.distributed.utils import initialize_distributed_mesh

    full = {name: tensor.detach().clone() for name, tensor in model.named_parameters(remove_duplicate=False)}
    distributed_config = layout.distributed_config()
    _, mesh_manager = initialize_distributed_mesh(distributed_config)  # as from_pretrained builds it (5.25)
    model = type(model).maybe_distribute_model(model, distributed_config, mesh_manager)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if isinstance(parameter, DTensor):
                parameter.copy_(distribute_tensor(full[name], parameter.device_mesh, parameter.placements))
            else:
                parameter.copy_(full[name])
    return model


def local(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def full_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """Every gradient gathered to a full tensor (a collective: every rank calls it in the same order)."""
    from torch.distributed.tensor import DTensor

    grads = {}
    for name, parameter in model.named_parameters():
        grad = parameter.grad
        grads[name] = None if grad is None else (grad.full_tensor() if isinstance(grad, DTensor) else grad).clone()
    return grads


def experts_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [module for name, module in model.named_modules() if name.endswith("mlp.experts")]


def step(model: torch.nn.Module, batch: dict[str, torch.Tensor], sp_size: int) -> torch.Tensor:
    """Forward + backward on this rank's rows; returns the loss of those rows (whole sequences)."""
    model.train()
    if sp_size == 1:
        loss = model(**batch).loss
        loss.backward()
        return loss.detach()
    loss = model(**shard_batch(batch)).loss
    # each SP rank's loss is its share of its rows' mean; FSDP2 averages the gradients over every rank, SP ranks
    # included, so the share is scaled by the SP degree first (patchgen/runtime/sequence_parallel.py, reduce_loss)
    (loss * sp_size).backward()
    return sp.reduce_loss(loss)


def _rank_main(rank: int, layout: Layout, families: list[str], out_dir: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{out_dir / 'store'}",
        rank=rank,
        world_size=layout.world,
        timeout=timedelta(seconds=120),
    )
    results = {}
    try:
        data_size = 1 if layout.shared_batch else layout.world // layout.sp
        data_rank = 0 if layout.shared_batch else rank % data_size
        if layout.sp > 1:
            # the ranks holding one data-parallel rank's rows split its sequences: {0, 2} {1, 3} for EP 2 x SP 2,
            # across transformers' EP groups ({0, 1} {2, 3}: consecutive ranks), so an EP pair exchanges tokens
            # of two different sequences and each sequence is split over both EP pairs
            groups = [dist.new_group(list(range(start, layout.world, data_size))) for start in range(data_size)]
            sp.set_sequence_parallel_group(groups[data_rank])
        rows = slice(data_rank * ROWS // data_size, (data_rank + 1) * ROWS // data_size)
        batch = {key: value[rows] for key, value in global_batch().items()}
        for family in families:
            sides = {"actual": f"generated.{family}.patched_modeling_{family}_cpu"}
            if layout.sp == 1:  # stock has no Ulysses path: under SP only the generated file runs
                sides["expected"] = f"transformers.models.{family}.modeling_{family}"
            results[family] = {}
            for side, module_name in sides.items():
                model = distribute(build(family, importlib.import_module(module_name)), layout)
                loss = step(model, batch, layout.sp)
                dist.all_reduce(loss, op=dist.ReduceOp.AVG)
                experts = experts_modules(model)
                results[family][side] = {
                    "loss": loss,
                    "grads": full_gradients(model),
                    "experts_implementation": model.config._experts_implementation,
                    "local_experts": {module.num_experts for module in experts},
                    "local_rows": {local(module.gate_up_proj).shape[0] for module in experts},
                }
        torch.save(results, out_dir / f"rank{rank}.pt")
    finally:
        sp.set_sequence_parallel_group(None)
        dist.destroy_process_group()


def single_process(family: str) -> dict:
    """Stock in one process on the whole batch: the loss and every gradient."""
    stock = build(family, importlib.import_module(f"transformers.models.{family}.modeling_{family}"))
    stock.train()
    loss = stock(**global_batch()).loss
    loss.backward()
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in stock.named_parameters()}
    return {"loss": loss.detach(), "grads": grads, "num_experts": experts_modules(stock)[0].num_experts}


def families_for(layout: Layout) -> list[str]:
    """The families a layout runs: under Ulysses those with it (GPT-OSS has none: sequence_parallel=False)."""
    return [family for family in FAMILIES if layout.sp == 1 or TABLE[family].sequence_parallel]


CASES = [(name, family) for name, layout in LAYOUTS.items() for family in families_for(layout)]


@pytest.fixture(scope="module")
def ep_results(tmp_path_factory):
    """Every family of a layout on all its ranks: one set of forked processes per layout (start-up dominates)."""
    cache: dict[str, list[dict]] = {}

    def results(name: str) -> list[dict]:
        if name not in cache:
            layout, out_dir = LAYOUTS[name], tmp_path_factory.mktemp(name)
            mp.start_processes(
                _rank_main, args=(layout, families_for(layout), out_dir), nprocs=layout.world, start_method="fork"
            )
            cache[name] = [torch.load(out_dir / f"rank{rank}.pt") for rank in range(layout.world)]
        return cache[name]

    return results


def assert_equal_results(actual: dict, expected: dict, **tolerance) -> None:
    torch.testing.assert_close(actual["loss"], expected["loss"], **tolerance)
    assert actual["grads"].keys() == expected["grads"].keys()
    for name, grad in expected["grads"].items():
        if grad is None:
            assert actual["grads"][name] is None, f"{name}: a gradient where the reference has none"
            continue
        torch.testing.assert_close(actual["grads"][name], grad, **tolerance, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.slow
@pytest.mark.parametrize(("layout_name", "family"), CASES)
def test_expert_parallel_equals_stock_and_one_process(ep_results, layout_name, family):
    layout, ranks = LAYOUTS[layout_name], ep_results(layout_name)
    reference = single_process(family)
    for results in ranks:
        result = results[family]
        actual = result["actual"]
        # the generated file's own experts kernel ran, on this rank's experts only
        assert actual["experts_implementation"] == ("torch_fused_moe" if TABLE[family].liger_experts else "grouped_mm")
        assert actual["local_experts"] == {reference["num_experts"] // layout.ep}
        # beside FSDP2 each EP rank's experts are FSDP-sharded again over the `efsdp` ranks holding the same experts
        efsdp = 1 if layout.shared_batch else layout.world // layout.ep
        assert actual["local_rows"] == {reference["num_experts"] // layout.ep // efsdp}
        if "expected" in result:
            expected = result["expected"]
            assert expected["experts_implementation"] == "grouped_mm"
            assert expected["local_experts"] == actual["local_experts"]
            # bitwise, measured: both kernels sort the rows by expert and multiply each expert's rows at once (stock's
            # grouped_mm with torch's grouped_mm, the generated torch_fused_moe with transformers' fallback, a torch.mm
            # per expert: the same bits on CPU), then weight the slots and sum them alike; the rest is the same ops
            assert_equal_results(actual, expected, rtol=0, atol=0)
        # one process on the whole batch: another reduction order (FSDP2's mean over ranks, row subsets), so
        # torch's fp32 defaults (measured: loss within 1e-6, gradients within 6e-8)
        assert_equal_results(actual, reference)


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_moe_expert_parallel.py"


@pytest.mark.slow
def test_the_example_with_expert_parallelism_trains_like_one_process(tmp_path):
    """examples/train_moe_expert_parallel.py under torchrun (EP 2 beside FSDP2, 2 gloo processes) and in one process:
    the same losses step by step (plain SGD, whose updates scale with the gradients, so a wrong reduction shows)."""
    args = ["--steps", "3", "--optimizer", "sgd", "--lr", "0.5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    runs = {
        name: subprocess.Popen(
            [*command, str(EXAMPLE), *args, "--losses-out", str(tmp_path / f"{name}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, command in (("ep", torchrun), ("single", [sys.executable]))
    }
    outputs = {}
    for name, process in runs.items():  # both at once: most of their time is importing torch and transformers
        outputs[name] = process.communicate(timeout=300)[0]
        assert process.returncode == 0, f"{name}: {outputs[name][-3000:]}"
    assert "FSDP2 2 x expert parallel 2 (4 experts each)" in outputs["ep"]
    losses = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in runs}
    assert len(losses["ep"]) == 3
    torch.testing.assert_close(torch.tensor(losses["ep"]), torch.tensor(losses["single"]))


def test_the_example_refuses_an_expert_parallel_size_that_does_not_divide_the_processes():
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--ep-size", "3"],
        env={**os.environ, "WORLD_SIZE": "2", "RANK": "0"},  # as torchrun --nproc-per-node 2 starts each process
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "train_moe_expert_parallel.py: error: --ep-size 3 and --sp-size 1 must divide the number of processes (2)"
    ]
