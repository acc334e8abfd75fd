//! `renkei audit …`: an office's monthly audit export (運営指導) and the node's audit chain.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use renkei_node::config::NodeConfig;
use renkei_node::core::{ApiCommand, ApiReply, verify_chain};
use renkei_node::runtime;
use renkei_protocol::export::{AuditExport, check_month};

/// `renkei audit …`
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Write an office's audit export for one month: every unit it sent or received whose
    /// target month or creation month is MONTH, with all receipts (verify with
    /// `renkei verify FILE --roster …`).
    Export {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
        /// 事業所番号 of an office homed at this node.
        #[arg(long)]
        office: String,
        /// Month, YYYYMM.
        #[arg(long)]
        month: String,
        /// Output file (CBOR).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// Check the node's whole hash-chained audit log (the node must be stopped).
    Verify {
        /// Node directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

pub fn run(cmd: AuditCmd) -> Result<i32> {
    match cmd {
        AuditCmd::Export {
            dir,
            office,
            month,
            out,
        } => export(&dir, &office, &month, &out),
        AuditCmd::Verify { dir } => verify(&dir),
    }
}

fn export(dir: &Path, office: &str, month: &str, out: &Path) -> Result<i32> {
    check_month(month).map_err(anyhow::Error::msg)?;
    let office_no = office
        .parse()
        .map_err(|e| anyhow::anyhow!("--office: {e}"))?;
    let resp = crate::admin_api::Admin::open(dir)?
        .request(reqwest::Method::GET, "/admin/v1/audit-export")
        .query(&[("office", office), ("month", month)])
        .send();
    let bytes = match resp {
        Ok(r) => {
            let status = r.status();
            let body = r.bytes()?.to_vec();
            if !status.is_success() {
                bail!("node answered {status}: {}", String::from_utf8_lossy(&body));
            }
            body
        }
        Err(e) if e.is_connect() => {
            let cmd = ApiCommand::AuditExport {
                office: office_no,
                month: month.to_owned(),
            };
            match runtime::offline_call(dir, cmd)? {
                ApiReply::AuditExport(b) => b,
                other => bail!("{}", crate::node_cmd::describe(other)),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let export = AuditExport::decode(&bytes).context("the node's export does not decode")?;
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    let sent = export
        .entries
        .iter()
        .filter(|e| e.direction == renkei_protocol::export::Direction::Sent)
        .count();
    println!(
        "wrote {}: office {} month {}: {} unit(s) ({} sent, {} received)",
        out.display(),
        export.office,
        export.month,
        export.entries.len(),
        sent,
        export.entries.len() - sent
    );
    Ok(0)
}

fn verify(dir: &Path) -> Result<i32> {
    let cfg = NodeConfig::load(dir)?;
    let store = runtime::open_store(dir, &cfg).with_context(|| {
        format!(
            "opening the store of {} (stop the node first: the store is locked while it runs)",
            dir.display()
        )
    })?;
    match verify_chain(&store) {
        Ok(n) => {
            println!("audit chain OK: {n} entries");
            Ok(0)
        }
        Err(e) => {
            println!("audit chain BROKEN: {e}");
            Ok(1)
        }
    }
}
