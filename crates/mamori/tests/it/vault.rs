//! The vault, first part (issue 5): field encryption (DATA-4), masked lists and recorded reveals
//! (DATA-6, AUDIT-1), standing holders approved by the CISO (DATA-1), time-limited grants that
//! expire and are revoked at once (DATA-2, DATA-3), presence in the secure zone from the doors
//! (DATA-7), My Number only in a business marked for it (MYNUM-1), tampering detected.

use chrono::Duration as CDuration;
use mamori_core::types::Role;
use mamori_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends! {
    vault_first_part => vault_first_part;
}

async fn ok(r: reqwest::Response) -> Value {
    let s = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(s.is_success(), "{s}: {body}");
    body
}

async fn status(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The secure room HS with its door, the business CARD-APP of client CARDCO in it, and two
/// operators linked to people E0 ("holder") and E1 ("colleague") with cards for HS.
/// Returns (ciso, agent, holder, colleague) tokens.
pub async fn secure_room(app: &TestApp) -> (String, String, String, String) {
    // The secure room, its door, and three people with accounts.
    ok(app.post("/api/v1/zones", &json!({"code": "HS", "name": "高セキュリティエリア", "level": "high"})).await).await;
    ok(app.post("/api/v1/doors", &json!({"code": "D-HS", "name": "HS", "inside": "HS"})).await).await;
    for (code, dir) in [("IN", "entry"), ("OUT", "exit")] {
        ok(app.post("/api/v1/readers", &json!({"code": code, "door": "D-HS", "direction": dir, "mode": "card"})).await).await;
    }
    ok(app.post("/api/v1/access-levels", &json!({"code": "L-HS", "name": "HS", "zones": ["HS"], "position": "主任"})).await).await;
    ok(app.post("/api/v1/clients", &json!({"code": "CARDCO", "name": "カード会社A"})).await).await;
    ok(app.post("/api/v1/businesses", &json!({"code": "CARD-APP", "name": "カード申込入力", "client": "CARDCO", "zone": "HS"})).await).await;
    let ciso = app.user_with("ciso", &[Role::Ciso]).await;
    let agent = app.user_with("agent", &[Role::DoorAgent]).await;
    let mut tokens = Vec::new();
    for (i, login) in ["holder", "colleague"].iter().enumerate() {
        let no = format!("E{i}");
        ok(app.post("/api/v1/people", &json!({"employee_no": no, "name": login, "kind": "employee", "position": "主任"})).await).await;
        ok(app.post("/api/v1/credentials", &json!({"employee_no": no, "kind": "felica", "number": format!("010203040506070{i}")})).await).await;
        ok(app.post_as(&ciso, "/api/v1/zone-approvals", &json!({"employee_no": no, "zone": "HS"})).await).await;
        let t = app.user_with(login, &[Role::Operator]).await;
        let me = app.get_as(&t, "/api/v1/me").await.json::<Value>().await.unwrap();
        let r = app.http.put(app.url(&format!("/api/v1/users/{}/person", me["user_id"]))).bearer_auth(&app.admin_token).json(&json!({"employee_no": no})).send().await.unwrap();
        assert!(r.status().is_success());
        tokens.push(t);
    }
    (ciso, agent, tokens[0].clone(), tokens[1].clone())
}

async fn vault_first_part(app: TestApp) {
    let (ciso, agent, holder, colleague) = secure_room(&app).await;
    let badge = |card: String, reader: &'static str| {
        let (app, agent) = (&app, &agent);
        async move { ok(app.post_as(agent, "/api/v1/doors/decide", &json!({"reader": reader, "card": card})).await).await }
    };

    // Schema; a My Number field is refused in a business not marked for it (MYNUM-1).
    let r = app.post("/api/v1/vault/CARD-APP/fields", &json!([{"name": "my_number", "label": "個人番号", "sensitivity": "my_number"}])).await;
    assert_eq!(r.status(), 422);
    let r = app.post_as(&ciso, "/api/v1/vault/CARD-APP/fields", &json!([
        {"name": "app_no", "label": "申込番号", "sensitivity": "normal"},
        {"name": "name", "label": "氏名", "sensitivity": "personal"},
        {"name": "phone", "label": "電話番号", "sensitivity": "personal"},
        {"name": "card", "label": "カード番号", "sensitivity": "card_number"}
    ])).await;
    assert_eq!(r.status(), 201);

    // Standing holders: only the CISO approves (DATA-1).
    let (s, _) = status(app.post("/api/v1/vault/CARD-APP/holders", &json!({"login": "holder"})).await).await;
    assert_eq!(s, 403);
    assert_eq!(app.post_as(&ciso, "/api/v1/vault/CARD-APP/holders", &json!({"login": "holder"})).await.status(), 201);
    // ...and never themselves.
    assert_eq!(app.post_as(&ciso, "/api/v1/vault/CARD-APP/holders", &json!({"login": "ciso"})).await.status(), 422);

    // Outside the secure zone nothing opens, and the attempt is in the client's log (DATA-7).
    let rec = json!({"values": {"app_no": "A-0001", "name": "顧客 一郎", "phone": "090-1234-5678", "card": "4111 1111 1111 1234"}});
    let (s, body) = status(app.post_as(&holder, "/api/v1/vault/CARD-APP/records", &rec).await).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["rule"], "outside-secure-zone");
    // Inside: keyed in, sealed, masked in lists.
    assert!(badge("felica:0102030405060700".into(), "IN").await["allowed"].as_bool().unwrap());
    let uid = ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/records", &rec).await).await["uid"].as_str().unwrap().to_owned();
    let list = ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await;
    assert_eq!(list[0]["fields"]["app_no"], "A-0001");
    assert_eq!(list[0]["fields"]["card"], "**** **** **** 1234");
    assert_eq!(list[0]["fields"]["name"], "顧＊＊＊＊");
    // Nothing personal is stored in the clear.
    let db_dump: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT sealed FROM vault_values").fetch_all(&app.app.db.pool).await.unwrap();
    assert!(db_dump.iter().all(|(b,)| !String::from_utf8_lossy(b).contains("090-1234")));
    // A reveal needs a purpose, returns the value, and is recorded — without the value.
    let (s, _) = status(app.post_as(&holder, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "card", "purpose": " "})).await).await;
    assert_eq!(s, 422);
    let v = ok(app.post_as(&holder, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "card", "purpose": "申込内容の照合"})).await).await;
    assert_eq!(v["value"], "4111 1111 1111 1234");
    let log = ok(app.get("/api/v1/ledger/events?client=CARDCO&limit=100").await).await;
    let text = log.to_string();
    assert!(text.contains("data.reveal") && text.contains("申込内容の照合") && text.contains("outside-secure-zone"));
    assert!(!text.contains("4111 1111") && !text.contains("090-1234"), "no values in the ledger");

    // Batch import in Shift_JIS: a bad row rejects the file with its line number, nothing is
    // half-imported; a good file comes in whole (DATA-4 sealing applies the same).
    let before = ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await.as_array().unwrap().len();
    let bad = "申込番号,氏名,カード番号\nA-0002,顧客 二郎,4111111111112222\nA-0003,顧客 三郎,12ab\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(bad);
    let r = app.http.post(app.url("/api/v1/vault/CARD-APP/records/import")).bearer_auth(&holder).header("content-type", "text/csv").body(sjis.into_owned()).send().await.unwrap();
    let (s, body) = status(r).await;
    assert_eq!((s, body["line"].as_u64()), (422, Some(3)), "{body}");
    assert_eq!(ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await.as_array().unwrap().len(), before);
    let good = bad.replace("12ab", "4111111111113333");
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&good);
    let r = app.http.post(app.url("/api/v1/vault/CARD-APP/records/import")).bearer_auth(&holder).header("content-type", "text/csv").body(sjis.into_owned()).send().await.unwrap();
    assert_eq!(ok(r).await["imported"], 2);
    let list = ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await;
    assert!(list.to_string().contains("**** **** **** 3333") && list.to_string().contains("顧＊＊＊＊"));

    // A colleague in the room has nothing until a holder grants it; nobody grants themselves.
    assert!(badge("felica:0102030405060701".into(), "IN").await["allowed"].as_bool().unwrap());
    let reveal = |t: String| {
        let (app, uid) = (&app, uid.clone());
        async move { status(app.post_as(&t, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "phone", "purpose": "入力確認"})).await).await }
    };
    assert_eq!(reveal(colleague.clone()).await.0, 403);
    let (s, _) = status(app.post_as(&holder, "/api/v1/vault/CARD-APP/grants", &json!({"login": "holder", "ops": ["view"], "purpose": "x", "hours": 2})).await).await;
    assert_eq!(s, 422);
    let (s, _) = status(app.post_as(&colleague, "/api/v1/vault/CARD-APP/grants", &json!({"login": "holder", "ops": ["view"], "purpose": "x", "hours": 2})).await).await;
    assert_eq!(s, 403);
    ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/grants", &json!({"login": "colleague", "ops": ["view"], "purpose": "繁忙期の照合応援", "hours": 2})).await).await;
    let (s, v) = reveal(colleague.clone()).await;
    assert_eq!((s, v["value"].as_str()), (200, Some("090-1234-5678")));
    // view does not include input
    let (s, _) = status(app.post_as(&colleague, "/api/v1/vault/CARD-APP/records", &rec).await).await;
    assert_eq!(s, 403);
    // The grant expires by itself...
    app.clock.advance(CDuration::hours(2) + CDuration::minutes(1));
    assert_eq!(reveal(colleague.clone()).await.0, 403);
    // ...or is revoked at once.
    let g = ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/grants", &json!({"login": "colleague", "ops": ["view"], "purpose": "再応援", "hours": 8})).await).await;
    assert_eq!(reveal(colleague.clone()).await.0, 200);
    ok_empty(app.post_as(&holder, &format!("/api/v1/vault/grants/{}/revoke", g["id"]), &json!({})).await).await;
    assert_eq!(reveal(colleague.clone()).await.0, 403);
    // Badging out ends data access (DATA-7).
    let g = ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/grants", &json!({"login": "colleague", "ops": ["view"], "purpose": "再々応援", "hours": 8})).await).await;
    assert!(g["id"].as_i64().is_some());
    assert_eq!(reveal(colleague.clone()).await.0, 200);
    assert!(badge("felica:0102030405060701".into(), "OUT").await["allowed"].as_bool().unwrap());
    let (s, body) = reveal(colleague.clone()).await;
    assert_eq!((s, body["rule"].as_str()), (403, Some("outside-secure-zone")));

    // Tampering with a sealed value is detected, not decrypted into something else.
    let (sealed,): (Vec<u8>,) = sqlx::query_as("SELECT sealed FROM vault_values WHERE field = 'phone'").fetch_one(&app.app.db.pool).await.unwrap();
    let mut bad = sealed.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    sqlx::query("UPDATE vault_values SET sealed = $1 WHERE field = 'phone'").bind(bad).execute(&app.app.db.pool).await.unwrap();
    let (s, _) = reveal(holder.clone()).await;
    assert!(s >= 500, "tampering detected: {s}");
    // Contract end: only the security office deletes, with a reason; the data keys are destroyed,
    // the records gone, and the certificate verifies with the centre's key (LIFE-3, LIFE-7).
    let (s, _) = status(app.post_as(&holder, "/api/v1/vault/CARD-APP/delete", &json!({"reason": "契約終了"})).await).await;
    assert_eq!(s, 403);
    let (s, _) = status(app.post_as(&ciso, "/api/v1/vault/CARD-APP/delete", &json!({"reason": " "})).await).await;
    assert_eq!(s, 422);
    let cert = ok(app.post_as(&ciso, "/api/v1/vault/CARD-APP/delete", &json!({"reason": "契約終了（2026年3月末）"})).await).await;
    let text = cert["certificate"].as_str().unwrap();
    let body = app.app.ledger.verifier().open(text).expect("certificate verifies").to_owned();
    assert!(body.contains("データ削除証明書") && body.contains("records: 3") && body.contains("client: CARDCO"), "{body}");
    assert!(app.app.ledger.verifier().open(&text.replace("records: 3", "records: 2")).is_err(), "an altered certificate fails");
    assert_eq!(ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await.as_array().unwrap().len(), 0);
    let keys: Vec<(Vec<u8>, Option<i64>)> = sqlx::query_as("SELECT wrapped, destroyed_at FROM vault_keys").fetch_all(&app.app.db.pool).await.unwrap();
    assert!(keys.iter().all(|(w, d)| w.is_empty() && d.is_some()));
    let log = ok(app.get("/api/v1/ledger/events?client=CARDCO&action=data.delete_all").await).await;
    assert_eq!(log.as_array().unwrap().len(), 1);

    // The KEK is outside the database, owner-only.
    let kek = app.data_dir().join("vault.kek");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777, 0o600);
}

async fn ok_empty(r: reqwest::Response) {
    let s = r.status();
    assert!(s.is_success(), "{s}: {}", r.text().await.unwrap_or_default());
}

/// A client checks its deletion certificate with the real binary, offline (LIFE-7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_check_cli() {
    let app = mamori_testkit::spawn_app(mamori_testkit::Backend::Sqlite).await.unwrap();
    ok(app.post("/api/v1/clients", &json!({"code": "C1", "name": "委託元"})).await).await;
    ok(app.post("/api/v1/businesses", &json!({"code": "B1", "name": "業務", "client": "C1"})).await).await;
    let cert = ok(app.post("/api/v1/vault/B1/delete", &json!({"reason": "契約終了"})).await).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("certificate.txt");
    std::fs::write(&file, cert["certificate"].as_str().unwrap()).unwrap();
    let key = app.app.ledger.verifier().to_key_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mamori")).args(["certificate", "check"]).arg(&file).args(["--key", &key]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("データ削除証明書") && stdout.contains("OK: signed by"), "{stdout}");
    std::fs::write(&file, cert["certificate"].as_str().unwrap().replace("client: C1", "client: C2")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mamori")).args(["certificate", "check"]).arg(&file).args(["--key", &key]).output().unwrap();
    assert!(!out.status.success());
}
