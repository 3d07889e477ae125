"""Deterministic generator of the three Log Analytics tables the rule reads.

A development tool, not part of the installed package: run it from a checkout of the repository
(the bundled sample day, the golden inputs of the tests and the benchmark inputs are made with it).

    python -m tools.generate --out DIR [--days N] [--start 2024-03-01] [--seed S]
        [--mix realistic|dense|edge] [--rows N] [--sessions N] [--gzip]

writes ``DIR/AzureActivity.jsonl``, ``DIR/DeviceFileEvents.jsonl`` and ``DIR/DeviceEvents.jsonl``
(``.jsonl.gz`` with ``--gzip``): JSON lines, one row per line, keys = Log Analytics column names,
``TimeGenerated`` written like Log Analytics (ISO 8601, 7 fractional digits, ``Z``), rows in time
order.  The same arguments always give the same bytes (gzip members carry no name and mtime 0).

The tenant: a few subscriptions and resource groups, VMs named ``web-prod-01``, ``WebProd02``...,
each onboarded to Defender as ``<vm>.contoso.local`` (some without the domain, some upper-cased, a
few not onboarded), admins calling as UPNs (``alice@contoso.com``) or as an automation service
principal (a GUID caller), each from a few IP addresses.

A Run Command session is what Azure and Defender record when an admin runs a script on a VM:

* AzureActivity: three rows sharing CorrelationId, Authorization (a JSON *string* with ``action``,
  ``scope`` = the VM's resource id, ``evidence``) and Caller, OperationNameValue
  ``Microsoft.Compute/virtualMachines/runCommand/action`` (sometimes upper-case), ActivityStatusValue
  ``Start``/``Accept``/``Success`` (sometimes ``Started``/``Accepted``/``Succeeded``; a few sessions
  end in ``Failure``/``Failed``), seconds to a minute apart;
* DeviceFileEvents: ``RunCommandExtension.exe`` creates ``script<seq>.ps1`` in
  ``C:\\Packages\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows\\1.1.x\\Downloads\\`` (``<seq>`` is a
  per-VM sequence number, so ``script3.ps1`` exists on many VMs), sometimes also its status file;
* DeviceEvents: ``PowerShellCommand`` rows of ``powershell  -ExecutionPolicy Unrestricted -File
  script<seq>.ps1`` with ``AdditionalFields`` ``{"Command": ...}`` (an object, sometimes a JSON string):
  first the script name itself, then one row per cmdlet the script runs.

Scripts come from a library of common admin scripts (same cmdlets and size wherever they run) and
rare one-offs (a random cmdlet mix: these are the ones the rule should find unique).

Mixes (``--rows`` is the approximate total over the three tables, ``--days`` the time span):

* ``realistic``: about 1% of the rows belong to Run Command sessions, the rest is unrelated activity
  (other ARM operations, file events of other processes, other DeviceEvents action types, PowerShell
  run by other means);
* ``dense``: about 20% of the rows belong to Run Command sessions;
* ``edge``: see :data:`EDGE_QUIRKS`: a small hand-built data set over at least 4 days (``--rows`` only
  sets the amount of unrelated background rows) containing every quirk of the rule's KQL an
  implementation must reproduce.

``--sessions N`` overrides the number of Run Command sessions of ``realistic``/``dense`` (the rows
they do not use are unrelated activity).

Python API: :func:`generate` (same parameters) returns the number of rows written per table.
"""
from __future__ import annotations

import argparse
import bisect
import datetime as _dt
import gzip as _gzip
import json
import os
import random
import sys

from transforms.detect.semantics import RUN_COMMAND_ACTION, RUN_COMMAND_EXTENSION
from transforms.read.schema import TABLES

MIXES = ("realistic", "dense", "edge")
RUN_COMMAND_SHARE = {"realistic": 0.01, "dense": 0.20}
# Share of each table in the unrelated rows.
NOISE_SHARE = {"AzureActivity": 0.34, "DeviceFileEvents": 0.33, "DeviceEvents": 0.33}
DEFAULT_ROWS = {"realistic": 50_000, "dense": 50_000, "edge": 240}
DEFAULT_DAYS = {"realistic": 7, "dense": 7, "edge": 4}

TICKS = 10_000_000                    # 100 ns ticks per second
DAY_TICKS = 86_400 * TICKS
HOUR_TICKS = 3_600 * TICKS
US_TICKS = 10                         # ticks per microsecond
_EPOCH = _dt.datetime(1970, 1, 1)

# Hour-of-day weights: unrelated activity is busier in office hours, admins mostly work then.
NOISE_HOUR_WEIGHT = [0.5] * 6 + [0.8, 1.2] + [1.6] * 10 + [1.2, 1.0, 0.8, 0.7, 0.6, 0.5]
ADMIN_HOUR_WEIGHT = [0.1] * 6 + [0.5, 1.0] + [2.0] * 10 + [1.0, 0.6, 0.4, 0.3, 0.2, 0.1]

RC_VERSIONS = ("1.1.3", "1.1.5", "1.1.8", "1.1.11")
RC_ROOT = "C:\\Packages\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows\\"
PS_PATH = "c:\\windows\\system32\\windowspowershell\\v1.0\\powershell.exe"


# ---------------------------------------------------------------------------
# time
# ---------------------------------------------------------------------------
_DAY_TEXT: dict[int, str] = {}


def fmt_ticks(t: int) -> str:
    """100-ns ticks since the Unix epoch -> ``2024-03-01T10:00:00.1234567Z`` (Log Analytics style)."""
    s, f = divmod(t, TICKS)
    d, sod = divmod(s, 86_400)
    day = _DAY_TEXT.get(d)
    if day is None:
        day = _DAY_TEXT[d] = (_EPOCH + _dt.timedelta(days=d)).strftime("%Y-%m-%d")
    h, r = divmod(sod, 3_600)
    m, sec = divmod(r, 60)
    return "%sT%02d:%02d:%02d.%07dZ" % (day, h, m, sec, f)


def day_ticks(date_text: str) -> int:
    d = _dt.date.fromisoformat(date_text)
    return (d - _EPOCH.date()).days * DAY_TICKS


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split *total* into integers proportional to *weights* (cumulative rounding: sums exactly)."""
    s = sum(weights)
    out, acc, done = [], 0.0, 0
    for w in weights:
        acc += w
        n = round(total * acc / s) - done
        out.append(n)
        done += n
    return out


# ---------------------------------------------------------------------------
# tenant
# ---------------------------------------------------------------------------
class Vm:
    __slots__ = ("name", "sub", "rg", "device_name", "device_id", "rc_version", "seq", "resource_id")

    def __init__(self, name, sub, rg, device_name, device_id, rc_version, seq):
        self.name, self.sub, self.rg = name, sub, rg
        self.device_name, self.device_id = device_name, device_id
        self.rc_version, self.seq = rc_version, seq
        self.resource_id = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                            f"Microsoft.Compute/virtualMachines/{name}")


class Admin:
    __slots__ = ("caller", "ips", "principal_id", "principal_type", "role")

    def __init__(self, caller, ips, principal_id, principal_type, role):
        self.caller, self.ips, self.principal_id = caller, ips, principal_id
        self.principal_type, self.role = principal_type, role


def _guid(rnd: random.Random) -> str:
    h = "%032x" % rnd.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _hex(rnd: random.Random, n: int) -> str:
    return "%0*x" % (n, rnd.getrandbits(4 * n))


ROLES = ("web", "app", "sql", "file", "jump", "build", "dc", "cache", "api", "batch")
ENVS = ("prod", "dev", "test", "stg")


class Tenant:
    """The fixed population the rows are drawn from (all derived from the seed)."""

    def __init__(self, rnd: random.Random, n_vms: int):
        self.subs = [_guid(rnd) for _ in range(3)]
        self.rgs = []  # (sub, rg)
        for i, (role, env) in enumerate([(r, e) for e in ENVS for r in ROLES]):
            if i >= max(6, n_vms // 4):
                break
            self.rgs.append((self.subs[i % len(self.subs)], f"rg-{role}-{env}"))
        self.vms: list[Vm] = []
        counters: dict[tuple, int] = {}
        for i in range(n_vms):
            role, env = rnd.choice(ROLES), rnd.choice(ENVS[:2] if rnd.random() < 0.8 else ENVS)
            counters[(role, env)] = k = counters.get((role, env), 0) + 1
            style = rnd.random()
            if style < 0.72:
                name = f"{role}-{env}-{k:02d}"
            elif style < 0.88:
                name = f"{role.capitalize()}{env.capitalize()}{k:02d}"
            else:
                name = f"{role}{env}{k:02d}"
            sub, rg = rnd.choice(self.rgs)
            d = rnd.random()
            if d < 0.74:
                device = name + ".contoso.local"
            elif d < 0.86:
                device = name
            elif d < 0.94:
                device = (name + ".contoso.local").upper()
            else:
                device = None  # not onboarded to Defender for Endpoint
            self.vms.append(Vm(name, sub, rg, device, _hex(rnd, 40), rnd.choice(RC_VERSIONS),
                               rnd.randrange(0, 40)))
        # Defender devices that are not Azure VMs (workstations, on-premises servers).
        self.workstations = [(f"{p}-{_hex(rnd, 6).upper()}.contoso.local" if rnd.random() < 0.6
                              else f"desktop-{_hex(rnd, 5)}", _hex(rnd, 40))
                             for p in ("LAPTOP", "DESKTOP", "WKS") for _ in range(max(3, n_vms // 6))]
        self.devices = [(vm.device_name, vm.device_id) for vm in self.vms if vm.device_name] + self.workstations
        self.admins = [
            Admin("alice@contoso.com", ["203.0.113.24", "203.0.113.57"], _hex(rnd, 32), "User",
                  "Virtual Machine Contributor"),
            Admin("bob@contoso.com", ["198.51.100.8", "10.20.4.17"], _hex(rnd, 32), "User", "Contributor"),
            Admin("carol.admin@contoso.com", ["192.0.2.140"], _hex(rnd, 32), "User", "Owner"),
            Admin("dave@contoso.onmicrosoft.com", ["100.64.12.9", "9.9.9.9"], _hex(rnd, 32), "User",
                  "Virtual Machine Contributor"),
            Admin(_guid(rnd), ["20.61.14.203", "52.174.33.9"], _hex(rnd, 32), "ServicePrincipal",
                  "Contributor"),
        ]
        self.admin_weights = [0.3, 0.2, 0.1, 0.1, 0.3]
        self.other_callers = [a.caller for a in self.admins] + [
            "erin@contoso.com", "frank.ops@contoso.com", "Microsoft.Advisor", _guid(rnd), _guid(rnd)]


# ---------------------------------------------------------------------------
# scripts
# ---------------------------------------------------------------------------
COMMON_SCRIPTS = [
    # (cmdlets in execution order, script file size)
    (["Get-PSDrive", "Where-Object", "Select-Object", "Format-Table"], 412),
    (["Get-Service", "Where-Object", "Restart-Service", "Get-Service", "Write-Output"], 655),
    (["Get-HotFix", "Sort-Object", "Select-Object", "Format-List"], 298),
    (["Test-NetConnection", "Resolve-DnsName", "Get-NetIPConfiguration", "Write-Output"], 871),
    (["Get-WinEvent", "Where-Object", "Export-Csv", "Compress-Archive", "Remove-Item"], 1533),
    (["Set-ItemProperty", "Get-NetFirewallRule", "Enable-NetFirewallRule", "Restart-Service"], 947),
    (["Get-Process", "Sort-Object", "Select-Object", "Format-Table"], 233),
    (["Import-Module", "Get-WebAppPoolState", "Restart-WebAppPool", "Get-WebAppPoolState"], 1102),
    (["Get-ComputerInfo", "Select-Object", "ConvertTo-Json", "Out-File"], 505),
    (["Get-LocalGroupMember", "Select-Object", "ConvertTo-Csv"], 377),
    (["Invoke-Sqlcmd", "Out-File", "Get-Content"], 1290),
    (["Clear-DnsClientCache", "Register-DnsClient", "ipconfig"], 188),
]
COMMON_WEIGHTS = [9, 8, 7, 6, 5, 5, 5, 4, 3, 3, 2, 2]
CMDLET_VOCABULARY = (
    "Get-ChildItem Get-Content Set-Content Add-Content New-Item Remove-Item Copy-Item Move-Item "
    "Invoke-WebRequest Invoke-RestMethod Start-BitsTransfer Expand-Archive Compress-Archive "
    "New-LocalUser Add-LocalGroupMember Set-LocalUser Get-LocalUser Set-MpPreference Add-MpPreference "
    "Get-MpComputerStatus New-ItemProperty Set-ItemProperty Get-ItemProperty Remove-ItemProperty "
    "Start-Process Stop-Process Get-Process Get-CimInstance Invoke-CimMethod Get-WmiObject "
    "Invoke-Expression New-Object ConvertFrom-Json ConvertTo-Json Out-File Write-Output Write-Host "
    "Get-Acl Set-Acl New-ScheduledTask Register-ScheduledTask Unregister-ScheduledTask "
    "New-NetFirewallRule Remove-NetFirewallRule Get-NetTCPConnection Get-DnsClientCache "
    "Install-Module Import-Module Install-WindowsFeature Get-WindowsFeature Set-ExecutionPolicy "
    "Get-FileHash Test-Path Split-Path Join-Path Resolve-Path Get-Date Start-Sleep "
    "Get-EventLog Clear-EventLog wevtutil Get-SmbShare New-SmbShare Grant-SmbShareAccess "
    "certutil Import-Certificate Export-PfxCertificate Get-AzAccessToken Connect-AzAccount"
).split()


# ---------------------------------------------------------------------------
# row builders (related rows: built as dicts, serialised with json.dumps)
# ---------------------------------------------------------------------------
def dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def authorization(rnd: random.Random, action: str, scope: str, admin: Admin, sub: str,
                  evidence: bool = True) -> str:
    """The AzureActivity ``Authorization`` column: JSON text (a string column)."""
    auth = {"action": action, "scope": scope}
    if evidence:
        auth["evidence"] = {"role": admin.role, "roleAssignmentScope": f"/subscriptions/{sub}",
                            "principalId": admin.principal_id, "principalType": admin.principal_type}
    return dumps(auth)


def aa_row(rnd, time, op: str, status: str, auth, corr, caller, ip, sub: str, rg: str,
           resource_id: str, **over) -> dict:
    row = {
        "CallerIpAddress": ip, "CorrelationId": corr, "Authorization": auth,
        "Level": "Error" if status in ("Failure", "Failed") else "Informational",
        "OperationNameValue": op, "ActivityStatusValue": status,
        "ResourceGroup": rg.upper() if rnd.random() < 0.5 else rg,
        "SubscriptionId": sub, "EventDataId": _guid(rnd), "Caller": caller, "TimeGenerated": time,
    }
    row.update(over)
    return row


def dfe_row(rnd, time, device_name, device_id, file_name, folder, size, proc, proc_folder,
            account=("system", "nt authority"), action="FileCreated", pid=None, **over) -> dict:
    row = {
        "DeviceId": device_id, "DeviceName": device_name, "ActionType": action,
        "FileName": file_name, "FolderPath": folder + file_name, "SHA1": _hex(rnd, 40), "FileSize": size,
        "InitiatingProcessAccountDomain": account[1], "InitiatingProcessAccountName": account[0],
        "InitiatingProcessFileName": proc, "InitiatingProcessFolderPath": proc_folder,
        "InitiatingProcessId": pid if pid is not None else rnd.randrange(400, 12000),
        "ReportId": rnd.randrange(1, 90000), "TimeGenerated": time,
    }
    if device_name is None:
        del row["DeviceName"]
    row.update(over)
    return row


def de_row(rnd, time, device_name, device_id, action, additional, cmdline, proc, proc_folder,
           pid, account=("system", "nt authority"), **over) -> dict:
    row = {
        "DeviceId": device_id, "DeviceName": device_name, "ActionType": action,
        "AdditionalFields": additional, "InitiatingProcessAccountDomain": account[1],
        "InitiatingProcessAccountName": account[0], "InitiatingProcessCommandLine": cmdline,
        "InitiatingProcessFileName": proc, "InitiatingProcessFolderPath": proc_folder,
        "InitiatingProcessId": pid,
        "ReportId": rnd.randrange(1, 90000), "TimeGenerated": time,
    }
    if additional is _MISSING:
        del row["AdditionalFields"]
    if device_name is None:
        del row["DeviceName"]
    row.update(over)
    return row


_MISSING = object()


def ps_command_line(script: str) -> str:
    return f"powershell  -ExecutionPolicy Unrestricted -File {script}"


def command_field(rnd, command, as_string_share=0.3):
    """``AdditionalFields`` of a PowerShellCommand event: an object, sometimes its JSON text."""
    obj = {"Command": command}
    return dumps(obj) if rnd.random() < as_string_share else obj


# ---------------------------------------------------------------------------
# unrelated rows: a pool of pre-serialised templates per table, filled per row
# ---------------------------------------------------------------------------
_PH = "\x01"  # placeholder marker inside template dicts (serialised as \u0001)


def _template(row: dict, holes: list[str], numeric: tuple[str, ...] = ()) -> str:
    """Serialise *row* into a %-format string with a hole at the value of each of *holes* (in key
    order): ``"%s"`` for a string, ``%d`` for a name in *numeric*."""
    for h in holes:
        row[h] = _PH + h
    text = dumps(row).replace("%", "%%")
    for h in holes:
        text = text.replace(json.dumps(_PH + h), "%d" if h in numeric else '"%s"', 1)
    return text


NOISE_OPS = [
    # (operation, resource type path, weight, statuses)
    ("Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/virtualMachines", 6, ("Start", "Accept", "Success")),
    ("Microsoft.Compute/virtualMachines/start/action", "Microsoft.Compute/virtualMachines", 5, ("Start", "Accept", "Success")),
    ("Microsoft.Compute/virtualMachines/deallocate/action", "Microsoft.Compute/virtualMachines", 5, ("Start", "Accept", "Success")),
    ("Microsoft.Compute/virtualMachines/restart/action", "Microsoft.Compute/virtualMachines", 3, ("Start", "Success", "Failure")),
    ("MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE", "Microsoft.Compute/virtualMachines", 4, ("Start", "Accept", "Success")),
    ("Microsoft.Compute/virtualMachines/runCommands/write", "Microsoft.Compute/virtualMachines", 1, ("Start", "Accept", "Success")),
    ("Microsoft.Compute/virtualMachines/retrieveBootDiagnosticsData/action", "Microsoft.Compute/virtualMachines", 1, ("Start", "Success")),
    ("Microsoft.Compute/disks/write", "Microsoft.Compute/disks", 3, ("Start", "Accept", "Success")),
    ("Microsoft.Compute/snapshots/write", "Microsoft.Compute/snapshots", 2, ("Start", "Success")),
    ("Microsoft.Network/networkSecurityGroups/securityRules/write", "Microsoft.Network/networkSecurityGroups", 4, ("Start", "Accept", "Success")),
    ("Microsoft.Network/publicIPAddresses/write", "Microsoft.Network/publicIPAddresses", 2, ("Start", "Success")),
    ("Microsoft.Network/networkInterfaces/write", "Microsoft.Network/networkInterfaces", 2, ("Start", "Success")),
    ("Microsoft.Storage/storageAccounts/listKeys/action", "Microsoft.Storage/storageAccounts", 8, ("Start", "Success")),
    ("Microsoft.Storage/storageAccounts/write", "Microsoft.Storage/storageAccounts", 2, ("Start", "Accept", "Success")),
    ("Microsoft.KeyVault/vaults/write", "Microsoft.KeyVault/vaults", 1, ("Start", "Success")),
    ("Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments", 1, ("Start", "Success", "Failure")),
    ("Microsoft.Authorization/policies/audit/action", "Microsoft.Compute/virtualMachines", 10, ("Start", "Success")),
    ("Microsoft.Authorization/policies/auditIfNotExists/action", "Microsoft.Storage/storageAccounts", 6, ("Start", "Success")),
    ("Microsoft.Resources/deployments/write", "Microsoft.Resources/deployments", 4, ("Start", "Accept", "Success")),
    ("Microsoft.Resources/tags/write", "Microsoft.Resources/tags", 2, ("Start", "Success")),
    ("Microsoft.Insights/diagnosticSettings/write", "Microsoft.Insights/diagnosticSettings", 1, ("Start", "Success")),
    ("Microsoft.OperationalInsights/workspaces/sharedKeys/action", "Microsoft.OperationalInsights/workspaces", 2, ("Start", "Success")),
    ("Microsoft.Web/sites/write", "Microsoft.Web/sites", 3, ("Start", "Accept", "Success")),
    ("Microsoft.Web/sites/restart/action", "Microsoft.Web/sites", 2, ("Start", "Success")),
    ("Microsoft.Sql/servers/databases/write", "Microsoft.Sql/servers", 2, ("Start", "Accept", "Success", "Failed")),
    ("Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
     "Microsoft.ContainerService/managedClusters", 4, ("Start", "Success")),
]

NOISE_FILE_PROCS = [
    # (process, folder path, account, [(folder, file name pattern)], weight, workstation only)
    ("svchost.exe", "c:\\windows\\system32\\svchost.exe", ("local service", "nt authority"),
     [("C:\\Windows\\System32\\LogFiles\\WMI\\RtBackup\\", "EtwRT.{}.etl"),
      ("C:\\Windows\\ServiceProfiles\\LocalService\\AppData\\Local\\", "lastalive{}.dat")], 8, False),
    ("MsMpEng.exe", "c:\\programdata\\microsoft\\windows defender\\platform\\4.18.24020.7-0\\msmpeng.exe",
     ("system", "nt authority"),
     [("C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History\\Service\\", "DetectionHistory{}.bin"),
      ("C:\\ProgramData\\Microsoft\\Windows Defender\\Definition Updates\\Backup\\", "mpasbase{}.vdm")], 5, False),
    ("TiWorker.exe", "c:\\windows\\winsxs\\amd64_microsoft-windows-servicingstack_10.0.20348.2227\\tiworker.exe",
     ("system", "nt authority"), [("C:\\Windows\\WinSxS\\Temp\\InFlight\\", "{}.manifest")], 4, False),
    ("WindowsAzureGuestAgent.exe", "c:\\windowsazure\\guestagent_2.7.41491.1102_2024-02-14_102433\\windowsazureguestagent.exe",
     ("system", "nt authority"),
     [("C:\\WindowsAzure\\Logs\\", "TransparentInstaller{}.log"),
      ("C:\\Packages\\Plugins\\Microsoft.Azure.Monitor.AzureMonitorWindowsAgent\\1.22.0.0\\Status\\", "{}.status")], 5, False),
    ("MonitoringHost.exe", "c:\\program files\\microsoft monitoring agent\\agent\\monitoringhost.exe",
     ("system", "nt authority"),
     [("C:\\Program Files\\Microsoft Monitoring Agent\\Agent\\Health Service State\\Monitoring Host Temporary Files 7\\",
       "{}.tmp")], 4, False),
    ("w3wp.exe", "c:\\windows\\system32\\inetsrv\\w3wp.exe", ("defaultapppool", "iis apppool"),
     [("C:\\inetpub\\logs\\LogFiles\\W3SVC1\\", "u_ex24{}.log"), ("C:\\inetpub\\temp\\", "{}.tmp")], 4, False),
    ("sqlservr.exe", "c:\\program files\\microsoft sql server\\mssql15.mssqlserver\\mssql\\binn\\sqlservr.exe",
     ("mssqlserver", "nt service"), [("F:\\Backup\\", "LOG_{}.trn")], 2, False),
    ("powershell.exe", PS_PATH, ("svc-backup", "contoso"),
     [("C:\\Scripts\\Output\\", "report-{}.csv"), ("C:\\Windows\\Temp\\", "__PSScriptPolicyTest_{}.ps1")], 3, False),
    ("chrome.exe", "c:\\program files\\google\\chrome\\application\\chrome.exe", ("alice", "contoso"),
     [("C:\\Users\\alice\\Downloads\\", "invoice-{}.pdf"), ("C:\\Users\\alice\\AppData\\Local\\Temp\\", "{}.tmp")], 5, True),
    ("OneDrive.exe", "c:\\program files\\microsoft onedrive\\onedrive.exe", ("bob", "contoso"),
     [("C:\\Users\\bob\\OneDrive - Contoso\\Documents\\", "notes-{}.docx")], 4, True),
    ("explorer.exe", "c:\\windows\\explorer.exe", ("carol", "contoso"),
     [("C:\\Users\\carol\\Desktop\\", "Shortcut {}.lnk")], 2, True),
]

NOISE_DEVICE_EVENTS = [
    # (action type, process, folder, cmdline, additional fields factory, weight)
    ("PowerShellCommand", "powershell.exe", PS_PATH, '"powershell.exe" ',
     lambda r: {"Command": r.choice(["Get-ChildItem", "Get-Service", "Set-Location", "Get-Help", "Clear-Host",
                                     "Get-EventLog", "Select-String", "Out-Default"])}, 6),
    ("PowerShellCommand", "powershell.exe", PS_PATH,
     "powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\Scripts\\Invoke-NightlyBackup.ps1",
     lambda r: dumps({"Command": r.choice(["Invoke-NightlyBackup.ps1", "Get-Date", "Copy-Item", "Write-Log",
                                           "Remove-Item", "Send-MailMessage"])}), 4),
    ("PowerShellCommand", "powershell.exe", PS_PATH,
     "powershell.exe -ExecutionPolicy AllSigned -NoProfile -NonInteractive -Command \"& {Import-Module "
     "'C:\\Program Files\\Microsoft Monitoring Agent\\Agent\\Health Service State\\Resources\\Health.psm1'}\"",
     lambda r: {"Command": r.choice(["Import-Module", "Get-Counter", "Get-CimInstance"])}, 4),
    ("AntivirusScanCompleted", "MsMpEng.exe", "c:\\programdata\\microsoft\\windows defender\\platform\\4.18.24020.7-0\\msmpeng.exe",
     "MsMpEng.exe", lambda r: {"ScanTypeIndex": r.choice([1, 2]), "ScanId": "{%s}" % _guid(r).upper()}, 3),
    ("ScheduledTaskUpdated", "svchost.exe", "c:\\windows\\system32\\svchost.exe", "svchost.exe -k netsvcs -p -s Schedule",
     lambda r: dumps({"TaskName": r.choice(["\\Microsoft\\Windows\\UpdateOrchestrator\\Schedule Scan",
                                                            "\\Microsoft\\Windows\\Defrag\\ScheduledDefrag"])}), 3),
    ("DnsQueryResponse", "svchost.exe", "c:\\windows\\system32\\svchost.exe", "svchost.exe -k NetworkService -p -s Dnscache",
     lambda r: {"DnsQueryString": r.choice(["login.microsoftonline.com", "contoso.local",
                                                            "management.azure.com", "wd.microsoft.com"]),
                                "DnsQueryResult": [{"DnsQueryType": 1}]}, 6),
    ("LdapSearch", "lsass.exe", "c:\\windows\\system32\\lsass.exe", "C:\\Windows\\system32\\lsass.exe",
     lambda r: {"AttributeList": ["objectSid", "sAMAccountName"], "ScopeOfSearch": "SubTree",
                "SearchFilter": "(&(objectCategory=computer)(name=*))"}, 3),
    ("NamedPipeEvent", "sqlservr.exe", "c:\\program files\\microsoft sql server\\mssql15.mssqlserver\\mssql\\binn\\sqlservr.exe",
     '"sqlservr.exe" -sMSSQLSERVER',
     lambda r: {"PipeName": "\\Device\\NamedPipe\\sql\\query", "FileOperation": "File opened"}, 2),
    ("ProcessCreatedUsingWmiQuery", "WmiPrvSE.exe", "c:\\windows\\system32\\wbem\\wmiprvse.exe",
     "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding", lambda r: None, 2),
    ("OpenProcessApiCall", "MonitoringHost.exe", "c:\\program files\\microsoft monitoring agent\\agent\\monitoringhost.exe",
     '"MonitoringHost.exe" -Embedding', lambda r: {"DesiredAccess": 4096}, 3),
    ("FirewallInboundConnectionBlocked", "svchost.exe", "c:\\windows\\system32\\svchost.exe",
     "svchost.exe -k LocalServiceNoNetworkFirewall -p", lambda r: {"Direction": "In"}, 3),
    ("ServiceInstalled", "services.exe", "c:\\windows\\system32\\services.exe", "C:\\Windows\\system32\\services.exe",
     lambda r: {"ServiceName": r.choice(["WindowsAzureGuestAgent", "AzureMonitorAgent", "Sense"]),
                               "ServiceStartType": 2}, 1),
]


class NoiseFactory:
    """Unrelated rows, from pools of pre-serialised row templates (cheap per row)."""

    POOL = 600

    def __init__(self, tenant: Tenant, rnd: random.Random):
        self.tenant, self.rnd = tenant, rnd
        self.aa = [self._aa_template() for _ in range(self.POOL)]
        self.dfe = [self._dfe_template() for _ in range(self.POOL)]
        self.de = [self._de_template() for _ in range(self.POOL)]

    def _aa_template(self) -> str:
        t, r = self.tenant, self.rnd
        op, rtype, _, statuses = r.choices(NOISE_OPS, weights=[o[2] for o in NOISE_OPS])[0]
        vm = r.choice(t.vms)
        name = vm.name if rtype.endswith("virtualMachines") else f"{rtype.split('/')[-1][:-1].lower()}{r.randrange(1, 40)}"
        rid = f"/subscriptions/{vm.sub}/resourceGroups/{vm.rg}/providers/{rtype}/{name}"
        if op.startswith("Microsoft.Authorization/policies"):
            caller, ip = "Microsoft.PolicyInsights", ""
        else:
            caller = r.choice(t.other_callers)
            ip = r.choice([a.ips for a in t.admins])[0] if r.random() < 0.8 else f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        admin = r.choice(t.admins)
        row = aa_row(r, None, op, r.choice(statuses), authorization(r, op, rid, admin, vm.sub, r.random() < 0.1), None, caller,
                     ip, vm.sub, vm.rg, rid)
        return _template(row, ["CorrelationId", "EventDataId", "TimeGenerated"])

    def _dfe_template(self) -> str:
        t, r = self.tenant, self.rnd
        proc, folder, account, files, _, ws_only = r.choices(NOISE_FILE_PROCS, weights=[p[4] for p in NOISE_FILE_PROCS])[0]
        device, device_id = r.choice(t.workstations if ws_only else t.devices)
        fdir, pattern = r.choice(files)
        fname = pattern.format(r.choice([_hex(r, 8).upper(), str(r.randrange(100000)), "0301", _guid(r)]))
        row = dfe_row(r, None, device, device_id, fname, fdir, r.choice([r.randrange(100, 5_000_000), 0]),
                      proc, folder, account, action=r.choice(["FileCreated"] * 5 + ["FileModified"] * 3 + ["FileRenamed"]),
                      )
        return _template(row, ["ReportId", "TimeGenerated"], numeric=("ReportId",))

    def _de_template(self) -> str:
        t, r = self.tenant, self.rnd
        action, proc, folder, cmdline, fields, _ = r.choices(
            NOISE_DEVICE_EVENTS, weights=[e[5] for e in NOISE_DEVICE_EVENTS])[0]
        device, device_id = r.choice(t.devices)
        row = de_row(r, None, device, device_id, action, fields(r), cmdline, proc, folder,
                     r.randrange(400, 12000))
        return _template(row, ["ReportId", "TimeGenerated"], numeric=("ReportId",))

    def rows(self, table: str, n: int, hour_start: int) -> list[tuple[int, str]]:
        """*n* unrelated rows of *table* at random times in the hour starting at tick *hour_start*."""
        rand, getrandbits = self.rnd.random, self.rnd.getrandbits
        prefix = fmt_ticks(hour_start)[:14] + "%02d:%02d.%07dZ"  # "2024-03-01T10:" + mm:ss.fffffffZ
        pool = {"AzureActivity": self.aa, "DeviceFileEvents": self.dfe, "DeviceEvents": self.de}[table]
        size = len(pool)
        out = []
        for _ in range(n):
            offset = int(rand() * HOUR_TICKS)
            m, rest = divmod(offset, 60 * TICKS)
            time = prefix % (m, rest // TICKS, rest % TICKS)
            template = pool[int(rand() * size)]
            if table == "AzureActivity":
                h = "%032x" % getrandbits(128)
                corr = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
                h = "%032x" % getrandbits(128)
                eid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-b{h[17:20]}-{h[20:]}"
                out.append((hour_start + offset, template % (corr, eid, time)))
            else:
                out.append((hour_start + offset, template % (int(rand() * 899_999) + 1, time)))
        return out


# ---------------------------------------------------------------------------
# Run Command sessions
# ---------------------------------------------------------------------------
def rare_script(rnd: random.Random) -> tuple[list[str], int]:
    """A one-off script: a random mix of cmdlets (repeats possible) and a random size."""
    k = rnd.randrange(3, 12)
    cmdlets = [rnd.choice(CMDLET_VOCABULARY) for _ in range(k)]
    if rnd.random() < 0.3:
        cmdlets = [c.lower() for c in cmdlets]
    return cmdlets, rnd.randrange(150, 20000)


class SessionFactory:
    def __init__(self, tenant: Tenant, rnd: random.Random, rare_share=0.12, fail_share=0.05):
        self.tenant, self.rnd = tenant, rnd
        self.rare_share, self.fail_share = rare_share, fail_share

    def session(self, t0: int) -> dict[str, list[tuple[int, str]]]:
        """The rows of one Run Command session starting at tick *t0*, per table."""
        t, r = self.tenant, self.rnd
        vm = r.choice(t.vms)
        admin = r.choices(t.admins, weights=t.admin_weights)[0]
        if admin.principal_type == "ServicePrincipal" or r.random() > self.rare_share:
            cmdlets, size = r.choices(COMMON_SCRIPTS, weights=COMMON_WEIGHTS)[0]
        else:
            cmdlets, size = rare_script(r)
        script = f"script{vm.seq}.ps1"
        vm.seq += 1
        failed = r.random() < self.fail_share
        legacy = r.random() < 0.2
        statuses = (["Started", "Accepted", "Failed" if failed else "Succeeded"] if legacy
                    else ["Start", "Accept", "Failure" if failed else "Success"])
        corr = _guid(r)
        auth = authorization(r, RUN_COMMAND_ACTION, vm.resource_id, admin, vm.sub)
        ip = r.choice(admin.ips)
        t_accept = t0 + r.randrange(3 * TICKS, 15 * TICKS)
        t_file = t_accept + r.randrange(2 * TICKS, 6 * TICKS)
        t_ps = t_file + r.randrange(1 * TICKS, 3 * TICKS)
        gaps = [r.randrange(TICKS // 20, 2 * TICKS) for _ in range(len(cmdlets) + 1)]
        t_end = t_ps + sum(gaps) + r.randrange(2 * TICKS, 20 * TICKS)
        aa = []
        for tk, status in zip((t0, t_accept, t_end), statuses):
            op = RUN_COMMAND_ACTION.upper() if r.random() < 0.35 else RUN_COMMAND_ACTION
            aa.append((tk, dumps(aa_row(r, fmt_ticks(tk), op, status, auth, corr, admin.caller, ip, vm.sub, vm.rg,
                                        vm.resource_id))))
        out = {"AzureActivity": aa, "DeviceFileEvents": [], "DeviceEvents": []}
        if vm.device_name is None:
            return out
        folder = f"{RC_ROOT}{vm.rc_version}\\"
        rc_proc = f"c:\\packages\\plugins\\microsoft.cplat.core.runcommandwindows\\{vm.rc_version}\\bin\\runcommandextension.exe"
        pid = r.randrange(400, 12000)
        out["DeviceFileEvents"].append((t_file, dumps(dfe_row(
            r, fmt_ticks(t_file), vm.device_name, vm.device_id, script, folder + "Downloads\\", size,
            RUN_COMMAND_EXTENSION, rc_proc, pid=pid))))
        if r.random() < 0.3:
            ts = t_end - r.randrange(TICKS // 10, 2 * TICKS)
            out["DeviceFileEvents"].append((ts, dumps(dfe_row(
                r, fmt_ticks(ts), vm.device_name, vm.device_id, f"{vm.seq - 1}.status", folder + "Status\\",
                r.randrange(400, 900), RUN_COMMAND_EXTENSION, rc_proc, pid=pid, action="FileModified"))))
        cmd = ps_command_line(script)
        ps_pid = r.randrange(400, 12000)
        tk = t_ps
        for command, gap in zip([script] + cmdlets, gaps):
            out["DeviceEvents"].append((tk, dumps(de_row(
                r, fmt_ticks(tk), vm.device_name, vm.device_id, "PowerShellCommand", command_field(r, command),
                cmd, "powershell.exe", PS_PATH, ps_pid))))
            tk += gap
        return out


# ---------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------
class _Sink:
    """Buffered, time-ordered writer of one table (rows may arrive up to one chunk late)."""

    def __init__(self, path: str, gz: bool):
        self.raw = open(path, "wb")
        self.fh = (_gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=6)
                   if gz else self.raw)
        self.pending: list[tuple[int, str]] = []
        self.count = 0

    def add(self, rows: list[tuple[int, str]]) -> None:
        self.pending.extend(rows)

    def flush(self, before: int | None = None) -> None:
        """Write the pending rows earlier than *before* (all when None) in time order."""
        self.pending.sort(key=_first)
        if before is None:
            ready, self.pending = self.pending, []
        else:
            i = bisect.bisect_left(self.pending, before, key=_first)
            ready, self.pending = self.pending[:i], self.pending[i:]
        if ready:
            self.fh.write(("\n".join([line for _, line in ready]) + "\n").encode("utf-8"))
            self.count += len(ready)

    def close(self) -> None:
        self.flush()
        if self.fh is not self.raw:
            self.fh.close()
        self.raw.close()


def _first(pair):
    return pair[0]


def output_paths(out_dir: str, gz: bool = False) -> dict[str, str]:
    ext = ".jsonl.gz" if gz else ".jsonl"
    return {t: os.path.join(out_dir, t + ext) for t in TABLES}


# ---------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------
ROWS_PER_SESSION = 9.4  # about: 3 activity rows + (file event, status file 30%, 1 + ~4.5 PowerShell commands) on 94% of VMs


def generate(out_dir: str, days: int | None = None, start: str = "2024-03-01", seed: int = 0,
             mix: str = "realistic", rows: int | None = None, gzip: bool = False,
             sessions: int | None = None) -> dict[str, int]:
    """Write the three tables to *out_dir*; return the number of rows written per table."""
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}")
    days = DEFAULT_DAYS[mix] if days is None else days
    rows = DEFAULT_ROWS[mix] if rows is None else rows
    if days <= 0 or rows < 0:
        raise ValueError("days must be positive and rows non-negative")
    os.makedirs(out_dir, exist_ok=True)
    rnd = random.Random(seed)
    t_start = day_ticks(start)
    sinks = {t: _Sink(p, gzip) for t, p in output_paths(out_dir, gzip).items()}
    try:
        if mix == "edge":
            if days < 4:
                raise ValueError("the edge mix needs at least 4 days")
            tenant = Tenant(rnd, 16)
            _edge(tenant, rnd, t_start, days, rows, sinks)
        else:
            n_sessions = round(rows * RUN_COMMAND_SHARE[mix] / ROWS_PER_SESSION) if sessions is None else sessions
            n_noise = max(0, rows - round(n_sessions * ROWS_PER_SESSION))
            tenant = Tenant(rnd, int(min(600, max(12, (rows / days) ** 0.5 / 3))))
            _stream(tenant, rnd, t_start, days, n_noise, n_sessions, sinks)
    finally:
        for s in sinks.values():
            s.close()
    return {t: s.count for t, s in sinks.items()}


def _stream(tenant, rnd, t_start, days, n_noise, n_sessions, sinks) -> None:
    noise = NoiseFactory(tenant, rnd)
    factory = SessionFactory(tenant, rnd)
    hours = days * 24
    noise_per_hour = _allocate(n_noise, [NOISE_HOUR_WEIGHT[h % 24] for h in range(hours)])
    sessions_per_hour = _allocate(n_sessions, [ADMIN_HOUR_WEIGHT[h % 24] for h in range(hours)])
    t_end = t_start + days * DAY_TICKS
    latest_start = t_end - 5 * 60 * TICKS  # a session lasts at most ~2 minutes
    for h in range(hours):
        lo = t_start + h * HOUR_TICKS
        per_table = _allocate(noise_per_hour[h], [NOISE_SHARE[t] for t in TABLES])
        for table, n in zip(TABLES, per_table):
            sinks[table].add(noise.rows(table, n, lo))
        for _ in range(sessions_per_hour[h]):
            t0 = min(lo + rnd.randrange(HOUR_TICKS), latest_start)
            for table, rs in factory.session(t0).items():
                sinks[table].add(rs)
        for s in sinks.values():
            s.flush(before=lo + HOUR_TICKS)


# ---------------------------------------------------------------------------
# the edge mix
# ---------------------------------------------------------------------------
EDGE_QUIRKS = """\
Quirks of the rule's KQL that the edge mix exercises (script numbers 100+ name the scenarios; day 0 is
--start, every scenario is built so that it changes the alerts when handled wrongly):

 1. OperationNameValue in several cases in one session (=~ is case-insensitive): alert (script100).
 2. Authorization with `virtualmachines` only in lower case (has is case-insensitive): alert (script101).
 3. Authorization with virtualMachines only inside a longer term (`virtualMachinesV2`, not a `has`
    match): the session is dropped although its VM has file and PowerShell events (script102).
 4. Scope at resource-group level: VirtualMachineName is the RG name, which is also a device (script103).
 5. Scope with a trailing `/`: VirtualMachineName "" joins a file event with DeviceName "" (script104).
 6. Authorization that is not JSON: Scope null, VirtualMachineName "" joins a file event with no
    DeviceName key (script105).
 7. A session whose last row carries the same Authorization JSON with another key order: it splits
    into (Start, Accept) without success and (Success) alone, whose instant holds no file event: lost
    (script106).
 8. CallerIpAddress differs within a session: max is ordinal, "9.9.9.9" > "10.1.1.1" (script107).
 9. Status lists: [Started, Accepted, PartiallySucceeded] is dropped (script108), legacy Succeeded kept
    (script109), lower-case `succeeded` kept (script110), Failure dropped (script111).
10. Callers: two `@` (CallerName/UPNSuffix = first two parts, script112), a GUID service principal
    (script113), "" (script114), null (script115).
11. TimeGenerated written with a +02:00 offset, without a zone (UTC) and with 7 fractional digits
    (script116); on day 2 a Start row written `...T01:30:00+02:00` of day 3 is 23:30Z of day 2
    (script170).
12. String columns as other JSON types: CorrelationId a number, Authorization an object on all three
    rows (becomes its JSON text), InitiatingProcessAccountName an object, FileSize a numeric string
    (script117); FileSize a float (script118) or missing (script119).
13. Command lines: `-file` lower-case (no match, script121), `-File  script122.ps1` with two spaces (no
    match), `-File<TAB>script123.ps1` (match), `script1234567890.ps1` (10 digits, no match),
    `-File script125.ps1x` (extracts script125.ps1), and one file name with two command lines (one
    session, two groups, two rows with different hashes: script126).
14. AdditionalFields missing, null, a non-JSON string, an array, without Command, Command a number,
    and a JSON string holding the object: Command "" is kept and sorts first (script127).
15. Command equal to the script name in another case is kept, the exact name is discarded (script128).
16. Cmdlets with non-ASCII letters (ß stays ß under toupper, ǅ -> Ǆ, ı -> I, Ä) and duplicates
    (get-process / Get-Process) kept in the sorted list (script129).
17. VM names differing only in case never join: ARM EdgeCase01 vs device edgecase01.contoso.local
    (script130), ARM web-prod-04 vs device WEB-PROD-04.CONTOSO.LOCAL (script131).
18. The same script name on two VMs at the same time: one pooled cmdlet list, two rows with the same
    hash, no alert (script132); pooled with a failed session's cmdlets: one alert with both VMs'
    cmdlets (script133); pooled with PowerShell rows of another device hours earlier and of another
    ActionType (no ActionType/device/time filter on DeviceEvents, script134).
19. A second RunCommandExtension.exe file event (FileModified) for the same script doubles the row:
    hash count 2, no alert (script135); a status-file write (harmless, script136).
20. File events exactly at StartTime and at EndTime are kept (script160, script161), 1 µs before
    StartTime or after EndTime dropped (script162, script163) (day 1).
21. Midnight: a session from 23:59:40 to 00:00:10 splits across daily windows and is lost in both
    (found with a 2-day period, script140); a session ending at 23:59:59.999999 with its file event
    at that instant (script141); a session starting at 00:00:00 exactly with its file event then
    (script142, day 1).
22. The same script (name, cmdlets, size) on day 0 and day 1: unique in each daily window, twice in a
    2-day window (script150).
23. Common admin scripts under different script numbers on several VMs every day: same hash, no alert;
    rare one-offs on days 2 and 3 alert.
"""


def _edge(tenant: Tenant, rnd: random.Random, t0: int, days: int, n_noise: int, sinks) -> None:
    E = _EdgeBuilder(tenant, rnd, t0)
    E.build(days)
    noise = NoiseFactory(tenant, rnd)
    for h, n_hour in enumerate(_allocate(n_noise, [NOISE_HOUR_WEIGHT[h % 24] for h in range(days * 24)])):
        for table, n in zip(TABLES, _allocate(n_hour, [NOISE_SHARE[t] for t in TABLES])):
            sinks[table].add(noise.rows(table, n, t0 + h * HOUR_TICKS))
    for table in TABLES:
        sinks[table].add(E.rows[table])


class _EdgeBuilder:
    """Hand-placed sessions; each helper call adds the rows of one scenario."""

    def __init__(self, tenant: Tenant, rnd: random.Random, t0: int):
        self.t, self.r, self.t0 = tenant, rnd, t0
        self.rows = {t: [] for t in TABLES}
        self.sub = tenant.subs[0]
        self.admin = tenant.admins[0]
        self.devices: dict[str, str] = {}

    # --- helpers -------------------------------------------------------------
    def at(self, day: int, hms: str) -> int:
        """Ticks of day *day* at ``HH:MM:SS[.fffffff]``."""
        h, m, s = hms.split(":")
        sec, _, frac = s.partition(".")
        return (self.t0 + day * DAY_TICKS + (int(h) * 3600 + int(m) * 60 + int(sec)) * TICKS
                + int(frac.ljust(7, "0")))

    def device_id(self, name) -> str:
        key = str(name).lower().split(".")[0]
        if key not in self.devices:
            self.devices[key] = _hex(self.r, 40)
        return self.devices[key]

    def add(self, table: str, tk: int, row: dict) -> None:
        self.rows[table].append((tk, dumps(row)))

    def scope(self, vm: str, rg: str = "rg-edge") -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"

    def auth(self, scope: str, action: str = RUN_COMMAND_ACTION) -> str:
        return authorization(self.r, action, scope, self.admin, self.sub)

    def activity(self, times, *, scope: str, auths=None, statuses=("Start", "Accept", "Success"),
                 ops=(RUN_COMMAND_ACTION,) * 3, caller="alice@contoso.com", ips=("203.0.113.24",) * 3,
                 corr=None, time_texts=(None, None, None)) -> None:
        auth = self.auth(scope)
        auths = auths or (auth, auth, auth)
        corr = _guid(self.r) if corr is None else corr
        for i, tk in enumerate(times):
            row = aa_row(self.r, time_texts[i] or fmt_ticks(tk), ops[i], statuses[i], auths[i], corr,
                         caller, ips[i], self.sub, "rg-edge", scope)
            self.add("AzureActivity", tk, row)

    def file(self, tk: int, device, script: str, size=1024, action="FileCreated", proc=RUN_COMMAND_EXTENSION,
             time_text=None, folder=None, **over) -> None:
        folder = folder or f"{RC_ROOT}1.1.8\\Downloads\\"
        row = dfe_row(self.r, time_text or fmt_ticks(tk), device, self.device_id(device), script, folder,
                      size, proc, "c:\\packages\\plugins\\microsoft.cplat.core.runcommandwindows\\1.1.8\\bin\\"
                      "runcommandextension.exe", action=action, pid=4242, **over)
        if size is _MISSING:
            del row["FileSize"]
        self.add("DeviceFileEvents", tk, row)

    def ps(self, tk: int, device, script: str, commands, cmdline=None, step=TICKS // 2, action="PowerShellCommand",
           first=True, raw_fields=False) -> int:
        """PowerShell rows: the script name first (when *first*), then one per command (or, with
        *raw_fields*, one per given AdditionalFields value; _MISSING drops the key); returns the next tick."""
        cmdline = ps_command_line(script) if cmdline is None else cmdline
        fields_list = ([command_field(self.r, script)] if first else []) + (
            list(commands) if raw_fields else [command_field(self.r, c) for c in commands])
        for fields in fields_list:
            self.add("DeviceEvents", tk, de_row(self.r, fmt_ticks(tk), device, self.device_id(device), action,
                                                fields, cmdline, "powershell.exe", PS_PATH, 5150))
            tk += step
        return tk

    def session(self, day, hms, vm, script, commands, *, device=None, size=1024, file_offset=5 * TICKS,
                duration=40 * TICKS, scope=None, **activity) -> tuple[int, int]:
        """A complete, well-formed session (override parts with the keyword arguments)."""
        s = self.at(day, hms)
        e = s + duration
        self.activity((s, s + TICKS, e), scope=scope or self.scope(vm), **activity)
        device = vm + ".contoso.local" if device is None else device
        self.file(s + file_offset, device, script, size)
        self.ps(s + file_offset + TICKS, device, script, commands)
        return s, e

    # --- the scenarios ---------------------------------------------------------
    def build(self, days: int) -> None:
        up = RUN_COMMAND_ACTION.upper()
        # 1 case variants of OperationNameValue
        self.session(0, "10:00:00.1000000", "web-prod-01", "script100.ps1", ["Get-Service", "Stop-Service", "Start-Service"],
                     ops=(up, RUN_COMMAND_ACTION.lower(), RUN_COMMAND_ACTION))
        # 2 has is case-insensitive
        sc = f"/subscriptions/{self.sub}/resourcegroups/rg-edge/providers/microsoft.compute/virtualmachines/vm-lower-01"
        a = self.auth(sc, RUN_COMMAND_ACTION.lower())
        self.session(0, "10:10:00", "vm-lower-01", "script101.ps1", ["Get-Volume", "Optimize-Volume"], scope=sc,
                     auths=(a, a, a))
        # 3 virtualMachines only inside a longer term
        sc = f"/subscriptions/{self.sub}/resourceGroups/rg-classic/providers/Microsoft.ClassicCompute/virtualMachinesV2/classic-vm-01"
        a = self.auth(sc, "Microsoft.ClassicCompute/virtualMachinesV2/runCommand/action")
        self.session(0, "10:20:00", "classic-vm-01", "script102.ps1", ["Get-Date", "Get-Culture"], scope=sc, auths=(a, a, a))
        # 4 resource-group scope
        sc = f"/subscriptions/{self.sub}/resourceGroups/app-dev-02"
        a = self.auth(sc)
        self.session(0, "10:30:00", "app-dev-02", "script103.ps1", ["Get-NetAdapter", "Restart-NetAdapter"], scope=sc, auths=(a, a, a))
        # 5 trailing slash -> VM "" joins DeviceName ""
        self.session(0, "10:40:00", "", "script104.ps1", ["Get-TimeZone", "Set-TimeZone"],
                     scope=self.scope("vm-trail-01") + "/", device="")
        # 6 non-JSON Authorization -> Scope null, VM "" joins a missing DeviceName
        a = f"{RUN_COMMAND_ACTION} on virtualMachines/vm-notjson-01 by alice@contoso.com"
        s = self.at(0, "10:50:00")
        self.activity((s, s + TICKS, s + 40 * TICKS), scope=self.scope("vm-notjson-01"), auths=(a, a, a))
        self.file(s + 5 * TICKS, None, "script105.ps1")
        self.ps(s + 6 * TICKS, None, "script105.ps1", ["Get-Printer", "Remove-PrintJob"])
        # 7 key order differs on the last row -> split and lost
        sc = self.scope("web-prod-03")
        a1 = dumps({"action": RUN_COMMAND_ACTION, "scope": sc})
        a2 = dumps({"scope": sc, "action": RUN_COMMAND_ACTION})
        self.session(0, "11:00:00", "web-prod-03", "script106.ps1", ["Get-Acl", "Set-Acl"], auths=(a1, a1, a2))
        # 8 ordinal max of CallerIpAddress
        self.session(0, "11:10:00", "web-prod-01", "script107.ps1", ["Get-SmbShare", "Grant-SmbShareAccess"],
                     ips=("10.1.1.1", "9.9.9.9", "10.1.1.1"))
        # 9 status lists
        self.session(0, "11:20:00", "web-prod-01", "script108.ps1", ["Get-Disk", "Initialize-Disk"],
                     statuses=("Started", "Accepted", "PartiallySucceeded"))
        self.session(0, "11:30:00", "web-prod-01", "script109.ps1", ["Get-Disk", "New-Partition"],
                     statuses=("Started", "Accepted", "Succeeded"))
        self.session(0, "11:40:00", "web-prod-01", "script110.ps1", ["Get-Disk", "Format-Volume"],
                     statuses=("Start", "Accept", "succeeded"))
        self.session(0, "11:50:00", "web-prod-01", "script111.ps1", ["Get-Disk", "Clear-Disk"],
                     statuses=("Start", "Accept", "Failure"))
        # 10 callers
        self.session(0, "12:00:00", "web-prod-02", "script112.ps1", ["Get-LocalUser"], caller="ops@admin@contoso.com")
        self.session(0, "12:10:00", "web-prod-02", "script113.ps1", ["Get-LocalGroup"], caller=self.t.admins[4].caller,
                     ips=("20.61.14.203",) * 3)
        self.session(0, "12:20:00", "web-prod-02", "script114.ps1", ["Get-LocalGroupMember"], caller="")
        self.session(0, "12:30:00", "web-prod-02", "script115.ps1", ["Get-LocalUser", "Disable-LocalUser"], caller=None,
                     ips=("", "", ""))
        # 11 datetime spellings: +02:00, no zone, 7 digits
        s = self.at(0, "13:00:00")
        d0 = fmt_ticks(self.t0)[:10]
        self.activity((s, s + 15 * TICKS, s + 301234500), scope=self.scope("web-prod-02"),
                      time_texts=(f"{d0}T15:00:00+02:00", f"{d0}T13:00:01.5000000", None))
        self.file(s + 5 * TICKS, "web-prod-02.contoso.local", "script116.ps1", time_text=f"{d0}T13:00:05")
        self.ps(s + 6 * TICKS, "web-prod-02.contoso.local", "script116.ps1", ["Get-WindowsUpdateLog"])
        # 12 other JSON types in string / long columns
        sc = self.scope("web-prod-05")
        obj = {"action": RUN_COMMAND_ACTION, "scope": sc}
        s = self.at(0, "13:10:00")
        self.activity((s, s + TICKS, s + 40 * TICKS), scope=sc, auths=(obj, obj, obj), corr=424242)
        self.file(s + 5 * TICKS, "web-prod-05.contoso.local", "script117.ps1", size="2048",
                  InitiatingProcessAccountName={"name": "system"})
        self.ps(s + 6 * TICKS, "web-prod-05.contoso.local", "script117.ps1", ["Get-Item", "Rename-Item"])
        s = self.at(0, "13:20:00")
        self.activity((s, s + TICKS, s + 40 * TICKS), scope=self.scope("web-prod-05"))
        self.file(s + 5 * TICKS, "web-prod-05.contoso.local", "script118.ps1", size=1536.0)
        self.ps(s + 6 * TICKS, "web-prod-05.contoso.local", "script118.ps1", ["Get-Item", "Copy-Item"])
        s = self.at(0, "13:30:00")
        self.activity((s, s + TICKS, s + 40 * TICKS), scope=self.scope("web-prod-05"))
        self.file(s + 5 * TICKS, "web-prod-05.contoso.local", "script119.ps1", size=_MISSING)
        self.ps(s + 6 * TICKS, "web-prod-05.contoso.local", "script119.ps1", ["Get-Item", "Move-Item"])
        # 13 command lines
        dev = "web-prod-06.contoso.local"
        for i, (hms, script, cmdline) in enumerate([
                ("14:00:00", "script121.ps1", "powershell  -ExecutionPolicy Unrestricted -file script121.ps1"),
                ("14:10:00", "script122.ps1", "powershell  -ExecutionPolicy Unrestricted -File  script122.ps1"),
                ("14:20:00", "script123.ps1", "powershell  -ExecutionPolicy Unrestricted -File\tscript123.ps1"),
                ("14:30:00", "script1234567890.ps1", "powershell  -ExecutionPolicy Unrestricted -File script1234567890.ps1"),
                ("14:40:00", "script125.ps1", "powershell  -ExecutionPolicy Unrestricted -File script125.ps1x")]):
            s = self.at(0, hms)
            self.activity((s, s + TICKS, s + 40 * TICKS), scope=self.scope("web-prod-06"))
            self.file(s + 5 * TICKS, dev, script)
            self.ps(s + 6 * TICKS, dev, script, [f"Get-Thing{i}", "Out-Null"], cmdline=cmdline)
        s, _ = self.session(0, "14:50:00", "web-prod-06", "script126.ps1", ["Get-Clipboard"])
        self.ps(s + 20 * TICKS, dev, "script126.ps1", ["Set-Clipboard"],
                cmdline="powershell -NoProfile -File script126.ps1")
        # 14 AdditionalFields shapes
        s = self.at(0, "15:00:00")
        self.activity((s, s + TICKS, s + 40 * TICKS), scope=self.scope("web-prod-06"))
        self.file(s + 5 * TICKS, dev, "script127.ps1")
        self.ps(s + 6 * TICKS, dev, "script127.ps1",
                [{"Command": "script127.ps1"}, {"Command": "Get-Date"}, _MISSING, None, "not json at all", [1, 2],
                 {"Other": "x"}, {"Command": 42}, dumps({"Command": "Get-Item"}), {"Command": None}],
                first=False, raw_fields=True)
        # 15 the script name in another case is kept
        self.session(0, "15:10:00", "web-prod-06", "script128.ps1", ["SCRIPT128.PS1", "Script128.ps1", "Get-Host"])
        # 16 non-ASCII cmdlets and duplicates
        self.session(0, "15:20:00", "web-prod-06", "script129.ps1",
                     ["Get-Straße", "ǅemo-Thing", "Get-Itemı", "get-process", "Get-Process", "Ärger-Cmdlet", "Get-Process"])
        # 17 case-only VM name differences
        self.session(0, "16:00:00", "EdgeCase01", "script130.ps1", ["Get-Random"], device="edgecase01.contoso.local")
        self.session(0, "16:10:00", "web-prod-04", "script131.ps1", ["Get-Random", "Get-Unique"],
                     device="WEB-PROD-04.CONTOSO.LOCAL")
        # 18 pooling by script name (+ command line) across VMs, sessions, times and action types
        self.session(0, "16:30:00", "web-prod-07", "script132.ps1", ["Get-Counter"])
        self.session(0, "16:30:00", "web-prod-08", "script132.ps1", ["Get-Counter", "Export-Counter"])
        self.session(0, "16:40:00", "web-prod-07", "script133.ps1", ["Get-Job"])
        self.session(0, "16:40:00", "web-prod-08", "script133.ps1", ["Receive-Job", "Remove-Job"],
                     statuses=("Start", "Accept", "Failure"))
        self.session(0, "16:50:00", "web-prod-07", "script134.ps1", ["Get-Module"])
        ws = "LAPTOP-EDGE01.contoso.local"
        self.ps(self.at(0, "02:00:00"), ws, "script134.ps1", ["Find-Module"], first=False)
        self.ps(self.at(0, "16:50:20"), "web-prod-07.contoso.local", "script134.ps1", ["Invoke-WmiMethod"],
                first=False, action="ProcessCreatedUsingWmiQuery")
        # 19 extra RunCommandExtension.exe file events
        s, e = self.session(0, "17:00:00", "web-prod-07", "script135.ps1", ["Get-ScheduledTask", "Disable-ScheduledTask"])
        self.file(s + 10 * TICKS, "web-prod-07.contoso.local", "script135.ps1", action="FileModified")
        s, e = self.session(0, "17:10:00", "web-prod-07", "script136.ps1", ["Get-ScheduledTask", "Enable-ScheduledTask"])
        self.file(e - TICKS, "web-prod-07.contoso.local", "136.status", size=612, action="FileModified",
                  folder=f"{RC_ROOT}1.1.8\\Status\\")
        # 21 midnight day 0 -> day 1
        s = self.at(0, "23:59:40")
        self.activity((s, s + TICKS, self.at(1, "00:00:10")), scope=self.scope("web-prod-08"))
        self.file(s + 5 * TICKS, "web-prod-08.contoso.local", "script140.ps1")
        self.ps(s + 6 * TICKS, "web-prod-08.contoso.local", "script140.ps1", ["Get-Uptime"], step=TICKS)
        s = self.at(0, "23:59:20")
        e = self.at(0, "23:59:59.9999990")
        self.activity((s, s + TICKS, e), scope=self.scope("web-prod-09"))
        self.file(e, "web-prod-09.contoso.local", "script141.ps1")
        self.ps(s + 2 * TICKS, "web-prod-09.contoso.local", "script141.ps1", ["Get-Uptime", "Get-Date"])
        s = self.at(1, "00:00:00")
        self.activity((s, s + TICKS, s + 30 * TICKS), scope=self.scope("web-prod-09"))
        self.file(s, "web-prod-09.contoso.local", "script142.ps1")
        self.ps(s + 2 * TICKS, "web-prod-09.contoso.local", "script142.ps1", ["Get-Uptime", "Restart-Computer"])
        # 22 the same script on day 0 and day 1
        for day in (0, 1):
            self.session(day, "09:00:00", "web-prod-10", "script150.ps1", ["Get-Certificate", "Remove-Item"], size=3000)
        # 20 file events at the session bounds (day 1)
        s = self.at(1, "10:00:00.1234560")
        e = self.at(1, "10:00:40.6543210")
        self.activity((s, self.at(1, "10:00:01"), e), scope=self.scope("web-prod-11"))
        dev = "web-prod-11.contoso.local"
        for script, tk in (("script160.ps1", s), ("script161.ps1", e), ("script162.ps1", s - US_TICKS),
                           ("script163.ps1", e + US_TICKS)):
            self.file(tk, dev, script)
            self.ps(s + 2 * TICKS, dev, script, [f"Get-Bound{script[6:9]}"])
        # 11b a +02:00 local time on the next calendar day that is still day 2 in UTC
        s = self.at(2, "23:30:00")
        d3 = fmt_ticks(self.t0 + 3 * DAY_TICKS)[:10]
        self.activity((s, s + TICKS, s + 40 * TICKS), scope=self.scope("web-prod-12"),
                      time_texts=(f"{d3}T01:30:00.0000000+02:00", None, None))
        self.file(s + 5 * TICKS, "web-prod-12.contoso.local", "script170.ps1")
        self.ps(s + 6 * TICKS, "web-prod-12.contoso.local", "script170.ps1", ["Get-Tpm", "Clear-Tpm"])
        # 23 common scripts every day, one-offs on days 2 and 3 (and later)
        vms = ["web-prod-01", "app-dev-02", "web-prod-07", "web-prod-10", "WebProd02"]
        for day in range(days):
            for k in range(4):
                cmdlets, size = COMMON_SCRIPTS[k % 2]
                vm = vms[(day + k) % len(vms)]
                self.session(day, f"{6 + k}:15:00", vm, f"script{k + 3}.ps1", cmdlets, size=size,
                             caller=self.t.admins[4].caller, ips=("52.174.33.9",) * 3)
            if day >= 2:
                cmdlets, size = rare_script(self.r)
                self.session(day, "19:45:00", vms[day % len(vms)], f"script{180 + day}.ps1", cmdlets, size=size,
                             caller="bob@contoso.com", ips=("198.51.100.8", "198.51.100.8", "10.20.4.17"))


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.generate", description=__doc__.split("\n\n")[0],
                                epilog=EDGE_QUIRKS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--days", type=int, default=None,
                   help="days of data (default: 7, edge: 4; edge needs at least 4)")
    p.add_argument("--start", default="2024-03-01", help="first day, YYYY-MM-DD (UTC midnight)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--mix", choices=MIXES, default="realistic",
                   help="realistic: ~1%% Run Command rows; dense: ~20%%; edge: every quirk of the rule")
    p.add_argument("--rows", type=int, default=None,
                   help="approximate total rows over the three tables (default: 50000; edge: background "
                        "rows added to the hand-built scenarios, default 240)")
    p.add_argument("--sessions", type=int, default=None,
                   help="number of Run Command sessions (realistic/dense; default: from --rows and --mix)")
    p.add_argument("--gzip", action="store_true", help="write .jsonl.gz")
    a = p.parse_args(argv)
    try:
        counts = generate(a.out, days=a.days, start=a.start, seed=a.seed, mix=a.mix, rows=a.rows,
                          gzip=a.gzip, sessions=a.sessions)
    except ValueError as e:
        p.error(str(e))
    print(json.dumps(counts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
