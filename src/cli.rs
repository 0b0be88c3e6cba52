//! Command line: `gopxe [serve] [flags]`, `gopxe check-config`, help, version.
//!
//! Layer: entry point. Parses flags with lexopt into a [`RawConfig`]
//! overlay (the flags are those of the key table,
//! [`crate::config::keys`]), checks the configuration, and hands it to
//! [`crate::serve`], which starts the services. Errors print a chain
//! naming what is wrong and exit with status 2 (usage/config) or 1
//! (start-up failure).

use crate::config::{Config, ConfigError, RawConfig, read_file};
use std::path::PathBuf;

const USAGE_HEAD: &str = "\
gopxe — network-boot appliance: DHCP, TFTP, HTTP API and kickstarts in one process

Usage: gopxe [serve] [options]
       gopxe check-config [--config FILE] [options]
       gopxe console --config FILE [--apply-command CMD]   (serial console)
       gopxe firstboot --interface IF --out FILE ...       (plug-in default)
       gopxe --help | --version

Options (each also a key in the config file, with _ for -; defaults in []):
";

const USAGE_TAIL: &str = "
Logging: RUST_LOG=debug|info|warn, or per module: info,gopxe::dhcp=debug
(default info).
";

/// The `--help` text: the option list comes from the table of keys.
pub fn usage() -> String {
    let mut out = String::from(USAGE_HEAD);
    crate::config::keys::option_line(
        &mut out,
        "--config FILE",
        "TOML config file (see docs/configuration.md)",
    );
    out.push_str(&crate::config::keys::options_help());
    out.push_str(USAGE_TAIL);
    out
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    CheckConfig,
    /// `gopxe console ...`: the arguments after `console`.
    Console(Vec<std::ffi::OsString>),
    /// `gopxe firstboot ...`: the arguments after `firstboot`.
    Firstboot(Vec<std::ffi::OsString>),
    Help,
    Version,
}

/// Parsed command line.
#[derive(Debug)]
pub struct Args {
    pub command: Command,
    pub config_file: Option<PathBuf>,
    pub flags: RawConfig,
}

/// Parses arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut out = Args {
        command: Command::Serve,
        config_file: None,
        flags: RawConfig::default(),
    };
    let mut first = true;
    enum A {
        Short(char),
        Long(String),
        Value(std::ffi::OsString),
    }
    loop {
        let arg = match p.next().map_err(|e| e.to_string())? {
            None => break,
            Some(Short(c)) => A::Short(c),
            Some(Long(l)) => A::Long(l.to_string()),
            Some(Value(v)) => A::Value(v),
        };
        let mut val = |name: &str| -> Result<String, String> {
            p.value()
                .map_err(|e| e.to_string())?
                .into_string()
                .map_err(|_| format!("--{name}: the value is not valid UTF-8"))
        };
        let f = &mut out.flags;
        match arg {
            A::Value(v) if first => {
                out.command = match v.to_str() {
                    Some("serve") => Command::Serve,
                    Some("check-config") => Command::CheckConfig,
                    Some("help") => Command::Help,
                    Some(sub @ ("console" | "firstboot")) => {
                        let rest = p.raw_args().map_err(|e| e.to_string())?.collect();
                        out.command = if sub == "console" {
                            Command::Console(rest)
                        } else {
                            Command::Firstboot(rest)
                        };
                        break;
                    }
                    _ => return Err(format!("unknown command {v:?}; try --help")),
                }
            }
            A::Value(v) => return Err(format!("unexpected argument {v:?}; try --help")),
            A::Short('h') => out.command = Command::Help,
            A::Short('V') => out.command = Command::Version,
            A::Short(c) => return Err(format!("unknown option -{c}; try --help")),
            A::Long(name) => match name.as_str() {
                "help" => out.command = Command::Help,
                "version" => out.command = Command::Version,
                "config" => out.config_file = Some(PathBuf::from(val("config")?)),
                key if crate::config::keys::by_flag(key).is_some() => {
                    let v = val(key)?;
                    f.set_flag(key, v)?;
                }
                _ => return Err(format!("unknown option --{name}; try --help")),
            },
        }
        first = false;
    }
    Ok(out)
}

/// Loads the file named on the command line (if any) and checks it with the flags.
pub fn load_config(args: &Args) -> Result<Config, ConfigError> {
    let file = match &args.config_file {
        Some(p) => read_file(p)?,
        None => RawConfig::default(),
    };
    Config::from_raw(&file, args.config_file.as_deref(), &args.flags)
}

/// Runs the program; returns the process exit code.
pub fn main() -> i32 {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gopxe: {e}");
            return 2;
        }
    };
    match args.command {
        Command::Help => {
            print!("{}", usage());
            return 0;
        }
        Command::Version => {
            println!("gopxe {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Command::Console(rest) => return crate::console::main(rest),
        Command::Firstboot(rest) => return crate::console::firstboot::main(rest),
        _ => {}
    }
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gopxe: bad configuration: {e}");
            return 2;
        }
    };
    if args.command == Command::CheckConfig {
        // Secrets are said to be set, not shown: this lands in terminals,
        // CI logs and bug reports.
        println!("gopxe: configuration is valid\n{}", config.summary());
        // The store is not opened (a running gopxe holds it): the loaders
        // are those of the default family, pxelinux.
        let families = crate::loadercheck::families_in_use([]);
        let check = crate::loadercheck::check_tree(&config.images, &config.loaders(), &families);
        for w in check.warnings(&config.images) {
            println!("warning: {w}");
        }
        return 0;
    }
    // stderr through the writer thread, and the status page's ring.
    crate::logging::init();
    let result = crate::serve::serve(config);
    // What was logged comes before the error and the exit.
    crate::logging::flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gopxe: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        parse_args(a.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn parses_commands_and_flags() {
        let a = args(&[
            "--http-listen",
            "127.0.0.1:0",
            "--dhcp-range",
            "a",
            "--dhcp-range=b",
        ])
        .unwrap();
        assert_eq!(a.command, Command::Serve);
        assert_eq!(a.flags.http_listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(a.flags.dhcp_range, Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            args(&["check-config"]).unwrap().command,
            Command::CheckConfig
        );
        let w = args(&["--webhook", "http://a/1", "--webhook=http://b/2"]).unwrap();
        assert_eq!(
            w.flags.webhook,
            Some(vec!["http://a/1".into(), "http://b/2".into()])
        );
        assert!(args(&["bogus"]).is_err());
        assert!(args(&["--nope"]).is_err());
        assert!(
            args(&["--max-connections", "x"])
                .unwrap_err()
                .contains("--max-connections")
        );
        let t = args(&["--tftp-max-per-client", "2"]).unwrap();
        assert_eq!(t.flags.tftp_max_per_client, Some(2));
    }

    #[test]
    fn help_lists_every_flag() {
        let help = usage();
        assert!(help.contains("\n  --config FILE "));
        for k in crate::config::keys::KEYS {
            assert!(
                help.contains(&format!("\n  --{} ", k.flag)),
                "--{} missing",
                k.flag
            );
            let a = args(&[&format!("--{}", k.flag), "1"]).unwrap();
            assert_ne!(a.flags, RawConfig::default(), "--{}", k.flag);
        }
        assert_eq!(
            args(&["--server-names", "x"]).unwrap_err(),
            "unknown option --server-names; try --help"
        );
    }
}
