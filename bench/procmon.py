#!/usr/bin/env python3
"""/proc helpers for bench/run.sh and bench/idle.sh (Linux, stdlib only).

  procmon.py tree PID
      PIDs of the process tree rooted at PID (PID first), one per line.
      Found by scanning /proc/*/stat for parent PIDs (this kernel has no
      /proc/PID/task/TID/children).
  procmon.py cpu PID
      user+sys CPU seconds of the tree rooted at PID: utime+stime+cutime+
      cstime of every live process, so children that exited and were reaped
      inside the tree (smtpd's parent reaps its workers) stay counted.  Take
      it before and after a run and subtract.
  procmon.py mem PID [-v]
      Current sums over the tree: "<Rss kB> <Pss kB> <processes>"; with -v
      followed by one line per process: "<pid> <Rss kB> <Pss kB> <title>".
  procmon.py watch OUTFILE INTERVAL MAXSEC PID
      Sample the tree every INTERVAL s until SIGTERM/SIGINT, until PID is
      gone, or MAXSEC passed; then write one line to OUTFILE:
        <max sum VmHWM kB> <max sum Pss kB> <max sum Rss kB> <max procs> <samples>
  procmon.py waitcount FILE TARGET TIMEOUT
      FILE is the stdout of `smtp-sink -c` ("sess=N quit=N mesg=N\\r"
      records).  Poll its last bytes every 10 ms until mesg >= TARGET,
      TIMEOUT s pass, or SIGTERM; print "<mesg> <time_ns> <reached 0|1>".
  procmon.py count FILE
      Last mesg= value of a `smtp-sink -c` output, or the last number of a
      `smtp-source -c` output ("N\\r" records); 0 if none.  Reads only the
      last 256 bytes.
"""
import os
import re
import signal
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    # rest[0]=state(3) rest[1]=ppid(4) rest[11..14]=utime,stime,cutime,cstime
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree(root):
    if not os.path.exists("/proc/%d" % root):
        return []
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid, _ = _stat(int(d))
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def cpu(root):
    total = 0
    for p in tree(root):
        try:
            total += _stat(p)[1]
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK


def _mem(pid):
    """(VmHWM, Rss, Pss) in kB; zeros for a process that is gone."""
    hwm = rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                    break
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except (OSError, ValueError):
        pass
    return hwm, rss, pss


def _name(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def mem(root, verbose):
    procs = tree(root)
    rows = []
    trss = tpss = 0
    for p in procs:
        _, rss, pss = _mem(p)
        trss += rss
        tpss += pss
        rows.append("%d %d %d %s" % (p, rss, pss, _name(p)))
    print(trss, tpss, len(procs))
    if verbose:
        print("\n".join(rows))


def watch(outfile, interval, maxsec, root):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    best = [0, 0, 0, 0]
    samples = 0
    deadline = time.monotonic() + maxsec
    while True:
        procs = tree(root)
        if not procs:
            break
        hwm = pss = rss = 0
        for p in procs:
            h, r, s = _mem(p)
            hwm += h
            rss += r
            pss += s
        best = [max(best[0], hwm), max(best[1], pss), max(best[2], rss),
                max(best[3], len(procs))]
        samples += 1
        if stop or time.monotonic() > deadline:
            break
        end = time.monotonic() + interval
        while not stop and time.monotonic() < end:
            time.sleep(min(0.02, interval))
    with open(outfile + ".tmp", "w") as f:
        f.write("%d %d %d %d %d\n" % (best[0], best[1], best[2], best[3], samples))
    os.replace(outfile + ".tmp", outfile)


_MESG = re.compile(rb"mesg=(\d+)")
_NUM = re.compile(rb"(\d+)\r")


def _last_count(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
    except OSError:
        return 0
    m = _MESG.findall(tail)
    if m:
        return int(m[-1])
    m = _NUM.findall(tail)
    return int(m[-1]) if m else 0


def waitcount(path, target, timeout):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    deadline = time.monotonic() + timeout
    while True:
        n = _last_count(path)
        if n >= target:
            print(n, time.time_ns(), 1, flush=True)
            return
        if stop or time.monotonic() > deadline:
            print(n, time.time_ns(), 0, flush=True)
            return
        time.sleep(0.01)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "tree":
        print("\n".join(str(p) for p in tree(int(argv[2]))))
    elif cmd == "cpu":
        print("%.2f" % cpu(int(argv[2])))
    elif cmd == "mem":
        mem(int(argv[2]), len(argv) > 3 and argv[3] == "-v")
    elif cmd == "watch":
        watch(argv[2], float(argv[3]), float(argv[4]), int(argv[5]))
    elif cmd == "waitcount":
        waitcount(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "count":
        print(_last_count(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
