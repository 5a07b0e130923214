# Sourced by hack/cluster.sh and hack/node-conformance.sh: the processes they run detached,
# each known by a NAME whose PID is in $PIDS/NAME.pid and whose output is in
# $PROC_LOGS/NAME.log. The caller defines say and die, and sets PIDS and PROC_LOGS.

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }
# running PID: the process exists and has not exited (this machine's PID 1 reaps orphans
# only after about 2 s: a zombie counts as gone).
running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && running "$pid"
}

# start NAME CMD...: runs CMD detached (own session, no terminal, stdout and stderr to the
# component's log) and records its PID.
start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$PROC_LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retries CMD every 0.2 s; fails naming WHAT and the log.
wait_for() {
  local what=$1 secs=$2 name=$3
  shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      tail -n 30 "$PROC_LOGS/$name.log" >&2 || true
      die "$name exited while waiting for $what (log: $PROC_LOGS/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$PROC_LOGS/$name.log" >&2 || true
      die "timed out after ${secs}s waiting for $what (log: $PROC_LOGS/$name.log)"
    fi
    sleep 0.2
  done
}

# stop NAME: SIGTERM, then SIGKILL after 15 s, by the recorded PID.
stop() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  rm -f "$PIDS/$name.pid"
  [ -n "$pid" ] && running "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    if ! running "$pid"; then
      ((i < 20)) || say "$name took $((i / 10))s to stop"
      return 0
    fi
    sleep 0.1
  done
  say "$name ($pid) ignored SIGTERM for 15s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    running "$pid" || return 0
    sleep 0.1
  done
}
