//! Interim: file-name checks only, until the standard-spec CSV module lands.
use super::{UnitFinding, UnitInfo, family_of};
use renkei_protocol::envelope::Party;
use renkei_protocol::ids::FilePrefix;

pub(super) fn check(files: &[(&str, &[u8])]) -> Result<UnitInfo, Vec<UnitFinding>> {
    let mut info: Option<UnitInfo> = None;
    for (name, _) in files {
        let stem = name
            .strip_suffix(".CSV")
            .ok_or_else(|| vec![UnitFinding::unit("name", format!("{name}: not a .CSV"))])?;
        let prefix = FilePrefix::ALL
            .into_iter()
            .find(|p| stem.starts_with(&format!("{}_", p.as_str())))
            .ok_or_else(|| {
                vec![UnitFinding::unit(
                    "name.prefix",
                    format!("{name}: unknown prefix"),
                )]
            })?;
        let rest: Vec<&str> = stem[prefix.as_str().len() + 1..].split('_').collect();
        let rest = if prefix.has_yyyymm() {
            &rest[1..]
        } else {
            &rest[..]
        };
        let bad = |m: String| vec![UnitFinding::unit("name", format!("{name}: {m}"))];
        if rest.len() != 5 {
            return Err(bad("wrong number of parts".into()));
        }
        let from = Party {
            office: rest[0].parse().map_err(|e| bad(format!("{e}")))?,
            kind: rest[1].parse().map_err(|e| bad(format!("{e}")))?,
        };
        let to = Party {
            office: rest[2].parse().map_err(|e| bad(format!("{e}")))?,
            kind: rest[3].parse().map_err(|e| bad(format!("{e}")))?,
        };
        let stamp = rest[4].parse().map_err(|e| bad(format!("{e}")))?;
        info.get_or_insert(UnitInfo {
            doc_kind: prefix.doc_kind_for(None, &from.kind, &to.kind),
            from,
            to,
            stamp,
            subject: None,
            family: family_of(prefix),
            users: vec![],
        });
    }
    info.ok_or_else(|| vec![UnitFinding::unit("unit.empty", "no files".into())])
}
