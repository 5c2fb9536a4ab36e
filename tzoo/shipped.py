"""The experiments and sweeps that ship with the suite, by name: `tzoo run quickstart`,
`tzoo sweep lr-placement`, as well as by path.

A command argument that is an existing file is that file. Otherwise a bare name (no folder, with
or without `.yaml`) is looked up among the packaged `recipes/*.yaml` (experiments) and
`sweeps/*.yaml` (sweeps); anything else is left as given, for the command's own "file not
found".
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from tzoo.components.errors import ConfigError, did_you_mean

#: what a command can take by name -> the package its files ship in
PACKAGES = {"experiment": "tzoo.recipes", "sweep": "tzoo.sweeps"}
SUFFIXES = (".yaml", ".yml")


def shipped(kind: str) -> dict[str, Path]:
    """Name -> file of every shipped experiment (`kind="experiment"`) or sweep."""
    folder = Path(str(files(PACKAGES[kind])))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def _is_bare_name(argument: str) -> bool:
    return "/" not in argument and "\\" not in argument and bool(argument.strip())


def resolve(argument: str, kinds: tuple[str, ...] = ("experiment",)) -> str:
    """The file `argument` names: itself when it exists, else the shipped file of that name
    (the first of `kinds` that has one). A bare name that matches nothing is refused with the
    closest shipped name; a path is returned unchanged."""
    if Path(argument).exists() or not _is_bare_name(argument):
        return argument
    name = argument
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    names: list[str] = []
    for kind in kinds:
        found = shipped(kind)
        if name in found:
            return str(found[name])
        names += found
    what = " or ".join(f"{kind}s" for kind in kinds)
    raise ConfigError(
        f"no file '{argument}' here, nor a shipped {' or '.join(kinds)} of that "
        f"name{did_you_mean(name, names)}; shipped {what}: {', '.join(sorted(set(names)))}"
    )
