"""The figures of ``mmemolr report`` (matplotlib, Agg backend, PNG).

- comparison bar chart with error bars (the table of a sweep),
- t-SNE of the test emotion states e_t, one-hot run beside RLD run (the paper's Figure 3),
- refined label distribution vs one-hot label vs prediction for chosen utterances (Figure 4),
- the learned label confusions of refining targets: mean target distribution per gold class,
- per-class F1 and confusion matrices,
- training curves: train and dev loss and dev weighted F1 per epoch, the selected epoch marked.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmemolr.fileio import atomic_path  # noqa: E402

DPI = 130


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def comparison_bars(table: dict[str, Any], path: Path) -> Path:
    """Grouped bars: one group per table row, one bar per column; W-F1 and accuracy panels, ± std."""
    rows, columns = table["rows"], table["columns"]
    cells = {(c["row"], c["column"]): c for c in table["cells"]}
    side = 0 if table["compare"] == "rows" else 1  # stars mark the comparison with the baseline only
    comps = {(c["row"], c["column"]): c for c in table["comparisons"] if c["baseline"][side] == table["baseline"]}
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.1 * len(rows) * max(1, len(columns)) + 3), 4.2))
    width = 0.8 / max(1, len(columns))
    x = np.arange(len(rows))
    for ax, (key, name) in zip(axes, (("weighted_f1", "weighted F1 (%)"), ("accuracy", "accuracy (%)"))):
        lows, missing = [], []
        for j, (col, color) in enumerate(zip(columns, _colors(len(columns)))):
            means = np.array([np.nan if cells[(r, col)][key]["mean"] is None else 100 * cells[(r, col)][key]["mean"]
                              for r in rows], dtype=float)
            stds = np.array([100 * (cells[(r, col)][key]["std"] or 0.0) for r in rows], dtype=float)
            pos = x + (j - (len(columns) - 1) / 2) * width
            label = col if len(columns) > 1 else name
            done = np.isfinite(means)
            ax.bar(pos[done], means[done], width, yerr=stds[done], capsize=3, color=color, label=label,
                   edgecolor="black", linewidth=0.4)
            missing.extend(pos[~done])
            lows.extend((means - stds)[done])
            for i, r in enumerate(rows):
                comp = comps.get((r, col))
                if comp and comp[key]["p"] is not None and comp[key]["p"] < 0.05 and np.isfinite(means[i]):
                    ax.text(pos[i], means[i] + stds[i] + 0.2, "*", ha="center", va="bottom", fontsize=12)
        floor_value = (table.get("floor") or {}).get("test", {}).get(key)
        if floor_value is not None:  # the context-free floor (generalization), a line across the panel
            ax.axhline(100 * floor_value, color="dimgray", linestyle="--", linewidth=1,
                       label="context-free floor (LR)")
            lows.append(100 * floor_value)
        # The axis starts below the lowest bar (a multiple of 5), not at 0, so that differences of a
        # point or two stay visible; the label says so.
        floor = max(0.0, 5.0 * np.floor((float(np.min(lows)) - 2.0) / 5.0)) if lows else 0.0
        ax.set_ylim(bottom=floor)
        for p in missing:  # a cell without finished runs: no bar, and no zero-height bar posing as one
            ax.text(p, floor, "n/a", ha="center", va="bottom", fontsize=7, color="dimgray", rotation=90)
        ax.set_xticks(x, rows, rotation=30 if max(len(r) for r in rows) > 6 else 0, ha="right" if max(len(r) for r in rows) > 6 else "center")
        ax.set_ylabel(name + (f", axis from {floor:g}" if floor > 0 else ""))
        ax.grid(axis="y", alpha=0.3)
        if len(columns) > 1 or floor_value is not None:
            ax.legend(fontsize=8)
    n = len(table["seeds"])
    fig.suptitle(f"{table['preset']} on {table['corpus']}: test mean ± std over {n} seed(s)"
                 + ("  (* paired t-test p < 0.05)" if table["comparisons"] else "")
                 + ("  n/a: no finished run" if any(not c["weighted_f1"]["n"] for c in table["cells"]) else ""),
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def tsne_embedding(states: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(states)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, learning_rate="auto", random_state=seed)
    # One thread: a few thousand points gain little from more, and OpenMP threads competing with other
    # processes for the cores make it several times slower (measured 18 s vs 53 s on a busy 2-core box).
    with threadpool_limits(1):
        return tsne.fit_transform(np.asarray(states, dtype=np.float32))


def tsne_panels(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], labels: Sequence[str], path: Path,
                max_points: int = 2000, seed: int = 0) -> Path:
    """``panels``: (title, emotion states N x D, gold label index N). Same subsample in every panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    colors = _colors(len(labels))
    n = len(panels[0][2])
    keep = np.arange(n)
    if n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    for ax, (title, states, gold) in zip(axes[0], panels):
        xy = tsne_embedding(states[keep], seed)
        g = np.asarray(gold)[keep]
        for k, label in enumerate(labels):
            sel = g == k
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=colors[k], label=f"{label} ({int(sel.sum())})",
                           alpha=0.75, linewidths=0)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2.5, title="gold")
    fig.suptitle(f"t-SNE of the emotion states e_t of {len(keep)} test utterances", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def refinement_panels(examples: Sequence[dict[str, Any]], labels: Sequence[str], path: Path,
                      series_names: Sequence[str]) -> Path:
    """Per utterance: grouped bars over the labels, one bar per series (one-hot label, refined target, ...).

    ``examples``: dicts with ``id``, ``text``, ``gold``, ``series`` (name -> probabilities over labels).
    """
    cols = 2 if len(examples) > 1 else 1
    nrows = int(np.ceil(len(examples) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(6.4 * cols, 3.4 * nrows), squeeze=False)
    colors = _colors(len(series_names))
    x = np.arange(len(labels))
    width = 0.8 / len(series_names)
    for ax, ex in zip(axes.ravel(), examples):
        for j, (name, color) in enumerate(zip(series_names, colors)):
            if name in ex["series"]:
                ax.bar(x + (j - (len(series_names) - 1) / 2) * width, ex["series"][name], width, color=color,
                       label=name, edgecolor="black", linewidth=0.3)
        text = textwrap.shorten(ex.get("text") or "", 110, placeholder=" …")
        ax.set_title("\n".join(textwrap.wrap(f"{ex['id']} (gold {ex['gold']}): \"{text}\"", 70)), fontsize=8)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("probability", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(examples):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("refined label distribution vs one-hot label vs prediction (test utterances)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def per_class_f1_heatmap(names: Sequence[str], f1: np.ndarray, labels: Sequence[str], path: Path,
                         support: Sequence[int] | None = None, how: str = "mean over seeds") -> Path:
    """Rows: runs or table cells; columns: labels; values: F1 in %. ``how``: what a row is (title)."""
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 3.0, 0.42 * len(names) + 1.8))
    im = ax.imshow(100 * f1, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(len(names)):
        for j in range(len(labels)):
            v = 100 * f1[i, j]
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white" if v < 55 else "black")
    xt = [f"{lab}\n(n={support[k]})" for k, lab in enumerate(labels)] if support is not None else list(labels)
    ax.set_xticks(np.arange(len(labels)), xt, fontsize=8)
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    fig.colorbar(im, ax=ax, label="F1 (%)", fraction=0.04)
    ax.set_title(f"per-class F1 on the test split ({how})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def confusion_grid(matrices: Sequence[tuple[str, np.ndarray]], labels: Sequence[str], path: Path,
                   ncols: int = 2, how: str = "summed over seeds") -> Path:
    """Row-normalised confusion matrices (gold rows, predicted columns), annotated in %."""
    ncols = max(1, min(ncols, len(matrices)))
    nrows = int(np.ceil(len(matrices) / ncols))
    size = 0.5 * len(labels) + 1.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.6, size * nrows), squeeze=False)
    for ax, (title, cm) in zip(axes.ravel(), matrices):
        cm = np.asarray(cm, dtype=np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(100 * norm, cmap="Blues", vmin=0, vmax=100)
        for i in range(len(labels)):
            for j in range(len(labels)):
                v = 100 * norm[i, j]
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6.5,
                        color="white" if v > 55 else "black")
        _label_square(ax, labels, "predicted", title)
    for ax in axes.ravel()[len(matrices):]:
        ax.axis("off")
    fig.suptitle(f"confusion matrices on the test split (% of each gold class, {how})", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def learned_confusion_grid(panels: Sequence[tuple[str, Sequence[Sequence[float] | None]]], labels: Sequence[str],
                           path: Path, ncols: int = 3) -> Path:
    """Per refining run or cell: C x C heatmap, row g = mean target distribution z of gold class g (in %).

    A target that refines shows class-specific off-diagonal patterns; one constant offset shows as the
    same off-diagonal column lit in every row; label smoothing as an even off-diagonal."""
    return _save(learned_confusion_figure(panels, labels, ncols), path)


def learned_confusion_figure(panels: Sequence[tuple[str, Sequence[Sequence[float] | None]]], labels: Sequence[str],
                             ncols: int = 3) -> Any:
    """The matplotlib figure of :func:`learned_confusion_grid` (also logged to TensorBoard)."""
    ncols = max(1, min(ncols, len(panels)))
    nrows = int(np.ceil(len(panels) / ncols))
    size = 0.55 * len(labels) + 1.8
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.6, size * nrows), squeeze=False)
    for ax, (title, matrix) in zip(axes.ravel(), panels):
        m = np.array([[np.nan] * len(labels) if r is None else r for r in matrix], dtype=np.float64)
        off = m.copy()
        np.fill_diagonal(off, np.nan)
        # Colour by the off-diagonal mass (the gold entry would swamp it); the diagonal is printed.
        vmax = max(1e-6, float(np.nanmax(off))) if np.isfinite(off).any() else 1.0
        ax.imshow(np.nan_to_num(off), cmap="Oranges", vmin=0, vmax=vmax)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{100 * m[i, j]:.0f}" if i == j else f"{100 * m[i, j]:.1f}", ha="center",
                            va="center", fontsize=6, fontweight="bold" if i == j else "normal",
                            color="white" if i != j and m[i, j] > 0.6 * vmax else "black")
        _label_square(ax, labels, "target label", title)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    title = "learned label confusions: mean target distribution z per gold class on the test split (%; colour: " \
        "off-diagonal mass)"
    if any(name.startswith("annotators") for name, _ in panels):
        title += "\nannotators: their mean vote shares per gold class on the train split"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(panels: Sequence[tuple[str, Sequence[tuple[str, Sequence[dict[str, Any]], int]]]],
                    path: Path, ncols: int = 3) -> Path:
    """Per setting (``panels``: title, [(run label, metrics rows, selected epoch)]): train and dev loss per
    epoch above, dev weighted F1 below; one colour per run (its seeds), the selected epoch as a star."""
    ncols = max(1, min(ncols, len(panels)))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(4.6 * ncols, 5.0 * nrows), squeeze=False,
                             gridspec_kw={"height_ratios": [1.0, 0.8] * nrows})
    for k, (title, runs) in enumerate(panels):
        top, bottom = axes[2 * (k // ncols)][k % ncols], axes[2 * (k // ncols) + 1][k % ncols]
        for (label, rows, best), color in zip(runs, _colors(len(runs))):
            epochs = [int(r["epoch"]) for r in rows]
            series = {key: [np.nan if r.get(key) is None else float(r[key]) for r in rows]
                      for key in ("train_loss", "valid_loss", "valid_weighted_f1")}
            top.plot(epochs, series["train_loss"], color=color, linewidth=1.2, label=f"{label} train")
            top.plot(epochs, series["valid_loss"], color=color, linewidth=1.2, linestyle="--", label=f"{label} dev")
            bottom.plot(epochs, [100 * v for v in series["valid_weighted_f1"]], color=color, linewidth=1.2,
                        label=label)
            if best in epochs:
                i = epochs.index(best)
                top.plot([best], [series["valid_loss"][i]], marker="*", color=color, markersize=10,
                         markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
                bottom.plot([best], [100 * series["valid_weighted_f1"][i]], marker="*", color=color,
                            markersize=11, markeredgecolor="black", markeredgewidth=0.5, linestyle="none")
        top.set_title(title, fontsize=9)
        top.set_ylabel("loss: train (solid), dev CE (dashed)", fontsize=8)
        bottom.set_ylabel("dev weighted F1 (%)", fontsize=8)
        bottom.set_xlabel("epoch (★ selected on dev)", fontsize=8)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            ax.xaxis.get_major_locator().set_params(integer=True)
        bottom.legend(fontsize=7, loc="lower right")
    for k in range(len(panels), nrows * ncols):
        axes[2 * (k // ncols)][k % ncols].axis("off")
        axes[2 * (k // ncols) + 1][k % ncols].axis("off")
    fig.suptitle("training curves per epoch, one colour per run: the training target's loss (solid) and dev "
                 "cross-entropy (dashed); dev weighted F1", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _label_square(ax: Any, labels: Sequence[str], xlabel: str, title: str) -> None:
    """Ticks and titles of a labels x labels heatmap (gold rows)."""
    ax.set_xticks(np.arange(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel("gold", fontsize=7)
    ax.set_title(title, fontsize=8)
