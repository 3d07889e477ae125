"""Unbounded sources: Pub/Sub messages of the three tables, in any JSON shape of the batch exports.

Each message is one JSON document: a Log Analytics row, a ``{"records": [...]}`` envelope (as data
export and diagnostic settings send them to Event Hubs), an Activity Log record or a Defender
streaming record; the rows are decoded and typed exactly as in batch (`transforms.read.formats.records`,
`transforms.read.ingest`) and timestamped with their TimeGenerated, which drives the watermark.
"""

import apache_beam as beam
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from transforms.read import dead_letter as reasons
from transforms.read.dead_letter import DEAD_LETTER, ROWS
from transforms.read.formats.records import Undecodable, decode_object, record_rows
from transforms.read.ingest import typed_row


class DecodeMessages(beam.DoFn):
    """Message bytes -> timestamped (table, typed row); bad messages and records to the dead letter."""

    def __init__(self, table, source):
        self._table = table
        self._source = source

    def process(self, message):
        record, reason = decode_object(message)
        if reason:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(
                self._table, self._source, {}, reason, message))
            return
        for item in record_rows(record, self._table):
            if isinstance(item, Undecodable):
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(
                    self._table, self._source, item.position, item.reason, item.raw))
                continue
            row = typed_row(self._table, item.row)
            if row['TimeGenerated'] is None:
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, reasons.dead_letter(
                    self._table, self._source, item.position, reasons.NO_TIME, message))
                continue
            yield window.TimestampedValue((self._table, row), Timestamp(micros=row['TimeGenerated']))


class ReadTableStream(beam.PTransform):
    """A Pub/Sub subscription of one table -> timestamped (table, row) pairs and dead letters.

    Pub/Sub needs the ``gcp`` extra (``pip install .[gcp]``). Event Hubs users can read through its
    Kafka endpoint with Beam's ``apache_beam.io.kafka.ReadFromKafka`` instead (a cross-language
    transform: it needs Java on the workers); see the README.
    """

    def __init__(self, table, subscription):
        super().__init__()
        self._table = table
        self._subscription = subscription

    def expand(self, pbegin):
        messages = pbegin | 'ReadPubSub' >> beam.io.ReadFromPubSub(subscription=self._subscription)
        return messages | 'DecodeMessages' >> beam.ParDo(
            DecodeMessages(self._table, self._subscription)).with_outputs(DEAD_LETTER, main=ROWS)
