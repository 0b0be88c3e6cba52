#!/usr/bin/env python3
"""pty_dialog.py: run a command on a pseudo-terminal (its controlling tty)
and hold a dialog with it: wait for each expected text, then type a line.

    pty_dialog.py TIMEOUT_S COMMAND [EXPECT LINE]... [--end EXPECT]

Each EXPECT is waited for (in the output after the previous one) for at most
TIMEOUT_S seconds, then LINE is typed with a newline. With --end, the last
EXPECT is only waited for. Everything the command printed goes to stdout.
Exit 0 when every text was seen, 1 on a timeout or early end (after killing
the command), 2 on bad arguments.
"""

import os
import pty
import select
import signal
import sys
import time


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    timeout = float(argv[1])
    command = argv[2]
    rest = argv[3:]
    end = None
    if len(rest) >= 2 and rest[-2] == "--end":
        end = rest[-1]
        rest = rest[:-2]
    if len(rest) % 2:
        print("pty_dialog: EXPECT without a LINE", file=sys.stderr)
        return 2
    steps = [(rest[i], rest[i + 1]) for i in range(0, len(rest), 2)]
    if end is not None:
        steps.append((end, None))

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("/bin/sh", ["/bin/sh", "-c", command])

    seen = b""
    ok = True
    for expect, line in steps:
        want = expect.encode()
        deadline = time.monotonic() + timeout
        while want not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"\npty_dialog: no {expect!r} within {timeout} s", file=sys.stderr)
                ok = False
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                print(f"\npty_dialog: the command ended before {expect!r}", file=sys.stderr)
                ok = False
                break
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            seen += chunk
        if not ok:
            break
        seen = seen[seen.index(want) + len(want):]
        if line is not None:
            os.write(fd, line.encode() + b"\n")

    if not ok:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Drain what is left (bounded), then reap the command.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    os.close(fd)
    for _ in range(50):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
