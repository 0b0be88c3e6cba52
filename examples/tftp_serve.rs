//! Stand-alone TFTP server over a directory, for benchmarks and manual tests:
//! `cargo run --release --example tftp_serve -- 127.0.0.1:6969 ./images [max-transfers]`.

use std::net::UdpSocket;
use std::process::ExitCode;

use async_io::Async;
use gopxe::tftp::{ImagesRoot, ServerConfig, serve};

fn main() -> ExitCode {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(root)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tftp_serve ADDR:PORT ROOT [MAX_TRANSFERS]");
        return ExitCode::from(2);
    };
    let mut cfg = ServerConfig::default();
    if let Some(max) = args.get(2).and_then(|m| m.parse().ok()) {
        cfg.max_transfers = max;
    }
    let run = || -> std::io::Result<()> {
        let provider = ImagesRoot::new(root)?;
        let socket = Async::new(UdpSocket::bind(addr)?)?;
        smol::block_on(serve(socket, cfg, provider, |_| {}))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tftp_serve: {e}");
            ExitCode::FAILURE
        }
    }
}
