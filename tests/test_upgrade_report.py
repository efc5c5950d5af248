"""Upgrade safety: lock files record each patch's upstream subject, its dependencies and its own code.

A temporary project is generated against `tests/fixtures/upgrade/old/` (a toy upstream package:
`modeling_toyup.py` and the `utils.py` it imports from), then the `new` release is copied over it
(same module names), as a `transformers` upgrade would. The CLIs run in subprocesses, so no parse
cache survives the swap. Patch versions: `toyup_patches.py` (written against old), `blind/` (only
what planning demands was changed), `fixed/` (the upgrade absorbed; `attention_forward` needs none).
"""

import ast
import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, run_cli

from patchgen.commands.upgrade_report import Status, compare, render
from patchgen.load.upstream import UpstreamModule
from patchgen.syntax.source_text import SourceText
from patchgen.upgrade.fingerprints import Fingerprint, Lock, fingerprint_of, normalise, read_lock, subject_source
from patchgen.upgrade.fingerprints import upstream_requires as fingerprints_requires
from patchgen.upgrade.review_hunks import absorbed, corresponding_lines, hunks, only_decorators
from patchgen.upgrade.upstream_dependencies import NamesInModule, Package, dependencies


UPGRADE = FIXTURES / "upgrade"
LOCK = "generated/toyup/patched_modeling_toyup.lock.json"
MODULE = "generated/toyup/patched_modeling_toyup.py"
PATCHES = "models/toyup/patches/toyup_patches.py"
REASON = "keep_last's new positions form reaches the patch unchanged; the docstring edit is upstream's own"


def make_project(root, *, release="old", patches=None):
    for package in ["toyup_upstream", "models", "models/toyup", "models/toyup/patches"]:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    use_release(root, release)
    config = UPGRADE / "fixed" if patches else UPGRADE
    shutil.copy(config / "toyup_patch_gen_config.py", root / "models" / "toyup")
    use_patches(root, patches)


def use_release(root, release):
    for path in (UPGRADE / release).glob("*.py"):
        shutil.copy(path, root / "toyup_upstream" / path.name)


def use_patches(root, version=None):
    """The config that names ToyRMSNorm goes with the blind and fixed patches (both plan on the new release)."""
    if version is not None:
        shutil.copy(UPGRADE / "fixed" / "toyup_patch_gen_config.py", root / "models" / "toyup")
    source = UPGRADE / version if version else UPGRADE
    shutil.copy(source / "toyup_patches.py", root / PATCHES)


def cli(module, *args, cwd):
    return run_cli(module, *args, cwd=cwd)


def committed(root):
    return {p: (root / p).read_text() for p in (MODULE, LOCK)}


@pytest.fixture
def generated_old(tmp_path):
    make_project(tmp_path)
    result = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_lock_records_subjects_patch_code_and_dependencies_deterministically(generated_old):
    text = (generated_old / LOCK).read_text()
    lock = json.loads(text)
    assert lock["source_module"] == "toyup_upstream.modeling_toyup"
    assert lock["config"] == "models.toyup.toyup_patch_gen_config"
    assert lock["upstream_version"] == "toyup_upstream (not an installed distribution)"
    assert lock["upstream_names"] == [
        "ToyAttention",
        "ToyConfig",
        "ToyGatedMLP",
        "ToyMLP",
        "ToyModel",
        "ToyNorm",
        "scale",
    ]
    entries = {e["subject"]: e for e in lock["patches"]}
    assert sorted(entries) == [
        "ToyAttention.__init__",
        "ToyAttention.forward",
        "ToyGatedMLP.forward",
        "ToyMLP.forward",
        "ToyNorm",
        "scale",
    ]
    assert entries["ToyMLP.forward"]["source"] == ["def forward(self, x):", "    return [max(v, 0.0) for v in x]"]
    for entry in entries.values():
        source = "".join(line + "\n" for line in entry["source"])
        assert entry["sha256"] == hashlib.sha256(normalise(source).encode()).hexdigest()
    # the patch that absorbs each subject: where it is and a hash of its code; one function, two targets
    assert entries["ToyMLP.forward"]["patch"] == entries["ToyGatedMLP.forward"]["patch"]
    assert entries["ToyMLP.forward"]["patch"]["source"] == f"{PATCHES}:23"
    assert entries["ToyMLP.forward"]["patch"]["name"] == "mlp_forward"
    assert entries["ToyAttention.forward"]["patch"]["source"] == f"{PATCHES}:32"
    assert len({e["patch"]["sha256"] for e in entries.values()}) == 5
    # keep_last lives in toyup_upstream/utils.py: used by the subject (and the patch) from outside the module
    assert entries["ToyAttention.forward"]["dependencies"] == ["toyup_upstream.utils.keep_last"]
    assert all(e["dependencies"] == [] for s, e in entries.items() if s != "ToyAttention.forward")
    (dependency,) = lock["dependencies"]
    assert dependency["name"] == "toyup_upstream.utils.keep_last"
    assert dependency["source"] == ["def keep_last(items, keep):", "    return items[-keep:] if keep else items"]
    assert text == json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    again = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=generated_old)
    assert f"unchanged {LOCK}" in again.stdout
    check = cli("patchgen.commands.check_patchgen", cwd=generated_old)
    assert check.returncode == 0, check.stdout
    report = cli("patchgen.commands.upgrade_report", cwd=generated_old)
    assert report.returncode == 0, report.stdout
    assert "6 unchanged, 0 new upstream name(s): no patched target needs review" in report.stdout


def test_report_groups_changes_by_patch_and_classifies_each_hunk(generated_old):
    use_release(generated_old, "new")
    report = cli("patchgen.commands.upgrade_report", cwd=generated_old)
    assert report.returncode == 1, report.stdout + report.stderr
    out = report.stdout
    status = {
        line[12:].split(":")[0]: line.split()[0]
        for line in out.splitlines()
        if line[:2] == "  " and line[2:3].isupper()
    }
    assert status == {
        "function_replacement scale": "UNCHANGED",  # a comment and parentheses only
        "class_replacement ToyNorm": "REMOVED",
        "method_override ToyMLP.forward": "CHANGED",
        "method_override ToyGatedMLP.forward": "CHANGED",
        "method_override ToyAttention.forward": "CHANGED",
        "init_modification ToyAttention (ToyAttention.__init__)": "CHANGED",
        "ToyCache": "NEW",
        "ToyRMSNorm": "NEW",
    }
    assert "REMOVED   class_replacement ToyNorm: removed or renamed upstream; closest new name: ToyRMSNorm" in out
    assert (
        "CHANGED   method_override ToyAttention.forward: changed upstream (docstring-only); uses changed "
        f"toyup_upstream.utils.keep_last: absorb it in {PATCHES}:32 attention_forward"
    ) in out
    # one group per patch definition: mlp_forward absorbs both MLP targets, and their identical hunk is shown once
    assert "Patches that must absorb the upstream changes (3 patch(es), 4 CHANGED target(s)):" in out
    mlp = out.split(f"\n{PATCHES}:23 mlp_forward: 2 CHANGED target(s)\n")[1].split("\n\n")[0]
    assert mlp == (
        "  targets: ToyGatedMLP.forward (toyup), ToyMLP.forward (toyup)\n"
        "  hunk 1 of 1: code, in all 2 targets: review id ToyGatedMLP.forward#1, ToyMLP.forward#1\n"
        "      old upstream (toyup_upstream (not an installed distribution)), ToyGatedMLP.forward:\n"
        "          def forward(self, x):\n"
        "        -     return [max(v, 0.0) for v in x]\n"
        "      new upstream (toyup_upstream (not an installed distribution)):\n"
        "          def forward(self, x):\n"
        "        +     return [max(v, 0.0) * 0.5 for v in x]\n"
        f"      patch {PATCHES}:23-24:\n"
        "          def mlp_forward(self, x):\n"
        "              return [v if v > 0.0 else 0.0 for v in x]"
    )
    init = out.split(f"\n{PATCHES}:27 attention_init: 1 CHANGED target(s)\n")[1].split("\n\n")[0]
    assert "  hunk 1 of 1: code, in ToyAttention.__init__ (toyup): review id ToyAttention#1\n" in init
    assert "        + def __init__(self, config, layer_idx=0):\n" in init
    assert f"      patch {PATCHES}:27-29:\n          def attention_init(original_init, self, config):\n" in init
    forward = out.split(f"\n{PATCHES}:32 attention_forward: 1 CHANGED target(s)\n")[1].split("\n\n")[0]
    assert "  hunk 1 of 1: docstring-only, in ToyAttention.forward (toyup): no review needed\n" in forward
    assert "  uses changed upstream dependencies (shown below): toyup_upstream.utils.keep_last" in forward
    # the dependency outside the module, once, with its users and its own classified hunk
    dependency = out.split("CHANGED   dependency toyup_upstream.utils.keep_last: changed upstream (code)\n")[1]
    assert dependency.startswith(
        f"  used by: ToyAttention.forward (toyup); patches: {PATCHES}:32\n  hunk 1 of 1: code: review id keep_last#1\n"
    )
    assert "        +     if isinstance(keep, (list, tuple)):\n" in dependency
    assert out.splitlines()[-1].startswith(
        "upgrade-report: 1 unchanged, 4 changed, 1 removed, 3 patch(es) to review, 2 new upstream name(s): review"
    )

    check = cli("patchgen.commands.check_patchgen", cwd=generated_old)
    assert check.returncode == 1
    assert f"UPGRADE {LOCK}: upstream moved since these fingerprints were recorded" in check.stdout
    assert "REMOVED   class_replacement ToyNorm" in check.stdout
    assert "(each change beside the patch's own lines: `python -m patchgen.upgrade_report`)" in check.stdout
    assert "no class 'ToyNorm' in toyup_upstream.modeling_toyup (did you mean 'ToyRMSNorm'?)" in check.stdout


def test_blind_accept_is_refused_then_fix_accept_regenerate_check(generated_old):
    """The workflow end to end: report -> refused blind accept -> fix -> accept (with a review) -> regenerate -> check."""
    root = generated_old
    use_release(root, "new")
    before = committed(root)
    assert cli("patchgen.commands.upgrade_report", cwd=root).returncode == 1

    # blind: the author changed only what planning demands (ToyRMSNorm, the new `layer_idx`)
    use_patches(root, "blind")
    refused = cli("patchgen.commands.upgrade_report", "--accept", cwd=root)
    assert refused.returncode == 2, refused.stdout
    assert refused.stderr == (
        "error: refusing to accept 3 CHANGED target(s) with upstream code hunks that no patch change absorbed: "
        f"{PATCHES}:26: 2 target(s) ToyGatedMLP.forward, ToyMLP.forward (changed: upstream code; hunks not "
        "absorbed: ToyGatedMLP.forward#1, ToyMLP.forward#1); "
        f"{PATCHES}:35: 1 target(s) ToyAttention.forward (changed: dependencies keep_last; hunks not absorbed: "
        "keep_last#1); fix the patch where each hunk lands (`python -m patchgen.upgrade_report` shows it beside the "
        'patch\'s lines), or say why it needs no change: --reviewed HUNK_ID (or TARGET) --reason "..."\n'
        "nothing accepted\n"
    )
    assert committed(root) == before
    regenerate = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=root)
    assert regenerate.returncode == 2 and "upstream changed under patched target(s)" in regenerate.stderr
    assert committed(root) == before

    # fixed: the MLP patch absorbs the halving; attention_forward needs no change, and the author says why
    use_patches(root, "fixed")
    still = cli("patchgen.commands.upgrade_report", "--accept", cwd=root)
    assert still.returncode == 2
    assert f"{PATCHES}:35: 1 target(s) ToyAttention.forward (changed: dependencies keep_last; " in still.stderr
    assert "ToyMLP" not in still.stderr and committed(root) == before
    accepted = cli(
        "patchgen.commands.upgrade_report",
        "--accept",
        "--reviewed",
        "ToyAttention.forward",
        "--reason",
        REASON,
        cwd=root,
    )
    assert accepted.returncode == 0, accepted.stderr
    assert f"accepted {LOCK}" in accepted.stdout
    assert (root / MODULE).read_text() == before[MODULE]  # accept touches only the lock
    lock = read_lock(root / LOCK)
    assert {e.subject: e.reviewed.reason if e.reviewed else None for e in lock.patches} == {
        "ToyAttention.__init__": None,
        "ToyAttention.forward": REASON,
        "ToyGatedMLP.forward": None,
        "ToyMLP.forward": None,
        "ToyRMSNorm": None,
        "scale": None,
    }
    assert f'"reason": "{REASON}"' in (root / LOCK).read_text()  # reviewed with the lock's diff

    quiet = cli("patchgen.commands.upgrade_report", cwd=root)
    assert quiet.returncode == 0 and "6 unchanged, 0 new upstream name(s)" in quiet.stdout
    assert (
        "UNCHANGED method_override ToyAttention.forward: unchanged upstream (safe to regenerate); accepted at "
        f"toyup_upstream (not an installed distribution) with no patch change, reviewed: {REASON!r}"
    ) in quiet.stdout

    regenerated = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=root)
    assert regenerated.returncode == 0, regenerated.stderr
    assert f"unchanged {LOCK}" in regenerated.stdout  # the reason survives regeneration
    assert "def __init__(self, config, layer_idx=0):" in (root / MODULE).read_text()
    check = cli("patchgen.commands.check_patchgen", cwd=root)
    assert check.returncode == 0, check.stdout


def test_reviewed_names_a_dependency_or_a_target_and_needs_a_reason(generated_old):
    root = generated_old
    use_release(root, "new")
    use_patches(root, "fixed")
    before = committed(root)
    bad = [
        (("--reviewed", "ToyAttention.forward"), 'error: --reviewed ToyAttention.forward needs --reason "why'),
        (("--reason", "because"), "error: --reason needs --reviewed TARGET"),
        (
            ("--reviewed", "ToyAtention.forward", "--reason", "typo"),
            "error: --reviewed ToyAtention.forward: no CHANGED",
        ),
    ]
    for args, message in bad:
        result = cli("patchgen.commands.upgrade_report", "--accept", *args, cwd=root)
        assert result.returncode == 2 and result.stderr.startswith(message), (args, result.stderr)
        assert result.stderr.endswith("nothing accepted\n")
    without_accept = cli("patchgen.commands.upgrade_report", "--reviewed", "x", "--reason", "y", cwd=root)
    assert (
        without_accept.returncode == 2
        and "--reviewed, --reason and --reviews go with --accept" in without_accept.stderr
    )
    assert committed(root) == before
    both = cli(
        "patchgen.commands.upgrade_report",
        "--accept",
        *("--reviewed", "toyup_upstream.utils.keep_last", "--reviewed", "ToyAttention.forward", "--reason", REASON),
        cwd=root,
    )
    assert both.returncode == 0, both.stderr
    lock = read_lock(root / LOCK)
    assert lock.by_dependency()["toyup_upstream.utils.keep_last"].reviewed.reason == REASON
    assert lock.by_subject()["ToyAttention.forward"].reviewed.reason == REASON


def test_a_comment_is_not_a_fix_but_a_helper_change_is(generated_old):
    root = generated_old
    use_release(root, "new")
    use_patches(root, "fixed")
    patches = root / PATCHES
    text = patches.read_text()
    patches.write_text(
        text.replace("    return keep_last(x, keep)", "    # reviewed for the upgrade\n    return keep_last(x, keep)")
    )
    commented = cli("patchgen.commands.upgrade_report", "--accept", cwd=root)
    assert commented.returncode == 2 and "ToyAttention.forward" in commented.stderr
    # the patch's code includes the helpers copied with it: changing one absorbs the change
    patches.write_text(
        text.replace("    return keep_last(x, keep)", "    return _kept(x, keep)")
        + "\n\ndef _kept(x, keep):\n    return keep_last(x, list(keep) if isinstance(keep, range) else keep)\n"
    )
    accepted = cli("patchgen.commands.upgrade_report", "--accept", cwd=root)
    assert accepted.returncode == 0, accepted.stderr


def test_new_upstream_names_alone_do_not_fail(generated_old):
    upstream = generated_old / "toyup_upstream" / "modeling_toyup.py"
    upstream.write_text(upstream.read_text() + "\n\ndef toy_helper():\n    return 1\n")
    report = cli("patchgen.commands.upgrade_report", cwd=generated_old)
    assert report.returncode == 0, report.stdout
    assert "NEW       toy_helper: new upstream class or function that the config does not mention" in report.stdout
    assert "no patched target needs review" in report.stdout


def test_edited_fingerprint_fails_every_check(generated_old):
    path = generated_old / LOCK
    lock = json.loads(path.read_text())
    entry = next(e for e in lock["patches"] if e["subject"] == "ToyMLP.forward")
    entry["sha256"] = "0" * 64
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")

    report = cli("patchgen.commands.upgrade_report", cwd=generated_old)
    assert report.returncode == 1
    assert (
        "INVALID   method_override ToyMLP.forward: recorded fingerprint is not the hash of the recorded source: "
        "the lock file was edited"
    ) in report.stdout
    check = cli("patchgen.commands.check_patchgen", "--no-import", cwd=generated_old)
    assert check.returncode == 1
    assert (
        f"DRIFT   {LOCK}" in check.stdout or "upstream changed under patched target(s) ToyMLP.forward" in check.stdout
    )
    assert "INVALID   method_override ToyMLP.forward" in check.stdout
    regenerate = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=generated_old)
    assert regenerate.returncode == 2 and "ToyMLP.forward" in regenerate.stderr


def test_unreadable_lock_and_missing_locks_are_bad_input(generated_old, tmp_path_factory):
    (generated_old / LOCK).write_text("{not json")
    report = cli("patchgen.commands.upgrade_report", cwd=generated_old)
    assert report.returncode == 1
    assert f"{LOCK}: ERROR " in report.stdout and "not a readable patchgen lock file (JSONDecodeError" in report.stdout

    empty = tmp_path_factory.mktemp("empty")
    (empty / "models").mkdir()
    (empty / "models" / "__init__.py").write_text("")  # a project with nothing generated yet
    nothing = cli("patchgen.commands.upgrade_report", cwd=empty)
    assert nothing.returncode == 2 and "error: no *.lock.json under generated/" in nothing.stderr


def test_check_patchgen_reports_orphaned_lock(generated_old):
    shutil.copy(generated_old / LOCK, generated_old / "generated/toyup/patched_modeling_toyup_old.lock.json")
    check = cli("patchgen.commands.check_patchgen", "-q", "--no-import", cwd=generated_old)
    assert check.returncode == 1
    assert "ORPHAN  generated/toyup/patched_modeling_toyup_old.lock.json: no config produces this file" in check.stdout


def test_committed_locks_record_what_the_patched_code_uses_from_transformers():
    """The real files: attention interface functions, decorators and helpers outside the modeling module."""
    lock = read_lock(REPO / "generated/qwen3/patched_modeling_qwen3_cpu.lock.json")
    entries = lock.by_subject()
    assert entries["Qwen3ForCausalLM.forward"].dependencies == (
        "transformers.modeling_outputs.CausalLMOutputWithPast",
        "transformers.modeling_utils.slice_logits_to_keep",
        "transformers.utils.auto_docstring.auto_docstring",
        "transformers.utils.deprecation.deprecate_kwarg",
        "transformers.utils.generic.can_return_tuple",
    )  # `Cache`, `Unpack`, `TransformersKwargs` appear only in annotations: they run nothing
    attention = set(entries["Qwen3Attention.forward"].dependencies)
    assert {
        "transformers.modeling_utils.ALL_ATTENTION_FUNCTIONS",
        "transformers.integrations.sdpa_attention.sdpa_attention_forward",
        "transformers.integrations.flash_attention.flash_attention_forward",
    } <= attention
    # `@use_kernelized_func(apply_rotary_pos_emb)` on Qwen3Attention belongs to the patch replacing the rope
    assert "transformers.integrations.hub_kernels.use_kernelized_func" not in attention
    rope = entries["apply_rotary_pos_emb"]
    assert "transformers.integrations.hub_kernels.use_kernelized_func" in rope.dependencies
    assert rope.applied_by == ("Qwen3Attention: use_kernelized_func(apply_rotary_pos_emb)",)
    assert entries["Qwen3PreTrainedModel.is_custom_code"].dependencies == ()  # the generator's own code
    assert any(r.startswith("huggingface-hub") for r in lock.upstream_requires)
    assert not any(".modeling_llama." in name for name in attention)  # the patch's TYPE_CHECKING imports
    patch = entries["Qwen3ForCausalLM.forward"].patch
    assert (patch.source.split(":")[0], patch.name) == (
        "patchgen/sets/losses/fused_loss.py",
        "linear_cross_entropy_forward",
    )
    assert all(record.is_intact() for record in lock.dependencies)


# -- the comparison itself, in process, on upstream texts ------------------------------------------


def upstream_from(text, version="toypkg==2.0"):
    tree = ast.parse(text)
    definitions = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    return UpstreamModule("toypkg.modeling", Path("modeling.py"), SourceText(text), tree, version, definitions)


def lock_for(old_text, subjects, version="toypkg==1.0"):
    old = upstream_from(old_text, version)
    entries = []
    for kind, target, subject in subjects:
        source = subject_source(old, subject)
        entries.append(Fingerprint(kind, target, subject, source, fingerprint_of(source)))
    return Lock("models.x.cfg", old.name, version, tuple(sorted(old.definitions)), tuple(entries))


def statuses(report):
    return {t.recorded.subject: (t.status, t.closest) for t in report.targets}


OLD = """
class Attn(Base):
    def forward(self, hidden, mask=None):
        scores = hidden @ hidden
        return scores.softmax(-1)

class Block(Base):
    pass
"""


def test_renamed_method_and_renamed_owner_get_their_closest_new_names():
    lock = lock_for(OLD, [("method_override", "Attn.forward", "Attn.forward")])
    renamed_method = OLD.replace("def forward(", "def forward_scores(")
    report = compare(Path("x.lock.json"), lock, upstream_from(renamed_method))
    assert statuses(report) == {"Attn.forward": (Status.REMOVED, "Attn.forward_scores")}
    # a name that shares nothing with the old one is still found by its body
    moved = OLD.replace("def forward(", "def compute(").replace("    pass", "    def helper(self):\n        return 1")
    report = compare(Path("x.lock.json"), lock, upstream_from(moved))
    assert statuses(report) == {"Attn.forward": (Status.REMOVED, "Attn.compute")}

    renamed_class = OLD.replace("class Attn(", "class Attention(")
    report = compare(Path("x.lock.json"), lock, upstream_from(renamed_class))
    assert statuses(report) == {"Attn.forward": (Status.REMOVED, "Attention.forward")}
    assert report.new_names == ["Attention"] and report.needs_review


def test_inherited_init_is_fingerprinted_by_the_class_header():
    lock = lock_for(OLD, [("init_modification", "Block", "Block.__init__")])
    assert lock.patches[0].source.endswith("class Block(Base):\n    ...\n")
    same = compare(Path("x.lock.json"), lock, upstream_from(OLD.replace("pass", "# still nothing\n    pass")))
    assert statuses(same) == {"Block.__init__": (Status.UNCHANGED, None)}
    rebased = compare(Path("x.lock.json"), lock, upstream_from(OLD.replace("class Block(Base)", "class Block(Other)")))
    assert statuses(rebased) == {"Block.__init__": (Status.CHANGED, None)}
    with_init = OLD.replace("    pass", "    def __init__(self, config):\n        self.config = config")
    gained = compare(Path("x.lock.json"), lock, upstream_from(with_init))
    assert statuses(gained)["Block.__init__"][0] is Status.CHANGED
    assert "+def __init__(self, config):" in gained.targets[0].diff


def test_version_bump_with_nothing_changed_is_news_but_not_a_failure():
    lock = lock_for(OLD, [("method_override", "Attn.forward", "Attn.forward")])
    report = compare(Path("x.lock.json"), lock, upstream_from(OLD, version="toypkg==2.0"))
    assert report.has_news and not report.needs_review
    text = render(report)
    assert "upstream toypkg.modeling: toypkg==1.0 recorded, toypkg==2.0 installed" in text
    assert "UNCHANGED method_override Attn.forward: unchanged upstream (safe to regenerate)" in text


# -- hunk classification and the patch's corresponding lines, on strings ---------------------------


FORWARD = '''def forward(self, x: "Tensor", keep: int = 0) -> list:
    """Keep the last `keep` items."""
    # a comment
    y = x
    return y[-keep:]
'''


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda t: t.replace("Keep the last", "Return the last"), "docstring-only"),
        (lambda t: t.replace("keep: int = 0", "keep: int | list = 0"), "annotation-only"),
        (lambda t: t.replace("-> list:", "-> tuple:").replace("Keep the", "Keeps the"), "docstring+annotation-only"),
        (lambda t: t.replace("# a comment", "# another comment"), "formatting-only"),
        (lambda t: t.replace("y[-keep:]", "y[-keep:] if keep else y"), "code"),
        (lambda t: t.replace("keep: int = 0", "keep: int = 1"), "code"),  # a default is code, not annotation
    ],
)
def test_each_hunk_is_classified(edit, kind):
    (hunk,) = hunks(FORWARD, edit(FORWARD))
    assert hunk.kind == kind


def test_far_apart_edits_are_separate_hunks_classified_each():
    old = FORWARD + "\n" * 6 + "def other(a):\n    return a\n"
    new = old.replace("Keep the last", "Return the last").replace("return a\n", "return a + 1\n")
    assert [h.kind for h in hunks(old, new)] == ["docstring-only", "code"]


def test_corresponding_patch_lines_follow_the_matching_text():
    patch = [
        "def patched_forward(self, x, keep=0):",
        '    """Keep the last `keep` items, patched."""',
        "    y = x",
        "    log(y)",
        "    return y[-keep:]",
    ]
    (hunk,) = hunks(FORWARD, FORWARD.replace("y[-keep:]", "y[-keep:] if keep else y"))
    start, end = corresponding_lines(FORWARD, patch, hunk)
    assert patch[start:end][-1] == "    return y[-keep:]" and "    y = x" in patch[start:end]
    assert corresponding_lines(FORWARD, ["class Other:", "    pass"], hunk) is None


# -- dependency rules, on a package written here ---------------------------------------------------

PACKAGE_FILES = {
    "__init__.py": "",
    "utils/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .helpers import helper\n",
    "utils/helpers.py": "def helper(x):\n    return x\n\ndef unused(x):\n    return x\n",
    "registry.py": (
        "def fast(x):\n    return x\n\n"
        "class Registry:\n    _mapping = {'fast': fast}\n\n    def get(self, key):\n        return other(key)\n\n"
        "def other(key):\n    return key\n\n"
        "REGISTRY: Registry = Registry()\n"
    ),
    "typing_only.py": "class Cache:\n    pass\n",
    "modeling.py": (
        "from .registry import REGISTRY\nfrom .typing_only import Cache\nfrom .utils import helper\n\n"
        "def forward(x: Cache) -> Cache:\n    return REGISTRY.get('fast')(helper(x))\n"
    ),
}


def test_dependencies_follow_re_exports_and_registries_not_annotations(tmp_path):
    root = tmp_path / "toypkg"
    for name, text in PACKAGE_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    package = Package("toypkg", root)
    found = dependencies(
        package, [NamesInModule(frozenset({"REGISTRY", "helper", "Cache"}), "toypkg.modeling", root / "modeling.py")]
    )
    # `helper` through the lazy `utils/__init__` re-export; REGISTRY's class and its registry entry `fast`;
    # not `Registry.get`'s callee `other` (method bodies are not followed) and not `Cache` (an annotation elsewhere
    # is still the caller's business: here it is named directly, so it is followed)
    assert list(found) == [
        "toypkg.registry.REGISTRY",
        "toypkg.registry.Registry",
        "toypkg.registry.fast",
        "toypkg.typing_only.Cache",
        "toypkg.utils.helpers.helper",
    ]
    assert found["toypkg.registry.REGISTRY"].source == "REGISTRY: Registry = Registry()\n"


# -- the gate per hunk, the environment, missing locks --------------------------------------------

ATTENTION = """def forward(self, x, past_key_values=None):
    k = self.k(x)
    v = self.v(x)
    q = self.q(x)
    if past_key_values is not None:
        k, v = past_key_values.update(k, v, self.layer_idx, cache_kwargs)
    return q @ k
"""
ATTENTION_NEW = ATTENTION.replace("past_key_values", "cache").replace("cache_kwargs", "kwargs=kwargs")


def test_a_rename_only_fix_does_not_absorb_the_new_update_call():
    patch = ATTENTION.replace("def forward", "def patched_forward").replace("return q @ k", "return fast(q, k)")
    renamed = patch.replace("past_key_values", "cache")
    fixed = renamed.replace("cache_kwargs", "kwargs=kwargs")
    (hunk,) = hunks(ATTENTION, ATTENTION_NEW)
    assert hunk.kind == "code"
    assert not absorbed(ATTENTION, hunk, patch, renamed)  # the rename leaves out `kwargs=kwargs`
    assert not absorbed(ATTENTION, hunk, patch, patch)
    assert absorbed(ATTENTION, hunk, patch, fixed)
    # far apart: a signature change does not absorb a hunk on another line
    old = ATTENTION.replace("    q = self.q(x)\n", "    q = self.q(x)\n" + "    q = q + 0\n" * 8)
    new = old.replace("cache_kwargs", "kwargs=kwargs").replace("x, past_key_values=None", "x, cache=None")
    signature, update = hunks(old, new)
    patch = old.replace("def forward", "def patched_forward")
    only_signature = patch.replace("x, past_key_values=None", "x, cache=None")
    assert absorbed(old, signature, patch, only_signature)
    assert not absorbed(old, update, patch, only_signature)


def test_only_a_hunk_of_one_line_decorators_is_taken_in_by_regeneration():
    old = "class A:\n    @can_return_tuple\n    def forward(self, x, past_key_values=None):\n        return x\n"
    decorated = old.replace(
        "    def forward", '    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")\n    def forward'
    )
    (added,) = hunks(old, decorated)
    assert only_decorators(added)
    (with_signature,) = hunks(old, decorated.replace("past_key_values=None", "cache=None"))
    assert not only_decorators(with_signature)  # the signature moved too: the patch must take it in
    (removed,) = hunks(old, old.replace("    @can_return_tuple\n", ""))
    assert only_decorators(removed)
    split = old.replace("    def forward", "    @deprecate_kwarg(\n        'a', 'b'\n    )\n    def forward")
    assert not only_decorators(hunks(old, split)[0])  # a decorator over several lines: a person reads it


def test_annotation_only_change_needs_no_review():
    old = "class A:\n    def forward(self, x: int) -> int:\n        return x\n"
    new = old.replace("x: int) -> int", "x: float) -> float")
    lock = lock_for(old, [("method_override", "A.forward", "A.forward")])
    report = compare(Path("x.lock.json"), lock, upstream_from(new, "toypkg==2.0"))
    (target,) = report.targets
    assert (target.status, target.kinds) == (Status.COSMETIC, ["annotation-only"])
    assert not report.needs_review
    assert "COSMETIC  method_override A.forward: changed upstream in docstrings" in render(report)


def test_a_new_required_distribution_is_reported():
    old = "def f(x):\n    return x\n"
    lock = lock_for(old, [("function_replacement", "f", "f")])
    installed = fingerprints_requires("transformers")
    assert installed, "transformers records its requirements"
    lock = dataclasses.replace(lock, upstream_requires=tuple(r for r in installed if not r.startswith("tqdm")))
    upstream = dataclasses.replace(
        upstream_from(old), name="transformers.models.toy.modeling_toy", path=Path("/t/transformers/models/toy/m.py")
    )
    report = compare(Path("x.lock.json"), lock, upstream)
    (tqdm,) = report.requires_added
    assert tqdm.startswith("tqdm")
    assert f"  REQUIRES  {tqdm}: newly required by toypkg==2.0" in render(report)


def test_per_hunk_review_reason_is_stored_and_shown(generated_old):
    root = generated_old
    use_release(root, "new")
    use_patches(root, "fixed")
    wrong = cli(
        "patchgen.commands.upgrade_report", "--accept", "--reviewed", "keep_last#2", "--reason", REASON, cwd=root
    )
    assert wrong.returncode == 2 and "--reviewed keep_last#2: no CHANGED" in wrong.stderr
    accepted = cli(
        "patchgen.commands.upgrade_report", "--accept", "--reviewed", "keep_last#1", "--reason", REASON, cwd=root
    )
    assert accepted.returncode == 0, accepted.stderr
    data = json.loads((root / LOCK).read_text())
    (keep_last,) = [d for d in data["dependencies"] if d["name"] == "toyup_upstream.utils.keep_last"]
    assert keep_last["reviewed"]["hunks"] == {"keep_last#1": REASON}
    shown = cli("patchgen.commands.upgrade_report", cwd=root)
    assert shown.returncode == 0, shown.stdout
    assert f"hunk keep_last#1 reviewed: {REASON!r}" in shown.stdout


def test_a_reviews_file_gives_each_hunk_its_own_reason(generated_old):
    root = generated_old
    use_release(root, "new")
    use_patches(root, "fixed")
    reviews = root / "reviews.txt"
    reviews.write_text("# one review a line\n\nkeep_last#1: the fixed patch no longer calls it\n")
    accepted = cli("patchgen.commands.upgrade_report", "--accept", "--reviews", "reviews.txt", cwd=root)
    assert accepted.returncode == 0, accepted.stderr
    data = json.loads((root / LOCK).read_text())
    (keep_last,) = [d for d in data["dependencies"] if d["name"] == "toyup_upstream.utils.keep_last"]
    assert keep_last["reviewed"]["hunks"] == {"keep_last#1": "the fixed patch no longer calls it"}
    reviews.write_text("keep_last#1 without a reason\n")
    malformed = cli("patchgen.commands.upgrade_report", "--accept", "--reviews", "reviews.txt", cwd=root)
    assert malformed.returncode == 2
    assert malformed.stderr.startswith("error: reviews.txt:1: write `HUNK_ID[, HUNK_ID...]: reason`"), malformed.stderr


def test_a_deleted_lock_does_not_accept_a_moved_upstream(generated_old):
    root = generated_old
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "old"], check=True)
    use_release(root, "new")
    use_patches(root, "fixed")
    (root / LOCK).unlink()
    regenerate = cli("patchgen.commands.run_codegen", "--all", "--diff", cwd=root)
    assert regenerate.returncode == 2, regenerate.stdout
    assert "upstream changed under patched target(s)" in regenerate.stderr  # compared with HEAD's lock
    assert not (root / LOCK).exists()
    refused = cli("patchgen.commands.upgrade_report", "--accept", cwd=root)
    assert refused.returncode == 2 and "keep_last#1" in refused.stderr  # the review HEAD's lock asks for
