"""What a checkpoint holds of one resource, item by item: the files of a
tree, the tables of a database, or -- for a plugin that lists nothing -- its
saved info as one item.

A protection plugin lists its contents with an optional classmethod
``get_contents(metadata_store, resource)`` returning :class:`Item` objects
(read-only, from the resource's bank section, as ``get_saved_info``). A
plugin without one is still listed: :func:`contents` gives its saved info
as a single item of type ``info``. ``ls``, ``find`` and ``diff`` read
nothing else, so a new plugin is one method away from all three.

An item's ``content`` is an opaque identity of its data in the bank (the
names of its chunks, hashed): two items with the same one hold the same
bytes, which is what ``diff`` compares (with size, mode and mtime).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import attrs

from protectflow.dag.model import Resource
from protectflow.errors import BankError, PluginError
from protectflow.plugins.queries import plugin_of, resource_of, saved_info
from protectflow.plugins.registry import Registry, get_registry

if TYPE_CHECKING:
    from protectflow.bank import Checkpoint

__all__ = ["INFO", "Item", "ancestors", "contents", "glob_match", "hit", "select_items",
           "selected_paths"]

#: The type of the one item of a plugin that lists no contents.
INFO = "info"


@attrs.frozen
class Item:
    """One thing inside a resource of a checkpoint.

    ``path`` is POSIX, relative to the resource (``"."`` the resource
    itself); ``type`` is ``dir``, ``file``, ``symlink``, ``fifo``, ``chr``,
    ``blk`` (a tree), ``table`` (a database; ``rows`` its row count),
    ``database`` or ``info`` (a plugin's saved info, in ``info``).
    """

    path: str
    type: str
    size: int | None = None
    mode: int | None = None
    mtime_ns: int | None = None
    content: str | None = attrs.field(default=None, repr=False)
    rows: int | None = None
    target: str | None = None
    info: Any = attrs.field(default=None, eq=False, hash=False)

    @property
    def mtime(self) -> float | None:
        """The modification time in seconds since the epoch."""
        return None if self.mtime_ns is None else self.mtime_ns / 1e9

    def changed_from(self, other: Item) -> bool:
        """Whether this item differs from ``other`` (the same path elsewhere)
        in type, contents, size, mode, mtime, rows or link target."""
        return (self.type, self.content, self.size, self.mode, self.mtime_ns, self.rows,
                self.target, _text(self.info)) != (
                    other.type, other.content, other.size, other.mode, other.mtime_ns,
                    other.rows, other.target, _text(other.info))

    def to_json(self) -> dict[str, Any]:
        """The item as ``ls --json`` gives it: every field that is set."""
        data: dict[str, Any] = {"path": self.path, "type": self.type}
        for name in ("size", "mode", "mtime_ns", "rows", "target", "info"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


def glob_match(path: str, patterns: Iterable[str]) -> bool:
    """Whether ``path`` matches one of the globs: one without ``/`` matches
    the name (the last part of the path), one with ``/`` the whole path."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatchcase(path, p.strip("/")) if "/" in p else fnmatchcase(name, p)
               for p in patterns)


def ancestors(path: str) -> list[str]:
    """The folders above ``path``, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def hit(path: str, patterns: Sequence[str]) -> bool:
    """Whether ``path`` or a folder above it matches one of ``patterns``."""
    return any(glob_match(p, patterns) for p in (*ancestors(path), path))


def selected_paths(paths: Iterable[str], include: Sequence[str],
                   exclude: Sequence[str]) -> set[str]:
    """The paths (``"."`` the root, always kept) a selection keeps, as
    restic's ``restore --include/--exclude``: ``exclude`` drops a path and
    everything under a folder it matches; ``include``, when given, keeps the
    paths that match, everything under a folder that matches, and the
    folders that lead to them."""
    kept = {"."}
    for path in paths:
        if path == "." or (exclude and hit(path, exclude)):
            continue
        if not include or hit(path, include):
            kept.add(path)
            kept.update(ancestors(path))
    return kept


def select_items(items: Sequence[Item], include: Sequence[str],
                 exclude: Sequence[str]) -> list[Item]:
    """The ``items`` :func:`selected_paths` keeps, in order."""
    if not include and not exclude:
        return list(items)
    kept = selected_paths((i.path for i in items), include, exclude)
    return [i for i in items if i.path in kept]


def _text(info: Any) -> str | None:
    return None if info is None else json.dumps(info, sort_keys=True, default=str)


def contents(checkpoint: Checkpoint, resource: str | Resource, *,
             registry: Registry | None = None) -> tuple[Resource, list[Item]]:
    """The items of ``resource`` (a Resource or its key) in ``checkpoint``,
    sorted by path, from its plugin's ``get_contents`` (see the module).

    Raises
    ------
    BankError
        When the checkpoint has no such resource, or its plugin cannot read
        what the checkpoint keeps of it.
    PluginError
        When the plugin is not installed, or lists something that is not an
        :class:`Item`.
    """
    registry = registry or get_registry()
    found = resource_of(checkpoint, resource)
    name = plugin_of(checkpoint, found, registry)
    getter = getattr(registry.plugin(name), "get_contents", None)
    if getter is None:
        saved = saved_info(checkpoint, found, registry=registry)
        return found, [Item(".", INFO, info=saved.info)]
    section = checkpoint.get_resource_bank_section(found, read_only=True)
    try:
        items = list(getter(section, found))
    except BankError as err:
        raise BankError(f"{found.key} in checkpoint {checkpoint.id}: plugin {name!r} cannot "
                        f"read what it keeps: {err}") from err
    _check(items, name)
    return found, sorted(items, key=lambda i: i.path)


def _check(items: Iterable[object], plugin: str) -> None:
    for item in items:
        if not isinstance(item, Item):
            raise PluginError(f"plugin {plugin!r} listed {item!r:.100} as contents, not an Item",
                              plugin)
