"""The detection's transforms, in three rooms, with imports running one way.

* `transforms.read`: how data gets in: export files and Pub/Sub messages -> typed rows of the
  three tables, and dead letters (sources, the format readers, typing, the prefilter).
* `transforms.detect`: what the rule decides: the KQL operators, the semantics, the query windows,
  each stage of the query, the per-window evaluation of streaming, and the alerts.
* `transforms.write`: where results go: file, Sentinel, BigQuery and Pub/Sub sinks, the window
  summary and the run report.

``pipelines`` -> ``write`` -> ``detect`` -> ``read``: a room imports only the rooms to its right
(``detect`` uses the row types and helpers of ``read``; ``write`` formats what ``detect`` makes),
nothing here imports ``pipelines`` (which wires the rooms and owns the options), and the pure
helpers at the bottom (``read.schema``, ``read.dynamic``, ``read.ingest``, the format readers,
``detect.kql``, ``detect.semantics``) import no Beam. tests/test_layout.py checks all of it.
"""
