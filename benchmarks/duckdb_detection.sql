-- benchmarks/duckdb_detection.sql
--
-- The detection "Azure VM Run Command operations executing a unique PowerShell script"
-- (rule 5239248b-abfb-4c6a-8177-b104ade5db56, sentinel semantics) as ONE DuckDB SQL statement
-- that reads the three JSON-lines exports directly, the way a user would answer the question
-- "just load the exports into DuckDB and run the query".  It is the baseline of
-- benchmarks/run_benchmark.py, whose results are checked row for row against the pipeline's.
--
-- Parameters (DuckDB named prepared-statement parameters):
--   $azure_activity, $device_file_events, $device_events   file paths or globs (.jsonl or .jsonl.gz)
--   $period_us, $offset_us                                  fixed query windows [offset + k*period,
--                                                           offset + (k+1)*period), in microseconds
--                                                           (the rule: queryPeriod = queryFrequency = 1d)
-- Run it in a session with TimeZone = 'UTC'.
--
-- Windows: a scheduled rule evaluates the query on each window's rows alone.  Instead of running
-- the query once per window, every row gets its window number `w` and `w` is part of every
-- GROUP BY and every join key below; the per-window row total behind Prevalence is a count per `w`.
-- Only fixed (tumbling) windows are expressed here (period == frequency), which is what the
-- benchmark runs.
--
-- Typing follows Log Analytics ingestion: string columns are read as VARCHAR and a missing value
-- becomes '' (Kusto strings have no null); TimeGenerated is ISO 8601 with 7 fractional digits,
-- truncated to microseconds by the TIMESTAMPTZ cast, and an unparsable one drops the row from every
-- window; FileSize becomes BIGINT (null if not a number); AdditionalFields (dynamic) is read as JSON,
-- and a JSON string whose content is itself JSON is parsed.
--
-- Scope of faithfulness: the Kusto operators used are rendered as the KQL specifies (term matching
-- of `has`, RE2 `extract`, case-sensitive joins, `toupper` keeping 'ß'); corner cases of exotic input
-- (duplicate JSON keys in Authorization, non-string JSON values in string columns, U+0130 in
-- OperationNameValue) follow DuckDB, which may differ from the pipeline's typing.  The generator's
-- realistic and dense mixes contain none of them.
WITH
-- The window number of a row is w = floor((epoch_us(TimeGenerated) - $offset_us) / $period_us),
-- written (rel - ((rel % p) + p) % p) // p because DuckDB's // and % truncate toward zero.
-- ---------------------------------------------------------------- AzureActivity
activity AS (
    SELECT TRY_CAST(TimeGenerated AS TIMESTAMPTZ)   AS t,
           coalesce(OperationNameValue, '')         AS OperationNameValue,
           coalesce("Authorization", '')            AS "Authorization",
           coalesce(CorrelationId, '')              AS CorrelationId,
           coalesce(Caller, '')                     AS Caller,
           coalesce(CallerIpAddress, '')            AS CallerIpAddress,
           coalesce(ActivityStatusValue, '')        AS ActivityStatusValue
    FROM read_json($azure_activity, format = 'newline_delimited',
                   columns = {TimeGenerated: 'VARCHAR', OperationNameValue: 'VARCHAR',
                              "Authorization": 'VARCHAR', CorrelationId: 'VARCHAR', Caller: 'VARCHAR',
                              CallerIpAddress: 'VARCHAR', ActivityStatusValue: 'VARCHAR'})
),
-- `OperationNameValue =~ "Microsoft.Compute/virtualMachines/runCommand/action"`: =~ ignores case.
-- `Authorization has "virtualMachines"`: a whole term (maximal run of letters/digits), any case.
run_command_rows AS (
    SELECT *, epoch_us(t) - $offset_us AS rel
    FROM activity
    WHERE t IS NOT NULL
      AND lower(OperationNameValue) = 'microsoft.compute/virtualmachines/runcommand/action'
      AND regexp_matches("Authorization", '(?i)(?:^|[^\pL\pN])virtualMachines(?:$|[^\pL\pN])')
),
-- `summarize StartTime=min(TimeGenerated), EndTime=max(TimeGenerated), max(CallerIpAddress),
--  make_list(ActivityStatusValue) by CorrelationId, Authorization, Caller` (per window), then
-- `where list_ActivityStatusValue has_any ("Succeeded", "Success")`.  has_any runs on the JSON text of
-- the list; every element is a quoted JSON string there, so no term spans two elements and the list
-- matches iff the JSON text of one element does: bool_or over to_json(status).
-- max() of strings is ordinal: DuckDB compares UTF-8 bytes, which orders like code points.
sessions AS (
    SELECT (rel - ((rel % $period_us) + $period_us) % $period_us) // $period_us AS w,
           CorrelationId, "Authorization", Caller,
           min(t) AS StartTime, max(t) AS EndTime, max(CallerIpAddress) AS CallerIpAddress
    FROM run_command_rows
    GROUP BY ALL
    HAVING bool_or(regexp_matches(to_json(ActivityStatusValue),
                                  '(?i)(?:^|[^\pL\pN])(?:Succeeded|Success)(?:$|[^\pL\pN])'))
),
-- `Scope = parse_json(Authorization).scope` (invalid JSON: a dynamic string, whose .scope is null);
-- `VirtualMachineName = tostring(split(Scope, "/")[-1])`, split working on tostring(Scope)
-- (null -> '' -> [""]), so a trailing '/' or a missing scope gives ''.
session_scopes AS (
    SELECT w, StartTime, EndTime, Caller, CallerIpAddress, Scope,
           coalesce(string_split(coalesce(Scope ->> '$', ''), '/')[-1], '') AS VirtualMachineName
    FROM (SELECT *, json_extract(TRY_CAST("Authorization" AS JSON), '$.scope') AS Scope FROM sessions)
),
-- ---------------------------------------------------------------- DeviceFileEvents
-- `where InitiatingProcessFileName == "RunCommandExtension.exe"` (== is case-sensitive);
-- `VirtualMachineName = tostring(split(DeviceName, ".")[0])`.
script_files AS (
    SELECT (rel - ((rel % $period_us) + $period_us) % $period_us) // $period_us AS w, *
    FROM (
        SELECT epoch_us(TRY_CAST(TimeGenerated AS TIMESTAMPTZ)) - $offset_us AS rel,
               TRY_CAST(TimeGenerated AS TIMESTAMPTZ)           AS PowershellFileCreatedTimestamp,
               string_split(coalesce(DeviceName, ''), '.')[1]  AS VirtualMachineName,
               coalesce(FileName, '')                          AS FileName,
               TRY_CAST(FileSize AS BIGINT)                    AS FileSize
        FROM read_json($device_file_events, format = 'newline_delimited',
                       columns = {TimeGenerated: 'VARCHAR', DeviceName: 'VARCHAR',
                                  InitiatingProcessFileName: 'VARCHAR', FileName: 'VARCHAR',
                                  FileSize: 'VARCHAR'})
        WHERE InitiatingProcessFileName = 'RunCommandExtension.exe')
    WHERE rel IS NOT NULL
),
-- `join kind=leftouter (...) on VirtualMachineName | where PowershellFileCreatedTimestamp between
-- (StartTime .. EndTime)`: the between drops the unmatched (null) rows, so this is an inner join;
-- both bounds inclusive; VM names compared case-sensitively ('' joins '').  Same window only.
session_files AS (
    SELECT s.w, s.StartTime, s.EndTime, s.VirtualMachineName, s.Caller, s.CallerIpAddress, s.Scope,
           f.FileName, f.FileSize
    FROM session_scopes s
    JOIN script_files f
      ON f.w = s.w AND f.VirtualMachineName = s.VirtualMachineName
     AND f.PowershellFileCreatedTimestamp BETWEEN s.StartTime AND s.EndTime
),
-- ---------------------------------------------------------------- DeviceEvents
-- `where InitiatingProcessCommandLine has "-File"` and
-- `PowershellFileName = extract(@"\-File\s(script[0-9]{1,9}\.ps1)", 1, ...) | where isnotempty(...)`:
-- a non-empty extract implies the `has` ("-File" followed by whitespace, a term end), so only the
-- extract is evaluated, behind a cheap case-sensitive contains() that the extract also implies.
-- RE2's \s is [\t\n\f\r ] as in Kusto.
-- `PSCommand = tostring(parse_json(AdditionalFields).Command)`: a string as is, null/missing as '',
-- anything else as its compact JSON text (->> does exactly that).
script_events AS (
    SELECT * FROM (
        SELECT epoch_us(TRY_CAST(TimeGenerated AS TIMESTAMPTZ)) - $offset_us AS rel,
               TRY_CAST(TimeGenerated AS TIMESTAMPTZ) AS t,
               InitiatingProcessCommandLine,
               regexp_extract(InitiatingProcessCommandLine, '-File\s(script[0-9]{1,9}\.ps1)', 1)
                   AS PowershellFileName,
               coalesce(json_extract(
                   CASE WHEN json_type(AdditionalFields) = 'VARCHAR'
                        THEN coalesce(TRY_CAST(AdditionalFields ->> '$' AS JSON), AdditionalFields)
                        ELSE AdditionalFields END,
                   '$.Command') ->> '$', '') AS PSCommand
        FROM read_json($device_events, format = 'newline_delimited',
                       columns = {TimeGenerated: 'VARCHAR', InitiatingProcessCommandLine: 'VARCHAR',
                                  AdditionalFields: 'JSON'})
        WHERE contains(InitiatingProcessCommandLine, '-File'))
    WHERE PowershellFileName <> '' AND rel IS NOT NULL
),
-- `where PSCommand != PowershellFileName` (case-sensitive, '' kept) | `extend PSCommand =
-- toupper(PSCommand)`: .NET ToUpperInvariant, a simple case mapping; DuckDB upper() agrees except
-- for 'ß' (DuckDB: U+1E9E), which is therefore upper-cased separately (kept as 'ß').
-- `order by PSCommand asc | summarize min(TimeGenerated), max(TimeGenerated), make_list(PSCommand)
--  by PowershellFileName, InitiatingProcessCommandLine`: the list follows the sort (ordinal order,
-- duplicates kept); grouped per window, with all VMs of the window pooled as in the KQL.
script_cmdlets AS (
    SELECT (rel - ((rel % $period_us) + $period_us) % $period_us) // $period_us AS w,
           PowershellFileName, InitiatingProcessCommandLine,
           list(PSCommand ORDER BY PSCommand) AS cmdlets
    FROM (SELECT rel, PowershellFileName, InitiatingProcessCommandLine,
                 CASE WHEN contains(PSCommand, 'ß')
                      THEN array_to_string(list_transform(string_split(PSCommand, 'ß'), lambda x: upper(x)), 'ß')
                      ELSE upper(PSCommand) END AS PSCommand
          FROM script_events
          WHERE PSCommand <> PowershellFileName)
    GROUP BY ALL
),
-- `join kind=inner (...) on $left.FileName == $right.PowershellFileName`: on the file name only
-- (inside the window), so one session's script joins every group of that name.
-- `ScriptFingerprintHash = hash_sha256(tostring(PowershellScriptCommands))`: SHA-256 (lower-case hex)
-- of the list's compact JSON text; the file size is not part of it (TempFingerprintString is unused).
run_command_data AS MATERIALIZED (
    SELECT f.w, f.StartTime, f.EndTime, c.PowershellFileName, f.VirtualMachineName, f.Caller,
           f.CallerIpAddress, to_json(c.cmdlets) AS PowershellScriptCommands,
           f.FileSize AS PowershellFileSize, f.Scope,
           sha256(CAST(to_json(c.cmdlets) AS VARCHAR)) AS ScriptFingerprintHash
    FROM session_files f
    JOIN script_cmdlets c ON c.w = f.w AND c.PowershellFileName = f.FileName
),
-- `totals = toscalar(RunCommandData | summarize count())`, `hashTotals = summarize HashCount=count()
-- by ScriptFingerprintHash`, per window; `Prevalence = toreal(HashCount) / toreal(totals) * 100`;
-- `where HashCount == 1`.
counted AS (
    SELECT *,
           count(*) OVER (PARTITION BY w)                          AS total_rows,
           count(*) OVER (PARTITION BY w, ScriptFingerprintHash)   AS HashCount
    FROM run_command_data
)
-- `extend timestamp = StartTime`, `CallerName = tostring(split(Caller, "@")[0])`,
-- `CallerUPNSuffix = tostring(split(Caller, "@")[1])` (out of range -> ''), and the final project,
-- plus the window bounds.  Datetimes are written as YYYY-MM-DDTHH:MM:SS.ffffffZ.
SELECT strftime(StartTime, '%Y-%m-%dT%H:%M:%S.%fZ')                     AS "timestamp",
       strftime(StartTime, '%Y-%m-%dT%H:%M:%S.%fZ')                     AS StartTime,
       strftime(EndTime, '%Y-%m-%dT%H:%M:%S.%fZ')                       AS EndTime,
       PowershellFileName, VirtualMachineName, Caller,
       coalesce(string_split(Caller, '@')[1], '')                       AS CallerName,
       coalesce(string_split(Caller, '@')[2], '')                       AS CallerUPNSuffix,
       CallerIpAddress,
       PowershellScriptCommands,
       PowershellFileSize,
       ScriptFingerprintHash,
       CAST(HashCount AS DOUBLE) / CAST(total_rows AS DOUBLE) * 100    AS Prevalence,
       Scope,
       strftime(make_timestamp(w * $period_us + $offset_us), '%Y-%m-%dT%H:%M:%S.%fZ')
                                                                       AS QueryPeriodStart,
       strftime(make_timestamp((w + 1) * $period_us + $offset_us), '%Y-%m-%dT%H:%M:%S.%fZ')
                                                                       AS QueryPeriodEnd
FROM counted
WHERE HashCount = 1
ORDER BY QueryPeriodStart, StartTime, VirtualMachineName, PowershellFileName, ScriptFingerprintHash
