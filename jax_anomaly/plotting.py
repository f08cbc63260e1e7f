"""PNG plots with matplotlib's Agg backend (imported lazily, so the library loads without it)."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)


def _draw(ax, x, image_shape, title=""):
    if image_shape is not None:
        ax.imshow(np.asarray(x).reshape(image_shape), cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
    else:
        ax.plot(np.asarray(x), lw=1)
    ax.set_title(title, fontsize=8)


def plot_reconstructions(
    path, originals, reconstructions, scores, labels, image_shape=None, maps=None
) -> None:
    """Originals (top row) next to reconstructions, score and label in each title; with
    ``maps`` (images only) a third row overlays each input with its anomaly map as a heat map
    (one colour scale for the row, so maps compare across samples)."""
    plt = _plt()
    n = len(originals)
    rows = 3 if maps is not None and image_shape is not None else 2
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.8 * rows), squeeze=False)
    for i in range(n):
        kind = "anomaly" if labels[i] else "normal"
        _draw(axes[0, i], originals[i], image_shape, f"{kind}")
        _draw(axes[1, i], reconstructions[i], image_shape, f"score {scores[i]:.4g}")
    axes[0, 0].set_ylabel("input"), axes[1, 0].set_ylabel("reconstruction")
    if rows == 3:
        top = float(np.quantile(maps, TOP_QUANTILE)) or float(np.max(maps)) or 1.0
        for i in range(n):
            _draw(axes[2, i], originals[i], image_shape)
            axes[2, i].imshow(
                np.asarray(maps[i]).reshape(image_shape), cmap="inferno", alpha=0.6, vmin=0, vmax=top
            )
        axes[2, 0].set_ylabel("anomaly map")
    _save(fig, path)


# The anomaly-map figures' colour scale ends at this quantile of the shown maps' pixels.
TOP_QUANTILE = 0.99


def plot_defect_maps(path, images, maps, masks, titles, per_row: int = 6) -> None:
    """Photographs (N, H, W), ``per_row`` to a row, each overlaid with its anomaly map (one
    colour scale for the figure, up to the 99th percentile of its maps' pixels: one bright map
    does not fade the others) and the outline of its defect mask in cyan (``masks`` None: no
    outlines); ``titles`` one each."""
    plt = _plt()
    n = len(images)
    cols = max(1, min(per_row, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    top = float(np.quantile(maps, TOP_QUANTILE)) or float(np.max(maps)) or 1.0
    masks = [None] * n if masks is None else masks
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, image, amap, mask, title in zip(axes.flat, images, maps, masks, titles, strict=False):
        ax.imshow(image, cmap="gray")
        ax.imshow(amap, cmap="inferno", alpha=0.5, vmin=0, vmax=top)
        if mask is not None and np.any(mask):
            ax.contour(np.asarray(mask, float), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(title, fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
    _save(fig, path)


def plot_score_histogram(path, scores, labels, threshold) -> None:
    """Score histograms of normal vs anomalous test samples with the threshold line."""
    plt = _plt()
    scores, labels = np.asarray(scores), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(scores.min(), scores.max(), 60)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label="normal")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label="anomaly")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("anomaly score"), ax.set_ylabel("density"), ax.legend()
    _save(fig, path)


def plot_latent(path, z, labels, classes=None) -> None:
    """2-D scatter of latent codes ``z`` (N, K) coloured by label (normal / anomaly), or by
    class when ``classes`` is given; for K > 2 the first two principal components."""
    from sklearn.decomposition import PCA

    plt = _plt()
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    title = "latent space"
    if z.shape[1] > 2:
        pca = PCA(n_components=2).fit(z)
        z = pca.transform(z)
        share = pca.explained_variance_ratio_.sum()
        title = f"latent space, PCA of {pca.n_features_in_}-d ({share:.0%} of variance)"
    elif z.shape[1] == 1:
        z = np.column_stack([z[:, 0], np.zeros(len(z))])
    fig, ax = plt.subplots(figsize=(6, 5))
    labels = np.asarray(labels)
    if classes is not None and len(np.unique(classes)) <= 10:
        points = ax.scatter(z[:, 0], z[:, 1], c=np.asarray(classes), cmap="tab10", s=4, alpha=0.6)
        ax.legend(*points.legend_elements(), title="class", fontsize=7, loc="best")
    else:
        for value, name in ((0, "normal"), (1, "anomaly")):
            ax.scatter(*z[labels == value].T, s=4, alpha=0.6, label=name)
        ax.legend()
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def plot_roc(path, labels, scores) -> None:
    """ROC curve with its AUROC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AUROC {roc_auc_score(labels, scores):.4f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate"), ax.legend()
    _save(fig, path)


def plot_loss_curves(path, history: list[dict]) -> None:
    """Every numeric per-epoch metric in ``history`` (train and ``val_``) against the epoch;
    entries may differ in keys (e.g. a GAN phase, then an encoder phase)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    names = dict.fromkeys(k for h in history for k, v in h.items() if isinstance(v, int | float))
    for name in names:
        if name not in ("epoch", "seconds"):
            ax.plot(epochs, [h.get(name, np.nan) for h in history], label=name)
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.legend()
    _save(fig, path)


def plot_grid(path, images, image_shape, title="") -> None:
    """A square grid of images (e.g. GAN samples)."""
    plt = _plt()
    n = len(images)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _draw(ax, images[i], image_shape)
        ax.axis("off")
    fig.suptitle(title)
    _save(fig, path)


def plot_roc_overlay(path, curves) -> None:
    """ROC curves of several runs on one axis: ``curves`` holds ``(name, labels, scores)``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, labels, scores in curves:
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(labels, scores):.4f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate"), ax.legend(fontsize=8)
    _save(fig, path)


def plot_bars(path, names, values, references: dict | None = None, ylabel: str = "AUROC %") -> None:
    """A bar per name (e.g. per normal class), with horizontal lines at ``references``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(names) + 2), 3.5))
    ax.bar([str(n) for n in names], values, color="#4c72b0")
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{i + 1}", label=f"{label}: {value:g}")
    low = min([*values, *(references or {}).values()])
    ax.set_ylim(max(0.0, low - 5), 100), ax.set_ylabel(ylabel)
    if references:
        ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_series(path, series, scores, threshold, events=(), title="") -> None:
    """A series (top; each channel) above its point scores and threshold (bottom), with the
    labelled anomaly ranges shaded in both and the flagged points marked."""
    plt = _plt()
    series, scores = np.asarray(series), np.asarray(scores)
    t = np.arange(len(scores))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5), sharex=True)
    top.plot(t, series.reshape(len(series), -1), lw=0.7)
    bottom.plot(t, scores, lw=0.7, color="tab:purple", label="score")
    bottom.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    flagged = scores > threshold
    bottom.scatter(t[flagged], scores[flagged], s=4, color="tab:red", zorder=3, label="flagged")
    for i, (s, e, _) in enumerate(events):
        for ax in (top, bottom):
            ax.axvspan(
                s - 0.5,
                e - 0.5,
                color="tab:orange",
                alpha=0.3,
                lw=0,
                label="labelled anomaly" if i == 0 and ax is bottom else None,
            )
    top.set_title(title, fontsize=10)
    bottom.set_xlabel("point"), bottom.set_ylabel("score"), bottom.legend(fontsize=7, loc="upper left")
    _save(fig, path)


def plot_ranks(path, ranks: dict[str, float], ours, title: str, xlabel: str) -> None:
    """A horizontal bar per method of its average rank, best on top; ``ours`` in orange."""
    plt = _plt()
    names = sorted(ranks, key=ranks.get)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1))
    ax.barh(
        names, [ranks[n] for n in names], color=["tab:orange" if n in ours else "tab:grey" for n in names]
    )
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _save(fig, path)
