"""Loss and accuracy curves of a ``History`` as a PNG (needs matplotlib)."""


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'fastbp[plot]'") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history, path, title=None):
    """Write ``path`` (PNG): train/test loss per epoch on the left, accuracy on the right
    (the accuracy panel is omitted when the history holds none)."""
    if len(history) == 0:
        raise ValueError("the history is empty: nothing to plot")
    plt = _pyplot()
    has_accuracy = any(a is not None for a in history.train_accuracy + history.test_accuracy)
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5, 4),
                             squeeze=False)
    epochs = history.epoch
    ax = axes[0, 0]
    ax.plot(epochs, history.train_loss, label="train")
    if any(v is not None for v in history.test_loss):
        ax.plot(epochs, [float("nan") if v is None else v for v in history.test_loss], label="test")
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    ax.legend()
    if has_accuracy:
        ax = axes[0, 1]
        for name, values in (("train", history.train_accuracy), ("test", history.test_accuracy)):
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else 100 * v for v in values], label=name)
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
