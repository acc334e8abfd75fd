//! E-mail notices of new arrivals through a real SMTP exchange: a small SMTP server on
//! loopback (in this test) receives what the node sends once an office's administrator
//! asked for notices and units arrive: one message for the units that arrive together,
//! to the office's address, naming the office, kinds and sender — and no 利用者.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use renkei_tests::{NodeProc, Office, fixture_files};

/// One message as the server received it: envelope recipients and the data.
struct Mail {
    rcpt: Vec<String>,
    data: String,
}

/// Accepts SMTP sessions on loopback and hands each message over.
fn smtp_server() -> (u16, mpsc::Receiver<Mail>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut w) = conn else { return };
            let mut r = BufReader::new(w.try_clone().unwrap());
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut say = |s: &str| w.write_all(format!("{s}\r\n").as_bytes()).is_ok();
                say("220 test ESMTP");
                let (mut rcpt, mut line) = (Vec::new(), String::new());
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        say("250 test");
                    } else if cmd.starts_with("MAIL FROM") {
                        say("250 ok");
                    } else if cmd.starts_with("RCPT TO") {
                        rcpt.push(
                            line.trim_end()[8..]
                                .trim()
                                .trim_matches(['<', '>'])
                                .to_owned(),
                        );
                        say("250 ok");
                    } else if cmd == "DATA" {
                        say("354 go on");
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        let _ = tx.send(Mail {
                            rcpt: std::mem::take(&mut rcpt),
                            data,
                        });
                        say("250 queued");
                    } else if cmd == "QUIT" {
                        say("221 bye");
                        return;
                    } else {
                        say("250 ok");
                    }
                }
            });
        }
    });
    (port, rx)
}

/// The text body of a message (base64 or quoted-printable as the sender chose).
fn body_text(data: &str) -> String {
    let (head, body) = data.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    if head.contains("content-transfer-encoding: base64") {
        let b: String = body.split_whitespace().collect();
        String::from_utf8(data_encoding::BASE64.decode(b.as_bytes()).unwrap()).unwrap()
    } else if head.contains("content-transfer-encoding: quoted-printable") {
        let joined = body.replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = joined.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_owned()
    }
}

#[test]
fn an_office_that_asked_gets_one_mail_for_units_arriving_together() {
    let (port, mails) = smtp_server();
    let mut node = NodeProc::init("notify", &[]);
    node.edit_config("smtp = \"\"", &format!("smtp = \"127.0.0.1:{port}\""));
    node.edit_config("delay_ms = 60000", "delay_ms = 1500");
    node.run();
    let cm = Office::new(&node.url, &node.add_office("4074478647", "43"));
    let svc_token = node.add_office("4071481594", "11");
    let svc = Office::new(&node.url, &svc_token);
    // The office asks (its token stands for its administrators here).
    let r = reqwest::blocking::Client::new()
        .put(format!("{}/v1/notify", node.url))
        .bearer_auth(&svc_token)
        .json(&serde_json::json!({ "email": "jimu@example.jp" }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(svc.json("/v1/me")["notify"], "jimu@example.jp");
    // Two units arrive together: one message.
    let d2 = fixture_files("valid/d2_kyo_riyohyo");
    let d1 = fixture_files("valid/d1_kyo_plan");
    for unit in [&d2, &d1] {
        let (st, body) = cm.submit(unit);
        assert_eq!(st, 202, "{body}");
    }
    let mail = mails
        .recv_timeout(Duration::from_secs(30))
        .expect("a notice");
    assert_eq!(mail.rcpt, ["jimu@example.jp"]);
    let text = body_text(&mail.data);
    assert!(
        text.contains("事業所 4071481594") && text.contains("2 件"),
        "{text}"
    );
    assert!(text.contains("4074478647"), "the sender office: {text}");
    assert!(text.contains("サービス利用票（予定）・別表"), "{text}");
    // Nothing of the units' content: not a 被保険者番号 from the files.
    let inbox = svc.json("/v1/inbox");
    for e in inbox.as_array().unwrap() {
        for n in e["insured"].as_array().unwrap() {
            assert!(
                !mail.data.contains(n.as_str().unwrap()),
                "a 被保険者番号 in the mail"
            );
            assert!(
                !text.contains(n.as_str().unwrap()),
                "a 被保険者番号 in the mail"
            );
        }
    }
    assert!(
        mails.recv_timeout(Duration::from_secs(3)).is_err(),
        "one message for the units that came together"
    );
    // Stopped: nothing more.
    let r = reqwest::blocking::Client::new()
        .put(format!("{}/v1/notify", node.url))
        .bearer_auth(&svc_token)
        .json(&serde_json::json!({ "email": null }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let again: Vec<(String, Vec<u8>)> = d2
        .iter()
        .map(|(n, b)| (n.replace("20250425164608", "20250426090000"), b.clone()))
        .collect();
    let (st, body) = cm.submit(&again);
    assert_eq!(st, 202, "{body}");
    assert!(mails.recv_timeout(Duration::from_secs(4)).is_err());
}
