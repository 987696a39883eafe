"""Benchmark: the report over 1000, 5000 and 50 000 runs, first and second time, beside a
bare ``mlflow.search_runs`` of the same runs.

Generates runs shaped like xferlab's (V2S Tables 2/4/D.2, source pretraining, the
anti-transfer catalogue with 13 layers, Optuna studies with trials in every state, a few
failed runs) through the MLflow tracking API (create_run + one log_batch + set_terminated
per run, in parallel processes) into a temporary sqlite store. Through the API this
machine makes about 20 runs a second, so stores larger than ``--base`` runs are copies of
the base store with every run cloned in SQL under new run ids (tags, params, latest
metrics and metric histories included) until the size is reached.

Per size, in one warm process: the whole report with an empty run cache (the first
report), a bare ``mlflow.search_runs`` of every run of every experiment into a DataFrame,
and the whole report again over the unchanged store (the second report: finished runs
come from the cache). Prints the seconds and the ratios. Usage::

    python bench/bench_report.py [--sizes 1000 5000 50000] [--base 5000] [--workers 2] [--store DIR]

``--store DIR`` keeps the generated stores there and reuses them; the default is a
temporary folder in /dev/shm when there is one (sqlite commits without fsync: generation
is about twice as fast; the timings compare reads only).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

UCR = ["Coffee", "DistalPhalanxTW", "ECG200", "ECG5000", "Earthquakes", "FordA", "FordB", "GunPoint", "Ham",
       "HandOutlines", "Haptics", "Herring", "ItalyPowerDemand", "Lightning2", "MiddlePhalanxOutlineCorrect",
       "MiddlePhalanxTW", "Plane", "ProximalPhalanxOutlineAgeGroup", "ProximalPhalanxOutlineCorrect",
       "ProximalPhalanxTW", "SmallKitchenAppliances", "SonyAIBORobotSurface1", "Strawberry", "SyntheticControl",
       "Trace", "TwoLeadECG", "Wafer", "WormsTwoClass", "Worms", "Wine"]
AT_TASKS = ["iemocap/emotion_random", "iemocap/emotion_speakerwise", "goodsounds/goodness_random",
            "goodsounds/goodness_instrumentwise", "gsc/digits", "gsc/digits_noisy", "gsc/digits_verynoisy"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
EPOCHS = 5


def _common(kind: str, paper: str, table: str, spec: str, cell: str, seed: int, role: str = "final") -> dict:
    return {"xferlab.paper": paper, "xferlab.spec": spec, "xferlab.spec_path": f"experiments/{spec}.yaml",
            "xferlab.spec_hash": hashlib.sha256(f"{spec}|{cell}|{seed}".encode()).hexdigest()[:16], "xferlab.cell": cell,
            "xferlab.seed": str(seed), "xferlab.role": role, "xferlab.kind": kind, "xferlab.table": table,
            "xferlab.git_commit": COMMIT, "mlflow.source.git.commit": COMMIT, "xferlab.host": "bench",
            "mlflow.user": "bench", "mlflow.source.type": "LOCAL"}


def v2s_run(rng: random.Random, table: str, dataset: str, source: str, method: str, seed: int,
            mapping_kind: str = "random", mapping: str = "max") -> dict:
    cell = f"data.dataset=ucr/{dataset},model.source={source},model.method={method}"
    tags = {**_common("v2s", "v2s", table, f"v2s/{table}", cell, seed), "xferlab.dataset": f"ucr/{dataset}",
            "xferlab.method": method, "xferlab.val_mode": "paper", "xferlab.source_model": source,
            "xferlab.source_version": "1", "xferlab.source_run": f"SRC:{source}", "xferlab.n_classes": "2"}
    params = {"kind": "v2s", "paper": "v2s", "table": table, "experiment": "v2s", "seed": seed,
              "data.dataset": f"ucr/{dataset}", "data.ucr_dir": "None", "data.root": "None", "data.profile": "small",
              "data.split": "default", "data.confound": 0.0, "data.segment_s": 1.0, "data.max_items": "None",
              "model.source": source, "model.mapping": mapping, "model.mapping_kind": mapping_kind, "model.seg": 1,
              "model.dropout": 0.4, "model.l2": 0.05, "model.mask": False, "model.method": method,
              "model.pretrain": "None", "train.epochs": 100, "train.batch_size": 32, "train.lr": 0.05,
              "train.patience": "None", "train.lr_decay": 0.48, "train.val_mode": "paper", "train.val_fraction": 0.2,
              "analysis.swd": True, "analysis.swd_projections": 1000, "analysis.figures": True}
    acc = min(1.0, max(0.0, rng.gauss(0.85 if method == "v2s" else 0.55, 0.05)))
    final = {"test_accuracy": acc, "test_loss": 1 - acc, "test_f1_macro": acc, "test_mpce_term": (1 - acc) / 2,
             "mpce": (1 - acc) / 2, "best_epoch": 4, "best_val_loss": 1 - acc, "best_val_accuracy": acc}
    hist = {"train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "swd": 2.0}
    return {"experiment": "v2s", "name": f"v2s/{table}[{dataset},{source}] s{seed}", "tags": tags, "params": params,
            "final": final, "hist": hist if method == "v2s" else {k: v for k, v in hist.items() if k != "swd"}}


def at_run(rng: random.Random, task: str, condition: str, layer: int, orth: str, seed: int) -> dict:
    cell = f"at.layer={layer}" if condition in ("at", "dual_at") else "default"
    tags = {**_common("at", "antitransfer", "at_catalogue", f"at/{task.replace('/', '_')}_{condition}", cell, seed),
            "xferlab.dataset": task, "xferlab.condition": condition, "xferlab.orthogonal_model": orth,
            "xferlab.n_classes": "4"}
    params = {"kind": "at", "paper": "antitransfer", "table": "at_catalogue", "experiment": "antitransfer",
              "seed": seed, "data.dataset": task, "data.split": "default", "data.confound": 0.0, "data.segment_s": 4.0,
              "model.width": 1.0, "at.enabled": condition in ("at", "dual_at"), "at.orthogonal": orth,
              "at.layer": layer, "at.tap": "conv", "at.beta": 1.0, "at.aggregation": "gram",
              "at.distance": "cos_squared", "at.gram": "batch", "init.from": orth if condition == "weight_init" else "None",
              "train.epochs": 50, "train.batch_size": 8, "train.lr": 5e-5, "train.patience": 5}
    acc = min(1.0, max(0.0, rng.gauss(0.62 if condition == "baseline" else 0.65, 0.03)))
    final = {f"{p}{s}_{m}": acc for p, s in (("", "test"), ("best_", "train"), ("best_", "val"))
             for m in ("accuracy", "f1_macro", "precision_macro", "recall_macro")}
    final.update(test_loss=1 - acc, best_train_loss=1 - acc, best_val_loss=1 - acc, best_epoch=4, epochs_run=EPOCHS)
    hist = {"train_loss": 1.0, "train_ce_loss": 0.9, "train_accuracy": 0.5, "at_loss": 0.1, "val_loss": 1.0,
            "val_ce_loss": 0.9, "val_at_loss": 0.1, "val_accuracy": 0.5}
    return {"experiment": "antitransfer", "name": f"at/{task}[{condition},{layer}] s{seed}", "tags": tags,
            "params": params, "final": final, "hist": hist}


def plan(n: int, seed: int = 0) -> list[dict]:
    """The run specs, cycled through families until n (trials carry a study placeholder)."""
    rng = random.Random(seed)
    families = [
        [v2s_run(rng, "v2s_table2", d, s, m, k) for k in range(10) for d in UCR
         for s, m in (("attrnn", "v2s"), ("attrnn_unet", "v2s"), ("attrnn", "tf_a"))],
        [v2s_run(rng, "v2s_table4", d, s, "v2s", k) for k in range(10) for d in UCR[:4] for s in ("attrnn", "tcn")],
        [v2s_run(rng, "v2s_mapping", d, "attrnn", "v2s", k, kind, m) for k in range(10) for d in UCR[:4]
         for kind, m in (("one_to_one", "1"), ("random", "3"), ("random", "max"), ("frequency", "3"))],
        [at_run(rng, t, "baseline", 1, "None", k) for t in AT_TASKS for k in range(20)],
        [at_run(rng, t, c, layer, orth, k) for t in AT_TASKS for orth in ("ortho-a", "ortho-b")
         for c in ("at",) for layer in range(1, 14) for k in range(8)],
        [at_run(rng, t, "weight_init", 1, orth, k) for t in AT_TASKS for orth in ("ortho-a", "ortho-b") for k in range(3)],
    ]
    runs = list(itertools.chain(*families))
    trials = [dict(run, study=i % 2, trial=i) for i, run in enumerate(itertools.islice(itertools.cycle(
        families[0]), max(n - len(runs), 0)))]
    return (runs + trials)[:n]


def _create(args: tuple[str, dict[str, str], dict[str, str], list[dict]]) -> int:
    """Worker: create the given runs (one create_run, one log_batch, one set_terminated each)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri, exp_ids, extra, specs = args
    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    for spec in specs:
        tags = dict(spec["tags"])
        status = "FAILED" if spec.get("fail") else "FINISHED"
        if "study" in spec:
            state = ("COMPLETE", "COMPLETE", "PRUNED", "FAIL")[spec["trial"] % 4]
            status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}[state]
            tags.update({"xferlab.role": "trial", "mlflow.parentRunId": extra[str(spec["study"])],
                         "xferlab.study_uid": f"study-{spec['study']}", "xferlab.trial_number": str(spec["trial"]),
                         "xferlab.trial_state": state})
        tags["xferlab.source_run"] = extra.get(tags.get("xferlab.source_run", ""), tags.get("xferlab.source_run", ""))
        run = client.create_run(exp_ids[spec["experiment"]], start_time=now, tags=tags, run_name=spec["name"])
        metrics = [Metric(k, float(v), now, 0) for k, v in spec["final"].items()]
        metrics += [Metric(k, v * (1 - 0.05 * e), now, e) for e in range(1, EPOCHS + 1) for k, v in spec["hist"].items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in spec["params"].items()])
        client.set_terminated(run.info.run_id, status)
    return len(specs)


def _setup(uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """Schema, experiments, source pretraining runs and study parents (in this process)."""
    from mlflow.entities import Metric, Param

    from xferlab import tracking

    tracking.ensure_store(uri)
    client = tracking.get_client()
    exp_ids = {name: tracking.get_experiment_id(name) for name in ("v2s", "antitransfer", "sources")}
    extra: dict[str, str] = {}
    now = int(time.time() * 1000)
    for arch in ("attrnn", "attrnn_unet", "tcn"):
        tags = {**_common("pretrain_v2s", "v2s", "v2s_sources", f"sources/{arch}", "default", 0, "pretrain"),
                "xferlab.registered_model": arch, "xferlab.registered_version": "1"}
        run = client.create_run(exp_ids["sources"], start_time=now, tags=tags, run_name=f"sources/{arch} s0")
        client.log_batch(run.info.run_id, params=[Param("model.arch", arch), Param("seed", "0")],
                         metrics=[Metric(k, v, now, 0) for k, v in (("best_val_loss", 0.17), ("best_val_accuracy", 0.97),
                                                                     ("test_accuracy", 0.96), ("n_params", 2e5))])
        client.set_terminated(run.info.run_id, "FINISHED")
        extra[f"SRC:{arch}"] = run.info.run_id
    for study in range(2):
        tags = {"xferlab.role": "study", "xferlab.study": f"bench-study-{study}", "xferlab.study_uid": f"study-{study}",
                "xferlab.metric": "val_loss", "xferlab.direction": "minimize"}
        run = client.create_run(exp_ids["v2s"], start_time=now, tags=tags, run_name=f"study {study}")
        client.set_terminated(run.info.run_id, "FINISHED")
        extra[str(study)] = run.info.run_id
    return exp_ids, extra


def generate(uri: str, n: int, workers: int) -> float:
    """Create n runs in parallel workers; the seconds it took."""
    start = time.perf_counter()
    exp_ids, extra = _setup(uri)
    specs = plan(n - 5)  # 5 runs made by _setup
    for spec in specs[::97]:
        spec["fail"] = True  # a few failed runs the report must skip
    chunks = [(uri, exp_ids, extra, specs[i::workers * 8]) for i in range(workers * 8)]
    done = 0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for count in pool.imap_unordered(_create, chunks):
            done += count
            print(f"\r  generated {done + 5}/{n} runs", end="", flush=True)
    print()
    return time.perf_counter() - start


def clone(db: Path, size: int) -> float:
    """Copy the runs of ``db`` (with their tags, params and metrics) under new run ids until
    it holds ``size`` runs; the seconds it took."""
    import sqlite3

    start = time.perf_counter()
    con = sqlite3.connect(db)
    base = [r[0] for r in con.execute("SELECT run_uuid FROM runs ORDER BY start_time, run_uuid")]
    tables = ("runs", "tags", "params", "latest_metrics", "metrics")
    columns = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    con.execute("CREATE TEMP TABLE base (run_uuid TEXT PRIMARY KEY)")
    con.executemany("INSERT INTO base VALUES (?)", [(r,) for r in base])
    copy = 1
    while (have := con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]) < size:
        take = min(len(base), size - have)
        con.execute("DELETE FROM base WHERE run_uuid NOT IN (SELECT run_uuid FROM base LIMIT ?)", (take,))
        # a new 32-character id that no original (hex) id can equal: 'z' is not a hex digit
        new_id = f"'z' || printf('%03x', {copy}) || substr(run_uuid, 5)"
        for table in tables:
            cols = columns[table]
            picked = ", ".join(new_id if c == "run_uuid" else c for c in cols)
            con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {picked} FROM {table} "
                        "WHERE run_uuid IN (SELECT run_uuid FROM base)")
        con.commit()
        print(f"\r  copied up to {min(size, have + take)}/{size} runs", end="", flush=True)
        copy += 1
    print()
    con.close()
    return time.perf_counter() - start


def time_search() -> tuple[float, int]:
    """Bare ``mlflow.search_runs`` of every run of every experiment into a DataFrame."""
    import mlflow

    start = time.perf_counter()
    frame = mlflow.search_runs(search_all_experiments=True, max_results=1_000_000)
    return time.perf_counter() - start, len(frame)


def make_store(root: Path, size: int, base: int, workers: int) -> str:
    """``root/<size>/mlflow.db``: generated through the API up to ``base`` runs, the rest
    cloned from a copy of the base store."""
    import shutil

    path = root / str(size) / "mlflow.db"
    uri = f"sqlite:///{path}"
    if path.exists():
        return uri
    path.parent.mkdir(parents=True, exist_ok=True)
    if size <= base:
        print(f"generating {size} runs in {path.parent} with {workers} workers ...", flush=True)
        print(f"  {size} runs in {generate(uri, size, workers):.1f} s", flush=True)
        return uri
    source = Path(make_store(root, base, base, workers)[len("sqlite:///"):])
    shutil.copyfile(source, path)
    print(f"copying the {base}-run store's runs up to {size} runs ...", flush=True)
    print(f"  {size} runs in {clone(path, size):.1f} s", flush=True)
    return uri


def warm_up_imports() -> None:
    """Import what the report imports (every item's module, matplotlib, scipy.stats, xlsxwriter) and draw
    one figure, as the warm-up search imported MLflow's, so neither contestant pays for
    imports or first-use set-up."""
    import importlib

    import matplotlib.pyplot as plt
    import scipy.stats  # noqa: F401  (the V2S significance tests import it on first use)
    import xlsxwriter  # noqa: F401

    from xferlab.registry import TABLES
    from xferlab.report.items import item_names

    for name in item_names():
        TABLES.get(name)
    fig, ax = plt.subplots()  # a first drawing loads the fonts, as search's first query opened the database
    ax.plot([0, 1], [0, 1], label="warm-up")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    importlib.import_module("xferlab.report.html")


def measure(uri: str, cache: Path, out: Path) -> dict[str, float]:
    """First report (empty run cache), bare search_runs, second report; seconds each."""
    import mlflow

    from xferlab import tracking
    from xferlab.report.build import build_report

    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["XFERLAB_CACHE"] = str(cache)
    tracking.ensure_store(uri)
    mlflow.search_runs(search_all_experiments=True, max_results=10)  # imports, connection
    warm_up_imports()
    first = build_report([], None, out / "first")
    search, n = time_search()
    second = build_report([], None, out / "second")
    assert second.fetched.from_cache > 0.9 * n, "the second report did not use the run cache"
    return {"runs": n, "search": search, "first": first.seconds, "first_fetch": first.fetched.seconds,
            "second": second.seconds, "second_fetch": second.fetched.seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 50_000])
    parser.add_argument("--base", type=int, default=5000, help="runs made through the MLflow API (the rest are copies)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store", help="keep the generated stores in this folder (reused when present)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the pool stops its workers
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = Path(args.store or tempfile.mkdtemp(prefix="xferlab-bench-", dir=shm)).resolve()
    work = Path(tempfile.mkdtemp(prefix="xferlab-bench-report-"))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # inherited by the spawned workers
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uris = {size: make_store(root, size, min(args.base, size), args.workers) for size in sorted(args.sizes)}
    rows = [measure(uri, work / f"cache-{size}", work / f"report-{size}") for size, uri in uris.items()]
    print(f"{'runs':>7} | {'search_runs':>11} | {'1st report':>10} | {'(fetch)':>7} | {'2nd report':>10} | "
          f"{'(fetch)':>7} | {'1st / search':>12} | {'2nd / search':>12}")
    for r in rows:
        print(f"{r['runs']:>7} | {r['search']:>9.2f} s | {r['first']:>8.2f} s | {r['first_fetch']:>5.2f} s | "
              f"{r['second']:>8.2f} s | {r['second_fetch']:>5.2f} s | {r['first'] / r['search']:>12.2f} | "
              f"{r['second'] / r['search']:>12.3f}")
    print(f"stores in {root}; reports in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
