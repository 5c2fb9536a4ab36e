"""transformer-zoo: swappable transformer components, Lightning recipes, ablations and reports."""

__version__ = "0.1.0"
