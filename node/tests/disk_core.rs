//! The core on the production disk store: a crash (dropping the core without a commit)
//! loses exactly the uncommitted work, and the audit chain still verifies.
#![allow(clippy::unwrap_used)]

use renkei_node::core::io::{ApiCommand, ApiReply, Auth, Effect, InboxPage, Input};
use renkei_node::core::{Batch, Core, CoreConfig, PreparedUnit, verify_chain};
use renkei_node::store::DiskStore;
use renkei_protocol::envelope::sha256;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::rng::Entropy;

const CM: &str = "4074478647"; // 居宅 (43)
const SVC: &str = "4071481594"; // 訪問介護 (11)

fn fixture_unit(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/valid/");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(format!("{root}{dir}"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The same unit under another 14-digit stamp.
fn rename_stamp(files: &[(String, Vec<u8>)], stamp: &str) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(n, b)| {
            let old = n
                .rsplit('_')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .to_owned();
            (n.replace(&old, stamp), b.clone())
        })
        .collect()
}

#[test]
fn sled_core_loses_only_uncommitted_work() {
    let dir = std::env::temp_dir().join(format!("renkei-core-sled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys = OperatorKeys::from_seeds([1; 32], [2; 32]);
    let t0 = 1_750_000_000_000;
    let open = |now| {
        Core::open(
            DiskStore::open(&dir, 16 << 20).unwrap(),
            keys.clone(),
            CoreConfig::default(),
            Entropy::from_u64(now),
            now,
        )
        .unwrap()
    };
    // Hands a submission to a batch and runs its seal job, as a driver does.
    let submit = |batch: &mut Batch<'_, DiskStore>, stamp: &str| {
        let files = rename_stamp(&fixture_unit("d2_kyo_riyohyo"), stamp);
        batch
            .handle(Input::Api {
                id: 1,
                auth: Auth::Office(sha256(CM.as_bytes())),
                cmd: ApiCommand::Submit {
                    unit: PreparedUnit::new(files),
                    supersedes: None,
                },
            })
            .unwrap();
        let jobs = batch.take_seal_jobs();
        assert_eq!(jobs.len(), 1);
        for (ticket, job) in jobs {
            batch
                .handle(Input::Sealed {
                    ticket,
                    sealed: job.run(),
                })
                .unwrap();
        }
    };
    let accepted = |effects: Vec<Effect>| {
        effects.into_iter().find_map(|e| match e {
            Effect::Reply {
                reply: ApiReply::Accepted(v),
                ..
            } => Some(v.id),
            _ => None,
        })
    };
    let committed_id;
    {
        let mut core = open(t0);
        let mut batch = core.batch(t0);
        for (o, k) in [(CM, "43"), (SVC, "11")] {
            batch
                .handle(Input::Api {
                    id: 0,
                    auth: Auth::Operator,
                    cmd: ApiCommand::AddOffice {
                        office: o.parse().unwrap(),
                        kinds: vec![k.parse().unwrap()],
                        name: o.into(),
                        token_hash: sha256(o.as_bytes()),
                    },
                })
                .unwrap();
        }
        batch.commit().unwrap();
        let mut batch = core.batch(t0 + 1);
        submit(&mut batch, "20250425164608");
        committed_id = accepted(batch.commit().unwrap()).unwrap();
        let mut batch = core.batch(t0 + 2);
        submit(&mut batch, "20250425164609");
        // dropped without commit: a crash
        drop(batch);
    }
    let mut core = open(t0 + 10);
    let mut batch = core.batch(t0 + 10);
    batch
        .handle(Input::Api {
            id: 2,
            auth: Auth::Office(sha256(SVC.as_bytes())),
            cmd: ApiCommand::Inbox {
                latest_only: false,
                before: None,
                limit: 10,
            },
        })
        .unwrap();
    let inbox = batch
        .commit()
        .unwrap()
        .into_iter()
        .find_map(|e| match e {
            Effect::Reply {
                reply: ApiReply::InboxPage(InboxPage { items: v, .. }),
                ..
            } => Some(v),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        inbox.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![committed_id]
    );
    assert!(verify_chain(core.store()).unwrap() > 0);
    drop(core);
    let _ = std::fs::remove_dir_all(&dir);
}
