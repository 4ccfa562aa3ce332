"""Listings that stay small at a million files: folder index, file name and key in numpy byte-string arrays.

A Python ``Path`` per file costs ~0.1 ms to build and hash and a few hundred bytes; a data set of
1M pairs listed that way takes minutes and gigabytes. Here names are listed with ``os.scandir``
in chunks into numpy string arrays, matched by sorting, and a ``Path`` is made only when an item
is read. numpy arrays also keep forked loader workers from copying the listing page by page
(Python objects' reference counts would).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import numpy as np

CHUNK = 65536  # names per numpy conversion: bounds the Python strings alive at once


@dataclass
class FileTable:
    """One side of a pairing (images, masks): ``dirs[folder[i]] / names[i]`` has key ``keys[i]``."""

    dirs: List[Path]
    folder: np.ndarray  # int32
    names: np.ndarray  # bytes_ (os.fsencode of the name: a quarter of a str_ array's size)
    keys: np.ndarray  # bytes_

    def __len__(self) -> int:
        return len(self.keys)

    def path(self, i: int) -> Path:
        return self.dirs[int(self.folder[i])] / os.fsdecode(self.names[i])

    def take(self, index: np.ndarray) -> "FileTable":
        return FileTable(self.dirs, self.folder[index], self.names[index], self.keys[index])


def texts(array: np.ndarray) -> List[str]:
    """A bytes_ array's items as str."""
    return [os.fsdecode(b) for b in array.tolist()]


def encoded(items: Sequence[str]) -> np.ndarray:
    """str items as a bytes_ array, the form names and keys are stored in."""
    return np.array([os.fsencode(s) for s in items], np.bytes_)


def _part(folder: int, names: List[bytes], key_of, prefix: str = "") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(folder index, name, key) arrays of the ``names`` that ``key_of`` gives a key."""
    keys = [key_of(name) for name in map(os.fsdecode, names)]
    kept = [i for i, key in enumerate(keys) if key is not None]
    return (
        np.full(len(kept), folder, np.int32),
        np.array([names[i] for i in kept], np.bytes_),
        encoded([prefix + keys[i] for i in kept]),
    )


def table_from(dirs: List[Path], parts: List[Tuple[np.ndarray, np.ndarray, np.ndarray]]) -> FileTable:
    """A table of (folder index, name, key) parts, sorted by key then name."""
    if not parts:
        empty = np.array([], np.bytes_)
        return FileTable(dirs, np.array([], np.int32), empty, empty)
    folder, names, keys = (np.concatenate([p[i] for p in parts]) for i in range(3))
    parts.clear()  # the parts' copies go before the sorted ones are made
    order = np.lexsort((names, keys))
    return FileTable(dirs, folder[order], names[order], keys[order])


def first_of_each_key(table: FileTable) -> Tuple[FileTable, FileTable]:
    """The table with one row per key (the first), and the rows dropped."""
    repeat = np.zeros(len(table), bool)
    if len(table) > 1:
        repeat[1:] = table.keys[1:] == table.keys[:-1]
    return table.take(~repeat), table.take(repeat)


def merge(tables: Sequence[FileTable]) -> FileTable:
    """One table from several folders, the first table winning a key that several hold."""
    dirs: List[Path] = []
    folders, names, keys, rank = [], [], [], []
    for i, t in enumerate(tables):
        folders.append(t.folder + len(dirs))
        dirs.extend(t.dirs)
        names.append(t.names)
        keys.append(t.keys)
        rank.append(np.full(len(t), i, np.int32))
    folder, name, key, order_rank = (np.concatenate(a) for a in (folders, names, keys, rank))
    order = np.lexsort((order_rank, key))
    merged = FileTable(dirs, folder[order], name[order], key[order])
    return first_of_each_key(merged)[0]


def lookup(table: FileTable, keys: np.ndarray) -> np.ndarray:
    """The row of each key in ``table`` (sorted by key), -1 where it has none."""
    if len(table) == 0:
        return np.full(len(keys), -1)
    at = np.searchsorted(table.keys, keys).clip(max=len(table) - 1)
    return np.where(table.keys[at] == keys, at, -1)


class PairList(Sequence):
    """(image path, mask path) pairs held as two ``FileTable``s row-aligned; ``keys[i]`` is pair i's key."""

    def __init__(self, images: FileTable, masks: FileTable):
        self.images, self.masks = images, masks

    @property
    def keys(self) -> np.ndarray:
        return self.images.keys

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
            return PairList(self.images.take(rows), self.masks.take(rows))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} of {len(self)}")
        return self.images.path(index), self.masks.path(index)

    def __mul__(self, times: int) -> "PairList":
        rows = np.tile(np.arange(len(self)), times)
        return PairList(self.images.take(rows), self.masks.take(rows))

    def __iter__(self) -> Iterator[Tuple[Path, Path]]:
        return (self[i] for i in range(len(self)))


class TableRows(Sequence):
    """``table``'s path of each row in ``rows``, None where the row is -1."""

    def __init__(self, table: FileTable, rows: np.ndarray):
        self.table, self.rows = table, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return TableRows(self.table, self.rows[index])
        row = int(self.rows[index])
        return self.table.path(row) if row >= 0 else None


def scan(directory: Path, recursive: bool, key_of) -> FileTable:
    """The files below ``directory`` (sub-folders when ``recursive``) that ``key_of(name)`` gives a key;
    a recursive key keeps its sub-folder: ``city/name``. No file is stat'ed or opened."""
    dirs: List[Path] = []
    parts: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if not recursive:
        dirs.append(directory)
        with os.scandir(os.fsencode(directory)) as entries:  # bytes names: stored as they come
            stream = iter(entries)
            while chunk := list(islice(stream, CHUNK)):
                parts.append(_part(0, [e.name for e in chunk if e.is_file()], key_of))
        return table_from(dirs, parts)
    for folder, _, files in os.walk(directory):
        sub = os.path.relpath(folder, directory).replace(os.sep, "/")
        dirs.append(Path(folder))
        parts.append(_part(len(dirs) - 1, [os.fsencode(f) for f in files], key_of, "" if sub == "." else f"{sub}/"))
    return table_from(dirs, parts)
