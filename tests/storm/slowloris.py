"""Slow-loris client for tests/storm/slowloris.sh: opens CONNS connections
to server:80, sends a partial request head on each and then one more
header byte every few seconds, for SECONDS, never finishing a request;
connections the server closes are opened again (so CONNS stay pending).
Prints how many connections it opened and held."""
import socket, sys, time

server, conns, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
opened = 0

def open_one():
    global opened
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((server, 80))
        s.sendall(b"GET /pxeboot HTTP/1.1\r\nHost: gopxe\r\nX-Slow-%d: " % opened)
        opened += 1
        return s
    except OSError:
        s.close()
        return None

socks = [s for s in (open_one() for _ in range(conns)) if s]
print(f"opened {len(socks)} of {conns}", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    time.sleep(min(3, max(0, end - time.monotonic())))
    alive = []
    for s in socks:
        try:
            s.send(b"a")
            alive.append(s)
        except OSError:
            s.close()
    socks = alive
    while len(socks) < conns and time.monotonic() < end:
        s = open_one()
        if s is None:
            break
        socks.append(s)
print(f"after {seconds:.0f}s: {len(socks)} held, {opened} opened in all", flush=True)
for s in socks:
    s.close()
