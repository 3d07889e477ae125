"""Azure Activity Log records exported by a diagnostic setting -> AzureActivity rows.

A subscription's diagnostic setting sends the Activity Log to a storage account
(``insights-activity-logs/resourceId=/SUBSCRIPTIONS/<id>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json``, one
record per line) or to an event hub (``{"records": [...]}`` per message) in the camelCase "resource
log" schema. Azure Monitor fills the AzureActivity table from the same events; this module maps
a record to the columns the way the Activity Log schema documents it (see docs/formats.md for the
mapping table and its sources):

* ``time`` -> TimeGenerated; ``operationName`` -> OperationNameValue; ``resultType`` ->
  ActivityStatusValue; ``resultSignature`` -> ActivitySubstatusValue; ``callerIpAddress`` ->
  CallerIpAddress; ``correlationId`` -> CorrelationId; ``category`` -> CategoryValue; ``level`` ->
  Level; ``resourceId`` -> ResourceId (and _ResourceId);
* ``identity.authorization`` (an object) -> Authorization, as its compact JSON text with the key
  order of the record (the typing of a string column writes a JSON object that way), and as
  Authorization_d; ``identity.claims`` -> Claims_d; ``properties`` -> Properties_d;
* Caller: a top-level ``caller`` when present and not empty, else the UPN claim, else the
  object-id claim (what the Activity Log REST API documents: "the UPN claim or SPN claim based on
  availability");
* EventDataId: a top-level ``eventDataId``, else ``properties.eventDataId``.
"""

UPN_CLAIM = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn'
OBJECT_ID_CLAIM = 'http://schemas.microsoft.com/identity/claims/objectidentifier'


def _present(value):
    return value is not None and value != ''


def activity_caller(record, claims):
    """The Caller column of a diagnostic-settings record."""
    for value in (record.get('caller'), claims.get(UPN_CLAIM), claims.get(OBJECT_ID_CLAIM)):
        if _present(value):
            return value
    return record.get('caller')


def activity_row(record):
    """The AzureActivity row (Log Analytics column names, JSON values) of one camelCase record."""
    identity = record.get('identity')
    identity = identity if isinstance(identity, dict) else {}
    claims = identity.get('claims')
    claims = claims if isinstance(claims, dict) else {}
    properties = record.get('properties')
    properties = properties if isinstance(properties, dict) else {}
    event_data_id = record.get('eventDataId')
    if not _present(event_data_id):
        event_data_id = properties.get('eventDataId')
    row = {
        'TimeGenerated': record.get('time'),
        'OperationNameValue': record.get('operationName'),
        'ActivityStatusValue': record.get('resultType'),
        'ActivitySubstatusValue': record.get('resultSignature'),
        'CallerIpAddress': record.get('callerIpAddress'),
        'CorrelationId': record.get('correlationId'),
        'Authorization': identity.get('authorization'),
        'Authorization_d': identity.get('authorization'),
        'Claims_d': claims or None,
        'Caller': activity_caller(record, claims),
        'EventDataId': event_data_id,
        'CategoryValue': record.get('category'),
        'Level': record.get('level'),
        'ResourceId': record.get('resourceId'),
        '_ResourceId': record.get('resourceId'),
        'Properties_d': properties or None,
    }
    return {key: value for key, value in row.items() if value is not None}
