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
    let (ciso, agent, holder, _colleague) = secure_room(&app).await;
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
    b.click("#nav-vault").await;
    b.click("#vault-CARD-APP").await;
    // Key in a record through the form.
    b.fill("#f-app_no", "A-0001").await;
    b.fill("#f-name", "顧客 一郎").await;
    b.fill("#f-card", "4111 1111 1111 1234").await;
    b.click("#record-submit").await;
    assert!(b.wait_for_in("#records-table", "**** **** **** 1234").await);
    assert!(!b.text("#records-table").await.contains("4111 1111 1111 1234"));
    let uid: String = sqlx::query_as::<_, (String,)>("SELECT uid FROM vault_records").fetch_one(&app.app.db.pool).await.unwrap().0;
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
