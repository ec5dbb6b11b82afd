//! Management registers (issue 6, first part): the asset register (MGMT-3) — entries with C/I/A
//! and their value, Excel-friendly export, imports with bad rows refused whole, who may keep it.

use mamori_core::types::Role;
use mamori_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends! {
    registers_asset_register => asset_register;
    registers_risk_assessment => risk_assessment;
    registers_incident_clock => incident_clock;
    registers_policy_documents => policy_documents;
}

async fn asset_register(app: TestApp) {
    let ok = |r: reqwest::Response| async move {
        let s = r.status();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{s}: {b}");
        b
    };
    ok(app.post("/api/v1/departments", &json!({"code": "OPS", "name": "入力センター"})).await).await;
    ok(app.post("/api/v1/zones", &json!({"code": "HS", "name": "高セキュリティエリア", "level": "high"})).await).await;
    let sec = app.user_with("sec", &[Role::Secretariat]).await;
    let op = app.user_with("op", &[Role::Operator]).await;
    let asset = json!({"department": "OPS", "name": "カード申込書（紙）", "owner": "業務責任者 佐藤", "zone": "HS", "medium": "紙",
                       "c": 3, "i": 2, "a": 1, "personal": true, "retention": "受領後1年", "disposal": "溶解処理"});
    // Who keeps it: the ISMS roles, not operators.
    assert_eq!(app.post_as(&op, "/api/v1/assets", &asset).await.status(), 403);
    assert_eq!(app.get_as(&op, "/api/v1/assets").await.status(), 403);
    ok(app.post_as(&sec, "/api/v1/assets", &asset).await).await;
    assert_eq!(app.post_as(&sec, "/api/v1/assets", &asset).await.status(), 409, "the same asset twice");
    let mut bad = asset.clone();
    bad["c"] = json!(4);
    let s = app.post_as(&sec, "/api/v1/assets", &bad).await.status().as_u16();
    assert!([400, 422].contains(&s), "a rating of 4 is refused: {s}");
    let mut bad = asset.clone();
    bad["name"] = json!("x");
    bad["my_number"] = json!(true);
    bad["personal"] = json!(false);
    assert_eq!(app.post_as(&sec, "/api/v1/assets", &bad).await.status(), 422, "My Numbers are personal data");
    let list = ok(app.get_as(&sec, "/api/v1/assets").await).await;
    assert_eq!(list[0]["value"], 3, "max(C, I, A)");

    // Import: a bad row (rating 5 on line 3) rejects the file; nothing is written.
    let header = "部署,情報資産,管理責任者,保管場所,媒体,機密性,完全性,可用性,個人情報,マイナンバー,要配慮個人情報,保存期間,廃棄方法\n";
    let rows = "OPS,給与計算データ,業務責任者 鈴木,HS,サーバ,3,3,2,有,有,無,7年,データ消去\nOPS,入館記録,総務 田中,,電子,2,2,5,有,無,無,1年以上,削除\n";
    let sjis = encoding_rs::SHIFT_JIS.encode(&format!("{header}{rows}")).0.into_owned();
    let r = app.with_terminal(app.http.post(app.url("/api/v1/assets/import"))).bearer_auth(&sec).body(sjis).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["line"], 3, "{body}");
    assert_eq!(ok(app.get_as(&sec, "/api/v1/assets").await).await.as_array().unwrap().len(), 1);
    // An unknown department is named with its line too.
    let r = app.http.post(app.url("/api/v1/assets/import")).bearer_auth(&sec).body(format!("{header}NOPE,x,y,,紙,1,1,1,無,無,無,1年,廃棄\n")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["line"], 2);
    let good = rows.replace(",2,2,5,", ",2,2,1,");
    let sjis = encoding_rs::SHIFT_JIS.encode(&format!("{header}{good}")).0.into_owned();
    let r = app.http.post(app.url("/api/v1/assets/import")).bearer_auth(&sec).body(sjis).send().await.unwrap();
    assert_eq!(ok(r).await["imported"], 2);

    // Export for Excel: BOM, the import's header, the flags as 有/無; it imports again elsewhere.
    let csv = app.get_as(&sec, "/api/v1/assets/export").await.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}'));
    assert!(csv.contains(header.trim()) && csv.contains("OPS,給与計算データ,業務責任者 鈴木,HS,サーバ,3,3,2,有,有,無,7年,データ消去"), "{csv}");
    let acts = app.actions().await;
    assert!(acts.contains(&"asset.create".to_owned()) && acts.contains(&"asset.import".to_owned()));
}

/// The asset register in the console (Chromium): a bad rating is named, a good entry listed
/// with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_register_in_console() {
    use mamori_testkit::webdriver::Browser;
    let app = mamori_testkit::spawn_app(mamori_testkit::Backend::Sqlite).await.unwrap();
    assert!(app.post("/api/v1/departments", &json!({"code": "OPS", "name": "入力センター"})).await.status().is_success());
    app.user_with("sec", &[Role::Secretariat]).await;
    let Some(b) = Browser::start().await else { return };
    b.goto(&app.url("/login")).await;
    b.fill("#login", "sec").await;
    b.fill("#password", mamori_testkit::ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "sec").await);
    b.click("#nav-registers").await;
    for (id, v) in [("#as-department", "OPS"), ("#as-name", "委託元名簿"), ("#as-owner", "事務局 山本"), ("#as-medium", "電子"), ("#as-c", "3"), ("#as-i", "2"), ("#as-a", "9"), ("#as-retention", "契約終了まで"), ("#as-disposal", "データ消去")] {
        b.fill(id, v).await;
    }
    b.click("#as-personal").await;
    b.click("#asset-submit").await;
    assert!(b.wait_for_in("#page-error", "a: 1, 2 or 3").await);
    // Nothing typed is lost: only the wrong field is corrected.
    assert!(b.source().await.contains("委託元名簿"));
    b.fill("#as-a", "1").await;
    b.click("#asset-submit").await;
    assert!(b.wait_for_in("#asset-table", "委託元名簿").await);
    assert!(b.text("#asset-table").await.contains("事務局 山本"));
    // Its risk, assessed on the risk page: 3 × 2 × 3 = 18, medium; the assessor cannot accept it.
    b.click("#to-risks").await;
    for (id, v) in [("#rk-t", "2"), ("#rk-v", "3"), ("#rk-controls", "宛先のダブルチェック"), ("#rk-rt", "2"), ("#rk-rv", "1")] {
        b.fill(id, v).await;
    }
    b.click("#risk-submit").await;
    assert!(b.wait_for_in("#risk-table", "18 (中)").await);
    assert!(b.text("#risk-table").await.contains("6 (低)"));
    b.click("#accept-1").await;
    assert!(b.wait_for_in("#page-error", "自分が評価したリスクは受容できません").await);
    // A policy document drafted in the console waits for the CISO.
    b.goto(&app.url("/registers/documents")).await;
    b.fill("#doc-code", "PPP").await;
    b.fill("#doc-title-in", "個人情報保護方針").await;
    b.fill("#doc-body", "当社は個人情報を適切に取り扱います。").await;
    b.click("#doc-submit").await;
    assert!(b.wait_for_in("#doc-PPP", "見直し期限切れ").await);
    b.click("#doc-approve-PPP").await;
    assert!(b.wait_for_in("#page-error", "CISO だけ").await);
}

/// MGMT-4: the seed's worked example (asset value 3 from C/I/A 3/2/1, threat 2, vulnerability 3:
/// 18, medium), the IPA method, residual risk, configurable bands, an extended catalogue, and an
/// acceptance signed by someone other than the assessor.
async fn risk_assessment(app: TestApp) {
    let ok = |r: reqwest::Response| async move {
        let s = r.status();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{s}: {b}");
        b
    };
    ok(app.post("/api/v1/departments", &json!({"code": "OPS", "name": "入力センター"})).await).await;
    let sec = app.user_with("sec", &[Role::Secretariat]).await;
    let ciso = app.user_with("ciso", &[Role::Ciso]).await;
    let aud = app.user_with("aud", &[Role::Auditor]).await;
    let asset = ok(app.post_as(&sec, "/api/v1/assets", &json!({"department": "OPS", "name": "カード申込書", "owner": "佐藤", "medium": "紙",
        "c": 3, "i": 2, "a": 1, "personal": true, "retention": "1年", "disposal": "溶解"})).await).await["id"].as_i64().unwrap();
    let assess = |method: &str, t: u8, v: u8, rt: u8, rv: u8, threat: &str| json!({"asset": asset, "threat": threat, "vulnerability": "V-CHECK", "method": method,
        "threat_rating": t, "vulnerability_rating": v, "controls": "ダブルチェック", "residual_threat": rt, "residual_vulnerability": rv});
    let id = ok(app.post_as(&sec, "/api/v1/risk/assessments", &assess("seed", 2, 3, 2, 1, "T-MISSEND")).await).await["id"].as_i64().unwrap();
    let list = ok(app.get_as(&aud, "/api/v1/risk/assessments").await).await;
    assert_eq!((list[0]["value"].as_i64(), list[0]["level"].as_str()), (Some(18), Some("medium")));
    assert_eq!((list[0]["residual_value"].as_i64(), list[0]["residual_level"].as_str()), (Some(6), Some("low")));
    // Threat 3 × vulnerability 3 on value 3: 27, high.
    ok(app.post_as(&sec, "/api/v1/risk/assessments", &assess("seed", 3, 3, 3, 3, "T-LOSS")).await).await;
    assert_eq!(ok(app.get_as(&sec, "/api/v1/risk/assessments").await).await[0]["level"], "high");
    // The IPA method: importance 3 × likelihood(threat 3, vulnerability 2) = 3 × 2 = 6.
    ok(app.post_as(&sec, "/api/v1/risk/assessments", &assess("ipa", 3, 2, 1, 1, "T-INSIDER")).await).await;
    let all = ok(app.get_as(&sec, "/api/v1/risk/assessments").await).await;
    let ipa = all.as_array().unwrap().iter().find(|r| r["method"] == "ipa").unwrap();
    assert_eq!((ipa["value"].as_i64(), ipa["residual_value"].as_i64()), (Some(6), Some(3)));
    // Unknown catalogue entries are refused; the catalogue grows; bands are the centre's own.
    assert_eq!(app.post_as(&sec, "/api/v1/risk/assessments", &assess("seed", 2, 3, 2, 1, "T-NOPE")).await.status(), 422);
    assert_eq!(app.post_as(&sec, "/api/v1/risk/catalogue", &json!({"kind": "threat", "code": "T-FAX", "name": "FAX の誤送信"})).await.status(), 201);
    ok(app.post_as(&sec, "/api/v1/risk/assessments", &assess("seed", 1, 1, 1, 1, "T-FAX")).await).await;
    let r = app.http.put(app.url("/api/v1/risk/bands")).bearer_auth(&sec).json(&json!({"medium_from": 6, "high_from": 16})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let list = ok(app.get_as(&sec, "/api/v1/risk/assessments").await).await;
    let first = list.as_array().unwrap().iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(first["level"], "high", "18 is high with bands 16–27");
    let r = app.http.put(app.url("/api/v1/risk/bands")).bearer_auth(&sec).json(&json!({"medium_from": 20, "high_from": 10})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    // Acceptance: not by its assessor, not twice, not by a reader.
    assert_eq!(app.post_as(&sec, &format!("/api/v1/risk/assessments/{id}/accept"), &json!({})).await.status(), 403);
    assert_eq!(app.post_as(&aud, &format!("/api/v1/risk/assessments/{id}/accept"), &json!({})).await.status(), 403);
    assert_eq!(app.post_as(&ciso, &format!("/api/v1/risk/assessments/{id}/accept"), &json!({})).await.status(), 204);
    assert_eq!(app.post_as(&ciso, &format!("/api/v1/risk/assessments/{id}/accept"), &json!({})).await.status(), 409);
    let list = ok(app.get_as(&sec, "/api/v1/risk/assessments").await).await;
    assert_eq!(list.as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()["accepted_by"], "ciso");
    let acts = app.actions().await;
    for a in ["risk.assess", "risk.accept", "risk.bands", "risk.catalogue"] {
        assert!(acts.contains(&a.to_owned()), "{a}");
    }
}

/// INC-1, INC-2: any member of staff reports (console or API) at any hour; the security office
/// triages; the APPI clock shows the grounds and the Japan-time deadlines from the moment the
/// centre learnt of it (test clock), the processor route, and the nine-item draft.
async fn incident_clock(app: TestApp) {
    let ok = |r: reqwest::Response| async move {
        let s = r.status();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{s}: {b}");
        b
    };
    let op = app.user_with("op", &[Role::Operator]).await;
    let im = app.user_with("im", &[Role::InfoManager]).await;
    let agent = app.user_with("agent", &[Role::DoorAgent]).await;
    let report = json!({"title": "申込書の誤送付", "summary": "委託元Aの申込書控えを別の委託元に送付", "reporter": "オペレーター 田中 (内線 123)"});
    assert_eq!(app.post_as(&agent, "/api/v1/incidents", &report).await.status(), 403);
    // The test clock starts 2026-04-01 00:00 UTC (09:00 JST): day 1 is April 1.
    let id = ok(app.post_as(&op, "/api/v1/incidents", &report).await).await["id"].as_i64().unwrap();
    assert_eq!(app.get_as(&op, &format!("/api/v1/incidents/{id}")).await.status(), 403, "reporters do not read the register");
    let future = json!({"title": "x", "summary": "y", "reporter": "z", "known_at": "2030-01-01T00:00:00Z"});
    assert_eq!(app.post_as(&op, "/api/v1/incidents", &future).await.status(), 422);
    let v = ok(app.get_as(&im, &format!("/api/v1/incidents/{id}")).await).await;
    assert_eq!(v["clock"]["reportable"], false, "nothing known yet");
    let triage = |facts: Value| {
        let app = &app;
        let im = im.clone();
        async move {
            let r = app.http.put(app.url(&format!("/api/v1/incidents/{id}/triage"))).bearer_auth(&im)
                .json(&json!({"facts": facts, "items": "氏名、カード番号", "cause": "封入時の取り違え"})).send().await.unwrap();
            assert_eq!(r.status(), 204);
            ok(app.get_as(&im, &format!("/api/v1/incidents/{id}")).await).await
        }
    };
    let v = triage(json!({"financial_damage": true, "people": 3, "processor": true})).await;
    assert_eq!(v["clock"]["grounds"], json!(["financial_damage"]));
    assert_eq!(v["clock"]["preliminary_by"], "2026-04-05T14:59:59.999Z");
    assert_eq!(v["clock"]["final_by"], "2026-04-30T14:59:59.999Z");
    assert_eq!(v["clock"]["processor_may_notify_client"], true);
    let draft = v["draft"].as_str().unwrap();
    assert!(draft.contains("(3) 漏えい等が発生し、又は発生したおそれがある個人データに係る本人の数: 3人") && draft.contains("(4) 原因: 封入時の取り違え") && draft.contains("(9)"), "{draft}");
    let v = triage(json!({"improper_purpose": true, "my_number": true, "people": 2})).await;
    assert_eq!(v["clock"]["grounds"], json!(["improper_purpose", "my_number_improper_purpose"]));
    assert_eq!(v["clock"]["final_by"], "2026-05-30T14:59:59.999Z", "60 days");
    let v = triage(json!({"sensitive": true, "people": 5000, "highly_encrypted": true})).await;
    assert_eq!(v["clock"]["reportable"], false, "high encryption exempts");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 4);
    let r = app.http.put(app.url(&format!("/api/v1/incidents/{id}/triage"))).bearer_auth(&op).json(&json!({"facts": {}})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let acts = app.actions().await;
    assert!(acts.contains(&"incident.report".to_owned()) && acts.contains(&"incident.triage".to_owned()));
}

/// The incident intake and its APPI clock in the console (Chromium).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_in_console() {
    use mamori_testkit::webdriver::Browser;
    let app = mamori_testkit::spawn_app(mamori_testkit::Backend::Sqlite).await.unwrap();
    app.user_with("im", &[Role::InfoManager]).await;
    let Some(b) = Browser::start().await else { return };
    b.goto(&app.url("/login")).await;
    b.fill("#login", "im").await;
    b.fill("#password", mamori_testkit::ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "im").await);
    b.click("#nav-incidents").await;
    b.fill("#in-title", "USB メモリの紛失").await;
    b.fill("#in-summary", "給与データを含む USB メモリを社外で紛失").await;
    b.fill("#in-reporter", "事務局 山本").await;
    b.click("#incident-submit").await;
    assert!(b.wait_for_in("#appi-reportable", "報告対象ではありません").await);
    b.fill("#tr-people", "1200").await;
    b.fill("#tr-cause", "持ち出し管理の不備").await;
    b.click("#triage-submit").await;
    assert!(b.wait_for_in("#appi-reportable", "1,000人超").await);
    assert!(b.text("#appi-final").await.contains("2026-04-30"), "{}", b.text("#appi-final").await);
    assert!(b.text("#appi-draft").await.contains("1200人"));
    b.fill("#tr-people", "many").await;
    b.click("#triage-submit").await;
    assert!(b.wait_for_in("#page-error", "people").await);
}

/// MGMT-1: the policy set, versioned, approved by the CISO (never their own draft), and a review
/// overdue a year after the last approval (test clock).
async fn policy_documents(app: TestApp) {
    let sec = app.user_with("sec", &[Role::Secretariat]).await;
    let ciso = app.user_with("ciso", &[Role::Ciso]).await;
    let draft = json!({"code": "ISP", "title": "情報セキュリティ基本方針", "body": "当社は、お客様からお預かりした情報を…"});
    let r = app.post_as(&sec, "/api/v1/policy-documents", &draft).await;
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 1);
    assert_eq!(app.post_as(&sec, "/api/v1/policy-documents", &json!({"code": "ISP", "title": "x", "body": " "})).await.status(), 422);
    let (s1, s2) = (
        app.post_as(&sec, "/api/v1/policy-documents/ISP/versions/1/approve", &json!({})).await.status(),
        app.post_as(&ciso, "/api/v1/policy-documents/ISP/versions/1/approve", &json!({})).await.status(),
    );
    assert_eq!((s1.as_u16(), s2.as_u16()), (403, 204), "only the CISO approves");
    let list: Value = app.get_as(&sec, "/api/v1/policy-documents").await.json().await.unwrap();
    assert_eq!((list[0]["version"].as_i64(), list[0]["overdue"].as_bool(), list[0]["draft"].is_null()), (Some(1), Some(false), true));
    // The CISO's own revision needs another approver (none here: it stays a draft).
    let r = app.post_as(&ciso, "/api/v1/policy-documents", &json!({"code": "ISP", "title": "情報セキュリティ基本方針", "body": "改訂版"})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 2);
    let r = app.post_as(&ciso, "/api/v1/policy-documents/ISP/versions/2/approve", &json!({})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["rule"], "nobody-approves-own-draft");
    app.clock.advance(chrono::Duration::days(366));
    let list: Value = app.get_as(&sec, "/api/v1/policy-documents").await.json().await.unwrap();
    assert_eq!((list[0]["version"].as_i64(), list[0]["draft"].as_i64(), list[0]["overdue"].as_bool()), (Some(1), Some(2), Some(true)));
    let acts = app.actions().await;
    assert!(acts.contains(&"policy_doc.draft".to_owned()) && acts.contains(&"policy_doc.approve".to_owned()));
}
