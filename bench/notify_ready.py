#!/usr/bin/env python3
"""Runs a Type=notify daemon the way systemd would and reports when it is ready.

Usage: notify_ready.py LOG COMMAND...

Binds a unix datagram socket, starts COMMAND with NOTIFY_SOCKET pointing at it (stdout
and stderr to LOG) and prints, flushed, `pid <PID>` at once and `ready <MILLISECONDS>`
when READY=1 arrives (time from just before the fork). Keeps reading the socket until
the daemon exits, so later notifications (STATUS=...) are not refused; SIGTERM is passed
on to the daemon. Exits with the daemon's status, or 1 when it exited before READY=1.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def main(argv):
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    log_path, command = argv[0], argv[1:]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        with open(log_path, "wb") as log:
            started = time.monotonic()
            daemon = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        signal.signal(signal.SIGTERM, lambda *_: daemon.send_signal(signal.SIGTERM))
        print(f"pid {daemon.pid}", flush=True)
        ready = False
        while daemon.poll() is None:
            try:
                message = sock.recv(4096)
            except socket.timeout:
                continue
            if not ready and b"READY=1" in message.split(b"\n"):
                ready = True
                print(f"ready {(time.monotonic() - started) * 1000:.1f}", flush=True)
        return daemon.returncode if ready else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
