"""Train Qwen3-MoE from the generated modeling file with expert parallelism beside FSDP2 (and Ulysses SP).

    torchrun --nproc-per-node 2 examples/train_moe_expert_parallel.py --steps 5                # EP 2 (gloo, CPU)
    torchrun --nproc-per-node 4 examples/train_moe_expert_parallel.py --steps 5 --ep-size 2 --sp-size 2
    torchrun --nproc-per-node 2 examples/train_moe_expert_parallel.py --model-path ./qwen3-moe  # needs accelerate
    python examples/train_moe_expert_parallel.py --steps 5                                     # one process

The parallelism is transformers' own (`DistributedConfig(fsdp_size=<processes>, ep_size=--ep-size)`): the
model's `base_model_ep_plan` splits the routed experts whole over the EP ranks, each token reaches its
experts' ranks with an all-to-all (`ep_implementation="all_to_all"`), and FSDP2 shards the dense parameters
over every process (and each EP rank's experts over the processes holding the same experts). Every process
holds its own rows of the global batch, or with `--sp-size P` a 1/P slice of them (Ulysses: the processes
of one data-parallel rank split its sequences). The experts kernel is the generated file's default
(`torch_fused_moe` in the `_cpu` file, Liger's fused MoE in the `_gpu` file); it runs on the local experts.

With `--model-path` the model is loaded with `from_pretrained(..., distributed_config=...)`, which shards while
loading and needs `accelerate`; without it a tiny random model is built in memory and distributed the way
`from_pretrained` does before loading (`maybe_distribute_model`), its shards filled from the in-memory
weights. The data (arithmetic progressions of token ids) depend on the seed and step only: `--batch-size`
rows per step whatever the process count, so one process trains the same way (fp32 on CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: generated/ and patchgen/

from patchgen.runtime import reduce_loss, set_sequence_parallel_group, shard_batch  # noqa: E402


# The tiny random model trained without --model-path: 8 experts, so EP 2, 4 and 8 divide them.
TINY_CONFIG = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_experts=8,
    num_experts_per_tok=2,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model-path", type=Path, help="local Qwen3-MoE checkpoint folder; default: a tiny random model"
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4, help="rows of the global batch (all processes)")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--ep-size", type=int, default=0, help="expert-parallel degree (default: all processes)")
    parser.add_argument("--sp-size", type=int, default=1, help="Ulysses sequence-parallel degree")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--losses-out", type=Path, help="write the per-step losses (rank 0) to this JSON file")
    return parser.parse_args()


def check_args(args: argparse.Namespace, world_size: int) -> str | None:
    """What is wrong with the arguments (one line), or None. Runs before any process group or model exists."""
    for name in ("steps", "batch_size", "seq_len", "sp_size"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
    if args.losses_out is not None and not args.losses_out.parent.is_dir():
        return f"--losses-out {args.losses_out}: folder {args.losses_out.parent} does not exist"
    model_config = TINY_CONFIG
    if args.model_path is not None:
        try:
            model_config = json.loads((args.model_path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            return f"--model-path {args.model_path}: cannot read config.json ({error})"
    if args.model_path is not None and world_size > 1 and importlib.util.find_spec("accelerate") is None:
        return "--model-path on several processes loads with from_pretrained(distributed_config=...), which needs accelerate"
    ep_size = args.ep_size or world_size
    if world_size % ep_size or world_size % args.sp_size:
        return f"--ep-size {ep_size} and --sp-size {args.sp_size} must divide the number of processes ({world_size})"
    if model_config.get("num_experts", 0) % ep_size:
        return f"--ep-size {ep_size} does not divide the model's num_experts ({model_config.get('num_experts')})"
    data_size = world_size // args.sp_size
    if args.batch_size % data_size:
        return f"--batch-size {args.batch_size} does not divide over {data_size} data-parallel ranks"
    if args.seq_len % args.sp_size or model_config.get("num_attention_heads", 0) % args.sp_size:
        return f"--sp-size {args.sp_size} must divide --seq-len and the model's num_attention_heads"
    return None


def build_model(args: argparse.Namespace, world_size: int, device: torch.device):
    from transformers import Qwen3MoeConfig
    from transformers.distributed import DistributedConfig

    if device.type == "cuda":
        from generated.qwen3_moe.patched_modeling_qwen3_moe_gpu import Qwen3MoeForCausalLM
    else:
        from generated.qwen3_moe.patched_modeling_qwen3_moe_cpu import Qwen3MoeForCausalLM

    ep_size = args.ep_size or world_size
    distributed_config = DistributedConfig(fsdp_size=world_size, ep_size=ep_size, ep_implementation="all_to_all")
    if args.model_path:
        return Qwen3MoeForCausalLM.from_pretrained(
            args.model_path, distributed_config=distributed_config, local_files_only=True
        )
    torch.manual_seed(args.seed)  # the same initial weights on every process
    model = Qwen3MoeForCausalLM(Qwen3MoeConfig(**TINY_CONFIG)).to(device)
    if world_size == 1:
        return model
    return distribute_in_memory(model, distributed_config)


def distribute_in_memory(model, distributed_config):
    """Apply the model's EP and FSDP2 plans as from_pretrained(distributed_config=...) does, then fill every shard
    from the weights the model holds (the same on every process)."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    from transformers.distributed.utils import initialize_distributed_mesh

    full = {name: tensor.detach().clone() for name, tensor in model.named_parameters()}
    _, mesh_manager = initialize_distributed_mesh(distributed_config)
    model = type(model).maybe_distribute_model(model, distributed_config, mesh_manager)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if isinstance(parameter, DTensor):
                parameter.copy_(distribute_tensor(full[name], parameter.device_mesh, parameter.placements))
    return model


def synthetic_batch(step: int, args, vocab_size: int, device) -> dict[str, torch.Tensor]:
    """The global batch of a step: `--batch-size` arithmetic progressions mod vocab (random start and stride)."""
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    start = torch.randint(0, vocab_size, (args.batch_size, 1), generator=generator)
    stride = torch.randint(1, 8, (args.batch_size, 1), generator=generator)
    input_ids = ((start + stride * torch.arange(args.seq_len)) % vocab_size).to(device)
    return {"input_ids": input_ids, "labels": input_ids}


def init_distributed() -> torch.device:
    """nccl on GPUs, gloo on CPU; a one-process group (in-memory store) when not started by torchrun."""
    use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if "RANK" not in os.environ:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    else:
        dist.init_process_group(backend)
    if not use_cuda:
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    return device


def train(args: argparse.Namespace, device: torch.device) -> None:
    world_size, rank = dist.get_world_size(), dist.get_rank()
    data_size = world_size // args.sp_size
    data_rank = rank % data_size
    if args.sp_size > 1:
        # the processes holding one data-parallel rank's rows split its sequences (set before building the model:
        # the attention layers fix their head split then); the EP groups are consecutive processes, so an EP group
        # exchanges the tokens of different sequences
        groups = [dist.new_group(list(range(start, world_size, data_size))) for start in range(data_size)]
        set_sequence_parallel_group(groups[data_rank])
    model = build_model(args, world_size, device).train()
    optimizer_class = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.SGD
    optimizer = optimizer_class(model.parameters(), lr=args.lr)
    if rank == 0:
        ep_size = args.ep_size or world_size
        print(
            f"{world_size} processes: FSDP2 {world_size} x expert parallel {ep_size} "
            f"({model.config.num_experts // ep_size} experts each), "
            f"sequence parallel {args.sp_size}, device {device.type}, experts kernel {model.config._experts_implementation}"
        )
    rows = slice(data_rank * args.batch_size // data_size, (data_rank + 1) * args.batch_size // data_size)
    losses = []
    for step in range(1, args.steps + 1):
        batch = {
            key: value[rows] for key, value in synthetic_batch(step, args, model.config.vocab_size, device).items()
        }
        if args.sp_size > 1:
            loss = model(**shard_batch(batch), use_cache=False).loss  # this process's share of its rows' loss
            # FSDP2 averages gradients over all processes: the shares of one data-parallel rank must add up instead
            (loss * args.sp_size).backward()
            loss = reduce_loss(loss)
        else:
            loss = model(**batch, use_cache=False).loss
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_loss = loss.detach().clone()
        dist.all_reduce(step_loss, op=dist.ReduceOp.AVG)  # every row has as many labels: the global batch's loss
        losses.append(step_loss.item())
        if rank == 0:
            print(f"step {step:4d} | loss {step_loss.item():.4f}", flush=True)
    if rank == 0 and args.losses_out:
        args.losses_out.write_text(json.dumps(losses))


def main() -> None:
    args = parse_args()
    error = check_args(args, int(os.environ["WORLD_SIZE"]) if "RANK" in os.environ else 1)
    if error:  # every process checks the same arguments, before any collective: each says why and stops
        print(f"train_moe_expert_parallel.py: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    device = init_distributed()
    try:
        train(args, device)
    finally:
        set_sequence_parallel_group(None)
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
