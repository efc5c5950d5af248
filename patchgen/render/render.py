"""Plan -> output text: the header, then the upstream text with every planned edit applied.

The result is unformatted; `patchgen.render.formatting` normalises it the way upstream is formatted.
"""

from __future__ import annotations

from patchgen.plan import banners
from patchgen.plan.plan import Plan
from patchgen.syntax.source_text import apply_edits


def render(plan: Plan, extra_header_lines: list[str] | None = None, *, config_name: str = "config") -> str:
    """`config_name` is the variable holding the PatchConfig: the header's Regenerate line passes it on."""
    header = banners.header(
        source_module=plan.upstream.name,
        version=plan.upstream.version,
        config_module=plan.config_module,
        config_name=config_name,
        applied=plan.applied,
        extra_lines=extra_header_lines or [],
    )
    return header + apply_edits(plan.upstream.source.text, plan.edits)
