package rarerun.kafka;

import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.io.kafka.KafkaIO;
import org.apache.beam.sdk.io.kafka.KafkaRecord;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.SimpleFunction;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A cross-language Kafka read whose watermark follows the message timestamps only ({@link
 * ProducerTimePolicy}), for the Python SDK: URN {@value #URN}, configured with {@code topics} (a list
 * of strings) and {@code consumer_config} (a map of strings). Its rows carry each message's topic,
 * partition, offset, timestamp (milliseconds), key and value, the fields of Beam's own
 * {@code ReadFromKafka} with metadata that the detection reads.
 */
public final class ProducerTimeRead implements ExternalTransformRegistrar {

  public static final String URN = "rarerun:kafka:read_producer_time:v1";

  static final Schema RECORD =
      Schema.builder()
          .addStringField("topic")
          .addInt32Field("partition")
          .addInt64Field("offset")
          .addInt64Field("timestamp")
          .addNullableField("key", FieldType.BYTES)
          .addNullableField("value", FieldType.BYTES)
          .build();

  @Override
  public Map<String, ExternalTransformBuilder<?, ?, ?>> knownBuilderInstances() {
    return Collections.singletonMap(URN, new Builder());
  }

  /** The expansion request's configuration (its fields by their setters' names). */
  public static final class Configuration {
    private List<String> topics = Collections.emptyList();
    private Map<String, String> consumerConfig = Collections.emptyMap();

    public void setTopics(List<String> topics) {
      this.topics = topics;
    }

    public void setConsumerConfig(Map<String, String> consumerConfig) {
      this.consumerConfig = consumerConfig;
    }
  }

  /** Builds the read from a configuration. */
  public static final class Builder
      implements ExternalTransformBuilder<Configuration, PBegin, PCollection<Row>> {
    @Override
    public PTransform<PBegin, PCollection<Row>> buildExternal(Configuration configuration) {
      return new Read(configuration.topics, new HashMap<>(configuration.consumerConfig));
    }
  }

  /** KafkaIO's read of byte keys and values with {@link ProducerTimePolicy}, as rows. */
  static final class Read extends PTransform<PBegin, PCollection<Row>> {
    private static final long serialVersionUID = 1L;
    private final List<String> topics;
    private final HashMap<String, Object> consumerConfig;

    Read(List<String> topics, Map<String, String> consumerConfig) {
      this.topics = topics;
      this.consumerConfig = new HashMap<>(consumerConfig);
    }

    @Override
    public PCollection<Row> expand(PBegin input) {
      return input
          .apply(
              "KafkaIO.Read",
              KafkaIO.<byte[], byte[]>read()
                  .withTopics(topics)
                  .withKeyDeserializer(ByteArrayDeserializer.class)
                  .withValueDeserializer(ByteArrayDeserializer.class)
                  .withConsumerConfigUpdates(consumerConfig)
                  .withTimestampPolicyFactory(new ProducerTimePolicy.Factory()))
          .apply("ToRows", MapElements.via(new ToRow()))
          .setRowSchema(RECORD);
    }
  }

  /** One Kafka record as a row of {@link #RECORD}. */
  static final class ToRow extends SimpleFunction<KafkaRecord<byte[], byte[]>, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row apply(KafkaRecord<byte[], byte[]> record) {
      return Row.withSchema(RECORD)
          .addValues(
              record.getTopic(),
              record.getPartition(),
              record.getOffset(),
              record.getTimestamp(),
              record.getKV().getKey(),
              record.getKV().getValue())
          .build();
    }
  }
}
