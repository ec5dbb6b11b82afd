//! The monthly self-inspection in the console, in headless Chromium (MGMT-6): a department
//! manager answers the checklist (a "not OK" without what was found is refused and nothing
//! typed is lost), the secretariat signs it off, and an unanswered department shows as overdue
//! on the dashboard once the month is over.

use chrono::{TimeZone, Utc};
use mamori_core::types::Role;
use mamori_testkit::webdriver::Browser;
use mamori_testkit::{spawn_app, Backend, ADMIN_PASSWORD};
use serde_json::json;

async fn sign_in(b: &Browser, app: &mamori_testkit::TestApp, login: &str) {
    b.goto(&app.url("/login")).await;
    b.fill("#login", login).await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", login).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_inspection_and_sign_off() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for (code, name) in [("OPS", "入力センター"), ("HR", "人事部")] {
        assert!(app.post("/api/v1/departments", &json!({"code": code, "name": name})).await.status().is_success());
    }
    assert!(app.post("/api/v1/people", &json!({"employee_no": "M001", "name": "部門 責任者", "kind": "employee", "department": "OPS"})).await.status().is_success());
    app.user_with("mgr", &[Role::DeptManager]).await;
    app.user_with("sec", &[Role::Secretariat]).await;
    let users = app.json("/api/v1/users").await;
    let id = users.as_array().unwrap().iter().find(|u| u["login"] == "mgr").unwrap()["id"].as_i64().unwrap();
    let r = app.http.put(app.url(&format!("/api/v1/users/{id}/person"))).bearer_auth(&app.admin_token).json(&json!({"employee_no": "M001"})).send().await.unwrap();
    assert!(r.status().is_success());
    app.app.run_cycle().await.unwrap();
    let Some(b) = Browser::start().await else { return };

    // The department manager answers April's checklist.
    sign_in(&b, &app, "mgr").await;
    b.click("#nav-isms").await;
    assert!(b.wait_for_in("#task-table", "2026-04").await);
    let src = b.source().await;
    let link = src.split("id=\"task-inspection-OPS-2026-04\"").nth(1).and_then(|s| s.split("id=\"open-task-").nth(1)).and_then(|s| s.split('"').next()).unwrap().to_owned();
    b.click(&format!("#open-task-{link}")).await;
    assert!(b.wait_for_in("#item-table", "クリアデスク").await);
    for pos in 1..=5 {
        b.click(&format!("#r{pos}-ok")).await;
    }
    b.click("#r3-ng").await;
    b.click("#answer-submit").await;
    assert!(b.wait_for_in("#page-error", "item 3").await);
    // What was chosen is kept: only the comment is missing.
    let src = b.source().await;
    assert!(src.contains("id=\"r3-ng\" checked") && src.contains("id=\"r1-ok\" checked"), "answers kept");
    b.fill("#c3", "私物の鞄が持ち込まれていた。ロッカーへ移した").await;
    b.click("#answer-submit").await;
    assert!(b.wait_for_in("#task-state", "事務局確認待ち").await);
    assert!(!b.exists("#sign-form").await, "a department manager does not sign off");
    assert!(b.text("#item-table").await.contains("ロッカーへ移した"));
    b.click("#logout").await;

    // The secretariat checks and signs off.
    sign_in(&b, &app, "sec").await;
    b.goto(&app.url(&format!("/registers/tasks/{link}"))).await;
    b.fill("#sign-comment", "是正を確認しました").await;
    b.click("#sign-accept").await;
    assert!(b.wait_for_in("#task-signed", "sec").await);
    assert!(b.text("#task-state").await.contains("事務局確認済み"));

    // May 2: HR never answered; the dashboard shows it overdue, OPS not.
    app.clock.set(Utc.with_ymd_and_hms(2026, 5, 2, 0, 0, 0).unwrap());
    app.app.run_cycle().await.unwrap();
    // (A month later the session has long expired: sign in again.)
    sign_in(&b, &app, "sec").await;
    b.goto(&app.url("/registers/cycle")).await;
    assert!(b.wait_for_in("#overdue-table", "HR").await);
    let overdue = b.text("#overdue-table").await;
    assert!(overdue.contains("2026-04") && !overdue.contains("OPS"), "{overdue}");
    // And on the home dashboard.
    b.goto(&app.url("/")).await;
    assert!(b.wait_for_in("#dash-overdue", "自主点検 2026-04 HR").await);
    b.goto(&app.url("/registers/cycle")).await;

    // VENDOR-1: a vendor whose Privacy Mark expired cannot get a new contract (console).
    b.click("#to-vendors").await;
    b.fill("#vd-code", "SHRED").await;
    b.fill("#vd-name", "溶解処理株式会社").await;
    b.fill("#vd-number", "10800001(03)").await;
    b.set_value("#vd-expiry", "2026-03-31").await;
    b.click("#vd-nda").await;
    b.click("#vendor-submit").await;
    assert!(b.wait_for_in("#vendor-SHRED", "有効期限切れ").await);
    b.fill("#vendor-SHRED input[name=title]", "機密書類の溶解処理").await;
    b.set_value("#vendor-SHRED input[name=starts]", "2026-05-10").await;
    b.set_value("#vendor-SHRED input[name=ends]", "2027-03-31").await;
    for k in ["confidentiality", "resubcontracting", "incident_liability", "data_at_end", "audit_right"] {
        b.click(&format!("#vendor-SHRED input[name=clause_{k}]")).await;
    }
    b.click("#vendor-SHRED .contract-submit").await;
    assert!(b.wait_for_in("#page-error", "新しい契約は結べません").await);
    // Every register page opens in Japanese for the secretariat.
    for (path, h1) in [("/registers/soa", "適用宣言書"), ("/registers/people", "誓約書・教育の記録"), ("/registers/audits", "監査・マネジメントレビュー"),
        ("/registers/custody", "媒体・廃棄・保存期間"), ("/pledge", "誓約書と教育")] {
        b.goto(&app.url(path)).await;
        assert!(b.wait_for_in("h1", h1).await, "{path}");
    }
    b.goto(&app.url("/registers/soa")).await;
    assert!(b.wait_for_in("#soa-table", "A.8.34").await, "all of Annex A");
    // A person's page shows what they owe (HUMAN-1).
    b.goto(&app.url("/registers/people")).await;
    b.click("#person-M001").await;
    assert!(b.wait_for_in("#person-due", "入社時の誓約書が未提出").await);
    // The audit pack is an export: an old password check is asked again (SECURITY-BASELINE).
    app.clock.advance(chrono::Duration::minutes(4));
    b.goto(&app.url("/registers/cycle")).await;
    app.clock.advance(chrono::Duration::minutes(2));
    b.click("#pack-submit").await;
    assert!(b.wait_for_in("#page-error", "パスワードの再確認").await);
    assert!(b.exists("#reauth-card").await);
    b.fill("#reauth-password", ADMIN_PASSWORD).await;
    b.click("#reauth-submit").await;
    assert!(b.wait_for_in("h1", "ISMS運用").await);
    assert!(!b.exists("#reauth-card").await);
    if let Ok(dir) = std::env::var("MAMORI_SCREENSHOTS") {
        b.screenshot(&std::path::Path::new(&dir).join("isms.png")).await;
        b.goto(&app.url("/registers/soa")).await;
        b.screenshot(&std::path::Path::new(&dir).join("soa.png")).await;
    }
}
