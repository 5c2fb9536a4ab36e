"""Legends stay readable however many variants a report draws (reports.plots.legend)."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tzoo.reports.plots import INSET_LEGEND_MAX, legend


def _figure(lines: int) -> tuple[Figure, list]:
    fig = Figure(figsize=(8, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, 2))
    for ax in axes:
        for i in range(lines):
            ax.plot([0, 1], [i, i + 1], label=f"model.position=variant-{i}, train.lr=0.002")
    return fig, axes


def test_a_short_legend_sits_in_each_panel() -> None:
    fig, axes = _figure(3)
    legend(fig, axes)
    assert all(ax.get_legend() is not None for ax in axes)
    assert not fig.legends
    assert tuple(fig.get_size_inches()) == (8, 4)


def test_a_long_legend_goes_below_the_panels_in_columns() -> None:
    lines = INSET_LEGEND_MAX + 24
    fig, axes = _figure(lines)
    legend(fig, axes)
    assert all(ax.get_legend() is None for ax in axes)
    (figure_legend,) = fig.legends
    assert len(figure_legend.get_texts()) == lines  # one entry per label, not one per panel
    fig.canvas.draw()
    columns = {round(text.get_window_extent().x0) for text in figure_legend.get_texts()}
    assert len(columns) > 1
    # The panels keep most of their height: the legend made the figure taller instead.
    assert fig.get_size_inches()[1] > 4
    for ax in axes:
        assert ax.get_position().height > 0.3
    below = figure_legend.get_window_extent().y1
    assert all(below <= ax.get_window_extent().y0 for ax in axes)
