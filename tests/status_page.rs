//! The status page at `/` and its form actions, through the real binary.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, request, tempdir};

const ACTION: &str = r#"{"kernel": "centos/vmlinuz", "initrd": "centos/initrd.img",
    "menu": "<script>alert('menu')</script>"}"#;
const MAC: &str = "52:54:00:aa:bb:01";
const ID: &str = "01-52-54-00-aa-bb-01";
/// The machine's own address: its kickstart fetched from here is its own.
const MACHINE_IP: &str = "127.0.0.60";

fn html(g: &Gopxe) -> String {
    let r = request(g.port, "GET", "/", &[("Accept", "text/html")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("frame-ancestors 'none'"))
    );
    r.text()
}

fn setup(g: &Gopxe, auth: &[(&str, &str)]) {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(auth);
    let r = request(g.port, "POST", "/bootaction/centos", &h, ACTION.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let body = format!(
        r#"{{"mac": "{MAC}", "bootaction": "centos", "hostname": "web1.lab",
             "ip": "{MACHINE_IP}", "mask": "255.0.0.0"}}"#
    );
    let r = request(g.port, "POST", "/pxeboot", &h, body.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
}

fn state(g: &Gopxe) -> String {
    g.get(&format!("/pxeboot/{ID}")).json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn form_post(g: &Gopxe, action: &str, body: &str, extra: &[(&str, &str)]) -> common::Resp {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(extra);
    request(
        g.port,
        "POST",
        &format!("/ui/pxeboot/{ID}/{action}"),
        &h,
        body.as_bytes(),
    )
}

#[test]
fn page_shows_machines_events_actions_and_log() {
    let dir = tempdir("status");
    let g = Gopxe::start(&dir, &[]);
    let empty = html(&g);
    assert!(empty.contains("No machines yet"));
    setup(&g, &[]);
    assert_eq!(
        g.get_from(MACHINE_IP, &format!("/kickstart/{ID}")).status,
        200
    );
    assert_eq!(g.post(&format!("/pxeboot/{ID}/done"), "").status, 200);
    let page = html(&g);
    assert!(page.contains(&format!("id=\"m-{ID}\"")));
    assert!(page.contains("web1.lab"));
    assert!(page.contains(&format!("http 127.0.0.1:{}", g.port)));
    assert!(page.contains("tftp 127.0.0.1:"));
    assert!(page.contains("st-installed\">installed<"));
    for kind in ["k-created", "k-kickstart", "k-done"] {
        assert!(page.contains(kind), "{kind} in the timeline");
    }
    assert!(page.contains("installer reported done"));
    // The boot action's hostile menu is shown escaped, never as markup.
    assert!(page.contains("&lt;script&gt;alert(&#039;menu&#039;)&lt;/script&gt;"));
    assert_eq!(page.matches("<script").count(), 1);
    // The log tail holds this process's own lines.
    assert!(page.contains("http listening on 127.0.0.1:"));
    assert!(page.contains(&format!("machine {ID}: installer reported done")));
    // JSON is still there for clients asking for it.
    let r = request(g.port, "GET", "/", &[("Accept", "application/json")], b"");
    assert_eq!(r.json()["service"], "gopxe");
}

#[test]
fn form_actions_with_a_token() {
    let dir = tempdir("status-token");
    let g = Gopxe::start(&dir, &["--api-token", "s3cret-token"]);
    let bearer = [("Authorization", "Bearer s3cret-token")];
    setup(&g, &bearer);
    assert!(html(&g).contains("name=\"token\""));
    // The installer: its kickstart from its own address carries the
    // install's key, and its call-back needs no token with it.
    let ks = g.get_from(MACHINE_IP, &format!("/kickstart/{ID}")).text();
    let done = common::done_path(&ks);
    assert!(done.contains("/done?key="), "{done}");
    let r = request(g.port, "POST", &done, &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(state(&g), "installed");

    // Refused: no token, a wrong token, a cross-site post with the token.
    let r = form_post(&g, "reinstall", "", &[]);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("token is missing or wrong"));
    assert_eq!(form_post(&g, "reinstall", "token=wrong", &[]).status, 401);
    let r = form_post(
        &g,
        "reinstall",
        "token=s3cret-token",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(state(&g), "installed", "refused posts change nothing");

    // Accepted: 303 back to the page, state changed, event recorded.
    let origin = format!("http://127.0.0.1:{}", g.port);
    let r = form_post(
        &g,
        "reinstall",
        "token=s3cret-token",
        &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/"));
    assert_eq!(state(&g), "install");
    assert!(html(&g).contains("reinstall requested on the status page"));

    // Delete needs the token too; the bearer header works as well.
    assert_eq!(form_post(&g, "delete", "", &[]).status, 401);
    assert_eq!(form_post(&g, "delete", "", &bearer).status, 303);
    assert_eq!(g.get(&format!("/pxeboot/{ID}")).status, 404);
    assert_eq!(
        form_post(&g, "delete", "token=s3cret-token", &[]).status,
        404
    );
    // GET on an action address is not a change.
    assert_eq!(g.get(&format!("/ui/pxeboot/{ID}/delete")).status, 405);
}
