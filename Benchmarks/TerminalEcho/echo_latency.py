#!/usr/bin/env python3
"""Keystroke echo latency: one byte typed into a terminal until its echo is read back, through runvoyd
(`runvoyctl exec -t -- cat`: the byte goes runvoyctl -> runvoyd -> the command's pty, whose line discipline echoes
it, and back) and on a local pty running `cat` (the kernel's echo alone). Prints the median and 99th percentile.

usage: echo_latency.py [ROUNDS] -- RUNVOYCTL ARGS...   (e.g. -- .build/release/runvoyctl exec --socket S -t -q --)
"""
import fcntl, os, select, statistics, subprocess, sys, termios, time


def measure(argv, rounds):
    master, slave = os.openpty()

    def controlling():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                             preexec_fn=controlling)
    os.close(slave)

    def read_until(marker, deadline=30):
        seen = b""
        end = time.time() + deadline
        while marker not in seen:
            if time.time() > end:
                raise SystemExit(f"no {marker!r} in {seen!r}")
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 65536)
        return seen

    os.write(master, b"ready\r")
    read_until(b"ready")
    time.sleep(0.5)
    while select.select([master], [], [], 0.2)[0]:
        os.read(master, 65536)
    samples = []
    for i in range(rounds):
        byte = b"abcdefghijklmnopqrstuvwxyz"[i % 26:i % 26 + 1]
        start = time.perf_counter_ns()
        os.write(master, byte)
        got = b""
        while byte not in got:
            select.select([master], [], [])
            got += os.read(master, 65536)
        samples.append((time.perf_counter_ns() - start) / 1000)
        if i % 64 == 63:
            # End the line (cat prints it back) and drain everything, so no letter of it counts as an echo.
            os.write(master, b"\r")
            read_until(b"\n")
            while select.select([master], [], [], 0.1)[0]:
                os.read(master, 65536)
    os.write(master, b"\r\x04")
    child.wait(timeout=30)
    os.close(master)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main():
    args = sys.argv[1:]
    rounds = int(args[0]) if args and args[0] != "--" else 1000
    runvoyctl = args[args.index("--") + 1:]
    local = measure(["cat"], rounds)
    remote = measure(runvoyctl + ["cat"], rounds)
    print(f"local pty      median {local[0]:8.1f} us   p99 {local[1]:8.1f} us")
    print(f"through runvoyd median {remote[0]:8.1f} us   p99 {remote[1]:8.1f} us")
    print(f"added          median {remote[0] - local[0]:8.1f} us   ratio {remote[0] / local[0]:.1f}x")


main()
