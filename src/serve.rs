//! Serving: binds the sockets, starts DHCP, TFTP, the webhook senders and
//! the HTTP accept loop on one executor, and runs it until a signal.
//!
//! Layer: driver (process set-up). `cli` parses the command line and the
//! configuration and hands the checked [`Config`] here; the services are
//! glued to the app in [`crate::services`].

use crate::app::App;
use crate::boot::Urls;
use crate::config::Config;
use crate::store::Store;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::rc::Rc;

/// Why gopxe could not start serving (`gopxe` prints it and exits 1).
#[derive(Debug)]
pub enum StartError {
    /// The store in the data dir could not be opened.
    Store { dir: PathBuf, source: io::Error },
    /// The DHCP lease file in the data dir could not be opened.
    Leases { dir: PathBuf, source: io::Error },
    /// A configured socket could not be bound; `key` is its setting.
    Listen {
        key: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    /// The images dir TFTP was told to serve cannot be used.
    Images { dir: PathBuf, source: io::Error },
    /// The system refused something every start needs.
    System {
        what: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Store { dir, source } => {
                write!(f, "cannot open the data dir {}: {source}", dir.display())
            }
            StartError::Leases { dir, source } => {
                write!(
                    f,
                    "cannot open the lease file in {}: {source}",
                    dir.display()
                )
            }
            StartError::Listen { key, addr, source } => {
                write!(f, "cannot listen on {addr} ({key}): {source}")
            }
            StartError::Images { dir, source } => {
                write!(f, "tftp: images dir {}: {source}", dir.display())
            }
            StartError::System { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Store { source, .. }
            | StartError::Leases { source, .. }
            | StartError::Listen { source, .. }
            | StartError::Images { source, .. }
            | StartError::System { source, .. } => Some(source),
        }
    }
}

/// [`StartError::System`] for `what`.
fn system(what: &'static str) -> impl FnOnce(io::Error) -> StartError {
    move |source| StartError::System { what, source }
}

/// The address to put in boot URLs: configured, else the listen address
/// when specific, else the served interface's, else the first non-loopback
/// IPv4 address; loopback only when the machine has nothing else.
pub fn advertise_addr(config: &Config, bound: SocketAddr) -> Ipv4Addr {
    if let Some(a) = config.advertise_addr {
        return a;
    }
    if let IpAddr::V4(ip) = bound.ip()
        && !ip.is_unspecified()
    {
        return ip;
    }
    let ifaces = if_addrs::get_if_addrs().unwrap_or_default();
    let v4 = |i: &if_addrs::Interface| match i.ip() {
        IpAddr::V4(a) if !a.is_loopback() => Some(a),
        _ => None,
    };
    if let Some(name) = &config.interface {
        if let Some(a) = ifaces.iter().filter(|i| &i.name == name).find_map(v4) {
            return a;
        }
        log::warn!("interface {name} has no IPv4 address yet");
    }
    ifaces.iter().find_map(v4).unwrap_or_else(|| {
        log::warn!("no non-loopback IPv4 address: boot URLs will name 127.0.0.1");
        Ipv4Addr::LOCALHOST
    })
}

/// A service is listening: one info line in the log, and the same line on
/// stdout (`gopxe: ` first) for scripts that started gopxe on port 0 —
/// unless stdout is where the log goes too, which would show it twice. The
/// log is flushed first, so a script that reads the stdout line finds
/// every start-up line on stderr. A closed stdout is not an error.
fn announce(line: &str) {
    use std::io::Write;
    log::info!("{line}");
    crate::logging::flush();
    if !stdout_is_stderr() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "gopxe: {line}");
        let _ = out.flush();
    }
}

/// Whether standard output and standard error are one file (a terminal,
/// one log file, the journal's stream): then the log line is enough.
fn stdout_is_stderr() -> bool {
    let id = |st: rustix::fs::Stat| (st.st_dev, st.st_ino);
    match (
        rustix::fs::fstat(std::io::stdout()),
        rustix::fs::fstat(std::io::stderr()),
    ) {
        (Ok(a), Ok(b)) => id(a) == id(b),
        _ => false,
    }
}

/// SIGTERM (systemd, an init script, `podman stop`) and SIGINT (Ctrl-C)
/// end the process at once with status 0: every acknowledged write is
/// already durable, so only the log's queue is flushed (a second at most),
/// and an unacknowledged one leaves at most a temporary file that the
/// next start ignores. The
/// handler matters most for PID 1 in a container, for which the kernel
/// ignores a SIGTERM nobody handles.
fn stop_on_signals(ex: &Rc<smol::LocalExecutor<'static>>, app: Rc<App>) -> Result<(), StartError> {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;
    let mut signals = Signals::new([Signal::Term, Signal::Int])
        .map_err(system("cannot handle SIGTERM/SIGINT"))?;
    ex.spawn(async move {
        if let Some(Ok(signal)) = signals.next().await {
            log::info!("stopping on {signal:?}");
            crate::discovered::save_now(&app.discovered, &app.config.data_dir);
            crate::logging::flush();
            std::process::exit(0);
        }
    })
    .detach();
    Ok(())
}

pub fn serve(config: Config) -> Result<(), StartError> {
    let (store, warnings) = Store::open(&config.data_dir).map_err(|source| StartError::Store {
        dir: config.data_dir.clone(),
        source,
    })?;
    for w in &warnings {
        log::error!("store: {w}");
    }
    log::info!(
        "store {}: {} boot actions, {} machines, {} templates",
        config.data_dir.display(),
        store.bootactions.len(),
        store.machines.len(),
        store.templates.len()
    );
    let listener = TcpListener::bind(config.http_listen).map_err(|source| StartError::Listen {
        key: "http_listen",
        addr: config.http_listen,
        source,
    })?;
    let bound = listener
        .local_addr()
        .map_err(system("the HTTP socket's address"))?;
    let listener = async_io::Async::new(listener).map_err(system("the HTTP socket"))?;
    let adv = advertise_addr(&config, bound);
    let syslog = bind_syslog(&config)?;
    let urls = Urls::new(adv, bound.port())
        .with_dns(config.dhcp_dns.clone())
        .with_syslog(syslog.as_ref().map(|r| r.local.port()));
    if config.api_token.is_none() {
        log::warn!("no api_token configured: API writes are accepted from loopback only");
    }
    let app = Rc::new(App::new(config, urls, store));
    for w in app.loader_check().warnings(&app.config.images) {
        log::warn!("{w}");
    }
    app.note_listening(format!("http {bound}"));
    let ex = Rc::new(smol::LocalExecutor::new());
    let (dir, max) = (app.config.data_dir.clone(), app.config.discovered_max);
    crate::discovered::start(&ex, app.discovered.clone(), dir, max);
    stop_on_signals(&ex, app.clone())?;
    start_dhcp(&ex, &app)?;
    start_tftp(&ex, &app)?;
    if let Some(r) = syslog {
        announce(&format!("syslog listening on {} (udp and tcp)", r.local));
        app.note_listening(format!("syslog {}", r.local));
        crate::syslog::spawn(&ex, &app, r);
    }
    crate::syslog::spawn_timeout(&ex, &app);
    crate::webhook::spawn(&ex, &app.webhooks, &app.metrics);
    // Last: scripts that start gopxe on port 0 read up to this line.
    announce(&format!(
        "http listening on {bound}, boot URLs use {}",
        app.urls.base
    ));
    // The accept loop is a task of its own: the future given to `run` is
    // polled on every wake-up of the executor, a task only when it is woken.
    ex.spawn(crate::http::serve(ex.clone(), app, listener))
        .detach();
    crate::reactor::yield_helper();
    smol::block_on(ex.run(futures_lite::future::pending::<()>()));
    Ok(())
}

/// The MTU of the interface TFTP serves: the configured interface, else
/// the one holding the listen address.
fn tftp_mtu(app: &App, listen: SocketAddr) -> Option<u32> {
    let name = app.config.interface.clone().or_else(|| {
        let ip = listen.ip();
        if ip.is_unspecified() {
            return None;
        }
        if_addrs::get_if_addrs()
            .ok()?
            .into_iter()
            .find(|i| i.ip() == ip)
            .map(|i| i.name)
    })?;
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Binds TFTP (when on) and spawns it. A configured address that cannot be
/// bound stops the start-up; the unconfigured default (udp/69) is skipped
/// with a warning instead.
fn start_tftp(ex: &Rc<smol::LocalExecutor<'static>>, app: &Rc<App>) -> Result<(), StartError> {
    use crate::tftp::{ImagesRoot, ServerConfig, WithVirtual, blksize_for_mtu};
    let Some(listen) = app.config.tftp_listen else {
        return Ok(());
    };
    let socket = match std::net::UdpSocket::bind(listen) {
        Ok(s) => s,
        Err(e) if app.config.tftp_auto => {
            log::warn!(
                "tftp off: cannot listen on {listen} ({e}); set tftp_listen to choose an address"
            );
            return Ok(());
        }
        Err(source) => {
            return Err(StartError::Listen {
                key: "tftp_listen",
                addr: listen,
                source,
            });
        }
    };
    let local = socket
        .local_addr()
        .map_err(system("the TFTP socket's address"))?;
    let socket = async_io::Async::new(socket).map_err(system("the TFTP socket"))?;
    let images = match ImagesRoot::new(&app.config.images) {
        Ok(i) => i,
        Err(e) if app.config.tftp_auto => {
            log::warn!("tftp off: images dir {}: {e}", app.config.images.display());
            return Ok(());
        }
        Err(source) => {
            return Err(StartError::Images {
                dir: app.config.images.clone(),
                source,
            });
        }
    };
    let mut cfg = ServerConfig {
        max_transfers: app.config.tftp_max_transfers,
        max_per_client: app.config.tftp_max_per_client,
        ..ServerConfig::default()
    };
    if let Some(mtu) = tftp_mtu(app, local) {
        cfg.transfer.max_blksize = blksize_for_mtu(mtu);
    }
    let files = app.clone();
    let pi = app.clone();
    let provider = WithVirtual {
        lookup: move |path: &crate::tftp::RelativePath, client: SocketAddr| {
            files.boot_file(path.as_str(), client.ip(), crate::app::Fetch::Tftp)
        },
        inner: crate::tftp::WithRedirect {
            lookup: move |path: &crate::tftp::RelativePath, client: SocketAddr| {
                pi_redirect(&pi, path, client)
            },
            inner: images,
        },
    };
    announce(&format!(
        "tftp listening on {local} (blksize up to {}, {} transfers at once, {} per client)",
        cfg.transfer.max_blksize, cfg.max_transfers, cfg.max_per_client
    ));
    app.note_listening(format!("tftp {local}"));
    let reports = app.clone();
    ex.spawn(async move {
        let on_report =
            move |r: &crate::tftp::TransferReport| crate::services::on_tftp_report(&reports, r);
        if let Err(e) = crate::tftp::serve(socket, cfg, provider, on_report).await {
            log::error!("tftp stopped: {e}");
        }
    })
    .detach();
    Ok(())
}

/// The Raspberry Pi tree over TFTP: [`App::pi_file`] as a redirect.
fn pi_redirect(
    app: &App,
    path: &crate::tftp::RelativePath,
    client: SocketAddr,
) -> Option<crate::tftp::Redirect> {
    use crate::boot::rpi::Answer;
    use crate::tftp::Redirect;
    Some(match app.pi_file(path.as_str(), client.ip())? {
        Answer::Text(t) => Redirect::Virtual(t.into_bytes()),
        // Made of a checked name and the checked firmware directory, so it
        // passes again; if not, "not found" rather than another file.
        Answer::File(p) => {
            crate::tftp::sanitize(p.as_bytes()).map_or(Redirect::NotFound, Redirect::To)
        }
        Answer::Missing => Redirect::NotFound,
    })
}

/// Binds the syslog receiver (when on). A configured address that cannot
/// be bound stops the start-up; the unconfigured default (port 514) is
/// skipped with one info line instead, and installers are then not told
/// to log to gopxe.
fn bind_syslog(config: &Config) -> Result<Option<crate::syslog::Receiver>, StartError> {
    let Some(listen) = config.syslog_listen else {
        return Ok(None);
    };
    match crate::syslog::bind(listen) {
        Ok(r) => Ok(Some(r)),
        Err(e) if config.syslog_auto => {
            log::info!(
                "syslog off: cannot listen on {listen} ({e}); set syslog_listen to choose an address"
            );
            Ok(None)
        }
        Err(source) => Err(StartError::Listen {
            key: "syslog_listen",
            addr: listen,
            source,
        }),
    }
}

/// Binds DHCP (when on) and spawns it; binding errors stop the start-up.
fn start_dhcp(ex: &Rc<smol::LocalExecutor<'static>>, app: &Rc<App>) -> Result<(), StartError> {
    use crate::dhcp::{DhcpServer, DhcpState, Mode};
    let mode = app.config.dhcp_mode;
    if mode == Mode::Off {
        return Ok(());
    }
    let cfg = crate::services::dhcp_config(app);
    let state = match mode {
        Mode::Authoritative => {
            DhcpState::open(&app.config.data_dir).map_err(|source| StartError::Leases {
                dir: app.config.data_dir.clone(),
                source,
            })?
        }
        _ => DhcpState::in_memory(),
    };
    let listen = cfg.listen;
    let server = DhcpServer::bind(cfg).map_err(|source| StartError::Listen {
        key: "dhcp_listen",
        addr: listen,
        source,
    })?;
    let local = server
        .local_addr()
        .map_err(system("the DHCP socket's address"))?;
    let pxe = server.pxe_local_addr().and_then(Result::ok);
    announce(&format!(
        "dhcp ({mode}) listening on {local}{} (interface {})",
        pxe.map(|p| format!(" and {p}")).unwrap_or_default(),
        app.config.interface.as_deref().unwrap_or("any")
    ));
    app.note_listening(format!(
        "dhcp {local}{}",
        pxe.map(|p| format!(" and {p}")).unwrap_or_default()
    ));
    app.set_dhcp_state(state.clone());
    let lookup = Rc::new(crate::services::StoreLookup(app.clone()));
    let app = app.clone();
    ex.spawn(async move {
        let events = app.clone();
        if let Err(e) = server
            .run(state, lookup, move |ev| {
                crate::services::on_dhcp_event(&events, &ev)
            })
            .await
        {
            log::error!("dhcp stopped: {e}");
        }
        drop(app);
    })
    .detach();
    Ok(())
}
