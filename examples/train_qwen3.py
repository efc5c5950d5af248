"""Train Qwen3 from the generated modeling file with FSDP2 and Ulysses sequence parallelism.

    torchrun --nproc-per-node 2 examples/train_qwen3.py --steps 20            # 2 CPU processes (gloo)
    torchrun --nproc-per-node 2 examples/train_qwen3.py --steps 20 --pack     # packed variable-length documents
    torchrun --nproc-per-node 8 examples/train_qwen3.py --model-path ./qwen3  # GPUs (nccl), Liger kernels
    python examples/train_qwen3.py --steps 20                                 # one process

Every process holds a 1/P slice of each sequence (P = --sp-size, all processes by default) and an
FSDP2 shard of the parameters. On GPUs the model comes from `patched_modeling_qwen3_gpu.py` (Liger
kernels, fused linear cross-entropy, bf16 compute); on CPU from `patched_modeling_qwen3_cpu.py` (same
code, pure-torch kernels, fp32). The data is synthetic (arithmetic progressions of token ids), the same
for any process count; `--pack` packs documents of random length into each sequence. Bad arguments
are reported in one line with exit status 2 by every process, before any process group or model exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: generated/ and patchgen/

from patchgen.runtime import reduce_loss, set_sequence_parallel_group, shard_batch  # noqa: E402


# The tiny random model trained without --model-path (its head counts are checked against --sp-size too).
TINY_CONFIG = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-path", type=Path, help="local Qwen3 checkpoint folder; default: a tiny random model")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per data-parallel replica")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--sp-size", type=int, default=0, help="sequence-parallel degree (default: all processes)")
    parser.add_argument("--pack", action="store_true", help="pack variable-length documents into each sequence")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attn-implementation", default="sdpa", choices=["eager", "sdpa", "flash_attention_2"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--losses-out", type=Path, help="write the per-step losses (rank 0) to this JSON file")
    return parser.parse_args()


def check_args(args: argparse.Namespace, world_size: int) -> str | None:
    """What is wrong with the arguments (one line), or None. Runs before any process group or model exists."""
    for name in ("steps", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
    if args.lr <= 0:
        return f"--lr must be positive, got {args.lr}"
    if args.sp_size < 0:
        return f"--sp-size must be 0 (all processes) or positive, got {args.sp_size}"
    if args.losses_out is not None and not args.losses_out.parent.is_dir():
        return f"--losses-out {args.losses_out}: folder {args.losses_out.parent} does not exist"
    if args.model_path is not None:
        config_file = args.model_path / "config.json"
        if not config_file.is_file():
            return f"--model-path {args.model_path}: no config.json there (a local checkpoint folder; the hub is not used)"
        try:
            model_config = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            return f"--model-path {args.model_path}: cannot read config.json ({error})"
    else:
        model_config = TINY_CONFIG
    sp_size = args.sp_size or world_size
    heads = model_config.get("num_attention_heads")
    kv_heads = model_config.get("num_key_value_heads") or heads
    if world_size % sp_size:
        return f"--sp-size {sp_size} does not divide the number of processes ({world_size})"
    if not isinstance(heads, int) or heads % sp_size:
        return f"sequence-parallel size {sp_size} does not divide the model's num_attention_heads ({heads})"
    if kv_heads % sp_size and sp_size % kv_heads:
        return f"sequence-parallel size {sp_size} and the model's num_key_value_heads ({kv_heads}) must divide one another"
    if args.seq_len % sp_size:
        return f"--seq-len {args.seq_len} is not divisible by the sequence-parallel size {sp_size}"
    return None


def init_distributed() -> torch.device:
    """nccl on GPUs, gloo on CPU; a one-process group (in-memory store, no files) when not started by torchrun."""
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


def build_model(args: argparse.Namespace, device: torch.device):
    if device.type == "cuda":
        from generated.qwen3.patched_modeling_qwen3_gpu import Qwen3ForCausalLM
    else:
        from generated.qwen3.patched_modeling_qwen3_cpu import Qwen3ForCausalLM
    from transformers import Qwen3Config

    if args.model_path:
        model = Qwen3ForCausalLM.from_pretrained(
            args.model_path, attn_implementation=args.attn_implementation, local_files_only=True
        )
    else:
        config = Qwen3Config(**TINY_CONFIG, attn_implementation=args.attn_implementation)
        torch.manual_seed(args.seed)  # the same initial weights on every process
        model = Qwen3ForCausalLM(config)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model.to(device).train()


def _generator(step: int, replica: int, args) -> torch.Generator:
    """The data depend on (seed, step, data-parallel replica) only, not on the process count."""
    return torch.Generator().manual_seed(args.seed * 1_000_003 + step * 1009 + replica)


def _progressions(generator: torch.Generator, count: int, length: int, vocab_size: int) -> torch.Tensor:
    """`count` arithmetic progressions mod vocab (random start and stride): learnable in context."""
    start = torch.randint(0, vocab_size, (count, 1), generator=generator)
    stride = torch.randint(1, 8, (count, 1), generator=generator)
    return (start + stride * torch.arange(length)) % vocab_size


def synthetic_batch(step: int, replica: int, args, vocab_size: int, device) -> dict[str, torch.Tensor]:
    """One document per sequence, so the loss drops as the model learns to continue progressions."""
    input_ids = _progressions(_generator(step, replica, args), args.batch_size, args.seq_len, vocab_size)
    input_ids = input_ids.to(device)
    return {"input_ids": input_ids, "labels": input_ids}


def packed_synthetic_batch(step: int, replica: int, args, vocab_size: int, device) -> dict[str, torch.Tensor]:
    """Documents of random length (1/8 to 1/2 of a sequence) packed end to end; the last one is cut to fit.

    `position_ids` restart at 0 at each document: that is all the model needs to keep documents apart
    in attention, and `shard_batch` to keep them apart in the loss.
    """
    generator = _generator(step, replica, args)
    shortest, longest = max(2, args.seq_len // 8), max(2, args.seq_len // 2)
    rows, positions = [], []
    for _ in range(args.batch_size):
        documents = []
        while (filled := sum(len(document) for document in documents)) < args.seq_len:
            length = int(torch.randint(shortest, longest + 1, (1,), generator=generator))
            documents.append(_progressions(generator, 1, min(length, args.seq_len - filled), vocab_size)[0])
        rows.append(torch.cat(documents))
        positions.append(torch.cat([torch.arange(len(document)) for document in documents]))
    input_ids = torch.stack(rows).to(device)
    return {"input_ids": input_ids, "labels": input_ids, "position_ids": torch.stack(positions).to(device)}


def main() -> None:
    args = parse_args()
    error = check_args(args, int(os.environ["WORLD_SIZE"]) if "RANK" in os.environ else 1)
    if error:  # every process checks the same arguments, before any collective: each says why and stops
        print(f"train_qwen3.py: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    device = init_distributed()
    try:
        train(args, device)
    finally:
        set_sequence_parallel_group(None)
        dist.destroy_process_group()


def train(args: argparse.Namespace, device: torch.device) -> None:
    world_size, rank = dist.get_world_size(), dist.get_rank()
    sp_size = args.sp_size or world_size
    dp_size = world_size // sp_size

    # (dp, sp) mesh: the processes of one "sp" row share a batch, each holding 1/sp of every sequence.
    # Sequence parallelism is set before the model is built: the attention layers fix their head split then.
    mesh = init_device_mesh(device.type, (dp_size, sp_size), mesh_dim_names=("dp", "sp"))
    if sp_size > 1:
        set_sequence_parallel_group(mesh["sp"].get_group())
    replica = mesh["dp"].get_local_rank()

    model = build_model(args, device)
    # FSDP2 shards every parameter over all processes, one decoder layer at a time.
    fsdp_mesh = init_device_mesh(device.type, (world_size,), mesh_dim_names=("fsdp",))
    precision = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    fsdp_kwargs = {"mesh": fsdp_mesh, "mp_policy": precision} if device.type == "cuda" else {"mesh": fsdp_mesh}
    for layer in model.model.layers:
        fully_shard(layer, **fsdp_kwargs)
    fully_shard(model, **fsdp_kwargs)
    optimizer_class = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.SGD
    optimizer = optimizer_class(model.parameters(), lr=args.lr)
    make_batch = packed_synthetic_batch if args.pack else synthetic_batch

    if rank == 0:
        data = "packed documents" if args.pack else "one document per sequence"
        print(
            f"{world_size} processes: data parallel {dp_size} x sequence parallel {sp_size}, device {device.type}, "
            f"{data}"
        )
    losses = []
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        batch = make_batch(step, replica, args, model.config.vocab_size, device)
        # this process's slice of the sequences: labels shifted before slicing (and ignored across documents),
        # global positions, and the whole batch's document layout for attention after the all-to-all
        shard = shard_batch(batch)
        loss = model(**shard, use_cache=False).loss  # this process's share of its replica's token-mean loss
        # FSDP averages gradients over all processes; the shares of one replica must add up instead
        (loss * sp_size).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        step_loss = reduce_loss(loss)  # the replica's loss over its whole sequences
        dist.all_reduce(step_loss, group=mesh["dp"].get_group())
        step_loss = step_loss.item() / dp_size
        seconds = time.perf_counter() - started
        tokens = args.batch_size * args.seq_len * dp_size
        losses.append(step_loss)
        if rank == 0:
            print(f"step {step:4d} | loss {step_loss:.4f} | {tokens / seconds:10.0f} tokens/s", flush=True)

    if rank == 0 and args.losses_out:
        args.losses_out.write_text(json.dumps(losses))


if __name__ == "__main__":
    main()
