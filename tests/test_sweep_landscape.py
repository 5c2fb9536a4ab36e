"""The sweep landscape figure: trials over the two most important numeric parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from tzoo.reports import sweep_landscape as landscape
from tzoo.sweeps.results import BestTrial, StudyResult, TrialResult


def _trial(number: int, state: str, params: dict[str, Any], value: float | None = None,
           intermediate: dict[str, float] | None = None) -> TrialResult:
    return TrialResult(number=number, state=state, status=state.lower(), reason="",
                       value=value, params=params, run_dir=None, run_dirs=[None],
                       seed_values=None, intermediate=intermediate or {}, retry_of=None,
                       started=None, completed=None)


def _study(trials: list[TrialResult], importances: dict[str, float] | None) -> StudyResult:
    done = [t for t in trials if t.state == "COMPLETE"]
    best = min(done, key=lambda t: t.value)
    return StudyResult(name="placement=post", fixed={}, metric="val/loss", direction="minimize",
                       n_trials=len(trials), counts={"COMPLETE": len(done)},
                       best=BestTrial(best.number, best.value, best.params, None),
                       importances=importances, importance_note="", trials=trials)


TRIALS = [
    _trial(0, "COMPLETE", {"ffn": "gelu", "train.warmup": 60, "train.lr": 6e-3}, 3.35),
    _trial(1, "COMPLETE", {"ffn": "relu", "train.warmup": 420, "train.lr": 2e-3}, 2.37),
    _trial(2, "COMPLETE", {"ffn": "gelu", "train.warmup": 420, "train.lr": 1.07e-2}, 2.04),
    _trial(3, "PRUNED", {"ffn": "gelu", "train.warmup": 240, "train.lr": 1.13e-2},
           intermediate={"200": 3.40, "400": 3.354}),
    _trial(4, "FAIL", {"ffn": "gelu", "train.warmup": 0, "train.lr": 3e-4}),
]


def test_the_axes_are_the_two_most_important_numeric_parameters() -> None:
    # A categorical parameter is never an axis, however important.
    ranked = {"ffn": 0.5, "train.lr": 0.3, "train.warmup": 0.2}
    assert landscape.landscape_axes(_study(TRIALS, ranked)) == ("train.lr", "train.warmup")
    # Without importances, the order the trials name them.
    assert landscape.landscape_axes(_study(TRIALS, None)) == ("train.warmup", "train.lr")
    one = [_trial(0, "COMPLETE", {"train.lr": 1e-3, "ffn": "gelu"}, 2.0)]
    assert landscape.landscape_axes(_study(one, None)) is None


def test_the_figure_shows_completed_pruned_and_best(drawn_figures: list[Figure],
                                                    tmp_path: Path) -> None:
    study = _study(TRIALS, {"train.lr": 0.6, "train.warmup": 0.4})
    assert landscape.sweep_landscape(study, tmp_path / "l.png") == tmp_path / "l.png"
    (fig,) = drawn_figures
    ax = fig.axes[0]
    sizes = {c.get_label(): len(c.get_offsets()) for c in ax.collections
             if isinstance(c, PathCollection)}
    assert sizes == {"completed": 3, "pruned": 1, "best (2.04)": 1}  # the failed one is left out
    labels = {t.get_text() for t in ax.texts if t.get_style() == "normal"}
    assert labels == {"3.35", "2.37", "2.04"}  # each completed trial with its objective
    pruned_labels = {t.get_text() for t in ax.texts if t.get_style() == "italic"}
    assert pruned_labels == {"3.35"}  # the last value the pruned trial reported (3.354)
    # The rates span less than a factor of ten here: a linear axis.
    assert ax.get_xscale() == "linear"


def test_a_wide_rate_range_gets_a_log_axis(drawn_figures: list[Figure], tmp_path: Path) -> None:
    wide = [*TRIALS, _trial(5, "COMPLETE", {"ffn": "gelu", "train.warmup": 0,
                                            "train.lr": 3e-4}, 2.6)]
    landscape.sweep_landscape(_study(wide, {"train.lr": 0.6, "train.warmup": 0.4}),
                              tmp_path / "l.png")
    assert drawn_figures[0].axes[0].get_xscale() == "log"
    assert drawn_figures[0].axes[0].get_yscale() == "linear"  # warm-up starts at 0
