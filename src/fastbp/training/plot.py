"""Loss and accuracy curves of a ``History`` as a PNG (needs matplotlib)."""


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'fastbp[plot]'") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def history_figure(history, title=None):
    """A matplotlib figure of ``history``: train/test loss per epoch on the left, accuracy
    on the right (omitted when the history holds none). Every epoch is a marked point,
    so a one-epoch history shows; the epoch axis has whole-number ticks."""
    if len(history) == 0:
        raise ValueError("the history is empty: nothing to plot")
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    has_accuracy = any(a is not None for a in history.train_accuracy + history.test_accuracy)
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5, 4),
                             squeeze=False)
    epochs = history.epoch
    style = {"marker": "o", "markersize": 4}
    panels = [(axes[0, 0], "loss", "loss", 1, (("train", history.train_loss), ("test", history.test_loss)))]
    if has_accuracy:
        panels.append((axes[0, 1], "accuracy", "accuracy (%)", 100,
                       (("train", history.train_accuracy), ("test", history.test_accuracy))))
    for ax, name, ylabel, scale, series in panels:
        for label, values in series:
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else scale * v for v in values],
                        label=label, **style)
        ax.set(xlabel="epoch", ylabel=ylabel, title=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if epochs[0] == epochs[-1]:  # one epoch: a window one epoch wide around it
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history, path, title=None):
    """Write ``path`` (PNG): the figure of ``history_figure``."""
    fig = history_figure(history, title)
    fig.savefig(path, format="png", dpi=100)
    _pyplot().close(fig)
