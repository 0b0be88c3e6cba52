//! Whole-process test of `/openapi.json`: the document the real binary
//! serves and its router agree.
//!
//! - The document's (method, path) pairs are exactly the routes'
//!   (`route::Route::operations`).
//! - Every documented operation, called with the examples of the document
//!   (path parameters, query parameters, request bodies) on fixtures made
//!   with the document's own create operations, answers a documented 2xx
//!   whose body validates against the documented schema.
//! - The documented error statuses happen: 401 without the token on the
//!   operations that need it (and not on the others), 400 for a body field
//!   that does not exist, an id that is not one or a malformed query
//!   parameter (each named in `field`), 413 for an oversized
//!   body, 404 for missing records and files, 422 for a machine naming a
//!   missing boot action; and every path answers 405 with an `Allow` header
//!   listing exactly its documented methods.
//!
//! A new route needs its line in the `route` table and its operation with examples in
//! `api/openapi.json`; this test then exercises it with no change here.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, Resp, request, tempdir};
use gopxe::http::route::Route;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const TOKEN: &str = "openapi-test-token";
const MAX_BODY: usize = 1024;
const KERNEL: &[u8] = b"not really a kernel\x00\x01\x02";
const REPOMD: &[u8] = b"<repomd/>\n";

struct Op {
    method: String,
    path: String,
    op: Value,
}

fn start() -> Gopxe {
    let dir = tempdir("openapi");
    std::fs::create_dir_all(dir.join("images/centos7")).unwrap();
    std::fs::write(dir.join("images/centos7/vmlinuz"), KERNEL).unwrap();
    std::fs::create_dir_all(dir.join("repo/repodata")).unwrap();
    std::fs::write(dir.join("repo/repodata/repomd.xml"), REPOMD).unwrap();
    let repo = dir.join("repo").display().to_string();
    let max = MAX_BODY.to_string();
    // proxyDHCP on loopback, relayed to a port nobody reads: the
    // discovery inbox's example machine DHCPs in (`discovered`).
    let relay = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_port = relay.local_addr().unwrap().port().to_string();
    std::mem::forget(relay);
    Gopxe::start(
        &dir,
        &[
            "--api-token",
            TOKEN,
            "--localrepo",
            &repo,
            "--max-body-bytes",
            &max,
            "--dhcp-mode",
            "proxy",
            "--dhcp-listen",
            "127.0.0.1:0",
            "--dhcp-relay-port",
            &relay_port,
        ],
    )
    .owning(dir)
}

/// The MAC of the discovery examples.
const DISCOVERED: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// The example MAC as an unknown machine in the discovery inbox: its
/// record (an earlier adoption) deleted, and a relayed PXE DISCOVER sent.
fn discovered(g: &Gopxe) {
    let path = "/discovered/52:54:00:12:34:56";
    let _ = send(g, "DELETE", "/pxeboot/52:54:00:12:34:56", None, true);
    if g.get(path).status == 200 {
        return;
    }
    let mut b = vec![1u8, 1, 6, 1, 0, 0, 0, 7];
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&[127, 0, 0, 1]); // giaddr: relayed
    b.extend_from_slice(&DISCOVERED);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 93, 2, 0, 0, 60, 9]);
    b.extend_from_slice(b"PXEClient");
    b.push(255);
    b.resize(300, 0);
    let port = g.announced_port("dhcp").expect("dhcp port");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&b, ("127.0.0.1", port)).unwrap();
    let seen = common::wait_until(std::time::Duration::from_secs(5), || {
        g.get(path).status == 200
    });
    assert!(seen, "the example MAC is discovered");
}

fn fetch_doc(g: &Gopxe) -> Value {
    let r = g.get("/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push(Op {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                op: op.clone(),
            });
        }
    }
    ops
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("local $ref");
            resolve(
                doc,
                doc.pointer(ptr).unwrap_or_else(|| panic!("dangling {r}")),
            )
        }
        None => v,
    }
}

/// A JSON Schema check covering what the document uses: `$ref`, `type`
/// (with `null`), `const`, `enum`, `required`, `properties`,
/// `additionalProperties: false`, `items`, `allOf`, `anyOf`, `oneOf`.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = resolve(doc, schema);
    let type_ok = |t: &str| match t {
        "null" => v.is_null(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("schema type {other} not handled"),
    };
    match &s["type"] {
        Value::String(t) if !type_ok(t) => return Err(format!("{at}: {v} is not {t}")),
        Value::Array(ts) if !ts.iter().filter_map(Value::as_str).any(type_ok) => {
            return Err(format!("{at}: {v} is none of {ts:?}"));
        }
        _ => {}
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = s["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(obj) = v.as_object() {
        for r in s["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !obj.contains_key(r) {
                return Err(format!("{at}: required `{r}` missing in {v}"));
            }
        }
        let props = s["properties"].as_object();
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(doc, ps, val, &format!("{at}.{k}"))?,
                None if s["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}: `{k}` is not a documented property"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        validate(doc, sub, v, at)?;
    }
    if let Some(any) = s["anyOf"].as_array()
        && !any.iter().any(|sub| validate(doc, sub, v, at).is_ok())
    {
        return Err(format!("{at}: {v} matches none of anyOf"));
    }
    if let Some(one) = s["oneOf"].as_array() {
        let n = one
            .iter()
            .filter(|sub| validate(doc, sub, v, at).is_ok())
            .count();
        if n != 1 {
            return Err(format!("{at}: {v} matches {n} of oneOf"));
        }
    }
    Ok(())
}

fn params<'a>(doc: &'a Value, op: &'a Value) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| resolve(doc, p))
        .collect()
}

/// The path with each path parameter replaced by `value(param)`, and the
/// query of the examples of the query parameters.
fn url(doc: &Value, o: &Op, value: impl Fn(&Value) -> String) -> String {
    let mut path = o.path.clone();
    let mut query = form_query();
    for p in params(doc, &o.op) {
        let name = p["name"].as_str().expect("parameter name");
        match p["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), &value(p)),
            Some("query") => {
                query.append_pair(name, p["example"].as_str().expect("query example"));
            }
            other => panic!("parameter in {other:?} not handled"),
        }
    }
    assert!(
        !path.contains('{'),
        "{} has a path parameter without value",
        o.path
    );
    let q = query.finish();
    if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    }
}

fn form_query() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

fn example(p: &Value) -> String {
    p["example"]
        .as_str()
        .unwrap_or_else(|| panic!("parameter without a string example: {p}"))
        .to_string()
}

/// The request body of the operation's example: (content type, bytes).
fn example_body(doc: &Value, o: &Op) -> Option<(String, Vec<u8>)> {
    let content = o.op["requestBody"]["content"].as_object()?;
    let (ct, media) = content.iter().next().expect("a media type");
    let ex = &media["example"];
    let bytes = match ex {
        Value::String(s) if !ct.contains("json") => s.clone().into_bytes(),
        Value::Null => panic!("{} {}: request body without example", o.method, o.path),
        _ => {
            validate(doc, &media["schema"], ex, "example")
                .unwrap_or_else(|e| panic!("{} {} example: {e}", o.method, o.path));
            serde_json::to_vec(ex).unwrap()
        }
    };
    Some((ct.clone(), bytes))
}

fn send(g: &Gopxe, method: &str, url: &str, body: Option<(&str, &[u8])>, token: bool) -> Resp {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = Vec::new();
    if token {
        headers.push(("Authorization", auth.as_str()));
    }
    if let Some((ct, _)) = body {
        headers.push(("Content-Type", ct));
    }
    request(g.port, method, url, &headers, body.map_or(&[][..], |b| b.1))
}

fn call(g: &Gopxe, doc: &Value, o: &Op, token: bool) -> Resp {
    let b = example_body(doc, o);
    send(
        g,
        &o.method,
        &url(doc, o, example),
        b.as_ref().map(|(c, b)| (c.as_str(), b.as_slice())),
        token,
    )
}

fn documented(o: &Op, status: u16) -> bool {
    o.op["responses"].get(status.to_string()).is_some()
}

/// Checks a 2xx answer (or the 303 of a status-page form) against the
/// documented response.
fn check_success(doc: &Value, o: &Op, r: &Resp) {
    let what = format!("{} {} -> {}: {}", o.method, o.path, r.status, r.text());
    assert!((200..300).contains(&r.status) || r.status == 303, "{what}");
    let resp = resolve(doc, &o.op["responses"][r.status.to_string()]);
    assert!(resp.is_object(), "status not documented: {what}");
    let Some(content) = resp["content"].as_object() else {
        assert!(r.body.is_empty(), "undocumented body: {what}");
        return;
    };
    let ct = r.header("content-type").unwrap_or_default();
    let media = content
        .iter()
        .find(|(k, _)| ct.starts_with(k.as_str()))
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("content type {ct} not documented: {what}"));
    if ct.starts_with("application/json") {
        validate(doc, &media["schema"], &r.json(), "body")
            .unwrap_or_else(|e| panic!("{e}; {what}"));
    }
}

/// Creates the records the examples refer to, with the document's own
/// create operations and examples.
fn fixtures(g: &Gopxe, doc: &Value, ops: &[Op]) {
    for id in ["putBootAction", "putTemplate", "putMachine"] {
        let o = ops
            .iter()
            .find(|o| o.op["operationId"] == id)
            .unwrap_or_else(|| panic!("no operation {id}"));
        let r = call(g, doc, o, true);
        assert!(matches!(r.status, 200 | 201), "fixture {id}: {}", r.text());
    }
    discovered(g);
}

/// Moves the example machine to `installing` the only way there is: its
/// installer fetches its kickstart from the machine's own address (a
/// loopback address here, written into the record first).
fn installing(g: &Gopxe) {
    let id = "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69";
    let body = r#"{"bootaction": "centos7", "ip": "127.0.0.70", "mask": "255.0.0.0"}"#;
    let r = send(
        g,
        "PUT",
        &format!("/pxeboot/{id}"),
        Some(("application/json", body.as_bytes())),
        true,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = common::request_from(
        "127.0.0.70",
        g.port,
        "GET",
        &format!("/kickstart/{id}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    let state = g.get(&format!("/pxeboot/{id}")).json()["state"].clone();
    assert_eq!(state, "installing");
}

#[test]
fn document_and_table_agree() {
    let g = start();
    let doc = fetch_doc(&g);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["info"]["version"],
        g.get("/health").json()["version"],
        "api/openapi.json info.version follows Cargo.toml"
    );
    let bearer = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    let table: BTreeSet<(String, String)> = Route::operations()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, table, "api/openapi.json vs route::Route");
    let ids: BTreeSet<String> = operations(&doc)
        .iter()
        .map(|o| o.op["operationId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), table.len(), "operationIds are unique");
    assert!(!ids.contains(""), "every operation has an operationId");
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let g = start();
    let doc = fetch_doc(&g);
    let ops = operations(&doc);
    let mut called = 0;
    for o in ops.iter().filter(|o| o.method != "DELETE") {
        fixtures(&g, &doc, &ops);
        if o.op["operationId"] == "machineDone" {
            installing(&g);
        }
        let r = call(&g, &doc, o, true);
        check_success(&doc, o, &r);
        if o.path == "/images/{path}" {
            assert_eq!(r.body, KERNEL);
        }
        if o.path == "/localrepo/{path}" {
            assert_eq!(r.body, REPOMD);
        }
        called += 1;
    }
    // Deletes last, retried while a 409 says another record still uses
    // the one deleted (a machine before its boot action).
    fixtures(&g, &doc, &ops);
    let mut pending: Vec<&Op> = ops.iter().filter(|o| o.method == "DELETE").collect();
    let deletes = pending.len();
    for _pass in 0..deletes {
        pending.retain(|o| {
            let r = call(&g, &doc, o, true);
            if r.status == 409 && documented(o, 409) {
                return true;
            }
            check_success(&doc, o, &r);
            false
        });
    }
    assert!(
        pending.is_empty(),
        "deletes that never succeeded: {}",
        pending.len()
    );
    called += deletes;
    assert_eq!(called, Route::operations().count());
    // Every record is gone again.
    assert_eq!(g.get("/pxeboot").json(), serde_json::json!([]));
    assert_eq!(g.get("/bootaction").json(), serde_json::json!([]));
    assert_eq!(g.get("/kstemplate").json(), serde_json::json!([]));
}

#[test]
fn documented_errors_happen() {
    let g = start();
    let doc = fetch_doc(&g);
    let ops = operations(&doc);
    fixtures(&g, &doc, &ops);
    let mut checked: BTreeMap<u16, usize> = BTreeMap::new();
    let mut seen = |s: u16| *checked.entry(s).or_default() += 1;
    for o in &ops {
        let what = format!("{} {}", o.method, o.path);
        let needs_token = o.op["security"].as_array().is_some_and(|s| !s.is_empty());
        // Without the token.
        if o.method != "DELETE" {
            let r = call(&g, &doc, o, false);
            if needs_token {
                assert_eq!(r.status, 401, "{what} without token");
                assert!(documented(o, 401), "{what}: 401 not documented");
                assert!(
                    r.header("www-authenticate")
                        .is_some_and(|h| h.starts_with("Bearer"))
                );
                seen(401);
            } else {
                assert_ne!(r.status, 401, "{what} is documented as public");
                fixtures(&g, &doc, &ops);
            }
        } else {
            assert!(needs_token, "{what}: deletes need the token");
            let r = call(&g, &doc, o, false);
            assert_eq!(r.status, 401, "{what} without token");
            seen(401);
        }
        // Bodies: an unknown field, and one past the limit.
        if let Some((ct, _)) = example_body(&doc, o) {
            if ct.contains("json") {
                let r = send(
                    &g,
                    &o.method,
                    &url(&doc, o, example),
                    Some((&ct, br#"{"no_such_field": 1}"#)),
                    true,
                );
                assert_eq!(r.status, 400, "{what} unknown field: {}", r.text());
                assert!(documented(o, 400), "{what}: 400 not documented");
                assert_eq!(r.json()["field"], "no_such_field", "{what}");
                seen(400);
            }
            let big = vec![b' '; MAX_BODY + 1];
            let r = send(
                &g,
                &o.method,
                &url(&doc, o, example),
                Some((&ct, &big)),
                true,
            );
            assert_eq!(r.status, 413, "{what} oversized");
            assert!(documented(o, 413), "{what}: 413 not documented");
            seen(413);
        }
        // A 422: a machine naming a boot action that does not exist.
        if documented(o, 422) {
            let (ct, body) = example_body(&doc, o).expect("a body");
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["bootaction"] = "no-such-action".into();
            let body = serde_json::to_vec(&v).unwrap();
            let r = send(
                &g,
                &o.method,
                &url(&doc, o, example),
                Some((&ct, &body)),
                true,
            );
            assert_eq!(r.status, 422, "{what}: {}", r.text());
            assert_eq!(r.json()["field"], "bootaction");
            seen(422);
        }
        // Path parameters: an id that is not one, and records that do not exist.
        let has_id = params(&doc, &o.op).iter().any(|p| p["name"] == "id");
        let body = example_body(&doc, o);
        let body = body.as_ref().map(|(c, b)| (c.as_str(), b.as_slice()));
        if has_id {
            let u = url(&doc, o, |p| {
                if p["name"] == "id" {
                    "not-an-id".into()
                } else {
                    example(p)
                }
            });
            let r = send(&g, &o.method, &u, body, true);
            assert_eq!(r.status, 400, "{what} bad id: {}", r.text());
            assert!(documented(o, 400), "{what}: 400 not documented");
            // The status-page forms answer HTML; the API names the field.
            if r.header("content-type")
                .unwrap_or_default()
                .starts_with("application/json")
            {
                assert_eq!(r.json()["field"], "id");
            }
            seen(400);
        }
        // Query parameters: each one malformed in turn names itself.
        for q in params(&doc, &o.op)
            .into_iter()
            .filter(|p| p["in"] == "query")
        {
            let name = q["name"].as_str().unwrap_or_default();
            let mut query = form_query();
            query.append_pair(name, "not valid!");
            let full = url(&doc, o, example);
            let path = full.split('?').next().unwrap_or_default();
            let u = format!("{path}?{}", query.finish());
            let r = send(&g, &o.method, &u, None, true);
            assert_eq!(r.status, 400, "{what} bad {name}: {}", r.text());
            assert!(documented(o, 400), "{what}: 400 not documented");
            assert_eq!(r.json()["field"], name, "{what}");
            seen(400);
        }
        let path_params = params(&doc, &o.op).iter().any(|p| p["in"] == "path");
        if path_params && documented(o, 404) {
            let missing = |p: &Value| match p["name"].as_str() {
                Some("id") => "11111111-2222-3333-4444-555555555555".to_string(),
                Some("path") => "no/such/file".to_string(),
                Some("file") => "01-02-00-00-00-00-01".to_string(),
                Some("mac") => "02:00:00:00:00:09".to_string(),
                _ => "missing".to_string(),
            };
            let r = send(&g, &o.method, &url(&doc, o, missing), body, true);
            assert_eq!(r.status, 404, "{what} missing record: {}", r.text());
            seen(404);
        }
    }
    // Methods a path does not document: 405 with an Allow header listing
    // exactly the documented ones.
    let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for o in &ops {
        by_path.entry(&o.path).or_default().insert(&o.method);
    }
    for (path, methods) in &by_path {
        let o = ops.iter().find(|o| o.path == *path).unwrap();
        let u = url(&doc, o, example);
        let r = send(&g, "PATCH", &u, None, true);
        assert_eq!(r.status, 405, "PATCH {path}");
        let allow: BTreeSet<&str> = r.header("allow").unwrap_or_default().split(", ").collect();
        assert_eq!(&allow, methods, "Allow of {path}");
        seen(405);
    }
    let counts = format!("{checked:?}");
    eprintln!("error statuses checked: {counts}");
    for s in [400, 401, 404, 405, 413, 422] {
        assert!(
            checked.get(&s).is_some_and(|n| *n > 0),
            "no {s} checked: {counts}"
        );
    }
}
