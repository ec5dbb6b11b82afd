//! The API: people and places, sign-in and sessions, bad input, authorisation of every route.

use mamori_core::types::Role;
use mamori_testkit::{both_backends, TestApp, ADMIN_PASSWORD};
use serde_json::{json, Value};

both_backends! {
    people_and_places => people_and_places;
    bad_input_changes_nothing => bad_input_changes_nothing;
    roster_import => roster_import;
    every_route_is_guarded => every_route_is_guarded;
    lockout_and_no_enumeration => lockout_and_no_enumeration;
    totp_second_factor => totp_second_factor;
    sessions_expire => sessions_expire;
    client_export_checks => client_export_checks;
    review_sign_off => review_sign_off;
}

async fn created(r: reqwest::Response) -> i64 {
    let s = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(s, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// Spine: sites, departments, nested zones, people, clients and businesses; each change is an
/// event of the ledger (issue 2 item 6).
async fn people_and_places(app: TestApp) {
    created(app.post("/api/v1/sites", &json!({"code": "TAMA", "name": "多摩センター", "address": "東京都多摩市"})).await).await;
    created(app.post("/api/v1/departments", &json!({"code": "OPS", "name": "業務部", "site": "TAMA"})).await).await;
    created(app.post("/api/v1/zones", &json!({"code": "BLDG", "name": "建物", "level": "general", "site": "TAMA"})).await).await;
    created(app.post("/api/v1/zones", &json!({"code": "WORK1", "name": "執務室1", "level": "work", "parent": "BLDG"})).await).await;
    created(app.post("/api/v1/zones", &json!({"code": "HS1", "name": "高セキュリティエリア1", "level": "高セキュリティエリア", "parent": "WORK1"})).await).await;
    let pid = created(
        app.post(
            "/api/v1/people",
            &json!({"employee_no": "E0001", "name": "山田 太郎", "kana": "ヤマダ タロウ", "kind": "dispatched",
                    "department": "OPS", "position": "主任", "duties": "カード申込入力", "start_date": "2026-04-01"}),
        )
        .await,
    )
    .await;
    created(app.post("/api/v1/clients", &json!({"code": "CARDCO", "name": "カード会社A"})).await).await;
    created(app.post("/api/v1/businesses", &json!({"code": "CARD-APP", "name": "カード申込入力", "client": "CARDCO", "zone": "HS1"})).await).await;

    let zones = app.json("/api/v1/zones").await;
    let hs1 = zones.as_array().unwrap().iter().find(|z| z["code"] == "HS1").unwrap();
    assert_eq!(hs1["level"], "high");
    assert_eq!(hs1["parent"], "WORK1");
    let people = app.json("/api/v1/people").await;
    assert_eq!(people[0]["name"], "山田 太郎");
    assert_eq!(people[0]["kind"], "dispatched");
    assert_eq!(people[0]["department"], "OPS");

    // duplicate → 409, unknown parent → 422 naming the field
    let r = app.post("/api/v1/zones", &json!({"code": "HS1", "name": "x", "level": "high"})).await;
    assert_eq!(r.status(), 409);
    let r = app.post("/api/v1/zones", &json!({"code": "HS9", "name": "x", "level": "high", "parent": "NOPE"})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "parent");

    // update by employee number
    let r = app
        .http
        .put(app.url("/api/v1/people/E0001"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"employee_no": "E0001", "name": "山田 太郎", "kind": "dispatched", "status": "left", "end_date": "2026-09-30"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let actions = app.actions().await;
    for a in ["site.create", "department.create", "zone.create", "person.create", "person.update", "client.create", "business.create", "user.create", "token.create"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
    // events about a person hold references only, never the name
    let about = app.json(&format!("/api/v1/ledger/events?object=person:{pid}")).await;
    assert_eq!(about.as_array().unwrap().len(), 2);
    assert!(!about.to_string().contains("山田"));
    // the client's own log holds its events
    let client_log = app.json("/api/v1/ledger/events?client=CARDCO").await;
    let acts: Vec<&str> = client_log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(acts, vec!["business.create", "client.create"]);
    let rep = app.app.ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
}

/// Malformed JSON, missing fields, overlong strings, unknown enum values and unknown fields: a
/// clear 4xx each, and nothing changes (SECURITY-BASELINE: API and input).
async fn bad_input_changes_nothing(app: TestApp) {
    let before = app.json("/api/v1/zones").await;
    let size_before = app.actions().await.len();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"code\": \"Z1\", ".to_vec(), "malformed_json"),
        (br#"{"code": "Z1", "level": "high"}"#.to_vec(), "invalid_body"),
        (format!(r#"{{"code": "Z1", "name": "{}", "level": "high"}}"#, "長".repeat(201)).into_bytes(), "invalid_body"),
        (br#"{"code": "Z1", "name": "n", "level": "ultra"}"#.to_vec(), "invalid_body"),
        (br#"{"code": "Z1", "name": "n", "level": "high", "admin": true}"#.to_vec(), "invalid_body"),
        (br#"{"code": "bad code!", "name": "n", "level": "high"}"#.to_vec(), "invalid_body"),
        (br#"[1,2,3]"#.to_vec(), "invalid_body"),
    ];
    for (body, code) in cases {
        let r = app.post_raw("/api/v1/zones", "application/json", body.clone()).await;
        let status = r.status().as_u16();
        let b: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{} -> {b}", String::from_utf8_lossy(&body));
        assert_eq!(b["code"], code, "{b}");
        assert!(b["message"].as_str().unwrap().len() > 5);
    }
    let r = app.post_raw("/api/v1/zones", "text/plain", b"code=Z1".to_vec()).await;
    assert_eq!(r.status(), 415);
    let big = vec![b' '; 300 * 1024];
    let r = app.post_raw("/api/v1/zones", "application/json", big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(app.json("/api/v1/zones").await, before);
    assert_eq!(app.actions().await.len(), size_before);
}

/// A staff roster in Shift_JIS imports; one broken row rejects the whole file with its line.
async fn roster_import(app: TestApp) {
    created(app.post("/api/v1/departments", &json!({"code": "OPS", "name": "業務部"})).await).await;
    let good = "社員番号,氏名,フリガナ,雇用区分,部署コード,職位,担務,入社日\r\n\
                E100,佐藤 花子,サトウ ハナコ,社員,OPS,係長,給与計算,2020/04/01\r\n\
                E101,鈴木 一郎,スズキ イチロウ,派遣社員,OPS,,マイナンバー収集,2025/10/01\r\n";
    let bad = format!("{good}E102,高橋 次郎,タカハシ ジロウ,契約社員,OPS,,入力,2025/10/01\r\n");
    let (sjis_bad, _, _) = encoding_rs::SHIFT_JIS.encode(&bad);
    let r = app.post_raw("/api/v1/people/import", "text/csv", sjis_bad.to_vec()).await;
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "import_rejected");
    assert_eq!(b["line"], 4, "{b}");
    assert_eq!(app.json("/api/v1/people").await.as_array().unwrap().len(), 0, "nothing half-imported");

    // a row referring to an unknown department fails at write time: still nothing kept
    let unknown = good.replace("E101,鈴木 一郎,スズキ イチロウ,派遣社員,OPS", "E101,鈴木 一郎,スズキ イチロウ,派遣社員,NOPE");
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&unknown);
    let r = app.post_raw("/api/v1/people/import", "text/csv", sjis.to_vec()).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["line"], 3);
    assert_eq!(app.json("/api/v1/people").await.as_array().unwrap().len(), 0);

    let (sjis_good, _, _) = encoding_rs::SHIFT_JIS.encode(good);
    let r = app.post_raw("/api/v1/people/import", "text/csv", sjis_good.to_vec()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["created"], 2);
    let people = app.json("/api/v1/people").await;
    assert_eq!(people[1]["name"], "鈴木 一郎");
    assert_eq!(people[1]["kind"], "dispatched");
    assert_eq!(people[0]["start_date"], "2020-04-01");
    // UTF-8 with BOM too; re-import updates
    let mut utf8 = b"\xEF\xBB\xBF".to_vec();
    utf8.extend_from_slice(good.replace("係長", "課長").as_bytes());
    let r = app.post_raw("/api/v1/people/import", "text/csv", utf8).await;
    assert_eq!(r.json::<Value>().await.unwrap()["updated"], 2);
}

/// Walks the OpenAPI document: every route without credentials answers 401; with an account
/// that has no role, 403 (SECURITY-BASELINE: API and input).
async fn every_route_is_guarded(app: TestApp) {
    let doc = app.json("/api/v1/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20);
    let nobody = app.user_with("nobody", &[Role::Operator]).await;
    let uid: i64 = app.json("/api/v1/users").await.as_array().unwrap().iter().find(|u| u["login"] == "nobody").unwrap()["id"]
        .as_i64()
        .unwrap();
    let admin = app.app.bearer(&app.admin_token, None).await.unwrap().unwrap();
    app.app.set_roles(&admin, uid, &[]).await.unwrap();
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path.replace("{employee_no}", "E1").replace("{id}", "1");
        for (method, op) in ops.as_object().unwrap() {
            let action = op["x-mamori-action"].as_str().unwrap();
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let anon = app.http.request(m.clone(), app.url(&concrete)).header("content-type", "application/json").body("{}").send().await.unwrap();
            if action == "public" {
                assert_ne!(anon.status(), 401, "{method} {path} is public");
                continue;
            }
            assert_eq!(anon.status(), 401, "{method} {path} without credentials");
            if action == "signed-in" {
                continue;
            }
            let r = app
                .http
                .request(m, app.url(&concrete))
                .bearer_auth(&nobody)
                .header("content-type", "application/json")
                .body(r#"{"code":"X1","name":"n","level":"high","employee_no":"E1","kind":"employee","client":"C","login":"l","roles":[],"password":"p","kind2":1}"#)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            // a body that fails to parse may answer 400 first; it must never succeed
            assert!(status == 403 || status == 400, "{method} {path} with no role: {status}");
            if status == 403 || !matches!(method.as_str(), "post" | "put") {
                assert_eq!(status, 403, "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
    // denials are recorded with the rule that decided
    let denied = app.json("/api/v1/ledger/events?action=access.denied").await;
    assert!(denied.as_array().unwrap().iter().any(|e| e["event"]["outcome"]["rule"] == "default-deny"));
}

/// Lockout after repeated failures, the same answer for unknown login and wrong password, and
/// every failure and lockout in the ledger.
async fn lockout_and_no_enumeration(app: TestApp) {
    let sign_in = |login: &str, pw: &str| {
        let body = json!({"login": login, "password": pw});
        let http = app.http.clone();
        let url = app.url("/api/v1/sessions");
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let a = sign_in("ghost", "wrong password here").await;
    let (sa, ba) = (a.status(), a.text().await.unwrap());
    let b = sign_in("admin", "wrong password here").await;
    let (sb, bb) = (b.status(), b.text().await.unwrap());
    assert_eq!(sa, 401);
    assert_eq!((sa, ba), (sb, bb), "unknown login and wrong password must look the same");
    for _ in 0..4 {
        assert_eq!(sign_in("admin", "wrong password here").await.status(), 401);
    }
    // now locked: even the right password is refused
    assert_eq!(sign_in("admin", ADMIN_PASSWORD).await.status(), 429);
    let actions = app.actions().await;
    assert!(actions.iter().filter(|a| *a == "session.login_failed").count() >= 6);
    assert!(actions.iter().any(|a| a == "user.locked_out"));
    assert!(actions.iter().any(|a| a == "session.login_locked"));
    app.clock.advance(chrono::Duration::minutes(16));
    let ok = sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(ok.status(), 201);
    let token = ok.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&token, "/api/v1/me").await.status(), 200);
}

async fn totp_second_factor(app: TestApp) {
    let admin = app.app.bearer(&app.admin_token, None).await.unwrap().unwrap();
    let (secret, url) = mamori_core::auth::new_totp_secret("admin").unwrap();
    assert!(url.starts_with("otpauth://totp/"));
    assert!(app.app.enable_totp(&admin, &secret, "000000").await.is_err() || app.app.totp_now(&secret).unwrap() == "000000");
    let code = app.app.totp_now(&secret).unwrap();
    app.app.enable_totp(&admin, &secret, &code).await.unwrap();
    let r = app.http.post(app.url("/api/v1/sessions")).json(&json!({"login": "admin", "password": ADMIN_PASSWORD})).send().await.unwrap();
    assert_eq!(r.status(), 401, "password alone is not enough once TOTP is on");
    let code = app.app.totp_now(&secret).unwrap();
    let r = app
        .http
        .post(app.url("/api/v1/sessions"))
        .json(&json!({"login": "admin", "password": ADMIN_PASSWORD, "totp": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(app.actions().await.iter().any(|a| a == "user.totp_enabled"));
}

/// API sessions end after the idle time and on sign-out; tokens survive until revoked.
async fn sessions_expire(app: TestApp) {
    let r = app.http.post(app.url("/api/v1/sessions")).json(&json!({"login": "admin", "password": ADMIN_PASSWORD})).send().await.unwrap();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&token, "/api/v1/me").await.status(), 200);
    app.clock.advance(chrono::Duration::minutes(4));
    assert_eq!(app.get_as(&token, "/api/v1/me").await.status(), 200);
    app.clock.advance(chrono::Duration::minutes(6));
    assert_eq!(app.get_as(&token, "/api/v1/me").await.status(), 401);
    // sign-out ends the session on the server
    let r = app.http.post(app.url("/api/v1/sessions")).json(&json!({"login": "admin", "password": ADMIN_PASSWORD})).send().await.unwrap();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let r = app.http.delete(app.url("/api/v1/sessions/current")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get_as(&token, "/api/v1/me").await.status(), 401);
    assert_eq!(app.get("/api/v1/me").await.status(), 200, "API tokens do not idle out");
    // every response carries the security headers
    let r = app.get("/api/v1/me").await;
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
}

/// A client's export bundle checks offline with the centre key; any change to it is caught.
async fn client_export_checks(app: TestApp) {
    created(app.post("/api/v1/clients", &json!({"code": "PAYCO", "name": "給与計算の委託元"})).await).await;
    for i in 0..5 {
        app.clock.advance(chrono::Duration::hours(1));
        created(app.post("/api/v1/businesses", &json!({"code": format!("PAY{i}"), "name": "給与計算", "client": "PAYCO"})).await).await;
    }
    let key = app.json("/api/v1/ledger/key").await["key"].as_str().unwrap().to_owned();
    let bundle = app.json("/api/v1/ledger/export?client=PAYCO&from=2026-04-01T01:30:00Z&to=2026-04-01T04:30:00Z").await;
    let b: mamori_ledger::Bundle = serde_json::from_value(bundle.clone()).unwrap();
    let verifier = mamori_ledger::NoteVerifier::from_key_string(&key).unwrap();
    let rep = mamori_ledger::check_bundle(&b, &verifier).unwrap();
    assert_eq!(rep.events_in_range, 3, "{rep:?}");
    // drop an entry in the middle: caught
    let mut cut = b.clone();
    cut.entries.remove(2);
    assert!(mamori_ledger::check_bundle(&cut, &verifier).is_err());
    // another centre's key: refused
    let other = mamori_ledger::NoteSigner::generate("mamori.local", &mut rand::rngs::OsRng).unwrap().verifier();
    assert!(mamori_ledger::check_bundle(&b, &other).is_err());
    assert!(app.actions().await.iter().any(|a| a == "ledger.export"));
}

/// Periodic review (定期的に確認): a manager signs off a range; the sign-off is an event.
async fn review_sign_off(app: TestApp) {
    let mgr = app.user_with("manager", &[Role::DeptManager]).await;
    let op = app.user_with("op1", &[Role::Operator]).await;
    app.clock.advance(chrono::Duration::days(40));
    let body = json!({"kind": "admin", "from": "2026-04-01", "to": "2026-05-01", "comment": "4月分の入退室・管理操作を確認。異常なし。"});
    assert_eq!(app.post_as(&op, "/api/v1/ledger/reviews", &body).await.status(), 403);
    let r = app.post_as(&mgr, "/api/v1/ledger/reviews", &body).await;
    assert_eq!(r.status(), 201);
    let rv: Value = r.json().await.unwrap();
    assert!(rv["events_seen"].as_i64().unwrap() >= 3, "{rv}");
    let future = json!({"kind": "entry", "from": "2026-05-01", "to": "2027-01-01", "comment": ""});
    assert_eq!(app.post_as(&mgr, "/api/v1/ledger/reviews", &future).await.status(), 422);
    let list = app.get_as(&mgr, "/api/v1/ledger/reviews").await.json::<Value>().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(app.actions().await.iter().any(|a| a == "ledger.review"));
}

/// The console pages carry no inline script or style (the CSP forbids both, so they would not
/// work), and every page has the security headers.
#[tokio::test]
async fn console_pages_obey_their_csp() {
    let app = mamori_testkit::spawn_app(mamori_testkit::Backend::Sqlite).await.unwrap();
    let jar = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = jar.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = login.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r = jar
        .post(app.url("/login"))
        .form(&[("login", "admin"), ("password", ADMIN_PASSWORD), ("csrf", &csrf), ("lang", "ja")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for page in ["/", "/people", "/places", "/org", "/ledger", "/users", "/account", "/login"] {
        let r = jar.get(app.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(r.headers()["cache-control"], "no-store", "{page}");
        let html = r.text().await.unwrap();
        assert!(!html.contains(" style=\""), "{page} has an inline style");
        assert!(!html.contains("<script>") && !html.contains(" onclick="), "{page} has an inline script");
    }
    // a form without the CSRF token changes nothing
    let r = jar.post(app.url("/places/zones")).form(&[("code", "X1"), ("name", "x"), ("level", "high")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(app.json("/api/v1/zones").await.as_array().unwrap().is_empty());
}
