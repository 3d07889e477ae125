"""Event Hubs Capture files for the tests: what Capture writes, with the bodies given."""

import fastavro

# The EventData schema of Event Hubs Capture, as Microsoft documents it.
EVENT_DATA_SCHEMA = {
    'type': 'record', 'name': 'EventData', 'namespace': 'Microsoft.ServiceBus.Messaging',
    'fields': [
        {'name': 'SequenceNumber', 'type': 'long'},
        {'name': 'Offset', 'type': 'string'},
        {'name': 'EnqueuedTimeUtc', 'type': 'string'},
        {'name': 'SystemProperties', 'type': {'type': 'map', 'values': ['long', 'double', 'string', 'bytes']}},
        {'name': 'Properties', 'type': {'type': 'map', 'values': ['long', 'double', 'string', 'bytes', 'null']}},
        {'name': 'Body', 'type': ['null', 'bytes']},
    ],
}


def write_capture(path_or_file, bodies, codec='null', sync_interval=16000, start_sequence=0):
    """Writes an Event Hubs Capture Avro file of the given bodies (bytes, or None for an event without one)."""
    def events():
        for number, body in enumerate(bodies, start_sequence):
            yield {'SequenceNumber': number, 'Offset': str(number * 1024),
                   'EnqueuedTimeUtc': '3/1/2024 10:00:00 AM', 'SystemProperties': {},
                   'Properties': {}, 'Body': body}
    schema = fastavro.parse_schema(EVENT_DATA_SCHEMA)
    if isinstance(path_or_file, str):
        with open(path_or_file, 'wb') as handle:
            fastavro.writer(handle, schema, events(), codec=codec, sync_interval=sync_interval)
    else:
        fastavro.writer(path_or_file, schema, events(), codec=codec, sync_interval=sync_interval)
