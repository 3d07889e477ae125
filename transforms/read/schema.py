"""The three Log Analytics tables the rule reads: the columns the detection uses and their Kusto types.

Types are those of the tables' reference pages (Azure Monitor Logs table reference: AzureActivity,
DeviceFileEvents, DeviceEvents). Only the columns that either semantics reads are typed; every other
column of an export is ignored.
"""

AZURE_ACTIVITY = 'AzureActivity'
DEVICE_FILE_EVENTS = 'DeviceFileEvents'
DEVICE_EVENTS = 'DeviceEvents'
TABLES = (AZURE_ACTIVITY, DEVICE_FILE_EVENTS, DEVICE_EVENTS)

STRING, DATETIME, LONG, DYNAMIC = 'string', 'datetime', 'long', 'dynamic'

COLUMNS = {
    AZURE_ACTIVITY: {
        'TimeGenerated': DATETIME,
        'OperationNameValue': STRING,
        'Authorization': STRING,
        'CorrelationId': STRING,
        'Caller': STRING,
        'CallerIpAddress': STRING,
        'ActivityStatusValue': STRING,
        'EventDataId': STRING,
    },
    DEVICE_FILE_EVENTS: {
        'TimeGenerated': DATETIME,
        'DeviceName': STRING,
        'DeviceId': STRING,
        'ReportId': LONG,
        'Timestamp': DATETIME,
        'ActionType': STRING,
        'InitiatingProcessFileName': STRING,
        'FileName': STRING,
        'FileSize': LONG,
        'InitiatingProcessAccountName': STRING,
        'InitiatingProcessAccountDomain': STRING,
        'InitiatingProcessFolderPath': STRING,
        'InitiatingProcessId': LONG,
    },
    DEVICE_EVENTS: {
        'TimeGenerated': DATETIME,
        'DeviceName': STRING,
        'DeviceId': STRING,
        'ReportId': LONG,
        'Timestamp': DATETIME,
        'ActionType': STRING,
        'InitiatingProcessCommandLine': STRING,
        'InitiatingProcessId': LONG,
        'InitiatingProcessCreationTime': DATETIME,
        'AdditionalFields': DYNAMIC,
    },
}


# The columns that say a record is a row of its table: a record with none of them (another table's
# export given for this one) is a dead letter of its own, not a row of empty columns.
KEY_COLUMNS = {
    AZURE_ACTIVITY: ('OperationNameValue', 'CorrelationId', 'Caller', 'ActivityStatusValue', 'Authorization'),
    DEVICE_FILE_EVENTS: ('DeviceName', 'ActionType', 'FileName', 'InitiatingProcessFileName'),
    DEVICE_EVENTS: ('DeviceName', 'ActionType', 'InitiatingProcessCommandLine', 'AdditionalFields'),
}
