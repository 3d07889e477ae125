"""What a local run prints: a progress line while the inputs are read (on a terminal only), then
the run summary, the windows (folded when there are many), the alerts (capped) and the output files.
"""

import sys
import threading
import time

from transforms.read import progress
from transforms.read.schema import TABLES
from transforms.read.sources import DEAD_LETTERS_BY_FILE, parse_file_counter_name
from transforms.write.run_report import visible

PROGRESS_INTERVAL_SECONDS = 1.0
MAX_ALERT_LINES = 20
MAX_WINDOW_LINES = 12
MAX_DEAD_LETTER_LINES = 10


def human_bytes(count):
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if count < 1000 or unit == 'TB':
            return ('%d %s' % (count, unit)) if unit == 'B' else '%.1f %s' % (count, unit)
        count /= 1000.0
    return '%d B' % count


def _elapsed(seconds):
    seconds = int(seconds)
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class Progress:
    """A progress line of the read, rewritten in place at most once per `interval` seconds.

    `files`: ``(table, path, bytes)`` of every input file. Writes only when `stream` is a terminal;
    `clock` and `snapshot` (``({file: bytes read}, records read)``) are injectable for tests.
    `reads_here`: whether the runner reads in this process (else only the elapsed time is shown).
    """

    def __init__(self, files, stream=None, interval=PROGRESS_INTERVAL_SECONDS, clock=time.monotonic,
                 snapshot=progress.snapshot, reads_here=True):
        self._sizes = {path: size for _, path, size in files}
        self._reads_here = reads_here
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._snapshot = snapshot
        self._started = clock()
        self._last = None
        self._width = 0
        self._stop = threading.Event()
        self._thread = None
        self.enabled = bool(getattr(self._stream, 'isatty', lambda: False)())

    def line(self):
        if not self._reads_here:  # the runner reads in other processes: only the time is known here
            return 'running: %d files, %s, %s elapsed' % (len(self._sizes), human_bytes(sum(self._sizes.values())),
                                                         _elapsed(self._clock() - self._started))
        done, records = self._snapshot()
        files_done = sum(1 for path, size in self._sizes.items() if done.get(path, 0) >= max(size, 1))
        bytes_done = sum(min(done.get(path, 0), size) for path, size in self._sizes.items())
        return 'reading: %d of %d files, %s of %s, %s records, %s elapsed' % (
            files_done, len(self._sizes), human_bytes(bytes_done), human_bytes(sum(self._sizes.values())),
            '{:,}'.format(records), _elapsed(self._clock() - self._started))

    def tick(self):
        """Writes the line if the stream is a terminal and `interval` has passed since the last one."""
        now = self._clock()
        if not self.enabled or (self._last is not None and now - self._last < self._interval):
            return False
        self._last = now
        text = self.line()
        self._stream.write('\r' + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)
        return True

    def _loop(self):
        while not self._stop.wait(0.25):
            self.tick()

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, name='progress', daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.enabled and self._width:
            self._stream.write('\r' + ' ' * self._width + '\r')
            self._stream.flush()


def _short_time(text):
    """``2024-03-01T08:36:30.028795Z`` -> ``2024-03-01 08:36:30``."""
    text = str(text or '')
    return text[:19].replace('T', ' ') if len(text) >= 19 else text


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


def window_lines(windows, window_files=(), outside_range=0):
    """Lines of the evaluated windows: all when few, else the first, the last and those with alerts
    (at most MAX_WINDOW_LINES of them, then where the others are). `outside_range`: rows read outside
    --start/--end, which explain a run without a window."""
    with_alerts = [index for index, w in enumerate(windows) if w.get('alerts')]
    lines = ['Windows: %d evaluated, %d with alerts' % (len(windows), len(with_alerts))]
    if not windows:
        lines.append('    no window: %s' % ('every row read is outside --start/--end (%s)' % _plural(outside_range, 'row')
                                            if outside_range else 'no row was parsed'))
    if len(windows) <= MAX_WINDOW_LINES:
        shown = list(range(len(windows)))
    else:
        shown = sorted({0, len(windows) - 1} | set(with_alerts[:MAX_WINDOW_LINES]))
    previous = -1
    for index in shown:
        if index - previous > 1:
            between = windows[previous + 1:index]
            alerting = sum(1 for w in between if w.get('alerts'))
            lines.append('    ... %s%s' % (_plural(len(between), 'window'),
                                           ' (%d with alerts)' % alerting if alerting else ' without alerts'))
        previous = index
        record = windows[index]
        lines.append('    [%s, %s)  rows %s  alerts %d' % (
            record['QueryPeriodStart'], record['QueryPeriodEnd'],
            ' / '.join(str(record.get(table, 0)) for table in TABLES), record.get('alerts', 0)))
    if len(with_alerts) > MAX_WINDOW_LINES:
        lines.append('    every window in %s' % (', '.join(window_files) or 'the window files'))
    return lines


def alert_lines(alerts, alert_files):
    """One line per alert row (window, VM, caller, script, cmdlets), at most MAX_ALERT_LINES, then
    where the others are."""
    rows = [(alert, result) for alert in alerts
            for result in (alert.get('QueryResults') or [alert.get('QueryResult') or {}])]
    rows.sort(key=lambda pair: (pair[0].get('QueryPeriodStart', ''), str(pair[1].get('StartTime', ''))))
    lines = ['Alerts: %d' % len(rows)]
    for alert, result in rows[:MAX_ALERT_LINES]:
        lines.append('ALERT [%s, %s)  %s  by %s  %s: %s' % (
            _short_time(alert.get('QueryPeriodStart'))[:16], _short_time(alert.get('QueryPeriodEnd'))[:16],
            visible(result.get('VirtualMachineName')), visible(result.get('Caller')),
            visible(result.get('PowershellFileName')),
            ', '.join(visible(c) for c in result.get('PowershellScriptCommands') or ())))
    if len(rows) > MAX_ALERT_LINES:
        lines.append('  %d more in %s' % (len(rows) - MAX_ALERT_LINES, ', '.join(alert_files) or 'the alert files'))
    return lines


def dead_letter_lines(counters, dead_letter_files=()):
    """Dead letters per file and reason, most first (at most MAX_DEAD_LETTER_LINES), if any."""
    groups = sorted(((int(count),) + parse_file_counter_name(name)
                     for name, count in counters.get(DEAD_LETTERS_BY_FILE, {}).items()),
                    key=lambda group: (-group[0], group[1:]))
    if not groups:
        return []
    lines = ['Dead letters: %s' % '{:,}'.format(sum(group[0] for group in groups))]
    for count, table, path, reason in groups[:MAX_DEAD_LETTER_LINES]:
        lines.append('    %s  %s %s: %s' % ('{:,}'.format(count).rjust(9), table, visible(path), visible(reason)))
    if len(groups) > MAX_DEAD_LETTER_LINES:
        lines.append('    ... %d more files or reasons' % (len(groups) - MAX_DEAD_LETTER_LINES))
    lines.append('    records in %s' % (', '.join(dead_letter_files) or 'the dead-letter files'))
    return lines


def output_lines(output_dir, files):
    """The output folder and each file of the run in it."""
    return ['Outputs in %s:' % output_dir] + ['    %s' % path for path in files]
