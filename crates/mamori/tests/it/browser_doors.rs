//! A day at the doors from the console, in headless Chromium (issue 4): the reception guard
//! registers an escorted visitor on the tablet screen, a tailgating alarm appears live on the
//! monitor and is acknowledged with a comment, occupancy and the muster list are right, the
//! visitor leaves without returning the card; the security office adds a door.

use mamori_testkit::webdriver::Browser;
use mamori_testkit::{spawn_app, Backend, ADMIN_PASSWORD};
use serde_json::json;

use crate::doors::{centre, present, E1};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reception_and_monitor() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let c = centre(&app).await;
    let Some(b) = Browser::start().await else { return };
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    b.goto(&app.url("/login")).await;
    b.fill("#login", "guard").await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "guard").await);

    // Reception: a visit without a host is refused next to the field, nothing is lost.
    b.click("#nav-visitors").await;
    b.fill("#visit-name", "来訪 次郎").await;
    b.fill("#visit-company", "委託元A社").await;
    b.fill("#visit-purpose", "定期監査").await;
    b.click("input[name=zones][value=ENT]").await;
    b.click("input[name=zones][value=WORK]").await;
    b.set_value("#visit-from", "2026-04-01T09:00").await;
    b.set_value("#visit-to", "2026-04-01T12:00").await;
    b.fill("#visit-card", "04C0FFEE").await;
    b.click("#visit-submit").await;
    assert!(!b.text("#err-host").await.is_empty(), "error next to the host field");
    assert!(!b.find("#visit-name").await.is_empty(), "the form is still there");
    assert!(b.source().await.contains("来訪 次郎"), "the form keeps what was typed");
    b.fill("#visit-host", "E1").await;
    b.set_value("#visit-from", "2026-04-01T09:00").await;
    b.set_value("#visit-to", "2026-04-01T12:00").await;
    b.fill("#visit-card", "04C0FFEE").await;
    b.click("#visit-submit").await;
    assert!(b.wait_for_in("#visits-table", "来訪 次郎").await);
    assert!(b.text("#visits-table").await.contains("山田 太郎"));
    b.screenshot(&shots.join("reception.png")).await;

    // The host badges in, the visitor follows; two people pass on one grant at the staff door.
    assert!(present(&app, &c, "R-ENT-IN", E1).await["allowed"].as_bool().unwrap());
    assert!(present(&app, &c, "R-ENT-IN", "mifare:04C0FFEE").await["allowed"].as_bool().unwrap());
    assert!(present(&app, &c, "R-WORK-IN", E1).await["allowed"].as_bool().unwrap());
    let now = mamori_core::clock::Clock::now(&app.clock);
    let r = app.post_as(&c.agent, "/api/v1/doors/reports", &json!([{"type": "passage", "at": now, "door": "D-WORK", "count": 2}])).await;
    assert!(r.status().is_success());

    // The monitor shows it live; acknowledging needs a comment.
    b.click("#nav-monitor").await;
    assert!(b.wait_for_in("#alarms", "共連れ").await, "tailgating alarm shown");
    let id = app.get("/api/v1/alarms?open=true").await.json::<serde_json::Value>().await.unwrap()[0]["id"].as_i64().unwrap();
    b.click(&format!("#ack-{id}")).await;
    assert!(b.wait_for_in(&format!("#err-ack-{id}"), "").await);
    assert!(!b.text(&format!("#err-ack-{id}")).await.is_empty(), "comment required");
    b.fill(&format!("#ack-comment-{id}"), "映像で確認。同僚が共連れ、本人に注意済み").await;
    b.click(&format!("#ack-{id}")).await;
    assert!(b.wait_for_in("#alarms", "未確認の警報はありません").await, "{}", b.text("#alarms").await);
    assert!(b.text("#occupancy-table").await.contains("来訪 次郎"));
    assert!(b.wait_for_in("#events", "door.enter").await);
    b.screenshot(&shots.join("monitor.png")).await;

    // Muster list: the host and the visitor, recorded.
    b.click("#muster-link").await;
    assert!(b.wait_for_in("#muster-table", "山田 太郎").await);
    assert!(b.text("#muster-table").await.contains("来訪 次郎"));
    assert!(app.actions().await.contains(&"muster.print".to_owned()));

    // The visitor leaves without the card: it stops working and the list says so.
    b.click("#nav-visitors").await;
    let visit = app.get_as(&c.reception, "/api/v1/visits").await.json::<serde_json::Value>().await.unwrap()[0]["id"].as_i64().unwrap();
    b.click(&format!("#checkout-lost-{visit}")).await;
    assert!(b.wait_for_in("#visits-table", "カード未返却").await);
    assert_eq!(present(&app, &c, "R-ENT-OUT", "mifare:04C0FFEE").await["rule"], "credential-revoked");

    // The security office (admin here): a bad card number is refused by the field; a lost card
    // ended on the credentials page stops at once.
    b.click("#logout").await;
    b.goto(&app.url("/login")).await;
    b.fill("#login", "admin").await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    assert!(b.wait_for_in("#who", "管理者").await);
    b.click("#nav-credentials").await;
    b.fill("#cred-emp", "E3").await;
    b.select("#cred-kind", "felica").await;
    b.fill("#cred-number", "12AB").await;
    b.click("#cred-submit").await;
    assert!(!b.text("#err-number").await.is_empty(), "error next to the number");
    b.fill("#cred-q", "E3").await;
    b.click("#cred-q ~ button").await;
    assert!(b.wait_for_in("#cred-table", "2122232425262728").await);
    b.select("#cred-table select[name=status]", "lost").await;
    b.fill("#cred-table input[name=reason]", "紛失届（本人申告）").await;
    b.click("#cred-table button.danger").await;
    assert!(b.wait_for_in("#cred-table", "紛失").await);
    assert_eq!(present(&app, &c, "R-ENT-IN", crate::doors::E3).await["rule"], "credential-revoked");

    // ... and adds a door; a bad one shows its error by the field.
    b.click("#nav-doors").await;
    b.fill("#door-code", "bad code!").await;
    b.fill("#door-name", "通用口").await;
    b.click("#door-submit").await;
    assert!(!b.text("#err-door_code").await.is_empty());
    b.fill("#door-code", "D-SIDE").await;
    b.select("#door-inside", "ENT").await;
    b.click("#door-submit").await;
    assert!(b.wait_for_in("#doors-table", "D-SIDE").await);
    assert!(b.text("#readers-table").await.contains("ICカード＋手のひら静脈"));
    b.screenshot(&shots.join("doors.png")).await;
}
