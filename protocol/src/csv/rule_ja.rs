//! What each finding's rule means, in Japanese, for office staff (the page shows these;
//! the API gives them beside the rule id and the English detail).

/// The Japanese description of rule `rule` (a generic sentence for a rule not listed).
pub fn rule_ja(rule: &str) -> &'static str {
    match rule {
        "csv.column_count" => "項目の数が様式の定義と合いません。",
        "csv.header_row" => "見出し行があります。標準仕様のファイルには見出し行を付けません。",
        "csv.unterminated_quote" => "引用符（\"）が閉じられていません。",
        "date.calendar" => "存在しない日付です。",
        "encoding.bom" => "ファイルの先頭にBOMがあります。Shift_JISで保存し直してください。",
        "encoding.invalid_ms932" => "Shift_JIS（MS932）として読めない文字があります。",
        "encoding.user_defined" => "外字（利用者定義文字）が使われています。",
        "encoding.utf8" => "ファイルがUTF-8で保存されています。標準仕様ではShift_JISで保存します。",
        "field.length" => "項目の桁数（長さ）が規定と合いません。",
        "field.required" => "必須の項目が空です。",
        "file.empty" => "ファイルが空です。",
        "findings.truncated" => "誤りが多いため、以降の指摘は省略しました。",
        "format.alnum" => "半角英数字以外の文字が入っています。",
        "format.code" => "定められたコード以外の値です。",
        "format.decimal" => "数値の形式が正しくありません。",
        "format.digits" => "数字以外の文字が入っています。",
        "format.hhmm" => "時刻（時分）の形式が正しくありません。",
        "format.text" => "使えない文字（改行や制御文字など）が入っています。",
        "format.yyyymm" => "年月（YYYYMM）の形式が正しくありません。",
        "image.not_jpeg" => "家族構成の画像がJPEGファイルではありません。",
        "insured.format" => "被保険者番号の形式が正しくありません。",
        "insurer.check_digit" => "保険者番号の検証番号が合いません。番号を確かめてください。",
        "insurer.format" => "保険者番号の形式が正しくありません。",
        "kihon.image_name" => "利用者基本情報に書かれた画像ファイル名が正しくありません。",
        "month.multiple" => "1つのファイルに複数の対象年月が含まれています。",
        "name.extension" => "ファイル名の拡張子が正しくありません（.CSV）。",
        "name.format" => "ファイル名が標準仕様の付け方に合いません。",
        "name.kind" => "ファイル名のサービス種類コードが正しくありません。",
        "name.month_mismatch" => "ファイル名の対象年月と内容が一致しません。",
        "name.office" => "ファイル名の事業所番号が正しくありません。",
        "name.prefix" => "ファイル名の先頭（ファイルの種類）が標準仕様にありません。",
        "name.receiver_mismatch" => "ファイル名の送信先事業所と内容が一致しません。",
        "name.sender_mismatch" => "ファイル名の送信元事業所と内容が一致しません。",
        "name.stamp" => "ファイル名の作成日時（14桁）が正しくありません。",
        "name.unsafe" => "ファイル名に使えない文字が含まれています。",
        "name.ver3" => {
            "旧様式（Ver.3）のファイル名です。サービス種類コードの入ったVer.4の名前にしてください。"
        }
        "name.yyyymm" => "ファイル名の対象年月が正しくありません。",
        "office.check_digit" => "事業所番号の検証番号が合いません。番号を確かめてください。",
        "office.format" => "事業所番号の形式が正しくありません。",
        "sikyu.total_missing" => "区分支給限度管理の合計行がありません。",
        "spec.load" => {
            "様式の定義を読み込めませんでした。システムの不具合です。運用者に連絡してください。"
        }
        "unit.composition" => "ファイルの組み合わせが送信単位として正しくありません。",
        "unit.duplicate_file" => "同じファイルが2回含まれています。",
        "unit.empty" => "ファイルがありません。",
        "unit.file_missing" => "送信単位に必要なファイルが足りません。",
        "unit.image_missing" => "利用者基本情報に書かれた画像ファイルが含まれていません。",
        "unit.image_unreferenced" => "どこにも書かれていない画像ファイルが含まれています。",
        "unit.invalid" => "ファイルが1つの送信単位になっていません。",
        "unit.key_missing" => "ファイルの間で利用者（被保険者）の対応が取れません。",
        "unit.key_unmatched" => "他のファイルにない利用者・年月の組み合わせがあります。",
        "unit.mismatch" => "ファイルの間で送信元・送信先・作成日時が一致しません。",
        "unit.primary_missing" => {
            "送信単位の中心となるファイル（計画書・利用票など）がありません。"
        }
        "unit.supersedes" => {
            "差し替える送信が見つかりません。この事業所からこの送信先への送信を選んでください。"
        }
        "unit.unnamed_file" => "名前のないファイルがあります。",
        "unit.ver3_name" => {
            "旧様式（Ver.3）の名前のファイルがあります。Ver.4の名前にしてください。"
        }
        "version.mixed" => "複数のCSVバージョンが混ざっています。",
        "version.unsupported" => "対応していないCSVバージョンです。",
        "version.ver3" => "旧様式（Ver.3）のデータです。Ver.4.1の様式で検査しました。",
        "version.ver40" => {
            "Ver.4.0の値です。Ver.4.1で作成するよう、ソフトウェアの提供元に依頼してください。"
        }
        _ => "標準仕様に合わない箇所があります。",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule id the checks use has its own sentence (found by reading the sources).
    #[test]
    fn every_rule_of_the_checks_has_a_japanese_sentence() {
        let generic = rule_ja("no.such_rule");
        let sources = [
            include_str!("validate.rs"),
            include_str!("unit.rs"),
            include_str!("name.rs"),
            include_str!("decode.rs"),
            include_str!("finding.rs"),
            include_str!("format.rs"),
            include_str!("layout.rs"),
        ];
        let mut seen = 0;
        for src in sources {
            for part in src.split('"').skip(1).step_by(2) {
                let is_rule = part.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && part.len() < 32
                        && part.bytes().all(|c| {
                            c.is_ascii_lowercase() || c == b'.' || c == b'_' || c.is_ascii_digit()
                        })
                        && [
                            "csv", "date", "encoding", "field", "file", "findings", "format",
                            "image", "insured", "insurer", "kihon", "month", "name", "office",
                            "sikyu", "spec", "unit", "version",
                        ]
                        .contains(&a)
                });
                if is_rule {
                    seen += 1;
                    assert_ne!(
                        rule_ja(part),
                        generic,
                        "rule {part} has no Japanese sentence"
                    );
                }
            }
        }
        assert!(seen > 50, "only {seen} rule ids found in the sources");
    }
}
