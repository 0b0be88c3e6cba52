//! gopxe-storm: a boot-storm load generator. N simulated PXE clients, each
//! with its own MAC and SMBIOS UUID, do what firmware, pxelinux and an
//! installer do: DHCP DORA with PXE options through a relay address, TFTP
//! of the loader, its `pxelinux.cfg/01-<mac>` config, the kernel and initrd
//! the config names, HTTP GET of the config's `ks=` URL and a POST of the
//! call-back URL the kickstart holds. Every wait is bounded, every retry
//! counted; a malformed reply is a counted error, never a crash.

mod dhcp;
mod http;
mod impair;
mod tftp;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// UDP sends that failed (counted as lost packets).
pub(crate) static SEND_ERRORS: AtomicU64 = AtomicU64::new(0);

const USAGE: &str = "\
gopxe-storm — simulate a rack of PXE clients booting at once

Usage: gopxe-storm run [options]      the storm (default command)
       gopxe-storm clients [options]  print `index mac uuid hostname` per client
       gopxe-storm --help

Clients:
  --clients N            simulated machines                        [200]
  --concurrency C        machines booting at the same moment       [64]
  --mac-base MAC         first MAC; client i gets MAC+i   [52:54:00:5a:00:01]
  --hostname-prefix P    client i is P<i, zero-padded to 4         [storm-]
  --ramp-ms MS           spread the first C starts over MS         [0]
DHCP (DISCOVER/OFFER/REQUEST/ACK, relayed: giaddr = the relay address):
  --dhcp ADDR            DHCP server address:port (none: --skip-dhcp)
  --relay ADDR           local relay socket; server answers here [127.0.0.1:0]
  --giaddr IP            giaddr to write [the relay socket's address]
  --skip-dhcp            no DHCP; need --tftp and --loader
TFTP:
  --tftp ADDR            TFTP server [next-server from DHCP, port 69]
  --tftp-bind IP         local address of transfer sockets       [0.0.0.0]
  --loader FILE          loader path [DHCP boot file, else pxelinux.0]
  --blksize N            blksize option                           [1468]
  --windowsize N         windowsize option (1: not sent)          [1]
  --no-tsize             do not ask for tsize
  --kernel-size BYTES    expected kernel size (0: any)  e.g. 8M    [0]
  --initrd-size BYTES    expected initrd size (0: any)             [0]
  --loader-size BYTES    expected loader size (0: any)             [0]
  --probe-uuid           ask pxelinux.cfg/<uuid> first, as pxelinux does
                         (a not-found answer is fine)
HTTP:
  --http URL             send kickstart and call-back requests to this
                         base (http://host:port) instead of the URLs' own
  --done-url TEMPLATE    call-back when the kickstart names none;
                         {mac} {uuid} {hostname} {ip} are replaced
  --no-done              skip the call-back phase
  --http-from-lease      send each client's HTTP requests from its DHCP
                         address, as an installer does (the client's host
                         must own the pool's addresses, e.g. a local route)
Retries (per packet / per phase):
  --timeout-ms MS        first per-packet timeout, doubled each retry [1000]
  --max-timeout-ms MS    cap of the per-packet timeout              [4000]
  --retries N            retransmissions per packet exchange        [4]
  --attempts N           tries of a whole phase (backoff 0.5 s, x2)  [4]
  --http-timeout-ms MS   connect/read timeout of a request          [5000]
  --deadline S           give up on everything after S seconds      [600]
Impairment (client side, UDP only; for kernels without tc netem):
  --loss PCT             drop PCT % of sent and of received packets  [0]
  --jitter-ms MS         delay each sent and received packet 0..MS  [0]
Output:
  --label NAME           name of this run in the report           [storm]
  --json FILE            also write the report as JSON (- = stdout only)
  --errors N             print up to N failure messages            [10]

Exit status: 0 all clients done, 1 some failed, 2 usage error.
";

#[derive(Clone, Debug)]
struct Opts {
    clients: usize,
    concurrency: usize,
    mac_base: [u8; 6],
    hostname_prefix: String,
    ramp: Duration,
    dhcp: Option<SocketAddr>,
    relay: SocketAddr,
    giaddr: Option<Ipv4Addr>,
    skip_dhcp: bool,
    tftp: Option<SocketAddr>,
    tftp_bind: Ipv4Addr,
    loader: Option<String>,
    tftp_opts: tftp::Options,
    kernel_size: u64,
    initrd_size: u64,
    loader_size: u64,
    probe_uuid: bool,
    http: Option<String>,
    done_url: Option<String>,
    no_done: bool,
    http_from_lease: bool,
    retry: dhcp::Retry,
    attempts: u32,
    http_timeout: Duration,
    deadline: Duration,
    impair: impair::Impair,
    label: String,
    json: Option<String>,
    errors: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            clients: 200,
            concurrency: 64,
            mac_base: [0x52, 0x54, 0x00, 0x5a, 0x00, 0x01],
            hostname_prefix: "storm-".into(),
            ramp: Duration::ZERO,
            dhcp: None,
            relay: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            giaddr: None,
            skip_dhcp: false,
            tftp: None,
            tftp_bind: Ipv4Addr::UNSPECIFIED,
            loader: None,
            tftp_opts: tftp::Options {
                blksize: 1468,
                windowsize: 1,
                tsize: true,
            },
            kernel_size: 0,
            initrd_size: 0,
            loader_size: 0,
            probe_uuid: false,
            http: None,
            done_url: None,
            no_done: false,
            http_from_lease: false,
            retry: dhcp::Retry {
                timeout: Duration::from_millis(1000),
                max_timeout: Duration::from_millis(4000),
                retries: 4,
            },
            attempts: 4,
            http_timeout: Duration::from_millis(5000),
            deadline: Duration::from_secs(600),
            impair: impair::Impair::default(),
            label: "storm".into(),
            json: None,
            errors: 10,
        }
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("bad size `{s}`"))
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC `{s}`"));
    }
    let mut m = [0u8; 6];
    for (o, p) in m.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC `{s}`"))?;
    }
    Ok(m)
}

fn sockaddr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:{default_port}")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("bad address `{s}`"))
}

enum Cmd {
    Run,
    Clients,
    Help,
}

fn parse_args(args: &[String]) -> Result<(Cmd, Opts), String> {
    let mut o = Opts::default();
    let mut cmd = Cmd::Run;
    let mut i = 0;
    let mut first = true;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if first && !a.starts_with('-') {
            first = false;
            cmd = match a {
                "run" => Cmd::Run,
                "clients" => Cmd::Clients,
                _ => return Err(format!("unknown command `{a}`")),
            };
            continue;
        }
        first = false;
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a, None),
        };
        let mut val = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?;
            i += 1;
            Ok(v)
        };
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: bad number `{v}`"))
        };
        let ms = |v: String| num(v).map(Duration::from_millis);
        match name {
            "-h" | "--help" => return Ok((Cmd::Help, o)),
            "--clients" => o.clients = num(val()?)? as usize,
            "--concurrency" => o.concurrency = num(val()?)? as usize,
            "--mac-base" => o.mac_base = parse_mac(&val()?)?,
            "--hostname-prefix" => o.hostname_prefix = val()?,
            "--ramp-ms" => o.ramp = ms(val()?)?,
            "--dhcp" => o.dhcp = Some(sockaddr(&val()?, 67)?),
            "--relay" => o.relay = sockaddr(&val()?, 67)?,
            "--giaddr" => o.giaddr = Some(val()?.parse().map_err(|_| "--giaddr: bad IPv4")?),
            "--skip-dhcp" => o.skip_dhcp = true,
            "--tftp" => o.tftp = Some(sockaddr(&val()?, 69)?),
            "--tftp-bind" => o.tftp_bind = val()?.parse().map_err(|_| "--tftp-bind: bad IPv4")?,
            "--loader" => o.loader = Some(val()?),
            "--blksize" => {
                let b = num(val()?)?;
                if !(8..=65464).contains(&b) {
                    return Err("--blksize: 8..=65464".into());
                }
                o.tftp_opts.blksize = b as u16;
            }
            "--windowsize" => {
                let w = num(val()?)?;
                if !(1..=65535).contains(&w) {
                    return Err("--windowsize: 1..=65535".into());
                }
                o.tftp_opts.windowsize = w as u16;
            }
            "--no-tsize" => o.tftp_opts.tsize = false,
            "--kernel-size" => o.kernel_size = parse_size(&val()?)?,
            "--initrd-size" => o.initrd_size = parse_size(&val()?)?,
            "--loader-size" => o.loader_size = parse_size(&val()?)?,
            "--probe-uuid" => o.probe_uuid = true,
            "--http" => o.http = Some(val()?),
            "--done-url" => o.done_url = Some(val()?),
            "--no-done" => o.no_done = true,
            "--http-from-lease" => o.http_from_lease = true,
            "--timeout-ms" => o.retry.timeout = ms(val()?)?,
            "--max-timeout-ms" => o.retry.max_timeout = ms(val()?)?,
            "--retries" => o.retry.retries = num(val()?)? as u32,
            "--attempts" => o.attempts = (num(val()?)? as u32).max(1),
            "--http-timeout-ms" => o.http_timeout = ms(val()?)?,
            "--deadline" => o.deadline = Duration::from_secs(num(val()?)?),
            "--loss" => {
                let v = val()?;
                let pct: f64 = v.parse().map_err(|_| format!("--loss: bad number `{v}`"))?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err("--loss: 0..=100".into());
                }
                o.impair.loss_bp = (pct * 100.0).round() as u32;
            }
            "--jitter-ms" => o.impair.jitter = ms(val()?)?,
            "--label" => o.label = val()?,
            "--json" => o.json = Some(val()?),
            "--errors" => o.errors = num(val()?)? as usize,
            _ => return Err(format!("unknown option `{a}` (see --help)")),
        }
    }
    if o.clients == 0 || o.concurrency == 0 {
        return Err("--clients and --concurrency must be at least 1".into());
    }
    if o.retry.timeout.is_zero() {
        return Err("--timeout-ms must be at least 1".into());
    }
    o.retry.max_timeout = o.retry.max_timeout.max(o.retry.timeout);
    if matches!(cmd, Cmd::Run) {
        if o.dhcp.is_none() && !o.skip_dhcp {
            return Err("give --dhcp ADDR or --skip-dhcp".into());
        }
        if o.skip_dhcp && o.tftp.is_none() {
            return Err("--skip-dhcp needs --tftp".into());
        }
    }
    Ok((cmd, o))
}

/// Client `i`: MAC = base + i, UUID and hostname derived from it.
#[derive(Clone, Debug)]
struct Client {
    index: usize,
    id: dhcp::Identity,
    hostname: String,
}

impl Client {
    fn new(o: &Opts, index: usize) -> Client {
        let base = o
            .mac_base
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b));
        let m = (base + index as u64) & 0xffff_ffff_ffff;
        let mut mac = [0u8; 6];
        for (k, b) in mac.iter_mut().enumerate() {
            *b = (m >> (8 * (5 - k))) as u8;
        }
        // RFC 4122 version-4 layout; the last six bytes are the MAC.
        let mut uuid = [0u8; 16];
        uuid[..4].copy_from_slice(b"stor");
        uuid[4..6].copy_from_slice(&(index as u16).to_be_bytes());
        uuid[6] = 0x40;
        uuid[8] = 0x80;
        uuid[10..].copy_from_slice(&mac);
        Client {
            index,
            id: dhcp::Identity { mac, uuid },
            hostname: format!("{}{:04}", o.hostname_prefix, index + 1),
        }
    }

    fn mac(&self, sep: char) -> String {
        let m = self.id.mac;
        let mut s = String::new();
        for (k, b) in m.iter().enumerate() {
            if k > 0 {
                s.push(sep);
            }
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// The UUID as SMBIOS prints it (option 97 bytes in wire order).
    fn uuid(&self) -> String {
        let u = self.id.uuid;
        let mut s = String::new();
        for (k, b) in u.iter().enumerate() {
            if matches!(k, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// Phases in the order a client goes through them.
const PHASES: [&str; 8] = [
    "dhcp",
    "tftp-loader",
    "tftp-config",
    "tftp-kernel",
    "tftp-initrd",
    "http-ks",
    "http-done",
    "total",
];
const TOTAL: usize = 7;

#[derive(Default)]
struct Stats {
    /// Latency of each successful phase, per phase.
    lat: [Mutex<Vec<Duration>>; 8],
    fail: [AtomicU64; 8],
    retrans: [AtomicU64; 8],
    retried: [AtomicU64; 8],
    malformed: AtomicU64,
    bytes: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Why an attempt that was tried again failed.
    retry_errors: Mutex<Vec<String>>,
    done: AtomicUsize,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64 << attempt.min(5))
}

/// Run `f` up to `attempts` times with backoff; record latency or failure.
fn phase<T>(
    st: &Stats,
    o: &Opts,
    p: usize,
    c: &Client,
    give_up: Instant,
    mut f: impl FnMut(&AtomicU64) -> Result<T, String>,
) -> Result<T, ()> {
    let start = Instant::now();
    let mut last = String::new();
    for attempt in 0..o.attempts {
        if attempt > 0 {
            st.retried[p].fetch_add(1, Ordering::Relaxed);
            let wait = backoff(attempt - 1);
            if Instant::now() + wait >= give_up {
                break;
            }
            std::thread::sleep(wait);
        }
        match f(&st.retrans[p]) {
            Ok(v) => {
                if let Ok(mut l) = st.lat[p].lock() {
                    l.push(start.elapsed());
                }
                return Ok(v);
            }
            Err(e) => {
                if attempt + 1 < o.attempts
                    && let Ok(mut r) = st.retry_errors.lock()
                    && r.len() < 1000
                {
                    r.push(format!("{} {} {}: {e}", c.hostname, c.mac(':'), PHASES[p]));
                }
                last = e;
            }
        }
        if Instant::now() >= give_up {
            break;
        }
    }
    st.fail[p].fetch_add(1, Ordering::Relaxed);
    if let Ok(mut e) = st.errors.lock()
        && e.len() < 1000
    {
        {
            e.push(format!(
                "{} {} {}: {last}",
                c.hostname,
                c.mac(':'),
                PHASES[p]
            ));
        }
    }
    Err(())
}

/// What a pxelinux config names.
#[derive(Debug, Default, PartialEq, Eq)]
struct BootConfig {
    kernel: Option<String>,
    initrd: Option<String>,
    ks: Option<String>,
}

/// The first `KERNEL`/`LINUX` line and the `initrd=`/`ks=` of the APPEND.
fn parse_config(text: &str) -> BootConfig {
    let mut b = BootConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(kw) = words.next() else { continue };
        match kw.to_ascii_lowercase().as_str() {
            "kernel" | "linux" if b.kernel.is_none() => b.kernel = words.next().map(str::to_string),
            "append" | "initrd" => {
                if kw.eq_ignore_ascii_case("initrd") && b.initrd.is_none() {
                    b.initrd = words
                        .next()
                        .map(|w| w.split(',').next().unwrap_or(w).to_string());
                    continue;
                }
                for w in words {
                    if let Some(v) = w.strip_prefix("initrd=") {
                        b.initrd
                            .get_or_insert_with(|| v.split(',').next().unwrap_or(v).to_string());
                    } else if let Some(v) =
                        w.strip_prefix("ks=").or_else(|| w.strip_prefix("inst.ks="))
                    {
                        b.ks.get_or_insert_with(|| v.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    b
}

/// The call-back URL in a kickstart: the first http URL whose path ends
/// in `/done` (gopxe's carries the install's key as `?key=...`).
fn find_done_url(ks: &str) -> Option<String> {
    let mut rest = ks;
    while let Some(i) = rest.find("http://") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        let path = url.split('?').next().unwrap_or(url);
        if path.trim_end_matches('/').ends_with("/done") {
            return Some(url.to_string());
        }
        rest = &tail[end..];
    }
    None
}

fn expect_size(what: &str, want: u64, got: &tftp::Got) -> Result<(), String> {
    if want != 0 && got.bytes != want {
        return Err(format!("{what}: {} bytes, expected {want}", got.bytes));
    }
    Ok(())
}

/// One machine from power-on to the installer's call-back.
fn boot(
    o: &Opts,
    st: &Stats,
    relay: Option<&dhcp::Relay>,
    c: &Client,
    give_up: Instant,
) -> Result<(), ()> {
    let start = Instant::now();
    let mut lease: Option<dhcp::Lease> = None;
    if let Some(relay) = relay {
        lease = Some(phase(st, o, 0, c, give_up, |rt| {
            let xid = (c.index as u32).wrapping_mul(0x9e37_79b9) ^ next_nonce();
            dhcp::dora(relay, &c.id, xid, o.retry, rt)
        })?);
    }
    let tftp_server = match (o.tftp, lease.as_ref().and_then(|l| l.next_server)) {
        (Some(a), _) => a,
        (None, Some(ip)) => SocketAddr::from((ip, 69)),
        (None, None) => {
            phase::<()>(st, o, 1, c, give_up, |_| {
                Err("no TFTP server: DHCP named none and no --tftp".into())
            })?;
            return Err(());
        }
    };
    let loader = o
        .loader
        .clone()
        .or_else(|| lease.as_ref().and_then(|l| l.file.clone()))
        .unwrap_or_else(|| "pxelinux.0".into());
    let bind = SocketAddr::from((o.tftp_bind, 0));
    let get = |file: &str, keep: bool, rt: &AtomicU64| {
        let counters = tftp::Counters {
            retrans: rt,
            malformed: &st.malformed,
        };
        let t = tftp::Transfer {
            bind,
            server: tftp_server,
            opts: o.tftp_opts,
            retry: o.retry,
            give_up: give_up.min(Instant::now() + Duration::from_secs(300)),
        };
        let r = tftp::get(&t, file, keep, &counters);
        if let Ok(g) = &r {
            st.bytes.fetch_add(g.bytes, Ordering::Relaxed);
        }
        r
    };
    phase(st, o, 1, c, give_up, |rt| {
        let g = get(&loader, false, rt)?;
        expect_size(&loader, o.loader_size, &g)
    })?;
    let cfg_name = format!("pxelinux.cfg/01-{}", c.mac('-'));
    let cfg = phase(st, o, 2, c, give_up, |rt| {
        if o.probe_uuid {
            // pxelinux asks by UUID first; "not found" is an expected answer.
            match get(&format!("pxelinux.cfg/{}", c.uuid()), true, rt) {
                Ok(g) => {
                    let b = parse_config(&String::from_utf8_lossy(&g.body));
                    if b.kernel.is_some() {
                        return Ok(b);
                    }
                }
                Err(e) if e.starts_with("server error") => {}
                Err(e) => return Err(format!("uuid probe: {e}")),
            }
        }
        let g = get(&cfg_name, true, rt)?;
        let b = parse_config(&String::from_utf8_lossy(&g.body));
        if b.kernel.is_none() {
            return Err(format!("{cfg_name} names no kernel (local boot?)"));
        }
        Ok(b)
    })?;
    let kernel = cfg.kernel.clone().unwrap_or_default();
    phase(st, o, 3, c, give_up, |rt| {
        let g = get(&kernel, false, rt)?;
        expect_size(&kernel, o.kernel_size, &g)
    })?;
    match &cfg.initrd {
        Some(initrd) => phase(st, o, 4, c, give_up, |rt| {
            let g = get(initrd, false, rt)?;
            expect_size(initrd, o.initrd_size, &g)
        })?,
        None => phase(st, o, 4, c, give_up, |_| {
            Err("config names no initrd".into())
        })?,
    }
    let ks_url = match (&cfg.ks, &o.http) {
        (Some(u), Some(base)) => http::rebase(u, base),
        (Some(u), None) => Ok(u.clone()),
        (None, _) => Err("config has no ks= URL".to_string()),
    };
    let http_source = match (o.http_from_lease, &lease) {
        (true, Some(l)) => Some(l.ip),
        _ => None,
    };
    let ks = phase(st, o, 5, c, give_up, |_| {
        let url = ks_url.clone()?;
        let r = http::request("GET", &url, b"", o.http_timeout, http_source)?;
        if r.status != 200 {
            return Err(format!("GET {url}: status {}", r.status));
        }
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    })?;
    if !o.no_done {
        let ip = lease.as_ref().map(|l| l.ip.to_string()).unwrap_or_default();
        let done = find_done_url(&ks)
            .map(|u| match &o.http {
                Some(base) => http::rebase(&u, base),
                None => Ok(u),
            })
            .or_else(|| {
                o.done_url.as_ref().map(|t| {
                    Ok(t.replace("{mac}", &c.mac(':'))
                        .replace("{uuid}", &c.uuid())
                        .replace("{hostname}", &c.hostname)
                        .replace("{ip}", &ip))
                })
            })
            .unwrap_or_else(|| Err("kickstart names no call-back URL and no --done-url".into()));
        phase(st, o, 6, c, give_up, |_| {
            let url = done.clone()?;
            let r = http::request("POST", &url, b"", o.http_timeout, http_source)?;
            if !(200..300).contains(&r.status) {
                return Err(format!("POST {url}: status {}", r.status));
            }
            Ok(())
        })?;
    }
    if let Ok(mut l) = st.lat[TOTAL].lock() {
        l.push(start.elapsed());
    }
    Ok(())
}

pub(crate) fn next_nonce() -> u32 {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) as u32).wrapping_mul(0x85eb_ca6b)
}

struct Pct {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn percentiles(v: &mut [Duration]) -> Pct {
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| {
        if v.is_empty() {
            return 0.0;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        ms(v[i])
    };
    Pct {
        n: v.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: v.last().map(|d| ms(*d)).unwrap_or(0.0),
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn run(o: Opts) -> ExitCode {
    impair::set(o.impair);
    let relay = match (o.skip_dhcp, o.dhcp) {
        (false, Some(server)) => match dhcp::Relay::bind(o.relay, server, o.giaddr) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("gopxe-storm: relay socket {}: {e}", o.relay);
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let st = Arc::new(Stats::default());
    let o = Arc::new(o);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let give_up = start + o.deadline;
    let workers = o.concurrency.min(o.clients);
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let (st, o, next, relay) = (st.clone(), o.clone(), next.clone(), relay.clone());
        let h = std::thread::Builder::new()
            .name(format!("client-{w}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                if !o.ramp.is_zero() {
                    std::thread::sleep(o.ramp * w as u32 / workers as u32);
                }
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= o.clients || Instant::now() >= give_up {
                        break;
                    }
                    let c = Client::new(&o, i);
                    if boot(&o, &st, relay.as_deref(), &c, give_up).is_ok() {
                        st.done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("gopxe-storm: thread: {e}");
                break;
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let wall = start.elapsed();
    if let Some(r) = &relay {
        r.shutdown();
        st.malformed
            .fetch_add(r.malformed.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    report(&o, &st, wall, relay.as_deref())
}

fn report(o: &Opts, st: &Stats, wall: Duration, relay: Option<&dhcp::Relay>) -> ExitCode {
    let done = st.done.load(Ordering::Relaxed);
    let failed = o.clients - done;
    let bytes = st.bytes.load(Ordering::Relaxed);
    let mut txt = String::new();
    let _ = writeln!(
        txt,
        "{}: {done}/{} clients done in {:.2} s ({failed} failed), concurrency {}, TFTP {:.1} MiB ({:.1} MiB/s)",
        o.label,
        o.clients,
        wall.as_secs_f64(),
        o.concurrency.min(o.clients),
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / wall.as_secs_f64().max(1e-9),
    );
    let _ = writeln!(
        txt,
        "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8} {:>8}",
        "phase", "ok", "p50 ms", "p90 ms", "p99 ms", "max ms", "fail", "retrans", "retried"
    );
    let mut js = String::new();
    let _ = write!(
        js,
        "{{\"label\":{},\"clients\":{},\"concurrency\":{},\"done\":{done},\"failed\":{failed},\"wall_s\":{:.3},\"tftp_bytes\":{bytes},\"malformed\":{},\"send_errors\":{},\"stray_dhcp\":{},\"phases\":{{",
        json_str(&o.label),
        o.clients,
        o.concurrency.min(o.clients),
        wall.as_secs_f64(),
        st.malformed.load(Ordering::Relaxed),
        SEND_ERRORS.load(Ordering::Relaxed),
        relay.map(|r| r.stray.load(Ordering::Relaxed)).unwrap_or(0),
    );
    for (p, name) in PHASES.iter().enumerate() {
        let mut v = st.lat[p].lock().map(|l| l.clone()).unwrap_or_default();
        let q = percentiles(&mut v);
        let fail = st.fail[p].load(Ordering::Relaxed);
        let rt = st.retrans[p].load(Ordering::Relaxed);
        let rd = st.retried[p].load(Ordering::Relaxed);
        let _ = writeln!(
            txt,
            "{name:<12} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {fail:>6} {rt:>8} {rd:>8}",
            q.n, q.p50, q.p90, q.p99, q.max
        );
        let _ = write!(
            js,
            "{}{}:{{\"ok\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"fail\":{fail},\"retrans\":{rt},\"retried\":{rd}}}",
            if p > 0 { "," } else { "" },
            json_str(name),
            q.n,
            q.p50,
            q.p90,
            q.p99,
            q.max
        );
    }
    let errors = st.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let retried = st
        .retry_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let _ = write!(js, "}},\"errors\":[");
    for (k, e) in errors.iter().take(100).enumerate() {
        let _ = write!(js, "{}{}", if k > 0 { "," } else { "" }, json_str(e));
    }
    js.push_str("],\"retry_errors\":[");
    for (k, e) in retried.iter().take(100).enumerate() {
        let _ = write!(js, "{}{}", if k > 0 { "," } else { "" }, json_str(e));
    }
    js.push_str("]}");
    let _ = writeln!(
        txt,
        "malformed or stray packets: {}, failed sends: {}",
        st.malformed.load(Ordering::Relaxed)
            + relay.map(|r| r.stray.load(Ordering::Relaxed)).unwrap_or(0),
        SEND_ERRORS.load(Ordering::Relaxed)
    );
    for e in errors.iter().take(o.errors) {
        let _ = writeln!(txt, "  failure: {e}");
    }
    for e in retried.iter().take(o.errors) {
        let _ = writeln!(txt, "  tried again after: {e}");
    }
    match o.json.as_deref() {
        Some("-") => println!("{js}"),
        Some(path) => {
            print!("{txt}");
            if let Err(e) = std::fs::write(path, format!("{js}\n")) {
                eprintln!("gopxe-storm: write {path}: {e}");
            }
        }
        None => print!("{txt}"),
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok((Cmd::Help, _)) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok((Cmd::Clients, o)) => {
            for i in 0..o.clients {
                let c = Client::new(&o, i);
                println!("{} {} {} {}", i + 1, c.mac(':'), c.uuid(), c.hostname);
            }
            ExitCode::SUCCESS
        }
        Ok((Cmd::Run, o)) => run(o),
        Err(e) => {
            eprintln!("gopxe-storm: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parsing() {
        let c = parse_config(
            "default linux\n label linux\n KERNEL centos7/vmlinuz\n APPEND ksdevice=link initrd=centos7/initrd.img ks=http://10.1.20.2:9090/kickstart/?name=default&os=c\n",
        );
        assert_eq!(c.kernel.as_deref(), Some("centos7/vmlinuz"));
        assert_eq!(c.initrd.as_deref(), Some("centos7/initrd.img"));
        assert_eq!(
            c.ks.as_deref(),
            Some("http://10.1.20.2:9090/kickstart/?name=default&os=c")
        );
        assert_eq!(parse_config("default local\n"), BootConfig::default());
    }

    #[test]
    fn done_url() {
        let ks = "%post\ncurl -fsS -X POST \"http://10.0.0.2:9090/pxeboot/52-54/done\" || true\n";
        assert_eq!(
            find_done_url(ks).as_deref(),
            Some("http://10.0.0.2:9090/pxeboot/52-54/done")
        );
        assert_eq!(find_done_url("url --url http://x/repo\n"), None);
        let keyed = "curl -X POST 'http://10.0.0.2:9090/pxeboot/52-54/done?key=00ff' || true";
        assert_eq!(
            find_done_url(keyed).as_deref(),
            Some("http://10.0.0.2:9090/pxeboot/52-54/done?key=00ff")
        );
        assert_eq!(find_done_url("http://x/done-not?key=1"), None);
    }

    #[test]
    fn clients_are_distinct() {
        let o = Opts::default();
        let a = Client::new(&o, 0);
        let b = Client::new(&o, 255);
        assert_eq!(a.mac(':'), "52:54:00:5a:00:01");
        assert_eq!(b.mac('-'), "52-54-00-5a-01-00");
        assert_ne!(a.uuid(), b.uuid());
        assert_eq!(a.hostname, "storm-0001");
    }

    #[test]
    fn sizes_and_percentiles() {
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert!(parse_size("x").is_err());
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(&mut v);
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
    }
}

#[cfg(test)]
mod no_panic {
    /// Random and mutated input to every decoder of server replies: an
    /// error value, never a panic.
    #[test]
    fn decoders_take_any_bytes() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seed_dhcp = {
            let id = crate::dhcp::Identity {
                mac: [2; 6],
                uuid: [3; 16],
            };
            let mut b = crate::dhcp::build(2, &id, 9, 0, std::net::Ipv4Addr::LOCALHOST, None);
            b[0] = 2;
            b
        };
        for _ in 0..20_000 {
            let len = (next() % 600) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = crate::dhcp::parse(&b);
            let _ = crate::tftp::parse(&b);
            let _ = crate::parse_config(&String::from_utf8_lossy(&b));
            let _ = crate::find_done_url(&String::from_utf8_lossy(&b));
            b.truncate(b.len().min(8));
            let _ = crate::http::parse_url(&String::from_utf8_lossy(&b));
            let mut m = seed_dhcp.clone();
            for _ in 0..4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            m.truncate(240 + (next() as usize) % (m.len() - 239));
            let _ = crate::dhcp::parse(&m);
            let mut t = b"\0\x06blksize\x001468\0tsize\x0012\0".to_vec();
            let i = (next() as usize) % t.len();
            t[i] = next() as u8;
            t.truncate((next() as usize) % (t.len() + 1));
            let _ = crate::tftp::parse(&t);
        }
    }
}
