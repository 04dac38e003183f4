#!/usr/bin/env python3
"""Benchmark (not a test): does runvoyd give memory back after a long run and after a burst of hostile connections?

Reads runvoyd's resident memory (/proc/PID/status: VmRSS, and its anonymous and file-backed parts) when warm and
idle (started, after its first quiet spell, then after a warm-up), after EXECUTIONS `exec ["true"]` (back to back on CLIENTS connections), and after HOSTILE connections that
each send 3 bytes of a frame header and stay, then close. Each figure is taken once the daemon has been idle for
15 seconds (the daemon trims its memory once it has been quiet for 5 s), and compared with the warm idle one: the goal is to come back within 10 %. Run by scripts/bench-soak;
alone:

    scripts/bench-soak.py --socket SOCK --pid PID [--executions 100000] [--hostile 1000]
"""

import argparse
import json
import os
import socket
import struct
import threading
import time


def memory(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def descriptors(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Connection:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = bytearray()

    def send(self, obj):
        payload = json.dumps(obj).encode()
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def read_exactly(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("bench-soak: runvoyd closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_frame(self):
        (length,) = struct.unpack(">I", self.read_exactly(4))
        return json.loads(self.read_exactly(length & 0x7FFFFFFF))

    def close(self):
        self.sock.close()


def run_executions(path, count, errors):
    connection = Connection(path)
    for i in range(count):
        connection.send({"v": 1, "id": i, "method": "exec", "params": {"argv": ["true"]}})
        while True:
            frame = connection.read_frame()
            if "error" in frame:
                errors.append(frame["error"])
                break
            if frame.get("event") == "exit":
                if frame.get("exit_code") != 0:
                    errors.append(frame)
                break
    connection.close()


def executions(path, total, clients):
    errors = []
    share = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=run_executions, args=(path, n, errors)) for n in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit("bench-soak: %d executions failed, first: %s" % (len(errors), errors[0]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--executions", type=int, default=100000)
    parser.add_argument("--clients", type=int, default=4, help="connections the executions are spread over")
    parser.add_argument("--hostile", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000, help="executions before the warm idle figure")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds of idleness before each figure")
    parser.add_argument("--state", help="the state directory, to report the size of the history's write-ahead log")
    parser.add_argument(
        "--max-anon-growth", type=float, metavar="BYTES",
        help="exit 1 when anonymous memory grows by more than BYTES per execution from warm idle to after the run"
        " (a leak check: a fixed amount of growth, caches filling up, spread over many executions stays small)")
    args = parser.parse_args()

    rows = []

    def take(name):
        time.sleep(args.settle)
        rows.append((name, memory(args.pid), descriptors(args.pid)))

    rows.append(("started", memory(args.pid), descriptors(args.pid)))
    # The first quiet spell gives the start-up code back (MemoryTrimmer); the warm-up then brings back what
    # serving needs, so the warm idle figure is the daemon's steady state.
    take("started, then quiet")
    executions(args.socket, args.warmup, 1)
    take("warm idle (after %d executions)" % args.warmup)

    started = time.monotonic()
    executions(args.socket, args.executions, args.clients)
    elapsed = time.monotonic() - started
    take("after %d executions" % args.executions)

    held = []
    for _ in range(args.hostile):
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(args.socket)
        connection.sendall(b"\x00\x00\x10")
        held.append(connection)
    time.sleep(1)
    rows.append(("with %d hostile connections held" % args.hostile, memory(args.pid), descriptors(args.pid)))
    for connection in held:
        connection.close()
    take("after they closed")

    warm = rows[2][1]
    if args.state:
        path = os.path.join(args.state, "history.sqlite-wal")
        size = os.path.getsize(path) if os.path.exists(path) else 0
        print("history write-ahead log at the end: %.1f MB" % (size / 1e6))
    print("%-44s %9s %9s %9s %6s %7s" % ("", "VmRSS", "RssAnon", "RssFile", "fds", "RSS/warm"))
    for name, fields, fds in rows:
        ratio = fields["VmRSS"] / warm["VmRSS"]
        print(
            "%-44s %6.1f MB %6.1f MB %6.1f MB %6d %7.3f"
            % (name, fields["VmRSS"] / 1024, fields["RssAnon"] / 1024, fields["RssFile"] / 1024, fds, ratio)
        )
    print("peak resident (VmHWM): %.1f MB" % (rows[-1][1]["VmHWM"] / 1024))
    print("%d executions in %.1f s (%.0f/s on %d connections)" % (
        args.executions, elapsed, args.executions / elapsed, args.clients))
    for index in (3, 5):
        name, fields, _ = rows[index]
        ratio = fields["VmRSS"] / warm["VmRSS"]
        print("%s: %.1f%% of warm idle (goal: within 10%%): %s" % (
            name, ratio * 100, "ok" if ratio <= 1.10 else "OVER"))
    growth = (rows[3][1]["RssAnon"] - warm["RssAnon"]) * 1024 / args.executions
    print("anonymous memory from warm idle to after the executions: %+.0f bytes per execution" % growth)
    if args.max_anon_growth is not None and growth > args.max_anon_growth:
        print("bench-soak: more than %.0f bytes per execution: memory is retained per execution" % args.max_anon_growth)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
