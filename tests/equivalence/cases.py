"""Build a stock model and a generated model from one tiny config, with the same weights and inputs."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

import torch
from transformers import PretrainedConfig, PreTrainedModel

from tests.equivalence.architectures import Architecture, architecture_for
from tests.equivalence.discovery import GeneratedModule


SEED = 1234
BATCH, SEQ_LEN = 2, 12  # longer than the tiny sliding windows (5), so they cut something
# Added to every parameter after HF's init: norm weights stop being exactly 1 (a kernel that dropped the
# weight would otherwise still match) and activations are O(1), so a wrong op moves the logits visibly.
WEIGHT_NOISE = 0.05


@dataclass(frozen=True)
class Tolerance:
    """assert_close tolerances; gradients use an atol relative to the tensor's own largest entry."""

    rtol: float
    atol: float
    grad_rtol: float
    grad_atol_relative: float
    exact_tokens: bool  # greedy tokens must match exactly, or may differ only where stock has a near tie


# Pure-torch files in fp32 on CPU: torch.testing's fp32 defaults (they compute the same ops as upstream).
FP32 = Tolerance(rtol=1.3e-6, atol=1e-5, grad_rtol=1.3e-6, grad_atol_relative=1e-5, exact_tokens=True)
# Kernel files in fp32 on CUDA: fused kernels reduce in another order (and the fused loss in chunks), so
# results move by float32 rounding, ~1e-6 relative; 1e-4 leaves room for that and still sees a 0.1% error.
FP32_KERNELS = Tolerance(rtol=1e-4, atol=1e-4, grad_rtol=1e-4, grad_atol_relative=1e-4, exact_tokens=False)
# Kernel files in bf16 on CUDA: bf16 keeps 8 mantissa bits. Measured on these tiny models, stock in bf16 is
# itself 0.010-0.017 away from stock in fp32 (logits up to ~2), and two bf16 implementations of the same ops
# are up to ~0.019 apart; atol 0.04 + rtol 0.02 is ~2-3x that floor. bf16 catches gross errors only; the
# fp32 run on CUDA is the sharp check.
BF16 = Tolerance(rtol=2e-2, atol=4e-2, grad_rtol=5e-2, grad_atol_relative=2e-2, exact_tokens=False)
# Kernel files whose fp32 matmuls run as TF32 on CUDA (see Architecture.tf32_kernels): TF32 keeps 10 mantissa
# bits (~5e-4 relative per product); 5e-3 is ~5x the differences measured on an H200 and still sees a 1% error.
TF32_KERNELS = Tolerance(rtol=5e-3, atol=5e-3, grad_rtol=5e-3, grad_atol_relative=5e-3, exact_tokens=False)
# bf16 gradients: each is compared with stock in fp32 on the same device, and may be at most this many times
# as far from it as stock's own bf16 gradient is (plus grad_atol_relative x its largest entry): two bf16
# implementations round at different places, and a fixed tolerance cannot tell that from a wrong op.
BF16_GRAD_ERROR_FACTOR = 2.0


@dataclass(frozen=True)
class Setting:
    device: str
    dtype: torch.dtype
    tolerance: Tolerance
    # True: every loss of a fused-loss file through its fused path, and by the GPU files' kernel (see
    # EquivalenceCase.running); the tiny models make ~2.4e3 logits per call, far below the size switch's
    # threshold (2**29), so otherwise their fused path never runs here
    fused_loss: bool = False

    @property
    def dtype_name(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16"}[self.dtype]

    @property
    def label(self) -> str:
        """The part of a row id after '@': the dtype, and '+fused-loss' when the fused loss is forced."""
        return self.dtype_name + ("+fused-loss" if self.fused_loss else "")

    @property
    def name(self) -> str:
        return f"{self.device}/{self.label}"


CPU_FP32 = Setting("cpu", torch.float32, FP32)
# The fused-loss files' CPU twins once more, every loss through the fused path and the GPU files' kernel: how
# the fused path handles stock's loss arguments and errors (labels vs kept positions) is checked without a GPU.
CPU_FP32_FUSED_LOSS = Setting("cpu", torch.float32, FP32, fused_loss=True)
CUDA_BF16 = Setting("cuda", torch.bfloat16, BF16)
CUDA_FP32 = Setting("cuda", torch.float32, FP32_KERNELS)


@dataclass(frozen=True)
class ModelPair:
    stock: PreTrainedModel
    generated: PreTrainedModel

    def __iter__(self):
        return iter((self.stock, self.generated))


class EquivalenceCase:
    """One generated module under test; models and forward results are built once and shared by all checks."""

    def __init__(self, module: GeneratedModule, setting: Setting) -> None:
        self.module = module
        self.setting = setting
        self.architecture: Architecture = architecture_for(module)

    @property
    def tolerance(self) -> Tolerance:
        if self.setting.device == "cuda" and self.setting.dtype == torch.float32 and self.architecture.tf32_kernels:
            return TF32_KERNELS
        return self.setting.tolerance

    @property
    def id(self) -> str:
        """e.g. qwen3/cpu@fp32, qwen3/gpu@bf16: the row of the table and the key of KNOWN_DIFFERENCES."""
        return f"{self.module.id}@{self.setting.label}"

    @contextmanager
    def running(self) -> Iterator[None]:
        """The block runs as the setting says: with `fused_loss`, the size switch's threshold at 0 (every loss
        fused) and the file's `linear_cross_entropy` bound to the GPU files' `fastest_linear_cross_entropy`,
        which runs its chunked torch kernel off CUDA. The CPU twin (`torch_linear_cross_entropy`) is
        `cross_entropy` itself and would hide what a real kernel does differently (GPU run 1: labels longer
        than the kept positions raised the kernel's RuntimeError, not stock's ValueError)."""
        if not self.setting.fused_loss:
            yield
            return
        from patchgen.runtime import losses

        module = self.generated_module
        saved = losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS, module.linear_cross_entropy
        losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS = 0
        module.linear_cross_entropy = losses.fastest_linear_cross_entropy
        try:
            yield
        finally:
            losses.FUSED_LINEAR_CROSS_ENTROPY_MIN_LOGITS, module.linear_cross_entropy = saved

    # -- modules and classes -------------------------------------------------------------------------
    @cached_property
    def generated_module(self) -> ModuleType:
        return importlib.import_module(self.module.import_name)

    @cached_property
    def stock_module(self) -> ModuleType:
        return importlib.import_module(self.module.source_module)

    @cached_property
    def stock_class(self) -> type[PreTrainedModel]:
        return getattr(self.stock_module, self.architecture.causal_lm_class)

    @cached_property
    def generated_class(self) -> type[PreTrainedModel]:
        name = self.architecture.causal_lm_class
        cls = getattr(self.generated_module, name, None)
        if cls is None:
            raise AssertionError(f"{self.module.path}: defines no {name}")
        if cls.__module__ != self.module.import_name:
            # A re-exported stock class would make every comparison below compare stock with itself.
            raise AssertionError(f"{self.module.path}: {name} is {cls.__module__}.{name}, not defined in the file")
        return cls

    @cached_property
    def config(self) -> PretrainedConfig:
        return self.architecture.make_config()

    @property
    def text_config(self) -> PretrainedConfig:
        """The decoder's config: the config itself, or the text config a vision-language config nests."""
        return self.config.get_text_config()

    # -- models ----------------------------------------------------------------------------------------
    def build_pair(self, attn_implementation: str = "sdpa") -> ModelPair:
        """Stock and generated model with identical weights, on the setting's device and dtype, in train mode."""
        stock = self.build_model(self.stock_class, attn_implementation)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(SEED + 1)
            for parameter in stock.parameters():
                noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
                parameter.add_(noise, alpha=WEIGHT_NOISE)
        generated = self.build_model(self.generated_class, attn_implementation)
        generated.load_state_dict(stock.state_dict(), strict=True)
        return ModelPair(*(self.to_setting(model) for model in (stock, generated)))

    def build_model(self, cls: type[PreTrainedModel], attn_implementation: str) -> PreTrainedModel:
        config = copy.deepcopy(self.config)  # init writes into the config; never share one between models
        if attn_implementation == "sdpa" and not cls._supports_sdpa:
            attn_implementation = "eager"  # GPT-OSS (attention sinks): stock and generated run eager only
        config._attn_implementation = attn_implementation
        torch.manual_seed(SEED)
        return cls(config)

    def to_setting(self, model: PreTrainedModel) -> PreTrainedModel:
        return model.to(device=self.setting.device, dtype=self.setting.dtype).train()

    @cached_property
    def pair(self) -> ModelPair:
        return self.build_pair()

    # -- inputs and shared forward results -------------------------------------------------------------
    @cached_property
    def input_ids(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(SEED + 2)
        # ids >= 3 keep pad/bos/eos out of the prompt
        ids = torch.randint(3, self.text_config.vocab_size, (BATCH, SEQ_LEN), generator=generator)
        return ids.to(self.setting.device)

    @cached_property
    def logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits from a forward without labels (a fused-loss forward may skip logits when given labels)."""
        with torch.no_grad():
            return tuple(model(input_ids=self.input_ids).logits for model in (self.pair.stock, self.pair.generated))

    @cached_property
    def reference_grads(self) -> dict[str, torch.Tensor]:
        """Stock's gradients in fp32 on the setting's device, same weights: the yardstick for bf16 gradients."""
        stock = copy.deepcopy(self.pair.stock).to(dtype=torch.float32)
        loss = stock(input_ids=self.input_ids, labels=self.input_ids).loss
        loss.backward()
        return {name: parameter.grad for name, parameter in stock.named_parameters()}

    @cached_property
    def loss_and_grads(self) -> tuple[tuple[torch.Tensor, dict[str, torch.Tensor]], ...]:
        """(loss, {parameter name: grad}) for stock and generated, from one forward with labels + backward."""
        results = []
        for model in (self.pair.stock, self.pair.generated):
            model.zero_grad(set_to_none=True)
            loss = model(input_ids=self.input_ids, labels=self.input_ids).loss
            loss.backward()
            grads = {name: parameter.grad for name, parameter in model.named_parameters()}
            model.zero_grad(set_to_none=True)
            results.append((loss.detach(), grads))
        return tuple(results)
