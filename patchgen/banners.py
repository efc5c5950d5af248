"""The comment blocks that mark every change in a generated file, and the file header."""

from __future__ import annotations

from collections.abc import Iterable


RULE = "# " + "=" * 78


def banner(title: str, lines: Iterable[str], indent: str = "") -> str:
    """A ruled comment block; it sits directly above the code it describes (no blank line)."""
    body = [RULE, f"# {title}", *(f"# {line}" if line else "#" for line in lines), RULE]
    return "".join(f"{indent}{line}\n" for line in body)


def reason_lines(description: str, where: object) -> list[str]:
    reason = " ".join(description.split()) or "(no description given)"
    return [f"Reason: {reason}", f"Patch source: {where}"]


def marker(text: str, indent: str) -> str:
    """A one-line comment inside a method marking where added code begins or ends."""
    return f"{indent}# {text}\n"


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
    return "\n".join(out) + "\n"


def regenerate_command(config_module: str, config_name: str = "config") -> str:
    """The command that rebuilds a file: `-c NAME` when the PatchConfig is not in the default `config`."""
    option = f" -c {config_name}" if config_name != "config" else ""
    return f"python -m patchgen.run_codegen {config_module}{option} --diff"
