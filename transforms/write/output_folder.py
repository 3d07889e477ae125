"""The output folder of a run: one run at a time, and always one complete run in it.

* `OutputLock`: ``<output_dir>/.rare-runcommand.lock`` holds the PID, host and start of the run
  writing to the folder. A second run into the same folder fails at once (`FolderLocked`, one
  line); a lock left by a process that is no longer alive on the same host is taken over. On a
  local file system the lock is created exclusively (``O_EXCL``, and taken over through a rename,
  so two runs cannot both take it); on other file systems (``gs://``) through Beam's FileSystems,
  created and read back (a check, not an exclusive create).
* `staging_dir`: the run writes every output under ``<output_dir>/.rare-runcommand-run-<id>/``.
* `publish`: once the pipeline succeeded, the launcher swaps the staged files in: the earlier
  run's series and report are deleted (``summary.json`` first), the new files renamed in
  (``summary.json`` last). A journal written before the swap lets the next run finish a swap that a
  kill interrupted (`recover`), so a failed or killed run never destroys the previous run's
  outputs, and the folder ends up holding one whole run.
* `clear_leftovers`: the staging folders of runs that failed, and the ``beam-temp-*`` folders
  older versions left at the top of the folder, are deleted by the next run (which holds the lock).

All of it goes through Beam's FileSystems (local paths, ``gs://``, any registered file system),
after the pipeline finished, in the launcher: it works whatever the runner.
"""

import datetime
import errno
import fnmatch
import json
import os
import socket
import uuid

from apache_beam.io.filesystems import FileSystems

from transforms.write.files import previous_run_patterns

LOCK_NAME = '.rare-runcommand.lock'
JOURNAL_NAME = '.rare-runcommand.publish.json'
STAGING_PREFIX = '.rare-runcommand-run-'
OLD_BEAM_TEMP = 'beam-temp-*'


class FolderLocked(RuntimeError):
    """Another run holds the output folder."""


def _is_local(path):
    return '://' not in path or path.startswith('file://')


def _local(path):
    return path[len('file://'):] if path.startswith('file://') else path


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # alive, another user's
    except (OverflowError, ValueError):
        return False
    return True


def _read_json(path):
    try:
        with FileSystems.open(path, compression_type='uncompressed') as handle:
            return json.loads(handle.read(64 << 10).decode('utf-8'))
    except Exception:  # pylint: disable=broad-except  # absent, vanished or unreadable
        return None


def _exists(path):
    try:
        return FileSystems.exists(path)
    except Exception:  # pylint: disable=broad-except
        return False


class OutputLock:
    """The lock of one output folder (see the module docstring). Use as a context manager."""

    def __init__(self, output_dir, run_id=None):
        self.output_dir = output_dir
        self.path = FileSystems.join(output_dir, LOCK_NAME)
        self.holder = {'pid': os.getpid(), 'host': socket.gethostname(),
                       'started': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                       'run': run_id or uuid.uuid4().hex}
        self.taken_over = None
        self._held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def describe(self, holder):
        return 'process %s on host %s (started %s)' % (holder.get('pid'), holder.get('host'), holder.get('started'))

    def is_stale(self, holder):
        """A lock whose holder is no longer alive on this host; a lock of another host never is."""
        if not isinstance(holder, dict) or holder.get('host') != self.holder['host']:
            return False
        pid = holder.get('pid')
        return isinstance(pid, int) and not _process_alive(pid)

    def acquire(self):
        if _is_local(self.output_dir):
            self._acquire_local()
        else:
            self._acquire_remote()
        self._held = True

    def _refuse(self, holder):
        raise FolderLocked('%s is in use by another run: %s; wait for it to end (or, if it is gone, delete %s)'
                           % (self.output_dir, self.describe(holder) if holder else 'unknown holder', self.path))

    # -- local: exclusive create, take-over through a rename ------------------------------------------

    def _acquire_local(self):
        folder, path = _local(self.output_dir), _local(self.path)
        os.makedirs(folder, exist_ok=True)
        content = json.dumps(self.holder).encode('utf-8')
        for _ in range(5):
            if self._create_local(path, content):
                return
            holder = _read_json(path)
            if holder is None:
                if not os.path.exists(path):
                    continue  # released meanwhile
                holder = {}
            if not self.is_stale(holder):
                self._refuse(holder)
            # Take over: move the stale lock aside (only one contender can), check it is the one
            # judged stale, then create ours.
            aside = '%s.stale-%s' % (path, uuid.uuid4().hex)
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue
            moved = _read_json(aside)
            if moved != holder:   # another run took it over in between: put its lock back
                try:
                    os.link(aside, path)
                except OSError:
                    pass
                os.remove(aside)
                self._refuse(moved or {})
            os.remove(aside)
            self.taken_over = holder
        self._refuse(_read_json(path) or {})

    @staticmethod
    def _create_local(path, content):
        # Written to a file of its own, then linked: the lock file appears whole or not at all.
        temporary = '%s.new-%s' % (path, uuid.uuid4().hex)
        with open(temporary, 'wb') as handle:
            handle.write(content)
        try:
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            try:  # no hard links here: an exclusive create instead
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, 'wb') as handle:
                handle.write(content)
            return True
        finally:
            os.remove(temporary)

    # -- other file systems: create and read back ---------------------------------------------------

    def _acquire_remote(self):
        holder = _read_json(self.path) if _exists(self.path) else None
        if holder is not None or _exists(self.path):
            if not self.is_stale(holder):
                self._refuse(holder or {})
            self.taken_over = holder
        with FileSystems.create(self.path, mime_type='application/json') as handle:
            handle.write(json.dumps(self.holder).encode('utf-8'))
        if _read_json(self.path) != self.holder:
            self._refuse(_read_json(self.path) or {})

    def release(self):
        if not self._held:
            return
        self._held = False
        if _read_json(self.path) == self.holder:
            FileSystems.delete([self.path])


def staging_dir(output_dir, run_id):
    """Where a run writes its outputs before they are swapped in."""
    return FileSystems.join(output_dir, STAGING_PREFIX + run_id)


def _match(pattern):
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception:  # pylint: disable=broad-except  # nothing there
        return []


def staged_files(staging):
    """The output files of a staged run (series and report), summary.json last."""
    paths = [path for pattern in previous_run_patterns(staging) for path in _match(pattern)]
    summary = [p for p in paths if p.endswith('summary.json')]
    return sorted(set(paths) - set(summary)) + summary


def publish(output_dir, staging):
    """Swaps a staged run in for the one in `output_dir` (see the module docstring)."""
    names = [os.path.basename(path.rstrip('/')) for path in staged_files(staging)]
    journal = FileSystems.join(output_dir, JOURNAL_NAME)
    with FileSystems.create(journal, mime_type='application/json') as handle:
        handle.write(json.dumps({'staging': staging, 'files': names}).encode('utf-8'))
    _finish(output_dir, staging, names)
    FileSystems.delete([journal])


def _finish(output_dir, staging, names):
    keep = {FileSystems.join(output_dir, name) for name in names}
    # The earlier run's files, summary.json first (a folder without it is not a complete run).
    old = [path for pattern in previous_run_patterns(output_dir) for path in _match(pattern)]
    old = [path for path in old if path not in keep or _exists(FileSystems.join(staging, os.path.basename(path)))]
    if old:
        FileSystems.delete(old)
    for name in names:   # summary.json last
        source = FileSystems.join(staging, name)
        if _exists(source):
            FileSystems.rename([source], [FileSystems.join(output_dir, name)])
    if _exists(staging):
        FileSystems.delete([staging])


def recover(output_dir):
    """Finishes a swap a killed run left half done (its journal); returns whether there was one."""
    journal = FileSystems.join(output_dir, JOURNAL_NAME)
    if not _exists(journal):
        return False
    record = _read_json(journal)
    if record and record.get('staging') and _exists(record['staging']):
        _finish(output_dir, record['staging'], record.get('files') or [])
    FileSystems.delete([journal])
    return True


def _subfolders(output_dir, pattern):
    """The folders right under `output_dir` whose names match `pattern`."""
    if _is_local(output_dir):
        folder = _local(output_dir)
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted(os.path.join(folder, name) for name in fnmatch.filter(names, pattern)
                      if os.path.isdir(os.path.join(folder, name)))
    base = output_dir.rstrip('/') + '/'
    found = set()
    for path in _match(base + pattern + '/**'):
        found.add(base + path[len(base):].split('/', 1)[0] + '/')
    return sorted(found)


def clear_leftovers(output_dir):
    """Deletes the staging folders of failed runs and the ``beam-temp-*`` folders older versions
    left; returns them. Only while holding the folder's lock: no other run is writing there."""
    leftovers = _subfolders(output_dir, STAGING_PREFIX + '*') + _subfolders(output_dir, OLD_BEAM_TEMP)
    if leftovers:
        FileSystems.delete(leftovers)
    return leftovers
