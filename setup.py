"""Packaging of the rare Run Command PowerShell script detection (Apache Beam, Python)."""

import setuptools

setuptools.setup(
    name='rare-runcommand-detection',
    version='0.1.0',
    description='Sentinel rule "Azure VM Run Command operations executing a unique PowerShell script" '
                'as an Apache Beam pipeline, with exact Sentinel parity and a strict mode.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=setuptools.find_packages(include=['pipelines', 'transforms', 'transforms.*', 'schemas']),
    package_data={'pipelines': ['sample_data/*'], 'transforms.detect': ['rule_metadata.yaml'],
                  'schemas': ['*.avsc', '*.json']},
    include_package_data=True,
    install_requires=[
        # Pinned: 2.62.0 is the newest Beam whose Flink job server resolves from Maven Central (docs/deploy.md).
        'apache-beam==2.62.0',
        'fastavro>=1.8',
        # msgspec: the read step's native decoder of JSON lines (transforms/read/bulk.py): with --scan full
        # the records the prefilter proves irrelevant are validated and counted a block at a time in C,
        # not line by line in Python. Wheels for Linux and macOS, x86-64 and arm64; without it the
        # pure-Python reader (the reference) reads every record.
        'msgspec>=0.18',
        'pyyaml>=6',
    ],
    extras_require={
        # duckdb: the benchmark's SQL, which tests/test_benchmark_smoke.py checks against the reference.
        # confluent-kafka: the replay tool's producer (pipelines/replay.py) and the Kafka tests' consumer;
        # librdkafka wheels for Linux and macOS, x86-64 and arm64. The pipeline itself reads and writes
        # Kafka through Beam's Java KafkaIO.
        'kafka': ['confluent-kafka>=2.3'],
        'test': ['pytest>=7', 'hypothesis>=6', 'wheel', 'duckdb>=1.1', 'confluent-kafka>=2.3'],
        'gcp': ['apache-beam[gcp]==2.62.0'],
        'bench': ['duckdb>=1.1'],
    },
    # The read step's one-pass block scanner (prefilter, validation, TimeGenerated counts) in C: about
    # one byte pass instead of eight to ten in CPython (benchmarks/README.md). Optional: where it cannot
    # be compiled, the reader uses its Python and msgspec path, which tests/test_blockscan.py compares
    # it with.
    ext_modules=[setuptools.Extension('transforms.read._blockscan', ['transforms/read/_blockscan.c'],
                                      optional=True, extra_compile_args=['-O3'])],
    entry_points={
        'console_scripts': [
            'rare-runcommand=pipelines.cli:main',
        ],
    },
)
