#!/usr/bin/env python3
"""Idle SMTP sessions for bench/idle.sh (stdlib only).

  idleclient.py HOST PORT COUNT [SECONDS]

Opens COUNT TCP connections to HOST:PORT (at most 200 connects in flight),
reads the greeting of each, and then keeps every connection open without
sending anything.  Protocol on stdin/stdout, one line each:

  -> "OPEN held=H failed=F other=O seconds=S"   once every connection has
     its greeting (held: a 220; other: any other reply, e.g. 421; failed:
     refused, reset or no greeting within the time), or SECONDS passed
  <- "check"  -> "CHECK alive=A closed=C"  a connection that became
     readable (the server closed it or said something, e.g. a 421 timeout)
     counts as closed
  <- "quit" or end of input: close everything and exit 0

The whole program never runs longer than 3 x SECONDS (default 60).
"""
import errno
import os
import resource
import selectors
import socket
import sys
import time


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    hard_deadline = time.monotonic() + 3 * seconds
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 64
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        except (ValueError, OSError):
            pass

    sel = selectors.DefaultSelector()
    pending = {}      # sock -> bytes read so far (connecting or awaiting 220)
    held, failed, other = [], 0, 0
    started = 0
    inflight_max = 200
    t0 = time.monotonic()
    deadline = t0 + seconds

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        pending[s] = b""
        sel.register(s, selectors.EVENT_READ)
        return True

    while (started < count or pending) and time.monotonic() < deadline:
        while started < count and len(pending) < inflight_max:
            started += 1
            try:
                if not start_one():
                    failed += 1
            except OSError:
                failed += 1
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(512)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                del pending[s]
                failed += 1
                continue
            buf = pending[s] + data
            if b"\n" not in buf:
                pending[s] = buf
                continue
            sel.unregister(s)
            del pending[s]
            if buf.startswith(b"220"):
                held.append(s)
            else:
                other += 1
                s.close()
    for s in list(pending):
        sel.unregister(s)
        s.close()
        failed += 1
    failed += count - started
    pending.clear()
    print("OPEN held=%d failed=%d other=%d seconds=%.2f"
          % (len(held), failed, other, time.monotonic() - t0), flush=True)

    # idle: nothing is sent; watch for the server closing connections
    for s in held:
        sel.register(s, selectors.EVENT_READ)
    closed = set()
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_READ)
    inbuf = b""
    while time.monotonic() < hard_deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj == stdin_fd:
                try:
                    chunk = os.read(stdin_fd, 256)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                inbuf += chunk
                while b"\n" in inbuf:
                    line, inbuf = inbuf.split(b"\n", 1)
                    cmd = line.strip()
                    if cmd == b"check":
                        print("CHECK alive=%d closed=%d"
                              % (len(held) - len(closed), len(closed)), flush=True)
                    elif cmd == b"quit":
                        return
                continue
            s = key.fileobj
            sel.unregister(s)
            closed.add(s)


if __name__ == "__main__":
    main()
