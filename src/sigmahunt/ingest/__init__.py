"""Read Windows event logs of many formats into normalised columnar batches.

Public contract (relied upon by the engine)::

    from sigmahunt.ingest import read_logs, EventBatch, Unreadable, LogFormat, detect_format

    for item in read_logs(["logs/", "more.evtx"], format_in=None, batch_size=50_000):
        if isinstance(item, EventBatch):
            item.frame            # polars.DataFrame, every column pl.String
        else:
            item.source, item.position, item.reason   # an Unreadable

Inputs: EVTX; evtx_dump JSON (concatenated/pretty objects, JSON lines or a
JSON array); flat JSON lines (OTRF Security-Datasets, HELK, nxlog); and
Winlogbeat / Elastic Agent ECS documents (nested or dotted keys, optionally
wrapped in an Elasticsearch ``_source``); EVTX rendered as XML (evtx_dump
``-o xml``, ``wevtutil qe /f:xml``, parsed into the evtx_dump shape so the
columns equal the EVTX/JSON readers'); and CSV exports with a header row
(``Export-Csv``; ``Id``/``LogName``/``MachineName``... added as the
normalised columns).  Any of them may be gzipped or in zip or 7z archives
(nested too; ``archive_password`` opens ZipCrypto zip and 7z members);
members are read in memory, never extracted.

Columns of every batch:

* ``_source`` (path, ``a.zip!member.json`` for members), ``_position``
  (``line N`` for JSON lines and CSV rows, ``record N`` for concatenated
  objects/arrays and XML events,
  ``record <event_record_id>`` for EVTX; 1-based), ``_timestamp`` (UTC,
  ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; naive source times are taken as UTC);
* the System columns present, in this order: ``Channel``, ``EventID``,
  ``Computer``, ``EventRecordID``, ``Provider_Name``, ``Provider_Guid``,
  ``Provider_EventSourceName``, ``EventID_Qualifiers``, ``Version``,
  ``Level``, ``Task``, ``Opcode``, ``Keywords``, ``TimeCreated`` (ISO, as
  ``_timestamp``), ``Correlation_ActivityID``, ``Correlation_RelatedActivityID``,
  ``Execution_ProcessID``, ``Execution_ThreadID``, ``Security_UserID``;
* then every other field, sorted by name: EventData by its ``Name``,
  unnamed ``<Data>`` as ``Data`` / ``Data_1..n``, UserData leaves by their
  own name, flat JSON keys as they are (aliases such as Hostname->Computer
  are *added*), ECS fields dotted (``process.executable``) with
  ``winlog.event_data.X`` as ``X``.  A name clash never drops a value: the
  later field keeps its dotted path (``EventData.Level``,
  ``UserData.X.Param1``, ``winlog.event_data.Channel``); data keys named like
  a metadata column get ``#original`` appended.

Values: ints in decimal, floats via ``repr``, booleans ``true``/``false``,
JSON null as null, lists/objects as compact JSON.  Well-known channel names
get their canonical case (``security`` -> ``Security``).

Nothing is lost: for every input, events in batches + Unreadable records ==
records in the input.  See ``formats`` (detection and what is skipped),
``sources`` (files, folders, gzip, zip, bomb guard), ``evtx_reader``,
``json_reader`` (fast and slow paths, non-UTF-8 policy) and ``normalise``.
"""

from .formats import LogFormat, detect_format
from .json_reader import complete_records, complete_rows
from .model import METADATA_COLUMNS, RAW_COL, RAW_HITS_COL, EventBatch, Projection, RawLineScanner, Unreadable
from .reader import read_logs
from .sources import LogFile, iter_files

__all__ = ["METADATA_COLUMNS", "RAW_COL", "RAW_HITS_COL", "EventBatch", "LogFile", "LogFormat", "Projection",
           "RawLineScanner", "Unreadable", "complete_records", "complete_rows", "detect_format", "iter_files",
           "read_logs"]
