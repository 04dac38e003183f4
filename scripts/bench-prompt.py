#!/usr/bin/env python3
"""Prompt latency (part of scripts/bench): how long after a command writes a short prompt the client sees it.

Runs `cat` with stdin forwarded on EXECUTOR, writes a 9-byte "prompt> " line to its input N times, and measures
from the write to the echo's arrival. On an executor that injects secrets, the redactor holds back the tail of
every read until the pipe has been quiet for its idle delay (20 ms), whatever the bytes are; elsewhere output
passes at once. Usage: bench-prompt.py SOCKET EXECUTOR [N]. Prints the median in milliseconds.
"""
import base64, json, socket, statistics, struct, sys, time

path, executor = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 50

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)

def send(obj):
    data = json.dumps(obj).encode()
    s.sendall(struct.pack(">I", len(data)) + data)

def read():
    header = b""
    while len(header) < 4:
        header += s.recv(4 - len(header))
    (length,) = struct.unpack(">I", header)
    body = b""
    while len(body) < length:
        body += s.recv(length - len(body))
    return json.loads(body)

send({"v": 1, "id": 1, "method": "exec", "params": {"executor": executor, "argv": ["cat"], "stdin": True}})
assert read().get("event") == "started"
prompt = b"prompt> \n"
samples = []
for i in range(count):
    start = time.monotonic()
    send({"v": 1, "id": i + 2, "method": "stdin", "params": {"data": base64.b64encode(prompt).decode()}})
    got = b""
    while len(got) < len(prompt):
        frame = read()
        assert frame.get("event") == "output", frame
        got += base64.b64decode(frame["data"])
    samples.append(time.monotonic() - start)
send({"v": 1, "id": 999, "method": "stdin", "params": {"eof": True}})
while read().get("event") != "exit":
    pass
print(f"{statistics.median(samples) * 1000:.3f}")
