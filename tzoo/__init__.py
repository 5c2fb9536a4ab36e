"""transformer-zoo: swappable transformer components, Lightning recipes, ablations and reports.

From Python (a notebook): `tzoo.load_experiment`, `tzoo.run_experiment`, `tzoo.load_run`,
`tzoo.build_report` (see `tzoo.api`), and the interventions `tzoo.intervene`, `tzoo.points`,
`tzoo.ablate`, `tzoo.patch`, `tzoo.RunningMean` and `tzoo.logit_lens` (from
`tzoo.components.interventions`). They are imported on first use, so `import tzoo` stays
instant and does not import torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: the Python API, imported from tzoo.api when first used
API = ("load_experiment", "run_experiment", "load_run", "build_report")
_INTERVENTIONS = ("intervene", "points", "ablate", "patch", "RunningMean", "logit_lens")
__all__ = ["__version__", *API, *_INTERVENTIONS]


def __getattr__(name: str) -> Any:
    if name in API:
        from tzoo import api

        return getattr(api, name)
    if name in _INTERVENTIONS:
        from tzoo.components import interventions

        return getattr(interventions, name)
    raise AttributeError(f"module 'tzoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *API, *_INTERVENTIONS])
