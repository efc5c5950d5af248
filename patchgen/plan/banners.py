"""The comment blocks that mark every change in a generated file, and the file header."""

from __future__ import annotations

from collections.abc import Iterable

from patchgen.syntax.sniffed import defuse


RULE = "# " + "=" * 78


def banner(title: str, lines: Iterable[str], indent: str = "") -> str:
    """A ruled comment block; it sits directly above the code it describes (no blank line)."""
    body = [RULE, f"# {title}", *(f"# {line}" if line else "#" for line in lines), RULE]
    return defuse("".join(f"{indent}{line}\n" for line in body))


def reason_lines(description: str, where: object) -> list[str]:
    reason = " ".join(description.split()) or "(no description given)"
    return [f"Reason: {reason}", f"Patch source: {where}"]


def patch_reason_lines(patch) -> list[str]:
    """Reason, source, and what a patch overrides or keeps: the lines every banner of a patch holds."""
    lines = reason_lines(patch.description, patch.source_note)
    if patch.keep_original_as:
        lines.append(f"Upstream's original kept as: {patch.keep_original_as}")
    if patch.overrides:
        lines.append(f"Overrides: {patch.overrides}")
    return lines


def marker(text: str, indent: str) -> str:
    """A one-line comment inside a method marking where added code begins or ends."""
    return defuse(f"{indent}# {text}\n")


def header(
    *,
    source_module: str,
    version: str,
    config_module: str,
    config_name: str = "config",
    applied: list[str],
    extra_lines: Iterable[str] = (),
) -> str:
    lines = [
        "AUTO-GENERATED FILE - DO NOT EDIT DIRECTLY",
        None,
        f"Source: {source_module}",
        f"Based on: {version}",
        f"Config: {config_module}",
        f"Regenerate: {regenerate_command(config_module, config_name)}",
        "",
        "Patches applied:" if applied else "Patches applied: none",
        *(f"- {item}" for item in applied),
        *extra_lines,
    ]
    out = [RULE]
    for line in lines:
        out.append(RULE if line is None else (f"# {line}" if line else "#"))
    out.append(RULE)
    return defuse("\n".join(out) + "\n")


def regenerate_command(config_module: str, config_name: str = "config") -> str:
    """The command that rebuilds a file: `-c NAME` when the PatchConfig is not in the default `config`."""
    option = f" -c {config_name}" if config_name != "config" else ""
    return f"python -m patchgen.run_codegen {config_module}{option} --diff"
