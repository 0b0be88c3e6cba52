//! `gopxe console` on a pseudo-terminal, against a running `gopxe serve`.
//!
//! The real binary runs on the slave side of a pty (rustix's safe pty
//! calls), exactly as on the appliance's serial line: the terminal echoes,
//! lines end in `\n` (a serial terminal's `\r` is turned into one by the
//! line discipline), ^D at the start of a line is EOF. A `gopxe serve` on
//! 127.0.0.1 is started by a small `serve.sh`, which is also the console's
//! apply command: it stops the server and starts it again with the file.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]
mod common;

use common::{request, tempdir, wait_until};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "console-test-token-1";

/// The console on a pty: what it wrote so far, and a way to type.
struct Pty {
    master: File,
    out: Arc<Mutex<Vec<u8>>>,
    /// How far `expect` has read.
    seen: usize,
    child: Child,
}

impl Pty {
    fn spawn(args: &[String]) -> Pty {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let name = PathBuf::from(name.to_str().expect("pts name"));
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .expect("open the pty slave");
        let child = Command::new(env!("CARGO_BIN_EXE_gopxe"))
            .args(args)
            .env("GOPXE_CONSOLE_TTY", "pts-test")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("start gopxe console");
        let master = File::from(master);
        let mut reader = master.try_clone().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the console has exited and the slave is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            out,
            seen: 0,
            child,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).replace('\r', "")
    }

    /// Waits for `needle` after what was already matched; returns the text
    /// between and moves past it.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.text();
            if let Some(rest) = t.get(self.seen..)
                && let Some(i) = rest.find(needle)
            {
                let got = rest[..i + needle.len()].to_string();
                self.seen += i + needle.len();
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} from the console within 60 s; it wrote:\n{}",
                t.get(self.seen..).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
        self.master.write_all(b"\n").unwrap();
        self.master.flush().unwrap();
    }

    /// ^D at the start of a line (EOF); the console must leave with 0.
    fn eof_and_exit_code(&mut self) -> i32 {
        self.master.write_all(&[4]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "console did not exit on EOF");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gopxe server started by `serve.sh` (the console's apply command too);
/// stopped on drop by the PID it wrote.
struct Server {
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir.join("images")).unwrap();
        std::fs::write(
            dir.join("gopxe.toml"),
            format!(
                "data_dir = \"{d}/data\"\nimages = \"{d}/images\"\nhttp_listen = \"127.0.0.1:{port}\"\n\
                 tftp_listen = \"off\"\ndhcp_listen = \"127.0.0.1:0\"\napi_token = \"{TOKEN}\"\ndhcp_mode = \"off\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        // Like S50gopxe restart: stop the old server (bounded), seed the
        // configuration from the factory file after a reset, start again.
        std::fs::write(
            dir.join("serve.sh"),
            format!(
                "#!/bin/sh\ncd '{d}' || exit 1\n\
                 if [ -f serve.pid ]; then p=$(cat serve.pid); kill \"$p\" 2>/dev/null; i=0;\n\
                   while kill -0 \"$p\" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; fi\n\
                 [ -f gopxe.toml ] || cp factory.toml gopxe.toml\n\
                 echo restart >>restarts\n\
                 '{bin}' serve --config gopxe.toml >>serve.log 2>&1 </dev/null &\n\
                 echo $! >serve.pid\n",
                d = dir.display(),
                bin = env!("CARGO_BIN_EXE_gopxe")
            ),
        )
        .unwrap();
        let fact = std::fs::read_to_string(dir.join("gopxe.toml")).unwrap();
        std::fs::write(dir.join("factory.toml"), format!("# factory\n{fact}")).unwrap();
        let st = Command::new("sh")
            .arg(dir.join("serve.sh"))
            .status()
            .unwrap();
        assert!(st.success());
        let s = Server {
            dir: dir.to_path_buf(),
            port,
        };
        assert!(
            s.wait_health(),
            "gopxe serve did not start: {}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
        );
        s
    }

    fn health(&self) -> Option<serde_json::Value> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut b = Vec::new();
        s.read_to_end(&mut b).ok()?;
        let t = String::from_utf8_lossy(&b);
        serde_json::from_str(t.split("\r\n\r\n").nth(1)?).ok()
    }

    fn wait_health(&self) -> bool {
        wait_until(Duration::from_secs(20), || self.health().is_some())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(p) = std::fs::read_to_string(self.dir.join("serve.pid")) {
            let _ = Command::new("kill").arg(p.trim()).status();
        }
    }
}

fn console_args(dir: &Path) -> Vec<String> {
    vec![
        "console".into(),
        "--config".into(),
        dir.join("gopxe.toml").display().to_string(),
        "--apply-command".into(),
        format!("sh '{}'", dir.join("serve.sh").display()),
        "--network-command".into(),
        format!(
            "echo network-applied >>'{}'",
            dir.join("net-applied").display()
        ),
        "--network-file".into(),
        dir.join("network.conf").display().to_string(),
    ]
}

fn config_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("gopxe.toml")).unwrap_or_default()
}

#[test]
fn console_shows_status_refuses_bad_input_and_applies_changes() {
    let dir = tempdir("console-pty");
    let server = Server::start(&dir);
    let auth = format!("Bearer {TOKEN}");
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = request(
        server.port,
        "POST",
        "/bootaction/console-test",
        &h,
        br#"{"kernel": "e2e/vmlinuz", "initrd": "e2e/initrd.img"}"#,
    );
    assert!(r.status / 100 == 2, "{}", r.text());
    let r = request(
        server.port,
        "POST",
        "/pxeboot",
        &h,
        br#"{"bootaction": "console-test", "hostname": "node7.lab", "uuid": "52:54:00:12:34:56"}"#,
    );
    assert!(r.status / 100 == 2, "{}", r.text());

    let mut c = Pty::spawn(&console_args(&dir));
    // The status screen.
    let banner = c.expect("choice> ");
    assert!(
        banner.contains(&format!("http://127.0.0.1:{}/", server.port)),
        "{banner}"
    );
    assert!(banner.contains(&format!("API token  {TOKEN}")), "{banner}");
    assert!(banner.contains("node7.lab"), "{banner}");
    assert!(banner.contains("dhcp       off"), "{banner}");
    assert!(banner.contains("1 machines"), "{banner}");
    assert!(banner.contains("on pts-test"), "{banner}");

    // Bad input: refused with a message, asked again; the file is untouched.
    let before = config_text(&dir);
    c.send("2");
    c.expect("DHCP mode: off, proxy");
    c.send("sometimes");
    c.expect("unknown DHCP mode \"sometimes\"");
    c.send("");
    c.expect("cancelled");
    c.send("3");
    c.expect("DHCP range(s)");
    c.send("10.1.0.50,10.1.0.10");
    c.expect("is empty");
    c.send("10.1.0.10,10.2.0.10,255.255.255.0");
    c.expect("spans more than one");
    c.send("");
    c.expect("choice> ");
    c.send("1");
    c.expect("address of eth0");
    c.send("10.1.0.300/24");
    c.expect("not an IPv4 address");
    c.send("10.1.0.0/24");
    c.expect("network or broadcast");
    c.send("");
    c.expect("choice> ");
    // authoritative needs a range; `none` makes the whole config invalid.
    c.send("2");
    c.expect("DHCP mode: off");
    c.send("authoritative");
    c.expect("e.g.");
    c.send("none");
    c.expect("refused");
    c.expect("nothing was written");
    c.send("7");
    c.expect("not on the menu");
    assert_eq!(config_text(&dir), before, "bad input changed the file");
    assert!(!dir.join("network.conf").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("restarts"))
            .unwrap()
            .lines()
            .count(),
        1,
        "bad input ran the apply command"
    );

    // A good change: persisted, applied (restart), reported by /health.
    c.send("2");
    c.expect("DHCP mode: off");
    c.send("proxy");
    c.expect("saved DHCP mode proxy");
    let applied = c.expect("applied: gopxe is serving, dhcp proxy");
    assert!(applied.contains("applying: sh"), "{applied}");
    let raw = gopxe::config::read_file(&dir.join("gopxe.toml")).unwrap();
    assert_eq!(raw.dhcp_mode.as_deref(), Some("proxy"));
    assert_eq!(raw.api_token.as_deref(), Some(TOKEN));
    assert!(server.wait_health());
    assert_eq!(server.health().unwrap()["dhcp_mode"], "proxy");

    // Token: shown, then regenerated.
    c.send("4");
    c.expect(&format!("API token: {TOKEN}"));
    c.expect("type `new`");
    c.send("new");
    let t = c.expect("new API token: ");
    assert!(t.contains("saved a new API token"), "{t}");
    c.expect("\n");
    let raw = gopxe::config::read_file(&dir.join("gopxe.toml")).unwrap();
    let new = raw.api_token.unwrap();
    assert_ne!(new, TOKEN);
    assert_eq!(new.len(), 32);
    assert!(new.bytes().all(|b| b.is_ascii_hexdigit()));
    // the restarted service takes the new token and refuses the old one
    assert!(server.wait_health());
    let old = format!("Bearer {TOKEN}");
    let r = request(
        server.port,
        "POST",
        "/bootaction/x1",
        &[("Authorization", old.as_str())],
        br#"{"kernel":"k"}"#,
    );
    assert_eq!(r.status, 401, "{}", r.text());

    // The network address goes to network.conf and runs the network command.
    c.send("1");
    c.expect("address of eth0");
    c.send("192.168.50.2/24");
    c.expect("default gateway");
    c.send("192.168.51.1");
    c.expect("not on 192.168.50.2/24's subnet");
    c.send("192.168.50.1");
    c.expect("saved the network settings");
    c.expect("applied: gopxe is serving");
    let net = std::fs::read_to_string(dir.join("network.conf")).unwrap();
    assert!(
        net.contains(
            "GOPXE_NET_MODE=static\nGOPXE_NET_ADDR=192.168.50.2/24\nGOPXE_NET_GW=192.168.50.1\n"
        ),
        "{net}"
    );
    assert!(dir.join("net-applied").exists());

    // Unknown machines.
    c.send("5");
    c.expect("machines without a record boot");
    c.send("no spaces please");
    c.expect("only letters, digits");
    c.send("console-test");
    c.expect("saved the default boot `console-test`");
    c.expect("applied");
    let raw = gopxe::config::read_file(&dir.join("gopxe.toml")).unwrap();
    assert_eq!(raw.unknown_boot.as_deref(), Some("console-test"));

    // Factory reset: nothing without the word; with it, back to the factory file.
    let before = config_text(&dir);
    c.send("6");
    c.expect("type RESET to confirm");
    c.send("reset");
    c.expect("not confirmed: nothing changed");
    assert_eq!(config_text(&dir), before);
    c.send("6");
    c.expect("type RESET to confirm");
    c.send("RESET");
    c.expect("deleted the configuration and the network settings");
    c.expect("applied: gopxe is serving, dhcp off");
    let banner = c.expect("choice> ");
    assert!(banner.contains(&format!("API token  {TOKEN}")), "{banner}");
    assert!(config_text(&dir).starts_with("# factory\n"));
    assert!(!dir.join("network.conf").exists());

    assert_eq!(c.eof_and_exit_code(), 0);
    assert!(c.text().contains("Leaving the console."));
    drop(server);
}

#[test]
fn console_without_a_service_or_config_still_runs() {
    let dir = tempdir("console-pty-down");
    std::fs::write(
        dir.join("gopxe.toml"),
        "http_listen = \"127.0.0.1:9\"\napi_token = \"abcdefgh12\"\n",
    )
    .unwrap();
    let mut c = Pty::spawn(&console_args(&dir));
    let banner = c.expect("choice> ");
    assert!(banner.contains("not answering on 127.0.0.1:9"), "{banner}");
    assert!(banner.contains("API token  abcdefgh12"), "{banner}");
    c.send("q");
    c.expect("Leaving the console.");
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(st) = c.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));

    // An unreadable configuration is reported, edits are refused.
    std::fs::write(dir.join("gopxe.toml"), "this is not toml = = =\n").unwrap();
    let mut c = Pty::spawn(&console_args(&dir));
    c.expect("configuration cannot be read");
    c.expect("choice> ");
    c.send("2");
    c.expect("cannot be read");
    assert_eq!(c.eof_and_exit_code(), 0);
    assert_eq!(config_text(&dir), "this is not toml = = =\n");
}
