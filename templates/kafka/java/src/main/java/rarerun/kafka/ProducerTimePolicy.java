package rarerun.kafka;

import java.util.Optional;
import org.apache.beam.sdk.io.kafka.KafkaRecord;
import org.apache.beam.sdk.io.kafka.TimestampPolicy;
import org.apache.beam.sdk.io.kafka.TimestampPolicyFactory;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.kafka.common.TopicPartition;
import org.joda.time.Instant;

/**
 * A partition's watermark is the largest message timestamp it has read, and nothing else.
 *
 * <p>KafkaIO's own {@code CreateTime} policy also moves an idle partition's watermark to the wall
 * clock: right when the message timestamps are the broker's enqueue times (Event Hubs), wrong when a
 * producer sets them to the events' own times, as a replay of exported logs does at N times real
 * speed. There the wall clock runs years ahead of the events, and the first moment a partition has
 * been read to its end would close every window and make the rest of the replay late. With this
 * policy a partition that receives nothing holds the watermark back until it receives a later
 * message (the replay ends with one on every partition).
 */
public final class ProducerTimePolicy extends TimestampPolicy<byte[], byte[]> {

  private Instant largest;

  ProducerTimePolicy(Optional<Instant> previousWatermark) {
    largest = previousWatermark.orElse(BoundedWindow.TIMESTAMP_MIN_VALUE);
  }

  @Override
  public Instant getTimestampForRecord(PartitionContext context, KafkaRecord<byte[], byte[]> record) {
    Instant timestamp = new Instant(record.getTimestamp());
    if (timestamp.isAfter(largest)) {
      largest = timestamp;
    }
    return timestamp;
  }

  @Override
  public Instant getWatermark(PartitionContext context) {
    return largest;
  }

  /** The factory KafkaIO is given: one policy per partition, resumed from its last watermark. */
  public static final class Factory implements TimestampPolicyFactory<byte[], byte[]> {
    private static final long serialVersionUID = 1L;

    @Override
    public TimestampPolicy<byte[], byte[]> createTimestampPolicy(
        TopicPartition partition, Optional<Instant> previousWatermark) {
      return new ProducerTimePolicy(previousWatermark);
    }
  }
}
