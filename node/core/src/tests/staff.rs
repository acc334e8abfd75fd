//! Staff accounts and sessions: who may manage whom, failures lock an account, sessions
//! stand for their office until their timeouts, sign-out everywhere, across a restart.

use super::net::Net;
use super::{CM, SVC};
use crate::io::{ApiCommand, ApiReply};
use renkei_protocol::envelope::sha256;

fn node() -> Net {
    let mut net = Net::new_with(&[("a", false)], |c| {
        c.session_idle_ms = 60_000 * 10;
        c.session_max_ms = 60_000 * 60;
    });
    net.add_office(0, CM, "43");
    net.add_office(0, SVC, "11");
    net
}

fn add(user: &str, admin: bool, office: Option<&str>) -> ApiCommand {
    ApiCommand::StaffAdd {
        office: office.map(|o| o.parse().unwrap()),
        user: user.into(),
        password: format!("phc-of-{user}"),
        admin,
    }
}

fn sign_in(net: &mut Net, office: &str, user: &str, ok: bool, cookie: &str) -> ApiReply {
    net.operator(
        0,
        ApiCommand::SignIn {
            office: office.parse().unwrap(),
            user: user.into(),
            ok,
            session_hash: sha256(cookie.as_bytes()),
        },
    )
}

fn users(r: ApiReply) -> Vec<String> {
    match r {
        ApiReply::Staff(v) => v.into_iter().map(|s| s.user).collect(),
        other => panic!("expected Staff, got {other:?}"),
    }
}

#[test]
fn the_operator_adds_the_first_administrator_who_manages_only_their_office() {
    let mut net = node();
    assert!(matches!(
        net.operator(0, add("kanri", true, None)),
        ApiReply::BadRequest(_)
    ));
    assert_eq!(
        users(net.operator(0, add("kanri", true, Some(CM)))),
        ["kanri"]
    );
    assert!(matches!(
        net.operator(0, add("kanri", true, Some(CM))),
        ApiReply::Conflict(_)
    ));
    assert!(matches!(
        net.operator(0, add("a b", false, Some(CM))),
        ApiReply::BadRequest(_)
    ));
    // The credentials reach the edge only through the operator's (the edge's) command.
    assert!(matches!(
        net.api(
            0,
            CM,
            ApiCommand::StaffCredentials {
                office: CM.parse().unwrap(),
                user: "kanri".into()
            }
        ),
        ApiReply::Forbidden(_)
    ));
    match net.operator(
        0,
        ApiCommand::StaffCredentials {
            office: CM.parse().unwrap(),
            user: "kanri".into(),
        },
    ) {
        ApiReply::StaffCredentials(c) => assert_eq!(c.password, "phc-of-kanri"),
        other => panic!("{other:?}"),
    }

    let ApiReply::SignedIn(s) = sign_in(&mut net, CM, "kanri", true, "c1") else {
        panic!()
    };
    assert!(s.admin);
    let admin = sha256(b"c1");
    // The session stands for its office: its inbox, its /me with the staff member.
    assert!(matches!(
        net.api_token(
            0,
            admin,
            ApiCommand::Inbox {
                latest_only: false,
                before: None,
                limit: 10
            }
        ),
        ApiReply::InboxPage(_)
    ));
    match net.api_token(0, admin, ApiCommand::WhoAmI) {
        ApiReply::Office(v) => {
            assert_eq!(v.office, CM);
            assert_eq!(v.staff.unwrap().user, "kanri");
        }
        other => panic!("{other:?}"),
    }
    // An administrator adds staff to their own office, never to another.
    assert_eq!(
        users(net.api_token(0, admin, add("tanaka", false, None))),
        ["kanri", "tanaka"]
    );
    assert!(matches!(
        net.api_token(0, admin, add("x", false, Some(SVC))),
        ApiReply::Forbidden(_)
    ));
    assert!(matches!(
        net.api_token(
            0,
            admin,
            ApiCommand::StaffList {
                office: Some(SVC.parse().unwrap())
            }
        ),
        ApiReply::Forbidden(_)
    ));
    // The other office's token sees only its own (empty) staff.
    assert_eq!(
        users(net.api(0, SVC, ApiCommand::StaffList { office: None })),
        Vec::<String>::new()
    );
    // A staff member who is not an administrator manages nobody, but sets their password.
    let ApiReply::SignedIn(_) = sign_in(&mut net, CM, "tanaka", true, "c2") else {
        panic!()
    };
    let clerk = sha256(b"c2");
    assert!(matches!(
        net.api_token(0, clerk, add("y", false, None)),
        ApiReply::Forbidden(_)
    ));
    assert!(matches!(
        net.api_token(
            0,
            clerk,
            ApiCommand::StaffPassword {
                office: None,
                user: "tanaka".into(),
                password: "new".into()
            }
        ),
        ApiReply::Done
    ));
    assert!(matches!(
        net.api_token(
            0,
            clerk,
            ApiCommand::StaffPassword {
                office: None,
                user: "kanri".into(),
                password: "mine".into()
            }
        ),
        ApiReply::Forbidden(_)
    ));
    // Removing an account ends its sessions.
    users(net.api_token(
        0,
        admin,
        ApiCommand::StaffRemove {
            office: None,
            user: "tanaka".into(),
        },
    ));
    assert!(matches!(
        net.api_token(0, clerk, ApiCommand::WhoAmI),
        ApiReply::Unauthorized
    ));
}

#[test]
fn failed_sign_ins_lock_the_account_for_a_while() {
    let mut net = node();
    net.operator(0, add("kanri", true, Some(CM)));
    for _ in 0..crate::staff::SIGN_IN_FAILURES_MAX - 1 {
        assert!(matches!(
            sign_in(&mut net, CM, "kanri", false, "x"),
            ApiReply::SignInRefused { locked_until_ms: 0 }
        ));
    }
    let ApiReply::SignInRefused { locked_until_ms } = sign_in(&mut net, CM, "kanri", false, "x")
    else {
        panic!()
    };
    assert!(locked_until_ms > 0);
    // Locked: even the right password is refused, and no session is made.
    assert!(matches!(
        sign_in(&mut net, CM, "kanri", true, "c"),
        ApiReply::SignInRefused { .. }
    ));
    assert!(matches!(
        net.api_token(0, sha256(b"c"), ApiCommand::WhoAmI),
        ApiReply::Unauthorized
    ));
    net.run_for(crate::staff::LOCK_MS + 1);
    assert!(matches!(
        sign_in(&mut net, CM, "kanri", true, "c"),
        ApiReply::SignedIn(_)
    ));
    // An unknown user is refused like a wrong password.
    assert!(matches!(
        sign_in(&mut net, CM, "nobody", true, "d"),
        ApiReply::SignInRefused { locked_until_ms: 0 }
    ));
}

#[test]
fn sessions_end_when_idle_at_their_limit_on_sign_out_and_survive_a_restart() {
    let mut net = node();
    net.operator(0, add("kanri", true, Some(CM)));
    sign_in(&mut net, CM, "kanri", true, "s1");
    sign_in(&mut net, CM, "kanri", true, "s2");
    let (s1, s2) = (sha256(b"s1"), sha256(b"s2"));
    let me =
        |net: &mut Net, s| matches!(net.api_token(0, s, ApiCommand::WhoAmI), ApiReply::Office(_));
    // Used every 5 minutes it lives on past the idle limit; kept across a restart.
    for _ in 0..4 {
        net.run_for(5 * 60_000);
        assert!(me(&mut net, s1));
    }
    net.crash(0);
    assert!(me(&mut net, s1), "a session survives a restart");
    // s2 was idle for 20 minutes, past its 10.
    assert!(!me(&mut net, s2), "idle session still works");
    // The absolute limit ends s1 however often it is used.
    for _ in 0..8 {
        net.run_for(5 * 60_000);
        me(&mut net, s1);
    }
    assert!(!me(&mut net, s1), "session outlived its absolute limit");
    // Sign-out everywhere ends every session of the account, not another's.
    net.operator(0, add("tanaka", false, Some(CM)));
    sign_in(&mut net, CM, "kanri", true, "s3");
    sign_in(&mut net, CM, "kanri", true, "s4");
    sign_in(&mut net, CM, "tanaka", true, "s5");
    assert!(matches!(
        net.api_token(0, sha256(b"s3"), ApiCommand::SignOut { everywhere: true }),
        ApiReply::Done
    ));
    assert!(!me(&mut net, sha256(b"s4")));
    assert!(me(&mut net, sha256(b"s5")));
    // A token is not a session: it cannot sign out.
    assert!(matches!(
        net.api(0, CM, ApiCommand::SignOut { everywhere: false }),
        ApiReply::Unauthorized
    ));
}

#[test]
fn an_office_that_asked_is_told_of_new_arrivals_and_only_administrators_set_it() {
    let mut net = node();
    net.operator(0, add("kanri", true, Some(SVC)));
    net.operator(0, add("tanaka", false, Some(SVC)));
    sign_in(&mut net, SVC, "tanaka", true, "clerk");
    let set = |e: &str| ApiCommand::SetNotify {
        email: Some(e.into()),
    };
    assert!(matches!(
        net.api_token(0, sha256(b"clerk"), set("x@example.jp")),
        ApiReply::Forbidden(_)
    ));
    assert!(matches!(
        net.api(0, SVC, set("no address\r\nBcc: x@y.jp")),
        ApiReply::BadRequest(_)
    ));
    match net.api(0, SVC, set("jimu@example.jp")) {
        ApiReply::Office(v) => assert_eq!(v.notify.as_deref(), Some("jimu@example.jp")),
        other => panic!("{other:?}"),
    }
    let files = super::net::fixture_unit("d2_kyo_riyohyo");
    net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: crate::unit::PreparedUnit::new(files),
            supersedes: None,
        },
    );
    net.run_for(10);
    assert_eq!(
        net.notices,
        vec![(0, SVC.parse().unwrap(), "jimu@example.jp".to_owned())]
    );
    // Cleared, nothing more is asked for.
    net.api(0, SVC, ApiCommand::SetNotify { email: None });
    let files = super::net::rename_stamp(
        &super::net::fixture_unit("d2_kyo_riyohyo"),
        "20250426090000",
    );
    net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: crate::unit::PreparedUnit::new(files),
            supersedes: None,
        },
    );
    net.run_for(10);
    assert_eq!(net.notices.len(), 1);
}

#[test]
fn an_office_that_requires_a_second_factor_lets_staff_without_one_only_enrol() {
    let mut net = node();
    net.operator(0, add("kanri", true, Some(CM)));
    net.operator(0, add("tanaka", false, Some(CM)));
    sign_in(&mut net, CM, "tanaka", true, "clerk");
    assert!(matches!(
        net.api_token(
            0,
            sha256(b"clerk"),
            ApiCommand::SetTotpRequired { required: true }
        ),
        ApiReply::Forbidden(_)
    ));
    match net.api(0, CM, ApiCommand::SetTotpRequired { required: true }) {
        ApiReply::Office(v) => assert!(v.totp_required),
        other => panic!("{other:?}"),
    }
    // A session from before the rule goes on; a new one must enrol first.
    let inbox = ApiCommand::Inbox {
        latest_only: false,
        before: None,
        limit: 10,
    };
    assert!(matches!(
        net.api_token(0, sha256(b"clerk"), inbox.clone()),
        ApiReply::InboxPage(_)
    ));
    let ApiReply::SignedIn(v) = sign_in(&mut net, CM, "tanaka", true, "clerk2") else {
        panic!()
    };
    assert!(v.must_enrol);
    let s2 = sha256(b"clerk2");
    assert!(matches!(
        net.api_token(0, s2, inbox.clone()),
        ApiReply::Forbidden(_)
    ));
    assert!(matches!(
        net.api_token(0, s2, ApiCommand::WhoAmI),
        ApiReply::Office(_)
    ));
    assert!(matches!(
        net.api_token(
            0,
            s2,
            ApiCommand::StaffTotp {
                user: None,
                secret: vec![7; 20]
            }
        ),
        ApiReply::Done
    ));
    assert!(matches!(
        net.api_token(0, s2, inbox),
        ApiReply::InboxPage(_)
    ));
    // Enrolled, the next sign-in is a full one.
    let ApiReply::SignedIn(v) = sign_in(&mut net, CM, "tanaka", true, "clerk3") else {
        panic!()
    };
    assert!(!v.must_enrol);
}

#[test]
fn a_corporations_staff_member_switches_between_the_offices_granted() {
    let mut net = node();
    net.operator(0, add("honbu", false, Some(CM)));
    net.operator(0, add("kanri", true, Some(SVC)));
    sign_in(&mut net, CM, "honbu", true, "corp");
    sign_in(&mut net, SVC, "kanri", true, "svc-admin");
    let (corp, svc_admin) = (sha256(b"corp"), sha256(b"svc-admin"));
    let switch = |o: &str| ApiCommand::SwitchOffice {
        office: o.parse().unwrap(),
    };
    // Not granted yet.
    assert!(matches!(
        net.api_token(0, corp, switch(SVC)),
        ApiReply::Forbidden(_)
    ));
    // SVC's administrator grants CM's honbu, as an administrator of SVC.
    let grant = |admin| ApiCommand::StaffGrant {
        home: CM.parse().unwrap(),
        user: "honbu".into(),
        admin,
    };
    let listed = users(net.api_token(0, svc_admin, grant(Some(true))));
    assert!(listed.contains(&format!("{CM}:honbu")), "{listed:?}");
    match net.api_token(0, corp, ApiCommand::WhoAmI) {
        ApiReply::Office(v) => assert_eq!(v.staff.unwrap().offices, [CM, SVC]),
        other => panic!("{other:?}"),
    }
    match net.api_token(0, corp, switch(SVC)) {
        ApiReply::Office(v) => {
            assert_eq!(v.office, SVC);
            assert!(
                v.staff.unwrap().admin,
                "an administrator of SVC by the grant"
            );
        }
        other => panic!("{other:?}"),
    }
    // Acting for SVC: SVC's staff, SVC's inbox; its own password is still its own.
    assert!(
        users(net.api_token(0, corp, ApiCommand::StaffList { office: None }))
            .contains(&"kanri".to_owned())
    );
    assert!(matches!(
        net.api_token(
            0,
            corp,
            ApiCommand::StaffPassword {
                office: None,
                user: "honbu".into(),
                password: "p2".into()
            }
        ),
        ApiReply::Done
    ));
    match net.operator(
        0,
        ApiCommand::StaffCredentials {
            office: CM.parse().unwrap(),
            user: "honbu".into(),
        },
    ) {
        ApiReply::StaffCredentials(c) => assert_eq!(c.password, "p2"),
        other => panic!("{other:?}"),
    }
    // Back to its own office, then revoked: it can no longer switch, and a session acting
    // for SVC ends.
    assert!(matches!(net.api_token(0, corp, switch(CM)), ApiReply::Office(v) if v.office == CM));
    net.api_token(0, corp, switch(SVC));
    users(net.api_token(0, svc_admin, grant(None)));
    assert!(matches!(
        net.api_token(0, corp, ApiCommand::WhoAmI),
        ApiReply::Unauthorized
    ));
    sign_in(&mut net, CM, "honbu", true, "corp2");
    assert!(matches!(
        net.api_token(0, sha256(b"corp2"), switch(SVC)),
        ApiReply::Forbidden(_)
    ));
}

/// Found by cargo-mutants (directory.rs: `rotate_token`): an office's new API token works
/// at once, the old one stops, and rotating for an office not homed here is not found.
#[test]
fn a_rotated_office_token_replaces_the_old_one_at_once() {
    let mut net = Net::new(&[("a", false)]);
    net.add_office(0, "4074478647", "43");
    let old = renkei_protocol::envelope::sha256(b"4074478647");
    let new = renkei_protocol::envelope::sha256(b"a new token");
    let me = |net: &mut Net, t| net.api_token(0, t, ApiCommand::WhoAmI);
    assert!(matches!(me(&mut net, old), ApiReply::Office(_)));
    let r = net.operator(
        0,
        ApiCommand::RotateToken {
            office: "4074478647".parse().unwrap(),
            token_hash: new,
        },
    );
    assert!(matches!(r, ApiReply::Office(_)), "{r:?}");
    assert!(matches!(me(&mut net, new), ApiReply::Office(_)));
    assert!(matches!(me(&mut net, old), ApiReply::Unauthorized));
    let r = net.operator(
        0,
        ApiCommand::RotateToken {
            office: "4071481594".parse().unwrap(),
            token_hash: new,
        },
    );
    assert!(matches!(r, ApiReply::NotFound(_)), "{r:?}");
}

/// Found by cargo-mutants (directory.rs: `office_views`): the operator's list of the
/// offices homed here.
#[test]
fn the_operator_lists_the_offices_homed_here() {
    let mut net = Net::new(&[("a", false)]);
    net.add_office(0, "4074478647", "43");
    net.add_office(0, "4071481594", "11");
    let ApiReply::Offices(list) = net.operator(0, ApiCommand::ListOffices) else {
        panic!()
    };
    let mut numbers: Vec<String> = list.into_iter().map(|o| o.office).collect();
    numbers.sort();
    assert_eq!(numbers, ["4071481594", "4074478647"]);
}
