"""Read Windows event logs of many formats into normalised columnar batches.

Public contract (relied upon by the engine)::

    from sigmahunt.ingest import read_logs, EventBatch, Unreadable, LogFormat, detect_format

* ``read_logs(paths, format_in=None, batch_size=50_000)`` yields
  :class:`EventBatch` (a Polars frame, every column String) and
  :class:`Unreadable` (one per record/chunk/file that could not be read).
* Every batch has ``_source``, ``_position``, ``_timestamp`` first, then the
  normalised System columns (``Channel``, ``EventID``, ``Computer``,
  ``EventRecordID``, ``Provider_Name``, ...), then event data fields by name.
* Nothing is lost: events in batches + Unreadable records == records in.

See ``formats`` (detection), ``sources`` (files, folders, gzip, zip),
``evtx_reader``, ``json_reader`` and ``normalise`` for the details.
"""

from .formats import LogFormat, detect_format
from .model import METADATA_COLUMNS, EventBatch, Unreadable
from .reader import read_logs

__all__ = ["EventBatch", "LogFormat", "METADATA_COLUMNS", "Unreadable", "detect_format", "read_logs"]
