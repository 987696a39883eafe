"""Every shipped spec loads, expands and passes the pre-run checks (like a config test
of every experiment): a typo in any of them fails here, not hours into a run."""
import dataclasses
from pathlib import Path

import pytest

from xferlab.catalog import DATASETS, check_instances
from xferlab.schema import dataset_options
from xferlab.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder standing in for a real dataset root and a UCR archive with every name."""
    root = tmp_path_factory.mktemp("data")
    ucr = tmp_path_factory.mktemp("ucr")
    for spec in SPECS:
        for inst in load_spec(spec).instances:
            name = inst.dataset.removeprefix("ucr/")
            if inst.dataset.startswith("ucr/"):
                (ucr / name).mkdir(exist_ok=True)
                for split in ("TRAIN", "TEST"):
                    (ucr / name / f"{name}_{split}.tsv").write_text("1\t0.5\t0.25\n")
    return root, ucr


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_spec_validates(spec: Path, fake_data: tuple[Path, Path]):
    root, ucr = fake_data
    dataset = load_spec(spec).instances[0].dataset
    options = dataset_options(dataset)
    options = {f.name for f in dataclasses.fields(options)} if options else set()
    overrides = [f"data.root={root}"] if DATASETS.meta(dataset).get("local") else []
    overrides += [f"data.ucr_dir={ucr}"] if "ucr_dir" in options else []
    loaded = load_spec(spec, overrides)
    assert loaded.instances
    check_instances(loaded.instances)
    assert len({i.hash for i in loaded.instances}) == len(loaded.instances)


def test_catalogue_ids_are_complete():
    ids = {int(p.name[:3]) for p in (ROOT / "experiments" / "at").glob("[0-9]*.yaml")}
    assert ids == set(range(1, 8)) | set(range(20, 40)) | set(range(100, 114))
    baseline = load_spec(ROOT / "experiments/at/002_iemocap_speakerwise.yaml", ["data.root=/tmp"])
    assert len(baseline.instances) == 20 and len({i.seed for i in baseline.instances}) == 20
    at = load_spec(ROOT / "experiments/at/023_iemocap_speakerwise.yaml", ["data.root=/tmp"])
    assert sorted(i.get("at.layer") for i in at.instances) == list(range(1, 14))


@pytest.mark.parametrize("name", ["table2", "table2_offline", "table4", "mapping"])
def test_v2s_table_specs_choose_dropout_and_seg_on_held_out_validation(name: str):
    """The paper's per-dataset selection: every cell of the table searches dropout and seg,
    every run validates on data held out from the training split, and the report is told
    (``select``) to keep the setting with the lowest validation loss."""
    instances = load_spec(ROOT / "experiments" / "v2s" / f"{name}.yaml").instances
    assert {i.cfg.train.val_mode for i in instances} == {"holdout"}
    assert {tuple(i.config["select"]) for i in instances} == {("model.dropout", "model.seg")}
    settings: dict[str, set] = {}
    for i in instances:
        cell = ",".join(p for p in i.cell.split(",") if not p.startswith(("model.dropout", "model.seg")))
        settings.setdefault(cell, set()).add((i.cfg.model.dropout, i.cfg.model.seg))
    assert all(len(s) >= 4 for s in settings.values()), settings


def test_no_shipped_v2s_spec_validates_on_the_test_split():
    """Paper mode (val_mode paper: the UCR test split as validation) stays available through
    --set, never as a shipped default: every V2S instance, quickstart included, holds its
    validation out of the training split."""
    modes = {(str(p.relative_to(ROOT / "experiments")), i.cfg.train.val_mode)
             for p in SPECS for i in load_spec(p).instances if i.kind == "v2s"}
    assert modes and {mode for _, mode in modes} == {"holdout"}, sorted(m for m in modes if m[1] != "holdout")
    assert load_spec(ROOT / "experiments/v2s/table2.yaml", ["train.val_mode=paper"]).instances[0].cfg.train.val_mode \
        == "paper"


def test_every_at_instance_reads_the_magnitude_its_pretrained_model_was_trained_on():
    """AT and init.from refuse a registered model of the other magnitude at run time; a
    shipped spec whose `pretrain:` spec trains the model on the other magnitude would fail
    on every run (a base spec changing magnitude once broke two specs built on it)."""
    from xferlab.kinds import get_kind
    from xferlab.runner import makers_of

    checked, wrong = 0, []
    for spec in SPECS:
        for inst in load_spec(spec).instances:
            if inst.kind != "at":
                continue
            for need in get_kind(inst.kind).needs(inst.cfg):
                [maker] = makers_of(need, inst)
                checked += 1
                if maker.cfg.model.magnitude != inst.cfg.model.magnitude:
                    wrong.append(f"{spec.name} {inst.cell}: {inst.cfg.model.magnitude} vs {need.model} "
                                 f"{maker.cfg.model.magnitude}")
    assert checked > 50 and not wrong, wrong[:5]


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "negative"),
    ("model.register_as=", "its own name"),  # untrained under 'attrnn': it could become the champion
    ("model.register_as=attrnn", "its own name"),
])
def test_an_untrained_control_needs_its_own_name_and_epochs_are_not_negative(override: str, message: str):
    from xferlab.errors import UserError

    loaded = load_spec(ROOT / "experiments/sources/attrnn_untrained.yaml", [override])
    with pytest.raises(UserError, match=message):
        check_instances(loaded.instances)
