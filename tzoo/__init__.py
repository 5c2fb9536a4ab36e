"""transformer-zoo: swappable transformer components, Lightning recipes, ablations and reports.

`tzoo.intervene`, `tzoo.points`, `tzoo.ablate`, `tzoo.patch`, `tzoo.RunningMean` and
`tzoo.logit_lens` (from `tzoo.components.interventions`) are importable from here for
notebooks; they load on first use, so `import tzoo` stays light for the command line.
"""

__version__ = "0.1.0"

_INTERVENTIONS = ("intervene", "points", "ablate", "patch", "RunningMean", "logit_lens")


def __getattr__(name: str):
    if name in _INTERVENTIONS:
        from tzoo.components import interventions

        return getattr(interventions, name)
    raise AttributeError(f"module 'tzoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_INTERVENTIONS])
