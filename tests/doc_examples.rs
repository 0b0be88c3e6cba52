//! The examples of `README.md` and `docs/*.md`, run against the real binary.
//!
//! Convention (also described in `docs/testing.md`): a fenced block tagged
//! `console` is a transcript. A line starting with `$ ` is a command; it
//! goes on over the next lines while a quote is open or the line ends in
//! `\`. The lines after it, up to the next `$ ` or the end of the block,
//! are what the command prints on stdout (nothing shown: it prints
//! nothing). In the shown output, a line that is only `...` stands for any
//! number of lines, and `...` inside a line for any text on that line.
//! Trailing newlines are not compared. Every command must exit with
//! status 0.
//!
//! Each file gets its own fresh gopxe (loopback, port 0, a temp data dir,
//! `--advertise-addr 10.1.20.2`); its examples run in order with `sh -c`,
//! in a temp working folder, with `TOKEN` set. The examples name the
//! appliance as `localhost:9090`, `127.0.0.1:9090` or `10.1.20.2:9090`:
//! `curl` is a shell function that adds `--connect-to` for those three, so
//! the commands run as written (URL and `Host` header included) against
//! the test's gopxe. In what they print, the test's port after those
//! addresses reads as 9090 again.
//!
//! Other code blocks (`sh`, plain) are not run; a `curl` of the appliance
//! (`:9090`) outside a `console` block fails this test, so every API
//! example stays runnable.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the docs name the appliance.
const DOC_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "10.1.20.2"];
const DOC_PORT: u16 = 9090;
/// The advertised address the docs show in boot URLs.
const ADVERTISE: &str = "10.1.20.2";
/// `$TOKEN` in the examples (the test's gopxe has no token: writes from
/// loopback are accepted, as on a fresh appliance).
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// The GoPXE README's own calls: they must be in the docs, verbatim, as
/// commands that the test runs.
const ORIGINAL_CALLS: [&str; 3] = [
    r#"curl -vv -H "Content-Type: application/json" -d \
'{
  "default": "linux",
  "label": "linux",
  "menu": "centos7",
  "kernel": "centos7/vmlinuz",
  "ksdevice": "link",
  "ip": "dhcp",
  "load_ramdisk": "1",
  "initrd":"centos7/initrd.img"
}' -X POST localhost:9090/bootaction/myfirstbootaction"#,
    r#"curl -vv  -H "Content-Type: application/json" -d \
'{
  "bootaction": "myfirstbootaction",
  "ksfile": "default",
  "os": "centos-7",
  "version": "7.5.1804",
  "hostname": "test-myvm.local",
  "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"
}' http://localhost:9090/pxeboot"#,
    r#"curl -vv  -H "Content-Type: application/json" -d \
'{
  "bootaction": "vmtemplate",
  "ksfile": "default",
  "os": "centos-7",
  "version": "7.5.1804",
  "hostname": "test-myvm1.local",
  "ip": "10.1.20.50",
  "mask": "255.255.255.0",
  "ns1": "8.8.8.8",
  "ns2": "8.8.4.4",
  "gw": "10.1.20.1",
  "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"
}' http://localhost:9090/pxeboot"#,
];

/// One command of a `console` block and what it should print.
#[derive(Debug)]
struct Example {
    /// 1-based line of its `$ `.
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// A problem found in a file, with its place.
struct Finding {
    line: usize,
    message: String,
}

/// Whether `cmd` goes on on the next line: an open quote, or a final
/// unquoted `\`. `#` after a blank starts a comment outside quotes.
fn continues(cmd: &str) -> bool {
    let (mut single, mut double) = (false, false);
    let mut chars = cmd.chars().peekable();
    let mut prev_blank = true;
    let mut trailing_backslash = false;
    while let Some(c) = chars.next() {
        trailing_backslash = false;
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => match chars.next() {
                Some(_) => {}
                None => trailing_backslash = true,
            },
            '#' if !single && !double && prev_blank => {
                // A comment: up to the end of this line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    single || double || trailing_backslash
}

/// The fenced blocks of a Markdown text: (info string, line number of
/// the first line inside, lines).
fn blocks(text: &str) -> Vec<(String, usize, Vec<&str>)> {
    let mut out = Vec::new();
    // (fence, info, first line, lines) of the block being read.
    let mut open: Option<(String, String, usize, Vec<&str>)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let fence: String = t.chars().take_while(|c| *c == '`' || *c == '~').collect();
        match open.as_mut() {
            None if fence.len() >= 3 => {
                let info = t[fence.len()..].trim().to_string();
                open = Some((fence, info, i + 2, Vec::new()));
            }
            None => {}
            Some((f, ..))
                if fence.starts_with(f.as_str()) && t[fence.len()..].trim().is_empty() =>
            {
                if let Some((_, info, first, lines)) = open.take() {
                    out.push((info, first, lines));
                }
            }
            Some((.., lines)) => lines.push(line),
        }
    }
    out
}

/// The examples of one Markdown text, and the problems of its blocks.
fn examples(text: &str) -> (Vec<Example>, Vec<Finding>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (info, first, lines) in blocks(text) {
        if info != "console" {
            for (i, l) in lines.iter().enumerate() {
                if l.contains("curl ") && l.contains(&format!(":{DOC_PORT}")) {
                    problems.push(Finding {
                        line: first + i,
                        message: format!(
                            "a curl of the appliance in a `{info}` block, not a `console` one: {l}"
                        ),
                    });
                }
            }
            continue;
        }
        let mut i = 0;
        let mut current: Option<Example> = None;
        while i < lines.len() {
            let l = lines[i];
            if let Some(cmd) = l.strip_prefix("$ ") {
                if let Some(e) = current.take() {
                    found.push(e);
                }
                let line = first + i;
                let mut command = cmd.to_string();
                while continues(&command) {
                    i += 1;
                    match lines.get(i) {
                        Some(next) => {
                            command.push('\n');
                            command.push_str(next);
                        }
                        None => {
                            problems.push(Finding {
                                line,
                                message: "the command never ends (an open quote or a final `\\`)"
                                    .into(),
                            });
                            break;
                        }
                    }
                }
                current = Some(Example {
                    line,
                    command,
                    expected: Vec::new(),
                });
            } else if let Some(e) = current.as_mut() {
                e.expected.push(l.to_string());
            } else if !l.trim().is_empty() {
                problems.push(Finding {
                    line: first + i,
                    message: format!("output before any `$ ` command: {l}"),
                });
            }
            i += 1;
        }
        if let Some(e) = current.take() {
            found.push(e);
        }
    }
    (found, problems)
}

/// One piece of a shown output.
#[derive(Debug)]
enum Tok<'a> {
    Lit(&'a str),
    /// `...` inside a line: any text without a newline.
    InLine,
    /// A line `...`: any number of whole lines.
    Lines,
}

fn pattern(expected: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    for line in expected.split_inclusive('\n') {
        if line.trim_end_matches('\n') == "..." {
            toks.push(Tok::Lines);
            continue;
        }
        let mut parts = line.split("...");
        if let Some(p) = parts.next() {
            toks.push(Tok::Lit(p));
        }
        for p in parts {
            toks.push(Tok::InLine);
            toks.push(Tok::Lit(p));
        }
    }
    toks
}

fn matches(toks: &[Tok<'_>], s: &str) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Lit(l), rest)) => s.strip_prefix(l).is_some_and(|r| matches(rest, r)),
        Some((Tok::InLine, rest)) => {
            let end = s.find('\n').unwrap_or(s.len());
            (0..=end).any(|k| s.is_char_boundary(k) && matches(rest, &s[k..]))
        }
        Some((Tok::Lines, rest)) => {
            if matches(rest, s) {
                return true;
            }
            s.match_indices('\n')
                .any(|(k, _)| matches(rest, &s[k + 1..]))
        }
    }
}

/// Text with exactly one final newline (none when empty).
fn one_newline(s: &str) -> String {
    let t = s.trim_end_matches('\n');
    if t.is_empty() {
        String::new()
    } else {
        format!("{t}\n")
    }
}

/// Whether `actual` is what `expected` shows (with its `...`).
fn output_matches(expected: &str, actual: &str) -> bool {
    let (e, a) = (one_newline(expected), one_newline(actual));
    matches(&pattern(&e), &a)
}

fn doc_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// `curl` for the examples: the docs' appliance addresses go to `port`.
fn prelude(port: u16) -> String {
    let connect: Vec<String> = DOC_HOSTS
        .iter()
        .map(|h| format!("--connect-to {h}:{DOC_PORT}:127.0.0.1:{port}"))
        .collect();
    format!(
        "curl() {{ command curl --max-time 30 {} \"$@\"; }}\n",
        connect.join(" ")
    )
}

/// What a command printed, with the test's port read as the docs' one.
fn normalize(out: &str, port: u16) -> String {
    let mut s = out.to_string();
    for h in DOC_HOSTS.iter().chain([&ADVERTISE]) {
        s = s.replace(&format!("{h}:{port}"), &format!("{h}:{DOC_PORT}"));
    }
    s
}

/// Runs the examples of one file against a fresh gopxe; the failures.
fn run_file(path: &Path, examples: &[Example]) -> Vec<String> {
    let dir = tempdir("doc-examples");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work folder");
    let g = Gopxe::start(&dir, &["--advertise-addr", ADVERTISE]);
    let prelude = prelude(g.port);
    let mut failures = Vec::new();
    for e in examples {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{prelude}{}", e.command))
            .current_dir(&work)
            .env("TOKEN", TOKEN)
            .output()
            .expect("run sh");
        let stdout = normalize(&String::from_utf8_lossy(&out.stdout), g.port);
        let expected = e.expected.join("\n");
        let ok = out.status.success() && output_matches(&expected, &stdout);
        if !ok {
            failures.push(format!(
                "{}:{}: example failed ({})\n--- command\n{}\n--- expected stdout\n{}\n--- actual stdout\n{}\n--- stderr\n{}",
                path.display(),
                e.line,
                out.status,
                e.command,
                expected,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    drop(g);
    failures
}

#[test]
fn the_docs_examples_run_as_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut total = 0;
    let mut commands: Vec<String> = Vec::new();
    for path in doc_files(root) {
        let text = std::fs::read_to_string(&path).expect("read a doc");
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let (examples, problems) = examples(&text);
        failures.extend(
            problems
                .iter()
                .map(|p| format!("{}:{}: {}", rel.display(), p.line, p.message)),
        );
        if examples.is_empty() {
            continue;
        }
        total += examples.len();
        commands.extend(examples.iter().map(|e| e.command.clone()));
        failures.extend(run_file(&rel, &examples));
    }
    for call in ORIGINAL_CALLS {
        if !commands.iter().any(|c| c == call) {
            failures.push(format!(
                "an original GoPXE call is not run verbatim by any example:\n{call}"
            ));
        }
    }
    eprintln!("doc examples: {total} commands run");
    assert!(
        failures.is_empty(),
        "{} problem(s) in the docs' examples:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn transcript_parsing() {
    let md = "text\n\n```console\n$ echo 'a\nb' \\\n  | cat\na\nb\n$ true\n```\n\n```sh\ncurl localhost:9090/x\n```\n";
    let (ex, problems) = examples(md);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].line, 4);
    assert_eq!(ex[0].command, "echo 'a\nb' \\\n  | cat");
    assert_eq!(ex[0].expected, ["a", "b"]);
    assert_eq!(ex[1].line, 9);
    assert!(ex[1].expected.is_empty());
    assert_eq!(problems.len(), 1, "the curl in a sh block");
    assert_eq!(problems[0].line, 13);
    assert!(!continues("echo \"it's\" # don't"));
    assert!(continues("echo 'open"));
}

#[test]
fn ellipsis_matching() {
    assert!(output_matches("a\n...\nd", "a\nb\nc\nd\n"));
    assert!(output_matches("a\n...\nd", "a\nd"));
    assert!(output_matches("x ... z", "x 12 y z"));
    assert!(!output_matches("x ... z", "x 1\n2 z"));
    assert!(output_matches("a\n...", "a\nb\nc"));
    assert!(!output_matches("a\nb", "a\nc"));
    assert!(output_matches("a", "a\n\n"));
    assert!(output_matches("", ""));
    assert!(!output_matches("", "x"));
}
