//! Office commands: a small client of the node's HTTP API.

use renkei_protocol::jst::jst;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use reqwest::blocking::{Client, Response, multipart};
use serde_json::Value;

use crate::NodeArgs;

fn client() -> Result<Client> {
    Ok(Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?)
}

fn url(node: &NodeArgs, path: &str) -> String {
    format!("{}{path}", node.node.trim_end_matches('/'))
}

fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => {
            let mut msg = format!("{status}: {}", v["message"].as_str().unwrap_or(&text));
            for f in v["findings"].as_array().into_iter().flatten() {
                // Where: the file, then line and column when the finding has them (a
                // unit-level finding has neither: no `null` in what people read).
                let mut at = f["file"].as_str().unwrap_or("").to_owned();
                if let Some(l) = f["line"].as_u64() {
                    at.push_str(&format!(" line {l}"));
                }
                if let Some(c) = f["column"].as_u64() {
                    at.push_str(&format!(" col {c}"));
                }
                msg.push_str(&format!(
                    "\n  {at}: [{}] {}",
                    f["rule"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or("")
                ));
            }
            bail!(msg)
        }
        Err(_) => bail!("{status}: {text}"),
    }
}

fn collect(paths: &[PathBuf], out: &mut Vec<PathBuf>) -> Result<()> {
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            collect(&entries, out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(())
}

/// The send-unit key of a standard file name: (from, from kind, to, to kind, stamp).
fn unit_key(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let parts: Vec<&str> = stem.split('_').collect();
    let n = parts.len();
    let is_image = stem.contains("_IMAGE_");
    let tail = if is_image && n >= 6 {
        &parts[n - 6..n - 1]
    } else if n >= 5 {
        &parts[n - 5..]
    } else {
        &parts[..]
    };
    tail.join("_")
}

fn say(bar: &Option<indicatif::ProgressBar>, line: String) {
    match bar {
        Some(b) => b.println(line),
        None => println!("{line}"),
    }
}

pub fn send(node: &NodeArgs, paths: &[PathBuf], supersedes: Option<&str>) -> Result<i32> {
    let mut paths_found = Vec::new();
    collect(paths, &mut paths_found)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(paths_found.len());
    for f in &paths_found {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        files.push((name, bytes));
    }
    // One send unit per sender, recipient, stamp and unit kind (the standard's grouping):
    // an export folder holding 1〜3表 and 6表 of the same stamp sends two units.
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let units = renkei_protocol::csv::group_send_units(&refs);
    let c = client()?;
    let mut failures = 0;
    let total = units.len();
    // A progress bar when sending many units from a terminal; plain lines otherwise.
    let bar = (total > 1 && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| indicatif::ProgressBar::new(total as u64));
    for (i, files) in units.into_iter().enumerate() {
        if let Some(b) = &bar {
            b.set_position(i as u64);
        }
        let key = files
            .first()
            .map(|(n, _)| format!("{} ({} file(s))", unit_key(n), files.len()))
            .unwrap_or_default();
        let mut form = multipart::Form::new();
        for (name, bytes) in &files {
            form = form.part(
                "file",
                multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()),
            );
        }
        if let Some(s) = supersedes {
            form = form.text("supersedes", s.to_owned());
        }
        let resp = c
            .post(url(node, "/v1/send-units"))
            .bearer_auth(&node.token)
            .multipart(form)
            .send()?;
        match check(resp) {
            Ok(r) => {
                let v: Value = r.json()?;
                say(
                    &bar,
                    format!(
                        "[{}/{total}] accepted {} → {} {} id {}",
                        i + 1,
                        key,
                        v["to"].as_str().unwrap_or(""),
                        v["kind"].as_str().unwrap_or(""),
                        v["id"].as_str().unwrap_or("")
                    ),
                );
            }
            Err(e) => {
                failures += 1;
                say(&bar, format!("[{}/{total}] refused {key}: {e}", i + 1));
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(if failures > 0 { 1 } else { 0 })
}

pub fn inbox(node: &NodeArgs, latest: bool, json: bool) -> Result<i32> {
    let resp = client()?
        .get(url(node, "/v1/inbox"))
        .query(&[("latest", latest)])
        .bearer_auth(&node.token)
        .send()?;
    let v: Value = check(resp)?.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for e in v.as_array().into_iter().flatten() {
        println!(
            "{}  {} from {} ({})  stamp {}  {} file(s){}{}",
            e["id"].as_str().unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            e["from"].as_str().unwrap_or(""),
            e["from_kind"].as_str().unwrap_or(""),
            e["stamp"].as_str().unwrap_or(""),
            e["files"].as_array().map_or(0, Vec::len),
            if e["latest"].as_bool() == Some(false) {
                "  (superseded)"
            } else {
                ""
            },
            if e["retrieved_at_ms"].is_null() {
                "  NEW"
            } else {
                ""
            },
        );
    }
    Ok(0)
}

pub fn fetch(node: &NodeArgs, id: &str, out: &Path) -> Result<i32> {
    let c = client()?;
    let resp = c
        .get(url(node, "/v1/inbox"))
        .bearer_auth(&node.token)
        .send()?;
    let v: Value = check(resp)?.json()?;
    let Some(entry) = v
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["id"].as_str() == Some(id))
    else {
        bail!("no unit {id} in this office's inbox");
    };
    std::fs::create_dir_all(out)?;
    for f in entry["files"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.contains('/') || name.contains('\\') || name.contains("..") {
            bail!("refusing unsafe file name {name:?}");
        }
        let resp = c
            .get(url(node, &format!("/v1/inbox/{id}/files/{name}")))
            .bearer_auth(&node.token)
            .send()?;
        let bytes = check(resp)?.bytes()?;
        std::fs::write(out.join(name), &bytes)?;
        println!("{} ({} bytes)", out.join(name).display(), bytes.len());
    }
    Ok(0)
}

pub fn sent(node: &NodeArgs, id: Option<&str>, json: bool) -> Result<i32> {
    let path = match id {
        Some(i) => format!("/v1/sent/{i}"),
        None => "/v1/sent".into(),
    };
    let v: Value = check(
        client()?
            .get(url(node, &path))
            .bearer_auth(&node.token)
            .send()?,
    )?
    .json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let list = if v.is_array() {
        v.as_array().cloned().unwrap_or_default()
    } else {
        vec![v]
    };
    for s in list {
        println!(
            "{}  {} to {} ({})  stamp {}  {}",
            s["id"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
            s["to"].as_str().unwrap_or(""),
            s["to_kind"].as_str().unwrap_or(""),
            s["stamp"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or("").to_uppercase()
        );
        if id.is_some() {
            for r in s["receipts"].as_array().into_iter().flatten() {
                println!(
                    "    {} by {} at {}{}",
                    r["kind"].as_str().unwrap_or(""),
                    r["node_name"]
                        .as_str()
                        .unwrap_or(r["node"].as_str().unwrap_or("")),
                    r["at_ms"].as_u64().map(jst).unwrap_or_default(),
                    r["text"]
                        .as_str()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(0)
}

pub fn proof(node: &NodeArgs, id: &str, out: &Path) -> Result<i32> {
    let resp = client()?
        .get(url(node, &format!("/v1/sent/{id}/proof")))
        .bearer_auth(&node.token)
        .send()?;
    let bytes = check(resp)?.bytes()?;
    std::fs::write(out, &bytes)?;
    println!(
        "proof of {id} written to {} ({} bytes)",
        out.display(),
        bytes.len()
    );
    Ok(0)
}

pub fn directory(node: &NodeArgs, office: &str) -> Result<i32> {
    let v: Value = check(
        client()?
            .get(url(node, &format!("/v1/directory/{office}")))
            .bearer_auth(&node.token)
            .send()?,
    )?
    .json()?;
    if v["reachable"].as_bool() == Some(true) {
        println!(
            "office {office} can receive electronically: homed at operator {} ({}) since {}, service kinds {}",
            v["operator_name"]
                .as_str()
                .unwrap_or(if v["homed_here"].as_bool() == Some(true) {
                    "this node"
                } else {
                    "?"
                }),
            v["operator"].as_str().unwrap_or("this node"),
            v["since_ms"].as_u64().map(jst).unwrap_or_default(),
            v["kinds"]
        );
        Ok(0)
    } else {
        println!(
            "office {office} is not bound to any operator of the federation: it cannot receive electronically"
        );
        Ok(1)
    }
}
