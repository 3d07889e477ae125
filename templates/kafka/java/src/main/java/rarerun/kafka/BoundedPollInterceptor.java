package rarerun.kafka;

import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerInterceptor;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Ends each of KafkaIO's reads of a partition after a bounded time, so that the watermark can advance
 * on a runner that never asks a splittable DoFn to checkpoint.
 *
 * <p>KafkaIO's splittable read ({@code ReadFromKafkaDoFn}) polls one partition until a poll comes back
 * empty; only then does it checkpoint itself, and only at a checkpoint does its watermark reach the
 * runner. Dataflow splits the read from outside; Flink's portable runner does not (apache/beam#20979),
 * so a partition that keeps receiving holds the watermark, and every event-time window, where it was.
 *
 * <p>The read creates one consumer for each of its runs; this interceptor, configured on that
 * consumer, passes records through for {@value #READ_MILLIS} milliseconds after the first records,
 * then makes every poll come back empty. The read then checkpoints at the last record it claimed and
 * reports its watermark; the records held back were not claimed, so its next run reads them again from
 * the checkpointed offset. Nothing is lost or read twice downstream; the cost is the consumer's
 * polling timeout once per run.
 */
public final class BoundedPollInterceptor<K, V> implements ConsumerInterceptor<K, V> {

  /** Consumer property: how long (milliseconds) one run of the read passes records on. */
  public static final String READ_MILLIS = "rarerun.read.millis";

  private long readNanos = 5_000_000_000L;
  private long firstRecordsAt = -1;

  @Override
  public void configure(Map<String, ?> configs) {
    Object value = configs.get(READ_MILLIS);
    if (value != null) {
      readNanos = Long.parseLong(value.toString().trim()) * 1_000_000L;
    }
  }

  @Override
  public ConsumerRecords<K, V> onConsume(ConsumerRecords<K, V> records) {
    long now = System.nanoTime();
    if (firstRecordsAt < 0) {
      firstRecordsAt = now;
    }
    return now - firstRecordsAt < readNanos ? records : ConsumerRecords.empty();
  }

  @Override
  public void onCommit(Map<TopicPartition, OffsetAndMetadata> offsets) {}

  @Override
  public void close() {}
}
