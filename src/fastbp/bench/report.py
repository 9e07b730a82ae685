"""Presenting a comparison: a Markdown table for the terminal (and README) and a bar
chart of the speed ratios."""

from .. import machine

RATIO_MEANING = "x PEER = PEER ms / fastbp ms: fastbp's speed relative to PEER (> 1: fastbp is faster)"


def _number(value):
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def header(result):
    """The lines that say what was measured, where, the GEMM roof and, on several
    threads, the threads' speed-up (``thread_speedup_line``)."""
    versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())
    roof = result["roof"]
    return [
        f"{result['date']} | {result['cpu']} ({result['cores']} cores) | compiled for "
        f"{machine.isa_text(result['isa'])} | "
        f"threads: {result['threads']} | {result['dtype']} | median of {result['repeat']}"
        f" | heap: {result.get('heap', 'allocator defaults')}",
        versions,
        f"roof: {roof['what']}: {roof['gflops']:.1f} GFLOP/s",
        *([thread_speedup_line(result)] if "thread_speedup" in result else []),
        RATIO_MEANING,
        "",
    ]


def thread_speedup_line(result):
    """What the threads gave (``timing.thread_speedup``): before the rows, and after them
    once measured."""
    check = result["thread_speedup"]
    after = f", {check['end']:.2f}x after them" if "end" in check else ""
    return (f"threads: {check['what']}: {check['start']:.2f}x before the rows{after} "
            f"({result['threads']}x at most; less where the cores are shared)")


def table_head(peers):
    cols = (["shape", "pass"] + [f"{p} ms" for p in peers] + list(peers) + ["unit"]
            + [f"x {p}" for p in peers[1:]])
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def table_row(row, peers):
    """One Markdown row; "-" for a peer without this shape (its values absent from ``row``)."""
    def cell(values, peer, text):
        return text(values[peer]) if peer in values else "-"

    cells = ([row["shape"], row["pass"]]
             + [cell(row["ms"], p, _number) for p in peers]
             + [cell(row["throughput"], p, _number) for p in peers]
             + [row["unit"]]
             + [cell(row["ratio"], p, "{:.2f}".format) for p in peers[1:]])
    return "| " + " | ".join(cells) + " |"


def plot_ratios(result, path):
    """A PNG bar chart of fastbp's speed relative to each peer, one group per row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise SystemExit("--plot needs matplotlib: pip install 'fastbp[bench]'") from error
    peers, rows = result["peers"][1:], result["rows"]
    width = 0.8 / max(1, len(peers))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 5.5))
    for i, peer in enumerate(peers):
        positions = [j + (i - (len(peers) - 1) / 2) * width for j in range(len(rows))]
        ratios = [row["ratio"].get(peer, float("nan")) for row in rows]  # nan: no bar
        ax.bar(positions, ratios, width, label=f"vs {peer}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{row['shape']} {row['pass']}" for row in rows], rotation=60,
                       ha="right", fontsize=7)
    ax.set_ylabel("peer ms / fastbp ms (> 1: fastbp faster)", fontsize=8)
    ax.set_title(f"fastbp vs peers: {result['dtype']}, threads: {result['threads']}, {result['cpu']}, "
                 f"compiled for {machine.isa_text(result['isa'])}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
