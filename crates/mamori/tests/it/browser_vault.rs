//! The vault in the console, in headless Chromium (issue 5, first part): masked records, a
//! reveal that needs a purpose, a standing holder granting and revoking a colleague's access on
//! the access-holder list, and a colleague outside the room seeing nothing.

use mamori_testkit::webdriver::Browser;
use mamori_testkit::{spawn_app, Backend, ADMIN_PASSWORD};
use serde_json::json;

use crate::vault::secure_room;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reveal_and_grant() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (ciso, agent, _holder, _colleague) = secure_room(&app).await;
    let r = app.post_as(&ciso, "/api/v1/vault/CARD-APP/fields", &json!([
        {"name": "app_no", "label": "申込番号", "sensitivity": "normal"},
        {"name": "name", "label": "氏名", "sensitivity": "personal"},
        {"name": "card", "label": "カード番号", "sensitivity": "card_number"}
    ])).await;
    assert_eq!(r.status(), 201);
    assert_eq!(app.post_as(&ciso, "/api/v1/vault/CARD-APP/holders", &json!({"login": "holder"})).await.status(), 201);
    let r = app.post_as(&agent, "/api/v1/doors/decide", &json!({"reader": "IN", "card": "felica:0102030405060700"})).await;
    assert!(r.status().is_success());
    let Some(b) = Browser::start().await else { return };

    b.goto(&app.url("/login")).await;
    b.fill("#login", "holder").await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "holder").await);
    // Outside a registered terminal nothing opens; the device key is installed on this browser.
    b.goto(&app.url("/vault/CARD-APP")).await;
    assert!(b.wait_for_in("#records-error", "登録された端末").await);
    enrol(&b, &app).await;
    b.click("#nav-vault").await;
    b.click("#vault-CARD-APP").await;
    // Key in a record through the form.
    b.fill("#f-app_no", "A-0001").await;
    b.fill("#f-name", "顧客 一郎").await;
    b.fill("#f-card", "4111 1111 1111 1234").await;
    b.click("#record-submit").await;
    assert!(b.wait_for_in("#records-table", "**** **** **** 1234").await);
    assert!(!b.text("#records-table").await.contains("4111 1111 1111 1234"));
    // A Shift_JIS file with a bad row is refused with its line number; a good one comes in.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, encoding_rs::SHIFT_JIS.encode("申込番号,氏名,カード番号\nA-0002,顧客 二郎,12ab\n").0).unwrap();
    b.fill("#vault-import-file", bad.to_str().unwrap()).await;
    b.click("#vault-import-submit").await;
    assert!(b.wait_for_in("#page-error", "行 2").await);
    let good = dir.path().join("good.csv");
    std::fs::write(&good, encoding_rs::SHIFT_JIS.encode("申込番号,氏名,カード番号\nA-0002,顧客 二郎,4111111111112222\n").0).unwrap();
    b.fill("#vault-import-file", good.to_str().unwrap()).await;
    b.click("#vault-import-submit").await;
    assert!(b.wait_for_in("#page-notice", "取り込んだ件数: 1").await);
    assert!(b.wait_for_in("#records-table", "**** **** **** 2222").await);
    let uid: String = sqlx::query_as::<_, (String,)>("SELECT uid FROM vault_records WHERE normal LIKE '%A-0001%'").fetch_one(&app.app.db.pool).await.unwrap().0;
    // A reveal without a purpose says why not; with one, the value replaces the mask.
    b.click(&format!("#reveal-{uid}-card")).await;
    assert!(b.wait_for_in("#reveal-error", "purpose").await);
    b.goto(&app.url("/vault/CARD-APP")).await;
    b.fill(&format!("#purpose-{uid}-card"), "申込内容の照合").await;
    b.click(&format!("#reveal-{uid}-card")).await;
    assert!(b.wait_for_in("#revealed", "4111 1111 1111 1234").await);
    // Grant the colleague two hours of viewing, then revoke it at once.
    b.fill("#grant-login", "colleague").await;
    b.click("#op-view").await;
    b.fill("#grant-purpose", "繁忙期の照合応援").await;
    b.click("#grant-submit").await;
    assert!(b.wait_for_in("#grants-table", "繁忙期の照合応援").await);
    let gid: i64 = sqlx::query_as::<_, (i64,)>("SELECT id FROM vault_grants").fetch_one(&app.app.db.pool).await.unwrap().0;
    b.click(&format!("#revoke-{gid}")).await;
    assert!(b.wait_for_in(&format!("#grant-{gid}"), "取消済").await);
    let acts = app.actions().await;
    for a in ["vault.grant", "vault.grant_revoke"] {
        assert!(acts.contains(&a.to_owned()), "{a}");
    }
    // The colleague, not in the room and without a grant, sees no records.
    b.click("#logout").await;
    b.goto(&app.url("/login")).await;
    b.fill("#login", "colleague").await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "colleague").await);
    b.goto(&app.url("/vault/CARD-APP")).await;
    assert!(b.wait_for_in("#records-error", "高セキュリティエリア").await);
    assert!(!b.source().await.contains("A-0001"));
}

/// Installs the tests' terminal device key in the browser (DATA-7), a wrong key refused first.
async fn enrol(b: &Browser, app: &mamori_testkit::TestApp) {
    b.goto(&app.url("/terminals")).await;
    assert!(b.wait_for_in("#this-terminal", "登録端末ではありません").await);
    b.fill("#enrol-key", "mt_wrong").await;
    b.click("#enrol-submit").await;
    assert!(b.wait_for_in("#page-error", "有効な登録端末のものではありません").await);
    b.fill("#enrol-key", &app.terminal().unwrap()).await;
    b.click("#enrol-submit").await;
    assert!(b.wait_for_in("#this-terminal", "T-HS-1").await);
}

async fn login(b: &Browser, app: &mamori_testkit::TestApp, who: &str) {
    b.goto(&app.url("/login")).await;
    b.fill("#login", who).await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", who).await);
}

/// Double entry in the console (DATA-10): two operators key the same form, neither sees the
/// other's entry, the mismatch goes to a third person who decides it on its own page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_entry_in_console() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (ciso, op1, _op2, _checker) = crate::vault::three_in_the_room(&app).await;
    let r = app.http.put(app.url("/api/v1/vault/CARD-APP/double-entry")).bearer_auth(&ciso).json(&json!({"on": true})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = app.post_as(&op1, "/api/v1/vault/CARD-APP/grants", &json!({"login": "checker", "ops": ["view", "change"], "purpose": "不一致の判定", "hours": 2})).await;
    assert!(r.status().is_success());
    let Some(b) = Browser::start().await else { return };

    let key_in = |phone: &'static str| {
        let b = &b;
        async move {
            b.click("#nav-vault").await;
            b.click("#vault-CARD-APP").await;
            b.fill("#form_no", "F-1").await;
            b.fill("#f-app_no", "F-1").await;
            b.fill("#f-name", "顧客 一郎").await;
            b.fill("#f-phone", phone).await;
            b.click("#record-submit").await;
        }
    };
    login(&b, &app, "holder").await;
    enrol(&b, &app).await;
    key_in("090-1111-2222").await;
    assert!(b.wait_for_in("#page-notice", "別の担当者の入力を待っています").await);
    b.click("#logout").await;

    login(&b, &app, "colleague").await;
    b.click("#nav-vault").await;
    b.click("#vault-CARD-APP").await;
    assert!(!b.source().await.contains("090-1111-2222"), "the first entry is not shown to the second operator");
    key_in("090-1111-2223").await;
    assert!(b.wait_for_in("#page-notice", "第三者の判定に回しました").await);
    assert!(b.wait_for_in("#mismatch-table", "phone").await);
    // The second operator cannot open the decision page.
    b.click("#resolve-F-1").await;
    assert!(b.wait_for_in("#page-error", "入力した二人以外").await);
    assert!(!b.source().await.contains("090-1111-2222"));
    b.goto(&app.url("/vault/CARD-APP")).await;
    b.click("#logout").await;

    login(&b, &app, "checker").await;
    b.click("#nav-vault").await;
    b.click("#vault-CARD-APP").await;
    b.click("#resolve-F-1").await;
    assert!(b.wait_for_in("#entry-table", "090-1111-2222").await);
    assert!(b.text("#entry-table").await.contains("090-1111-2223"));
    b.fill("#f-phone", "090-1111-2222").await;
    b.click("#resolve-submit").await;
    assert!(b.wait_for_in("#page-notice", "判定を反映").await);
    assert!(b.wait_for_in("#records-table", "F-1").await);
    let acts = app.actions().await;
    for a in ["data.entry_first", "data.entry_mismatch", "data.entry_review", "data.entry_resolve"] {
        assert!(acts.contains(&a.to_owned()), "{a}");
    }

    // Contract end: the CISO deletes everything from the console, after typing the code again,
    // and gets the deletion certificate as a PDF (LIFE-3, LIFE-7).
    b.click("#logout").await;
    login(&b, &app, "ciso").await;
    b.goto(&app.url("/vault/CARD-APP")).await;
    b.fill("#delete-reason", "契約終了").await;
    b.fill("#delete-confirm", "CARD").await;
    b.click("#delete-submit").await;
    assert!(b.wait_for_in("#page-error", "何も削除していません").await);
    b.fill("#delete-reason", "契約終了").await;
    b.fill("#delete-confirm", "CARD-APP").await;
    b.click("#delete-submit").await;
    assert!(b.wait_for_in("#page-notice", "データ削除証明書を発行しました").await);
    assert!(b.source().await.contains("/deletion-certificates/1/pdf"));
    let pdf = app.get_as(&ciso, "/api/v1/deletion-certificates/1/pdf").await.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF") && mamori_core::pdf::note_of_pdf(&pdf).unwrap().contains("records: 1"));
}
