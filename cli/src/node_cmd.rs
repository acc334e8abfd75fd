//! Operator commands: init, run, offices, status, keys.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use renkei_node::config::{ADMIN_TOKEN_FILE, NodeConfig};
use renkei_node::core::{ApiCommand, ApiReply};
use renkei_node::{api, keyfile, runtime};
use renkei_protocol::keys::OperatorKeys;

/// `renkei office …`
#[derive(Subcommand, Debug)]
pub enum OfficeCmd {
    /// Register an office and print its API token (shown once; stored only as a hash).
    Add {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// 事業所番号 (10 digits).
        office: String,
        /// Service kinds, comma separated (e.g. 43,11).
        #[arg(long, value_delimiter = ',', required = true)]
        kinds: Vec<String>,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Register the office even though its number fails the check digit.
        #[arg(long)]
        force: bool,
    },
    /// An office's API token.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// List offices homed here.
    List {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Install the federation authority's assignment of an office homed here (the file
    /// `renkei federation assign` wrote): the directory then carries the authority's
    /// record, which no other operator's claim can displace.
    Assign {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// The assignment file.
        assignment: std::path::PathBuf,
    },
    /// Add a staff account for the page (the office's first administrator with
    /// `--admin`); it then manages the office's staff itself. Prints the password when
    /// it makes one.
    StaffAdd {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// 事業所番号.
        office: String,
        /// User ID (A-Z a-z 0-9 . _ - @, up to 64).
        user: String,
        /// May manage the office's staff.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (one line) instead of making one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Release an office (its binding is withdrawn from the federation).
    Remove {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// 事業所番号.
        office: String,
    },
}

/// `renkei office token …`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issue a new API token for the office and print it (shown once); the old token
    /// stops working at once.
    Rotate {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// 事業所番号.
        office: String,
    },
}

/// `renkei key …`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Print the operator's public keys (identity and sealing).
    Show {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// Replace the operator key with a new one (the node must be stopped). The old operator
    /// id and sealing key are kept to receive envelopes addressed and sealed to them; the
    /// old signing key is discarded. The federation authority must then publish a roster
    /// with the new key (`renkei federation rotate-operator`); see docs/FEDERATION.md.
    Rotate {
        /// Node directory.
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}

#[allow(clippy::too_many_arguments)]
pub fn init(
    dir: &Path,
    name: &str,
    http: SocketAddr,
    listen: Vec<String>,
    relay: bool,
    roster: Option<&Path>,
    authority: Option<&str>,
    peers: &[String],
) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let keys = OperatorKeys::from_seeds(keyfile::random_seed()?, keyfile::random_seed()?);
    keyfile::create(dir, &keys)?;
    let token = api::new_token()?;
    keyfile::write_secret(&dir.join(ADMIN_TOKEN_FILE), &format!("{token}\n"))?;
    let mut cfg = NodeConfig::new(name);
    cfg.http = http;
    cfg.listen = listen;
    cfg.relay = relay;
    if let Some(a) = authority {
        let id: renkei_protocol::ids::OperatorId =
            a.parse().map_err(|e| anyhow::anyhow!("--authority: {e}"))?;
        cfg.authority = Some(id.to_string());
    }
    if let Some(r) = roster {
        std::fs::copy(r, dir.join("roster.cbor"))
            .with_context(|| format!("copying {}", r.display()))?;
        cfg.roster = Some("roster.cbor".into());
    }
    for p in peers {
        let Some((id, addr)) = p.split_once('@') else {
            bail!("--peer must be OPERATOR_ID@MULTIADDR, got {p:?}")
        };
        cfg.peers.push(renkei_node::config::PeerConfig {
            id: id.to_owned(),
            addrs: vec![addr.to_owned()],
        });
    }
    cfg.save(dir)?;
    println!("initialised node {name:?} in {}", dir.display());
    println!("operator id:  {}", keys.id());
    println!("sealing key:  {}", hex::encode(keys.seal.public()));
    println!(
        "config:       {}",
        dir.join(renkei_node::config::CONFIG_FILE).display()
    );
    Ok(0)
}

pub fn roster_install(dir: &Path, roster: &Path) -> Result<i32> {
    let bytes = std::fs::read(roster).with_context(|| format!("reading {}", roster.display()))?;
    let resp = crate::admin_api::Admin::open(dir)?
        .request(reqwest::Method::PUT, "/admin/v1/roster")
        .body(bytes.clone())
        .send();
    match resp {
        Ok(r) if r.status().is_success() => println!("roster installed on the running node"),
        Ok(r) => bail!("node refused the roster: {}", r.text().unwrap_or_default()),
        Err(e) if e.is_connect() => {
            match runtime::offline_call(dir, ApiCommand::SetRoster { roster: bytes })? {
                ApiReply::Done => println!("roster installed"),
                other => bail!("{}", describe(other)),
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(0)
}

/// `renkei compact`: value-log compaction of a stopped node's store.
pub fn compact(dir: &Path, max_live: u64) -> Result<i32> {
    if max_live > 100 {
        bail!("--max-live is a percentage (0–100), got {max_live}");
    }
    let cfg = NodeConfig::load(dir)?;
    if cfg.store.kind != renkei_node::config::StoreKind::Local {
        bail!(
            "renkei compact is for the local store; this node's store is PostgreSQL, which \
             reclaims space itself (autovacuum)"
        );
    }
    let store = runtime::open_store(dir, &cfg).with_context(|| {
        format!(
            "cannot open the store of {} (is the node still running? stop it first)",
            dir.display()
        )
    })?;
    let renkei_node::store::NodeStore::Local(mut store) = store else {
        bail!("renkei compact is for the local store");
    };
    let before = store.size_on_disk()?;
    let c = store.compact(max_live)?;
    let after = store.size_on_disk()?;
    println!(
        "compacted {} log segment(s): moved {} values ({} bytes), freed {} bytes; store {} → {} bytes",
        c.segments, c.moved_values, c.moved_bytes, c.freed_bytes, before, after
    );
    Ok(0)
}

/// `renkei backup`: through the running node's admin API, or offline from its store.
pub fn backup(dir: &Path, file: &Path) -> Result<i32> {
    let file = std::path::absolute(file)?;
    if file.exists() {
        bail!("{} exists already: choose a new file", file.display());
    }
    let cfg = NodeConfig::load(dir)?;
    let sent = crate::admin_api::Admin::with_timeout(dir, None)?
        .request(reqwest::Method::POST, "/admin/v1/backup")
        .json(&serde_json::json!({ "path": file }))
        .send();
    let (pairs, bytes, sha, how) = match sent {
        Ok(resp) => {
            let status = resp.status();
            let v: serde_json::Value = resp.json().unwrap_or_default();
            if !status.is_success() {
                bail!(
                    "node answered {status}: {}",
                    v["message"].as_str().unwrap_or("")
                );
            }
            (
                v["pairs"].as_u64().unwrap_or(0),
                v["bytes"].as_u64().unwrap_or(0),
                v["sha256"].as_str().unwrap_or("").to_owned(),
                format!(
                    "by the running node in {:.1} s",
                    v["seconds"].as_f64().unwrap_or(0.0)
                ),
            )
        }
        Err(e) if e.is_connect() => {
            let store = runtime::open_store(dir, &cfg).with_context(|| {
                format!(
                    "opening the store of {} (the node does not answer)",
                    dir.display()
                )
            })?;
            let s = renkei_node::backup::dump_to_file(&store, &file)?;
            (
                s.pairs,
                s.bytes,
                s.sha256,
                "from the stopped node's store".to_owned(),
            )
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "backup {}: {pairs} records, {bytes} bytes, {how}",
        file.display()
    );
    println!("sha256 {sha}");
    Ok(0)
}

/// `renkei restore`: into a stopped node whose store is empty.
pub fn restore(dir: &Path, file: &Path) -> Result<i32> {
    let cfg = NodeConfig::load(dir)?;
    let mut store = runtime::open_store(dir, &cfg).with_context(|| {
        format!(
            "opening the store of {} (stop the node first: restore writes its store directly)",
            dir.display()
        )
    })?;
    let s = renkei_node::backup::restore(&mut store, file, 64 << 20)
        .with_context(|| format!("restoring {}", file.display()))?;
    println!(
        "restored {}: {} records, {} bytes (sha256 {})",
        file.display(),
        s.pairs,
        s.bytes,
        s.sha256
    );
    Ok(0)
}

pub fn run(dir: &Path) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut node = runtime::start(dir).await?;
        println!("renkei node listening on http://{}", node.http);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            r = node.wait_core() => { r?; bail!("core stopped"); }
        }
        node.stop().await?;
        Ok(0)
    })
}

/// Runs an operator command on the running node (admin API) or, when it is not running,
/// directly on its store.
fn operator_call(
    dir: &Path,
    http_path: &str,
    method: reqwest::Method,
    body: Option<serde_json::Value>,
    offline: ApiCommand,
) -> Result<Result<serde_json::Value, ApiReply>> {
    let mut req = crate::admin_api::Admin::open(dir)?.request(method, http_path);
    if let Some(b) = &body {
        req = req.json(b);
    }
    match req.send() {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text()?;
            if !status.is_success() {
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                bail!("node answered {status}: {message}");
            }
            Ok(Ok(if text.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text)?
            }))
        }
        Err(e) if e.is_connect() => Ok(Err(runtime::offline_call(dir, offline)?)),
        Err(e) => Err(e.into()),
    }
}

/// `renkei office staff-add`: through the running node, or offline on its store.
fn staff_add(dir: &Path, office: &str, user: &str, admin: bool, from_stdin: bool) -> Result<i32> {
    let office_no: renkei_protocol::ids::OfficeNumber =
        office.parse().map_err(|e| anyhow::anyhow!("office: {e}"))?;
    let (password, made) = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        let mut b = [0u8; 12];
        getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
        (
            data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase(),
            true,
        )
    };
    if password.chars().count() < renkei_node::api::PASSWORD_MIN {
        bail!(
            "a password is at least {} characters long",
            renkei_node::api::PASSWORD_MIN
        );
    }
    let phc = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(renkei_node::api::hash_password(password.clone()))
        .map_err(|_| anyhow::anyhow!("cannot hash the password"))?;
    let body = serde_json::json!({ "user": user, "password": password, "admin": admin });
    let offline = ApiCommand::StaffAdd {
        office: Some(office_no),
        user: user.to_owned(),
        password: phc,
        admin,
    };
    match operator_call(
        dir,
        &format!("/admin/v1/offices/{office}/staff"),
        reqwest::Method::POST,
        Some(body),
        offline,
    )? {
        Ok(_) | Err(ApiReply::Staff(_)) => {}
        Err(other) => bail!("{}", describe(other)),
    }
    println!(
        "staff {user} added to office {office}{}",
        if admin { " (administrator)" } else { "" }
    );
    if made {
        println!(
            "password: {password}   ← give it to {user}; it is shown once (they can change it on the page)"
        );
    }
    Ok(0)
}

pub fn office(cmd: OfficeCmd) -> Result<i32> {
    match cmd {
        OfficeCmd::StaffAdd {
            dir,
            office,
            user,
            admin,
            password_stdin,
        } => staff_add(&dir, &office, &user, admin, password_stdin),
        OfficeCmd::Add {
            dir,
            office,
            kinds,
            name,
            force,
        } => {
            if let Ok(n) = office.parse::<renkei_protocol::ids::OfficeNumber>()
                && !n.check_digit_ok()
            {
                if !force {
                    bail!(
                        "the last digit of office number {office} does not match its check digit (modulus 10): check the number; --force registers it anyway"
                    );
                }
                eprintln!(
                    "warning: office number {office} fails the check digit; registered as asked (--force)"
                );
            }
            for k in &kinds {
                if service_kind_name(k).is_none() {
                    if !force {
                        bail!(
                            "service kind {k:?} is not one of the 介護保険 サービス種類コード this node knows (e.g. 11 訪問介護, 43 居宅介護支援, 46 介護予防支援, A? 総合事業): check it; --force registers it anyway"
                        );
                    }
                    eprintln!(
                        "warning: service kind {k} is not a known サービス種類コード; registered as asked (--force)"
                    );
                }
            }
            let body = serde_json::json!({ "office": office, "kinds": kinds, "name": name });
            let (offline, token) =
                api::add_office_command(&office, &kinds, &name).map_err(anyhow::Error::msg)?;
            match operator_call(
                &dir,
                "/admin/v1/offices",
                reqwest::Method::POST,
                Some(body),
                offline,
            )? {
                Ok(v) => {
                    println!("office {office} registered");
                    println!("token: {}", v["token"].as_str().unwrap_or_default());
                }
                Err(ApiReply::Office(_)) => {
                    println!("office {office} registered");
                    println!("token: {token}");
                }
                Err(other) => bail!("{}", describe(other)),
            }
            Ok(0)
        }
        OfficeCmd::Token {
            cmd: TokenCmd::Rotate { dir, office },
        } => {
            let (offline, token) =
                api::rotate_token_command(&office).map_err(anyhow::Error::msg)?;
            let path = format!("/admin/v1/offices/{office}/token");
            match operator_call(&dir, &path, reqwest::Method::POST, None, offline)? {
                Ok(v) => {
                    println!("office {office}: new token issued; the old one no longer works");
                    println!("token: {}", v["token"].as_str().unwrap_or_default());
                }
                Err(ApiReply::Office(_)) => {
                    println!("office {office}: new token issued; the old one no longer works");
                    println!("token: {token}");
                }
                Err(other) => bail!("{}", describe(other)),
            }
            Ok(0)
        }
        OfficeCmd::List { dir } => {
            match operator_call(
                &dir,
                "/admin/v1/offices",
                reqwest::Method::GET,
                None,
                ApiCommand::ListOffices,
            )? {
                Ok(v) => {
                    for o in v.as_array().into_iter().flatten() {
                        println!(
                            "{}  kinds {}  {}",
                            o["office"].as_str().unwrap_or(""),
                            o["kinds"],
                            o["name"].as_str().unwrap_or("")
                        );
                    }
                }
                Err(ApiReply::Offices(list)) => {
                    for o in list {
                        println!("{}  kinds {:?}  {}", o.office, o.kinds, o.name);
                    }
                }
                Err(other) => bail!("{}", describe(other)),
            }
            Ok(0)
        }
        OfficeCmd::Assign { dir, assignment } => {
            let bytes = std::fs::read(&assignment)
                .with_context(|| format!("reading {}", assignment.display()))?;
            let body = serde_json::json!({ "assignment": hex::encode(&bytes) });
            match operator_call(
                &dir,
                "/admin/v1/assignments",
                reqwest::Method::POST,
                Some(body),
                ApiCommand::AssignOffice { assignment: bytes },
            )? {
                Ok(_) | Err(ApiReply::Done) => {
                    println!("assignment installed: the federation learns it by directory sync")
                }
                Err(other) => bail!("{}", describe(other)),
            }
            Ok(0)
        }
        OfficeCmd::Remove { dir, office } => {
            let parsed = office.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let path = format!("/admin/v1/offices/{office}");
            match operator_call(
                &dir,
                &path,
                reqwest::Method::DELETE,
                None,
                ApiCommand::RemoveOffice { office: parsed },
            )? {
                Ok(_) | Err(ApiReply::Done) => println!("office {office} released"),
                Err(other) => bail!("{}", describe(other)),
            }
            Ok(0)
        }
    }
}

pub fn status(dir: &Path) -> Result<i32> {
    match operator_call(
        dir,
        "/admin/v1/status",
        reqwest::Method::GET,
        None,
        ApiCommand::Status,
    )? {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(ApiReply::Status(s)) => println!("{}", serde_json::to_string_pretty(&s)?),
        Err(other) => bail!("{}", describe(other)),
    }
    Ok(0)
}

pub fn key(cmd: KeyCmd) -> Result<i32> {
    match cmd {
        KeyCmd::Show { dir } => {
            let keys = keyfile::load(&dir)?;
            println!("operator id:  {}", keys.id());
            println!("operator hex: {}", keys.id().to_hex());
            // The libp2p peer id, for addresses like …/tcp/PORT/p2p/PEER_ID.
            println!(
                "peer id:      {}",
                renkei_node::net::peer_id_of(&keys.id())?
            );
            println!("sealing key:  {}", hex::encode(keys.seal.public()));
            for id in &keys.old_ids {
                println!("retired id:   {id}");
            }
            Ok(0)
        }
        KeyCmd::Rotate { dir } => key_rotate(&dir),
    }
}

/// `renkei key rotate`: refuses while the node runs (its HTTP API answers, or its store is
/// locked), and keeps the store locked while the key file is replaced so the node cannot
/// start half-way.
fn key_rotate(dir: &Path) -> Result<i32> {
    let cfg = NodeConfig::load(dir)?;
    let before = keyfile::load(dir)?;
    let probe = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .get(format!("http://{}/healthz", cfg.http))
        .send();
    if probe.is_ok() {
        bail!(
            "the node of {} is running (its API answers at {}): stop it before rotating its key",
            dir.display(),
            cfg.http
        );
    }
    let store = runtime::open_store(dir, &cfg).map_err(|e| {
        anyhow::anyhow!(
            "cannot lock the store of {} (is the node running?): {e}",
            dir.display()
        )
    })?;
    let keys = keyfile::rotate(dir, keyfile::random_seed()?, keyfile::random_seed()?)?;
    drop(store);
    tracing::info!(old = %before.id(), new = %keys.id(), "operator key rotated");
    println!("operator key rotated for {:?}", cfg.name);
    println!("old operator id: {}", before.id());
    println!("operator id:     {}", keys.id());
    println!("operator hex:    {}", keys.id().to_hex());
    println!("sealing key:     {}", hex::encode(keys.seal.public()));
    println!();
    println!("next: the federation authority publishes a roster with the new key, e.g.");
    println!(
        "  renkei federation rotate-operator --dir AUTHORITY_DIR --operator {} --key {} --seal-key {}",
        before.id(),
        keys.id(),
        hex::encode(keys.seal.public())
    );
    println!(
        "then install it here (renkei roster-install --dir {} ROSTER) and start the node.",
        dir.display()
    );
    Ok(0)
}

pub fn describe(reply: ApiReply) -> String {
    match reply {
        ApiReply::Forbidden(m)
        | ApiReply::NotFound(m)
        | ApiReply::Conflict(m)
        | ApiReply::BadRequest(m)
        | ApiReply::Internal(m)
        | ApiReply::Unroutable(m) => m,
        other => format!("{other:?}"),
    }
}

/// The 介護保険 サービス種類コード offices exchanging care plans are registered under (the
/// service-code table's kinds, 総合事業 included), with their names; `None` for a code
/// not in it (a typo such as `99`, or a kind added after this list: `--force`).
pub fn service_kind_name(code: &str) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        ("11", "訪問介護"),
        ("12", "訪問入浴介護"),
        ("13", "訪問看護"),
        ("14", "訪問リハビリテーション"),
        ("15", "通所介護"),
        ("16", "通所リハビリテーション"),
        ("17", "福祉用具貸与"),
        ("21", "短期入所生活介護"),
        ("22", "短期入所療養介護（介護老人保健施設）"),
        ("23", "短期入所療養介護（病院等）"),
        ("24", "介護予防短期入所生活介護"),
        ("25", "介護予防短期入所療養介護（介護老人保健施設）"),
        ("26", "介護予防短期入所療養介護（病院等）"),
        ("27", "特定施設入居者生活介護（短期利用）"),
        ("28", "地域密着型特定施設入居者生活介護（短期利用）"),
        ("2A", "短期入所療養介護（介護医療院）"),
        ("2B", "介護予防短期入所療養介護（介護医療院）"),
        ("31", "居宅療養管理指導"),
        ("32", "認知症対応型共同生活介護"),
        ("33", "特定施設入居者生活介護"),
        ("34", "介護予防居宅療養管理指導"),
        ("35", "介護予防特定施設入居者生活介護"),
        ("36", "地域密着型特定施設入居者生活介護"),
        ("37", "介護予防認知症対応型共同生活介護"),
        ("38", "認知症対応型共同生活介護（短期利用）"),
        ("39", "介護予防認知症対応型共同生活介護（短期利用）"),
        ("43", "居宅介護支援"),
        ("46", "介護予防支援"),
        ("51", "介護福祉施設サービス"),
        ("52", "介護保健施設サービス"),
        ("53", "介護療養施設サービス"),
        ("54", "地域密着型介護老人福祉施設入所者生活介護"),
        ("55", "介護医療院サービス"),
        ("62", "介護予防訪問入浴介護"),
        ("63", "介護予防訪問看護"),
        ("64", "介護予防訪問リハビリテーション"),
        ("66", "介護予防通所リハビリテーション"),
        ("67", "介護予防福祉用具貸与"),
        ("68", "小規模多機能型居宅介護（短期利用）"),
        ("69", "看護小規模多機能型居宅介護（短期利用）"),
        ("71", "夜間対応型訪問介護"),
        ("72", "認知症対応型通所介護"),
        ("73", "小規模多機能型居宅介護"),
        ("74", "介護予防認知症対応型通所介護"),
        ("75", "介護予防小規模多機能型居宅介護"),
        ("76", "定期巡回・随時対応型訪問介護看護"),
        ("77", "看護小規模多機能型居宅介護"),
        ("78", "地域密着型通所介護"),
        ("79", "介護予防小規模多機能型居宅介護（短期利用）"),
        ("A1", "訪問型サービス（みなし）"),
        ("A2", "訪問型サービス（独自）"),
        ("A3", "訪問型サービス（独自／定率）"),
        ("A4", "訪問型サービス（独自／定額）"),
        ("A5", "通所型サービス（みなし）"),
        ("A6", "通所型サービス（独自）"),
        ("A7", "通所型サービス（独自／定率）"),
        ("A8", "通所型サービス（独自／定額）"),
        ("A9", "その他の生活支援サービス"),
        ("AF", "介護予防ケアマネジメント"),
    ];
    if let Some((_, n)) = KINDS.iter().find(|(c, _)| *c == code) {
        return Some(n);
    }
    // 総合事業: municipalities set their own A-codes.
    let b = code.as_bytes();
    (b.len() == 2 && b[0] == b'A' && (b[1].is_ascii_digit() || b[1].is_ascii_uppercase()))
        .then_some("介護予防・日常生活支援総合事業")
}

#[cfg(test)]
mod tests {
    #[test]
    fn service_kinds_known_and_unknown() {
        assert_eq!(super::service_kind_name("43"), Some("居宅介護支援"));
        assert_eq!(
            super::service_kind_name("A1"),
            Some("訪問型サービス（みなし）")
        );
        assert_eq!(super::service_kind_name("99"), None);
        assert!(
            super::service_kind_name("AC").is_some(),
            "municipal 総合事業 codes vary"
        );
        assert_eq!(super::service_kind_name("B1"), None);
        assert_eq!(super::service_kind_name("4"), None);
    }
}
