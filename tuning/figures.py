"""Matplotlib for the tuning commands' figures: a headless backend and atomic writes.

The figures land in ``results/`` next to committed tables; a figure written in place and interrupted half-way would
leave a truncated PNG behind, so each one is saved to a temporary file in the same folder and renamed over the old.
"""

import os


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use: the commands that draw
    nothing (tables only) do not pay for matplotlib's import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, out):
    """Writes ``figure`` to ``out`` (.png) atomically, creating its folder, and closes it."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    temporary = f"{out}.tmp.png"
    figure.savefig(temporary)
    os.replace(temporary, out)
    pyplot().close(figure)
