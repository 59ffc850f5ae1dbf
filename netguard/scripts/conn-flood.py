#!/usr/bin/env python3
"""Holds many hostile connections against a server and reports what it costs the server.

    conn-flood.py HOST:PORT PID KIND COUNT [--tls] [--wait SECONDS] [--probe PATH]

KIND is one of:
  idle       connect and send nothing
  slowloris  send a request head one byte every 2 s, never finishing it
  handshake  send half a TLS ClientHello and nothing more

The script opens COUNT connections (from 127.0.0.2, so a per-address cap does not
block the probe from 127.0.0.1), then watches for WAIT seconds (default 45). Before,
at the peak and at the end it prints the server's open descriptors (/proc/PID/fd) and
resident memory (VmRSS), how many of its connections the server has closed, and whether
a normal request (GET PROBE, default /healthz, over TLS with --tls) was answered.
Every loop is bounded by COUNT and WAIT; only loopback addresses are used.
"""
import os
import socket
import ssl
import sys
import time


def server_stats(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, rss


def probe(host, port, path, use_tls):
    try:
        s = socket.create_connection((host, port), timeout=5)
        if use_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = s.recv(64)
        s.close()
        return reply.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed)"
    except OSError as e:
        return f"failed: {e}"


def closed(conns):
    n = 0
    for c in conns:
        try:
            c.setblocking(False)
            if c.recv(1024) == b"":
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


def main():
    args = sys.argv[1:]
    if len(args) < 4:
        print(__doc__)
        sys.exit(2)
    target, pid, kind, count = args[0], int(args[1]), args[2], int(args[3])
    use_tls = "--tls" in args
    wait = int(args[args.index("--wait") + 1]) if "--wait" in args else 45
    path = args[args.index("--probe") + 1] if "--probe" in args else "/healthz"
    host, port = target.rsplit(":", 1)
    port = int(port)

    def report(stage, conns):
        fds, rss = server_stats(pid)
        print(f"{stage:>8}: server fds {fds:5d}, RSS {rss / 1024:7.1f} MiB, "
              f"closed by server {closed(conns):5d}/{len(conns)}, "
              f"probe: {probe(host, port, path, use_tls)}", flush=True)

    report("before", [])
    conns = []
    hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
    for _ in range(count):
        try:
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.settimeout(5)
            s.connect((host, port))
            if kind == "handshake":
                s.sendall(hello)
            elif kind == "slowloris":
                s.sendall(b"G")
            conns.append(s)
        except OSError as e:
            print(f"connect failed after {len(conns)}: {e}")
            break
    time.sleep(1)
    report("peak", conns)
    start = time.time()
    head = b"ET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    i = 0
    while time.time() - start < wait:
        if kind == "slowloris":
            for c in conns:
                try:
                    c.setblocking(True)
                    c.settimeout(0.01)
                    c.send(head[i % len(head):i % len(head) + 1])
                except OSError:
                    pass
            i += 1
        time.sleep(2)
    report(f"+{wait}s", conns)
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
