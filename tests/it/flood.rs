//! Floods over libp2p against a real `renkei run`: processes outside the roster opening
//! connections with large requests, and a roster peer that floods deliveries, while an
//! honest operator keeps sending. The outsiders are denied at connection, the flooder gets
//! `RateLimited`, honest units keep being delivered, and the node's peak memory stays
//! bounded (printed).

use std::collections::BTreeMap;
use std::time::Duration;

use renkei_node::net::{Config, Multiaddr, NetEvent, Network};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::wire::{RefusalCode, Request, Response};
use renkei_tests::{Federation, NodeProc, Office, fixture_files, wait_reachable};

/// Receiving office (居宅介護支援, kind 43), homed at the target.
const CM: &str = "4074478647";
/// Sending office (kind 11), homed at the honest operator.
const SVC: &str = "4071481594";
/// The fixture's stamp, replaced per honest unit.
const STAMP: &str = "20250428164608";

/// Outsider identities, each its own network actor (own connection).
const OUTSIDERS: usize = 8;
/// Large requests each outsider tries.
const OUTSIDER_REQUESTS: u64 = 4;
/// Deliveries the flooder fires at once.
const FLOOD_REQUESTS: u64 = 32;
/// The target's bound on one peer's requests in the core (lowered from 8 so that the
/// flood exceeds it whatever the machine's speed).
const PENDING_PER_PEER: usize = 2;
/// Honest units sent during the flood.
const HONEST_UNITS: usize = 10;
/// The node's peak resident memory must stay below this.
const PEAK_RSS_BOUND_KB: u64 = 1024 * 1024;

/// The target's libp2p address with its peer id.
fn target_addr(n: &NodeProc) -> Multiaddr {
    renkei_tests::p2p_addr(n).parse().unwrap()
}

fn target_id(n: &NodeProc) -> OperatorId {
    renkei_node::keyfile::load(&n.dir.0).unwrap().id()
}

/// Peak resident set of a process, in KiB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// What one actor's requests came to.
#[derive(Debug, Default)]
struct Tally {
    answers: BTreeMap<String, u64>,
    failed: u64,
}

/// Fires `n` requests from `keys` at the target at once and waits for every outcome.
async fn fire(
    keys: OperatorKeys,
    target: OperatorId,
    addr: Multiaddr,
    n: u64,
    make: fn() -> Request,
) -> Tally {
    let mut config = Config::new(&keys);
    config.allowed = [target].into();
    config.request_timeout = Duration::from_secs(60);
    let (client, mut events, event_loop) = Network::new(config).unwrap();
    tokio::spawn(event_loop.run());
    client.add_addresses(target, vec![addr]).await.unwrap();
    for id in 1..=n {
        client.send(target, id, make()).await.unwrap();
    }
    let mut tally = Tally::default();
    let mut left = n;
    while left > 0 {
        let event = tokio::time::timeout(Duration::from_secs(120), events.recv())
            .await
            .expect("an outcome for every request")
            .expect("network actor running");
        match event {
            NetEvent::Response { response, .. } => {
                let key = match response {
                    Response::Refused { code, .. } => format!("{code:?}"),
                    Response::HopAcks(a) => format!("HopAcks({})", a.len()),
                    other => format!("{other:?}").chars().take(24).collect(),
                };
                *tally.answers.entry(key).or_default() += 1;
                left -= 1;
            }
            NetEvent::SendFailed { .. } => {
                tally.failed += 1;
                left -= 1;
            }
            _ => {}
        }
    }
    let _ = client.shutdown().await;
    tally
}

fn seed(tag: u8, i: usize) -> [u8; 32] {
    let mut s = [tag; 32];
    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
    s
}

/// 64 envelopes of 16 KiB garbage (1 MiB): each is answered with a signed rejection.
fn garbage_delivery() -> Request {
    Request::Deliver((0..64).map(|i| vec![0xA0 ^ i as u8; 16 * 1024]).collect())
}

/// 4 MiB of garbage envelopes: what an outsider would make the node read.
fn large_delivery() -> Request {
    Request::Deliver((0..4).map(|i| vec![0x50 ^ i as u8; 1024 * 1024]).collect())
}

#[test]
fn outsiders_are_denied_and_a_flooder_is_rate_limited_while_honest_units_are_delivered() {
    let mut f = Federation::init("flood", &["target", "flooder", "honest"]);
    f.nodes[0].edit_config(
        "inbound_requests_pending_per_peer_max = 8",
        &format!("inbound_requests_pending_per_peer_max = {PENDING_PER_PEER}"),
    );
    f.relay.run();
    f.nodes[0].run();
    f.nodes[2].run();
    let target = &f.nodes[0];
    let _cm = Office::new(&target.url, &target.add_office(CM, "43"));
    let honest = Office::new(&f.nodes[2].url, &f.nodes[2].add_office(SVC, "11"));
    wait_reachable(&honest, CM);
    let (tid, addr) = (target_id(target), target_addr(target));
    let flooder = renkei_node::keyfile::load(&f.nodes[1].dir.0).unwrap();
    let pid = target.pid().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outsiders: Vec<_> = (0..OUTSIDERS)
        .map(|i| {
            let keys = OperatorKeys::from_seeds(seed(7, i), seed(8, i));
            rt.spawn(fire(
                keys,
                tid,
                addr.clone(),
                OUTSIDER_REQUESTS,
                large_delivery,
            ))
        })
        .collect();
    let flood = rt.spawn(fire(
        flooder,
        tid,
        addr.clone(),
        FLOOD_REQUESTS,
        garbage_delivery,
    ));

    // Meanwhile the honest operator's units go through (via the relay or directly).
    let unit = fixture_files("valid/d3_jisseki");
    for i in 0..HONEST_UNITS {
        let files: Vec<(String, Vec<u8>)> = unit
            .iter()
            .map(|(n, b)| (n.replace(STAMP, &format!("202504281650{i:02}")), b.clone()))
            .collect();
        let (st, body) = honest.submit(&files);
        assert_eq!(st, 202, "{body}");
        honest.wait_status(body["id"].as_str().unwrap(), &["delivered"]);
    }

    let flood = rt.block_on(flood).unwrap();
    let mut denied = 0;
    for o in outsiders {
        let t = rt.block_on(o).unwrap();
        assert!(t.answers.is_empty(), "an outsider got answers: {t:?}");
        denied += t.failed;
    }
    let peak = peak_rss_kb(pid);
    println!(
        "flood: {denied} outsider requests denied at connection; flooder {flood:?}; target peak RSS {} MiB",
        peak / 1024
    );
    assert_eq!(denied, OUTSIDERS as u64 * OUTSIDER_REQUESTS);
    let limited = flood
        .answers
        .get(&format!("{:?}", RefusalCode::RateLimited));
    assert!(
        limited.is_some_and(|n| *n > 0),
        "the flooder was never rate limited: {flood:?}"
    );
    assert!(
        flood.answers.keys().any(|k| k.starts_with("HopAcks")),
        "the flooder's first requests are still served: {flood:?}"
    );
    assert!(
        peak < PEAK_RSS_BOUND_KB,
        "peak RSS {peak} KiB over the bound"
    );
    // The node is still up and serving.
    let (st, _) = honest.get("/v1/me");
    assert_eq!(st, 200);
    let log = target.log();
    assert!(
        log.contains("denied an inbound connection from outside the roster"),
        "{log}"
    );
}
