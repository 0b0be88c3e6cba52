#!/usr/bin/python3
"""mock-gopxe.py — a stand-in for the gopxe binary, to test the e2e harness.

NOT gopxe. It takes the `gopxe serve` flags the scenarios use, runs dnsmasq
for DHCP (authoritative or proxy) and TFTP, and answers the subset of the
gopxe HTTP API the scenarios call, so the scenario scripts themselves can be
run before gopxe has DHCP and TFTP:

    GOPXE_BIN=tests/e2e/mock-gopxe.py tests/e2e/run.sh scenario

API: GET /health; POST /bootaction/NAME; POST /pxeboot; GET /pxeboot/ID;
GET /pxeboot/ID/events; POST /pxeboot/ID/done|reinstall; GET /pxelinux/;
GET /pxelinux/FILE; GET /kickstart/ID; GET /boot.ipxe; GET /ipxe/UUID/MAC;
GET /images/PATH. Writes need `Authorization: Bearer TOKEN` if --api-token.
Log lines go to stderr, one event each.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import http.server

LOCK = threading.RLock()
BOOTACTIONS = {}
MACHINES = {}      # id -> record (+ "state", "events")
IP2MAC = {}
IP2ID = {}
PENDING = {}       # ip -> [events] before the machine is known
ARGS = None
TFTP = None


def log(msg):
    sys.stderr.write("%s INFO  gopxe(mock) %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def norm_id(s):
    s = s.strip().lower()
    m = re.fullmatch(r"(01-)?([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})", s)
    if m:
        return "01-" + "-".join(m.groups()[1:])
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", s):
        return s
    raise ValueError("bad id %r" % s)


def swapped(u):
    a, b, c, rest = u[0:8], u[9:13], u[14:18], u[18:]
    sw = lambda x: "".join(reversed([x[i:i + 2] for i in range(0, len(x), 2)]))
    return "%s-%s-%s%s" % (sw(a), sw(b), sw(c), rest)


def cfg_names(mid):
    return [mid] if mid.startswith("01-") else [mid, swapped(mid)]


def base():
    return "http://%s:%s" % (ARGS.advertise_addr, ARGS.http_listen.rsplit(":", 1)[1])


def render_cfg(mid):
    m = MACHINES[mid]
    if m["state"] == "installed":
        return "default local\n label local\n MENU LABEL local disk\n LOCALBOOT 0\n"
    ba = BOOTACTIONS[m["bootaction"]]
    return ("default %s\n label %s\n MENU LABEL %s\n KERNEL %s\n APPEND ksdevice=%s ip=%s "
            "load_ramdisk=%s initrd=%s ks=%s/kickstart/%s\n") % (
        ba.get("default", "linux"), ba.get("label", "linux"), ba.get("menu", ""),
        ba["kernel"], ba.get("ksdevice", "link"), ba.get("ip", "dhcp"),
        ba.get("load_ramdisk", "1"), ba["initrd"], base(), mid)


def write_cfgs(mid):
    for n in cfg_names(mid):
        p = os.path.join(TFTP, "pxelinux.cfg", n)
        with open(p + ".tmp", "w") as f:
            f.write(render_cfg(mid))
        os.replace(p + ".tmp", p)


def event(mid, what):
    m = MACHINES.get(mid)
    if m is not None:
        m["events"].append({"t": round(time.time(), 3), "event": what})
        log("machine %s: %s" % (mid, what))


def ip_event(ip, what):
    with LOCK:
        mid = IP2ID.get(ip)
        if mid is None and ip in IP2MAC:
            cand = "01-" + IP2MAC[ip].replace(":", "-")
            if cand in MACHINES:
                mid = IP2ID[ip] = cand
        if mid is None:
            PENDING.setdefault(ip, []).append(what)
            log("client %s: %s" % (ip, what))
        else:
            event(mid, what)


def bind_ip(ip, mid):
    with LOCK:
        if mid in MACHINES and IP2ID.get(ip) != mid:
            IP2ID[ip] = mid
            for e in PENDING.pop(ip, []):
                event(mid, e)


def watch_dnsmasq(proc):
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        sys.stderr.write("dnsmasq: " + line + "\n")
        m = re.search(r"(DHCPOFFER|DHCPACK|PXE)\(br0\) (\d+\.\d+\.\d+\.\d+) ([0-9a-f:]{17})", line)
        if m:
            IP2MAC[m.group(2)] = m.group(3)
            ip_event(m.group(2), "dhcp %s %s" % (m.group(1).lower(), m.group(2)))
            continue
        m = re.search(r"(?:sent|file) %s/(\S+) (?:to|not found for) (\S+)" % re.escape(TFTP), line)
        if m:
            path, ip = m.group(1), m.group(2)
            if path.startswith("pxelinux.cfg/"):
                name = path.split("/", 1)[1]
                with LOCK:
                    for mid in MACHINES:
                        if name in cfg_names(mid):
                            bind_ip(ip, mid)
                if name == "default" and ip not in IP2ID:
                    log("unknown machine %s (%s) got pxelinux.cfg/default" % (ip, IP2MAC.get(ip, "?")))
            ip_event(ip, "tftp %s %s" % ("sent" if "sent" in line else "not found", path))


class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *a):
        log("http %s %s" % (self.client_address[0], fmt % a))

    def reply(self, code, body, ctype="application/json"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authed(self):
        if ARGS.api_token and self.headers.get("Authorization") != "Bearer " + ARGS.api_token:
            self.reply(401, {"error": "unauthorized"})
            return False
        return True

    def do_GET(self):
        p = self.path.split("?", 1)[0]
        ip = self.client_address[0]
        with LOCK:
            if p == "/health":
                return self.reply(200, {"status": "ok"})
            if p == "/pxelinux/":
                return self.reply(200, sorted(os.listdir(os.path.join(TFTP, "pxelinux.cfg"))))
            m = re.fullmatch(r"/pxelinux/([^/]+)", p)
            if m:
                f = os.path.join(TFTP, "pxelinux.cfg", m.group(1))
                return self.reply(200, open(f).read(), "text/plain") if os.path.isfile(f) else self.reply(404, {"error": "no such config"})
            m = re.fullmatch(r"/pxeboot/([^/]+)(/events)?", p)
            if m:
                try:
                    mid = norm_id(m.group(1))
                except ValueError:
                    return self.reply(400, {"error": "bad id"})
                if mid not in MACHINES:
                    return self.reply(404, {"error": "no such machine"})
                if m.group(2):
                    return self.reply(200, MACHINES[mid]["events"])
                return self.reply(200, {k: v for k, v in MACHINES[mid].items() if k != "events"})
            m = re.fullmatch(r"/kickstart/([^/]+)", p)
            if m and m.group(1) in MACHINES:
                mid = m.group(1)
                r = MACHINES[mid]
                bind_ip(ip, mid)
                if r["state"] == "install":
                    r["state"] = "installing"
                event(mid, "kickstart fetched by %s" % ip)
                net = ("network --bootproto=static --ip=%s --netmask=%s --gateway=%s --nameserver=%s,%s --hostname=%s"
                       % (r.get("ip"), r.get("mask"), r.get("gw"), r.get("ns1"), r.get("ns2"), r["hostname"])
                       if r.get("ip") else "network --bootproto=dhcp --hostname=%s" % r["hostname"])
                ks = ("# kickstart for %s (mock gopxe)\ninstall\nurl --url=http://mirror.centos.org/%s/%s/os/x86_64\n%s\n"
                      "%%post\ncurl -s -X POST %s/pxeboot/%s/done\n%%end\n") % (
                    r["hostname"], r.get("os"), r.get("version"), net, base(), mid)
                return self.reply(200, ks, "text/plain")
            if p == "/boot.ipxe":
                ip_event(ip, "ipxe script")
                return self.reply(200, "#!ipxe\nchain %s/ipxe/${uuid}/${net0/mac}\n" % base(), "text/plain")
            m = re.fullmatch(r"/ipxe/([^/]+)/([^/]+)", p)
            if m:
                mid = None
                for cand in (m.group(1).lower(), "01-" + m.group(2).lower().replace(":", "-")):
                    if cand in MACHINES:
                        mid = cand
                if not mid:
                    log("unknown machine %s (ipxe)" % ip)
                    return self.reply(200, "#!ipxe\nexit\n", "text/plain")
                bind_ip(ip, mid)
                ba = BOOTACTIONS[MACHINES[mid]["bootaction"]]
                if MACHINES[mid]["state"] == "installed":
                    return self.reply(200, "#!ipxe\nexit\n", "text/plain")
                event(mid, "ipxe boot script")
                return self.reply(200, "#!ipxe\nkernel %s/images/%s initrd=initrd.img ks=%s/kickstart/%s\n"
                                  "initrd --name initrd.img %s/images/%s\nboot\n" % (
                                      base(), ba["kernel"], base(), mid, base(), ba["initrd"]), "text/plain")
            m = re.fullmatch(r"/images/([A-Za-z0-9._/-]+)", p)
            if m and ".." not in m.group(1):
                f = os.path.join(ARGS.images, m.group(1))
                if os.path.isfile(f):
                    ip_event(ip, "http %s" % m.group(1))
                    return self.reply(200, open(f, "rb").read(), "application/octet-stream")
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        p = self.path.split("?", 1)[0]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with LOCK:
            m = re.fullmatch(r"/pxeboot/([^/]+)/(done|reinstall)", p)
            if m:   # the installer's callback needs no token (as planned for gopxe: machine endpoint)
                try:
                    mid = norm_id(m.group(1))
                except ValueError:
                    return self.reply(400, {"error": "bad id"})
                if mid not in MACHINES:
                    return self.reply(404, {"error": "no such machine"})
                if m.group(2) == "reinstall" and not self.authed():
                    return
                MACHINES[mid]["state"] = "installed" if m.group(2) == "done" else "install"
                event(mid, "%s -> %s" % (m.group(2), MACHINES[mid]["state"]))
                write_cfgs(mid)
                start_dnsmasq()
                return self.reply(200, {"id": mid, "state": MACHINES[mid]["state"]})
            if not self.authed():
                return
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return self.reply(400, {"error": "malformed JSON"})
            m = re.fullmatch(r"/bootaction/([A-Za-z0-9._-]+)", p)
            if m:
                if "kernel" not in data or "initrd" not in data:
                    return self.reply(400, {"error": "kernel and initrd are required"})
                BOOTACTIONS[m.group(1)] = data
                return self.reply(201, dict(data, name=m.group(1)))
            if p == "/pxeboot":
                try:
                    mid = norm_id(data.get("uuid", ""))
                except ValueError as e:
                    return self.reply(400, {"error": str(e)})
                if data.get("bootaction") not in BOOTACTIONS:
                    return self.reply(422, {"error": "unknown bootaction"})
                MACHINES[mid] = dict(data, id=mid, state="install", events=[])
                write_cfgs(mid)
                start_dnsmasq()
                event(mid, "record created")
                return self.reply(201, {k: v for k, v in MACHINES[mid].items() if k != "events"})
        self.reply(404, {"error": "not found"})


DNSMASQ = None


def start_dnsmasq():
    """(Re)start dnsmasq with boot rules for the current records. iPXE-loader
    machines are tagged by option 97 (UUID, SMBIOS wire order) or MAC so that
    only they get an iPXE script; everything else BIOS gets pxelinux.0
    directly (pxelinux chained from an iPXE script would not ask for
    pxelinux.cfg/<uuid>: iPXE's cached packet has no option 97)."""
    global DNSMASQ
    if DNSMASQ is not None:
        DNSMASQ.terminate()
        DNSMASQ.wait()
    dm = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--group=root",
          "--port=0", "--log-facility=-", "--log-dhcp", "--pid-file=",
          "--interface=" + ARGS.interface, "--bind-interfaces", "--except-interface=lo",
          "--enable-tftp", "--tftp-root=" + TFTP,
          "--dhcp-leasefile=" + os.path.join(ARGS.data_dir, "leases"),
          "--dhcp-option=encap:175,176,1b",
          "--dhcp-match=set:efi,option:client-arch,7", "--dhcp-match=set:efi,option:client-arch,9",
          "--dhcp-userclass=set:ipxe,iPXE"]
    for mid, m in MACHINES.items():
        if m["state"] != "installed" and BOOTACTIONS.get(m["bootaction"], {}).get("loader") == "ipxe":
            if mid.startswith("01-"):
                dm.append("--dhcp-host=%s,set:ipxehttp" % mid[3:].replace("-", ":"))
            else:
                h = swapped(mid).replace("-", "")
                dm.append("--dhcp-match=set:ipxehttp,97,00:" + ":".join(h[i:i + 2] for i in range(0, 32, 2)))
    adv = ARGS.advertise_addr
    if ARGS.dhcp_mode == "authoritative":
        dm += ["--dhcp-range=" + ARGS.dhcp_range, "--dhcp-authoritative",
               "--dhcp-boot=tag:ipxe,tag:ipxehttp,%s/boot.ipxe" % base(),
               "--dhcp-boot=tag:!ipxe,tag:ipxehttp,tag:!efi,undionly.kpxe",
               "--dhcp-boot=tag:!ipxehttp,tag:!efi,pxelinux.0",
               "--dhcp-boot=tag:efi,syslinux.efi"]
    elif ARGS.dhcp_mode == "proxy":
        net = adv.rsplit(".", 1)[0] + ".0"
        dm += ["--dhcp-range=%s,proxy" % net,
               '--pxe-service=tag:ipxehttp,tag:ipxe,x86PC,"gopxe",%s/boot.ipxe' % base(),
               '--pxe-service=tag:!ipxehttp,x86PC,"gopxe",pxelinux',
               '--pxe-service=X86-64_EFI,"gopxe",syslinux.efi',
               "--pxe-prompt=gopxe,0"]
    else:
        dm += ["--dhcp-range=%s,static" % (adv.rsplit(".", 1)[0] + ".0")]
    log("dnsmasq: " + " ".join(dm))
    DNSMASQ = subprocess.Popen(dm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    threading.Thread(target=watch_dnsmasq, args=(DNSMASQ,), daemon=True).start()
    time.sleep(0.3)


def main():
    global ARGS, TFTP
    ap = argparse.ArgumentParser(prog="gopxe", description="mock gopxe for the e2e harness (NOT gopxe)")
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--images", required=True)
    s.add_argument("--http-listen", required=True)
    s.add_argument("--advertise-addr", required=True)
    s.add_argument("--tftp-listen", required=True)
    s.add_argument("--dhcp-mode", choices=["authoritative", "proxy", "off"], default="off",
                   help="authoritative | proxy (proxyDHCP) | off")
    s.add_argument("--interface", default="br0")
    s.add_argument("--dhcp-range")
    s.add_argument("--api-token")
    ARGS = ap.parse_args()
    if ARGS.cmd != "serve":
        ap.print_help()
        return 2
    TFTP = os.path.join(os.path.abspath(ARGS.data_dir), "tftp")
    shutil.rmtree(TFTP, ignore_errors=True)
    os.makedirs(TFTP)
    for e in os.listdir(ARGS.images):
        os.symlink(os.path.join(os.path.abspath(ARGS.images), e), os.path.join(TFTP, e))
    os.makedirs(os.path.join(TFTP, "pxelinux.cfg"), exist_ok=True)
    with open(os.path.join(TFTP, "pxelinux.cfg", "default"), "w") as f:
        f.write("default local\n label local\n LOCALBOOT 0\n")
    start_dnsmasq()
    host, port = ARGS.http_listen.rsplit(":", 1)
    srv = http.server.ThreadingHTTPServer((host, int(port)), Api)
    log("listening on %s, dhcp %s" % (ARGS.http_listen, ARGS.dhcp_mode))
    try:
        srv.serve_forever()
    finally:
        if DNSMASQ is not None:
            DNSMASQ.terminate()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    sys.exit(main())
