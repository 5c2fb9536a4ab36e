"""Many-variant figures keep every line distinguishable (reports.plots.color and marker)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from tzoo.reports.plots import SettingLine, color, marker, setting_curves


def test_colour_and_marker_pairs_differ_across_eighty_variants() -> None:
    pairs = {(color(i), marker(i)) for i in range(80)}
    assert len(pairs) == 80
    assert marker(0) == marker(9) == "o"  # an ordinary report keeps plain circles
    assert marker(10) != marker(0)
    assert "*" not in {marker(i) for i in range(80)}  # the star marks a tuned best


def test_a_thirty_line_sweep_figure_draws_thirty_distinct_styles(
        drawn_figures: list[Figure], tmp_path: Path) -> None:
    lines = [SettingLine(f"variant-{i}", [(2e-3, [2.0 + i / 100]), (4e-3, [1.9 + i / 100])],
                         shared=2e-3, best=4e-3) for i in range(30)]
    setting_curves(lines, "train.lr", "val/loss", tmp_path / "curves.png")
    (fig,) = drawn_figures
    (ax,) = fig.axes
    # One errorbar container per variant (its label); its first line is the data line.
    styled = {(bars.lines[0].get_color(), bars.lines[0].get_marker())
              for bars in ax.containers if bars.get_label().startswith("variant-")}
    assert len(styled) == 30
