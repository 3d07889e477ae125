"""Tests of tools.generate: determinism, sizes, mix ratios, timestamps and the quirks of the edge mix."""
import collections
import datetime as dt
import gzip
import json
import re

import pytest

from tools import generate as g

RUN_COMMAND = "microsoft.compute/virtualmachines/runcommand/action"
SCRIPT_COMMAND_LINE = re.compile(r"-File\sscript[0-9]+\.ps1")
UTC = dt.timezone.utc


def read_tables(out_dir, gz=False):
    tables = {}
    for table, path in g.output_paths(str(out_dir), gz).items():
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8") as fh:
            tables[table] = [json.loads(line) for line in fh]
    return tables


def instant(text):
    """TimeGenerated -> aware UTC datetime (microseconds; no zone means UTC)."""
    t = dt.datetime.fromisoformat(text)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def is_related(table, row):
    """Rows that belong to a Run Command session (what --mix sets the share of)."""
    if table == "AzureActivity":
        return str(row.get("OperationNameValue", "")).lower() == RUN_COMMAND
    if table == "DeviceFileEvents":
        return row.get("InitiatingProcessFileName") == "RunCommandExtension.exe"
    return bool(SCRIPT_COMMAND_LINE.search(str(row.get("InitiatingProcessCommandLine") or "")))


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    out = tmp_path_factory.mktemp("edge")
    g.generate(str(out), mix="edge", days=4, seed=0)
    return read_tables(out)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    out = tmp_path_factory.mktemp("realistic")
    counts = g.generate(str(out), mix="realistic", days=2, rows=10_000, seed=1)
    return out, counts, read_tables(out)


def file_bytes(out_dir, gz=False):
    return {t: open(p, "rb").read() for t, p in g.output_paths(str(out_dir), gz).items()}


# --- determinism, sizes, ratios ----------------------------------------------------------------
@pytest.mark.parametrize("mix", ["realistic", "dense", "edge"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, mix):
    days = 4 if mix == "edge" else 1
    rows = 300 if mix == "edge" else 2000
    g.generate(str(tmp_path / "a"), mix=mix, days=days, rows=rows, seed=7, gzip=True)
    g.generate(str(tmp_path / "b"), mix=mix, days=days, rows=rows, seed=7, gzip=True)
    g.generate(str(tmp_path / "c"), mix=mix, days=days, rows=rows, seed=8, gzip=True)
    a, b, c = (file_bytes(tmp_path / d, gz=True) for d in "abc")
    assert a == b
    assert a != c


def test_gzip_holds_the_same_rows_as_plain(tmp_path):
    g.generate(str(tmp_path / "plain"), days=1, rows=1500, seed=3)
    g.generate(str(tmp_path / "gz"), days=1, rows=1500, seed=3, gzip=True)
    plain, gz = file_bytes(tmp_path / "plain"), file_bytes(tmp_path / "gz", gz=True)
    assert {t: gzip.decompress(v) for t, v in gz.items()} == plain


@pytest.mark.parametrize("mix, share, tolerance", [("realistic", 0.01, 0.005), ("dense", 0.20, 0.03)])
def test_row_count_and_run_command_share(tmp_path, mix, share, tolerance):
    counts = g.generate(str(tmp_path), mix=mix, days=2, rows=10_000, seed=2)
    tables = read_tables(tmp_path)
    assert counts == {t: len(rows) for t, rows in tables.items()}
    total = sum(counts.values())
    assert abs(total - 10_000) <= 10_000 * 0.03
    related = sum(is_related(t, r) for t, rows in tables.items() for r in rows)
    assert abs(related / total - share) <= tolerance
    assert all(n > total * 0.2 for n in counts.values())  # every table gets a fair share


def test_sessions_option_sets_the_number_of_sessions(tmp_path):
    g.generate(str(tmp_path), days=1, rows=3000, sessions=14, seed=2)
    activity = read_tables(tmp_path)["AzureActivity"]
    sessions = {r["CorrelationId"] for r in activity if is_related("AzureActivity", r)}
    assert len(sessions) == 14


def test_rows_are_wide_like_log_analytics_rows(realistic):
    out, counts, _ = realistic
    size = sum(len(b) for b in file_bytes(out).values())
    assert 450 <= size / sum(counts.values()) <= 800


# --- time ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mix, days", [("realistic", 2), ("dense", 2), ("edge", 4)])
def test_every_row_has_a_parsable_time_inside_the_span_and_files_are_time_ordered(tmp_path, mix, days):
    g.generate(str(tmp_path), mix=mix, days=days, rows=3000, seed=4, start="2024-03-01")
    lo = dt.datetime(2024, 3, 1, tzinfo=UTC)
    hi = lo + dt.timedelta(days=days)
    for table, rows in read_tables(tmp_path).items():
        times = [instant(r["TimeGenerated"]) for r in rows]
        assert all(lo <= t < hi for t in times), table
        assert times == sorted(times), table


def test_log_analytics_datetime_format(realistic):
    _, _, tables = realistic
    pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")
    assert all(pattern.fullmatch(r["TimeGenerated"]) for rows in tables.values() for r in rows)


# --- the realistic tenant -------------------------------------------------------------------------
def test_realistic_sessions_are_three_rows_sharing_authorization_and_caller(realistic):
    _, _, tables = realistic
    by_corr = collections.defaultdict(list)
    for r in tables["AzureActivity"]:
        if is_related("AzureActivity", r):
            by_corr[r["CorrelationId"]].append(r)
    assert by_corr
    for rows in by_corr.values():
        assert len(rows) == 3
        assert len({r["Authorization"] for r in rows}) == 1
        assert len({r["Caller"] for r in rows}) == 1
        auth = json.loads(rows[0]["Authorization"])
        assert "/providers/Microsoft.Compute/virtualMachines/" in auth["scope"]
        statuses = [r["ActivityStatusValue"] for r in rows]
        assert statuses[:2] in (["Start", "Accept"], ["Started", "Accepted"])
        assert statuses[2] in ("Success", "Succeeded", "Failure", "Failed")
    ops = {r["OperationNameValue"] for rows in by_corr.values() for r in rows}
    assert ops == {"Microsoft.Compute/virtualMachines/runCommand/action",
                   "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION"}
    callers = {rows[0]["Caller"] for rows in by_corr.values()}
    assert any("@" in c for c in callers) and any(re.fullmatch(r"[0-9a-f-]{36}", c) for c in callers)


def test_realistic_script_files_and_powershell_commands(realistic):
    _, _, tables = realistic
    files = [r for r in tables["DeviceFileEvents"] if is_related("DeviceFileEvents", r)]
    scripts = [r for r in files if r["FileName"].endswith(".ps1")]
    assert scripts
    for r in scripts:
        assert re.fullmatch(r"script\d+\.ps1", r["FileName"])
        assert re.fullmatch(r"C:\\Packages\\Plugins\\Microsoft\.CPlat\.Core\.RunCommandWindows\\1\.1\.\d+"
                            r"\\Downloads\\script\d+\.ps1", r["FolderPath"])
        assert isinstance(r["FileSize"], int) and r["FileSize"] > 0
    commands = collections.defaultdict(list)
    for r in tables["DeviceEvents"]:
        if is_related("DeviceEvents", r):
            assert r["ActionType"] == "PowerShellCommand"
            fields = r["AdditionalFields"]
            commands[(r["DeviceName"], r["InitiatingProcessCommandLine"])].append(
                json.loads(fields) if isinstance(fields, str) else fields)
    assert commands
    for (_, cmdline), fields in commands.items():
        # the first command of a run is the script itself
        assert fields[0]["Command"] == re.search(r"script\d+\.ps1", cmdline).group()


# --- the edge mix promises ------------------------------------------------------------------------
def run_command_rows(edge):
    return [r for r in edge["AzureActivity"] if is_related("AzureActivity", r)]


def rce_files(edge):
    return [r for r in edge["DeviceFileEvents"] if r.get("InitiatingProcessFileName") == "RunCommandExtension.exe"]


def script_events(edge):
    return [r for r in edge["DeviceEvents"] if is_related("DeviceEvents", r)]


def scope_of(auth):
    try:
        doc = json.loads(auth) if isinstance(auth, str) else auth
    except ValueError:
        return None
    return doc.get("scope") if isinstance(doc, dict) else None


def has_term(text, term):
    return re.search(r"(?i)(?<![^\W_])" + term + r"(?![^\W_])", str(text)) is not None


def test_edge_operation_name_spellings(edge):
    ops = {r["OperationNameValue"] for r in run_command_rows(edge)}
    assert {"Microsoft.Compute/virtualMachines/runCommand/action", RUN_COMMAND.upper(), RUN_COMMAND} <= ops


def test_edge_authorization_shapes(edge):
    auths = [r["Authorization"] for r in run_command_rows(edge)]
    texts = [a for a in auths if isinstance(a, str)]
    # virtualMachines only inside a longer term
    assert any("virtualMachines" in a and not has_term(a, "virtualMachines") for a in texts)
    # the term in another case
    assert any(has_term(a, "virtualMachines") and "virtualMachines" not in a for a in texts)
    # not JSON at all
    assert any(scope_of(a) is None and has_term(a, "virtualMachines") for a in texts)
    # an object instead of a string
    assert any(isinstance(a, dict) for a in auths)
    scopes = [s for s in map(scope_of, auths) if s]
    assert any(s.endswith("/") for s in scopes)
    rg_scopes = [s for s in scopes if re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+", s)]
    devices = {str(r.get("DeviceName", "")).split(".")[0] for r in rce_files(edge)}
    assert any(s.rsplit("/", 1)[1] in devices for s in rg_scopes)


def test_edge_session_with_authorization_key_order_differing(edge):
    by_corr = collections.defaultdict(set)
    for r in run_command_rows(edge):
        if isinstance(r["Authorization"], str) and scope_of(r["Authorization"]):
            by_corr[r["CorrelationId"]].add(r["Authorization"])
    split = [a for a in by_corr.values() if len(a) > 1]
    assert split and all(len({json.dumps(json.loads(x), sort_keys=True) for x in a}) == 1 for a in split)


def test_edge_caller_ip_and_callers(edge):
    ips = collections.defaultdict(set)
    callers = set()
    for r in run_command_rows(edge):
        ips[str(r["CorrelationId"])].add(r["CallerIpAddress"])
        callers.add(r["Caller"])
    assert {"9.9.9.9", "10.1.1.1"} in ips.values()
    assert None in callers and "" in callers
    assert any(isinstance(c, str) and c.count("@") == 2 for c in callers)
    assert any(isinstance(c, str) and re.fullmatch(r"[0-9a-f-]{36}", c) for c in callers)
    assert any(isinstance(r["CorrelationId"], int) for r in run_command_rows(edge))


def test_edge_status_lists(edge):
    statuses = collections.defaultdict(list)
    for r in run_command_rows(edge):
        statuses[str(r["CorrelationId"])].append(r["ActivityStatusValue"])
    finals = {s[-1] for s in statuses.values() if len(s) == 3}
    assert {"Success", "Succeeded", "succeeded", "PartiallySucceeded", "Failure"} <= finals


def session_bounds(edge):
    groups = collections.defaultdict(list)
    for r in run_command_rows(edge):
        key = (str(r["CorrelationId"]), json.dumps(r["Authorization"]), r["Caller"])
        groups[key].append(instant(r["TimeGenerated"]))
    return [(min(ts), max(ts)) for ts in groups.values()]


def test_edge_file_events_at_and_just_outside_session_bounds(edge):
    bounds = session_bounds(edge)
    starts, ends = {s for s, _ in bounds}, {e for _, e in bounds}
    times = {instant(r["TimeGenerated"]) for r in rce_files(edge)}
    us = dt.timedelta(microseconds=1)
    assert times & starts and times & ends
    assert {t + us for t in times} & starts
    assert {t - us for t in times} & ends


def test_edge_midnight(edge):
    all_times = [r["TimeGenerated"] for rows in edge.values() for r in rows]
    assert any(instant(t).time() == dt.time(0) for t in all_times)
    assert any(instant(t).time() == dt.time(23, 59, 59, 999999) for t in all_times)
    days = collections.defaultdict(set)
    for r in run_command_rows(edge):
        days[str(r["CorrelationId"])].add(instant(r["TimeGenerated"]).date())
    assert any(len(d) == 2 for d in days.values())


def test_edge_datetime_spellings(edge):
    texts = [r["TimeGenerated"] for rows in edge.values() for r in rows]
    assert any(t.endswith("+02:00") for t in texts)
    assert any(re.fullmatch(r"[\d-]+T[\d:.]+", t) for t in texts)  # no zone
    # a +02:00 time whose local date is the next UTC day
    assert any(t.endswith("+02:00") and instant(t).date() != dt.date.fromisoformat(t[:10]) for t in texts)


def test_edge_device_names(edge):
    files = rce_files(edge)
    assert any(r.get("DeviceName") == "" for r in files)
    assert any("DeviceName" not in r for r in files)
    vm_names = {s.rsplit("/", 1)[1] for s in map(scope_of, (r["Authorization"] for r in run_command_rows(edge)))
                if s and not s.endswith("/")}
    device_vms = {str(r.get("DeviceName", "")).split(".")[0] for r in files}
    case_only = {v for v in vm_names if v not in device_vms and v.lower() in {d.lower() for d in device_vms}}
    assert len(case_only) >= 2


def test_edge_file_event_shapes(edge):
    files = rce_files(edge)
    per_run = collections.Counter((r.get("DeviceName"), r["FileName"], r["TimeGenerated"][:13])
                                  for r in files if r["FileName"].endswith(".ps1"))
    assert max(per_run.values()) >= 2  # a second file event for the same script in the same run
    on_two_vms = collections.defaultdict(set)
    on_two_days = collections.defaultdict(set)
    for r in files:
        on_two_vms[(r["FileName"], instant(r["TimeGenerated"]).replace(second=0, microsecond=0))].add(r.get("DeviceName"))
        on_two_days[(r.get("DeviceName"), r["FileName"])].add(instant(r["TimeGenerated"]).date())
    assert any(len(v) >= 2 for v in on_two_vms.values())
    assert any(len(v) >= 2 for v in on_two_days.values())
    sizes = [r.get("FileSize", "missing") for r in files]
    assert "missing" in sizes
    assert any(isinstance(s, str) and s.isdigit() for s in sizes)
    assert any(isinstance(s, float) for s in sizes)
    assert any(isinstance(r.get("InitiatingProcessAccountName"), dict) for r in files)
    assert any(r["FileName"].endswith(".status") for r in files)


def test_edge_command_lines(edge):
    cmdlines = {r["InitiatingProcessCommandLine"] for r in edge["DeviceEvents"]}
    assert any("-file script" in c for c in cmdlines)
    assert any("-File  script" in c for c in cmdlines)
    assert any("-File\tscript" in c for c in cmdlines)
    assert any(re.search(r"script\d{10}\.ps1", c) for c in cmdlines)
    assert any(re.search(r"script\d+\.ps1x", c) for c in cmdlines)
    names = collections.defaultdict(set)
    for c in cmdlines:
        m = re.search(r"-File\s(script[0-9]{1,9}\.ps1)", c)
        if m:
            names[m.group(1)].add(c)
    assert any(len(v) >= 2 for v in names.values())  # one script name, two command lines
    actions = {r["ActionType"] for r in script_events(edge)}
    assert "PowerShellCommand" in actions and len(actions) >= 2


def test_edge_additional_fields_and_commands(edge):
    events = script_events(edge)
    fields = [r.get("AdditionalFields", "missing") for r in events]
    assert "missing" in fields and None in fields
    assert any(isinstance(f, list) for f in fields)
    assert any(isinstance(f, dict) and "Command" not in f for f in fields)
    assert any(isinstance(f, str) and f.startswith("{") for f in fields)
    assert any(isinstance(f, str) and not f.startswith("{") for f in fields)
    commands, same_name_other_case, per_run = [], False, collections.defaultdict(list)
    for r in events:
        f = r.get("AdditionalFields")
        f = json.loads(f) if isinstance(f, str) and f.startswith("{") else f
        cmd = f.get("Command") if isinstance(f, dict) else None
        script = re.search(r"script\d+\.ps1", r["InitiatingProcessCommandLine"]).group()
        if isinstance(cmd, str):
            commands.append(cmd)
            same_name_other_case |= cmd != script and cmd.upper() == script.upper()
            per_run[(r.get("DeviceName"), r["InitiatingProcessCommandLine"])].append(cmd.upper())
        if isinstance(cmd, int):
            commands.append(cmd)
    assert same_name_other_case
    assert any(isinstance(c, int) for c in commands)
    text = "".join(c for c in commands if isinstance(c, str))
    assert {"ß", "ǅ", "ı"} <= set(text)
    assert any(len(v) != len(set(v)) for v in per_run.values())  # duplicate cmdlets


# --- CLI ------------------------------------------------------------------------------------------
def test_cli_writes_the_three_gzip_files(tmp_path, capsys):
    assert g.main(["--out", str(tmp_path), "--rows", "600", "--days", "1", "--seed", "5", "--gzip"]) == 0
    counts = json.loads(capsys.readouterr().err)
    tables = read_tables(tmp_path, gz=True)
    assert counts == {t: len(rows) for t, rows in tables.items()}


def test_edge_needs_four_days(tmp_path):
    with pytest.raises(ValueError):
        g.generate(str(tmp_path), mix="edge", days=3)
