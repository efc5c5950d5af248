"""`patchgen survey`: the component-wise scaffold over model types, each compared with stock, as a Markdown table.

Three types run as a user runs them (`--only`, two jobs, a scratch folder of the survey's own): Granite and
Helium are generated and equal stock (some components kept upstream, each with its reason); Mamba (an SSM:
no attention class, its norm and loss not the shared sets' code) is refused. The full run is `make survey`.
"""

from __future__ import annotations

from conftest import run_cli

from patchgen.commands import cli, survey


def test_survey_of_three_types_writes_their_rows_and_the_summary(tmp_path):
    output = tmp_path / "survey.md"
    result = run_cli(
        "patchgen.commands.cli", "survey", "--only", "granite,helium,mamba", "--jobs", "2", "--output", str(output),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "3 types: 2 generated equal, 0 generated different, 1 refused"
    table = output.read_text()
    assert "**3 types: 2 generated equal, 0 generated different, 1 refused.**" in table
    rows = {line.split(" | ")[0].strip("|` "): line for line in table.splitlines() if line.startswith("| `")}
    assert sorted(rows) == ["granite", "helium", "mamba"]
    assert rows["granite"].startswith(
        "| `granite` | equal | attention, rms_norm, mlp, rope | causal_lm: no fused loss:"
    )
    assert rows["helium"].startswith("| `helium` | equal | attention, mlp, causal_lm | rms_norm: LIGER_RMS_NORM,")
    assert "<br>rope: LIGER_ROPE: upstream apply_rotary_pos_emb" in rows["helium"]
    assert rows["mamba"].startswith(
        "| `mamba` | refused | - | - | transformers.models.mamba.modeling_mamba: no shared set fits any component"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["survey.md"]  # scratch projects cleaned up


def test_a_defect_sets_the_exit_status_and_the_summary_counts_it():
    rows = [
        survey.Row("a", "equal"),
        survey.Row("b", "different", detail="logits"),
        survey.Row("c", "refused"),
        survey.Row("d", "error", detail="ran past the time limit (1 s)"),
    ]
    assert survey.summary(rows) == "4 types: 1 generated equal, 1 generated different, 1 refused, 1 error"
    table = survey.render_table(rows, transformers_version="x", complete=False)
    assert "| `b` | different | - | - | logits |" in table
    assert "(partial run: the types not listed were not reached)" in table


def test_unknown_type_is_a_usage_error(tmp_path):
    result = run_cli("patchgen.commands.survey", "--only", "no_such_type", cwd=tmp_path)
    assert result.returncode == 2
    assert "no causal-LM model type 'no_such_type' in transformers" in result.stderr
    assert not any(tmp_path.iterdir())


def test_console_script_runs_the_module_command():
    assert cli.main.commands["survey"] is survey.main


def test_tiny_config_sizes_latent_attention_and_per_layer_lists_for_two_layers():
    """Stock must build and run on the tiny config to be compared: DeepSeek-V3's latent attention gets latent and
    head sizes of its own scale, a key/value head per query head and expert groups its 4 experts divide into;
    a per-layer list keeps two entries, the first and the first other kind (a hybrid's linear and full attention),
    so it agrees with the two layers; a shared-experts count the defaults leave unset is one (Dots1)."""
    import transformers

    latent = survey.tiny_config(transformers.DeepseekV3Config)
    assert (latent.kv_lora_rank, latent.qk_rope_head_dim, latent.num_key_value_heads, latent.n_group) == (16, 8, 4, 2)
    dots = survey.tiny_config(transformers.Dots1Config)
    assert len(dots.layer_types) == dots.num_hidden_layers == 2 and dots.n_shared_experts == 1
    assert survey._two_layers(["dense", "dense", "sparse", "sparse"]) == ["dense", "sparse"]
    assert survey._two_layers(["full_attention"] * 4) == ["full_attention", "full_attention"]
    assert survey.tiny_config(transformers.BambaConfig).attn_layer_indices == [1]
    assert survey.tiny_config(transformers.MinistralConfig).head_dim == 8  # its default None breaks its attention


def test_a_time_out_is_reported_at_the_step_the_child_reached(monkeypatch, tmp_path):
    """BLT's stock model (its sub-configs at full size) builds for minutes: a child killed while stock builds is
    `not compared`, with the components it generated; killed before its first checkpoint, an `error`."""
    import json
    import subprocess
    from dataclasses import asdict

    reached = survey.Row(
        "blt", "not compared", patched=["mlp"], detail="stock did not build and run on the tiny config in"
    )

    def killed(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"], output=stdout)

    monkeypatch.setattr(survey.subprocess, "run", killed)
    stdout = json.dumps(asdict(reached)) + "\n"
    row = survey._run_child("blt", "BltForCausalLM", tmp_path, timeout=5)
    assert (row.status, row.patched) == ("not compared", ["mlp"])
    assert row.detail == "stock did not build and run on the tiny config in the time limit (5 s)"
    stdout = b""
    row = survey._run_child("blt", "BltForCausalLM", tmp_path, timeout=5)
    assert (row.status, row.detail) == ("error", "ran past the time limit (5 s)")


def test_tiny_config_keeps_a_top_1_router_top_1():
    """The tiny config routes top-2 of 4 experts, except where the model's own default is top-1: ZAYA's validator
    accepts only 1 (stock would not build), Llama 4's text model routes one expert per token."""
    import transformers

    assert survey.tiny_config(transformers.ZayaConfig).num_experts_per_tok == 1
    assert survey.tiny_config(transformers.Llama4TextConfig).num_experts_per_tok == 1
    assert survey.tiny_config(transformers.Qwen3MoeConfig).num_experts_per_tok == 2
