"""`tzoo data`: the named datasets, what is cached, fetching, verifying, and where they are.

    tzoo data list [-v]            name, task, size, license, cached or not (-v: sources, citation)
    tzoo data fetch NAME... | --all
    tzoo data verify [NAME...]     every checksum of what is cached (exit 2 if one is wrong)
    tzoo data path NAME            the folder (or file) a `dataset:NAME` corpus reads
"""

from __future__ import annotations

import argparse
import os

from tzoo.components.errors import ConfigError

from .cache import ROOT_VARIABLE, check, data_root, dataset_dir, summary
from .catalogue import CATALOGUE, lookup
from .fetch import fetch
from .http import megabytes

BAD = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION",
                                    help="list, fetch, verify or path")
    listing = actions.add_parser("list", help="the named datasets, and which are cached")
    listing.add_argument("-v", "--verbose", action="store_true",
                         help="also each dataset's source, splits, license and citation")
    fetching = actions.add_parser("fetch", help="download, check and cache datasets")
    fetching.add_argument("names", nargs="*", metavar="NAME")
    fetching.add_argument("--all", action="store_true", help="every dataset in the catalogue")
    verifying = actions.add_parser("verify", help="check the sha256 of every cached file")
    verifying.add_argument("names", nargs="*", metavar="NAME",
                           help="datasets to check (default: every cached one)")
    locating = actions.add_parser("path", help="print where a dataset's files are")
    locating.add_argument("name", metavar="NAME")


def data_command(args: argparse.Namespace) -> int:
    return {"list": _list, "fetch": _fetch, "verify": _verify, "path": _path}[args.action](args)


def _where() -> str:
    root = data_root()
    return f"{root} ({ROOT_VARIABLE})" if os.environ.get(ROOT_VARIABLE) else str(root)


def _list(args: argparse.Namespace) -> int:
    rows = [("name", "task", "size", "cached", "license")]
    for entry in CATALOGUE.values():
        size = megabytes(entry.size) if entry.size else "?"
        if entry.approx_size and entry.size == entry.approx_size:
            size = "~" + size
        rows.append((entry.name, entry.task, size, summary(check(entry, verify=False)),
                     entry.license))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[4])
    print(f"\ncache: {_where()}; `tzoo data verify` checks every sha256")
    if args.verbose:
        for entry in CATALOGUE.values():
            print(f"\n{entry.name}: {entry.title}\n  from:     {entry.origin}\n"
                  f"  splits:   {entry.splits}\n  license:  {entry.license}\n"
                  f"  cite:     {entry.citation}")
            if entry.note:
                print(f"  note:     {entry.note}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    if args.all:
        names = list(CATALOGUE)
    elif args.names:
        names = list(dict.fromkeys(args.names))
    else:
        raise ConfigError("name the datasets to fetch (or --all); `tzoo data list` shows them")
    entries = [lookup(name) for name in names]  # every name checked before any download
    for entry in entries:
        fetch(entry)
    for entry in entries:
        print(dataset_dir(entry))
    return 0


def _verify(args: argparse.Namespace) -> int:
    entries = [lookup(name) for name in args.names] if args.names else [
        entry for entry in CATALOGUE.values() if summary(check(entry, verify=False)) != "no"]
    if not entries:
        print(f"nothing is cached in {_where()}")
        return 0
    bad = 0
    for entry in entries:
        states = check(entry)
        print(f"{entry.name}: {summary(states)}")
        for state in states:
            if state.status != "ok":
                print(f"  {state.status}: {state.describe()}")
        bad += sum(s.status == "corrupt" for s in states)
        if args.names and summary(states) in ("no", "partial"):
            bad += 1
    if bad:
        print(f"\n`tzoo data fetch NAME` downloads what is missing or corrupt again "
              f"(cache: {_where()})")
    return BAD if bad else 0


def _path(args: argparse.Namespace) -> int:
    entry = lookup(args.name)
    states = check(entry, verify=False)
    folder = dataset_dir(entry)
    if summary(states) in ("no", "partial"):
        raise ConfigError(f"dataset '{entry.name}' is not (wholly) in {_where()}; "
                          f"`tzoo data fetch {entry.name}` downloads it to {folder}")
    print(folder / entry.corpus if entry.corpus else folder)
    return 0
