"""Slow-loris client for tests/storm/slowloris.sh: opens CONNS connections
to server:80, sends a partial request head on each and then one more
header byte every few seconds, for SECONDS, never finishing a request.
Prints how many connections it held open at the end."""
import socket, sys, time

server, conns, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks = []
for i in range(conns):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((server, 80))
        s.sendall(b"GET /pxeboot HTTP/1.1\r\nHost: gopxe\r\nX-Slow-%d: " % i)
        socks.append(s)
    except OSError:
        s.close()
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
print(f"still open after {seconds:.0f}s: {len(socks)}", flush=True)
for s in socks:
    s.close()
