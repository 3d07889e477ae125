"""Progress of the read step in this process: how many bytes of each input file, and how many records,
have been read so far.

The in-process runner reads in the launcher's own process, so the launcher's console can show how
far the read is (`pipelines.console`); the read step records each byte range of a file once it is
read. Runners that read in other processes record nothing here, and the console shows the time only.
"""

import threading

_LOCK = threading.Lock()
_BYTES_DONE = {}
_RECORDS = [0]


def reset():
    with _LOCK:
        _BYTES_DONE.clear()
        _RECORDS[0] = 0


def range_done(file_name, start, stop, records):
    """A byte range [start, stop) of `file_name` has been read (`stop` may exceed the file: clipped
    by the reader of the progress), holding `records` records."""
    with _LOCK:
        _BYTES_DONE[file_name] = _BYTES_DONE.get(file_name, 0) + max(0, stop - start)
        _RECORDS[0] += records


def snapshot():
    """({file: bytes read}, records read) so far."""
    with _LOCK:
        return dict(_BYTES_DONE), _RECORDS[0]
