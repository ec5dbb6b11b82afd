//! The control catalogue of the statement of applicability (MGMT-4, MGMT-8): the 93 controls
//! of ISO/IEC 27001:2022 Annex A (JIS Q 27001:2023), in four themes, and the requirements of
//! JIS Q 15001:2023 Annex A for personal information. IDs follow the standards; titles are
//! short descriptions in the project's own words (not the standards' text), in Japanese and
//! English. Each control names the live evidence mamori keeps for it (`evidence::Kind`).

/// One control of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub id: &'static str,
    /// `org`, `people`, `physical`, `tech` (ISO) or `pms` (JIS Q 15001).
    pub theme: &'static str,
    pub ja: &'static str,
    pub en: &'static str,
    /// Evidence kinds (see `evidence`) that show the control working.
    pub evidence: &'static [&'static str],
}

macro_rules! c {
    ($id:literal, $th:literal, $ja:literal, $en:literal $(, $ev:literal)*) => {
        Control { id: $id, theme: $th, ja: $ja, en: $en, evidence: &[$($ev),*] }
    };
}

pub const CONTROLS: &[Control] = &[
    c!("A.5.1", "org", "情報セキュリティのための方針群", "Security policies", "policy_documents"),
    c!("A.5.2", "org", "情報セキュリティの役割と責任", "Security roles and responsibilities"),
    c!("A.5.3", "org", "職務の分離", "Separation of duties", "access_holders"),
    c!("A.5.4", "org", "経営陣の責任", "What management must do"),
    c!("A.5.5", "org", "関係当局との連絡", "Contact with authorities", "incidents"),
    c!("A.5.6", "org", "専門組織との連絡", "Contact with special interest groups"),
    c!("A.5.7", "org", "脅威インテリジェンス", "Threat intelligence"),
    c!("A.5.8", "org", "プロジェクトにおける情報セキュリティ", "Security in projects"),
    c!("A.5.9", "org", "情報資産の目録", "Inventory of information and assets", "asset_inventory"),
    c!("A.5.10", "org", "情報資産の許容される利用", "Acceptable use of assets", "self_inspections"),
    c!("A.5.11", "org", "資産の返却", "Return of assets", "leaver_revocation"),
    c!("A.5.12", "org", "情報の分類", "Classifying information", "asset_inventory"),
    c!("A.5.13", "org", "情報のラベル付け", "Labelling information"),
    c!("A.5.14", "org", "情報の転送", "Transferring information", "media_handover", "copy_control"),
    c!("A.5.15", "org", "アクセス制御", "Access control", "access_holders"),
    c!("A.5.16", "org", "識別情報の管理", "Managing identities", "leaver_revocation"),
    c!("A.5.17", "org", "認証情報", "Authentication information"),
    c!("A.5.18", "org", "アクセス権", "Access rights", "access_holders", "grant_expiry"),
    c!("A.5.19", "org", "供給者関係における情報セキュリティ", "Security with suppliers", "vendors"),
    c!("A.5.20", "org", "供給者との合意におけるセキュリティ", "Security in supplier agreements", "vendors"),
    c!("A.5.21", "org", "ICTサプライチェーンのセキュリティ", "Security of the ICT supply chain"),
    c!("A.5.22", "org", "供給者サービスの監視とレビュー", "Monitoring supplier services", "vendors"),
    c!("A.5.23", "org", "クラウドサービス利用のセキュリティ", "Security of cloud services"),
    c!("A.5.24", "org", "インシデント管理の計画と準備", "Planning incident management", "incidents"),
    c!("A.5.25", "org", "セキュリティ事象の評価と決定", "Assessing security events", "door_alarms", "incidents"),
    c!("A.5.26", "org", "インシデントへの対応", "Responding to incidents", "incidents"),
    c!("A.5.27", "org", "インシデントからの学習", "Learning from incidents", "incidents"),
    c!("A.5.28", "org", "証拠の収集", "Collecting evidence", "ledger_verification"),
    c!("A.5.29", "org", "事業中断時の情報セキュリティ", "Security during disruption"),
    c!("A.5.30", "org", "事業継続のためのICTの備え", "ICT readiness for continuity", "backups"),
    c!("A.5.31", "org", "法令・規制・契約上の要求事項", "Legal and contractual requirements"),
    c!("A.5.32", "org", "知的財産権", "Intellectual property"),
    c!("A.5.33", "org", "記録の保護", "Protecting records", "ledger_verification", "backups"),
    c!("A.5.34", "org", "プライバシーと個人情報の保護", "Privacy and personal data", "access_holders", "data_log_review"),
    c!("A.5.35", "org", "情報セキュリティの独立したレビュー", "Independent review of security", "internal_audits"),
    c!("A.5.36", "org", "方針・規則・標準の順守", "Compliance with policies and rules", "self_inspections", "internal_audits"),
    c!("A.5.37", "org", "操作手順書", "Documented operating procedures", "policy_documents"),
    c!("A.6.1", "people", "選考", "Screening"),
    c!("A.6.2", "people", "雇用条件", "Terms of employment", "pledges"),
    c!("A.6.3", "people", "情報セキュリティの意識向上・教育・訓練", "Awareness, education and training", "training", "drills"),
    c!("A.6.4", "people", "懲戒手続", "Disciplinary process"),
    c!("A.6.5", "people", "雇用終了・変更後の責任", "Duties after leaving or changing job", "leaver_revocation", "pledges"),
    c!("A.6.6", "people", "秘密保持契約", "Confidentiality agreements", "pledges"),
    c!("A.6.7", "people", "リモートワーク", "Remote working"),
    c!("A.6.8", "people", "情報セキュリティ事象の報告", "Reporting security events", "incidents"),
    c!("A.7.1", "physical", "物理的セキュリティ境界", "Physical perimeters", "door_alarms"),
    c!("A.7.2", "physical", "物理的入退", "Physical entry", "entry_log_review"),
    c!("A.7.3", "physical", "オフィス・部屋・施設のセキュリティ", "Securing offices and rooms"),
    c!("A.7.4", "physical", "物理的セキュリティの監視", "Monitoring physical security", "door_alarms", "entry_log_review"),
    c!("A.7.5", "physical", "物理的・環境的脅威からの保護", "Physical and environmental threats"),
    c!("A.7.6", "physical", "セキュリティを保つべき領域での作業", "Working in secure areas", "self_inspections"),
    c!("A.7.7", "physical", "クリアデスク・クリアスクリーン", "Clear desk and clear screen", "self_inspections"),
    c!("A.7.8", "physical", "装置の設置と保護", "Siting and protecting equipment"),
    c!("A.7.9", "physical", "構外にある資産のセキュリティ", "Assets off the premises"),
    c!("A.7.10", "physical", "記憶媒体", "Storage media", "media_handover", "disposals"),
    c!("A.7.11", "physical", "サポートユーティリティ", "Supporting utilities"),
    c!("A.7.12", "physical", "ケーブル配線のセキュリティ", "Cabling"),
    c!("A.7.13", "physical", "装置の保守", "Equipment maintenance"),
    c!("A.7.14", "physical", "装置のセキュリティを保った処分・再利用", "Secure disposal or re-use of equipment", "disposals"),
    c!("A.8.1", "tech", "利用者エンドポイント機器", "User endpoint devices", "terminals", "self_inspections"),
    c!("A.8.2", "tech", "特権的アクセス権", "Privileged access", "access_holders"),
    c!("A.8.3", "tech", "情報へのアクセス制限", "Restricting access to information", "access_holders", "grant_expiry"),
    c!("A.8.4", "tech", "ソースコードへのアクセス", "Access to source code"),
    c!("A.8.5", "tech", "セキュリティを保った認証", "Secure authentication"),
    c!("A.8.6", "tech", "容量・能力の管理", "Capacity management"),
    c!("A.8.7", "tech", "マルウェアに対する保護", "Protection against malware"),
    c!("A.8.8", "tech", "技術的ぜい弱性の管理", "Technical vulnerabilities"),
    c!("A.8.9", "tech", "構成管理", "Configuration management"),
    c!("A.8.10", "tech", "情報の削除", "Deleting information", "deletion_certificates", "disposals"),
    c!("A.8.11", "tech", "データマスキング", "Data masking", "data_log_review"),
    c!("A.8.12", "tech", "データ漏えいの防止", "Preventing data leakage", "copy_control"),
    c!("A.8.13", "tech", "情報のバックアップ", "Information backup", "backups"),
    c!("A.8.14", "tech", "情報処理施設の冗長性", "Redundancy of facilities"),
    c!("A.8.15", "tech", "ログ取得", "Logging", "ledger_verification", "entry_log_review", "data_log_review"),
    c!("A.8.16", "tech", "監視活動", "Monitoring activities", "data_log_review", "door_alarms"),
    c!("A.8.17", "tech", "クロックの同期", "Clock synchronisation"),
    c!("A.8.18", "tech", "特権的なユーティリティプログラムの使用", "Privileged utility programs"),
    c!("A.8.19", "tech", "運用システムへのソフトウェアの導入", "Installing software on operational systems"),
    c!("A.8.20", "tech", "ネットワークのセキュリティ", "Network security"),
    c!("A.8.21", "tech", "ネットワークサービスのセキュリティ", "Security of network services"),
    c!("A.8.22", "tech", "ネットワークの分離", "Separating networks"),
    c!("A.8.23", "tech", "ウェブフィルタリング", "Web filtering"),
    c!("A.8.24", "tech", "暗号の利用", "Use of cryptography", "encryption"),
    c!("A.8.25", "tech", "セキュリティに配慮した開発のライフサイクル", "Secure development life cycle"),
    c!("A.8.26", "tech", "アプリケーションのセキュリティ要求事項", "Application security requirements"),
    c!("A.8.27", "tech", "セキュリティに配慮したシステムアーキテクチャ", "Secure architecture and engineering"),
    c!("A.8.28", "tech", "セキュリティに配慮したコーディング", "Secure coding"),
    c!("A.8.29", "tech", "開発・受入れにおけるセキュリティテスト", "Security testing"),
    c!("A.8.30", "tech", "外部委託による開発", "Outsourced development"),
    c!("A.8.31", "tech", "開発・テスト・本番環境の分離", "Separating development, test and production"),
    c!("A.8.32", "tech", "変更管理", "Change management"),
    c!("A.8.33", "tech", "テスト用情報", "Test information"),
    c!("A.8.34", "tech", "監査におけるシステムの保護", "Protecting systems during audit tests"),
    // JIS Q 15001:2023 (Privacy Mark): the personal-information requirements.
    c!("P.A.3.2", "pms", "個人情報保護方針", "Personal information protection policy", "policy_documents"),
    c!("P.A.3.3.1", "pms", "個人情報の特定", "Identifying personal information", "asset_inventory"),
    c!("P.A.3.3.2", "pms", "法令・国が定める指針その他の規範", "Laws, guidelines and norms"),
    c!("P.A.3.3.3", "pms", "リスクアセスメント及びリスク対策", "Risk assessment and treatment", "risk_assessment"),
    c!("P.A.3.3.4", "pms", "資源・役割・責任及び権限", "Resources, roles and authority"),
    c!("P.A.3.3.5", "pms", "内部規程", "Internal rules", "policy_documents"),
    c!("P.A.3.3.6", "pms", "計画策定", "Planning", "objectives"),
    c!("P.A.3.3.7", "pms", "緊急事態への準備", "Preparing for emergencies", "incidents"),
    c!("P.A.3.4.2.1", "pms", "利用目的の特定", "Specifying the purpose of use"),
    c!("P.A.3.4.2.2", "pms", "適正な取得", "Proper acquisition"),
    c!("P.A.3.4.2.3", "pms", "要配慮個人情報", "Sensitive personal information", "asset_inventory"),
    c!("P.A.3.4.2.4", "pms", "取得に際しての本人への通知等", "Notice when acquiring"),
    c!("P.A.3.4.2.6", "pms", "利用に関する措置", "Measures on use", "data_log_review"),
    c!("P.A.3.4.2.8", "pms", "個人データの提供に関する措置", "Measures on providing personal data", "media_handover"),
    c!("P.A.3.4.3.1", "pms", "正確性の確保", "Keeping data accurate"),
    c!("P.A.3.4.3.2", "pms", "安全管理措置", "Security measures", "access_holders", "encryption", "copy_control"),
    c!("P.A.3.4.3.3", "pms", "従業者の監督", "Supervising workers", "pledges", "training"),
    c!("P.A.3.4.3.4", "pms", "委託先の監督", "Supervising processors", "vendors"),
    c!("P.A.3.4.4", "pms", "個人情報に関する本人の権利", "Rights of the individual"),
    c!("P.A.3.4.5", "pms", "認識", "Awareness", "training", "drills"),
    c!("P.A.3.5", "pms", "文書化した情報（記録）の管理", "Documented information and records", "ledger_verification"),
    c!("P.A.3.6", "pms", "苦情及び相談への対応", "Complaints and enquiries"),
    c!("P.A.3.7.1", "pms", "運用の確認", "Checking operations", "self_inspections", "objectives"),
    c!("P.A.3.7.2", "pms", "内部監査", "Internal audit", "internal_audits"),
    c!("P.A.3.7.3", "pms", "マネジメントレビュー", "Management review", "internal_audits"),
    c!("P.A.3.8", "pms", "是正処置", "Corrective action", "internal_audits"),
];

pub fn control(id: &str) -> Option<&'static Control> {
    CONTROLS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_a_has_93_controls_in_four_themes() {
        let n = |t: &str| CONTROLS.iter().filter(|c| c.theme == t).count();
        assert_eq!((n("org"), n("people"), n("physical"), n("tech")), (37, 8, 14, 34));
        let mut ids: Vec<_> = CONTROLS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CONTROLS.len(), "ids are unique");
        for c in CONTROLS {
            for e in c.evidence {
                assert!(crate::registers::evidence::KINDS.contains(e), "{} names unknown evidence {e}", c.id);
            }
        }
    }
}
