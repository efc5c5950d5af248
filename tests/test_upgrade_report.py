"""Upgrade safety: lock files record each patch's upstream subject; the report explains an upgrade.

A temporary project is generated against `tests/fixtures/upgrade/old/modeling_toyup.py`, then the
`new` release of that module is copied over it (same module name), as a `transformers` upgrade
would. The CLIs run in subprocesses, so no parse cache survives the swap.
"""

import ast
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from patchgen.fingerprints import Fingerprint, Lock, fingerprint_of, normalise, subject_source
from patchgen.source_text import SourceText
from patchgen.upgrade_report import Status, compare, render
from patchgen.upstream import UpstreamModule


UPGRADE = FIXTURES / "upgrade"
LOCK = "generated/toyup/patched_modeling_toyup.lock.json"
MODULE = "generated/toyup/patched_modeling_toyup.py"


def make_project(root, *, release="old", fixed=False):
    for package in ["toyup_upstream", "models", "models/toyup", "models/toyup/patches"]:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    use_release(root, release)
    source = UPGRADE / "fixed" if fixed else UPGRADE
    shutil.copy(source / "toyup_patch_gen_config.py", root / "models" / "toyup")
    shutil.copy(source / "toyup_patches.py", root / "models" / "toyup" / "patches")


def use_release(root, release):
    shutil.copy(UPGRADE / release / "modeling_toyup.py", root / "toyup_upstream" / "modeling_toyup.py")


def cli(module, *args, cwd):
    return run_cli(module, *args, cwd=cwd)


@pytest.fixture
def generated_old(tmp_path):
    make_project(tmp_path)
    result = cli("patchgen.run_codegen", "--all", "--diff", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_lock_records_each_patch_subject_deterministically(generated_old):
    text = (generated_old / LOCK).read_text()
    lock = json.loads(text)
    assert lock["source_module"] == "toyup_upstream.modeling_toyup"
    assert lock["config"] == "models.toyup.toyup_patch_gen_config"
    assert lock["upstream_version"] == "toyup_upstream (not an installed distribution)"
    assert lock["upstream_names"] == ["ToyAttention", "ToyConfig", "ToyMLP", "ToyModel", "ToyNorm", "scale"]
    entries = {e["subject"]: e for e in lock["patches"]}
    assert sorted(entries) == ["ToyAttention.__init__", "ToyMLP.forward", "ToyNorm", "scale"]
    assert [entries[s]["kind"] for s in sorted(entries)] == [
        "init_modification",
        "method_override",
        "class_replacement",
        "function_replacement",
    ]
    assert entries["ToyMLP.forward"]["source"] == ["def forward(self, x):", "    return [max(v, 0.0) for v in x]"]
    for entry in entries.values():
        source = "".join(line + "\n" for line in entry["source"])
        assert entry["sha256"] == hashlib.sha256(normalise(source).encode()).hexdigest()
    assert text == json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    again = cli("patchgen.run_codegen", "--all", "--diff", cwd=generated_old)
    assert f"unchanged {LOCK}" in again.stdout
    check = cli("patchgen.check_patchgen", cwd=generated_old)
    assert check.returncode == 0, check.stdout
    report = cli("patchgen.upgrade_report", cwd=generated_old)
    assert report.returncode == 0, report.stdout
    assert "4 unchanged, 0 new upstream name(s): no patched target needs review" in report.stdout


def test_report_classifies_every_kind_of_upstream_change(generated_old):
    use_release(generated_old, "new")
    report = cli("patchgen.upgrade_report", cwd=generated_old)
    assert report.returncode == 1, report.stdout + report.stderr
    out = report.stdout
    status = {line[12:].split(":")[0]: line.split()[0] for line in out.splitlines() if line[2:3].isupper()}
    assert status == {
        "function_replacement scale": "UNCHANGED",  # a comment and parentheses only
        "class_replacement ToyNorm": "REMOVED",
        "method_override ToyMLP.forward": "CHANGED",
        "init_modification ToyAttention (ToyAttention.__init__)": "CHANGED",
        "ToyCache": "NEW",
        "ToyRMSNorm": "NEW",
    }
    assert "REMOVED   class_replacement ToyNorm: removed or renamed upstream; closest new name: ToyRMSNorm" in out
    # the diffs come from the lock file: the old release is no longer installed anywhere
    assert "      -    return [max(v, 0.0) for v in x]\n      +    return [max(v, 0.0) * 0.5 for v in x]\n" in out
    assert "      -def __init__(self, config):\n      +def __init__(self, config, layer_idx=0):\n" in out
    assert "      +    self.layer_idx = layer_idx\n" in out
    assert "  NEW       ToyCache: new upstream class or function that the config does not mention\n" in out
    assert (
        "NEW       ToyRMSNorm: new upstream class or function that the config does not mention (the closest match for the vanished ToyNorm)"
        in out
    )
    assert out.splitlines()[-1].startswith(
        "upgrade-report: 1 unchanged, 2 changed, 1 removed, 2 new upstream name(s): review"
    )

    check = cli("patchgen.check_patchgen", cwd=generated_old)
    assert check.returncode == 1
    assert f"UPGRADE {LOCK}: upstream moved since these fingerprints were recorded" in check.stdout
    assert "REMOVED   class_replacement ToyNorm" in check.stdout and "+    return [max(v, 0.0) * 0.5" in check.stdout
    assert "no class 'ToyNorm' in toyup_upstream.modeling_toyup (did you mean 'ToyRMSNorm'?)" in check.stdout


def test_fix_accept_regenerate_workflow(generated_old):
    root = generated_old
    use_release(root, "new")
    # the author fixes the patches after reading the report
    make_project(root, release="new", fixed=True)
    before = {p: (root / p).read_text() for p in (MODULE, LOCK)}

    refused = cli("patchgen.run_codegen", "--all", "--diff", cwd=root)
    assert refused.returncode == 2
    assert (
        "error: models.toyup.toyup_patch_gen_config: upstream changed under patched target(s) ToyAttention.__init__, "
        f"ToyMLP.forward since {LOCK} was recorded; review with `python -m patchgen.upgrade_report`"
    ) in refused.stderr
    assert "nothing written" in refused.stderr
    assert {p: (root / p).read_text() for p in before} == before
    fixing = cli("patchgen.check_patchgen", "--fix", "--no-import", cwd=root)
    assert fixing.returncode == 1 and "not fixing" in fixing.stderr
    assert {p: (root / p).read_text() for p in before} == before

    accepted = cli("patchgen.upgrade_report", "--accept", cwd=root)
    assert accepted.returncode == 0, accepted.stderr
    assert f"accepted {LOCK}" in accepted.stdout
    assert (root / MODULE).read_text() == before[MODULE]  # accept touches only the lock
    lock = json.loads((root / LOCK).read_text())
    assert "ToyRMSNorm" in lock["upstream_names"] and "ToyCache" in lock["upstream_names"]
    assert {e["subject"] for e in lock["patches"]} == {
        "ToyAttention.__init__",
        "ToyMLP.forward",
        "ToyRMSNorm",
        "scale",
    }

    quiet = cli("patchgen.upgrade_report", cwd=root)
    assert quiet.returncode == 0 and "4 unchanged, 0 new upstream name(s)" in quiet.stdout

    regenerated = cli("patchgen.run_codegen", "--all", "--diff", cwd=root)
    assert regenerated.returncode == 0, regenerated.stderr
    assert f"unchanged {LOCK}" in regenerated.stdout
    assert "def __init__(self, config, layer_idx=0):" in (root / MODULE).read_text()
    check = cli("patchgen.check_patchgen", cwd=root)
    assert check.returncode == 0, check.stdout


def test_new_upstream_names_alone_do_not_fail(generated_old):
    upstream = generated_old / "toyup_upstream" / "modeling_toyup.py"
    upstream.write_text(upstream.read_text() + "\n\ndef toy_helper():\n    return 1\n")
    report = cli("patchgen.upgrade_report", cwd=generated_old)
    assert report.returncode == 0, report.stdout
    assert "NEW       toy_helper: new upstream class or function that the config does not mention" in report.stdout
    assert "no patched target needs review" in report.stdout


def test_edited_fingerprint_fails_every_check(generated_old):
    path = generated_old / LOCK
    lock = json.loads(path.read_text())
    entry = next(e for e in lock["patches"] if e["subject"] == "ToyMLP.forward")
    entry["sha256"] = "0" * 64
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")

    report = cli("patchgen.upgrade_report", cwd=generated_old)
    assert report.returncode == 1
    assert (
        "INVALID   method_override ToyMLP.forward: recorded fingerprint is not the hash of the recorded source: "
        "the lock file was edited"
    ) in report.stdout
    check = cli("patchgen.check_patchgen", "--no-import", cwd=generated_old)
    assert check.returncode == 1
    assert (
        f"DRIFT   {LOCK}" in check.stdout or "upstream changed under patched target(s) ToyMLP.forward" in check.stdout
    )
    assert "INVALID   method_override ToyMLP.forward" in check.stdout
    regenerate = cli("patchgen.run_codegen", "--all", "--diff", cwd=generated_old)
    assert regenerate.returncode == 2 and "ToyMLP.forward" in regenerate.stderr


def test_unreadable_lock_and_missing_locks_are_bad_input(generated_old, tmp_path_factory):
    (generated_old / LOCK).write_text("{not json")
    report = cli("patchgen.upgrade_report", cwd=generated_old)
    assert report.returncode == 1
    assert f"{LOCK}: ERROR " in report.stdout and "not a readable patchgen lock file (JSONDecodeError" in report.stdout

    empty = tmp_path_factory.mktemp("empty")
    (empty / "models").mkdir()
    (empty / "models" / "__init__.py").write_text("")  # a project with nothing generated yet
    nothing = cli("patchgen.upgrade_report", cwd=empty)
    assert nothing.returncode == 2 and "error: no *.lock.json under" in nothing.stderr


def test_check_patchgen_reports_orphaned_lock(generated_old):
    shutil.copy(generated_old / LOCK, generated_old / "generated/toyup/patched_modeling_toyup_old.lock.json")
    check = cli("patchgen.check_patchgen", "-q", "--no-import", cwd=generated_old)
    assert check.returncode == 1
    assert "ORPHAN  generated/toyup/patched_modeling_toyup_old.lock.json: no config produces this file" in check.stdout


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
