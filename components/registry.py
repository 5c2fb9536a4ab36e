"""Registries: one per component family, filled by decorators, queried by name.

    @POSITIONS.register("rotary")
    class Rotary(PositionEncoding): ...

    POSITIONS.build("rotary", head_dim=32)
    POSITIONS.build({"name": "relative", "num_buckets": 32}, heads=4)

Names are a public contract: experiment files refer to them. A renamed variant keeps its old
name through `aliases=` (resolved with a deprecation warning) so that old files still run.
Third-party packages add variants through the ``tzoo.components`` entry-point group: each entry
point is imported once, and registering happens as a side effect of the import.

A variant's arguments are its constructor's keyword arguments (`accepted_arguments`); the caller
supplies some (the model: d_model, heads, ...), a spec sets the others. A variant that some
combinations refuse without an argument declares an example of it, a classmethod

    @classmethod
    def example_arguments(cls, context) -> dict: ...

returning arguments with which it builds in `context` (for the model's families, the
`ModelConfig` it is part of); ALiBi's is ``{"symmetric": True}`` in a bidirectional model.
`Registry.example` turns it into a spec. A variant that builds only beside some value of
another field (DeepNorm is post-LN) declares those values too, a classmethod

    @classmethod
    def example_fields(cls, context) -> dict: ...   # {"placement": "post"}

which `Registry.example_fields` reads; an example model takes them where it leaves the field
to its default. The test suite builds every registered variant from these, so a new variant
is covered by every family-wide test by writing its class alone.
"""

from __future__ import annotations

import fnmatch
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import ConfigError, unknown_choice

T = TypeVar("T")
ENTRY_POINT_GROUP = "tzoo.components"


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    cls: type[T]

    @property
    def summary(self) -> str:
        """The first line of the variant's docstring."""
        paragraph = (inspect.getdoc(self.cls) or "").strip().split("\n\n")[0]
        text = " ".join(paragraph.split())
        return text if len(text) <= 110 else text[:107].rstrip() + "..."


class Registry(Generic[T]):
    """Named variants of one component family."""

    def __init__(self, family: str, description: str = ""):
        self.family = family
        self.description = description
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self, name: str, *, aliases: tuple[str, ...] = ()
    ) -> Callable[[type[T]], type[T]]:
        """Class decorator: register a variant under `name` (and deprecated `aliases`)."""

        def decorate(cls: type[T]) -> type[T]:
            for taken in (name, *aliases):
                if taken in self._entries or taken in self._aliases:
                    raise ValueError(f"{self.family}: the name '{taken}' is already registered")
            self._entries[name] = Entry(name, cls)
            for alias in aliases:
                self._aliases[alias] = name
            cls.registered_name = name  # type: ignore[attr-defined]
            return cls

        return decorate

    def unregister(self, name: str) -> type[T]:
        """Remove variant `name` and its aliases, and return its class: for a variant that is
        registered for a moment only (a test's, a notebook's)."""
        if name not in self._entries:
            raise ValueError(f"{self.family}: no variant is registered as '{name}'")
        self._aliases = {alias: new for alias, new in self._aliases.items() if new != name}
        return self._entries.pop(name).cls

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[name] for name in self.names())

    def resolve(self, name: str, *, key: str | None = None) -> str:
        """The current name for `name`, following (and warning about) deprecated aliases."""
        load_plugins()
        if name in self._entries:
            return name
        if name in self._aliases:
            new = self._aliases[name]
            warnings.warn(
                f"{self.family} '{name}' was renamed to '{new}'; the old name still works "
                "but will be removed in a later release",
                DeprecationWarning,
                stacklevel=3,
            )
            return new
        raise ConfigError(unknown_choice(f"{self.family} variant", name, self._entries), key=key)

    def get(self, name: str, *, key: str | None = None) -> type[T]:
        return self._entries[self.resolve(name, key=key)].cls

    def example(self, name: str, context: Any = None) -> str | dict[str, Any]:
        """A spec of variant `name` that builds in `context`: the name alone, or a mapping with
        the arguments its class's `example_arguments(context)` declares (see the module
        docstring)."""
        name = self.resolve(name)
        declared = getattr(self._entries[name].cls, "example_arguments", None)
        arguments = declared(context) if callable(declared) else {}
        return {"name": name, **arguments} if arguments else name

    def example_fields(self, name: str, context: Any = None) -> dict[str, Any]:
        """The other fields of `context` with which variant `name` builds, as its class's
        `example_fields(context)` declares them (see the module docstring); usually none."""
        declared = getattr(self._entries[self.resolve(name)].cls, "example_fields", None)
        return dict(declared(context)) if callable(declared) else {}

    def examples(self, context: Any = None) -> list[str | dict[str, Any]]:
        """`example(name, context)` for every registered name, in `names()` order."""
        return [self.example(name, context) for name in self.names()]

    def check_arguments(self, name: str, arguments: Mapping[str, Any], *,
                        supplied: Iterable[str] = (), key: str | None = None) -> None:
        """Refuse `arguments` that variant `name` does not take: a `ConfigError` naming the first
        and listing those it does take, less the ones the caller `supplied` itself."""
        accepted = accepted_arguments(self.get(name, key=key))
        unknown = [a for a in arguments if accepted is not None and a not in accepted]
        if unknown:
            allowed = sorted(set(accepted or ()) - set(supplied))
            raise ConfigError(
                f"{self.family} '{name}' has no argument '{unknown[0]}'; "
                f"its arguments: {', '.join(allowed) or '(none)'}",
                key=key,
            )

    def build(self, spec: str | Mapping[str, Any], *, key: str | None = None, **context: Any) -> T:
        """Instantiate a variant from a name or a mapping ``{name: ..., **arguments}``.

        `context` carries what the model knows (d_model, heads, ...); the spec's own arguments
        win over it. Arguments the variant does not accept are an error, named.
        """
        name, arguments = split_spec(spec, key=key)
        name = self.resolve(name, key=key)
        self.check_arguments(name, arguments, supplied=context, key=key)
        cls = self._entries[name].cls
        accepted = accepted_arguments(cls)
        usable = {k: v for k, v in context.items() if accepted is None or k in accepted}
        try:
            return cls(**{**usable, **arguments})
        except ConfigError as error:
            raise error.located(key=key) from None
        except TypeError as error:
            raise ConfigError(f"{self.family} '{name}': {error}", key=key) from None

    def describe(self) -> list[tuple[str, str]]:
        return [(entry.name, entry.summary) for entry in self]


def split_spec(spec: str | Mapping[str, Any], *, key: str | None = None) -> tuple[str, dict]:
    """('rotary', {}) from 'rotary'; ('gqa', {'kv_heads': 2}) from {name: gqa, kv_heads: 2}."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        return spec["name"], {k: v for k, v in spec.items() if k != "name"}
    raise ConfigError(
        f"expected a variant name or a mapping with a 'name' field, got {spec!r}", key=key
    )


def spec_name(spec: str | Mapping[str, Any]) -> str:
    return split_spec(spec)[0]


def accepted_arguments(cls: type) -> set[str] | None:
    """The keyword arguments a variant class `cls` accepts (its constructor's), or None when it
    takes ``**kwargs`` (then any argument is accepted)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.name != "self"}


REGISTRIES: dict[str, Registry] = {}


def new_registry(family: str, description: str) -> Registry:
    registry: Registry = Registry(family, description)
    REGISTRIES[family] = registry
    return registry


_plugins_loaded = False


def load_plugins(modules: tuple[str, ...] = ()) -> None:
    """Import third-party variants: the entry-point group once, and any explicit `modules`."""
    global _plugins_loaded
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"cannot import plugin module '{module}': {error}") from None
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def list_variants(pattern: str = "*") -> list[tuple[str, str, str]]:
    """(family, name, summary) for every variant whose 'family.name' matches `pattern`.

    Shell-style wildcards as in timm's `list_models`: 'positions.*', '*glu', 'norms.rms*'. A
    pattern without a dot also matches bare variant and family names.
    """
    load_plugins()
    rows = []
    for family, registry in REGISTRIES.items():
        for name, summary in registry.describe():
            full = f"{family}.{name}"
            if fnmatch.fnmatchcase(full, pattern) or (
                "." not in pattern
                and (fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(family, pattern))
            ):
                rows.append((family, name, summary))
    return rows
