#!/usr/bin/env bash
# A Flink session cluster on this machine, for the detection's FlinkRunner runs and their tests.
#
#   templates/flink/local_cluster.sh start    # fetch what is missing, start, return when jobs are accepted
#   templates/flink/local_cluster.sh status   # what runs; exit 0 when every process is up
#   templates/flink/local_cluster.sh stop     # end every process this script started, and only those
#
# What runs: a JobManager (REST API and web UI on localhost:8081), $FLINK_TASKMANAGERS TaskManagers
# (each its own JVM, 2 task slots each) and a Beam SDK worker pool on localhost:$BEAM_WORKER_POOL_PORT
# that the TaskManagers ask for Python SDK workers (--environment_type EXTERNAL). The pipeline is then
# submitted with Beam's own options:
#
#   python -m pipelines.rare_runcommand --runner FlinkRunner --flink_master localhost:8081 \
#       --environment_type EXTERNAL --environment_config localhost:50000 --parallelism 2 ...
#
# Where the pieces come from (first start only; docs/deploy.md says why these versions):
#   * Flink $FLINK_VERSION: the flink-dist and lib jars of PyPI's apache-flink-libraries package;
#   * Beam's Flink job server: built with Maven from Maven Central (templates/flink/job-server/pom.xml)
#     for the installed apache-beam version, and put where Beam's FlinkRunner looks for it
#     (~/.apache_beam/cache/jars/), so that no option has to name it.
#
# Environment: FLINK_LOCAL_DIR (state: configuration, logs, PID files, downloads; default .flink-local/
# in the checkout), FLINK_VERSION (1.19.3), FLINK_TASKMANAGERS (2), BEAM_WORKER_POOL_PORT (50000),
# FLINK_START_TIMEOUT (seconds to wait for the cluster, 180), PYTHON (the interpreter with apache-beam
# and this project installed: it runs the worker pool; default python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(cd "$here/../.." && pwd)
FLINK_LOCAL_DIR=${FLINK_LOCAL_DIR:-$checkout/.flink-local}
case $FLINK_LOCAL_DIR in /*) ;; *) FLINK_LOCAL_DIR=$PWD/$FLINK_LOCAL_DIR ;; esac
FLINK_VERSION=${FLINK_VERSION:-1.19.3}
FLINK_TASKMANAGERS=${FLINK_TASKMANAGERS:-2}
BEAM_WORKER_POOL_PORT=${BEAM_WORKER_POOL_PORT:-50000}
FLINK_START_TIMEOUT=${FLINK_START_TIMEOUT:-180}
PYTHON=${PYTHON:-python3}
REST_PORT=8081

flink_minor=${FLINK_VERSION%.*}
flink_home=$FLINK_LOCAL_DIR/flink-$FLINK_VERSION
conf_dir=$FLINK_LOCAL_DIR/conf
log_dir=$FLINK_LOCAL_DIR/log
beam_jar_cache=$HOME/.apache_beam/cache/jars

# Flink 1.19 on Java 17 needs these (Flink's own distribution sets them as env.java.opts.all).
java_module_opts=(
  --add-exports=java.base/sun.net.util=ALL-UNNAMED
  --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.text=ALL-UNNAMED
  --add-opens=java.base/java.time=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
)

say() { printf 'local_cluster: %s\n' "$*"; }
die() { printf 'local_cluster: %s\n' "$*" >&2; exit 1; }

# --- processes -------------------------------------------------------------------------------------

# The PID in <name>.pid if that process is alive and is the one this script started (its command line
# carries the marker given), else nothing.
running_pid() {
  local name=$1 marker=$2 pid
  [ -f "$FLINK_LOCAL_DIR/$name.pid" ] || return 0
  pid=$(cat "$FLINK_LOCAL_DIR/$name.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$marker"; then echo "$pid"; fi
}

# Starts a command in a session of its own (so that stop can end it with its children) and records it.
launch() {
  local name=$1; shift
  setsid "$@" > "$log_dir/$name.out" 2>&1 < /dev/null &
  echo $! > "$FLINK_LOCAL_DIR/$name.pid"
}

stop_one() {
  local name=$1 marker=$2 pid
  pid=$(running_pid "$name" "$marker")
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$FLINK_LOCAL_DIR/$name.pid"
}

jm_marker() { echo "-Dlog.file=$log_dir/jobmanager.log"; }
tm_marker() { echo "-Dlog.file=$log_dir/taskmanager-$1.log"; }
pool_marker() { echo "--service_port=$BEAM_WORKER_POOL_PORT"; }

# --- fetching --------------------------------------------------------------------------------------

fetch_flink() {
  [ -f "$flink_home/lib/flink-dist-$FLINK_VERSION.jar" ] && return 0
  command -v java > /dev/null || die "java not found: Flink $FLINK_VERSION needs Java 11 or 17"
  say "fetching Flink $FLINK_VERSION (PyPI: apache-flink-libraries==$FLINK_VERSION)"
  local download=$FLINK_LOCAL_DIR/downloads
  mkdir -p "$download"
  "$PYTHON" -m pip download --quiet --no-deps \
      "apache-flink-libraries==$FLINK_VERSION" -d "$download" \
    || die "could not download apache-flink-libraries==$FLINK_VERSION from PyPI"
  local tarball=$download/apache-flink-libraries-$FLINK_VERSION.tar.gz
  rm -rf "$flink_home.partial" && mkdir -p "$flink_home.partial"
  tar -xzf "$tarball" -C "$flink_home.partial" --strip-components=2 \
      "apache-flink-libraries-$FLINK_VERSION/deps/lib" "apache-flink-libraries-$FLINK_VERSION/deps/bin"
  [ -f "$flink_home.partial/lib/flink-dist-$FLINK_VERSION.jar" ] \
    || die "apache-flink-libraries==$FLINK_VERSION holds no deps/lib/flink-dist-$FLINK_VERSION.jar"
  rm -rf "$flink_home" && mv "$flink_home.partial" "$flink_home"
  rm -f "$tarball"
}

beam_version() {
  "$PYTHON" -c 'import apache_beam; print(apache_beam.__version__)' 2>/dev/null \
    || die "$PYTHON cannot import apache_beam: install the project first (pip install -e .)"
}

fetch_job_server() {
  local version jar_name built digest
  version=$(beam_version)
  jar_name=beam-runners-flink-$flink_minor-job-server-$version.jar
  built=$FLINK_LOCAL_DIR/jars/$jar_name
  digest=$(find "$here/job-server" "$here/../kafka/java" -type f | LC_ALL=C sort \
    | xargs cat | sha256sum | cut -d' ' -f1)
  # Built again when the pom or the Java sources it compiles (templates/kafka/java) changed since
  # (their sha256 is kept beside the jar).
  if [ ! -f "$built" ] || [ "$(cat "$built.pom-sha256" 2> /dev/null)" != "$digest" ]; then
    command -v mvn > /dev/null || die "mvn not found: the Flink job server is built with Maven"
    say "building Beam's Flink $flink_minor job server $version (Maven Central)"
    mkdir -p "$FLINK_LOCAL_DIR/jars"
    mvn -q -B -f "$here/job-server/pom.xml" \
        -Dbeam.version="$version" -Dflink.minor="$flink_minor" \
        -Dbuild.dir="$FLINK_LOCAL_DIR/job-server-build" package \
        > "$FLINK_LOCAL_DIR/job-server-build.log" 2>&1 \
      || die "Maven could not build the job server (log: $FLINK_LOCAL_DIR/job-server-build.log)"
    cp "$FLINK_LOCAL_DIR/job-server-build/$jar_name" "$built.partial" && mv "$built.partial" "$built"
    echo "$digest" > "$built.pom-sha256"
    rm -rf "$FLINK_LOCAL_DIR/job-server-build"
  fi
  mkdir -p "$beam_jar_cache"
  if ! cmp -s "$built" "$beam_jar_cache/$jar_name"; then
    cp "$built" "$beam_jar_cache/$jar_name.partial" && mv "$beam_jar_cache/$jar_name.partial" "$beam_jar_cache/$jar_name"
  fi
}

# --- starting --------------------------------------------------------------------------------------

# JVM and -D options of a Flink process, as Flink's own start scripts compute them.
resource_params() {
  java -cp "$flink_home/bin/bash-java-utils.jar:$flink_home/lib/*" \
      org.apache.flink.runtime.util.bash.BashJavaUtils "$1" --configDir "$conf_dir" 2> /dev/null \
    | sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p'
}

port_in_use() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex(('localhost', int(sys.argv[1]))) == 0 else 1)
EOF
}

start_jobmanager() {
  [ -n "$(running_pid jobmanager "$(jm_marker)")" ] && return 0
  ! port_in_use "$REST_PORT" || die "port $REST_PORT is taken by a process this script did not start"
  local params jvm dyn
  params=$(resource_params GET_JM_RESOURCE_PARAMS)
  jvm=$(sed -n 1p <<< "$params"); dyn=$(sed -n 2p <<< "$params")
  [ -n "$jvm" ] || die "Flink's BashJavaUtils gave no JobManager memory settings"
  # shellcheck disable=SC2086  # the JVM and -D options are lists of words
  launch jobmanager java $jvm "${java_module_opts[@]}" "$(jm_marker)" \
      "-Dlog4j.configurationFile=file:$conf_dir/log4j.properties" -cp "$flink_home/lib/*" \
      org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint --configDir "$conf_dir" $dyn
  say "started the JobManager (pid $(cat "$FLINK_LOCAL_DIR/jobmanager.pid"))"
}

start_taskmanager() {
  local n=$1 params jvm dyn
  [ -n "$(running_pid "taskmanager-$n" "$(tm_marker "$n")")" ] && return 0
  params=$(resource_params GET_TM_RESOURCE_PARAMS)
  jvm=$(sed -n 1p <<< "$params"); dyn=$(sed -n 2p <<< "$params")
  [ -n "$jvm" ] || die "Flink's BashJavaUtils gave no TaskManager memory settings"
  mkdir -p "$FLINK_LOCAL_DIR/tmp/taskmanager-$n"
  # shellcheck disable=SC2086
  launch "taskmanager-$n" java $jvm "${java_module_opts[@]}" "$(tm_marker "$n")" \
      "-Dlog4j.configurationFile=file:$conf_dir/log4j.properties" -cp "$flink_home/lib/*" \
      org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir "$conf_dir" $dyn \
      -D "taskmanager.resource-id=taskmanager-$n" -D "io.tmp.dirs=$FLINK_LOCAL_DIR/tmp/taskmanager-$n"
  say "started TaskManager $n (pid $(cat "$FLINK_LOCAL_DIR/taskmanager-$n.pid"))"
}

start_worker_pool() {
  [ -n "$(running_pid worker-pool "$(pool_marker)")" ] && return 0
  ! port_in_use "$BEAM_WORKER_POOL_PORT" \
    || die "port $BEAM_WORKER_POOL_PORT is taken by a process this script did not start"
  launch worker-pool "$PYTHON" -m pipelines.worker_pool "$(pool_marker)"
  # Listening before the JVMs start: they bind ports of their own at random in the kernel's ephemeral
  # range, which holds the pool's.
  local deadline=$((SECONDS + FLINK_START_TIMEOUT))
  until port_in_use "$BEAM_WORKER_POOL_PORT"; do
    [ -d "/proc/$(cat "$FLINK_LOCAL_DIR/worker-pool.pid")" ] \
      || die "the worker pool exited while starting (log: $log_dir/worker-pool.out)"
    [ $SECONDS -lt $deadline ] || die "the worker pool did not listen after ${FLINK_START_TIMEOUT}s"
    sleep 0.2
  done
  say "started the Beam SDK worker pool (pid $(cat "$FLINK_LOCAL_DIR/worker-pool.pid"))"
}

# 0 when the REST API lists every TaskManager with all its slots and the worker pool listens.
cluster_ready() {
  "$PYTHON" - "$REST_PORT" "$FLINK_TASKMANAGERS" "$BEAM_WORKER_POOL_PORT" <<'EOF'
import json, socket, sys, urllib.request
rest, taskmanagers, pool = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
try:
    with urllib.request.urlopen('http://localhost:%d/overview' % rest, timeout=2) as response:
        overview = json.load(response)
    with socket.create_connection(('localhost', pool), timeout=2):
        pass
except OSError:
    sys.exit(1)
sys.exit(0 if overview.get('taskmanagers', 0) >= taskmanagers
         and overview.get('slots-total', 0) >= 2 * taskmanagers else 1)
EOF
}

wait_ready() {
  local deadline=$((SECONDS + FLINK_START_TIMEOUT)) name
  until cluster_ready; do
    for name in jobmanager worker-pool $(seq -f 'taskmanager-%g' 1 "$FLINK_TASKMANAGERS"); do
      if [ ! -f "$FLINK_LOCAL_DIR/$name.pid" ] || [ ! -d "/proc/$(cat "$FLINK_LOCAL_DIR/$name.pid")" ]; then
        tail -n 20 "$log_dir/$name.out" "$log_dir/$name.log" 2> /dev/null >&2 || true
        die "$name exited while starting (logs: $log_dir)"
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      die "the cluster was not ready after ${FLINK_START_TIMEOUT}s (logs: $log_dir)"
    fi
    sleep 1
  done
}

start() {
  mkdir -p "$FLINK_LOCAL_DIR" "$log_dir" "$conf_dir"
  fetch_flink
  fetch_job_server
  cp "$here/conf/config.yaml" "$here/conf/log4j.properties" "$conf_dir/"
  # Checkpoints of streaming jobs go to files under the state folder (a shared file system on a real
  # cluster), so that a restarted job restores from them rather than from the JobManager's memory.
  printf 'state.checkpoint-storage: filesystem\nstate.checkpoints.dir: file://%s/checkpoints\n' \
    "$FLINK_LOCAL_DIR" >> "$conf_dir/config.yaml"
  start_worker_pool  # first: see there
  start_jobmanager
  local n
  for n in $(seq 1 "$FLINK_TASKMANAGERS"); do start_taskmanager "$n"; done
  wait_ready
  say "ready: Flink $FLINK_VERSION at http://localhost:$REST_PORT ($FLINK_TASKMANAGERS TaskManagers)," \
      "Beam worker pool at localhost:$BEAM_WORKER_POOL_PORT; state in $FLINK_LOCAL_DIR"
}

stop() {
  [ -d "$FLINK_LOCAL_DIR" ] || return 0
  stop_one worker-pool "$(pool_marker)"
  local pidfile name
  for pidfile in "$FLINK_LOCAL_DIR"/taskmanager-*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    stop_one "$name" "$(tm_marker "${name#taskmanager-}")"
  done
  stop_one jobmanager "$(jm_marker)"
}

status() {
  local up=0 name marker pid n
  for name in jobmanager $(seq -f 'taskmanager-%g' 1 "$FLINK_TASKMANAGERS") worker-pool; do
    case $name in
      jobmanager) marker=$(jm_marker) ;;
      worker-pool) marker=$(pool_marker) ;;
      *) n=${name#taskmanager-}; marker=$(tm_marker "$n") ;;
    esac
    pid=$(running_pid "$name" "$marker")
    if [ -n "$pid" ]; then say "$name running (pid $pid)"; else say "$name not running"; up=1; fi
  done
  return $up
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
