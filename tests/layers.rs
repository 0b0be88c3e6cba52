//! The gopxe crate's top-level modules form no import cycle: a module
//! (`src/<m>.rs` or `src/<m>/`) that names `crate::<other>` outside its
//! `#[cfg(test)]` items depends on it, and following those edges never
//! leads back. The protocol cores are a crate of their own
//! (`crates/gopxe-proto`), which the compiler keeps from importing gopxe.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `text` without its `#[cfg(test)]` items (a `;`-ended item, or one in
/// braces, matched by counting them).
fn without_tests(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let semi = after.find(';');
        let brace = after.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after.char_indices().skip_while(|(i, _)| *i < b) {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            visit(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

/// Module -> the modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    visit(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code: String = without_tests(&text)
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `boot_log!` is the logging module's macro.
            let name = if name == "boot_log" {
                "logging".into()
            } else {
                name
            };
            if !name.is_empty() && name != module {
                edges.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    edges
}

/// A cycle through `from`, if any (depth first).
fn cycle(
    edges: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == node) {
        let mut c = path[i..].to_vec();
        c.push(node.to_string());
        return Some(c);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in edges.get(node).into_iter().flatten() {
        if let Some(c) = cycle(edges, next, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn top_level_modules_import_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    assert!(edges.len() > 5, "the graph was read: {edges:?}");
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(c) = cycle(&edges, m, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}\ngraph: {edges:#?}", c.join(" -> "));
        }
    }
}

#[test]
fn a_cycle_is_found_and_test_items_do_not_count() {
    let code = "use crate::b;\n#[cfg(test)]\nmod tests { use crate::c; fn f() { {} } }\n#[cfg(test)]\nuse crate::d;\nfn g() {}";
    let kept = without_tests(code);
    assert!(kept.contains("crate::b") && kept.contains("fn g"));
    assert!(
        !kept.contains("crate::c") && !kept.contains("crate::d"),
        "{kept}"
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    let c = cycle(&edges, "a", &mut Vec::new(), &mut BTreeSet::new());
    assert_eq!(c.unwrap(), ["a", "b", "c", "a"]);
}
