//! The console in a real headless Chromium (issue 2): sign in, a failed sign-in, adding a zone
//! and a person, switching to English and back, and the idle lock (DATA-8), with the access
//! notice on the sign-in page (AUDIT-3).

use mamori_testkit::webdriver::Browser;
use mamori_testkit::{spawn_app, Backend, ADMIN_PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_day_one() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let Some(b) = Browser::start().await else { return };
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // Japanese by default, with the notice that access is recorded.
    b.goto(&app.url("/login")).await;
    assert!(b.text("#audit-notice").await.contains("記録"));
    assert!(b.source().await.contains("<html lang=\"ja\">"));

    // A failed sign-in shows an error and stays on the page.
    b.fill("#login", "admin").await;
    b.fill("#password", "not the password at all").await;
    b.click("#login-submit").await;
    assert!(b.text("#login-error").await.contains("正しくありません"));
    assert!(app.actions().await.iter().any(|a| a == "session.login_failed"));

    // Sign in.
    b.fill("#login", "admin").await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "管理者").await);
    b.screenshot(&shots.join("dashboard.png")).await;

    // Add a zone; a bad one shows its error next to the field.
    b.goto(&app.url("/places")).await;
    b.fill("#zone-code", "HS1").await;
    b.fill("#zone-name", "").await;
    b.click("#zone-submit").await;
    assert!(!b.text("#err-name").await.is_empty(), "error next to the name field");
    b.fill("#zone-code", "HS1").await;
    b.fill("#zone-name", "高セキュリティエリア1").await;
    b.select("#zone-level", "high").await;
    b.click("#zone-submit").await;
    assert!(b.wait_for_in("#zones-table", "高セキュリティエリア1").await);
    assert!(b.text("#zones-table").await.contains("高セキュリティエリア"));

    // Add a person.
    b.goto(&app.url("/people")).await;
    b.fill("#employee_no", "E0100").await;
    b.fill("#name", "田中 花子").await;
    b.select("#kind", "part_time").await;
    b.fill("#duties", "給与計算").await;
    b.click("#person-submit").await;
    assert!(b.wait_for_in("#people-table", "田中 花子").await);
    assert!(b.text("#people-table").await.contains("パート・アルバイト"));
    b.screenshot(&shots.join("people.png")).await;

    // English and back.
    b.click("#lang-switch").await;
    assert!(b.wait_for_text("Part-timer").await);
    assert_eq!(b.text("#nav-people").await, "People");
    b.click("#lang-switch").await;
    assert!(b.wait_for_text("パート・アルバイト").await);
    assert_eq!(b.text("#nav-people").await, "人員");

    // Idle lock: after 5 minutes without activity the console asks for the password again.
    app.clock.advance(chrono::Duration::minutes(6));
    b.goto(&app.url("/people")).await;
    assert!(b.url().await.ends_with("/lock"), "{}", b.url().await);
    assert!(b.text("#lock-title").await.contains("ロック"));
    b.fill("#password", "wrong wrong wrong").await;
    b.click("#unlock-submit").await;
    assert!(b.text("#lock-error").await.contains("正しくありません"));
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#unlock-submit").await;
    assert!(b.wait_for_in("#who", "管理者").await);
    b.goto(&app.url("/people")).await;
    assert!(b.text("#people-table").await.contains("田中 花子"));
    let actions = app.actions().await;
    for a in ["session.idle_lock", "session.unlock_failed", "session.unlock", "zone.create", "person.create"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing");
    }

    // The lock button locks at once; the password unlocks.
    b.click("#lock-now").await;
    assert!(b.text("#lock-title").await.contains("ロック"));
    b.goto(&app.url("/places")).await;
    assert!(b.url().await.ends_with("/lock"), "locked sessions see nothing else");
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#unlock-submit").await;
    assert!(b.wait_for_in("#who", "管理者").await);
    b.goto(&app.url("/lock")).await;
    assert!(!b.url().await.ends_with("/lock"), "GET /lock does not lock");

    // Roles are assigned in the console (a privilege change: recorded). The last password
    // check is older than 5 minutes: the console asks for the password first.
    app.app.create_user(None, "yamada", "山田 太郎", &[mamori_core::types::Role::Operator], ADMIN_PASSWORD).await.unwrap();
    app.clock.advance(chrono::Duration::minutes(4));
    b.goto(&app.url("/users")).await;
    app.clock.advance(chrono::Duration::minutes(2));
    b.select("#roles-user", "2").await;
    b.click("input[name=role_reception]").await;
    b.click("#roles-submit").await;
    b.fill("#reauth-password", ADMIN_PASSWORD).await;
    b.click("#reauth-submit").await;
    assert!(b.wait_for_in("#users-table", "山田 太郎").await);
    assert!(!b.text("#users-table").await.contains("受付・警備"), "nothing changed before the password check");
    b.select("#roles-user", "2").await;
    b.click("input[name=role_reception]").await;
    b.click("input[name=role_dept_manager]").await;
    b.click("#roles-submit").await;
    assert!(b.wait_for_in("#users-table", "部門責任者").await);
    assert!(b.text("#users-table").await.contains("受付・警備"));
    assert!(app.actions().await.iter().any(|a| a == "user.roles_set"));

    // The ledger page verifies on demand (htmx partial).
    b.goto(&app.url("/ledger")).await;
    b.click("#verify-now").await;
    assert!(b.text("#verify-ok").await.contains("検証成功"));
    b.screenshot(&shots.join("ledger.png")).await;
}

/// Passkeys (issue 2 item 5): a signed-in user registers one from the console, signs out, and
/// signs in again with the passkey alone; all of it in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_registration_and_sign_in() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let Some(b) = Browser::start().await else { return };
    b.goto(&app.localhost_url("/login")).await;
    b.add_virtual_authenticator().await;
    // No passkey yet: refused, and recorded.
    b.fill("#login", "admin").await;
    b.click("#passkey-login").await;
    assert!(b.wait_for_text("wrong login").await, "a clear refusal");
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "管理者").await);
    b.goto(&app.localhost_url("/account")).await;
    b.fill("#passkey-name", "受付PCの指紋").await;
    b.click("#passkey-register").await;
    assert!(b.wait_for_in("#passkeys-table", "受付PCの指紋").await, "{}", b.text("#passkey-status").await);
    b.click("#logout").await;
    b.fill("#login", "admin").await;
    b.click("#passkey-login").await;
    for _ in 0..50 {
        if b.exists("#who").await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b.wait_for_in("#who", "管理者").await, "{}", b.source().await.chars().take(2000).collect::<String>());
    let logins = app.json("/api/v1/ledger/events?action=session.login").await;
    assert!(logins.as_array().unwrap().iter().any(|e| e["event"]["detail"]["second_factor"] == "passkey"));
    let actions = app.actions().await;
    assert!(actions.iter().any(|a| a == "user.passkey_added"));
    assert!(app.json("/api/v1/ledger/events?action=session.login_failed").await.as_array().unwrap().iter().any(|e| e["event"]["outcome"]["rule"] == "no-passkey"));
}
