"""Hostile input for tests/storm/flood.sh: malformed DHCP, TFTP and HTTP
sent to one server for a bounded time at a bounded rate. Not a fuzzer: a
fixed mix of the shapes that break hand-written decoders (truncations,
lengths past the end, bad opcodes, path escapes, absurd options, torn and
oversized HTTP requests). Prints how many of each it sent."""
import os, random, socket, struct, sys, time

server, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "udp"  # udp: DHCP + TFTP; http
rnd = random.Random(7)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setblocking(False)
sent = {"dhcp": 0, "tftp": 0, "http": 0}

def dhcp_like():
    b = bytearray(os.urandom(rnd.choice([0, 1, 4, 100, 235, 239, 240, 241, 300, 576, 1400])))
    if len(b) >= 240 and rnd.random() < 0.7:
        b[0] = 1; b[1] = 1; b[2] = 6
        b[236:240] = bytes([99, 130, 83, 99])
        if len(b) > 243:
            kind = rnd.randrange(5)
            if kind == 0:   # option length running past the end
                b[240:243] = bytes([53, 250, 1])
            elif kind == 1: # message type with no value, then END missing
                b[240:242] = bytes([53, 0])
            elif kind == 2: # option 82 / 61 / 97 with zero or huge lengths
                b[240:247] = bytes([53, 1, 1, 82, 255, 1, 5])
            elif kind == 3: # overload option pointing at file/sname
                b[240:246] = bytes([53, 1, 3, 52, 1, 3])
            else:           # a DISCOVER from a giaddr that is not the relay
                b[24:28] = bytes([10, 97, rnd.randrange(256), rnd.randrange(256)])
                b[240:244] = bytes([53, 1, 1, 255])
    return bytes(b)

def tftp_like():
    kind = rnd.randrange(10)
    if kind == 0: return b""
    if kind == 1: return b"\x00"
    if kind == 2: return b"\x00\x01../../etc/passwd\x00octet\x00"
    if kind == 3: return b"\x00\x01/etc/shadow\x00octet\x00"
    if kind == 4: return b"\x00\x01pxelinux.0\x00octet\x00blksize\x000\x00windowsize\x0099999\x00"
    if kind == 5: return b"\x00\x01pxelinux.0\x00octet"      # no terminating NULs
    if kind == 6: return b"\x00\x04\x00\x01"                  # ACK to the listen port
    if kind == 7: return b"\x00\x03\x00\x01" + os.urandom(600)  # DATA to a server
    if kind == 8: return b"\x00\x01" + b"A" * 1400 + b"\x00netascii\x00"
    return os.urandom(rnd.randrange(1, 700))

HTTP = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS hello
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /pxeboot HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{",
    b"POST /pxeboot HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-Junk: " + b"a" * 70000 + b"\r\n\r\n",
    b"BREW /coffee HTCPCP/1.0\r\n\r\n",
    b"GET /kickstart/?name=%00%ff&os=\n HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /pxeboot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\r\n\r\n\r\n",
    b"GET /pxelinux/01-zz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n",
]

def http_once():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        s.connect((server, 80))
        s.sendall(rnd.choice(HTTP))
        try:
            s.recv(4096)
        except OSError:
            pass
    except OSError:
        pass
    finally:
        s.close()

end = time.monotonic() + seconds
interval = 1.0 / rate
next_t = time.monotonic()
while time.monotonic() < end:
    r = rnd.random() if mode == "udp" else 1.0
    try:
        if r < 0.5:
            udp.sendto(dhcp_like(), (server, 67)); sent["dhcp"] += 1
        elif r <= 1.0 and mode == "udp":
            udp.sendto(tftp_like(), (server, 69)); sent["tftp"] += 1
        else:
            http_once(); sent["http"] += 1
    except OSError:
        pass
    next_t += interval
    d = next_t - time.monotonic()
    if d > 0:
        time.sleep(d)
print("flood sent:", sent, flush=True)
