//! Behind a reverse proxy: the node takes the client's address from `X-Forwarded-For` only
//! for connections from a proxy listed in `trusted_proxies` (here the test itself, on
//! loopback, sends what a proxy on the same host would), so one client's wrong tokens
//! limit that client only; a valid token is never locked out; operator endpoints do not
//! answer forwarded requests; `/metrics` needs its token.

use renkei_tests::NodeProc;

fn get(url: &str, token: &str, forwarded_for: Option<&str>) -> u16 {
    let mut req = reqwest::blocking::Client::new().get(url).bearer_auth(token);
    if let Some(ip) = forwarded_for {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().unwrap().status().as_u16()
}

#[test]
fn one_clients_bad_tokens_limit_that_client_only_and_admin_is_not_proxied() {
    let mut node = NodeProc::init("proxy", &[]);
    node.edit_config("trusted_proxies = []", "trusted_proxies = [\"127.0.0.1\"]");
    node.run();
    let token = node.add_office("4074478647", "43");
    let me = format!("{}/v1/me", node.url);
    let (mallory, alice) = (Some("203.0.113.7"), Some("198.51.100.20"));
    for i in 0..renkei_node::api::FAILED_AUTH_MAX {
        assert_eq!(get(&me, "wrong", mallory), 401, "attempt {i}");
    }
    assert_eq!(
        get(&me, "wrong", mallory),
        429,
        "the guessing client is limited"
    );
    assert_eq!(
        get(&me, "wrong", alice),
        401,
        "another client behind the proxy is not"
    );
    assert_eq!(get(&me, &token, alice), 200);
    assert_eq!(
        get(&me, &token, mallory),
        200,
        "a valid token is never locked out, even from a limited address"
    );
    // The header counts only from a trusted proxy: the same from an untrusted peer would
    // be the client's own claim. (Here the peer is trusted, so the limited client is the
    // forwarded one and the proxy's own address is free.)
    assert_eq!(get(&me, "wrong", None), 401);

    // Operator endpoints are not on the office listener at all, whoever asks: they are on
    // the admin socket in the node directory (mode 0600), and need the admin token there.
    let admin = std::fs::read_to_string(node.dir.0.join("admin.token")).unwrap();
    let status = format!("{}/admin/v1/status", node.url);
    assert_eq!(get(&status, admin.trim(), None), 404);
    assert_eq!(get(&status, admin.trim(), alice), 404);
    let r = node
        .admin(reqwest::Method::GET, "/admin/v1/status")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = node
        .admin_as(reqwest::Method::GET, "/admin/v1/status", &token)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "an office token is not the admin token"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(node.dir.0.join("admin.sock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "admin.sock is {mode:o}");

    // Metrics: the metrics token (made at the first start) or the admin token.
    let metrics = format!("{}/metrics", node.url);
    let mtoken = std::fs::read_to_string(node.dir.0.join("metrics.token")).unwrap();
    assert_eq!(get(&metrics, "", None), 401);
    assert_eq!(
        get(&metrics, &token, None),
        401,
        "an office token is not enough"
    );
    assert_eq!(get(&metrics, mtoken.trim(), None), 200);
    assert_eq!(get(&metrics, admin.trim(), None), 200);
}

/// CORS: off unless origins are configured; then only those origins get the headers.
#[test]
fn cors_answers_only_the_configured_origins() {
    let allowed = "https://care.example.jp";
    let preflight = |url: &str, origin: &str| {
        let r = reqwest::blocking::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{url}/v1/inbox"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
            .unwrap();
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let plain = NodeProc::start("cors-off", &[]);
    assert_eq!(preflight(&plain.url, allowed), None, "off by default");

    let mut node = NodeProc::init("cors-on", &[]);
    node.edit_config(
        "cors_allowed_origins = []",
        &format!("cors_allowed_origins = [\"{allowed}\"]"),
    );
    node.run();
    assert_eq!(preflight(&node.url, allowed).as_deref(), Some(allowed));
    assert_eq!(preflight(&node.url, "https://evil.example"), None);
    // A real call from the allowed origin carries the header and exposes the paging ones.
    let token = node.add_office("4074478647", "43");
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/inbox", node.url))
        .bearer_auth(&token)
        .header("Origin", allowed)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let expose = r
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_lowercase())
        .unwrap_or_default();
    assert!(expose.contains("x-renkei-next-before"), "{expose}");
}
