"""Find generated modeling files and read which upstream module each one was generated from."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path


GENERATED_GLOB = "generated/*/patched_modeling_*.py"
# The generator writes this line into every banner; it names the upstream module the file was cut from.
SOURCE_LINE = re.compile(r"^# Source: (transformers\.models\.(\w+)\.modeling_\w+)\s*$", re.MULTILINE)
VARIANT_SUFFIX = re.compile(r"_(cpu|gpu)$")
# A file importing this switch has the fused-loss forward (patchgen/sets/losses/fused_loss.py): the harness runs it a
# second time with the switch forced to the fused kernel (tests.equivalence.cases.CPU_FP32_FUSED_LOSS).
FUSED_LOSS_MODULE, FUSED_LOSS_SWITCH = "patchgen.runtime.losses", "use_fused_linear_cross_entropy"


class GeneratedFileError(Exception):
    """A generated file the harness cannot test: it must fail loudly, never be skipped."""


@dataclass(frozen=True)
class GeneratedModule:
    path: Path  # relative to the project root
    import_name: str  # e.g. generated.qwen3.patched_modeling_qwen3_cpu
    source_module: str  # e.g. transformers.models.qwen3.modeling_qwen3
    architecture: str  # the <x> of transformers.models.<x>: the key of the tiny-config table
    variant: str  # "cpu" (pure torch) or "gpu" (Liger / flash-attn kernels)
    # its causal-LM forward is patchgen/sets/losses/fused_loss.py's, which picks its loss by size at run time
    fused_loss: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.variant}"

    @property
    def needs_cuda(self) -> bool:
        return self.variant == "gpu"


def discover_generated_modules(root: Path, errors: list[str] | None = None) -> list[GeneratedModule]:
    """Every `generated/*/patched_modeling_*.py` under `root`, sorted by path.

    Raises on the first unreadable file, or, given an `errors` list, records its message there and goes on,
    so pytest can still collect the good files and fail a test for each bad one.
    """
    modules = []
    for path in sorted(root.glob(GENERATED_GLOB)):
        try:
            modules.append(read_generated_module(path.relative_to(root), root))
        except GeneratedFileError as error:
            if errors is None:
                raise
            errors.append(str(error))
    return modules


def read_generated_module(relative_path: Path, root: Path) -> GeneratedModule:
    text = (root / relative_path).read_text(encoding="utf-8")
    match = SOURCE_LINE.search(_leading_comments(text))
    if match is None:
        raise GeneratedFileError(
            f"{relative_path}: no '# Source: transformers.models.<x>.modeling_<x>' line in the header; "
            "regenerate it with `python -m patchgen.run_codegen --all`"
        )
    variant = VARIANT_SUFFIX.search(relative_path.stem)
    if variant is None:
        raise GeneratedFileError(
            f"{relative_path}: file name does not end in _cpu or _gpu, so the harness cannot tell which kernels it "
            "needs; name it patched_modeling_<model>_{cpu,gpu}.py"
        )
    import_name = ".".join(relative_path.with_suffix("").parts)
    return GeneratedModule(
        path=relative_path,
        import_name=import_name,
        source_module=match.group(1),
        architecture=match.group(2),
        variant=variant.group(1),
        fused_loss=FUSED_LOSS_SWITCH in _names_imported_from(text, FUSED_LOSS_MODULE),
    )


def _names_imported_from(text: str, module: str) -> set[str]:
    """The names a file imports from `module` (`from module import a, b as c` gives {"a", "b"})."""
    return {
        alias.name
        for node in ast.parse(text).body
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def _leading_comments(text: str) -> str:
    """The comment block before the first statement: the banner, not a string that happens to look like one."""
    tree = ast.parse(text)
    first_line = tree.body[0].lineno if tree.body else len(text.splitlines()) + 1
    return "\n".join(text.splitlines()[: first_line - 1])
