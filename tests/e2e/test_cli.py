"""The command line as a user meets it: help, dry runs, one-line errors with exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest

from xferlab.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def xferlab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xferlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def subcommands() -> list[list[str]]:
    """Every (nested) subcommand of the parser, found by walking argparse's actions."""
    found = []

    def walk(parser, prefix):
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    found.append(prefix + [name])
                    walk(sub, prefix + [name])

    walk(build_parser(), [])
    return found


def test_help_lists_subcommands():
    out = xferlab("--help")
    assert out.returncode == 0
    for command in ("run", "data", "list", "runs"):
        assert command in out.stdout


@pytest.mark.parametrize("command", subcommands(), ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: xferlab" in capsys.readouterr().out


def test_dry_run_imports_no_framework(tmp_path: Path):
    """Also: a grid cell the data cannot take (10 copies of PigCVP's 2000 samples do not fit
    16000) is left out with its reason, and the other cells stay."""
    spec = tmp_path / "s.yaml"
    spec.write_text("kind: v2s\nseeds: [0, 1]\ngrid: {data.dataset: [ucr/Coffee, ucr/PigCVP], model.seg: [1, 10]}\n")
    code = ("import sys; from xferlab.cli import main; rc = main(['run', sys.argv[1], '--dry-run']); "
            "bad = [m for m in ('tensorflow', 'torch', 'keras', 'mlflow', 'optuna') if m in sys.modules]; "
            "print('IMPORTED', bad); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORTED []" in out.stdout
    assert "skipped cell data.dataset=ucr/PigCVP,model.seg=10: " in out.stdout
    assert "use model.seg <= 8" in out.stdout
    assert "6 instance(s)" in out.stdout and out.stdout.count("seed=") == 6


@pytest.mark.parametrize("spec_text, args, message", [
    (None, [], "does not exist"),
    ("kind: v2s\ntrain: {epochs: [\n", [], "invalid YAML"),
    ("kind: v2s\n", ["--set", "train.epoch=3"], "did you mean 'train.epochs'"),
    ("kind: v2s\n", ["--set", "train.epochs=abc"], "expected int"),
    ("kind: v2s\ndata: {dataset: nope/Coffee}\n", [], "unknown dataset 'nope/Coffee'"),
    ("kind: v2s\ndata: {dataset: ucr/NoSuchSet}\n", [], "XFERLAB_UCR_DIR"),
    ("kind: v2s\ndata: {dataset: ucr/Coffee, ucr_dir: /nonexistent/ucr}\n", [], "/nonexistent/ucr"),
    ("kind: v2s\ndata: {dataset: ucr/PigCVP}\nmodel: {seg: 10}\n", [], "nothing to run: model.seg=10 copies"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, spec_text, args, message, capsys, monkeypatch):
    """In-process through ``cli.main`` (what ``python -m xferlab`` exits with), so the cases
    cost no interpreter start-up; test_real_dataset_without_root_is_a_clear_error below
    checks the same contract through a real process."""
    spec = tmp_path / "bad.yaml"
    if spec_text is not None:
        spec.write_text(spec_text)
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(spec), "--dry-run", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xferlab: error: ") and message in lines[0]
    assert not (tmp_path / "mlflow.db").exists()


def test_a_set_that_cannot_be_read_is_an_error_not_a_skipped_cell(tmp_path: Path, capsys, monkeypatch):
    """Only a setting the data cannot take is skipped: a damaged file fails the command."""
    folder = tmp_path / "ucr" / "Broken"
    folder.mkdir(parents=True)
    (folder / "Broken_TRAIN.tsv").write_text("1\t0.5\tnot-a-number\n")
    (folder / "Broken_TEST.tsv").write_text("1\t0.5\t0.25\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"kind: v2s\ndata: {{dataset: ucr/Broken, ucr_dir: {tmp_path / 'ucr'}}}\n"
                    "grid: {model.seg: [1, 3]}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(spec), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "skipped cell" not in captured.out and "xferlab: error: " in captured.err


def test_data_show_bundled_set():
    out = xferlab("data", "show", "ucr/GunPoint")
    assert out.returncode == 0
    assert "train 50  test 150  length 150  classes 2" in out.stdout


@pytest.mark.parametrize("override, message", [
    ("at.layer=14", "at.layer=14 is out of range for tap mode 'conv': use 1..13"),
    ("at.layer=0", "use 1..13"),
    ("model.dropout=1.0", "model.dropout=1.0 is out of range: use a value in [0, 1)"),
    ("model.head_init=xavier", "model.head_init = 'xavier' is not a valid value"),
    ("train.mask_freq=-1", "train.mask_freq=-1 is negative: use 0 (off)"),
    ("train.mask_time_width=1.5", "train.mask_time_width=1.5 is out of range: use a fraction of the axis in [0, 1]"),
])
def test_at_layer_checked_before_any_run(tmp_path: Path, override: str, message: str, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # in-process (no start-up): a real run, stopped before the store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(["run", str(ROOT / "experiments/smoke/at.yaml"), "--set", override])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("override, message", [
    ("train.perturb=[noise, echo]", "train.perturb names unknown perturbation(s) 'echo': choose from speed, reverb, "
                                    "noise, telephone"),
    ("train.perturb=[noise, speed]", "train.perturb=['noise', 'speed']: list each once, in the order they are "
                                     "applied: ['speed', 'noise']"),
    ("train.perturb_p=1.5", "train.perturb_p=1.5 is not a probability: use a value in [0, 1]"),
])
def test_source_perturbations_checked_before_any_run(tmp_path: Path, override: str, message: str, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(["run", str(ROOT / "experiments/smoke/source.yaml"), "--set", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and len(err) == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_paper_tap_mode_allows_index_zero():
    out = xferlab("run", "experiments/smoke/at.yaml", "--set", "at.tap=paper", "--set", "at.layer=0", "--dry-run")
    assert out.returncode == 0, out.stderr


def test_real_dataset_without_root_is_a_clear_error(tmp_path: Path):
    spec = tmp_path / "s.yaml"
    spec.write_text("kind: at\ndata: {dataset: iemocap/emotion_speakerwise}\n")
    out = xferlab("run", str(spec), "--dry-run", cwd=tmp_path)  # a real process: the exit status itself
    assert out.returncode == 2 and "--set data.root=" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = xferlab("run", str(spec), "--dry-run", "--set", f"data.root={tmp_path / 'nope'}", cwd=tmp_path)
    assert out.returncode == 2 and "is not a folder" in out.stderr


def test_only_matches_a_list_valued_cell_literally():
    from xferlab.cli import cell_matches

    cell = "train.perturb=['noise']"
    assert cell_matches(cell, "*perturb=['noise']*") and cell_matches(cell, "*noise*")
    assert not cell_matches(cell, "*perturb=['speed']*")
    assert cell_matches("data.dataset=ucr/Coffee", "*Co[f]fee")  # a character class still works as a glob
