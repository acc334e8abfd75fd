//! Integration tests of `node::net` on real loopback sockets (TCP and QUIC).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use renkei_node::net::{Config, Multiaddr, NetClient, NetEvent, Network};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::limits::MESSAGE_BYTES_MAX;
use renkei_protocol::wire::{RefusalCode, Request, Response};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const TCP: &str = "/ip4/127.0.0.1/tcp/0";
const QUIC: &str = "/ip4/127.0.0.1/udp/0/quic-v1";

/// A loopback port where nothing listens now, taken below the kernel's ephemeral range
/// (32768–60999), so that no outgoing connection of a parallel test can take it meanwhile
/// (a port from a `:0` bind is in that range). Spread by process id and a counter over
/// 32000–32700, apart from the integration harness's 20000–32000.
fn quiet_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 32_000;
    const SPAN: u32 = 700;
    let offset = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let port = (LOW + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn operator(n: u8) -> OperatorId {
    OperatorKeys::from_seeds([n; 32], [n.wrapping_add(100); 32]).id()
}

struct Node {
    id: OperatorId,
    client: NetClient,
    events: Receiver<NetEvent>,
}

fn start(n: u8, allowed: &[OperatorId], tweak: impl FnOnce(&mut Config)) -> Node {
    let keys = OperatorKeys::from_seeds([n; 32], [n.wrapping_add(100); 32]);
    let mut config = Config::new(&keys);
    config.allowed = allowed.iter().copied().collect();
    tweak(&mut config);
    let (client, events, event_loop) = Network::new(config).unwrap();
    tokio::spawn(event_loop.run());
    assert_eq!(client.local_operator(), keys.id());
    Node {
        id: keys.id(),
        client,
        events,
    }
}

/// The next event matching `want`, skipping the others.
async fn next(events: &mut Receiver<NetEvent>, want: impl Fn(&NetEvent) -> bool) -> NetEvent {
    loop {
        let event = events.recv().await.expect("event channel closed");
        if want(&event) {
            return event;
        }
    }
}

/// Every event already queued.
fn drain(events: &mut Receiver<NetEvent>) -> Vec<NetEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

fn sync_request() -> Request {
    Request::DirectorySync {
        roster_serial: 4,
        cursor: 17,
    }
}

fn directory_response() -> Response {
    Response::Directory {
        roster: None,
        bindings: vec![b"binding".to_vec()],
        next_cursor: 18,
        more: false,
    }
}

/// A dials B on `listen`, sends a directory sync, B answers, A gets the answer.
async fn request_response_over(listen: &str) {
    init_tracing();
    let (a_id, b_id) = (operator(1), operator(2));
    let mut a = start(1, &[b_id], |_| {});
    let mut b = start(2, &[a_id], |_| {});
    let addr = b.client.listen(listen.parse().unwrap()).await.unwrap();
    assert!(!addr.to_string().ends_with("/0"), "{addr}");
    a.client.dial(b.id, vec![addr]).await.unwrap();

    assert_eq!(
        next(&mut a.events, |e| matches!(e, NetEvent::PeerUp(_))).await,
        NetEvent::PeerUp(b.id)
    );
    assert_eq!(
        next(&mut b.events, |e| matches!(e, NetEvent::PeerUp(_))).await,
        NetEvent::PeerUp(a.id)
    );
    assert_eq!(a.client.connected().await.unwrap(), vec![b.id]);

    a.client.send(b.id, 42, sync_request()).await.unwrap();
    let NetEvent::Inbound { id, from, request } =
        next(&mut b.events, |e| matches!(e, NetEvent::Inbound { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(from, a.id);
    assert_eq!(request, sync_request());
    b.client.respond(id, directory_response()).await.unwrap();

    assert_eq!(
        next(&mut a.events, |e| matches!(e, NetEvent::Response { .. })).await,
        NetEvent::Response {
            id: 42,
            from: b.id,
            response: directory_response()
        }
    );

    // B going away is seen by A.
    b.client.shutdown().await.unwrap();
    assert_eq!(
        next(&mut a.events, |e| matches!(e, NetEvent::PeerDown(_))).await,
        NetEvent::PeerDown(b.id)
    );
    a.client.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_over_tcp() {
    timeout(TEST_TIMEOUT, request_response_over(TCP))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_over_quic() {
    timeout(TEST_TIMEOUT, request_response_over(QUIC))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_outside_the_roster_is_refused() {
    timeout(TEST_TIMEOUT, async {
        init_tracing();
        let b_id = operator(2);
        // A knows B; B's roster does not contain A.
        let mut a = start(1, &[b_id], |_| {});
        let mut b = start(2, &[operator(9)], |_| {});
        let addr = b.client.listen(TCP.parse().unwrap()).await.unwrap();
        a.client.add_addresses(b.id, vec![addr]).await.unwrap();

        a.client.send(b.id, 5, sync_request()).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        // B denies the connection when it is established, before any request is read.
        assert!(
            matches!(event, NetEvent::SendFailed { id: 5, to, .. } if to == b.id),
            "expected the connection to be denied, got {event:?}"
        );

        // B's runtime never saw the request, nor a PeerUp for A.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for event in drain(&mut b.events) {
            assert!(
                matches!(event, NetEvent::Listening(_)),
                "unexpected event at B: {event:?}"
            );
        }

        // Once A is in B's roster, the same request goes through.
        b.client.set_allowed(BTreeSet::from([a.id])).await.unwrap();
        a.client.send(b.id, 6, sync_request()).await.unwrap();
        let NetEvent::Inbound { id, from, .. } =
            next(&mut b.events, |e| matches!(e, NetEvent::Inbound { .. })).await
        else {
            unreachable!()
        };
        assert_eq!(from, a.id);
        b.client.respond(id, directory_response()).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        assert!(
            matches!(event, NetEvent::Response { id: 6, .. }),
            "{event:?}"
        );

        // Removed from B's roster again: B reports A down and refuses it.
        b.client.set_allowed(BTreeSet::new()).await.unwrap();
        assert_eq!(
            next(&mut b.events, |e| matches!(e, NetEvent::PeerDown(_))).await,
            NetEvent::PeerDown(a.id)
        );
        assert_eq!(
            next(&mut a.events, |e| matches!(e, NetEvent::PeerDown(_))).await,
            NetEvent::PeerDown(b.id)
        );
        a.client.send(b.id, 7, sync_request()).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        assert!(
            matches!(&event, NetEvent::SendFailed { id: 7, .. }),
            "{event:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_unreachable_peer_fails() {
    timeout(TEST_TIMEOUT, async {
        init_tracing();
        let c_id = operator(3);
        let mut a = start(1, &[c_id], |_| {});

        // No address known at all.
        a.client.send(c_id, 1, sync_request()).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        assert!(
            matches!(&event, NetEvent::SendFailed { id: 1, to, .. } if *to == c_id),
            "{event:?}"
        );

        // An address where nothing listens.
        let port = quiet_port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        a.client.add_addresses(c_id, vec![addr]).await.unwrap();
        a.client.send(c_id, 2, sync_request()).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        let NetEvent::SendFailed { id: 2, to, error } = event else {
            panic!("expected SendFailed, got {event:?}");
        };
        assert_eq!(to, c_id);
        assert!(error.contains("dial"), "{error}");
    })
    .await
    .unwrap();
}

/// A `Deliver` whose envelopes total `total` bytes.
fn deliver_of(total: usize) -> Request {
    let chunk = 6 * 1024 * 1024;
    let mut envelopes = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        envelopes.push(vec![0xa5; n]);
        left -= n;
    }
    Request::Deliver(envelopes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_requests_are_refused_naming_the_limit() {
    timeout(TEST_TIMEOUT, async {
        init_tracing();
        let (a_id, b_id) = (operator(1), operator(2));
        let mut a = start(1, &[b_id], |_| {});
        // B accepts at most 1 MiB per message.
        let b_limit = 1024 * 1024;
        let mut b = start(2, &[a_id], |c| c.message_bytes_max = b_limit);
        let addr = b.client.listen(TCP.parse().unwrap()).await.unwrap();
        a.client.add_addresses(b.id, vec![addr]).await.unwrap();

        // Over the protocol's limit: refused by the sender, never sent.
        a.client
            .send(b.id, 1, deliver_of(MESSAGE_BYTES_MAX + 1))
            .await
            .unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        let NetEvent::SendFailed { id: 1, error, .. } = event else {
            panic!("expected SendFailed, got {event:?}");
        };
        assert!(error.contains("MESSAGE_BYTES_MAX"), "{error}");
        assert!(error.contains(&MESSAGE_BYTES_MAX.to_string()), "{error}");

        // Over the receiver's limit: B refuses it as TooLarge, naming its limit.
        a.client
            .send(b.id, 2, deliver_of(2 * 1024 * 1024))
            .await
            .unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        let NetEvent::Response {
            id: 2,
            response: Response::Refused { code, message },
            ..
        } = event
        else {
            panic!("expected a refusal, got {event:?}");
        };
        assert_eq!(code, RefusalCode::TooLarge);
        assert!(message.contains(&b_limit.to_string()), "{message}");
        for event in drain(&mut b.events) {
            assert!(
                !matches!(event, NetEvent::Inbound { .. }),
                "oversize request reached B: {event:?}"
            );
        }

        // A response over B's own limit is not sent: B answers TooLarge instead.
        a.client.send(b.id, 3, sync_request()).await.unwrap();
        let NetEvent::Inbound { id, .. } =
            next(&mut b.events, |e| matches!(e, NetEvent::Inbound { .. })).await
        else {
            unreachable!()
        };
        let big = Response::Directory {
            roster: Some(vec![0; b_limit + 1]),
            bindings: vec![],
            next_cursor: 0,
            more: false,
        };
        b.client.respond(id, big).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        assert!(
            matches!(
                &event,
                NetEvent::Response {
                    id: 3,
                    response: Response::Refused {
                        code: RefusalCode::TooLarge,
                        ..
                    },
                    ..
                }
            ),
            "{event:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_response_fails_the_send_naming_the_limit() {
    timeout(TEST_TIMEOUT, async {
        init_tracing();
        let (a_id, b_id) = (operator(1), operator(2));
        let a_limit = 64 * 1024;
        let mut a = start(1, &[b_id], |c| c.message_bytes_max = a_limit);
        let mut b = start(2, &[a_id], |_| {});
        let addr = b.client.listen(TCP.parse().unwrap()).await.unwrap();
        a.client.add_addresses(b.id, vec![addr]).await.unwrap();

        a.client.send(b.id, 9, sync_request()).await.unwrap();
        let NetEvent::Inbound { id, .. } =
            next(&mut b.events, |e| matches!(e, NetEvent::Inbound { .. })).await
        else {
            unreachable!()
        };
        let big = Response::Directory {
            roster: Some(vec![0; a_limit * 2]),
            bindings: vec![],
            next_cursor: 0,
            more: false,
        };
        b.client.respond(id, big).await.unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        let NetEvent::SendFailed { id: 9, error, .. } = event else {
            panic!("expected SendFailed, got {event:?}");
        };
        assert!(error.contains(&a_limit.to_string()), "{error}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_legal_request_goes_through() {
    timeout(TEST_TIMEOUT, async {
        init_tracing();
        let (a_id, b_id) = (operator(1), operator(2));
        let mut a = start(1, &[b_id], |_| {});
        let mut b = start(2, &[a_id], |_| {});
        let addr = b.client.listen(TCP.parse().unwrap()).await.unwrap();
        a.client.add_addresses(b.id, vec![addr]).await.unwrap();

        let request = Request::Deliver(vec![vec![0x5a; 4 * 1024 * 1024]]);
        a.client.send(b.id, 11, request.clone()).await.unwrap();
        let NetEvent::Inbound {
            id,
            from,
            request: got,
        } = next(&mut b.events, |e| matches!(e, NetEvent::Inbound { .. })).await
        else {
            unreachable!()
        };
        assert_eq!(from, a.id);
        assert!(got == request, "request bytes differ");
        b.client
            .respond(id, Response::HopAcks(vec![]))
            .await
            .unwrap();
        let event = next(&mut a.events, |e| {
            matches!(e, NetEvent::Response { .. } | NetEvent::SendFailed { .. })
        })
        .await;
        assert_eq!(
            event,
            NetEvent::Response {
                id: 11,
                from: b.id,
                response: Response::HopAcks(vec![])
            }
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_peer_is_redialled_until_it_comes_back() {
    timeout(TEST_TIMEOUT, async {
        init_tracing();
        let (a_id, b_id) = (operator(1), operator(2));
        let fast = |c: &mut Config| {
            c.reconnect_delay_min = Duration::from_millis(100);
            c.reconnect_delay_max = Duration::from_millis(500);
        };
        let mut a = start(1, &[b_id], fast);
        let port = quiet_port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        a.client
            .keep_connected(b_id, vec![addr.clone()])
            .await
            .unwrap();

        // B is not up yet; A keeps trying.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(a.client.connected().await.unwrap().is_empty());

        for _round in 0..2 {
            let b = start(2, &[a_id], fast);
            b.client.listen(addr.clone()).await.unwrap();
            assert_eq!(
                next(&mut a.events, |e| matches!(e, NetEvent::PeerUp(_))).await,
                NetEvent::PeerUp(b_id)
            );
            b.client.shutdown().await.unwrap();
            assert_eq!(
                next(&mut a.events, |e| matches!(e, NetEvent::PeerDown(_))).await,
                NetEvent::PeerDown(b_id)
            );
        }
    })
    .await
    .unwrap();
}
