//! A lying member of the federation against real `renkei run` processes over libp2p on
//! loopback (issue 29): the test speaks as the `liar` operator, a roster member, with its
//! own key — a forged sender is refused at the destination, and a hijacked home is
//! flagged and changes no route.

use std::time::{Duration, Instant};

use renkei_node::core::unit::check_unit;
use renkei_node::net::{Config, Multiaddr, NetClient, NetEvent, Network};
use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::ids::{EnvelopeId, OperatorId};
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::receipt::{ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::roster::{OfficeBinding, SignedRoster};
use renkei_protocol::wire::{HopOutcome, Request, Response};
use renkei_tests::{Federation, NodeProc, Office, fixture_files, p2p_addr, renkei, wait_reachable};
use tokio::sync::mpsc::Receiver;

const CM: &str = "4074478647"; // at a (43)
const SVC: &str = "4071481594"; // at b (11)

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The liar's libp2p session with one node.
struct Liar {
    client: NetClient,
    events: Receiver<NetEvent>,
    target: OperatorId,
    /// Bindings it hands out when the node asks for its directory.
    bindings: Vec<Vec<u8>>,
}

impl Liar {
    async fn connect(keys: &OperatorKeys, node: &NodeProc) -> Liar {
        let addr: Multiaddr = p2p_addr(node).parse().unwrap();
        let target = renkei_node::net::operator_of_multiaddr(&addr).unwrap();
        let mut config = Config::new(keys);
        config.allowed = [target].into();
        config.request_timeout = Duration::from_secs(30);
        let (client, events, event_loop) = Network::new(config).unwrap();
        tokio::spawn(event_loop.run());
        client.add_addresses(target, vec![addr]).await.unwrap();
        Liar {
            client,
            events,
            target,
            bindings: Vec::new(),
        }
    }

    /// Sends `request`; answers the node's own requests meanwhile; returns the response.
    async fn ask(&mut self, request: Request) -> Response {
        self.client.send(self.target, 1, request).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, self.events.recv())
                .await
                .expect("an answer within 60 s")
                .expect("network running");
            match event {
                NetEvent::Response {
                    id: 1, response, ..
                } => return response,
                NetEvent::SendFailed { id: 1, error, .. } => panic!("send failed: {error}"),
                NetEvent::Inbound { id, request, .. } => self.serve(id, request).await,
                _ => {}
            }
        }
    }

    /// Serves what the node asks for `d`.
    async fn linger(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, self.events.recv()).await {
            if let NetEvent::Inbound { id, request, .. } = event {
                self.serve(id, request).await;
            }
        }
    }

    async fn serve(&mut self, id: u64, request: Request) {
        let response = match request {
            Request::DirectorySync { cursor, .. } => Response::Directory {
                roster: None,
                bindings: if cursor == 0 {
                    self.bindings.clone()
                } else {
                    Vec::new()
                },
                next_cursor: cursor.max(1),
                more: false,
            },
            Request::Receipts(rs) => Response::ReceiptsTaken(rs.len() as u64),
            Request::Deliver(_) => Response::HopAcks(Vec::new()),
        };
        let _ = self.client.respond(id, response).await;
    }
}

#[test]
fn a_forged_sender_is_refused_and_a_hijacked_home_changes_no_route() {
    let mut f = Federation::init("byz", &["a", "b", "liar"]);
    f.relay.run();
    f.nodes[0].run();
    f.nodes[1].run();
    let (a, b, liar_node) = (&f.nodes[0], &f.nodes[1], &f.nodes[2]);
    let cm = Office::new(&a.url, &a.add_office(CM, "43"));
    let svc = Office::new(&b.url, &b.add_office(SVC, "11"));
    wait_reachable(&cm, SVC);
    wait_reachable(&svc, CM);
    let (st, body) = cm.submit(&fixture_files("valid/d2_kyo_riyohyo"));
    assert_eq!(st, 202, "{body}");
    let genuine: EnvelopeId = body["id"].as_str().unwrap().parse().unwrap();
    cm.wait_status(&genuine.to_string(), &["delivered"]);

    let liar = renkei_node::keyfile::load(&liar_node.dir.0).unwrap();
    let roster = SignedRoster::decode(&std::fs::read(f.roster()).unwrap()).unwrap();
    let b_id: OperatorId = renkei_tests::operator_id(b.dir_str()).parse().unwrap();
    let b_entry = roster.roster().operator(&b_id).unwrap().clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. A unit "from" CM (homed at a), naming the genuine unit in `supersedes`, sealed to
    //    b and signed by the liar as origin.
    let files: Vec<(String, Vec<u8>)> = fixture_files("valid/d2_kyo_riyohyo")
        .into_iter()
        .map(|(n, bytes)| (n.replace("20250425164608", "20250425165959"), bytes))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let info = check_unit(&refs).unwrap();
    let header = Header {
        outer: renkei_protocol::envelope::Outer {
            id: EnvelopeId([0x4c; 16]),
            from: info.from,
            to: info.to,
            origin: liar.id(),
            destination: b_id,
            sealed_to: b_entry.enc_key,
            doc_kind: info.doc_kind,
            stamp: info.stamp,
            supersedes: Some(genuine),
            created_at_ms: now_ms(),
        },
        subject: info.subject,
        files: Envelope::file_entries(&refs),
        salt: Some([5; 16]),
    };
    let bodies: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
    let forged = Envelope::seal_and_sign(header, &bodies, &liar, [5; 32]).unwrap();
    let answer = rt.block_on(async {
        let mut s = Liar::connect(&liar, b).await;
        let r = s.ask(Request::Deliver(vec![forged.encode()])).await;
        let _ = s.client.shutdown().await;
        r
    });
    let Response::HopAcks(acks) = answer else {
        panic!("{answer:?}")
    };
    let HopOutcome::Rejected(r) = &acks[0].outcome else {
        panic!("the forged sender was not rejected: {:?}", acks[0].outcome)
    };
    let ReceiptKind::Rejected { code, text } =
        SignedReceipt::decode(r).unwrap().receipt().kind.clone()
    else {
        panic!()
    };
    assert_eq!(code, RejectCode::SenderNotBound, "{text}");
    assert!(text.contains(CM), "{text}");
    let inbox = svc.json("/v1/inbox");
    let items = inbox.as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!(items[0]["id"], genuine.to_string());
    assert_eq!(items[0]["latest"], true);
    assert_eq!(items[0]["origin_name"], "a", "{inbox}");
    assert!(
        b.log()
            .contains("refused an envelope that fails authentication")
    );

    // 2. The liar claims SVC (homed at b) in its directory answers to a.
    let claim = OfficeBinding {
        office: SVC.parse().unwrap(),
        kinds: vec!["11".parse().unwrap()],
        operator: liar.id(),
        since_ms: now_ms(),
        released: false,
        name: String::new(),
    }
    .sign(&liar.identity)
    .encode();
    rt.block_on(async {
        let mut s = Liar::connect(&liar, a).await;
        s.bindings.push(claim);
        // Connecting makes a ask for the liar's directory; stay until it has.
        let _ = s
            .ask(Request::DirectorySync {
                roster_serial: 0,
                cursor: 0,
            })
            .await;
        s.linger(Duration::from_secs(3)).await;
        let _ = s.client.shutdown().await;
    });
    let status = renkei(&["status", "--dir", a.dir_str()]);
    assert!(
        status.contains(SVC) && status.contains("claimed by"),
        "a does not show the conflict: {status}"
    );
    let dir = cm.json(&format!("/v1/directory/{SVC}"));
    assert_eq!(dir["operator_name"], "b", "the route changed: {dir}");
    let second: Vec<(String, Vec<u8>)> = fixture_files("valid/d2_kyo_riyohyo")
        .into_iter()
        .map(|(n, bytes)| (n.replace("20250425164608", "20250426090000"), bytes))
        .collect();
    let (st, body) = cm.submit(&second);
    assert_eq!(st, 202, "{body}");
    cm.wait_status(body["id"].as_str().unwrap(), &["delivered"]);
    assert_eq!(svc.json("/v1/inbox").as_array().unwrap().len(), 2);

    // 3. The authority assigns SVC to b, b installs it; a takes it over every claim and
    //    the conflict note goes.
    let file = f.auth.0.join("assignment.cbor");
    let out = renkei(&[
        "federation",
        "assign",
        "--dir",
        f.auth.0.to_str().unwrap(),
        "--operator",
        "b",
        "--kinds",
        "11",
        "--out",
        file.to_str().unwrap(),
        "--name",
        "みどり訪問介護",
        SVC,
    ]);
    assert!(out.contains("assigned to operator b"), "{out}");
    let out = renkei(&[
        "office",
        "assign",
        "--dir",
        b.dir_str(),
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("assignment installed"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = renkei(&["status", "--dir", a.dir_str()]);
        if !status.contains("claimed by") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a never took the assignment: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        cm.json(&format!("/v1/directory/{SVC}"))["operator_name"],
        "b"
    );
    // The assignment names the office: the sender, at another operator, now sees it.
    assert_eq!(
        cm.json("/v1/sent")[0]["to_name"],
        "みどり訪問介護",
        "{}",
        cm.json("/v1/sent")
    );
}
