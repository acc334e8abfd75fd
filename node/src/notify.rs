//! E-mail notices of new arrivals, for offices that asked (`PUT /v1/notify`): the core
//! says a unit arrived ([`Effect::Notify`](crate::core::Effect::Notify), released after
//! its commit); this task waits `notify.delay_ms` to gather what else arrives for the same
//! office, then sends one message through the configured SMTP server (`lettre`). A message
//! names the office, how many units, their kinds and the sending offices — never a user
//! (利用者) or anything of a unit's content. A failed send is logged and not retried: the
//! inbox is the record, the mail only a nudge.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use renkei_protocol::ids::OfficeNumber;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::NotifyConfig;

/// One arrival to tell of.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The receiving office.
    pub office: OfficeNumber,
    /// Its notice address.
    pub email: String,
    /// Data kind (D1…D7).
    pub kind: String,
    /// The sending office.
    pub from: OfficeNumber,
}

/// The notifier's handle (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Notice>,
}

impl Notifier {
    /// Starts the notifier when an SMTP server is configured.
    pub fn start(cfg: &NotifyConfig) -> Option<Notifier> {
        if cfg.smtp.trim().is_empty() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(cfg.clone(), rx));
        Some(Notifier { tx })
    }

    /// Queues a notice.
    pub fn notify(&self, n: Notice) {
        let _ = self.tx.send(n);
    }
}

/// What is gathered for one office until its message goes.
struct Pending {
    email: String,
    due: Instant,
    count: usize,
    kinds: BTreeSet<String>,
    from: BTreeSet<String>,
}

async fn run(cfg: NotifyConfig, mut rx: mpsc::UnboundedReceiver<Notice>) {
    let delay = Duration::from_millis(cfg.delay_ms);
    let mut pending: BTreeMap<OfficeNumber, Pending> = BTreeMap::new();
    loop {
        let next = pending.values().map(|p| p.due).min();
        tokio::select! {
            n = rx.recv() => {
                let Some(n) = n else { break };
                let p = pending.entry(n.office.clone()).or_insert_with(|| Pending {
                    email: n.email.clone(),
                    due: Instant::now() + delay,
                    count: 0,
                    kinds: BTreeSet::new(),
                    from: BTreeSet::new(),
                });
                p.email = n.email;
                p.count += 1;
                p.kinds.insert(n.kind);
                p.from.insert(n.from.to_string());
            }
            () = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                let due: Vec<OfficeNumber> = pending
                    .iter()
                    .filter(|(_, p)| p.due <= now)
                    .map(|(o, _)| o.clone())
                    .collect();
                for office in due {
                    if let Some(p) = pending.remove(&office) {
                        let cfg = cfg.clone();
                        tokio::task::spawn_blocking(move || match send(&cfg, &office, &p) {
                            Ok(()) => tracing::info!(%office, units = p.count, "new arrivals notice sent"),
                            Err(e) => tracing::warn!(%office, error = %e, "new arrivals notice not sent"),
                        });
                    }
                }
            }
        }
    }
}

/// The data kinds by name, as the page shows them.
fn kind_name(code: &str) -> &str {
    match code {
        "D1" => "居宅サービス計画書（第1〜3表）",
        "D2" => "サービス利用票（予定）・別表",
        "D3" => "サービス提供実績",
        "D4" => "介護予防 利用者基本情報",
        "D5" => "介護予防サービス・支援計画書",
        "D6" => "介護予防 利用票（予定）・別表",
        "D7" => "介護予防 サービス提供実績",
        other => other,
    }
}

/// The message: subject and body (Japanese; no user, no content).
fn message(office: &OfficeNumber, p: &Pending) -> (String, String) {
    let subject = format!(
        "【Renkei】新着のケアプランデータ {} 件（事業所 {office}）",
        p.count
    );
    let kinds: Vec<&str> = p.kinds.iter().map(|k| kind_name(k)).collect();
    let from: Vec<&str> = p.from.iter().map(String::as_str).collect();
    let body = format!(
        "事業所 {office} に新しいケアプランデータが {} 件届きました。\n\
         \n\
         種別: {}\n\
         送信元の事業所番号: {}\n\
         \n\
         事業所ポータルの受信箱でご確認ください。\n\
         \n\
         このメールには利用者の情報は含まれていません。\n\
         配信の停止や宛先の変更は、事業所の管理者がポータルの「職員・セキュリティ」で行えます。\n",
        p.count,
        kinds.join("、"),
        from.join("、")
    );
    (subject, body)
}

fn send(cfg: &NotifyConfig, office: &OfficeNumber, p: &Pending) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{Message, SmtpTransport, Transport};
    let (subject, body) = message(office, p);
    let msg = Message::builder()
        .from(cfg.from.parse().map_err(|e| format!("notify.from: {e}"))?)
        .to(p
            .email
            .parse()
            .map_err(|e| format!("address {:?}: {e}", p.email))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())?;
    let (host, port) = match cfg.smtp.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| format!("notify.smtp: bad port in {:?}", cfg.smtp))?,
        ),
        None => (cfg.smtp.as_str(), 25),
    };
    let builder = if cfg.starttls {
        SmtpTransport::starttls_relay(host).map_err(|e| e.to_string())?
    } else {
        SmtpTransport::builder_dangerous(host)
    };
    let mut builder = builder.port(port).timeout(Some(Duration::from_secs(30)));
    if !cfg.username.is_empty() {
        builder = builder.credentials(Credentials::new(cfg.username.clone(), cfg.password.clone()));
    }
    builder
        .build()
        .send(&msg)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_office_kinds_and_senders_only() {
        let p = Pending {
            email: "jimu@example.jp".into(),
            due: Instant::now(),
            count: 2,
            kinds: ["D2".to_owned(), "D3".to_owned()].into(),
            from: ["4074478647".to_owned()].into(),
        };
        let (subject, body) = message(&"4071481594".parse().unwrap_or_else(|_| unreachable!()), &p);
        assert!(
            subject.contains("2 件") && subject.contains("4071481594"),
            "{subject}"
        );
        assert!(
            body.contains("サービス利用票（予定）・別表、サービス提供実績"),
            "{body}"
        );
        assert!(body.contains("4074478647"), "{body}");
    }
}
