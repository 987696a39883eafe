"""PNG figure builders (matplotlib, Agg): the paper's Figures 3, 4 and 5.

Plotting takes plain arrays and dicts (history rows, ``analysis.cam_analysis`` output,
representations), so the report can redraw figures from logged artifacts without
TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

SECONDS = 1.0  # the AM's input span
EXACT_TSNE_MAX = 2000  # exact t-SNE is O(n^2) but a few seconds at this size
SAMPLE_RATE, N_FFT, HOP = 16000, 1024, 128  # as in v2s.frontend (not imported: no TensorFlow here)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_training_curves(history: list[dict[str, float]], path: str | Path, title: str = "",
                         split: str = "val") -> Path:
    """Figure 3: accuracy, loss and (when logged) SWD per epoch.

    ``split`` names the held-out curve in the legend ("test" in the paper's faithful
    mode, where the UCR test split serves as validation).
    """
    epochs = [h["epoch"] for h in history]
    panels = [("accuracy", "accuracy"), ("loss", "loss")]
    if any("swd" in h for h in history):
        panels.append(("swd", "sliced Wasserstein distance"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (key, label) in zip(np.atleast_1d(axes), panels):
        if key == "swd":
            ax.plot(epochs, [h.get("swd", np.nan) for h in history], "o-", color="tab:purple", ms=3)
        else:
            ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", ms=3, label="train")
            ax.plot(epochs, [h[f"val_{key}"] for h in history], "s-", ms=3, label=split)
            ax.legend(frameon=False)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "accuracy":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _frame_extent(n_frames: int) -> list[float]:
    """Time span of T STFT frames, frame t centred at (t * hop + n_fft / 2) / sr."""
    centre0, hop = (N_FFT / 2) / SAMPLE_RATE, HOP / SAMPLE_RATE
    return [centre0 - hop / 2, centre0 + (n_frames - 0.5) * hop]


def _image(ax, cax, data: np.ndarray, label: str, cmap: str, symmetric: bool = False) -> None:
    """(T, F) map drawn with time on x (s, frame centres) and mel bin on y; ``symmetric``
    centres the colour scale on 0 (signed maps: red raises the class score, blue lowers it)."""
    limits = {"vmin": -1.0, "vmax": 1.0} if symmetric else {}
    im = ax.imshow(np.asarray(data).T, origin="lower", aspect="auto", cmap=cmap,
                   extent=_frame_extent(data.shape[0]) + [0, data.shape[1]], **limits)
    ax.set_xlim(0, SECONDS)
    ax.set_ylabel(label)
    fig = ax.get_figure()
    fig.colorbar(im, cax=cax)


def _curve(ax, values: np.ndarray, label: str, color: str, frames: bool = False,
           alpha: float = 1.0) -> None:
    """A waveform (16000,) or a per-frame curve (T,) on the shared 0..1 s axis."""
    if frames:
        lo, hi = _frame_extent(len(values))
        t = np.linspace(lo + HOP / SAMPLE_RATE / 2, hi - HOP / SAMPLE_RATE / 2, len(values))
    else:
        t = np.arange(len(values)) / SAMPLE_RATE
    ax.plot(t, values, color=color, lw=1, alpha=alpha)
    ax.set_xlim(0, SECONDS)
    ax.set_ylabel(label)


def _cam_row(ax, cax, row: str, cam: dict) -> None:
    """Draw one row of the Figure 4 panel; ``cax`` is its colour-bar slot (hidden if unused)."""
    if row in ("mel",) or (row in cam["cams"] and cam["cams"][row].ndim == 2):
        data = cam["mel"] if row == "mel" else cam["cams"][row]
        label = "log-mel (dB)\nmel bin" if row == "mel" else f"CAM {row}\nmel bin"
        _image(ax, cax, data, label, "magma" if row == "mel" else "RdBu_r", symmetric=row != "mel")
        return
    cax.set_visible(False)
    if row == "series":
        ax.plot(cam["series"], color="black", lw=1)
        ax.set_ylabel("target series")
        ax.set_xlabel("time step of the target series", labelpad=1)
    elif row == "waves":
        _curve(ax, cam["padded"], "waveform", "black")
        _curve(ax, cam["reprogrammed"], "waveform", "tab:red", alpha=0.7)
        ax.legend(["padded target", "reprogrammed x' = pad + M*theta"], frameon=False, fontsize=8,
                  loc="upper right")
    elif row == "attention":
        _curve(ax, cam["attention"], "attention\nweight", "tab:green", frames=True)
    else:
        _curve(ax, cam["cams"][row], f"CAM {row}", "tab:orange", frames=True)


def plot_cam_panel(cam: dict, path: str | Path, title: str = "") -> Path:
    """Figure 4: target series, padded vs reprogrammed waveform, mel, CAM conv1/conv2, attention.

    ``cam`` is ``analysis.cam_analysis`` output. All rows but the first share the AM's
    0..1 s time axis; frame-based rows are placed at their STFT frame centres.
    """
    rows = ["series", "waves", "mel", *cam["cams"]]
    if cam.get("attention") is not None:
        rows.append("attention")
    fig = plt.figure(figsize=(9, 1.8 * len(rows)))
    grid = fig.add_gridspec(len(rows), 2, width_ratios=[60, 1], hspace=0.45, wspace=0.02,
                            top=1 - 0.35 / len(rows), bottom=0.05)
    axes = []
    for i, row in enumerate(rows):
        ax = fig.add_subplot(grid[i, 0], sharex=axes[1] if i > 1 else None)
        _cam_row(ax, fig.add_subplot(grid[i, 1]), row, cam)
        axes.append(ax)
    axes[-1].set_xlabel("time in the AM input (s)")
    fig.suptitle(title or f"V2S reprogrammed sample, CAM (gradient x activation) of target class "
                 f"{cam.get('class_index')}",
                 y=1 - 0.1 / len(rows))
    return _save(fig, path)


def tsne_points(reps: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """2-D t-SNE of each representation (perplexity capped for small sets).

    Sets up to ``EXACT_TSNE_MAX`` points use the exact method: Barnes-Hut's quad tree
    crashed (segfault in sklearn) on near-duplicate logits of a barely trained AM.
    Each set is scaled by its overall spread (geometry kept) and gets a 1e-4 seeded
    jitter, so identical points (a dead AM) give a blob instead of NaNs.
    """
    out = {}
    rng = np.random.default_rng(seed)
    for name, x in reps.items():
        x = np.asarray(x, np.float64)
        x = (x - x.mean(axis=0)) / (x.std() + 1e-12) + 1e-4 * rng.standard_normal(x.shape)
        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
        method = "exact" if len(x) <= EXACT_TSNE_MAX else "barnes_hut"
        out[name] = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca",
                         method=method).fit_transform(x)
    return out


def plot_tsne(points: dict[str, np.ndarray], labels: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Figure 5: one t-SNE scatter per representation, coloured by target class."""
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 4.0), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (name, xy) in zip(axes[0], points.items()):
        for k, cls in enumerate(np.unique(labels)):
            sel = labels == cls
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=cmap(k % 10), label=f"class {cls}", alpha=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(frameon=False, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_probe(rows: list[dict], path: str | Path, title: str = "", chance: float | None = None) -> Path:
    """Test accuracy of each read-out at each depth of the AM (``analysis.layer_probe`` rows):
    one line per input (padded series, reprogrammed series) and read-out, the raw series
    at the left and the V2S model's own accuracy as a star at the right."""
    depths = sorted({(r["depth"], r["layer"]) for r in rows})
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    styles = {"padded": "--", "reprogrammed": "-"}
    markers = {"logistic": "o", "1-NN": "s"}
    series = {r["readout"]: r["test_accuracy"] for r in rows if r["input"] == "series"}
    for inputs, line in styles.items():
        for readout, marker in markers.items():
            pts = [(0, series[readout])] + [(r["depth"], r["test_accuracy"]) for r in rows
                                            if r["input"] == inputs and r["readout"] == readout]
            ax.plot(*zip(*pts), line, marker=marker, ms=5, label=f"{readout}, {inputs}")
    own = [r for r in rows if r["layer"] == "output"]
    ax.plot([r["depth"] for r in own], [r["test_accuracy"] for r in own], "*", ms=14, color="black",
            label="V2S (its label mapping)")
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks([d for d, _ in depths], [name for _, name in depths])
    ax.set_xlabel("depth (raw series, then the frozen AM's layers)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(min(0.4, chance or 1.0, *(r["test_accuracy"] for r in rows)) - 0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
