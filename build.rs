//! Build step: `api/openapi.json` goes into the binary without the
//! indentation and line breaks that keep it readable in the tree (a third of
//! its bytes). Only whitespace between tokens is dropped, so the served
//! document is the same JSON, keys in the same order, on one line ending in
//! a newline (as every JSON body gopxe sends). `src/http/api.rs`
//! includes the result; a unit test there checks it parses to the same value.
//!
//! Also, for the static release binaries (`--release`, a musl target: the
//! appliance builds of scripts/build-release.sh), a linker script that
//! drops the unwind tables: see [`DISCARD_UNWIND_TABLES`].

// A build script that cannot read or write its files stops the build
// with the reason: that is what panicking is for here.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let src = Path::new(&dir).join("api/openapi.json");
    println!("cargo::rerun-if-changed={}", src.display());
    let json = std::fs::read_to_string(&src)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    // One final newline, as every JSON body gopxe sends ends.
    let served = without_whitespace(&json) + "\n";
    std::fs::write(&out, served).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));

    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("PROFILE") == "release" && var("CARGO_CFG_TARGET_ENV") == "musl" {
        let script = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
            .join("discard-unwind-tables.ld");
        std::fs::write(&script, DISCARD_UNWIND_TABLES)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
        // Binaries only: the library's tests unwind (`cargo test` builds
        // them with panic=unwind, whatever the profile says).
        println!("cargo::rustc-link-arg-bins=-T{}", script.display());
    }
}

/// A linker script for the static release binaries (about 200 KiB of the
/// 2 MiB budget): `.eh_frame`, its index `.eh_frame_hdr` and the landing-pad
/// tables `.gcc_except_table` are discarded. The release profile aborts on
/// panic, so nothing unwinds; the tables came with the standard library
/// (built to unwind) and remained for functions LLVM could not prove never
/// unwind, whatever `-C force-unwind-tables=no` asks (.cargo/config.toml).
/// What a panic does is unchanged (the hook runs, the message is printed,
/// the process aborts, exit status 134); the one difference is that the
/// frame addresses a panic prints under `RUST_BACKTRACE=full` (the binary
/// is stripped: addresses without names) are no longer there, and
/// `std::backtrace::Backtrace` reports `Unsupported` (gopxe takes none).
/// `INSERT AFTER` keeps the linker's default layout for everything else.
const DISCARD_UNWIND_TABLES: &str = "\
/* gopxe build.rs: static release binaries carry no unwind tables (panic = abort) */
SECTIONS {
  /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) *(.gcc_except_table .gcc_except_table.*) }
} INSERT AFTER .text;
";

/// `json` with the whitespace outside strings removed (RFC 8259 §2: space,
/// tab, line feed, carriage return may surround any structural character).
fn without_whitespace(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}
