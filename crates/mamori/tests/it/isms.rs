//! The ISMS cycle (issue 6): a month's cycle with a test clock (tasks created, answered, signed
//! off, overdue flagged, reminder mail through a local SMTP sink; MGMT-5, MGMT-6), evidence
//! states computed from real ledger events (MGMT-8), the SoA, vendors blocked by an expired
//! certificate and the My Number three-stage audit (VENDOR-1..3), pledges and training with the
//! grant block (HUMAN-1..3), audits (MGMT-7), chain of custody (LIFE-6, PHY-11) and the audit
//! pack. Both SQLite and PostgreSQL.

use chrono::{Duration, TimeZone, Utc};
use mamori_core::types::Role;
use mamori_testkit::smtp::SmtpSink;
use mamori_testkit::{both_backends, Backend, TestApp};
use serde_json::{json, Value};

both_backends! {
    isms_vendors => vendors;
    isms_people_records => people_records;
    isms_audits_custody_pack => audits_custody_pack;
}

async fn ok(r: reqwest::Response) -> Value {
    let s = r.status();
    let b: Value = r.json().await.unwrap_or(Value::Null);
    assert!(s.is_success(), "{s}: {b}");
    b
}

async fn status(r: reqwest::Response) -> u16 {
    r.status().as_u16()
}

/// A member of staff with an account linked to their person, in a department.
async fn staff(app: &TestApp, login: &str, no: &str, dept: &str, roles: &[Role]) -> String {
    ok(app.post("/api/v1/people", &json!({"employee_no": no, "name": format!("{login}さん"), "kind": "employee", "department": dept})).await).await;
    let token = app.user_with(login, roles).await;
    let users = app.json("/api/v1/users").await;
    let id = users.as_array().unwrap().iter().find(|u| u["login"] == login).unwrap()["id"].as_i64().unwrap();
    let r = app.http.put(app.url(&format!("/api/v1/users/{id}/person"))).bearer_auth(&app.admin_token).json(&json!({"employee_no": no})).send().await.unwrap();
    assert!(r.status().is_success());
    token
}

async fn put_as(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    app.http.put(app.url(path)).bearer_auth(token).json(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_cycle_sqlite() {
    monthly_cycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_cycle_postgres() {
    monthly_cycle(Backend::Postgres).await;
}

/// MGMT-5, MGMT-6, MGMT-3: a month of the cycle with a test clock.
async fn monthly_cycle(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let Some(app) = mamori_testkit::spawn_app_with(backend, move |o| {
        o.mailer = Some(mamori_core::mail::Mailer::new(&url, "mamori <mamori@example.jp>").unwrap());
    })
    .await
    else {
        return;
    };
    for (code, name) in [("OPS", "入力センター"), ("HR", "人事部")] {
        ok(app.post("/api/v1/departments", &json!({"code": code, "name": name})).await).await;
    }
    let sec = staff(&app, "sec", "S001", "OPS", &[Role::Secretariat]).await;
    let mgr = staff(&app, "mgr", "M001", "OPS", &[Role::DeptManager]).await;
    let _hr = staff(&app, "hrmgr", "H001", "HR", &[Role::DeptManager]).await;
    for (login, mail) in [("sec", "sec@example.jp"), ("mgr", "mgr@example.jp"), ("hrmgr", "hr@example.jp")] {
        assert_eq!(status(put_as(&app, &app.admin_token, &format!("/api/v1/users/{login}/email"), &json!({"email": mail})).await).await, 204);
    }
    assert_eq!(status(put_as(&app, &app.admin_token, "/api/v1/users/sec/email", &json!({"email": "not an address"})).await).await, 422);
    ok(app.post_as(&sec, "/api/v1/objectives", &json!({"title": "入退室記録の月次確認", "measure": "確認した月の割合", "target": "100%", "owner": "総務部長"})).await).await;
    // A treatment action adds its own check item to next month's checklists.
    ok(app.post_as(&sec, "/api/v1/treatments", &json!({"control": "A.7.4", "action": "防犯カメラ映像の保存期間を確認する", "owner": "総務",
        "due": "2027-03-31", "check_item": "防犯カメラの映像が3か月保存されている"})).await).await;
    assert_eq!(status(app.post_as(&sec, "/api/v1/treatments", &json!({"control": "X.9", "action": "x", "owner": "y", "due": "2027-01-01"})).await).await, 422);

    // April 1 (the test clock's start): the month's tasks appear, once.
    let created = app.app.run_cycle().await.unwrap();
    assert_eq!(created, 2 + 1 + 2, "an inspection per department, the objectives' review, a re-inventory per department");
    assert_eq!(app.app.run_cycle().await.unwrap(), 0, "idempotent");
    let tasks = ok(app.get_as(&sec, "/api/v1/tasks").await).await;
    let find = |kind: &str, scope: &str| tasks.as_array().unwrap().iter().find(|t| t["kind"] == kind && t["scope"] == scope).unwrap()["id"].as_i64().unwrap();
    let (ops, hr, obj) = (find("inspection", "OPS"), find("inspection", "HR"), find("objective_review", "*"));
    let view = ok(app.get_as(&mgr, &format!("/api/v1/tasks/{ops}")).await).await;
    let items = view["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "the five seeded check items (PHY-12) and the new one");
    assert!(items.iter().any(|i| i["question"].as_str().unwrap().contains("クリアデスク")));
    assert!(items.iter().any(|i| i["question"] == "防犯カメラの映像が3か月保存されている"));

    // Answers: every item; "not OK" needs what was found; only one's own department.
    let mut answers: Vec<Value> = items.iter().map(|i| json!({"pos": i["pos"], "result": "ok"})).collect();
    answers[2] = json!({"pos": 3, "result": "ng"});
    let r = put_as(&app, &mgr, &format!("/api/v1/tasks/{ops}/answers"), &json!(answers)).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "item-3");
    answers[2] = json!({"pos": 3, "result": "ng", "comment": "私物の鞄が1つ持ち込まれていた。本人に注意済み"});
    assert_eq!(status(put_as(&app, &mgr, &format!("/api/v1/tasks/{hr}/answers"), &json!(answers)).await).await, 403, "another department's checklist");
    assert_eq!(status(put_as(&app, &mgr, &format!("/api/v1/tasks/{ops}/answers"), &json!(&answers[..3])).await).await, 422, "all items");
    assert_eq!(status(put_as(&app, &mgr, &format!("/api/v1/tasks/{ops}/answers"), &json!(answers)).await).await, 204);
    // The secretariat signs off; the department manager cannot.
    assert_eq!(status(app.post_as(&mgr, &format!("/api/v1/tasks/{ops}/sign-off"), &json!({"accept": true})).await).await, 403);
    assert_eq!(status(app.post_as(&sec, &format!("/api/v1/tasks/{ops}/sign-off"), &json!({"accept": false})).await).await, 422, "a return says why");
    ok(app.post_as(&sec, &format!("/api/v1/tasks/{ops}/sign-off"), &json!({"accept": false, "comment": "是正内容を記入してください"})).await).await;
    let t = ok(app.get_as(&mgr, &format!("/api/v1/tasks/{ops}")).await).await;
    assert_eq!(t["task"]["state"], "open");
    assert_eq!(t["task"]["returned_comment"], "是正内容を記入してください");
    answers[2]["comment"] = json!("私物の鞄が1つ持ち込まれていた。ロッカーへ移し、朝礼で再周知した");
    assert_eq!(status(put_as(&app, &mgr, &format!("/api/v1/tasks/{ops}/answers"), &json!(answers)).await).await, 204);
    assert_eq!(status(app.post_as(&sec, &format!("/api/v1/tasks/{ops}/sign-off"), &json!({"accept": true, "comment": "確認しました"})).await).await, 204);
    assert_eq!(status(put_as(&app, &mgr, &format!("/api/v1/tasks/{ops}/answers"), &json!(answers)).await).await, 409, "signed off: closed");
    // The secretariat answers the objectives' review; it then needs someone else to sign.
    let oview = ok(app.get_as(&sec, &format!("/api/v1/tasks/{obj}")).await).await;
    let oans: Vec<Value> = oview["items"].as_array().unwrap().iter().map(|i| json!({"pos": i["pos"], "result": "ok"})).collect();
    assert_eq!(status(put_as(&app, &sec, &format!("/api/v1/tasks/{obj}/answers"), &json!(oans)).await).await, 204);
    assert_eq!(status(app.post_as(&sec, &format!("/api/v1/tasks/{obj}/sign-off"), &json!({"accept": true})).await).await, 403, "not one's own answers");
    assert!(ok(app.get_as(&sec, "/api/v1/tasks?overdue=true").await).await.as_array().unwrap().is_empty(), "nothing is due yet");

    // May 2: HR never answered April's checklist; the objectives' review waits for sign-off.
    app.clock.set(Utc.with_ymd_and_hms(2026, 5, 2, 0, 0, 0).unwrap());
    app.app.cycle_jobs().await.unwrap();
    let overdue = ok(app.get_as(&sec, "/api/v1/tasks?overdue=true").await).await;
    let over: Vec<(String, String)> = overdue.as_array().unwrap().iter().map(|t| (t["kind"].as_str().unwrap().to_owned(), t["scope"].as_str().unwrap().to_owned())).collect();
    assert!(over.contains(&("inspection".into(), "HR".into())) && over.contains(&("objective_review".into(), "*".into())), "{over:?}");
    assert!(!over.contains(&("inspection".into(), "OPS".into())));
    let mail = sink.received();
    let to: Vec<&str> = mail.iter().flat_map(|m| m.rcpt.iter().map(String::as_str)).collect();
    assert!(to.contains(&"hr@example.jp"), "the HR manager is reminded: {to:?}");
    assert!(to.contains(&"sec@example.jp"), "the secretariat is reminded of the sign-off: {to:?}");
    assert!(!to.contains(&"mgr@example.jp"), "OPS is done: {to:?}");
    assert!(mail.iter().all(|m| m.data.contains("Subject:")));
    // Reminders are not repeated within three days; May's tasks exist now.
    app.app.cycle_jobs().await.unwrap();
    assert_eq!(sink.received().len(), mail.len());
    assert!(ok(app.get_as(&sec, "/api/v1/tasks").await).await.as_array().unwrap().iter().any(|t| t["period"] == "2026-05" && t["scope"] == "OPS"));

    // Evidence from what was recorded: April's inspections 1 of 2, HR missing.
    let ev = ok(app.get_as(&sec, "/api/v1/evidence?from=2026-04-01&to=2026-04-30").await).await;
    let e = ev["evidence"].as_array().unwrap().iter().find(|e| e["kind"] == "self_inspections").unwrap().clone();
    assert_eq!(e["state"], "partial", "{e}");
    assert!(e["en"].as_str().unwrap().contains("1 of 2") && e["en"].as_str().unwrap().contains("HR 2026-04"), "{e}");
    let acts = app.actions().await;
    for a in ["task.create", "task.answer", "task.return", "task.sign_off", "task.overdue", "objective.add", "treatment.add"] {
        assert!(acts.contains(&a.to_owned()), "{a} in the ledger");
    }
}

/// MGMT-8: evidence states computed from real ledger events (entry-log reviews, ledger
/// verifications), and the SoA showing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_from_the_ledger() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = mamori_testkit::spawn_app(backend).await else { continue };
        let ciso = app.user_with("ciso", &[Role::Ciso]).await;
        // Fiscal 2026 starts on April 1; on July 2 three months have ended.
        app.clock.set(Utc.with_ymd_and_hms(2026, 7, 2, 0, 0, 0).unwrap());
        let soa = ok(app.get_as(&ciso, "/api/v1/soa").await).await;
        let controls = soa["controls"].as_array().unwrap();
        assert_eq!(controls.iter().filter(|c| c["id"].as_str().unwrap().starts_with("A.")).count(), 93);
        let a72 = controls.iter().find(|c| c["id"] == "A.7.2").unwrap();
        assert_eq!(a72["state"], "missing");
        assert!(a72["evidence"][0]["en"].as_str().unwrap().contains("0 of 3 months (missing: 2026-04, 2026-05, 2026-06)"), "{a72}");
        // Review April's and June's entry logs (the real sign-off, recorded in the ledger).
        let admin_reviews = |from: &str, to: &str| json!({"kind": "entry", "from": from, "to": to, "comment": "確認済み"});
        let lr = app.user_with("lr", &[Role::Ciso]).await;
        for (f, t) in [("2026-04-01", "2026-05-01"), ("2026-06-01", "2026-07-01")] {
            let r = app.post_as(&lr, "/api/v1/ledger/reviews", &admin_reviews(f, t)).await;
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
        let ev = ok(app.get_as(&ciso, "/api/v1/evidence").await).await;
        let get = |k: &str| ev["evidence"].as_array().unwrap().iter().find(|e| e["kind"] == k).unwrap().clone();
        let e = get("entry_log_review");
        assert_eq!(e["state"], "partial");
        assert!(e["en"].as_str().unwrap().contains("2 of 3 months (missing: 2026-05)"), "{e}");
        assert!(e["ja"].as_str().unwrap().contains("2/3か月（未確認: 2026-05）"), "{e}");
        assert_eq!(get("ledger_verification")["state"], "missing");
        ok(app.post_as(&lr, "/api/v1/ledger/verify", &json!({})).await).await;
        let ev2 = ok(app.get_as(&ciso, "/api/v1/evidence").await).await;
        let v = ev2["evidence"].as_array().unwrap().iter().find(|e| e["kind"] == "ledger_verification").unwrap().clone();
        assert_eq!(v["state"], "ok", "{v}");
        // SoA decisions need a justification; they are recorded.
        assert_eq!(status(put_as(&app, &ciso, "/api/v1/soa/A.8.30", &json!({"applicable": false, "justification": ""})).await).await, 422);
        assert_eq!(status(put_as(&app, &ciso, "/api/v1/soa/A.8.30", &json!({"applicable": false, "justification": "開発を外部委託していない"})).await).await, 204);
        assert_eq!(status(put_as(&app, &ciso, "/api/v1/soa/Z.1", &json!({"applicable": true, "justification": "x"})).await).await, 404);
        let soa = ok(app.get_as(&ciso, "/api/v1/soa?from=2026-04-01&to=2026-06-30").await).await;
        let c = soa["controls"].as_array().unwrap().iter().find(|c| c["id"] == "A.8.30").unwrap().clone();
        assert_eq!(c["applicable"], false);
        assert!(app.actions().await.contains(&"soa.set".to_owned()));
    }
}

/// VENDOR-1..3: an expired certificate blocks a new contract; the five clauses, the NDA and
/// the client's approval are required; My Number work goes through the three-stage audit.
async fn vendors(app: TestApp) {
    let sec = app.user_with("sec", &[Role::Secretariat]).await;
    ok(app.post("/api/v1/clients", &json!({"code": "CARDCO", "name": "カード会社"})).await).await;
    // The test clock is 2026-04-01.
    ok(app.post_as(&sec, "/api/v1/vendors", &json!({"code": "SHRED", "name": "溶解処理株式会社", "cert_kind": "pmark", "cert_number": "10800001(03)",
        "cert_expiry": "2026-03-31", "nda": true})).await).await;
    let all = ["confidentiality", "resubcontracting", "incident_liability", "data_at_end", "audit_right"];
    let contract = json!({"title": "機密書類の溶解処理", "client": "CARDCO", "client_approval": "カード会社 山田様 2026-03-20 書面承認",
        "my_number": false, "clauses": all, "starts": "2026-04-01", "ends": "2027-03-31"});
    let r = app.post_as(&sec, "/api/v1/vendors/SHRED/contracts", &contract).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["rule"], "vendor-certificate-expired");
    let v = ok(app.get_as(&sec, "/api/v1/vendors").await).await;
    assert_eq!(v[0]["cert_expired"], true);
    ok(put_as(&app, &sec, "/api/v1/vendors/SHRED/certificate", &json!({"cert_number": "10800001(04)", "cert_expiry": "2028-03-31"})).await).await;
    let mut bad = contract.clone();
    bad["clauses"] = json!(["confidentiality", "audit_right"]);
    let r = app.post_as(&sec, "/api/v1/vendors/SHRED/contracts", &bad).await;
    assert_eq!(r.status(), 422);
    assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("resubcontracting"));
    let mut bad = contract.clone();
    bad["client_approval"] = json!("");
    assert_eq!(status(app.post_as(&sec, "/api/v1/vendors/SHRED/contracts", &bad).await).await, 422, "the client's approval");
    ok(app.post_as(&sec, "/api/v1/vendors/SHRED/contracts", &contract).await).await;

    // My Number: before the contract, before work starts, after it starts.
    ok(app.post_as(&sec, "/api/v1/vendors", &json!({"code": "PAYX", "name": "給与計算サービス", "cert_kind": "isms", "cert_number": "IS 000000",
        "cert_expiry": "2028-01-31", "nda": true})).await).await;
    let mut mn = contract.clone();
    mn["my_number"] = json!(true);
    mn["title"] = json!("年末調整（マイナンバー）");
    let r = app.post_as(&sec, "/api/v1/vendors/PAYX/contracts", &mn).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["rule"], "my-number-audit-before-contract");
    ok(app.post_as(&sec, "/api/v1/vendors/PAYX/audits", &json!({"stage": "before_contract", "audited_on": "2026-03-25", "passed": true, "notes": "安全管理措置を確認"})).await).await;
    let id = ok(app.post_as(&sec, "/api/v1/vendors/PAYX/contracts", &mn).await).await["id"].as_i64().unwrap();
    let r = app.post_as(&sec, &format!("/api/v1/contracts/{id}/start"), &json!({})).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["rule"], "my-number-audit-before-work");
    assert_eq!(status(app.post_as(&sec, "/api/v1/vendors/PAYX/audits", &json!({"stage": "after_start", "contract": id, "audited_on": "2026-04-01", "passed": true})).await).await, 409);
    ok(app.post_as(&sec, "/api/v1/vendors/PAYX/audits", &json!({"stage": "before_work", "contract": id, "audited_on": "2026-04-01", "passed": true})).await).await;
    assert_eq!(status(app.post_as(&sec, &format!("/api/v1/contracts/{id}/start"), &json!({})).await).await, 204);
    ok(app.post_as(&sec, "/api/v1/vendors/PAYX/audits", &json!({"stage": "after_start", "contract": id, "audited_on": "2026-05-10", "passed": true})).await).await;
    let v = ok(app.get_as(&sec, "/api/v1/vendors").await).await;
    let payx = v.as_array().unwrap().iter().find(|v| v["code"] == "PAYX").unwrap();
    assert_eq!(payx["contracts"][0]["stages"], json!([true, true, true]));
    assert_eq!(payx["audit_due"], false);
    let acts = app.actions().await;
    assert!(acts.contains(&"vendor.contract".to_owned()) && acts.contains(&"vendor.audit".to_owned()));
}

/// HUMAN-1..3: pledges against versioned texts, training due rules, drills; flags on the
/// person's records; the grant block when the centre turns it on.
async fn people_records(app: TestApp) {
    ok(app.post("/api/v1/departments", &json!({"code": "OPS", "name": "入力センター"})).await).await;
    let sec = staff(&app, "sec", "S001", "OPS", &[Role::Secretariat]).await;
    let op = staff(&app, "op", "E001", "OPS", &[Role::Operator]).await;
    // Dispatched staff sign too.
    ok(app.post("/api/v1/people", &json!({"employee_no": "D001", "name": "派遣 花子", "kind": "dispatched", "department": "OPS"})).await).await;
    let me = ok(app.get_as(&op, "/api/v1/me/records").await).await;
    assert_eq!(me["pledge_next"], "hire");
    assert_eq!(me["flagged"], true);
    assert_eq!(status(app.post_as(&op, "/api/v1/pledges", &json!({"kind": "hire", "version": 1})).await).await, 404, "no text yet");
    assert_eq!(status(app.post_as(&op, "/api/v1/pledge-texts", &json!({"kind": "hire", "body": "x"})).await).await, 403);
    ok(app.post_as(&sec, "/api/v1/pledge-texts", &json!({"kind": "hire", "body": "私は業務上知り得た個人情報を第三者に漏らしません。"})).await).await;
    ok(app.post_as(&sec, "/api/v1/pledge-texts", &json!({"kind": "yearly", "body": "年次誓約書 第1版"})).await).await;
    let text = ok(app.get_as(&op, "/api/v1/pledge-texts/hire").await).await;
    assert_eq!(text["version"], 1);
    ok(app.post_as(&sec, "/api/v1/pledge-texts", &json!({"kind": "hire", "body": "私は業務上知り得た個人情報を第三者に漏らしません。（改訂）"})).await).await;
    assert_eq!(status(app.post_as(&op, "/api/v1/pledges", &json!({"kind": "hire", "version": 1})).await).await, 409, "a newer text exists");
    assert_eq!(status(app.post_as(&op, "/api/v1/pledges", &json!({"kind": "hire", "version": 2})).await).await, 201);
    assert_eq!(ok(app.get_as(&op, "/api/v1/me/records").await).await["pledge_due"], false);
    // Training: everyone yearly; operators monthly with a test.
    ok(app.post_as(&sec, "/api/v1/courses", &json!({"code": "ISMS-Y", "title": "情報セキュリティ年次教育", "due_rule": "yearly"})).await).await;
    ok(app.post_as(&sec, "/api/v1/courses", &json!({"code": "OP-M", "title": "オペレーター月次教育", "due_rule": "monthly", "role": "operator", "pass_score": 80})).await).await;
    let me = ok(app.get_as(&op, "/api/v1/me/records").await).await;
    assert_eq!(me["courses_due"], json!(["ISMS-Y", "OP-M"]));
    assert_eq!(status(app.post_as(&sec, "/api/v1/attendances", &json!({"course": "OP-M", "employee_no": "E001"})).await).await, 422, "the score");
    assert_eq!(ok(app.post_as(&sec, "/api/v1/attendances", &json!({"course": "OP-M", "employee_no": "E001", "score": 70})).await).await["passed"], false);
    assert_eq!(ok(app.post_as(&sec, "/api/v1/attendances", &json!({"course": "OP-M", "employee_no": "E001", "score": 90})).await).await["passed"], true);
    ok(app.post_as(&sec, "/api/v1/attendances", &json!({"course": "ISMS-Y", "employee_no": "E001"})).await).await;
    assert_eq!(ok(app.get_as(&op, "/api/v1/me/records").await).await["flagged"], false);
    ok(app.post_as(&sec, "/api/v1/drills", &json!({"kind": "phishing", "name": "2026年4月 標的型メール訓練", "employee_no": "E001", "result": "reported"})).await).await;
    // A month later the monthly course is due again; a year later the pledge.
    app.clock.advance(Duration::days(32));
    assert_eq!(ok(app.get_as(&op, "/api/v1/me/records").await).await["courses_due"], json!(["OP-M"]));
    // A leaving date is set: the pledge at leaving is owed, then signed.
    let r = app.http.put(app.url("/api/v1/people/E001")).bearer_auth(&app.admin_token)
        .json(&json!({"employee_no": "E001", "name": "opさん", "kind": "employee", "department": "OPS", "end_date": "2026-06-30"})).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert_eq!(ok(app.get_as(&op, "/api/v1/me/records").await).await["pledge_next"], "leaving");
    ok(app.post_as(&sec, "/api/v1/pledge-texts", &json!({"kind": "leaving", "body": "退職後も業務上知り得た個人情報を漏らしません。"})).await).await;
    assert_eq!(status(app.post_as(&op, "/api/v1/pledges", &json!({"kind": "leaving", "version": 1})).await).await, 201);
    assert!(ok(app.get_as(&op, "/api/v1/me/records").await).await["pledge_next"].is_null());
    let all = ok(app.get_as(&sec, "/api/v1/people-records").await).await;
    let d = all.as_array().unwrap().iter().find(|f| f["employee_no"] == "D001").unwrap();
    assert_eq!(d["pledge_next"], "hire", "dispatched staff owe a pledge too");

    // The grant block: a standing holder cannot grant data access to a flagged person.
    let ciso = app.user_with("ciso", &[Role::Ciso]).await;
    assert_eq!(status(put_as(&app, &sec, "/api/v1/settings/block-flagged-grants", &json!({"on": true})).await).await, 403, "the security office decides");
    assert_eq!(status(put_as(&app, &ciso, "/api/v1/settings/block-flagged-grants", &json!({"on": true})).await).await, 204);
    assert!(app.app.block_flagged_grants().await.unwrap());
    let users = app.json("/api/v1/users").await;
    let op_id = users.as_array().unwrap().iter().find(|u| u["login"] == "op").unwrap()["id"].as_i64().unwrap();
    let err = app.app.check_grantee_flags(op_id).await.unwrap_err();
    assert!(matches!(err, mamori_core::CoreError::Forbidden { rule: Some(ref r) } if r == "grantee-owes-pledge-or-training"), "{err:?}");
    ok(app.post_as(&sec, "/api/v1/attendances", &json!({"course": "OP-M", "employee_no": "E001", "score": 100})).await).await;
    app.app.check_grantee_flags(op_id).await.unwrap();
    let acts = app.actions().await;
    for a in ["pledge.text", "pledge.sign", "course.create", "training.attend", "drill.record", "settings.block_flagged_grants"] {
        assert!(acts.contains(&a.to_owned()), "{a}");
    }
}

/// MGMT-7, LIFE-6, PHY-11 and the audit pack: audits with findings and corrective actions,
/// management review, media never reused, outsourced disposal approved by another person,
/// retention with its enforcement, and the pack as PDF and Excel CSV.
async fn audits_custody_pack(app: TestApp) {
    let sec = app.user_with("sec", &[Role::Secretariat]).await;
    let ciso = app.user_with("ciso", &[Role::Ciso]).await;
    let auditor = app.user_with("aud", &[Role::Auditor]).await;
    let id = ok(app.post_as(&sec, "/api/v1/audits", &json!({"kind": "internal", "title": "2026年度 内部監査", "scope": "入力センター・人事部",
        "planned_on": "2026-04-20", "auditor": "監査員 佐藤"})).await).await["id"].as_i64().unwrap();
    assert_eq!(status(app.post_as(&sec, &format!("/api/v1/audits/{id}/findings"), &json!({"kind": "nonconformity", "text": "入退室記録の確認漏れ"})).await).await, 422,
        "a nonconformity needs its corrective action");
    let f = ok(app.post_as(&sec, &format!("/api/v1/audits/{id}/findings"), &json!({"kind": "nonconformity", "text": "入退室記録の確認漏れ（10月）",
        "action": "月次確認を自主点検に追加", "owner": "総務部長", "due": "2026-05-31"})).await).await["id"].as_i64().unwrap();
    ok(app.post_as(&sec, &format!("/api/v1/audits/{id}/done"), &json!({"done_on": "2026-04-20", "summary": "不適合1件"})).await).await;
    ok(app.post_as(&sec, "/api/v1/management-reviews", &json!({"held_on": "2026-04-25", "attendees": "社長、CISO、事務局", "inputs": "内部監査結果", "decisions": "是正処置を承認"})).await).await;
    let plan = json!({"kind": "unit", "title": "x", "scope": "y", "planned_on": "2026-05-01", "auditor": "z"});
    assert_eq!(status(app.post_as(&auditor, "/api/v1/audits", &plan).await).await, 403, "auditors read");
    let audits = ok(app.get_as(&auditor, "/api/v1/audits").await).await;
    assert_eq!(audits[0]["findings"][0]["id"], f);
    ok(app.post_as(&sec, &format!("/api/v1/findings/{f}/close"), &json!({})).await).await;

    // Media are never reused; outsourced disposal needs NDA, certificate, witness, approval.
    ok(app.post_as(&sec, "/api/v1/media", &json!({"serial": "USB-0001", "kind": "USBメモリ"})).await).await;
    let d = json!({"what": "USBメモリ（顧客データ受領用）", "medium": "USB-0001", "method": "physical_destruction", "contractor": "溶解処理株式会社",
        "nda": true, "certificate": "", "witness": "総務 田中", "disposed_on": "2026-04-28"});
    assert_eq!(status(app.post_as(&sec, "/api/v1/disposals", &d).await).await, 422, "the certificate");
    let mut d2 = d.clone();
    d2["certificate"] = json!("DC-2026-0042");
    let did = ok(app.post_as(&sec, "/api/v1/disposals", &d2).await).await["id"].as_i64().unwrap();
    let r = app.post_as(&sec, "/api/v1/media", &json!({"serial": "USB-0001", "kind": "USBメモリ"})).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["rule"], "media-never-reused");
    assert_eq!(status(app.post_as(&sec, &format!("/api/v1/disposals/{did}/approve"), &json!({})).await).await, 403);
    assert_eq!(status(app.post_as(&ciso, &format!("/api/v1/disposals/{did}/approve"), &json!({})).await).await, 204);
    let ret = ok(app.get_as(&auditor, "/api/v1/retention").await).await;
    assert!(ret.as_array().unwrap().iter().all(|r| r["ok"] == true), "{ret}");
    assert_eq!(ret[0]["keep_ja"], "1年以上");

    // The pack: PDF (Japanese) and Excel CSV, with the live evidence; recorded.
    let r = app.get_as(&auditor, "/api/v1/audit-pack?from=2026-04-01&to=2027-03-31").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-1.4"));
    assert!(String::from_utf8_lossy(&pdf).contains("/Type /Pages"));
    let csv = app.get_as(&auditor, "/api/v1/audit-pack?from=2026-04-01&to=2027-03-31&format=csv").await.text().await.unwrap();
    assert!(csv.starts_with("\u{feff}区分,項目,状態,内容"), "{}", &csv[..80.min(csv.len())]);
    for s in ["証跡の状態", "適用宣言書", "監査", "廃棄記録", "A.7.2 物理的入退", "DC-2026-0042", "マネジメントレビュー"] {
        assert!(csv.contains(s), "{s} in the pack");
    }
    let json = ok(app.get_as(&auditor, "/api/v1/audit-pack?format=json").await).await;
    assert!(json["rows"].as_array().unwrap().len() > 93);
    assert_eq!(status(app.get_as(&auditor, "/api/v1/audit-pack?from=2026-04-01").await).await, 422);
    let acts = app.actions().await;
    for a in ["audit.plan", "audit.finding", "audit.done", "audit.finding_closed", "management_review.record", "medium.register", "disposal.record", "disposal.approve", "audit_pack.export"] {
        assert!(acts.contains(&a.to_owned()), "{a}");
    }
}
