"""Specs: YAML reading, base inheritance, overrides, typing, grid expansion, hashing."""
import re
from pathlib import Path

import pytest

from xferlab.errors import UserError
from xferlab.spec import load_spec, parse_override, stable_hash


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "experiments" / "v2s"
    write(root / "_base.yaml", "kind: v2s\ntable: v2s_table2\ntrain: {epochs: 3, lr: 0.05}\nseeds: [0, 1]\n")
    write(root / "t2.yaml", "base: _base.yaml\nmodel: {mapping: 2}\n"
          "grid: {data.dataset: [ucr/Coffee, ucr/GunPoint], model.seg: [1, 2]}\n")
    return root


def test_grid_times_seeds_and_inheritance(specs: Path):
    spec = load_spec(specs / "t2.yaml")
    assert spec.name == "v2s/t2" and spec.kind == "v2s"
    assert len(spec.instances) == 2 * 2 * 2
    first = spec.instances[0]
    assert first.get("train.epochs") == 3  # from base
    assert first.get("model.mapping") == 2  # from child
    assert first.get("model.dropout") == 0.4  # schema default
    assert first.table == "v2s_table2" and first.paper == "v2s" and first.experiment == "v2s"
    assert first.cell == "data.dataset=ucr/Coffee,model.seg=1"
    assert {i.seed for i in spec.instances} == {0, 1}
    assert len({i.hash for i in spec.instances}) == 8


def test_hash_is_stable_and_ignores_key_order(specs: Path):
    a = load_spec(specs / "t2.yaml").instances[0]
    write(specs / "same.yaml", "seeds: [0, 1]\ntrain: {lr: 0.05, epochs: 3}\nmodel: {mapping: 2}\nkind: v2s\n"
          "table: v2s_table2\ngrid: {model.seg: [1, 2], data.dataset: [ucr/Coffee, ucr/GunPoint]}\n")
    b = [i for i in load_spec(specs / "same.yaml").instances if i.cell == a.cell or
         i.get("model.seg") == 1 and i.dataset == "ucr/Coffee" and i.seed == 0][0]
    assert a.hash == b.hash == stable_hash(a.config)
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


def test_select_names_keys_chosen_on_validation(specs: Path):
    plain = load_spec(specs / "t2.yaml").instances[0]
    write(specs / "sel.yaml", "base: t2.yaml\nselect: [model.seg]\n")
    chosen = load_spec(specs / "sel.yaml").instances[0]
    assert chosen.select == ["model.seg"] and plain.select == []
    assert "select" not in plain.config  # specs without it keep their hashes
    assert chosen.hash != plain.hash
    from xferlab.tracking.runs import instance_tags
    assert instance_tags(chosen, "final")["xferlab.select"] == "model.seg"
    assert "xferlab.select" not in instance_tags(plain, "final")
    write(specs / "typo.yaml", "base: t2.yaml\nselect: [model.sge]\n")
    with pytest.raises(UserError, match="unknown key 'model.sge' in select: did you mean 'model.seg'"):
        load_spec(specs / "typo.yaml")
    write(specs / "bad.yaml", "base: t2.yaml\nselect: {model.seg: 1}\n")
    with pytest.raises(UserError, match="select = .* is not valid"):
        load_spec(specs / "bad.yaml")


def test_overrides_are_typed_and_fix_grid_axes(specs: Path):
    spec = load_spec(specs / "t2.yaml", ["train.lr=1e-3", "model.seg=3", "seeds=[5]", "model.mapping=max"])
    assert len(spec.instances) == 2
    inst = spec.instances[0]
    assert inst.get("train.lr") == pytest.approx(1e-3) and isinstance(inst.get("train.lr"), float)
    assert inst.get("model.seg") == 3 and inst.seed == 5 and inst.get("model.mapping") == "max"


def test_grid_override(specs: Path):
    spec = load_spec(specs / "t2.yaml", ["grid.data.dataset=[ucr/Trace]"])
    assert {i.dataset for i in spec.instances} == {"ucr/Trace"}



def test_switching_the_dataset_on_the_command_line_drops_the_old_datasets_options():
    """The source spec's README recipe for real speech: `--set data.dataset=gsc/words` on a
    spec written for the synthetic corpus. Its `profile` is the corpus's option, not one of
    Speech Commands, and goes; a `profile` the command line sets itself is still refused."""
    source = Path(__file__).resolve().parents[2] / "experiments" / "sources" / "attrnn.yaml"
    spec = load_spec(source, ["data.dataset=gsc/words", "data.root=/data/speech_commands_v0.02"])
    data = spec.instances[0].config["data"]
    assert data["dataset"] == "gsc/words" and data["root"] == "/data/speech_commands_v0.02"
    assert "profile" not in data
    assert spec.instances[0].get("train.perturb") == ["speed"]  # the recipe itself stays
    with pytest.raises(UserError, match="data.profile is not an option of dataset 'gsc/words'"):
        load_spec(source, ["data.profile=small", "data.dataset=gsc/words"])

@pytest.mark.parametrize("override, message", [
    ("train.epoch=2", "unknown key 'train.epoch' in --set: did you mean 'train.epochs'?"),
    ("train.epochs=2.5", "train.epochs = 2.5 is not a valid value: expected int"),
    ("model.mapping=many", "model.mapping = 'many' is not a valid value"),
    ("analysis.swd=yes please", "analysis.swd = 'yes please' is not a valid value: expected bool"),
    ("train.val_mode=test", "expected 'paper' | 'holdout'"),
    ("nonsense", "is not key=value"),
    ("grid={model.seg: [1]}", "--set grid=... cannot replace a whole grid: fix one axis with --set grid.<key>=[...]"),
    ("base=other.yaml", "--set base=... cannot change the spec a spec extends"),
])
def test_bad_overrides(specs: Path, override: str, message: str):
    with pytest.raises(UserError, match=re.escape(message)):
        load_spec(specs / "t2.yaml", [override])


@pytest.mark.parametrize("text, message", [
    ("kind: v2s\nmodle: {seg: 1}\n", "unknown key 'modle'"),
    ("kind: v2s\nmodel: {sgment: 1}\n", "unknown key 'model.sgment' in the spec: did you mean 'model.seg'"),
    ("kind: v2s\ngrid: {model.sge: [1]}\n", "unknown key 'model.sge' in grid"),
    ("kind: v3s\n", "unknown kind 'v3s': did you mean 'v2s'"),
    ("model: {seg: 1}\n", "names no kind"),
    ("kind: v2s\nseeds: [a]\n", "expected a non-empty list of integers"),
    ("kind: v2s\nmodel: [1]\n", "model must be a mapping"),
    ("kind: v2s\ntrain: {epochs: 1\n", "invalid YAML"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("kind: v2s\nbase: loop.yaml\n", "base: cycle"),
])
def test_bad_spec_files(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "loop.yaml", text)
    with pytest.raises(UserError, match=message):
        load_spec(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_executed(tmp_path: Path):
    path = write(tmp_path / "evil.yaml", "kind: v2s\ndescription: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_spec(path)


def test_seed_in_child_replaces_parent_seeds(tmp_path: Path):
    write(tmp_path / "p.yaml", "kind: at\nseeds: [0, 1, 2]\n")
    child = write(tmp_path / "c.yaml", "base: p.yaml\nseed: 7\n")
    assert [i.seed for i in load_spec(child).instances] == [7]


def test_init_from_key_and_list_grid(tmp_path: Path):
    path = write(tmp_path / "at.yaml", "kind: at\ninit: {from: ortho}\n"
                 "grid: [{at.enabled: [false]}, {at.enabled: [true], at.layer: [2, 8]}]\n")
    spec = load_spec(path)
    assert [i.cell for i in spec.instances] == ["at.enabled=False", "at.enabled=True,at.layer=2",
                                               "at.enabled=True,at.layer=8"]
    assert spec.instances[0].get("init.from") == "ortho"
    assert spec.instances[0].experiment == "antitransfer"


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=") == ("a", "")


def test_smoke_specs_carry_the_smoke_role_outside_the_hash(tmp_path: Path):
    """Issue 13: smoke runs are tagged role smoke (left out of the paper tables by default);
    the role is not a training setting, so it does not change the hash."""
    root = Path(__file__).resolve().parents[2] / "experiments" / "smoke"
    for spec in root.glob("*.yaml"):
        assert {i.role for i in load_spec(spec).instances} == {"smoke"}, spec.name
    plain = tmp_path / "plain.yaml"
    plain.write_text("kind: v2s\ndata: {dataset: ucr/Coffee}\n")
    smoke = tmp_path / "smoke.yaml"
    smoke.write_text("role: smoke\nkind: v2s\ndata: {dataset: ucr/Coffee}\n")
    [a], [b] = load_spec(plain).instances, load_spec(smoke).instances
    assert (a.role, b.role) == ("final", "smoke") and a.hash == b.hash
    (tmp_path / "bad.yaml").write_text("role: trial\nkind: v2s\n")
    with pytest.raises(UserError, match=r"role = 'trial' is not valid .*: use final or smoke"):
        load_spec(tmp_path / "bad.yaml")


def test_an_override_fixes_an_axis_of_a_union_grid(tmp_path: Path):
    """--set on a key that a list-of-mappings grid varies fixes it in every block (it used to
    be ignored silently); blocks that become equal give their cells once."""
    spec = tmp_path / "union.yaml"
    spec.write_text("kind: v2s\ngrid:\n  - {data.dataset: [ucr/Coffee, ucr/Trace], model.source: [a, b]}\n"
                    "  - {data.dataset: [ucr/Coffee, ucr/Trace], model.method: [tf_a]}\n")
    fixed = load_spec(spec, ["model.source=tiny", "data.dataset=ucr/Coffee"]).instances
    assert {i.get("model.source") for i in fixed} == {"tiny"}
    assert sorted(i.cell for i in fixed) == ["default", "model.method=tf_a"]
