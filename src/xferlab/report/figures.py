"""PNG figures of the report (matplotlib, Agg), drawn from frames the tables already hold
or from the metric histories of the few runs a figure needs.

Lines averaged over seeds show the mean with a band of +- one standard deviation (no band
for a single run); every legend entry says how many runs are behind it.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from xferlab.report import at_tables, papers  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)  # no bbox_inches="tight": it draws the figure twice
    plt.close(fig)
    return path


def _band(ax: plt.Axes, hist: pd.DataFrame, key: str, label: str, style: str = "-", color: str | None = None) -> None:
    """Mean over runs per step of metric ``key``, with a +-std band."""
    part = hist[hist["key"] == key]
    if part.empty:
        return
    g = part.groupby("step")["value"]
    mean, std, n = g.mean(), g.std(ddof=1), part["run_id"].nunique()
    line, = ax.plot(mean.index, mean.values, style, ms=3, color=color, label=f"{label} (n={n})")
    if n > 1:
        ax.fill_between(mean.index, (mean - std).values, (mean + std).values, alpha=0.18, color=line.get_color())


def _finish(ax: plt.Axes, ylabel: str) -> None:
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8)


def v2s_fig3(hist: pd.DataFrame, labels: dict[str, str], path: Path, title: str, held_out: str) -> Path:
    """Figure 3: held-out accuracy, loss and SWD per epoch, one line per method column.

    ``labels`` maps run_id -> line label (e.g. "V2S_a (attrnn)"); ``held_out`` names the
    split the val_* curves come from ("test" in the paper's protocol)."""
    hist = hist.assign(label=hist["run_id"].map(labels))
    panels = [("val_accuracy", "train_accuracy", f"{held_out} accuracy"), ("val_loss", "train_loss", f"{held_out} loss"),
              ("swd", None, "sliced Wasserstein distance")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, train_key, ylabel) in zip(axes, panels):
        for i, (label, part) in enumerate(hist.groupby("label", sort=True)):
            color = f"C{i}"
            _band(ax, part, key, f"{label} {held_out}" if train_key else label, "o-", color)
            if train_key:
                _band(ax, part, train_key, f"{label} train", "--", color)
        _finish(ax, ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _hbars(ax: plt.Axes, labels: list[str], series: dict[str, list[float]], title: str, slots: int) -> None:
    """Grouped horizontal bars; ``slots`` rows of room, so both panels share a bar size."""
    y = np.arange(len(labels))
    height = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        bars = ax.barh(y + (i - (len(series) - 1) / 2) * height, values, height, label=name)
        ax.bar_label(bars, fmt="%+.1f", fontsize=7, padding=2)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(slots - 0.5, -0.5)
    ax.margins(x=0.18)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("test accuracy: AT minus baseline (points)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=8)


def at_boost(paper: pd.DataFrame, ours: pd.DataFrame, path: Path) -> Path:
    """Accuracy boost per modality: the paper's bars beside ours (best layer, layer mean)."""
    rows = max(len(paper), len(ours), 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.2 + 0.55 * rows))
    _hbars(axes[0], list(paper["label"]), {"paper": list(paper["boost"])}, "paper (headline numbers)", rows)
    if len(ours):
        _hbars(axes[1], list(ours["label"]), {"best layer (by val)": list(ours["best_layer"]),
                                              "mean over layers": list(ours["mean_layers"])}, "ours", rows)
    else:
        axes[1].text(0.5, 0.5, "no AT runs with a baseline", ha="center", va="center")
        axes[1].set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def at_per_layer(layers: pd.DataFrame, path: Path) -> Path:
    """Per-layer improvement over the baseline (train and test): one line per experiment
    (task setting, spec, condition, orthogonal model, tap) and their average; one shared
    legend below the panels."""
    at = layers[layers["condition"].isin(["at", "dual_at"]) & layers["layer"].notna()]
    keys = [c for c in at_tables.CELL if c != "layer"]  # a line is a cell across layers: never two joined
    groups = list(at.groupby(keys, dropna=False))
    legend_rows = -(-(len(groups) + 1) // 3)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6 + 0.2 * legend_rows))
    for ax, which in zip(axes, ("train", "test")):
        for i, (values, part) in enumerate(groups):
            key = dict(zip(keys, values))
            part = part.sort_values("layer")
            label = f"{at_tables.setting_label(key)} {key['condition']} vs {key['ref_model']} ({key['spec']})"
            ax.plot(part["layer"], part[f"{which}_gain"], "o-", ms=3, lw=1, color=plt.cm.tab20(i % 20), label=label)
        if len(groups) > 1:
            avg = at.groupby("layer")[f"{which}_gain"].mean()
            ax.plot(avg.index, avg.values, "k--", lw=2, label="average")
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xlabel="AT layer (conv)", ylabel=f"{which} accuracy gain (points)", xlim=(0.5, 13.5))
        ax.set_title(f"{which}: AT minus baseline", fontsize=10)
        ax.set_xticks(range(1, 14))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    bottom = (0.35 + 0.2 * legend_rows) / fig.get_figheight()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, bottom if handles else 0, 1, 1))
    return _save(fig, path)


def at_per_layer_paper(path: Path) -> Path:
    """The paper's IEMOCAP per-layer improvement, from its plotting-script numbers."""
    ref = papers.load("at_per_layer_iemocap")
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, which in zip(axes, ("train", "test")):
        for orth in ("libri", "iemo"):
            for split, key in (("random", "random"), ("speaker", "speaker")):
                gain = ref[f"{which}_{orth}_{split}"] - papers.PER_LAYER_BASELINES[(which, key)]
                ax.plot(ref["block"], gain, "o-", ms=3, label=f"{split}-wise, vs {orth}")
        cols = [c for c in ref.columns if c.startswith(which + "_")]
        avg = np.mean([ref[c] - papers.PER_LAYER_BASELINES[(which, "random" if "random" in c else "speaker")]
                       for c in cols], axis=0)
        ax.plot(ref["block"], avg, "k--", lw=2, label="average")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("AT layer (conv block)")
        ax.set_ylabel(f"{which} accuracy gain (points)")
        ax.set_title(f"paper, IEMOCAP {which}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def at_loss(hist: pd.DataFrame, path: Path, title: str) -> Path:
    """Loss through epochs: cross-entropy and AT loss, train and validation."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (name, keys) in zip(axes, (("cross-entropy", ("train_ce_loss", "val_ce_loss")),
                                        ("AT loss", ("at_loss", "val_at_loss")),
                                        ("total loss", ("train_loss", "val_loss")))):
        for key, style in zip(keys, ("o-", "s--")):
            _band(ax, hist, key, "train" if style == "o-" else "validation", style)
        _finish(ax, name)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def at_confound(summary: pd.DataFrame, path: Path) -> Path:
    """Test accuracy of baseline and AT (best layer) against the strength of the training
    split's shortcut (``data.confound``), one panel per experiment (task setting, spec and
    orthogonal model, :data:`at_tables.SWEEP`)."""
    groups = list(summary.groupby(at_tables.SWEEP, dropna=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.8), squeeze=False)
    for ax, (_, part) in zip(axes[0], groups):
        part = part.sort_values("confound")
        first = part.iloc[0]
        task, split, ref, spec = first["task"], first["split"], first["ref_model"], first["spec"]
        for prefix, label in (("baseline_test", "baseline"), ("at_best_test", "AT, best layer"),
                              ("weight_init_test", "weight init")):
            if f"{prefix}_mean" in part and part[f"{prefix}_mean"].notna().any():
                n = int(part[f"{prefix}_n"].max())
                ax.errorbar(part["confound"], part[f"{prefix}_mean"], yerr=part[f"{prefix}_std"].fillna(0),
                            fmt="o-", capsize=3, label=f"{label} (n<={n} per point)")
        ax.set_xlabel("data.confound (shortcut strength in training)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{spec}\n{at_tables.task_label(task, split, 0)}{at_tables.variant_label(first)} vs {ref or '-'}",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


VERDICT_COLOURS = {"reproduced": "tab:green", "not reproduced": "tab:red", "inconclusive": "tab:gray"}


CLAIM_ROWS = 30  # the forest plot's rows at most; the table lists every claim


def claim_rows(table: pd.DataFrame, most: int = CLAIM_ROWS) -> pd.DataFrame:
    """The claims the figure draws: decided ones first (reproduced, not reproduced), then
    AT before V2S, in table order within each, at most ``most`` (a plot of hundreds of rows
    is unreadable and slow to draw)."""
    rank = table["verdict"].eq("inconclusive").astype(int) * 2 + table["paper"].ne("AT").astype(int)
    return table.assign(_rank=rank).sort_values("_rank", kind="stable").head(most).drop(columns="_rank")


def claims(table: pd.DataFrame, path: Path) -> Path:
    """The claims as a forest plot: per claim, our mean with its 95 % interval (coloured by
    verdict) and the paper's figure (a black cross); gains and accuracies in panels of
    their own, one above the other, as their scales differ. Laid out by hand (no
    tight_layout, which draws the figure once more)."""
    from xferlab.report.claims import GAIN, LEVEL

    parts = [(m, table[table["measure"] == m]) for m in (GAIN, LEVEL) if (table["measure"] == m).any()]
    heights = [0.6 + 0.3 * len(p) for _, p in parts]
    total = 1.2 + sum(heights)
    fig, axes = plt.subplots(len(parts), 1, figsize=(12, total), squeeze=False,
                             gridspec_kw={"height_ratios": heights, "hspace": 0.9 / max(1.0, sum(heights) / len(parts))})
    for ax, (measure, part) in zip(axes[:, 0], parts):
        y = np.arange(len(part))[::-1]
        low = (part["ours"] - part["ci_low"]).fillna(0).clip(lower=0).to_numpy()
        high = (part["ci_high"] - part["ours"]).fillna(0).clip(lower=0).to_numpy()
        for verdict, colour in VERDICT_COLOURS.items():
            hit = (part["verdict"] == verdict).to_numpy()
            if hit.any():
                ax.errorbar(part["ours"].to_numpy()[hit], y[hit], xerr=[low[hit], high[hit]], fmt="o", color=colour,
                            capsize=3, ms=5)
        ax.plot(part["paper_figure"], y, "kx", ms=8, mew=1.5)
        if measure == GAIN:
            ax.axvline(0, color="black", lw=0.8)
        labels = [textwrap.shorten(f"{claim.split(' (')[0]} | {scope} [{spec}]", 95)
                  for claim, scope, spec in zip(part["claim"], part["scope"], part["spec"])]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_ylim(-0.6, len(part) - 0.4)
        ax.set_xlabel(measure)
        ax.grid(alpha=0.3, axis="x")
    handles = [plt.Line2D([], [], color="black", marker="x", ls="", mew=1.5, label="paper")]
    handles += [plt.Line2D([], [], color=c, marker="o", label=f"ours (95 % interval): {v}")
                for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.45, right=0.98, top=1 - 0.25 / total, bottom=1.0 / total)
    return _save(fig, path)
