"""The compiled block scanner under AddressSanitizer and UndefinedBehaviorSanitizer.

It parses attacker-influenced bytes, so its tests (generated, mutated and hostile lines, every
vector path) also run against a build instrumented to stop at the first out-of-bounds read or
write, use of freed memory, signed overflow or misaligned access: a copy of the project with the
extension built with ``-fsanitize=address,undefined``, the tests run in a child Python with the
sanitizer runtimes preloaded. (A read 64 bytes past a block, planted by hand, made them abort.)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _runtime(name):
    """The path of a gcc sanitizer runtime, or None."""
    if shutil.which('gcc') is None:
        return None
    path = subprocess.run(['gcc', '-print-file-name=%s' % name], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != 'linux' or not (_runtime('libasan.so') and _runtime('libubsan.so')),
                    reason='needs gcc with its AddressSanitizer and UndefinedBehaviorSanitizer runtimes (Linux)')
def test_the_scanner_tests_pass_under_address_and_undefined_behavior_sanitizers(tmp_path):
    copy = tmp_path / 'project'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.so', '.hypothesis')
    for name in ('pipelines', 'transforms', 'schemas', 'tests'):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in ('setup.py', 'README.md', 'MANIFEST.in', 'pytest.ini'):
        shutil.copy2(ROOT / name, copy / name)
    flags = '-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g'
    env = {key: value for key, value in os.environ.items() if key not in ('PYTHONPATH', 'PYTHONHOME')}
    subprocess.run([sys.executable, 'setup.py', '-q', 'build_ext', '--inplace'], cwd=copy, check=True,
                   capture_output=True, timeout=300,
                   env=dict(env, CFLAGS=flags, LDFLAGS='-fsanitize=address,undefined'))
    built = list((copy / 'transforms' / 'read').glob('_blockscan*.so'))
    assert built and b'__asan' in built[0].read_bytes()
    run = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-x',
         'tests/test_blockscan.py', 'tests/test_bulk.py', 'tests/test_ingest.py'],
        cwd=copy, capture_output=True, text=True, timeout=1200,
        # PYTHONMALLOC=malloc: every object its own allocation, so a read past a small bytes object
        # reaches a redzone instead of its neighbour in a pymalloc arena.
        env=dict(env, PYTHONPATH=str(copy), PYTHONMALLOC='malloc', LD_PRELOAD='%s %s' % (_runtime('libasan.so'), _runtime('libubsan.so')),
                 ASAN_OPTIONS='detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS='halt_on_error=1:print_stacktrace=1'))
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert ' passed' in run.stdout and 'skipped' not in run.stdout.splitlines()[-1], run.stdout[-500:]
