//! `renkei csv …`: checking standard-spec CSV files before they are sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use renkei_protocol::csv::{FileReport, Severity, UnitReport, check_send_unit, group_send_units};

/// Exit status: no errors.
pub const EXIT_OK: i32 = 0;
/// Exit status: at least one error finding.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit status: usage error (e.g. a path that does not exist).
pub const EXIT_USAGE: i32 = 2;

/// Subcommands of `renkei csv`.
#[derive(Subcommand, Debug)]
pub enum CsvCommand {
    /// Check files (or directories, recursively) against the standard; files are grouped
    /// into send units per directory. Exit 0: no errors, 1: errors, 2: usage error.
    Check {
        /// Files or directories (directories: every .CSV/.jpg below them).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the findings as JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `renkei csv` subcommand; returns the exit status.
pub fn run(command: CsvCommand) -> Result<i32> {
    match command {
        CsvCommand::Check { paths, json } => check(&paths, json),
    }
}

/// A file read from disk.
struct Input {
    path: PathBuf,
    name: String,
    bytes: Vec<u8>,
}

fn check(paths: &[PathBuf], json: bool) -> Result<i32> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !p.exists() {
            eprintln!(
                "renkei csv check: {}: no such file or directory",
                p.display()
            );
            return Ok(EXIT_USAGE);
        }
        collect(p, true, &mut files)?;
    }
    files.sort();
    files.dedup();
    // One directory's files form its send units; equal names in different directories
    // never meet.
    let mut by_dir: BTreeMap<PathBuf, Vec<Input>> = BTreeMap::new();
    for path in files {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        by_dir
            .entry(dir)
            .or_default()
            .push(Input { path, name, bytes });
    }
    let mut units: Vec<(Vec<&Path>, UnitReport)> = Vec::new();
    for inputs in by_dir.values() {
        let refs: Vec<(&str, &[u8])> = inputs
            .iter()
            .map(|i| (i.name.as_str(), i.bytes.as_slice()))
            .collect();
        for group in group_send_units(&refs) {
            let paths: Vec<&Path> = group
                .iter()
                .filter_map(|(n, b)| {
                    inputs
                        .iter()
                        .find(|i| i.name == *n && std::ptr::eq(i.bytes.as_slice(), *b))
                        .map(|i| i.path.as_path())
                })
                .collect();
            units.push((paths, check_send_unit(&group)));
        }
    }
    let errors = units
        .iter()
        .flat_map(|(_, u)| u.all_findings())
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = units
        .iter()
        .flat_map(|(_, u)| u.all_findings())
        .filter(|f| f.severity == Severity::Warning)
        .count();
    if json {
        print_json(&units, errors, warnings)?;
    } else {
        print_human(&units, errors, warnings);
    }
    Ok(if errors > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

/// Adds `path` (a file, or every .CSV/.jpg below a directory) to `out`.
fn collect(path: &Path, explicit: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", path.display()))?;
        entries.sort();
        for e in entries {
            collect(&e, false, out)?;
        }
    } else if explicit || is_candidate(path) {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn is_candidate(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("jpg"))
}

fn verdict(errors: usize, warnings: usize) -> String {
    match (errors, warnings) {
        (0, 0) => "OK".to_owned(),
        (0, w) => format!("OK ({w} warning{})", if w == 1 { "" } else { "s" }),
        (e, _) => format!("FAIL ({e} error{})", if e == 1 { "" } else { "s" }),
    }
}

fn counts<'a>(findings: impl Iterator<Item = &'a renkei_protocol::csv::Finding>) -> (usize, usize) {
    findings.fold((0, 0), |(e, w), f| match f.severity {
        Severity::Error => (e + 1, w),
        Severity::Warning => (e, w + 1),
    })
}

fn file_line(path: &Path, r: &FileReport) -> String {
    let kind = r
        .file_name
        .as_ref()
        .map(|n| n.prefix.as_str())
        .unwrap_or("?");
    let d = r
        .doc_kind
        .map(|d| d.to_string())
        .unwrap_or_else(|| "-".into());
    let (e, w) = counts(r.findings.iter());
    format!(
        "{}: {kind} {d} users {} rows {} {}",
        path.display(),
        r.users,
        r.rows,
        verdict(e, w)
    )
}

fn print_human(units: &[(Vec<&Path>, UnitReport)], errors: usize, warnings: usize) {
    for (paths, u) in units {
        let (e, w) = counts(u.all_findings());
        match &u.unit {
            Some(s) => println!(
                "send unit {} {} {}/{} -> {}/{} stamp {}: {} file(s), {} users, {}",
                s.kind,
                s.doc_kind,
                s.from_office,
                s.from_kind,
                s.to_office,
                s.to_kind,
                s.stamp,
                u.files.len(),
                s.keys
                    .iter()
                    .map(|k| (&k.insurer, &k.insured))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
                verdict(e, w)
            ),
            None => println!(
                "send unit (not formed): {} file(s), {}",
                u.files.len(),
                verdict(e, w)
            ),
        }
        for (path, r) in paths.iter().zip(&u.files) {
            println!("  {}", file_line(path, r));
            for f in &r.findings {
                println!("    {f}");
            }
        }
        for f in &u.findings {
            println!("  {f}");
        }
    }
    let files: usize = units.iter().map(|(_, u)| u.files.len()).sum();
    println!(
        "{files} file(s) in {} send unit(s): {errors} error(s), {warnings} warning(s)",
        units.len()
    );
}

fn print_json(units: &[(Vec<&Path>, UnitReport)], errors: usize, warnings: usize) -> Result<()> {
    let out = to_json(units, errors, warnings)?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn to_json(
    units: &[(Vec<&Path>, UnitReport)],
    errors: usize,
    warnings: usize,
) -> Result<serde_json::Value> {
    let units: Vec<serde_json::Value> = units
        .iter()
        .map(|(paths, u)| {
            Ok(serde_json::json!({
                "paths": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "has_errors": u.has_errors(),
                "report": serde_json::to_value(u)?,
            }))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    Ok(serde_json::json!({
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "units": units,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

    #[test]
    fn exit_status_follows_findings() {
        let valid = PathBuf::from(FIXTURES).join("valid");
        assert_eq!(check(&[valid], false).unwrap(), EXIT_OK);
        let invalid = PathBuf::from(FIXTURES).join("invalid");
        assert_eq!(
            check(std::slice::from_ref(&invalid), true).unwrap(),
            EXIT_FINDINGS
        );
        let one = invalid
            .join("bad_date")
            .join("UP1KYO_4074478647_43_4071481594_11_20250425164608.CSV");
        assert_eq!(check(&[one], false).unwrap(), EXIT_FINDINGS);
        let missing = PathBuf::from(FIXTURES).join("no-such-dir");
        assert_eq!(check(&[missing], false).unwrap(), EXIT_USAGE);
    }

    #[test]
    fn directories_are_walked_and_grouped_per_directory() {
        let mut files = Vec::new();
        collect(&PathBuf::from(FIXTURES).join("invalid"), true, &mut files).unwrap();
        // the .txt notes are skipped, the 16 defect files kept
        assert_eq!(files.len(), 16);
        assert!(files.iter().all(|f| is_candidate(f)));
    }

    #[test]
    fn json_carries_units_files_and_findings() {
        let dir = PathBuf::from(FIXTURES).join("valid").join("d2_kyo_riyohyo");
        let inputs: Vec<(String, Vec<u8>)> = ["UPPLAN", "UPSIKYU", "UPHOSOKU"]
            .iter()
            .map(|p| {
                let name = std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .find(|n| n.starts_with(&format!("{p}_")))
                    .unwrap();
                let bytes = std::fs::read(dir.join(&name)).unwrap();
                (name, bytes)
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = inputs.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
        let report = check_send_unit(&refs);
        let paths: Vec<&Path> = vec![dir.as_path(); 3];
        let v = to_json(&[(paths, report)], 0, 0).unwrap();
        assert_eq!(v["ok"], true);
        let unit = &v["units"][0]["report"]["unit"];
        assert_eq!(unit["kind"], "KYO_RIYOHYO");
        assert_eq!(unit["doc_kind"], "D2");
        assert_eq!(unit["target_month"], "202505");
        assert_eq!(v["units"][0]["report"]["files"][0]["rows"], 47);
        assert_eq!(
            v["units"][0]["report"]["files"][0]["file_name"]["prefix"],
            "UPPLAN"
        );
    }
}
