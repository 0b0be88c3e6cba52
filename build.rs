//! Build step: `api/openapi.json` goes into the binary without the
//! indentation and line breaks that keep it readable in the tree (a third of
//! its bytes). Only whitespace between tokens is dropped, so the served
//! document is the same JSON, keys in the same order, on one line ending in
//! a newline (as every JSON body gopxe sends). `src/http/api.rs`
//! includes the result; a unit test there checks it parses to the same value.

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
}

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
