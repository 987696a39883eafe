"""``xferlab <command>``: the only place that parses arguments.

Each handler is a thin call into the library. Problems with the user's input arrive as
``UserError`` and leave as one line on stderr with exit status 2. Heavy packages
(TensorFlow, PyTorch, MLflow) are imported inside handlers, never at module level, so
``--help`` and ``--dry-run`` stay instant.
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import sys
from typing import Callable, Sequence

from xferlab import __version__
from xferlab.errors import UserError


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run every instance of an experiment spec as an MLflow run",
                       description="Run every instance (grid cell x seed) of a spec; finished "
                       "instances with the same spec hash are skipped.")
    p.add_argument("spec", help="path of a YAML spec, e.g. experiments/smoke/v2s.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--overrides", dest="overrides_str", default="", metavar="'K=V;K=V'",
                   help="several overrides in one string, separated by ';' (used by MLproject entry points)")
    p.add_argument("--only", metavar="GLOB", help="run only instances whose cell matches the glob")
    p.add_argument("--dry-run", action="store_true", help="print the instances and their hashes; run nothing")
    p.add_argument("--force", action="store_true", help="re-run instances that already finished")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing instance")
    p.set_defaults(handler=cmd_run)


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect datasets and generate the synthetic speech corpus")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{show,synth}")
    show = dsub.add_parser("show", help="print sizes, length and class counts of a dataset")
    show.add_argument("name", help="registered dataset name, e.g. ucr/Coffee")
    show.add_argument("--ucr-dir", help="local UCR archive folder (default: $XFERLAB_UCR_DIR, then bundled sets)")
    show.set_defaults(handler=cmd_data_show)
    synth = dsub.add_parser("synth", help="generate (or reuse) the synthetic TTS speech corpus")
    synth.add_argument("--profile", default="small",  # checked against speech_synth.PROFILES (heavy to import here)
                       help="corpus profile (default small; the README describes them); an unknown one lists them all")
    synth.add_argument("--out", help="output folder (default: the cache, .xferlab-cache/synth/...)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.add_argument("--style-strength", type=float, default=1.0,
                       help="how far the speaking styles move the voice: 0 neutral .. 2 (default 1, as defined)")
    synth.set_defaults(handler=cmd_data_synth)


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered datasets, models, tables or kinds")
    p.add_argument("what", choices=["datasets", "models", "tables", "kinds"])
    p.add_argument("pattern", nargs="?", default="*", help="glob, e.g. 'ucr/*'")
    p.set_defaults(handler=cmd_list)


def _add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="maintain the tracking store")
    rsub = p.add_subparsers(dest="runs_command", required=True, metavar="{reap}")
    reap = rsub.add_parser("reap", help="mark runs left RUNNING by a killed process as FAILED")
    reap.add_argument("--grace", type=float, default=3600.0,
                      help="seconds after which a RUNNING run of another host counts as dead (default 3600)")
    reap.set_defaults(handler=cmd_runs_reap)


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the main job: corpus, source and orthogonal models, V2S, "
                       "anti-transfer, a short study and the report, on embedded defaults",
                       description="Run the main job end to end on embedded defaults (no user data). "
                       "Finished work is reused, so a second run takes minutes.")
    p.set_defaults(handler=cmd_quickstart)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="put outside weights into the Model Registry")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="{import}")
    imp = msub.add_parser("import", help="validate and register a Keras source AM or a VGG16 state dict",
                          description="Register weights you already have. A .keras/.h5 file must be a source AM "
                          "with xferlab's input contract (16000 raw samples at 16 kHz in, class probabilities "
                          "out); a .pt/.pth file must be the state dict of a VGG16 of --width with one output "
                          "per --classes name. Both are checked (shapes, one forward pass) before anything is "
                          "registered.")
    imp.add_argument("file", help="model file: .keras/.h5 (Keras AM) or .pt/.pth (VGG16 state dict)")
    imp.add_argument("--name", required=True, help="registered model name, e.g. attrnn or ortho-my-speakers")
    imp.add_argument("--width", type=float, help="VGG16 width of a state dict (1.0 = the paper's, 0.125, ...)")
    imp.add_argument("--classes", help="a state dict's class names in output order, comma-separated")
    imp.add_argument("--segment-s", type=float, default=1.0, help="a VGG16's input length in seconds (default 1.0)")
    imp.add_argument("--mean", type=float, default=0.0, help="a VGG16's training z-score mean (default 0)")
    imp.add_argument("--std", type=float, default=1.0, help="a VGG16's training z-score std (default 1)")
    imp.add_argument("--magnitude", help="the spectrogram magnitude a VGG16 was trained on: linear (default, "
                                          "the paper's) or log; --mean/--std are that magnitude's statistics")
    imp.set_defaults(handler=cmd_models_import)


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="class activation maps of a finished V2S run (any test sample, any conv layer)",
                       description="Draw Figure 4 again for a finished V2S run from its kept model: the "
                       "target series, padded and reprogrammed waveform, mel spectrogram, the class "
                       "activation map (gradient x activation) of each chosen conv layer and the attention "
                       "weights; one PNG per test sample, logged to the run under explain/.")
    p.add_argument("run_id", help="the MLflow run id of a FINISHED V2S run (kind v2s, method v2s)")
    p.add_argument("--samples", type=int, nargs="+", default=[0], metavar="I",
                   help="test series to explain, by index in the UCR test split (default: 0)")
    p.add_argument("--layers", nargs="+", default=["conv1", "conv2"], metavar="NAME",
                   help="conv layers of the source AM: conv1 and conv2 (default; every AM has both), or "
                   "any other conv layer by name (an unknown name lists the AM's)")
    p.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                   help="target class whose score is explained (default: the model's prediction)")
    p.add_argument("--out", default="explain", help="folder for the PNGs (default: ./explain)")
    p.add_argument("--no-log", action="store_true", help="do not log the PNGs to the run")
    p.set_defaults(handler=cmd_explain)


def _add_probe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="where along the source model a V2S run's target classes separate",
                       description="Fit a logistic regression and 1-nearest-neighbour on the series a "
                       "finished V2S run trained on, at each depth of its frozen source model (raw series, "
                       "mel front end, second conv layer, penultimate layer, logits), without and with the run's "
                       "program, and score them on the test split (nothing is tuned on it). Prints the "
                       "table and logs probe.csv and probe.png to the run under probe/.")
    p.add_argument("run_id", help="the MLflow run id of a FINISHED V2S run (kind v2s, method v2s)")
    p.add_argument("--out", default="probe", help="folder for probe.csv and probe.png (default: ./probe)")
    p.add_argument("--no-log", action="store_true", help="do not log the files to the run")
    p.set_defaults(handler=cmd_probe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xferlab", description="Run, track, tune and report "
                                     "transfer experiments on audio models (Voice2Series, anti-transfer).")
    parser.add_argument("--version", action="version", version=f"xferlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_data, _add_list, _add_runs, _add_models, _add_explain, _add_probe,
                _add_quickstart):
        add(sub)
    from xferlab.report.cli import add_report_parser
    from xferlab.tuning.cli import add_tune_parser

    add_tune_parser(sub)
    add_report_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------
def cmd_models_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xferlab.jobs.import_model import import_model

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    version = import_model(Path(args.file), args.name, args.width, classes, args.segment_s, args.mean, args.std,
                           args.magnitude)
    print(f"registered {args.name} version {version} from {args.file} "
          f"(load it with mlflow.pyfunc.load_model('models:/{args.name}/{version}'))")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xferlab.jobs.explain import explain

    for path in explain(args.run_id, args.samples, args.layers, args.class_index, Path(args.out), not args.no_log):
        print(f"wrote {path}")
    if not args.no_log:
        print(f"logged to run {args.run_id} under explain/")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xferlab.jobs.probe import probe

    table, png = probe(args.run_id, Path(args.out), not args.no_log)
    wide = table.pivot_table(index=["depth", "layer"], columns=["input", "readout"], values="test_accuracy",
                             sort=False)
    print((100 * wide).round(1).to_string(na_rep=""))
    print(f"wrote {png} and {png.with_name('probe.csv')}")
    if not args.no_log:
        print(f"logged to run {args.run_id} under probe/")
    return 0


def cell_matches(cell: str, pattern: str) -> bool:
    """``--only``: a glob over the cell label. A list value in a label
    (``train.perturb=['noise']``) also matches literally: its brackets would otherwise be
    read as a character class."""
    return fnmatch.fnmatchcase(cell, pattern) or fnmatch.fnmatchcase(cell, pattern.replace("[", "[[]"))


def cmd_run(args: argparse.Namespace) -> int:
    from xferlab.spec import load_spec

    overrides = args.overrides + [o.strip() for o in args.overrides_str.split(";") if o.strip()]
    spec = load_spec(args.spec, overrides)
    instances = [i for i in spec.instances if not args.only or cell_matches(i.cell, args.only)]
    if not instances:
        raise UserError(f"--only {args.only!r} matches no cell of {spec.name}: run with --dry-run to see the cells")
    from xferlab.catalog import check_instances

    check_instances(instances)
    if args.dry_run:
        from xferlab.runner import drop_unfit

        instances = drop_unfit(instances)
        print(f"{spec.name}: {len(instances)} instance(s) of kind {spec.kind}")
        for n, inst in enumerate(instances, 1):
            print(f"{n:4d}  {inst.hash}  seed={inst.seed:<3d} {inst.cell}")
        return 0
    from xferlab.runner import run_instances

    return run_instances(instances, force=args.force, workers=args.workers, fail_fast=args.fail_fast)


def cmd_data_show(args: argparse.Namespace) -> int:
    from xferlab.catalog import describe_dataset
    from xferlab.data.feature_cache import describe_cache

    print(describe_cache())  # where AT instances share their decoded spectrograms (all datasets)
    print(describe_dataset(args.name, ucr_dir=args.ucr_dir))
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xferlab.data.speech_synth import check_profile, check_style_strength, generate_corpus

    check_profile(args.profile, "--profile")
    check_style_strength(args.style_strength, "--style-strength")
    corpus = generate_corpus(args.profile, out=Path(args.out) if args.out else None,
                             seed=args.seed, workers=args.workers, style_strength=args.style_strength)
    m = corpus.manifest
    print(f"{len(m)} clips, {m['word'].nunique()} words, {m['speaker'].nunique()} speakers, "
          f"{len(corpus.styles())} styles -> {corpus.root}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from xferlab import catalog, registry  # noqa: F401  (catalog registers the models)

    reg = {"datasets": registry.DATASETS, "models": registry.MODELS,
           "tables": registry.TABLES, "kinds": registry.KINDS}[args.what]
    if args.what == "tables":  # the report registers its items itself (light: no pandas), in page order
        import xferlab.report.items  # noqa: F401
    names = reg.in_order(args.pattern) if args.what == "tables" else reg.names(args.pattern)
    for name in names:
        print(f"{name:32s} {reg.help(name)}".rstrip())
    return 0


def cmd_runs_reap(args: argparse.Namespace) -> int:
    from xferlab.tracking import ensure_store, reap

    ensure_store()
    reaped = reap(grace_seconds=args.grace)
    print(f"marked {len(reaped)} run(s) FAILED" + (": " + ", ".join(reaped) if reaped else ""))
    return 0


def quiet_frameworks() -> None:
    """TensorFlow's C++ start-up chatter hides our output.

    Level 3, because on a CPU machine the CUDA probe logs an ERROR line ("failed call to
    cuInit") that is harmless; real failures still reach us as Python exceptions. A value
    the user set wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] >= "2":  # the same knob for TF's Python warnings: running many
        logging.getLogger("tensorflow").setLevel(logging.ERROR)  # models in one process makes "retracing" noise
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def cmd_quickstart(args: argparse.Namespace) -> int:
    from xferlab.quickstart import main as quickstart

    return quickstart()


def main(argv: Sequence[str] | None = None) -> int:
    quiet_frameworks()
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as exc:
        print(f"xferlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("xferlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `xferlab ... | head`
        sys.stderr.close()
        return 0
    except BaseException as exc:
        from xferlab.tracking.signals import Terminated

        if isinstance(exc, Terminated):
            print("xferlab: terminated (SIGTERM)", file=sys.stderr)
            return exc.exit_code
        raise


if __name__ == "__main__":
    raise SystemExit(main())
