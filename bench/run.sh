#!/usr/bin/env bash
# bench/run.sh - throughput, CPU and memory of smtpd next to smtp-sink, on
# loopback, in one run.  See bench/README.md.
#
# For every cell (message size, concurrency, new connection per message or
# kept sessions, recipients per message) it measures, one after the other:
#   sink   smtp-sink alone: the ceiling of this client on this machine
#   debug  smtpd -d -n -c debug (the per-message print goes to /dev/null)
#   relay  smtpd -c relay with a durable queue, in front of a counting
#          smtp-sink: accepted rate and end-to-end rate
# and prints one markdown table plus the figures of ../shared/BENCH.md
# against their targets.  Benchmarks print figures; they never fail on time.
#
# Everything listens on 127.0.0.1; as root the measurement runs in a private
# network namespace (unshare --net) with only its own loopback up.  Every
# client run and every wait is bounded in count and in time, the whole run
# is under BENCH_TOTAL_TIMEOUT, and every process started here is stopped by
# PID on exit (also on Ctrl-C).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
: "${SMTPD:=$TOP/build/smtpd}"
: "${PYTHON:=python3}"
MON="$PYTHON $HERE/procmon.py"

# ---- knobs (environment) ------------------------------------------------------
# cells: SIZE:CONCURRENCY:CONN:RCPTS  (CONN new = one message per connection,
# smtp-source's default; keep = smtp-source -d, every session sends many)
: "${BENCH_CELLS:=1024:20:new:1 1024:100:new:1 1024:20:keep:1}"
: "${BENCH_SERVERS:=sink debug relay postfix}"   # postfix: Postfix 3.7 relaying to smtp-sink, in this run
: "${BENCH_PROFILE:=0}"            # 1: perf record the relay process during the relay runs, print perf report
: "${BENCH_MSGS_SMALL:=5000}"      # messages per measured run, size < 10 KiB
: "${BENCH_MSGS_LARGE:=500}"       # ... size >= 10 KiB
: "${BENCH_MSGS_POSTFIX:=2000}"    # ... for Postfix (10 times slower: the same seconds)
: "${BENCH_REPEAT:=3}"             # measured runs per cell and server (median reported)
: "${BENCH_RUN_TIMEOUT:=60}"       # bound on one smtp-source run (s)
: "${BENCH_DRAIN_TIMEOUT:=60}"     # bound on waiting for relayed mail upstream (s)
: "${BENCH_TOTAL_TIMEOUT:=900}"    # bound on the whole script (s)
: "${BENCH_SAMPLE_INTERVAL:=0.1}"  # memory sampling interval (s)
: "${BENCH_PORT_BASE:=13500}"      # each server start takes the next two ports
: "${BENCH_KEEP:=0}"               # 1: keep the work dir (logs, queues)
: "${BENCH_NETNS:=auto}"           # auto (if root) | 0 | 1
: "${BENCH_TMPDIR:=/tmp}"          # work dir and relay queue go under it (on disk, like the anchors' Postfix queue)

FROM=from@example.com
TO=to@example.net

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
now_ns() { date +%s%N; }

# ---- stage 1: checks, then re-run under a time bound (and in a netns) ---------
if [[ ${BENCH_STAGE2:-0} != 1 ]]; then
  [[ -x $SMTPD ]] || die "$SMTPD missing: run make first (or set SMTPD=)"
  for t in smtp-source smtp-sink timeout ss; do
    command -v "$t" >/dev/null || die "$t missing (smtp-source/smtp-sink: Debian package postfix, see ../shared/BENCH.md)"
  done
  $PYTHON -c 'import sys' || die "$PYTHON missing"
  netns=$BENCH_NETNS
  [[ $netns == auto ]] && { [[ $(id -u) -eq 0 ]] && netns=1 || netns=0; }
  if [[ $netns == 1 ]]; then
    exec timeout -s TERM -k 10 "$BENCH_TOTAL_TIMEOUT" env BENCH_STAGE2=1 BENCH_IN_NETNS=1 \
      unshare --net -- bash "${BASH_SOURCE[0]}" "$@"
  fi
  log "not root (or BENCH_NETNS=0): running on the host's loopback"
  exec timeout -s TERM -k 10 "$BENCH_TOTAL_TIMEOUT" env BENCH_STAGE2=1 BENCH_IN_NETNS=0 \
    bash "${BASH_SOURCE[0]}" "$@"
fi

if [[ ${BENCH_IN_NETNS:-0} == 1 ]]; then
  ip link set lo up 2>/dev/null || die "cannot bring up lo in the private network namespace"
fi
SINK_USER=()
[[ $(id -u) -eq 0 ]] && SINK_USER=(-u nobody)   # smtp-sink refuses to run as root
PRIVSEP=(-n)                                    # the relay: privsep only as root
[[ $(id -u) -eq 0 && ${BENCH_PRIVSEP:-1} == 1 ]] && PRIVSEP=()

# ---- process bookkeeping ----------------------------------------------------
WORK=$(mktemp -d "$BENCH_TMPDIR/smtpd-bench.XXXXXX")   # the relay queue lives here
ROOTS=()
KEPT=()
# Run a private copy of the binary: the parent re-execs its own file for
# every child it spawns, and build/smtpd may be rebuilt during the run.
SMTPD_ORIG=$SMTPD
SMTPD_BUILT=$(date -r "$SMTPD" '+%F %T')
cp "$SMTPD" "$WORK/smtpd" || { rm -rf "$WORK"; die "cannot copy $SMTPD"; }
SMTPD=$WORK/smtpd

alive() {
  local st
  [[ -r /proc/$1/stat ]] || return 1
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

forget() {
  local keep=() r
  for r in "${ROOTS[@]}"; do [[ $r != "$1" ]] && keep+=("$r"); done
  ROOTS=("${keep[@]}")
}

stop_tree() {  # stop_tree PID: SIGTERM the root, SIGKILL what is left after 10 s
  local root=$1 pids p i any
  [[ -n $root ]] || return 0
  pids=$($MON tree "$root" 2>/dev/null | tr '\n' ' ')
  kill -TERM "$root" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    any=0
    for p in $pids; do alive "$p" && { any=1; break; }; done
    ((any)) || break
    sleep 0.1
  done
  for p in $pids; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  wait "$root" 2>/dev/null
  forget "$root"
}

cleanup() {
  local r
  trap - EXIT INT TERM
  for r in "${ROOTS[@]}"; do stop_tree "$r"; done
  if [[ $BENCH_KEEP == 1 ]]; then
    log "work dir kept: $WORK"
  elif ((${#KEPT[@]})); then   # cells that had problems: keep their logs only
    find "$WORK" -mindepth 1 -maxdepth 1 -type d | while read -r d; do
      [[ " ${KEPT[*]} " == *" $d "* ]] || rm -rf "$d"
    done
    rm -f "$WORK/smtpd"
    log "logs of the cells with problems kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
wait_port() {  # wait_port PORT SECONDS PID
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    port_open "$1" && return 0
    alive "$3" || return 1
    sleep 0.05
  done
  return 1
}
listen_overflows() {
  awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 }
                    else for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i }' /proc/net/netstat
}
steal_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", $9 / hz }' /proc/stat; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
fdiv() {  # fdiv A B FORMAT: A/B, or - when either is missing or B is 0
  awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf f, a / b }'
}
rate() { awk -v n="$1" -v ns="$2" 'BEGIN { if (ns > 0) printf "%.0f", n / (ns / 1e9); else print "-" }'; }

# ---- servers ----------------------------------------------------------------
PORT=$BENCH_PORT_BASE
# start_server KIND DIR -> SPID (root of the measured tree), UPID (upstream
# sink, relay only), P1 (listen port), UCOUNT (upstream counter file)
start_server() {
  local kind=$1 dir=$2
  P1=$((PORT += 2)); local p2=$((P1 + 1))
  port_free "$P1" && port_free "$p2" || die "port $P1 or $p2 busy: set BENCH_PORT_BASE"
  UPID="" UCOUNT=/dev/null
  case $kind in
    sink)
      smtp-sink "${SINK_USER[@]}" "127.0.0.1:$P1" 1024 >/dev/null 2>"$dir/server.log" &
      SPID=$! ;;
    debug)
      # Its own control socket, as the relay's: the default one may be
      # another smtpd's (a control-off line among the anomalies).
      printf 'control-socket %s/ctl.sock\n' "$dir" >"$dir/smtpd.conf"
      "$SMTPD" -d -n -f "$dir/smtpd.conf" -c debug "127.0.0.1:$P1" >/dev/null 2>"$dir/server.log" &
      SPID=$! ;;
    relay)
      UCOUNT=$dir/upstream.count
      smtp-sink -c "${SINK_USER[@]}" "127.0.0.1:$p2" 1024 >"$UCOUNT" 2>"$dir/upstream.err" &
      UPID=$!; ROOTS+=("$UPID")
      wait_port "$p2" 10 "$UPID" || die "upstream smtp-sink did not start"
      # Its own control socket: the default one may be another smtpd's.
      printf 'queue %s/queue\ncontrol-socket %s/ctl.sock\n' "$dir" "$dir" >"$dir/smtpd.conf"
      # As deployed: as root, with privilege separation (no -n), as
      # Postfix runs with its own.
      "$SMTPD" -d "${PRIVSEP[@]}" -f "$dir/smtpd.conf" -c relay "127.0.0.1:$P1" "127.0.0.1:$p2" \
        >/dev/null 2>"$dir/server.log" &
      SPID=$! ;;
    postfix)
      start_postfix "$dir" "$p2" ;;
    *) die "unknown server $kind" ;;
  esac
  ROOTS+=("$SPID")
  wait_port "$P1" 20 "$SPID" || return 1
  [[ $kind == relay && $BENCH_PROFILE == 1 ]] && start_profile "$dir"
  return 0
}

# Postfix 3.7 as ../shared/bench/anchors.sh runs it: durable queue on the
# same disk as ours, relayhost = the counting smtp-sink on P2, no chroot.
start_postfix() {
  local dir=$1 p2=$2 pf=$1/pf
  command -v postfix >/dev/null || die "postfix missing (see ../shared/BENCH.md)"
  UCOUNT=$dir/upstream.count
  smtp-sink -c "${SINK_USER[@]}" "127.0.0.1:$p2" 1024 >"$UCOUNT" 2>"$dir/upstream.err" &
  UPID=$!; ROOTS+=("$UPID")
  wait_port "$p2" 10 "$UPID" || die "upstream smtp-sink did not start"
  chmod 755 "$WORK" "$dir"   # Postfix's users must traverse into it
  mkdir -p "$pf/etc" "$pf/queue" "$pf/data"; chmod 755 "$pf"
  chown postfix:postfix "$pf/data"
  cp /etc/postfix/master.cf "$pf/etc/master.cf" 2>/dev/null ||
    cp /usr/share/postfix/master.cf.dist "$pf/etc/master.cf"
  cat >"$pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
myhostname = bench-postfix.example.org
mydomain = example.org
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$p2
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = $pf
maillog_file = $pf/maillog
biff = no
EOF
  postconf -c "$pf/etc" -M# smtp/inet
  postconf -c "$pf/etc" -Me "127.0.0.1:$P1/inet = 127.0.0.1:$P1 inet n - n - - smtpd"
  postconf -c "$pf/etc" -F '*/*/chroot = n'
  postfix -c "$pf/etc" start-fg >"$dir/server.log" 2>&1 &
  SPID=$!
}

# stop_profile DIR CELL: the report of the perf record, to $WORK/profiles
stop_profile() {
  [[ -n $PERFPID ]] || return 0
  kill -INT "$PERFPID" 2>/dev/null; wait "$PERFPID" 2>/dev/null; forget "$PERFPID"; PERFPID=""
  { echo "### where the relay's CPU goes, $2 (perf report, self %, top 25)"; echo; echo '```'
    perf report -i "$1/perf.data" --stdio --no-children --sort sym -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -25
    echo '```'; echo; } >>"$WORK/profiles"
}

# perf record of the relay process (the one that owns the queue) while
# the measured runs go; perf report is printed after the table.
PERFPID=""
start_profile() {
  local dir=$1 rp="" i
  command -v perf >/dev/null || { log "  perf missing: no profile"; return; }
  for ((i = 0; i < 50; i++)); do
    rp=$(for c in $($MON tree "$SPID"); do   # setproctitle: "smtpd: relay"
      tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -q ': relay' && echo "$c"
    done | head -1)
    [[ -n $rp ]] && break
    sleep 0.1
  done
  [[ -n $rp ]] || { log "  relay process not found: no profile"; return; }
  perf record -q -g -p "$rp" -o "$dir/perf.data" >/dev/null 2>&1 &
  PERFPID=$!; ROOTS+=("$PERFPID")
}


# ---- one smtp-source run ------------------------------------------------------
# run_source PREFIX N SIZE CONC CONN RCPTS TIMEOUT
# -> SRC_RC SRC_DONE (completed DATA, from -c) SRC_T0 SRC_T1 (ns)
run_source() {
  local pre=$1 n=$2 size=$3 conc=$4 conn=$5 rcpts=$6 tmo=$7
  local args=(-c -s "$conc" -m "$n" -l "$size" -f "$FROM" -t "$TO")
  [[ $conn == keep ]] && args+=(-d)
  ((rcpts > 1)) && args+=(-r "$rcpts")
  echo "smtp-source ${args[*]} 127.0.0.1:$P1" >"$pre.cmd"
  SRC_T0=$(now_ns)
  # -c writes a counter record per message: to a file, never the terminal
  timeout "$tmo" smtp-source "${args[@]}" "127.0.0.1:$P1" >"$pre.count" 2>"$pre.err"
  SRC_RC=$?
  SRC_T1=$(now_ns)
  SRC_DONE=$($MON count "$pre.count")
}

e2e_kind() { [[ $1 == relay || $1 == postfix ]]; }   # rated end to end
smtpd_kind() { [[ $1 == debug || $1 == relay ]]; }

# delivered KIND DIR: messages smtpd handed on so far (debug: printed;
# relay: counted by the upstream smtp-sink)
delivered() {
  case $1 in
    debug) grep -c 'event=delivery .*result=printed' "$2/server.log" ;;
    relay | postfix) $MON count "$UCOUNT" ;;
    *) echo "-" ;;
  esac
}

# anomalies LOG: log events up to the stop request other than the usual
# ones, as "event×count, ..."; attempts that did not deliver count as
# attempt-RESULT; lines without event= as "other"
anomalies() {
  awk 'BEGIN { split("start spawn connect disconnect message delivery queued removed queue-loaded upstream-connected upstream-addresses upstream-reachable ready stats channel-open", a, " ")
               for (i in a) normal[a[i]] = 1 }
       /event=stop-requested/ { exit }
       { if (!match($0, /event=[a-z-]+/)) { cnt["other"]++; next }
         e = substr($0, RSTART + 6, RLENGTH - 6)
         if (e == "attempt") {
           r = "?"; if (match($0, /result=[a-z-]+/)) r = substr($0, RSTART + 7, RLENGTH - 7)
           if (r == "delivered") next
           e = "attempt-" r
         }
         if (e in normal) next
         cnt[e]++ }
       END { s = ""; for (e in cnt) { s = s sep e "×" cnt[e]; sep = ", " }; print s }' "$1"
}

# ---- one cell for one server ----------------------------------------------------
ROWS=$WORK/rows.tsv
: >"$ROWS"
CELLNO=0

# measured_run DIR N SIZE CONC CONN RCPTS KIND -> REC, one record:
# KEY|N|RATE|E2E|CPU_S|US_MSG|OVF|STEAL|STATUS  (KEY: rate that ranks runs)
measured_run() {
  local dir=$1 n=$2 size=$3 conc=$4 conn=$5 rcpts=$6 kind=$7
  local base=0 ovf0 cpu0 cpu1 st0 epid="" e2e="-" status=ok t_last got when reached
  e2e_kind "$kind" && base=$($MON count "$UCOUNT")
  ovf0=$(listen_overflows); st0=$(steal_s)
  cpu0=$($MON cpu "$SPID")
  if e2e_kind "$kind"; then
    $MON waitcount "$UCOUNT" $((base + n)) $((BENCH_RUN_TIMEOUT + BENCH_DRAIN_TIMEOUT)) >"$dir/e2e" &
    epid=$!; ROOTS+=("$epid")
  fi
  run_source "$dir/main" "$n" "$size" "$conc" "$conn" "$rcpts" "$BENCH_RUN_TIMEOUT"
  t_last=$SRC_T1
  if e2e_kind "$kind"; then
    if ((SRC_DONE < n)); then   # the client gave up: wait for what it did send
      stop_tree "$epid"
      $MON waitcount "$UCOUNT" $((base + SRC_DONE)) "$BENCH_DRAIN_TIMEOUT" >"$dir/e2e"
    else
      wait "$epid" 2>/dev/null; forget "$epid"
    fi
    read -r got when reached <"$dir/e2e"
    e2e=$(rate $((got - base)) $((when - SRC_T0)))
    ((reached)) || { e2e="$e2e*"; status="e2e incomplete: $((got - base))/$SRC_DONE arrived"; }
    ((when > t_last)) && t_last=$when
  fi
  cpu1=$($MON cpu "$SPID")
  local cpu us ovf steal acc
  cpu=$(fsub "$cpu1" "$cpu0")
  # (a process of the tree that died unreaped takes its CPU time with it)
  us=$(awk -v c="$cpu" -v n="$SRC_DONE" 'BEGIN { if (n > 0 && c >= 0) printf "%.0f", c / n * 1e6; else print "-" }')
  awk -v c="$cpu" 'BEGIN { exit !(c < 0) }' && cpu="-"
  ovf=$(($(listen_overflows) - ovf0))
  steal=$(fsub "$(steal_s)" "$st0")
  acc=$(rate "$SRC_DONE" $((SRC_T1 - SRC_T0)))
  if ((SRC_RC == 124)); then status="client timeout ${BENCH_RUN_TIMEOUT}s ($SRC_DONE/$n)"
  elif ((SRC_RC != 0)); then status="client rc=$SRC_RC ($SRC_DONE/$n): $(tr '\n' ' ' <"$dir/main.err" | head -c 100)"
  elif ((SRC_DONE != n)); then status="client counted $SRC_DONE/$n"
  fi
  local key=$acc
  e2e_kind "$kind" && key=${e2e%\*}
  TOTAL_SENT=$((TOTAL_SENT + SRC_DONE))
  REC="${key/-/0}|$SRC_DONE|$acc|$e2e|$cpu|$us|$ovf|$steal|$status"
}

measure() {  # measure KIND SIZE CONC CONN RCPTS
  local kind=$1 size=$2 conc=$3 conn=$4 rcpts=$5
  local cell=$size:$conc:$conn:$rcpts
  local dir=$WORK/cell$((++CELLNO))-$kind; mkdir -p "$dir"
  local n=$BENCH_MSGS_SMALL; [[ $kind == postfix ]] && n=$BENCH_MSGS_POSTFIX
  ((size >= 10240)) && n=$BENCH_MSGS_LARGE
  ((n < conc)) && n=$conc
  log "$kind: $cell, $n messages"
  if ! start_server "$kind" "$dir"; then
    log "  $kind did not start: $(tail -3 "$dir/server.log" | tr '\n' ' ')"
    printf '%s\n' "$kind|$cell|0|-|-|-|-|-|-|-|-|-|-|start failed" >>"$ROWS"
    stop_tree "$SPID"; [[ -n $UPID ]] && stop_tree "$UPID"
    return
  fi
  TOTAL_SENT=0
  # warm-up: a tenth of the run (at least 2 messages per session), bounded;
  # relays: until the upstream has it all
  local w=$((n / 10)) base
  ((w < 2 * conc)) && w=$((2 * conc))
  base=0; e2e_kind "$kind" && base=$($MON count "$UCOUNT")
  run_source "$dir/warm" "$w" "$size" "$conc" "$conn" "$rcpts" "$BENCH_RUN_TIMEOUT"
  TOTAL_SENT=$SRC_DONE
  ((SRC_RC != 0)) && log "  warm-up rc=$SRC_RC done=$SRC_DONE/$w: $(head -c 200 "$dir/warm.err")"
  e2e_kind "$kind" && $MON waitcount "$UCOUNT" $((base + SRC_DONE)) "$BENCH_DRAIN_TIMEOUT" >/dev/null

  local wpid r rec
  $MON watch "$dir/mem" "$BENCH_SAMPLE_INTERVAL" $((BENCH_REPEAT * (BENCH_RUN_TIMEOUT + BENCH_DRAIN_TIMEOUT) + 10)) "$SPID" &
  wpid=$!; ROOTS+=("$wpid")
  : >"$dir/runs"
  for ((r = 0; r < BENCH_REPEAT; r++)); do
    measured_run "$dir" "$n" "$size" "$conc" "$conn" "$rcpts" "$kind"
    rec=$REC
    echo "$rec" >>"$dir/runs"
    log "  run $((r + 1)): $(cut -d'|' -f2- <<<"$rec" | awk -F'|' '{ printf "n=%s accepted=%s/s e2e=%s/s cpu=%ss (%s µs/msg) ovf=%s steal=%ss %s", $1, $2, $3, $4, $5, $6, $7, $8 }')"
  done
  stop_tree "$wpid"
  local k chosen range=""
  k=$(wc -l <"$dir/runs")
  chosen=$(sort -t'|' -n -k1,1 "$dir/runs" | sed -n "$(((k + 1) / 2))p")
  ((k > 1)) && range="median of $k ($(sort -t'|' -n -k1,1 "$dir/runs" | head -1 | cut -d'|' -f1)-$(sort -t'|' -n -k1,1 "$dir/runs" | tail -1 | cut -d'|' -f1)/s)"
  local hwm=0 pss=0 rss=0 nproc=0
  [[ -s $dir/mem ]] && read -r hwm pss rss nproc _ <"$dir/mem"

  # every message the client got 250 for must have come out the other end
  local status=${chosen##*|} extra=() dlv left an stopped=0
  # the parent logs stop-requested on SIGTERM/SIGINT: before our own stop
  # it means someone else signalled it (a shared machine) or it stopped itself
  smtpd_kind "$kind" && grep -q 'event=stop-requested' "$dir/server.log" && stopped=1
  if [[ $kind != sink ]]; then
    e2e_kind "$kind" && $MON waitcount "$UCOUNT" "$TOTAL_SENT" 5 >/dev/null
    dlv=$(delivered "$kind" "$dir")
    if ((dlv < TOTAL_SENT && stopped)) && [[ $kind == relay ]]; then
      extra+=("$((TOTAL_SENT - dlv)) of $TOTAL_SENT accepted not delivered before the stop (see queue files)")
    elif ((dlv < TOTAL_SENT)); then
      extra+=("LOST: $((TOTAL_SENT - dlv)) of $TOTAL_SENT accepted never delivered")
    fi
    ((dlv > TOTAL_SENT)) && extra+=("$((dlv - TOTAL_SENT)) more delivered than the client counted ($TOTAL_SENT)")
  fi
  ((stopped)) && extra+=("smtpd pid $SPID stopped mid-run: a SIGTERM/SIGINT not sent by this script")
  alive "$SPID" || extra+=("server gone")
  [[ $kind == postfix ]] && postfix -c "$dir/pf/etc" stop >/dev/null 2>&1
  stop_tree "$SPID"
  stop_profile "$dir" "$cell"
  [[ -n $UPID ]] && stop_tree "$UPID"
  if [[ $kind == relay ]]; then
    left=$(find "$dir/queue/queue" -type f 2>/dev/null | wc -l)
    ((left > 0)) && extra+=("$left files left in queue/")
  fi
  if smtpd_kind "$kind"; then
    an=$(anomalies "$dir/server.log")
    if [[ -n $an ]]; then
      extra+=("log: $an")
      log "  unusual log lines: $an; e.g.:"
      awk '/event=stop-requested/ { exit }
           !/event=(start|spawn|connect|disconnect|message|delivery|queued|removed|queue-loaded|upstream-connected|upstream-addresses|upstream-reachable|ready|stats|channel-open) / &&
           !/result=delivered/' "$dir/server.log" | head -3 >&2
    fi
    grep -q 'event=child-died' "$dir/server.log" && extra+=("CHILD DIED")
  fi
  [[ $status == ok && (${#extra[@]} -gt 0 || -n $range) ]] && status=""
  local s
  for s in "$range" "${extra[@]}"; do [[ -n $s ]] && status="${status:+$status; }$s"; done
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$kind" "$cell" "$(cut -d'|' -f2-8 <<<"$chosen")" \
    "$(awk -v k="$pss" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')" "$nproc" "$status" >>"$ROWS"
  if [[ $BENCH_KEEP != 1 && -z ${extra[*]} ]]; then
    rm -rf "$dir"
  else
    KEPT+=("$dir")
    [[ -n ${extra[*]} ]] && log "  problems: ${extra[*]} (logs kept in $dir)"
  fi
}

# ---- main ---------------------------------------------------------------------
START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for cell in $BENCH_CELLS; do
  IFS=: read -r size conc conn rcpts <<<"$cell"
  for s in $BENCH_SERVERS; do measure "$s" "$size" "$conc" "$conn" "${rcpts:-1}"; done
done
ELAPSED=$(($(date +%s) - START))

# ---- report -------------------------------------------------------------------
# rows: KIND|SIZE:CONC:CONN:RCPTS|N|ACC|E2E|CPU|US|OVF|STEAL|PSS|HWM|PROCS|STATUS
declare -A SINKRATE VAL
while IFS='|' read -r kind cell n acc e2e cpu us ovf steal pss hwm nproc status; do
  [[ $kind == sink ]] && SINKRATE[$cell]=$acc
  VAL[$kind:$cell:acc]=$acc VAL[$kind:$cell:e2e]=${e2e%\*} VAL[$kind:$cell:us]=$us VAL[$kind:$cell:pss]=$pss
done <"$ROWS"

sizel() { awk -v s="$1" 'BEGIN { if (s >= 1024 && s % 1024 == 0) print s / 1024 " KiB"; else print s " B" }'; }
cell_name() { IFS=: read -r size conc conn rcpts <<<"$1"
  echo "$(sizel "$size") c$conc $conn$( ((rcpts > 1)) && echo " ${rcpts} rcpt")"; }
target_row() {  # target_row LABEL VALUE REFERENCE TARGET ge|le
  local r x; r=$(fdiv "$2" "$3" "%.3f"); x=$(fdiv "$2" "$3" "%.6f")
  echo "| $1 | $2 | $3 | $(mark "$r" "$4" "$5" "$x") | $([[ $5 == ge ]] && echo ≥ || echo ≤) $4 |"
}
mark() {  # mark VALUE TARGET ge|le [EXACT]: the value with a check mark or a
  # cross, judged on the exact ratio (0.3996 prints 0.400 and misses 0.4)
  awk -v v="$1" -v t="$2" -v op="$3" -v x="${4:-$1}" 'BEGIN { if (v == "-" || v == "") { print "-"; exit }
    ok = (op == "ge") ? (x + 0 >= t) : (x + 0 <= t); printf "%s %s", v, (ok ? "✓" : "✗") }'
}

{
  echo "# smtpd bench/run.sh $(date -Is) (${ELAPSED} s)"
  echo
  echo "- host: $(uname -sr), $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)), load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg); a shared machine: single runs vary by 10-30 %, more while other jobs run (the smtp-sink rows show it)"
  echo "- smtpd: ${SMTPD_ORIG#"$TOP"/} ($("$SMTPD" -V 2>&1 | head -1), built $SMTPD_BUILT, sha256 $(sha256sum "$SMTPD" | cut -c1-12), run from a copy), git $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)$(git -C "$TOP" diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
  echo "- smtpd relay: $( ((${#PRIVSEP[@]})) && echo "-n, no privilege separation (not root, or BENCH_PRIVSEP=0)" || echo "as root with privilege separation (no -n), as deployed"); smtpd debug: -n"
  echo "- smtp-source/smtp-sink from postfix $(dpkg-query -W -f='${Version}' postfix 2>/dev/null); network: $([[ ${BENCH_IN_NETNS:-0} == 1 ]] && echo 'private netns, loopback only' || echo 'host loopback')"
  echo "- messages per measured run: $BENCH_MSGS_SMALL (1 KiB), $BENCH_MSGS_LARGE (100 KiB), after a warm-up of a tenth; repeat=$BENCH_REPEAT; relay queue on $(df -T "$WORK" | awk 'NR == 2 { print $2 }') ($WORK)"
  echo
  echo "| server | size | conc | conn | rcpt | msgs | accepted msgs/s | e2e msgs/s | × smtp-sink | × Postfix e2e | CPU µs/msg | CPU ÷ Postfix | peak PSS MiB | PSS ÷ Postfix | procs | listen ovf | steal s | status |"
  echo "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  while IFS='|' read -r kind cell n acc e2e cpu us ovf steal pss hwm nproc status; do
    IFS=: read -r size conc conn rcpts <<<"$cell"
    name=smtp-sink; xs="1.00"; xpf="-"; cpf="-"; ppf="-"
    pf_e2e=${VAL[postfix:$cell:e2e]:--} pf_us=${VAL[postfix:$cell:us]:--} pf_pss=${VAL[postfix:$cell:pss]:--}
    case $kind in
      debug) name="smtpd debug"; xs=$(fdiv "$acc" "${SINKRATE[$cell]:--}" "%.2f") ;;
      relay | postfix)
             name="smtpd relay"; [[ $kind == postfix ]] && name="Postfix relay"
             xs=$(fdiv "${e2e%\*}" "${SINKRATE[$cell]:--}" "%.2f")
             xpf=$(fdiv "${e2e%\*}" "$pf_e2e" "%.2f")
             cpf=$(fdiv "$us" "$pf_us" "%.2f")
             ppf=$(fdiv "$pss" "$pf_pss" "%.2f") ;;
    esac
    echo "| $name | $(sizel "$size") | $conc | $conn | $rcpts | $n | $acc | $e2e | $xs | $xpf | $us | $cpf | $pss | $ppf | $nproc | $ovf | $steal | $status |"
  done <"$ROWS"
  echo
  echo "accepted: messages smtp-source completed / its wall time. e2e (relays): messages counted by the upstream smtp-sink / time from client start until the last one arrived (* = not all arrived). × smtp-sink: debug accepted, relay e2e, over this run's smtp-sink row of the same cell. × Postfix e2e, CPU ÷ Postfix, PSS ÷ Postfix: against this run's Postfix row of the same cell (Postfix 3.7, durable queue on the same disk, the same smtp-sink upstream). CPU: user+sys of all the server's processes (parent and children, reaped children included) from client start until the last message arrived upstream (relays) or the client finished; µs/msg = that / messages. peak PSS: sampled (every ${BENCH_SAMPLE_INTERVAL} s) maximum of the summed Pss of the server's processes during the measured runs. listen ovf: TcpExt ListenOverflows during the run. steal: hypervisor steal time during the run (the physical host was busy). status: ok, or client errors, messages lost, files left in the queue, unusual smtpd log events. Medians of $BENCH_REPEAT."
  echo
  c20=1024:20:new:1 c100=1024:100:new:1 k20=1024:20:keep:1
  echo "| figure (1 KiB messages, all from this run) | smtpd | reference | ratio | target |"
  echo "|---|---:|---:|---:|---|"
  for c in $c20 $c100 $k20; do
    target_row "relay e2e, $(cell_name "$c"), ÷ Postfix e2e" "${VAL[relay:$c:e2e]:--}" "${VAL[postfix:$c:e2e]:--}" 4 ge
  done
  target_row "relay e2e, $(cell_name "$c20"), ÷ smtp-sink" "${VAL[relay:$c20:e2e]:--}" "${SINKRATE[$c20]:--}" 0.4 ge
  for c in $c20 $k20; do
    target_row "relay CPU µs/msg, $(cell_name "$c"), ÷ Postfix" "${VAL[relay:$c:us]:--}" "${VAL[postfix:$c:us]:--}" 0.2 le
  done
  target_row "relay peak PSS MiB, $(cell_name "$c100"), ÷ Postfix" "${VAL[relay:$c100:pss]:--}" "${VAL[postfix:$c100:pss]:--}" 0.25 le
  for c in $BENCH_CELLS; do
    target_row "debug msgs/s, $(cell_name "$c"), ÷ smtp-sink" "${VAL[debug:$c:acc]:--}" "${SINKRATE[$c]:--}" 0.8 ge
  done
  echo
  echo "Targets from ../shared/BENCH.md; every reference is a row of this run."
  [[ -s $WORK/profiles ]] && { echo; cat "$WORK/profiles"; }
}
