"""``read_logs``: paths in, normalised batches and Unreadable reports out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl

from .evtx_reader import read_evtx
from .formats import (
    MAYBE_LOG_SUFFIXES,
    SNIFF_BYTES,
    LogFormat,
    is_blank,
    sniff_content,
    suffix_of,
    detect_format,
)
from .frames import Batcher
from .json_reader import read_json
from .model import EventBatch, Unreadable
from .sources import Leaf, iter_leaves, prefetch

DEFAULT_BATCH_SIZE = 50_000


def read_logs(
    paths: Sequence[str | Path] | str | Path,
    format_in: str | LogFormat | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[EventBatch | Unreadable]:
    """Read Windows event logs of any supported format into String batches.

    ``paths`` are files or folders (walked recursively in sorted order);
    gzip and zip are unwrapped in memory.  ``format_in`` forces the format of
    every leaf (see :class:`LogFormat` for names and aliases); otherwise it
    is detected per file from content, then extension.  Arguments are
    validated eagerly; reading happens lazily as the iterator is consumed.
    """
    forced = LogFormat.parse(format_in) if format_in is not None else None
    batcher = Batcher(batch_size)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return _read(list(paths), forced, batcher)


def _read(paths: list[str | Path], forced: LogFormat | None, batcher: Batcher) -> Iterator[EventBatch | Unreadable]:
    for item in prefetch(iter_leaves(paths)):
        if isinstance(item, Unreadable):
            yield item
            continue
        for output in read_leaf(item, forced):
            if isinstance(output, Unreadable):
                yield output
            else:
                yield from batcher.add(output)
    yield from batcher.flush()


def read_leaf(leaf: Leaf, forced: LogFormat | None) -> Iterator[pl.DataFrame | Unreadable]:
    """Dispatch one in-memory leaf to its reader."""
    head = leaf.data[:SNIFF_BYTES]
    if is_blank(head) and is_blank(leaf.data):
        return
    detected = sniff_content(head)
    fmt = _choose_format(leaf, detected, forced)
    if isinstance(fmt, Unreadable) or fmt is None:
        if fmt is not None:
            yield fmt
        return
    try:
        if fmt is LogFormat.EVTX:
            yield from read_evtx(leaf.source, leaf.data)
        else:
            yield from read_json(leaf.source, leaf.data, fmt)
    except Exception as exc:  # noqa: BLE001 - a reader bug must not end the hunt
        yield Unreadable(leaf.source, "file", f"internal error while reading: {exc!r}")


def _choose_format(leaf: Leaf, detected: LogFormat | None, forced: LogFormat | None) -> LogFormat | Unreadable | None:
    """The leaf's format; an Unreadable to report; or None to skip silently."""
    if forced is not None:
        if forced.is_json and detected is LogFormat.EVTX:
            return Unreadable(leaf.source, "file", f"content is EVTX, not JSON (format_in={forced.value!r})")
        return forced
    fmt = detected or detect_format(leaf.source, head=b"")
    if fmt is not None and not fmt.is_container:
        return fmt
    if not leaf.explicit and suffix_of(leaf.source.rsplit("!", 1)[-1]) in MAYBE_LOG_SUFFIXES:
        return None
    return Unreadable(leaf.source, "file", "unrecognised format: not EVTX, JSON, gzip or zip content")
