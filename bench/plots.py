"""Plots of the benchmark results that have no module of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_training(training: dict[str, Any], path: Path) -> Path:
    """Horizontal bars: seconds per stage of ``hybridrec train``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = training["stages_s"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(stages) + 1.5))
    names = list(stages)[::-1]
    ax.barh(names, [stages[n] for n in names], color="tab:blue")
    for y, n in enumerate(names):
        ax.annotate(f"{stages[n]:.1f} s", (stages[n], y), xytext=(3, -3),
                    textcoords="offset points", fontsize=8)
    quick = " --quick" if training.get("quick") else ""
    ax.set_title(f"hybridrec train{quick} on {training['dataset']}: "
                 f"{training['total_s']:.0f} s in total")
    ax.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
