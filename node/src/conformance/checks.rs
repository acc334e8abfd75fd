//! The checks, in the order of the module table in [`super`].

use renkei_protocol::envelope::Envelope;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::limits::MESSAGE_BYTES_MAX;
use renkei_protocol::receipt::{ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::roster::SignedBinding;
use renkei_protocol::wire::{HopOutcome, RefusalCode, Request, Response};

use super::envelopes::{Builder, corrupt_signature};
use super::session::Session;
use super::{CheckResult, ConformanceError, Options};
use crate::net::operator_of_multiaddr;
use crate::runtime::now_ms;

/// Collects results.
struct Results(Vec<CheckResult>);

impl Results {
    fn record(&mut self, name: &'static str, outcome: Result<String, String>) {
        let (passed, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        if passed {
            tracing::debug!(check = name, %detail, "PASS");
        } else {
            tracing::debug!(check = name, %detail, "FAIL");
        }
        self.0.push(CheckResult {
            name,
            passed,
            detail,
        });
    }
}

pub(super) async fn run(opts: &Options) -> Result<Vec<CheckResult>, ConformanceError> {
    let target = operator_of_multiaddr(&opts.target)
        .ok_or_else(|| ConformanceError::Target(opts.target.to_string()))?;
    let roster = &opts.roster;
    if roster.operator(&target).is_none() {
        return Err(ConformanceError::TargetNotInRoster(target));
    }
    let tester = opts.keys.id();
    if roster.operator(&tester).is_none() {
        return Err(ConformanceError::TesterNotInRoster(tester));
    }
    let builder = Builder::new(&opts.unit, roster, &target, now_ms())?;
    let mut s = Session::open(
        &opts.keys,
        target,
        opts.target.clone(),
        opts.request_timeout,
    )
    .await?;
    s.bindings
        .push(builder.sender_binding(&opts.keys, now_ms()));
    s.bindings.push(builder.rival_binding(&opts.keys, now_ms()));
    let mut r = Results(Vec::new());

    r.record("directory-sync", directory_sync(&mut s).await);

    let envelope = builder.envelope(&opts.keys)?;
    // A forged copy of the very envelope goes first: it must be refused without taking
    // the id, so the genuine one after it is still delivered (not answered from dedup).
    let forged = corrupt_signature(envelope.encode());
    let outcome = rejected(&mut s, forged, RejectCode::BadSignature, &target, opts).await;
    r.record("refuse-forged-signature", stays_up(&mut s, outcome).await);

    let delivered = deliver(&mut s, &envelope).await.map(|(bytes, d)| {
        (
            bytes,
            format!("{d}, after a forged copy with the same id was refused"),
        )
    });
    r.record(
        "delivery",
        delivered
            .as_ref()
            .map(|(_, d)| format!("{d} (office {})", builder.office()))
            .map_err(|e| format!("{e} (office {})", builder.office())),
    );
    let receipt = delivered.map(|(bytes, _)| bytes);
    r.record(
        "receipt-signature",
        match &receipt {
            Ok(bytes) => receipt_signature(bytes, &envelope, &target, opts),
            Err(_) => Err("no delivery receipt to check".to_owned()),
        },
    );
    r.record(
        "dedup",
        match &receipt {
            Ok(bytes) => dedup(&mut s, &envelope, bytes).await,
            Err(_) => Err("no first delivery to repeat".to_owned()),
        },
    );

    let garbage = refused(
        &mut s,
        b"\xff\xffnot CBOR at all".to_vec(),
        RefusalCode::Malformed,
    )
    .await;
    r.record("refuse-garbage", stays_up(&mut s, garbage).await);

    let stranger = Builder::outsider()?;
    let unknown = builder.envelope(&stranger)?.encode();
    let outcome = rejected(&mut s, unknown, RejectCode::UnknownOperator, &target, opts).await;
    r.record("refuse-unknown-origin", stays_up(&mut s, outcome).await);

    r.record("refuse-outsider-peer", outsider_peer(opts, target).await);

    let oversize = refused(
        &mut s,
        vec![0u8; MESSAGE_BYTES_MAX + 1],
        RefusalCode::TooLarge,
    )
    .await;
    r.record("refuse-oversize", stays_up(&mut s, oversize).await);

    let forged_sender = builder.forged_sender(&opts.keys)?.encode();
    let outcome = rejected(
        &mut s,
        forged_sender,
        RejectCode::SenderNotBound,
        &target,
        opts,
    )
    .await;
    r.record("refuse-forged-sender", stays_up(&mut s, outcome).await);

    r.record(
        "refuse-home-capture",
        home_capture(&mut s, &builder, &target, &opts.keys.id()).await,
    );

    if !s.receipts.is_empty() {
        tracing::info!(
            count = s.receipts.len(),
            "the target forwarded receipts to this operator"
        );
    }
    s.close().await;
    Ok(r.0)
}

async fn directory_sync(s: &mut Session) -> Result<String, String> {
    match s
        .request(Request::DirectorySync {
            roster_serial: 0,
            cursor: 0,
        })
        .await?
    {
        Response::Directory {
            roster, bindings, ..
        } => Ok(format!(
            "answered with {} binding(s){}",
            bindings.len(),
            if roster.is_some() {
                " and its roster"
            } else {
                ""
            }
        )),
        other => Err(format!("answered {other:?}")),
    }
}

/// The tester claimed the office the target homes (a lying member's binding, served in
/// its directory): once the target has read it, the target's own directory must still
/// bind the office to the target, and nowhere to the tester.
async fn home_capture(
    s: &mut Session,
    builder: &Builder,
    target: &OperatorId,
    tester: &OperatorId,
) -> Result<String, String> {
    let office = builder.to_office().clone();
    // The target asks for the tester's directory when the session connects and when a
    // unit's sender is new to it; answered while the session waits.
    for _ in 0..100 {
        if s.bindings_served > 0 {
            break;
        }
        s.pause(std::time::Duration::from_millis(100)).await;
    }
    if s.bindings_served == 0 {
        return Err("the target never read the tester's directory (no claim to test)".into());
    }
    let bindings = match s
        .request(Request::DirectorySync {
            roster_serial: 0,
            cursor: 0,
        })
        .await?
    {
        Response::Directory { bindings, .. } => bindings,
        other => return Err(format!("answered {}", short(&other))),
    };
    let mut own = false;
    for b in &bindings {
        let Ok(b) = SignedBinding::decode(b) else {
            return Err("its directory holds a binding that does not decode".into());
        };
        let b = b.binding();
        if b.office != office {
            continue;
        }
        if b.operator == *tester {
            return Err(format!(
                "took the tester's claim of office {office}, which it homes: its directory now binds it to the tester"
            ));
        }
        own |= b.operator == *target && !b.released;
    }
    if own {
        Ok(format!(
            "a rival claim of office {office} (homed at the target) was read and not taken; the target still binds it to itself"
        ))
    } else {
        Err(format!(
            "its directory does not bind office {office} to the target (is the office registered there?)"
        ))
    }
}

/// Delivers one envelope; returns its receipt bytes and a description. A retry-later
/// answer (the target has not yet learnt that the sending office is bound to the tester:
/// it asks the tester's directory, which the session answers) is retried a few times.
async fn deliver(s: &mut Session, env: &Envelope) -> Result<(Vec<u8>, String), String> {
    let mut waited = 0;
    loop {
        match deliver_once(s, env).await {
            Err(Retry(why)) if waited < DELIVERY_RETRIES => {
                tracing::debug!(%why, "conformance: retry later");
                waited += 1;
                s.pause(std::time::Duration::from_millis(300)).await;
            }
            Err(Retry(why)) => {
                return Err(format!("envelope {} not taken: {why}", env.id()));
            }
            Ok(Ok((r, d))) if waited > 0 => {
                return Ok((
                    r,
                    format!(
                        "{d} (after {waited} retry-later answer(s) while the target learnt the sending office's binding)"
                    ),
                ));
            }
            Ok(done) => return done,
        }
    }
}

/// Retry-later answers the delivery check waits through.
const DELIVERY_RETRIES: u32 = 10;

/// A retry-later answer, with its reason.
struct Retry(String);

async fn deliver_once(
    s: &mut Session,
    env: &Envelope,
) -> Result<Result<(Vec<u8>, String), String>, Retry> {
    let resp = match s.request(Request::Deliver(vec![env.encode()])).await {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    deliver_answer(resp, env).map_err(Retry)
}

/// The outcome of one delivery's answer; `Err` for a retry-later.
fn deliver_answer(
    resp: Response,
    env: &Envelope,
) -> Result<Result<(Vec<u8>, String), String>, String> {
    let Response::HopAcks(acks) = resp else {
        return Ok(Err(format!("answered {resp:?} instead of hop acks")));
    };
    let [ack] = acks.as_slice() else {
        return Ok(Err(format!("{} hop acks for one envelope", acks.len())));
    };
    if ack.id != env.id() {
        return Ok(Err(format!(
            "the hop ack names envelope {}, not {}",
            ack.id,
            env.id()
        )));
    }
    Ok(match &ack.outcome {
        HopOutcome::Accepted(r) => Ok((r.clone(), format!("envelope {} accepted", env.id()))),
        HopOutcome::Rejected(r) => Err(format!(
            "envelope {} rejected: {}",
            env.id(),
            SignedReceipt::decode(r).map_or_else(
                |e| format!("undecodable receipt: {e}"),
                |r| describe(&r.receipt().kind)
            )
        )),
        HopOutcome::RetryLater(why) => return Err(why.clone()),
    })
}

fn describe(kind: &ReceiptKind) -> String {
    match kind {
        ReceiptKind::Rejected { code, text } => format!("{} ({text})", code.as_str()),
        other => other.name().to_owned(),
    }
}

/// The receipt decodes, verifies against the roster, is signed by the target and names
/// this envelope and digest.
fn check_receipt(
    bytes: &[u8],
    env: &Envelope,
    target: &OperatorId,
    opts: &Options,
) -> Result<SignedReceipt, String> {
    let r = SignedReceipt::decode(bytes).map_err(|e| format!("receipt does not decode: {e}"))?;
    r.verify_with_roster(&opts.roster)
        .map_err(|e| format!("receipt does not verify against the roster: {e}"))?;
    let rc = r.receipt();
    if rc.node != *target {
        return Err(format!(
            "receipt signed by operator {}, not the target {target}",
            rc.node
        ));
    }
    if rc.envelope != env.id() || rc.digest != env.digest() {
        return Err(format!(
            "receipt names envelope {} / another digest, not {}",
            rc.envelope,
            env.id()
        ));
    }
    Ok(r)
}

fn receipt_signature(
    bytes: &[u8],
    env: &Envelope,
    target: &OperatorId,
    opts: &Options,
) -> Result<String, String> {
    let r = check_receipt(bytes, env, target, opts)?;
    let name = opts
        .roster
        .operator(target)
        .map_or("?", |o| o.name.as_str());
    match r.receipt().kind {
        ReceiptKind::Delivered => Ok(format!(
            "Delivered receipt signed by operator {name}'s roster key"
        )),
        ref other => Err(format!(
            "the destination answered {} instead of Delivered",
            describe(other)
        )),
    }
}

async fn dedup(s: &mut Session, env: &Envelope, first: &[u8]) -> Result<String, String> {
    let (again, _) = deliver(s, env).await?;
    if again == first {
        Ok("the repeated envelope got the same receipt (no second delivery)".to_owned())
    } else {
        Err("the repeated envelope got a new receipt: delivered twice?".to_owned())
    }
}

/// Sends a raw frame and expects the whole request refused with `code`.
async fn refused(s: &mut Session, body: Vec<u8>, code: RefusalCode) -> Result<String, String> {
    let len = body.len();
    match s.request_raw(body).await? {
        Response::Refused { code: got, message } if got == code => {
            Ok(format!("{len}-byte frame refused {got:?}: {message}"))
        }
        other => Err(format!(
            "{len}-byte frame answered {}, expected Refused {code:?}",
            short(&other)
        )),
    }
}

/// Delivers encoded envelope bytes and expects a signed rejection with `code`.
async fn rejected(
    s: &mut Session,
    bytes: Vec<u8>,
    code: RejectCode,
    target: &OperatorId,
    opts: &Options,
) -> Result<String, String> {
    let env = Envelope::decode(&bytes).map_err(|e| format!("kit error: {e}"))?;
    let resp = s.request(Request::Deliver(vec![bytes])).await?;
    let ack = match resp {
        Response::HopAcks(acks) if acks.len() == 1 => acks.into_iter().next(),
        other => return Err(format!("answered {}", short(&other))),
    };
    match ack.map(|a| a.outcome) {
        Some(HopOutcome::Rejected(r)) => {
            let r = check_receipt(&r, &env, target, opts)?;
            match &r.receipt().kind {
                ReceiptKind::Rejected { code: got, text } if *got == code => Ok(format!(
                    "rejected {} with a signed receipt: {text}",
                    got.as_str()
                )),
                other => Err(format!(
                    "rejected as {}, expected {}",
                    describe(other),
                    code.as_str()
                )),
            }
        }
        Some(HopOutcome::Accepted(_)) => Err(format!(
            "ACCEPTED an envelope that should be rejected {}",
            code.as_str()
        )),
        Some(HopOutcome::RetryLater(why)) => Err(format!(
            "answered retry-later ({why}), expected a rejection {}",
            code.as_str()
        )),
        None => Err("no hop ack".to_owned()),
    }
}

/// Adds "and the node still answers" to a passed refusal, or fails when it does not.
async fn stays_up(s: &mut Session, outcome: Result<String, String>) -> Result<String, String> {
    let up = s.still_up().await;
    match (outcome, up) {
        (Ok(d), Ok(())) => Ok(format!("{d}; the node still answers")),
        (Ok(d), Err(e)) => Err(format!("{d}; but {e}")),
        (Err(d), Ok(())) => Err(d),
        (Err(d), Err(e)) => Err(format!("{d}; and {e}")),
    }
}

async fn outsider_peer(opts: &Options, target: OperatorId) -> Result<String, String> {
    let keys = Builder::outsider().map_err(|e| e.to_string())?;
    let mut s = Session::open(&keys, target, opts.target.clone(), opts.request_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = s
        .request(Request::DirectorySync {
            roster_serial: 0,
            cursor: 0,
        })
        .await;
    s.close().await;
    // Renkei denies such a connection when it is established, before any request is read
    // (the request fails in transport); an implementation may instead answer
    // `Refused { NotInRoster }`. Either passes; any answer that serves the outsider fails.
    let response = match outcome {
        Err(e) => {
            return Ok(format!(
                "a peer outside the roster was refused before its request was read ({e})"
            ));
        }
        Ok(r) => r,
    };
    match response {
        Response::Refused {
            code: RefusalCode::NotInRoster,
            message,
        } => Ok(format!(
            "a peer outside the roster was refused NotInRoster: {message}"
        )),
        other => Err(format!(
            "a peer outside the roster got {}, expected Refused NotInRoster",
            short(&other)
        )),
    }
}

/// A one-line description of a response.
fn short(r: &Response) -> String {
    match r {
        Response::HopAcks(a) => format!("{} hop ack(s)", a.len()),
        Response::ReceiptsTaken(n) => format!("receipts taken {n}"),
        Response::Directory { bindings, .. } => {
            format!("a directory answer ({} bindings)", bindings.len())
        }
        Response::Refused { code, message } => format!("Refused {code:?}: {message}"),
    }
}
