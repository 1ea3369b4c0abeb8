#!/usr/bin/env bash
# bench/idle.sh - memory of smtpd holding many concurrent idle sessions.
# See bench/README.md.
#
# Starts smtpd in debug mode (max-sessions raised so that one worker could
# hold them all), measures its processes' RSS and PSS with no session open,
# opens IDLE_SESSIONS connections that read the 220 greeting and then send
# nothing, measures again while they are all held, checks that none was
# closed, closes them, checks the daemon still takes a message, and prints a
# markdown table.  Every wait is bounded; everything it starts is stopped by
# PID on exit.  As root it runs in a private network namespace.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
: "${SMTPD:=$TOP/build/smtpd}"
: "${PYTHON:=python3}"
MON="$PYTHON $HERE/procmon.py"

: "${IDLE_SESSIONS:=10000}"     # concurrent idle sessions
: "${IDLE_HOLD:=10}"            # seconds to hold them before the final check
: "${IDLE_OPEN_TIMEOUT:=60}"    # bound on opening them all (s)
: "${IDLE_WORKERS:=}"           # SMTPD_WORKERS (default: smtpd's, one per CPU)
: "${IDLE_MAX_SESSIONS:=$IDLE_SESSIONS}"  # max-sessions per worker in the config
: "${IDLE_PORT:=13400}"
: "${IDLE_TOTAL_TIMEOUT:=300}"  # bound on the whole script (s)
: "${IDLE_NOFILE:=65536}"       # RLIMIT_NOFILE for smtpd and the client
: "${BENCH_NETNS:=auto}"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

if [[ ${IDLE_STAGE2:-0} != 1 ]]; then
  [[ -x $SMTPD ]] || die "$SMTPD missing: run make first (or set SMTPD=)"
  command -v smtp-source >/dev/null || die "smtp-source missing (Debian package postfix)"
  netns=$BENCH_NETNS
  [[ $netns == auto ]] && { [[ $(id -u) -eq 0 ]] && netns=1 || netns=0; }
  if [[ $netns == 1 ]]; then
    exec timeout -s TERM -k 10 "$IDLE_TOTAL_TIMEOUT" env IDLE_STAGE2=1 IDLE_IN_NETNS=1 \
      unshare --net -- bash "${BASH_SOURCE[0]}" "$@"
  fi
  exec timeout -s TERM -k 10 "$IDLE_TOTAL_TIMEOUT" env IDLE_STAGE2=1 IDLE_IN_NETNS=0 \
    bash "${BASH_SOURCE[0]}" "$@"
fi
if [[ ${IDLE_IN_NETNS:-0} == 1 ]]; then
  ip link set lo up 2>/dev/null || die "cannot bring up lo in the private network namespace"
fi
# descriptors: smtpd's workers set theirs to 2 x max-sessions + 64, capped
# by the hard limit they inherit; the client needs one per session
# (raising the hard limit needs CAP_SYS_RESOURCE; without it, the soft
# limit goes up to the hard one)
if ! ulimit -Hn "$IDLE_NOFILE" 2>/dev/null || ! ulimit -Sn "$IDLE_NOFILE" 2>/dev/null; then
  ulimit -Sn "$(ulimit -Hn)"
  log "RLIMIT_NOFILE: hard limit $(ulimit -Hn) cannot be raised to $IDLE_NOFILE; soft limit set to it"
fi
(($(ulimit -Sn) >= IDLE_SESSIONS + 64)) || log "RLIMIT_NOFILE $(ulimit -Sn) is too low for $IDLE_SESSIONS sessions in one process"

WORK=$(mktemp -d /tmp/smtpd-idle.XXXXXX)
SPID="" CPID=""
alive() {
  local st
  [[ -r /proc/$1/stat ]] || return 1
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}
stop_tree() {
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
}
cleanup() {
  trap - EXIT INT TERM
  [[ -n $CPID ]] && stop_tree "$CPID"
  [[ -n $SPID ]] && stop_tree "$SPID"
  if [[ ${KEEP:-0} == 1 ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# a private copy: the parent re-execs its own file for every child
cp "$SMTPD" "$WORK/smtpd" || die "cannot copy $SMTPD"
SMTPD_BUILT=$(date -r "$SMTPD" '+%F %T')
P=$IDLE_PORT
printf 'max-sessions %s\n' "$IDLE_MAX_SESSIONS" >"$WORK/smtpd.conf"
log "smtpd debug on 127.0.0.1:$P, max-sessions $IDLE_MAX_SESSIONS per worker, workers ${IDLE_WORKERS:-default}"
if [[ -n $IDLE_WORKERS ]]; then
  SMTPD_WORKERS=$IDLE_WORKERS "$WORK/smtpd" -d -n -f "$WORK/smtpd.conf" -c debug "127.0.0.1:$P" >/dev/null 2>"$WORK/server.log" &
else
  "$WORK/smtpd" -d -n -f "$WORK/smtpd.conf" -c debug "127.0.0.1:$P" >/dev/null 2>"$WORK/server.log" &
fi
SPID=$!
for ((i = 0; i < 200; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null && break
  alive "$SPID" || { cat "$WORK/server.log" >&2; die "smtpd did not start"; }
  sleep 0.05
done
sleep 1

mem() { $MON mem "$SPID"; }   # "RSS_kB PSS_kB PROCS"
read -r rss0 pss0 np0 < <(mem)
log "idle baseline: RSS $rss0 kB, PSS $pss0 kB, $np0 processes"

# the client: a coprocess we talk to line by line
coproc CL { exec "$PYTHON" "$HERE/idleclient.py" 127.0.0.1 "$P" "$IDLE_SESSIONS" "$IDLE_OPEN_TIMEOUT"; }
CPID=$CL_PID
line=""
read -r -t $((IDLE_OPEN_TIMEOUT + 30)) line <&"${CL[0]}" || die "client said nothing within $((IDLE_OPEN_TIMEOUT + 30)) s"
log "client: $line"
held=$(sed -n 's/.*held=\([0-9]*\).*/\1/p' <<<"$line")
failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
other=$(sed -n 's/.*other=\([0-9]*\).*/\1/p' <<<"$line")
opens=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")

# sample memory while they are held; keep the largest
sleep 1
rss1=0 pss1=0
for ((i = 0; i < IDLE_HOLD; i++)); do
  read -r r p np < <(mem)
  ((r > rss1)) && rss1=$r
  ((p > pss1)) && pss1=$p
  sleep 1
done
$MON mem "$SPID" -v | tail -n +2 >"$WORK/procs.held"
echo check >&"${CL[1]}"
read -r -t 30 line <&"${CL[0]}" || line="CHECK (no answer)"
log "client: $line"
alive_n=$(sed -n 's/.*alive=\([0-9]*\).*/\1/p' <<<"$line")
closed_n=$(sed -n 's/.*closed=\([0-9]*\).*/\1/p' <<<"$line")
echo quit >&"${CL[1]}"
for ((i = 0; i < 100; i++)); do alive "$CPID" || break; sleep 0.1; done
stop_tree "$CPID"; CPID=""

# sessions per worker (connect events by pid), and whether all ended
split=$(awk '/session: event=connect / { sub(/^smtpd\[/, ""); sub(/\].*/, ""); n[$0]++ }
             END { s = ""; for (p in n) { s = s sep n[p]; sep = " + " }; print s }' "$WORK/server.log")
for ((i = 0; i < 100; i++)); do
  disc=$(grep -c 'session: event=disconnect ' "$WORK/server.log")
  conn=$(grep -c 'session: event=connect ' "$WORK/server.log")
  ((disc >= conn)) && break
  sleep 0.1
done
read -r rss2 pss2 np2 < <(mem)

# the daemon must still take mail
timeout 20 smtp-source -m 1 -f from@example.com -t to@example.net "127.0.0.1:$P" >"$WORK/after.out" 2>&1
after_rc=$?
serving=yes; ((after_rc == 0)) || serving="no (smtp-source rc=$after_rc: $(head -c 100 "$WORK/after.out"))"
alive "$SPID" || serving="no: smtpd died"
# log lines other than the usual ones, up to our stop: counted by event,
# then the first three
unusual=$(awk '/event=stop-requested/ { exit }
               !/event=(start|spawn|connect|disconnect|message|delivery|ready|stats|channel-open) / { print }' "$WORK/server.log" >"$WORK/unusual"
          if [[ -s $WORK/unusual ]]; then
            awk '{ e = "other"; if (match($0, /event=[a-z-]+/)) e = substr($0, RSTART + 6, RLENGTH - 6)
                   if (match($0, /reason=[a-z-]+/)) e = e " " substr($0, RSTART, RLENGTH); n[e]++ }
                 END { for (e in n) print n[e] " x " e }' "$WORK/unusual"
            head -3 "$WORK/unusual"
          fi)
grep -q 'event=stop-requested' "$WORK/server.log" && unusual="$unusual
smtpd was stopped by a SIGTERM/SIGINT not sent by this script"
stop_tree "$SPID"; SPID=""

kib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "-" }'; }
allheld=no; ((held == IDLE_SESSIONS && alive_n == IDLE_SESSIONS)) && allheld=yes
rss_ok=$(awk -v r="$rss1" 'BEGIN { print (r / 1024 <= 256) ? "✓" : "✗" }')
per_pss=$(per "$pss1" "$pss0" "$held"); per_rss=$(per "$rss1" "$rss0" "$held")
per_ok=$(awk -v p="$per_pss" 'BEGIN { print (p != "-" && p < 16) ? "✓" : "✗" }')

echo "# smtpd bench/idle.sh $(date -Is)"
echo
echo "- host: $(uname -sr), $(nproc) CPUs, shared machine; network: $([[ ${IDLE_IN_NETNS:-0} == 1 ]] && echo 'private netns, loopback only' || echo 'host loopback')"
echo "- smtpd: ${SMTPD#"$TOP"/} ($("$WORK/smtpd" -V 2>&1 | head -1), built $SMTPD_BUILT, run from a copy), git $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)$(git -C "$TOP" diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
echo "- debug mode, config: max-sessions $IDLE_MAX_SESSIONS (per worker); workers ${IDLE_WORKERS:-default ($(nproc) CPUs)}; RLIMIT_NOFILE $(ulimit -Sn); no TLS"
echo
echo "| sessions | held (220 read) | still open after ${IDLE_HOLD} s | failed / other reply | open time s | sessions per worker | smtpd RSS MiB idle → held | smtpd PSS MiB idle → held | RSS per session KiB | PSS per session KiB | after close: RSS / PSS MiB | still serving |"
echo "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
echo "| $IDLE_SESSIONS | $held | ${alive_n:--} | $failed / $other | $opens | $split | $(kib "$rss0") → $(kib "$rss1") | $(kib "$pss0") → $(kib "$pss1") | $per_rss | $per_pss | $(kib "$rss2") / $(kib "$pss2") | $serving |"
echo
echo "| target (../shared/BENCH.md) | figure | |"
echo "|---|---:|---|"
echo "| 10,000 concurrent idle sessions all held | $held of $IDLE_SESSIONS held, ${alive_n:--} still open | $([[ $allheld == yes ]] && echo ✓ || echo ✗) |"
echo "| total RSS ≤ 256 MiB | $(kib "$rss1") MiB | $rss_ok |"
echo "| memory per idle session, aim < 16 KiB (no TLS) | $per_pss KiB PSS ($per_rss KiB RSS) | $per_ok |"
echo
echo "RSS and PSS: sums of Rss and Pss (smaps_rollup) over smtpd's processes (parent, relay, session workers); held = the largest of ${IDLE_HOLD} samples a second apart while every session was open. Per session = (held - idle) / sessions held. Kernel socket buffers are not in these figures."
echo
echo "Processes while held (pid, RSS kB, PSS kB, title):"
echo
echo '```'
cat "$WORK/procs.held"
echo '```'
if [[ -n $unusual ]]; then
  echo
  echo "Unusual smtpd log lines (counts, then the first three):"
  echo
  echo '```'
  echo "$unusual"
  echo '```'
fi
