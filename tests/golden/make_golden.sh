#!/usr/bin/env bash
# Regenerates every file of tests/golden/ (inputs with tools.generate, expected results with the
# reference oracle, a DuckDB translation of the rule's KQL).  Not used by the tests, which only read
# the committed files.  Run from the repository root:
#   ORACLE=/path/to/kql_oracle.py ORACLE_PYTHON=/path/to/venv/bin/python bash tests/golden/make_golden.sh
set -euo pipefail
: "${ORACLE:?set ORACLE to the oracle script kql_oracle.py}"
ORACLE_PYTHON=${ORACLE_PYTHON:-python3}
PYTHON=${PYTHON:-python3}
G=tests/golden

gen() {  # gen DATASET GENERATOR-ARGS...
  local ds=$1; shift
  rm -rf "$G/data/$ds"
  "$PYTHON" -m tools.generate --out "$G/data/$ds" --gzip "$@"
}

oracle() {  # oracle CASE DATASET ORACLE-ARGS...
  local case=$1 ds=$2; shift 2
  mkdir -p "$G/$case"
  "$ORACLE_PYTHON" "$ORACLE" --engine sql \
    --azure-activity "$G/data/$ds/AzureActivity.jsonl.gz" \
    --device-file-events "$G/data/$ds/DeviceFileEvents.jsonl.gz" \
    --device-events "$G/data/$ds/DeviceEvents.jsonl.gz" \
    --out "$G/$case/expected.jsonl" "$@"
}

gen edge            --mix edge      --days 4 --start 2024-03-01 --seed 0
gen realistic_small --mix realistic --days 3 --start 2024-03-01 --seed 11 --rows 3500 --sessions 14
gen dense_2d        --mix dense     --days 2 --start 2024-03-01 --seed 5  --rows 1500

oracle edge_1d          edge            --period 1d
oracle sliding_2d_1d    edge            --period 2d --frequency 1d
oracle edge_1d_backfill edge            --period 1d --start 2024-03-02 --end 2024-03-04
oracle realistic_small  realistic_small --period 1d
oracle dense_1d         dense_2d        --period 1d
oracle offset_12h       dense_2d        --period 12h --offset 6h

# cases.json: every case with its inputs, window parameters, row counts and number of expected alerts.
"$PYTHON" - <<'PY'
import gzip, json, os
G = "tests/golden"
TABLES = ("AzureActivity", "DeviceFileEvents", "DeviceEvents")
cases = [
    ("edge_1d", "edge", "1d", "1d", "0", None, None,
     "the edge mix (every quirk of the KQL, see EDGE_QUIRKS in tools/generate.py), daily windows"),
    ("sliding_2d_1d", "edge", "2d", "1d", "0", None, None,
     "the edge mix, queryPeriod 2d every 1d: overlapping windows, each row in two of them"),
    ("edge_1d_backfill", "edge", "1d", "1d", "0", "2024-03-02T00:00:00Z", "2024-03-04T00:00:00Z",
     "the edge mix, daily windows, only those inside [start, end]"),
    ("realistic_small", "realistic_small", "1d", "1d", "0", None, None,
     "a realistic tenant over 3 days, 14 Run Command sessions in ~3500 rows"),
    ("dense_1d", "dense_2d", "1d", "1d", "0", None, None, "the dense mix (~20% Run Command rows) over 2 days"),
    ("offset_12h", "dense_2d", "12h", "12h", "6h", None, None,
     "the dense mix, 12-hour windows starting at 06:00 and 18:00 UTC"),
]
out = []
for name, ds, period, freq, offset, start, end, desc in cases:
    inputs = {t: f"data/{ds}/{t}.jsonl.gz" for t in TABLES}
    rows = {t: sum(1 for _ in gzip.open(os.path.join(G, p), "rt", encoding="utf-8")) for t, p in inputs.items()}
    with open(os.path.join(G, name, "expected.jsonl"), encoding="utf-8") as fh:
        alerts = sum(1 for _ in fh)
    out.append({"name": name, "description": desc, "dataset": ds, "inputs": inputs,
                "expected": f"{name}/expected.jsonl", "period": period, "frequency": freq, "offset": offset,
                "start": start, "end": end, "rows": rows, "alerts": alerts})
with open(os.path.join(G, "cases.json"), "w", encoding="utf-8") as fh:
    json.dump({"cases": out}, fh, indent=2)
    fh.write("\n")
PY
