#!/usr/bin/env bash
# A single-node Kafka broker on this machine (KRaft mode: broker and controller in one process), for the
# streaming detection and its tests; the protocol of Azure Event Hubs' Kafka endpoint.
#
#   templates/kafka/local_broker.sh start    # fetch what is missing, start, return when topics can be made
#   templates/kafka/local_broker.sh status   # exit 0 when the broker runs
#   templates/kafka/local_broker.sh stop     # end the broker this script started, and only it
#
# The broker listens on localhost:9092 (its controller on localhost:9093). Where the pieces come from
# (first start only):
#   * Kafka $KAFKA_VERSION: the broker's jars from Maven Central (templates/kafka/broker/pom.xml);
#   * Beam's Java I/O expansion service for the Python SDK's ReadFromKafka and WriteToKafka, built with
#     Maven from Maven Central (templates/kafka/expansion-service/pom.xml) for the installed apache-beam
#     version and put where Beam looks for it (~/.apache_beam/cache/jars/).
#
# Environment: KAFKA_LOCAL_DIR (state: configuration, logs, data, PID file, jars; default .kafka-local/
# in the checkout), KAFKA_START_TIMEOUT (seconds, 120), PYTHON (the interpreter with apache-beam; python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(cd "$here/../.." && pwd)
KAFKA_LOCAL_DIR=${KAFKA_LOCAL_DIR:-$checkout/.kafka-local}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
PYTHON=${PYTHON:-python3}
PORT=9092
CONTROLLER_PORT=9093

libs=$KAFKA_LOCAL_DIR/libs
conf=$KAFKA_LOCAL_DIR/server.properties
beam_jar_cache=$HOME/.apache_beam/cache/jars

say() { printf 'local_broker: %s\n' "$*"; }
die() { printf 'local_broker: %s\n' "$*" >&2; exit 1; }

marker() { echo "-Dkafka.logs.dir=$KAFKA_LOCAL_DIR/log"; }

running_pid() {
  local pid
  [ -f "$KAFKA_LOCAL_DIR/broker.pid" ] || return 0
  pid=$(cat "$KAFKA_LOCAL_DIR/broker.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$(marker)"; then echo "$pid"; fi
}

# What a build was made from: the sha256 of its pom, kept beside its output (a changed pom rebuilds).
pom_digest() { sha256sum "$1" | cut -d' ' -f1; }

fetch_broker() {
  local digest
  digest=$(pom_digest "$here/broker/pom.xml")
  [ -f "$libs/.pom-sha256" ] && [ "$(cat "$libs/.pom-sha256")" = "$digest" ] && return 0
  command -v mvn > /dev/null || die "mvn not found: the broker's jars come from Maven Central"
  say "fetching Kafka's jars (Maven Central)"
  rm -rf "$libs.partial" && mkdir -p "$libs.partial"
  mvn -q -B -f "$here/broker/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs.partial" \
      > "$KAFKA_LOCAL_DIR/fetch.log" 2>&1 \
    || die "Maven could not fetch Kafka's jars (log: $KAFKA_LOCAL_DIR/fetch.log)"
  echo "$digest" > "$libs.partial/.pom-sha256"
  rm -rf "$libs" && mv "$libs.partial" "$libs"
}

fetch_expansion_service() {
  local version jar_name built digest
  version=$("$PYTHON" -c 'import apache_beam; print(apache_beam.__version__)' 2>/dev/null) \
    || die "$PYTHON cannot import apache_beam: install the project first (pip install -e .)"
  jar_name=beam-sdks-java-io-expansion-service-$version.jar
  built=$KAFKA_LOCAL_DIR/jars/$jar_name
  # The pom and the Java sources it compiles (templates/kafka/java).
  digest=$(find "$here/expansion-service" "$here/java" -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)
  if [ ! -f "$built" ] || [ "$(cat "$built.pom-sha256" 2> /dev/null)" != "$digest" ]; then
    command -v mvn > /dev/null || die "mvn not found: the expansion service is built with Maven"
    say "building Beam's Java I/O expansion service $version (Maven Central)"
    mkdir -p "$KAFKA_LOCAL_DIR/jars"
    mvn -q -B -f "$here/expansion-service/pom.xml" -Dbeam.version="$version" \
        -Dbuild.dir="$KAFKA_LOCAL_DIR/expansion-service-build" package \
        > "$KAFKA_LOCAL_DIR/expansion-service-build.log" 2>&1 \
      || die "Maven could not build the expansion service (log: $KAFKA_LOCAL_DIR/expansion-service-build.log)"
    cp "$KAFKA_LOCAL_DIR/expansion-service-build/$jar_name" "$built.partial" && mv "$built.partial" "$built"
    echo "$digest" > "$built.pom-sha256"
    rm -rf "$KAFKA_LOCAL_DIR/expansion-service-build"
  fi
  mkdir -p "$beam_jar_cache"
  if ! cmp -s "$built" "$beam_jar_cache/$jar_name"; then
    cp "$built" "$beam_jar_cache/$jar_name.partial" && mv "$beam_jar_cache/$jar_name.partial" "$beam_jar_cache/$jar_name"
  fi
}

port_in_use() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex(('localhost', int(sys.argv[1]))) == 0 else 1)
EOF
}

write_config() {
  cat > "$conf" <<EOF
# Written by templates/kafka/local_broker.sh at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:$CONTROLLER_PORT
listeners=PLAINTEXT://localhost:$PORT,CONTROLLER://localhost:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://localhost:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_LOCAL_DIR/data
num.partitions=2
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Messages carry the event time of their rows (CreateTime), which the pipeline's watermark follows:
# rows of past days must not be refused or dropped by retention.
log.message.timestamp.before.max.ms=9223372036854775807
log.retention.hours=-1
EOF
  cat > "$KAFKA_LOCAL_DIR/log4j2.yaml" <<EOF
Configuration:
  Appenders:
    File:
      name: File
      fileName: "$KAFKA_LOCAL_DIR/log/server.log"
      PatternLayout: {pattern: "[%d] %p %m (%c)%n"}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: File}]}
EOF
}

# 0 once the broker answers a metadata request (the admin client lists topics).
broker_ready() {
  java -cp "$libs/*" -Dlog4j2.configurationFile="$KAFKA_LOCAL_DIR/log4j2.yaml" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$PORT" --list > /dev/null 2>&1
}

start() {
  mkdir -p "$KAFKA_LOCAL_DIR/log" "$KAFKA_LOCAL_DIR/data"
  command -v java > /dev/null || die "java not found: Kafka needs Java 17"
  fetch_broker
  fetch_expansion_service
  if [ -n "$(running_pid)" ]; then
    say "ready: Kafka at localhost:$PORT (pid $(running_pid)); state in $KAFKA_LOCAL_DIR"
    return 0
  fi
  ! port_in_use "$PORT" || die "port $PORT is taken by a process this script did not start"
  write_config
  if [ ! -f "$KAFKA_LOCAL_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2> /dev/null | tail -n 1)
    java -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$conf" \
        > "$KAFKA_LOCAL_DIR/log/format.out" 2>&1 || die "could not format $KAFKA_LOCAL_DIR/data"
  fi
  setsid java -Xms512m -Xmx512m "$(marker)" -Dlog4j2.configurationFile="$KAFKA_LOCAL_DIR/log4j2.yaml" \
      -cp "$libs/*" kafka.Kafka "$conf" > "$KAFKA_LOCAL_DIR/log/broker.out" 2>&1 < /dev/null &
  echo $! > "$KAFKA_LOCAL_DIR/broker.pid"
  say "started the broker (pid $(cat "$KAFKA_LOCAL_DIR/broker.pid"))"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until broker_ready; do
    [ -n "$(running_pid)" ] || { tail -n 20 "$KAFKA_LOCAL_DIR/log/broker.out" >&2; die "the broker exited while starting"; }
    [ $SECONDS -lt $deadline ] || die "the broker was not ready after ${KAFKA_START_TIMEOUT}s (logs: $KAFKA_LOCAL_DIR/log)"
    sleep 1
  done
  say "ready: Kafka at localhost:$PORT; state in $KAFKA_LOCAL_DIR"
}

stop() {
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2> /dev/null || kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then kill -KILL -- "-$pid" 2> /dev/null || kill -KILL "$pid" 2> /dev/null || true; fi
    say "stopped the broker (pid $pid)"
  fi
  rm -f "$KAFKA_LOCAL_DIR/broker.pid"
}

status() {
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then say "broker running (pid $pid)"; else say "broker not running"; return 1; fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
