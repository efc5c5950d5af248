"""The one table of families (tests/families.py) and the committed generated files name the same model types.

Every model test derives its families from the join of the two, so a generated file whose type has no
entry would be skipped by all of them: it fails here, once, in one line naming the file and the table.
An entry without generated files fails here too (a family the table claims and nothing tests).
"""

from __future__ import annotations

import shutil

import pytest

from tests.families import REPO, TABLE, Family, covered, registration_problems


def test_every_generated_file_has_an_entry_and_every_entry_generated_files():
    problems = registration_problems()
    assert not problems, "\n".join(problems)
    assert covered() == sorted(TABLE)


@pytest.fixture
def generated_copy(tmp_path):
    """The committed generated files of two families, in a project layout under tmp_path."""
    for model in ("llama", "qwen3"):
        shutil.copytree(REPO / "generated" / model, tmp_path / "generated" / model)
    return tmp_path


def test_a_generated_type_without_entry_is_one_line_naming_file_and_table(generated_copy):
    table = {"qwen3": TABLE["qwen3"]}
    assert registration_problems(generated_copy, table) == [
        "generated/llama/patched_modeling_llama_cpu.py: model type 'llama' has no entry; add one to TABLE in "
        "tests/families.py (tiny config keys and what the architecture supports)"
    ]


def test_an_entry_without_generated_files_is_one_line(generated_copy):
    table = {**TABLE, "granite": Family("GraniteConfig", "GraniteForCausalLM")}
    problems = registration_problems(generated_copy, table)
    assert (
        "TABLE in tests/families.py: entry 'granite' has no generated/*/patched_modeling_*.py from "
        "transformers.models.granite; generate its configs (`python -m patchgen.run_codegen --all --diff`) "
        "or remove the entry" in problems
    )
    assert len([p for p in problems if "'granite'" in p]) == 1


def test_harness_keys_go_on_top_of_the_shared_dimensions():
    moe = TABLE["qwen3_moe"]
    shared = {"hidden_size": 32, "head_dim": 8}
    assert moe.config_kwargs(shared)["mlp_only_layers"] == [1]
    assert moe.config_kwargs(shared, harness="sequence_parallel")["mlp_only_layers"] == []
    assert "head_dim" not in TABLE["qwen2"].config_kwargs(shared)
    assert TABLE["llama"].config_kwargs(shared) == shared
