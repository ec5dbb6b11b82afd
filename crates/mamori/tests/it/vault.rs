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
    vault_double_entry_and_second_approver => double_entry_and_second_approver;
    vault_handover_export => handover_export;
    vault_copies_need_prior_approval => copies_need_prior_approval;
    vault_my_number => my_number;
    vault_no_combination_opens_more => no_combination_opens_more;
}

pub(crate) async fn ok(r: reqwest::Response) -> Value {
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
    // The tests act from a terminal registered to the business and its room (DATA-7).
    let key = ok(app.post_as(&ciso, "/api/v1/terminals", &json!({"code": "T-HS-1", "name": "HS 端末1", "business": "CARD-APP"})).await).await;
    app.set_terminal(key["device_key"].as_str().map(str::to_owned));
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
    // Only on a registered terminal (DATA-7): none, a wrong key, or a revoked terminal opens nothing.
    let key = app.terminal().unwrap();
    let card = || {
        let (app, uid, holder) = (&app, uid.clone(), holder.clone());
        async move { status(app.post_as(&holder, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "card", "purpose": "照合"})).await).await }
    };
    for k in [None, Some("mt_forged".to_owned())] {
        app.set_terminal(k);
        let (s, body) = card().await;
        assert_eq!((s, body["rule"].as_str()), (403, Some("unregistered-terminal")));
    }
    app.set_terminal(Some(key.clone()));
    assert_eq!(card().await.0, 200);
    let other = ok(app.post_as(&ciso, "/api/v1/terminals", &json!({"code": "T-HS-2", "name": "HS 端末2", "business": "CARD-APP"})).await).await;
    assert_eq!(status(app.post_as(&holder, "/api/v1/terminals", &json!({"code": "T-X", "name": "x", "business": "CARD-APP"})).await).await.0, 403);
    assert_eq!(app.post_as(&ciso, "/api/v1/terminals/T-HS-2/revoke", &json!({})).await.status(), 204);
    app.set_terminal(other["device_key"].as_str().map(str::to_owned));
    assert_eq!(card().await.1["rule"], "unregistered-terminal", "revoked");
    app.set_terminal(Some(key));
    let log = ok(app.get("/api/v1/ledger/events?client=CARDCO&limit=100").await).await;
    let text = log.to_string();
    assert!(text.contains("data.reveal") && text.contains("申込内容の照合") && text.contains("outside-secure-zone") && text.contains("unregistered-terminal"));
    assert!(!text.contains("4111 1111") && !text.contains("090-1234"), "no values in the ledger");

    // Batch import in Shift_JIS: a bad row rejects the file with its line number, nothing is
    // half-imported; a good file comes in whole (DATA-4 sealing applies the same).
    let before = ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await.as_array().unwrap().len();
    let bad = "申込番号,氏名,カード番号\nA-0002,顧客 二郎,4111111111112222\nA-0003,顧客 三郎,12ab\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(bad);
    let r = app.with_terminal(app.http.post(app.url("/api/v1/vault/CARD-APP/records/import"))).bearer_auth(&holder).header("content-type", "text/csv").body(sjis.into_owned()).send().await.unwrap();
    let (s, body) = status(r).await;
    assert_eq!((s, body["line"].as_u64()), (422, Some(3)), "{body}");
    assert_eq!(ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await.as_array().unwrap().len(), before);
    let good = bad.replace("12ab", "4111111111113333");
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&good);
    let r = app.with_terminal(app.http.post(app.url("/api/v1/vault/CARD-APP/records/import"))).bearer_auth(&holder).header("content-type", "text/csv").body(sjis.into_owned()).send().await.unwrap();
    assert_eq!(ok(r).await["imported"], 2);
    let list = ok(app.get_as(&holder, "/api/v1/vault/CARD-APP/records").await).await;
    assert!(list.to_string().contains("**** **** **** 3333") && list.to_string().contains("顧＊＊＊＊"));

    // Keyed in at once by many requests (group-committed with their events): every record is
    // stored, sealed, readable, and has exactly one `data.input` event in the client's log.
    let keyed = futures_util::future::join_all((0..24).map(|i| {
        let (app, holder) = (&app, &holder);
        async move {
            let rec = json!({"values": {"app_no": format!("B-{i:04}"), "name": "顧客 四郎", "phone": format!("090-0000-{i:04}"), "card": "4111 1111 1111 4444"}});
            ok(app.post_as(holder, "/api/v1/vault/CARD-APP/records", &rec).await).await["uid"].as_str().unwrap().to_owned()
        }
    }))
    .await;
    for (i, u) in keyed.iter().enumerate().step_by(7) {
        let v = ok(app.post_as(&holder, &format!("/api/v1/vault/CARD-APP/records/{u}/reveal"), &json!({"field": "phone", "purpose": "照合"})).await).await;
        assert_eq!(v["value"], format!("090-0000-{i:04}"));
    }
    for u in &keyed {
        let f = mamori_core::ledger::SearchFilter { client: Some("CARDCO".into()), action: Some("data.input".into()), object: Some(format!("record:{u}")), ..Default::default() };
        assert_eq!(app.app.ledger.search(&f).await.unwrap().len(), 1, "{u}");
    }

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
    assert!(body.contains("データ削除証明書") && body.contains("records: 27") && body.contains("client: CARDCO"), "{body}");
    assert!(app.app.ledger.verifier().open(&text.replace("records: 27", "records: 26")).is_err(), "an altered certificate fails");
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

    // The same certificate as a PDF in Japanese: it checks, and a page altered to name another
    // client does not.
    let r = app.get(&format!("/api/v1/deletion-certificates/{}/pdf", cert["id"])).await;
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap().to_vec();
    assert!(pdf.starts_with(b"%PDF-1.4"));
    let file = dir.path().join("certificate.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mamori")).args(["certificate", "check"]).arg(&file).args(["--key", &key]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("データ削除証明書"));
    let hex = |s: &str| s.chars().map(|c| format!("{:04X}", c as u32)).collect::<String>();
    let altered = String::from_utf8_lossy(&pdf).replace(&hex("client: C1"), &hex("client: C2"));
    assert_ne!(altered.as_bytes(), &pdf[..]);
    let pos = pdf.windows(4).position(|w| w == b"1 0 ").unwrap();
    let mut forged = pdf[..pos].to_vec();
    forged.extend_from_slice(&altered.as_bytes()[altered.find("1 0 obj").unwrap()..]);
    std::fs::write(&file, &forged).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mamori")).args(["certificate", "check"]).arg(&file).args(["--key", &key]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A third operator "checker" (person E2) with a card for HS, badged in. Returns its token.
async fn checker(app: &TestApp, ciso: &str, agent: &str) -> String {
    ok(app.post("/api/v1/people", &json!({"employee_no": "E2", "name": "checker", "kind": "employee", "position": "主任"})).await).await;
    ok(app.post("/api/v1/credentials", &json!({"employee_no": "E2", "kind": "felica", "number": "0102030405060702"})).await).await;
    ok(app.post_as(ciso, "/api/v1/zone-approvals", &json!({"employee_no": "E2", "zone": "HS"})).await).await;
    let t = app.user_with("checker", &[Role::Operator]).await;
    let me = app.get_as(&t, "/api/v1/me").await.json::<Value>().await.unwrap();
    let r = app.http.put(app.url(&format!("/api/v1/users/{}/person", me["user_id"]))).bearer_auth(&app.admin_token).json(&json!({"employee_no": "E2"})).send().await.unwrap();
    assert!(r.status().is_success());
    assert!(ok(app.post_as(agent, "/api/v1/doors/decide", &json!({"reader": "IN", "card": "felica:0102030405060702"})).await).await["allowed"].as_bool().unwrap());
    t
}

/// Holder and colleague both standing holders, all three operators inside HS, a schema.
pub async fn three_in_the_room(app: &TestApp) -> (String, String, String, String) {
    let (ciso, agent, holder, colleague) = secure_room(app).await;
    ok(app.post_as(&ciso, "/api/v1/vault/CARD-APP/fields", &json!([
        {"name": "app_no", "label": "申込番号", "sensitivity": "normal"},
        {"name": "name", "label": "氏名", "sensitivity": "personal"},
        {"name": "phone", "label": "電話番号", "sensitivity": "personal", "searchable": true},
        {"name": "card", "label": "カード番号", "sensitivity": "card_number"}
    ])).await).await;
    for l in ["holder", "colleague"] {
        assert_eq!(app.post_as(&ciso, "/api/v1/vault/CARD-APP/holders", &json!({"login": l})).await.status(), 201);
    }
    for card in ["0102030405060700", "0102030405060701"] {
        assert!(ok(app.post_as(&agent, "/api/v1/doors/decide", &json!({"reader": "IN", "card": format!("felica:{card}")})).await).await["allowed"].as_bool().unwrap());
    }
    let checker = checker(app, &ciso, &agent).await;
    (ciso, holder, colleague, checker)
}

/// DATA-10 double entry: two different operators, field-by-field comparison, mismatches to a
/// third person who alone sees both entries; DATA-2 grants that need a second approver.
async fn double_entry_and_second_approver(app: TestApp) {
    let (ciso, op1, op2, checker) = three_in_the_room(&app).await;
    let form = |no: &str, phone: &str| json!({"form_no": no, "values": {"app_no": no, "name": "顧客 一郎", "phone": phone, "card": "4111 1111 1111 1234"}});
    // Not on yet: entries are refused; once on, direct keying is refused (DATA-10).
    assert_eq!(app.post_as(&op1, "/api/v1/vault/CARD-APP/entries", &form("F-1", "090-1111-2222")).await.status(), 422);
    assert_eq!(app.http.put(app.url("/api/v1/vault/CARD-APP/double-entry")).bearer_auth(&op1).json(&json!({"on": true})).send().await.unwrap().status(), 403);
    let r = app.http.put(app.url("/api/v1/vault/CARD-APP/double-entry")).bearer_auth(&ciso).json(&json!({"on": true})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (s, _) = status(app.post_as(&op1, "/api/v1/vault/CARD-APP/records", &json!({"values": {"app_no": "X"}})).await).await;
    assert_eq!(s, 422);

    // Matching entries by two operators become one record.
    assert_eq!(ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/entries", &form("F-1", "090-1111-2222")).await).await["state"], "waiting");
    let (s, body) = status(app.post_as(&op1, "/api/v1/vault/CARD-APP/entries", &form("F-1", "090-1111-2222")).await).await;
    assert_eq!((s, body["rule"].as_str()), (403, Some("second-entry-by-another-operator")), "the same operator twice");
    let done = ok(app.post_as(&op2, "/api/v1/vault/CARD-APP/entries", &form("F-1", " 090-1111-2222 ")).await).await;
    assert_eq!(done["state"], "accepted", "{done}");
    let uid1 = done["uid"].as_str().unwrap().to_owned();
    assert_eq!(status(app.post_as(&op1, "/api/v1/vault/CARD-APP/entries", &form("F-1", "x")).await).await.0, 409, "a third entry");

    // Disagreeing entries go to a third person; the operators never see each other's entry.
    ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/entries", &form("F-2", "090-3333-4444")).await).await;
    let m = ok(app.post_as(&op2, "/api/v1/vault/CARD-APP/entries", &form("F-2", "090-3333-4445")).await).await;
    assert_eq!(m, json!({"state": "mismatch", "fields": ["phone"]}));
    let list = ok(app.get_as(&op1, "/api/v1/vault/CARD-APP/entries/mismatches").await).await;
    assert_eq!(list[0]["fields"], json!(["phone"]));
    assert!(!list.to_string().contains("090-3333"), "the list names fields, never values");
    let id = list[0]["id"].as_i64().unwrap();
    for t in [&op1, &op2] {
        let (s, body) = status(app.get_as(t, &format!("/api/v1/vault/CARD-APP/entries/{id}")).await).await;
        assert_eq!((s, body["rule"].as_str()), (403, Some("third-person-resolves")));
    }
    // The checker has no right yet; a grant needing a second approver does not open it either.
    assert_eq!(status(app.get_as(&checker, &format!("/api/v1/vault/CARD-APP/entries/{id}")).await).await.0, 403);
    let g = ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/grants", &json!({"login": "checker", "ops": ["view", "change"], "purpose": "二重入力の不一致判定", "hours": 2, "second_approver": true})).await).await;
    let gid = g["id"].as_i64().unwrap();
    assert_eq!(status(app.get_as(&checker, &format!("/api/v1/vault/CARD-APP/entries/{id}")).await).await.0, 403, "awaiting approval");
    let access = ok(app.get_as(&op1, "/api/v1/vault/CARD-APP/access").await).await;
    assert_eq!(access["grants"][0]["awaiting_approval"], true);
    let (s, body) = status(app.post_as(&op1, &format!("/api/v1/vault/grants/{gid}/approve"), &json!({})).await).await;
    assert_eq!((s, body["rule"].as_str()), (403, Some("second-approver-is-another-holder")), "nobody approves their own request");
    assert_eq!(status(app.post_as(&checker, &format!("/api/v1/vault/grants/{gid}/approve"), &json!({})).await).await.0, 403);
    assert_eq!(app.post_as(&op2, &format!("/api/v1/vault/grants/{gid}/approve"), &json!({})).await.status(), 204);
    let d = ok(app.get_as(&checker, &format!("/api/v1/vault/CARD-APP/entries/{id}")).await).await;
    assert_eq!(d["fields"][0]["first"], "090-3333-4444");
    assert_eq!(d["fields"][0]["second"], "090-3333-4445");
    // Only the disagreeing fields are decided.
    let (s, _) = status(app.post_as(&checker, &format!("/api/v1/vault/CARD-APP/entries/{id}/resolve"), &json!({"values": {"name": "x"}})).await).await;
    assert_eq!(s, 422);
    let uid2 = ok(app.post_as(&checker, &format!("/api/v1/vault/CARD-APP/entries/{id}/resolve"), &json!({"values": {"phone": "090-3333-4444"}})).await).await["uid"].as_str().unwrap().to_owned();
    let v = ok(app.post_as(&checker, &format!("/api/v1/vault/CARD-APP/records/{uid2}/reveal"), &json!({"field": "phone", "purpose": "判定結果の確認"})).await).await;
    assert_eq!(v["value"], "090-3333-4444");
    let v = ok(app.post_as(&checker, &format!("/api/v1/vault/CARD-APP/records/{uid1}/reveal"), &json!({"field": "phone", "purpose": "確認"})).await).await;
    assert_eq!(v["value"], "090-1111-2222");
    assert_eq!(ok(app.get_as(&op1, "/api/v1/vault/CARD-APP/entries/mismatches").await).await, json!([]));
    // Equality search on the encrypted phone field by its keyed blind index, however it is written.
    let found = ok(app.get_as(&checker, "/api/v1/vault/CARD-APP/records?field=phone&eq=%EF%BC%90%EF%BC%99%EF%BC%90%2033334444").await).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["uid"], uid2.as_str());
    assert_eq!(ok(app.get_as(&checker, "/api/v1/vault/CARD-APP/records?field=phone&eq=09033334445").await).await, json!([]));
    assert_eq!(status(app.get_as(&checker, "/api/v1/vault/CARD-APP/records?field=name&eq=x").await).await.0, 422, "not searchable");
    let blinds: Vec<(Option<String>,)> = sqlx::query_as("SELECT blind FROM vault_values WHERE field = 'phone'").fetch_all(&app.app.db.pool).await.unwrap();
    assert!(blinds.iter().all(|(b,)| b.as_ref().is_some_and(|b| b.len() == 64 && !b.contains("0903333"))));
    // Every step is in the client's log, without values.
    let log = ok(app.get("/api/v1/ledger/events?client=CARDCO&limit=500").await).await.to_string();
    for a in ["data.entry_first", "data.entry_match", "data.entry_mismatch", "data.entry_review", "data.entry_resolve", "vault.grant_approve", "third-person-resolves", "data.search"] {
        assert!(log.contains(a), "{a}");
    }
    assert!(!log.contains("090-3333") && !log.contains("33334444") && !log.contains("4111 1111"), "no values in the ledger");
}

/// LIFE-1, LIFE-2: an export for the client opens only with the client's own age identity,
/// and it and a medium received by hand are lines of the media handover register.
async fn handover_export(app: TestApp) {
    use std::io::Read;
    let (ciso, op1, _op2, checker) = three_in_the_room(&app).await;
    ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/records", &json!({"values": {"app_no": "A-1", "name": "顧客, 一郎", "phone": "090-5555-6666", "card": "4111111111119999"}})).await).await;
    // Key rotation without downtime (DATA-4): a new data key for new records, then a new KEK
    // re-wrapping every data key; all records stay readable, by this server and a fresh one.
    assert_eq!(status(app.post_as(&op1, "/api/v1/vault/CARD-APP/keys/rotate", &json!({})).await).await.0, 403);
    ok(app.post_as(&ciso, "/api/v1/vault/CARD-APP/keys/rotate", &json!({})).await).await;
    ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/records", &json!({"values": {"app_no": "A-2", "phone": "090-0000-0002"}})).await).await;
    let kek_before = std::fs::read(app.data_dir().join("vault.kek")).unwrap();
    // Two data keys and the blind-index key.
    assert_eq!(ok(app.post_as(&ciso, "/api/v1/vault/kek/rotate", &json!({})).await).await["rewrapped"], 3);
    assert_ne!(std::fs::read(app.data_dir().join("vault.kek")).unwrap(), kek_before);
    let fresh = mamori_core::vault::crypto::FileKek::load_or_create(&app.data_dir().join("vault.kek")).unwrap();
    let keys: Vec<(i64, i64, String)> = sqlx::query_as("SELECT id, business_id, kid FROM vault_keys ORDER BY id").fetch_all(&app.app.db.pool).await.unwrap();
    assert_eq!(keys.len(), 3);
    use mamori_core::vault::crypto::KeyProvider;
    for (id, bid, kid) in &keys {
        let w = fresh.load(kid).unwrap().unwrap();
        assert!(fresh.unwrap(&w, &mamori_core::vault::crypto::key_aad(*bid, *id)).is_ok());
    }
    let export = |t: String| {
        let app = &app;
        async move { app.post_as(&t, "/api/v1/vault/CARD-APP/export", &json!({"counterpart": "カード会社A 佐藤様", "medium": "暗号化ファイル"})).await }
    };
    // No recipient key yet; a malformed key is refused.
    assert_eq!(status(export(op1.clone()).await).await.0, 422);
    let put = |body: Value| app.http.put(app.url("/api/v1/clients/CARDCO/recipient")).bearer_auth(&ciso).json(&body).send();
    assert_eq!(put(json!({"recipient": "age1notakey"})).await.unwrap().status(), 422);
    let identity = age::x25519::Identity::generate();
    assert_eq!(put(json!({"recipient": identity.to_public().to_string()})).await.unwrap().status(), 204);
    // Export is an operation of its own: the checker (no grant) is refused, and it is recorded.
    let (s, body) = status(export(checker.clone()).await).await;
    assert_eq!((s, body["rule"].as_str()), (403, Some("default-deny")));
    let r = export(op1.clone()).await;
    assert_eq!(r.status(), 200);
    let sha = r.headers()["x-mamori-sha256"].to_str().unwrap().to_owned();
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(sha, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    assert!(!String::from_utf8_lossy(&bytes).contains("090-5555"), "encrypted");
    // Only the client's identity opens it; another identity does not.
    let other = age::x25519::Identity::generate();
    assert!(age::Decryptor::new(&bytes[..]).unwrap().decrypt(std::iter::once(&other as &dyn age::Identity)).is_err());
    let mut plain = String::new();
    age::Decryptor::new(&bytes[..]).unwrap().decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap().read_to_string(&mut plain).unwrap();
    assert!(plain.starts_with('\u{feff}'), "UTF-8 with BOM for Excel");
    assert!(plain.contains("申込番号,氏名,電話番号,カード番号") && plain.contains("\"顧客, 一郎\",090-5555-6666,4111111111119999"), "{plain}");
    assert!(plain.contains(",A-2,,090-0000-0002,"), "the record under the newer data key: {plain}");
    // The register holds the export with its checksum; a paper box received is entered and signed for.
    let reg = ok(app.get_as(&ciso, "/api/v1/media-handovers").await).await;
    assert_eq!(reg[0]["sha256"], sha.as_str());
    assert_eq!(reg[0]["direction"], "out");
    assert_eq!(status(app.get_as(&op1, "/api/v1/media-handovers").await).await.0, 403);
    let bad = json!({"client": "CARDCO", "direction": "sideways", "medium": "紙", "description": "申込書 120枚", "counterpart": "佐藤"});
    assert_eq!(status(app.post_as(&ciso, "/api/v1/media-handovers", &bad).await).await.0, 422);
    let good = json!({"client": "CARDCO", "business": "CARD-APP", "direction": "in", "medium": "紙（申込書）", "description": "申込書 120枚（箱1）", "counterpart": "カード会社A 佐藤様"});
    let id = ok(app.post_as(&ciso, "/api/v1/media-handovers", &good).await).await["id"].as_i64().unwrap();
    assert_eq!(app.post_as(&ciso, &format!("/api/v1/media-handovers/{id}/sign"), &json!({"signed_by": "受付 田中"})).await.status(), 204);
    assert_eq!(status(app.post_as(&ciso, &format!("/api/v1/media-handovers/{id}/sign"), &json!({"signed_by": "別人"})).await).await.0, 409);
    let log = ok(app.get("/api/v1/ledger/events?client=CARDCO&limit=500").await).await.to_string();
    for a in ["data.export", "media.handover", "media.signed", "client.recipient", "vault.dek_rotate", &sha] {
        assert!(log.contains(a), "{a}");
    }
}

/// LIFE-3: a backup taken before a deletion cannot decrypt the deleted data: the data keys were
/// never in the database, and the key store no longer has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_before_deletion_cannot_decrypt() {
    let app = mamori_testkit::spawn_app(mamori_testkit::Backend::Sqlite).await.unwrap();
    let (ciso, op1, _op2, _checker) = three_in_the_room(&app).await;
    let uid = ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/records", &json!({"values": {"app_no": "A-1", "phone": "090-7777-8888"}})).await).await["uid"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let report = app.app.backup(dir.path(), 3).await.unwrap();
    ok(app.post_as(&ciso, "/api/v1/vault/CARD-APP/delete", &json!({"reason": "契約終了"})).await).await;
    // Open the backup as an auditor would.
    let identity = mamori_core::backup::backup_identity(&app.data_dir().join("backup.key")).unwrap();
    let db = dir.path().join("restored.sqlite");
    mamori_core::backup::decrypt_file(&dir.path().join(&report.file), &db, &identity).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let (kid, bid, key_id): (String, i64, i64) = sqlx::query_as("SELECT kid, business_id, id FROM vault_keys").fetch_one(&pool).await.unwrap();
    let (sealed,): (Vec<u8>,) = sqlx::query_as("SELECT v.sealed FROM vault_values v JOIN vault_records r ON r.id = v.record_id WHERE r.uid = ?1").bind(&uid).fetch_one(&pool).await.unwrap();
    let (wrapped,): (Vec<u8>,) = sqlx::query_as("SELECT wrapped FROM vault_keys").fetch_one(&pool).await.unwrap();
    assert!(wrapped.is_empty(), "no data key in the database, wrapped or not");
    // The key store no longer holds the key, and no key that remains opens the value.
    let kek = &app.app.vault.kek;
    assert!(kek.load(&kid).unwrap().is_none(), "destroyed");
    let aad = mamori_core::vault::crypto::field_aad(bid, &uid, "phone");
    let store = app.data_dir().join("vault.kek.d");
    for e in std::fs::read_dir(&store).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Ok(Some(w)) = kek.load(&name) {
            if let Ok(k) = kek.unwrap(&w, &mamori_core::vault::crypto::key_aad(bid, key_id)) {
                assert!(mamori_core::vault::crypto::open(&k, &sealed, &aad).is_err());
            }
        }
    }
}

/// DATA-5, LIFE-4: downloads, prints and copies exist only as requests approved beforehand by
/// the information manager, used once by their requester within the policy, and closed by a
/// destruction record or, past their expiry, recorded as destroyed.
async fn copies_need_prior_approval(app: TestApp) {
    let (_ciso, op1, _op2, checker) = three_in_the_room(&app).await;
    let im = app.user_with("im", &[Role::InfoManager]).await;
    ok(app.post_as(&op1, "/api/v1/vault/CARD-APP/records", &json!({"values": {"app_no": "A-1", "name": "顧客 一郎", "phone": "090-1212-3434"}})).await).await;
    let request = |t: String, op: &'static str| {
        let app = &app;
        async move { ok(app.post_as(&t, "/api/v1/vault/CARD-APP/copies", &json!({"op": op, "purpose": "委託元への照会回答", "hours": 4})).await).await["id"].as_i64().unwrap() }
    };
    let id = request(op1.clone(), "download").await;
    let dl = |t: String, id: i64| {
        let app = &app;
        async move { app.get_as(&t, &format!("/api/v1/vault/copies/{id}/download")).await }
    };
    let (s, body) = status(dl(op1.clone(), id).await).await;
    assert_eq!((s, body["rule"].as_str()), (403, Some("copy-needs-prior-approval")));
    // Only the information manager approves; not the requester, not the administrator.
    for t in [&op1, &app.admin_token] {
        let (s, body) = status(app.post_as(t, &format!("/api/v1/vault/copies/{id}/approve"), &json!({})).await).await;
        assert_eq!((s, body["rule"].as_str()), (403, Some("only-info-manager-approves-copies")));
    }
    assert_eq!(app.post_as(&im, &format!("/api/v1/vault/copies/{id}/approve"), &json!({})).await.status(), 204);
    // Used once, by its requester only; the file is watermarked and opens in Excel.
    assert_eq!(status(dl(checker.clone(), id).await).await.1["rule"], "copy-is-for-its-requester");
    let r = dl(op1.clone(), id).await;
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}') && csv.contains(&format!("holder / download #{id}")) && csv.contains("090-1212-3434"), "{csv}");
    assert_eq!(status(dl(op1.clone(), id).await).await.0, 409, "used already");
    assert_eq!(app.post_as(&op1, &format!("/api/v1/vault/copies/{id}/destroyed"), &json!({"method": "シュレッダー（ファイル削除）"})).await.status(), 204);
    assert_eq!(status(app.post_as(&op1, &format!("/api/v1/vault/copies/{id}/destroyed"), &json!({"method": "again"})).await).await.0, 409);
    // A print approval is not a download (and is not used up by the attempt).
    let pid = request(op1.clone(), "print").await;
    ok_empty(app.post_as(&im, &format!("/api/v1/vault/copies/{pid}/approve"), &json!({})).await).await;
    assert_eq!(status(dl(op1.clone(), pid).await).await.0, 422);
    // An approval does not replace the operation's permission: the checker holds no download.
    let cid = request(checker.clone(), "download").await;
    ok_empty(app.post_as(&im, &format!("/api/v1/vault/copies/{cid}/approve"), &json!({})).await).await;
    assert_eq!(status(dl(checker.clone(), cid).await).await.1["rule"], "default-deny");
    // The information manager's own request needs someone else's approval.
    let own = request(im.clone(), "copy").await;
    assert_eq!(status(app.post_as(&im, &format!("/api/v1/vault/copies/{own}/approve"), &json!({})).await).await.1["rule"], "nobody-approves-own-copy");
    // Past the expiry, open copies are recorded as destroyed.
    app.clock.advance(CDuration::hours(5));
    assert!(app.app.expire_copies().await.unwrap() >= 3);
    let reg = ok(app.get_as(&im, "/api/v1/vault/CARD-APP/copies").await).await;
    assert!(reg.as_array().unwrap().iter().all(|c| c["state"] == "destroyed"), "{reg}");
    assert_eq!(ok(app.get_as(&op1, "/api/v1/vault/CARD-APP/copies").await).await.as_array().unwrap().len(), 2, "one's own requests");
    let log = ok(app.get("/api/v1/ledger/events?client=CARDCO&limit=500").await).await.to_string();
    for a in ["data.copy_request", "data.copy_approve", "data.download", "data.copy_destroyed", "data.copy_expired", "default-deny"] {
        assert!(log.contains(a), "{a}");
    }
    assert!(!log.contains("090-1212"));
}

/// MYNUM-1: a My Number business in a zone of its own, handled by designated staff on a
/// terminal of that zone, every access in a separate report.
async fn my_number(app: TestApp) {
    let (ciso, agent, holder, colleague) = secure_room(&app).await;
    ok(app.post("/api/v1/zones", &json!({"code": "MN", "name": "マイナンバー室", "level": "high"})).await).await;
    ok(app.post("/api/v1/doors", &json!({"code": "D-MN", "name": "MN", "inside": "MN"})).await).await;
    ok(app.post("/api/v1/readers", &json!({"code": "MN-IN", "door": "D-MN", "direction": "entry", "mode": "card"})).await).await;
    ok(app.post("/api/v1/access-levels", &json!({"code": "L-MN", "name": "MN", "zones": ["MN"], "position": "主任"})).await).await;
    ok(app.post("/api/v1/clients", &json!({"code": "PAYCO", "name": "給与計算の委託元"})).await).await;
    // Its own zone: not one that another business uses, and no other business joins it.
    let (s, body) = status(app.post("/api/v1/businesses", &json!({"code": "PAY-X", "name": "x", "client": "PAYCO", "zone": "HS", "my_number": true})).await).await;
    assert_eq!(s, 422, "{body}");
    ok(app.post("/api/v1/businesses", &json!({"code": "PAY-MN", "name": "マイナンバー収集", "client": "PAYCO", "zone": "MN", "my_number": true})).await).await;
    assert_eq!(status(app.post("/api/v1/businesses", &json!({"code": "PAY-Y", "name": "y", "client": "PAYCO", "zone": "MN"})).await).await.0, 422);
    ok(app.post_as(&ciso, "/api/v1/vault/PAY-MN/fields", &json!([
        {"name": "name", "label": "氏名", "sensitivity": "personal"},
        {"name": "my_number", "label": "個人番号", "sensitivity": "my_number"}
    ])).await).await;
    assert_eq!(app.post_as(&ciso, "/api/v1/vault/PAY-MN/holders", &json!({"login": "holder"})).await.status(), 201);
    ok(app.post_as(&ciso, "/api/v1/zone-approvals", &json!({"employee_no": "E0", "zone": "MN"})).await).await;
    assert!(ok(app.post_as(&agent, "/api/v1/doors/decide", &json!({"reader": "MN-IN", "card": "felica:0102030405060700"})).await).await["allowed"].as_bool().unwrap());
    // The card room's terminal is not this room's.
    let r = json!({"values": {"name": "社員 一郎", "my_number": "123456789012"}});
    assert_eq!(status(app.post_as(&holder, "/api/v1/vault/PAY-MN/records", &r).await).await.1["rule"], "unregistered-terminal");
    let key = ok(app.post_as(&ciso, "/api/v1/terminals", &json!({"code": "T-MN-1", "name": "MN 端末", "business": "PAY-MN"})).await).await;
    app.set_terminal(key["device_key"].as_str().map(str::to_owned));
    let (s, body) = status(app.post_as(&holder, "/api/v1/vault/PAY-MN/records", &json!({"values": {"my_number": "12345"}})).await).await;
    assert_eq!(s, 422, "{body}");
    let uid = ok(app.post_as(&holder, "/api/v1/vault/PAY-MN/records", &r).await).await["uid"].as_str().unwrap().to_owned();
    assert_eq!(ok(app.get_as(&holder, "/api/v1/vault/PAY-MN/records").await).await[0]["fields"]["my_number"], "************");
    let v = ok(app.post_as(&holder, &format!("/api/v1/vault/PAY-MN/records/{uid}/reveal"), &json!({"field": "my_number", "purpose": "源泉徴収票の作成"})).await).await;
    assert_eq!(v["value"], "123456789012");
    let (s, _) = status(app.post_as(&colleague, &format!("/api/v1/vault/PAY-MN/records/{uid}/reveal"), &json!({"field": "my_number", "purpose": "x"})).await).await;
    assert_eq!(s, 403);
    // The separate report: designated staff and every access, allowed and denied.
    assert_eq!(status(app.get_as(&holder, "/api/v1/vault/PAY-MN/my-number-report").await).await.0, 403);
    assert_eq!(status(app.get_as(&ciso, "/api/v1/vault/CARD-APP/my-number-report").await).await.0, 422);
    let rep = ok(app.get_as(&ciso, "/api/v1/vault/PAY-MN/my-number-report").await).await;
    assert_eq!(rep["designated"][0][0], "holder");
    let acc = rep["accesses"].as_array().unwrap();
    assert!(acc.iter().any(|a| a["action"] == "data.reveal" && a["field"] == "my_number" && a["purpose"] == "源泉徴収票の作成" && a["allowed"] == true), "{rep}");
    assert!(acc.iter().any(|a| a["allowed"] == false && a["rule"] == "outside-secure-zone"), "{rep}");
    assert!(!rep.to_string().contains("123456789012"), "no My Number in the report");
    let csv = app.get_as(&ciso, "/api/v1/vault/PAY-MN/my-number-report?format=csv").await.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}') && csv.contains("特定個人情報") && csv.contains("源泉徴収票の作成"), "{csv}");
}

/// DATA-1 to DATA-7: for every combination of role, link to a person, presence, terminal,
/// standing holding and grant state (active, expired, revoked, awaiting its second approver,
/// for another operation), a reveal succeeds exactly when the policy allows it: a role that
/// reaches the vault, linked, inside the business's zone, on its registered terminal, and a
/// standing holder or holder of an active, approved grant of `view`. 864 cases, run for real
/// through the store (the facts are computed by the same query the server uses).
async fn no_combination_opens_more(app: TestApp) {
    let (ciso, agent, holder, _colleague) = secure_room(&app).await;
    ok(app.post_as(&ciso, "/api/v1/vault/CARD-APP/fields", &json!([{"name": "phone", "label": "電話番号", "sensitivity": "personal"}])).await).await;
    assert_eq!(app.post_as(&ciso, "/api/v1/vault/CARD-APP/holders", &json!({"login": "holder"})).await.status(), 201);
    assert!(ok(app.post_as(&agent, "/api/v1/doors/decide", &json!({"reader": "IN", "card": "felica:0102030405060700"})).await).await["allowed"].as_bool().unwrap());
    let uid = ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/records", &json!({"values": {"phone": "090-9999-0000"}})).await).await["uid"].as_str().unwrap().to_owned();
    // A second room and business with its own terminal; a revoked terminal of the first.
    ok(app.post("/api/v1/zones", &json!({"code": "HS2", "name": "別室", "level": "high"})).await).await;
    ok(app.post("/api/v1/businesses", &json!({"code": "OTHER", "name": "別業務", "client": "CARDCO", "zone": "HS2"})).await).await;
    let right = app.terminal().unwrap();
    let other = ok(app.post_as(&ciso, "/api/v1/terminals", &json!({"code": "T-OTHER", "name": "別室端末", "business": "OTHER"})).await).await["device_key"].as_str().unwrap().to_owned();
    let revoked = ok(app.post_as(&ciso, "/api/v1/terminals", &json!({"code": "T-REV", "name": "廃止端末", "business": "CARD-APP"})).await).await["device_key"].as_str().unwrap().to_owned();
    assert_eq!(app.post_as(&ciso, "/api/v1/terminals/T-REV/revoke", &json!({})).await.status(), 204);
    let subject = app.user_with("subject", &[Role::Operator]).await;
    let pool = &app.app.db.pool;
    let id_of = |sql: &'static str| async move { sqlx::query_as::<_, (i64,)>(sql).fetch_one(pool).await.unwrap().0 };
    let (user, person, hs, hs2, biz) = (
        id_of("SELECT id FROM users WHERE login = 'subject'").await,
        id_of("SELECT id FROM people WHERE employee_no = 'E1'").await,
        id_of("SELECT id FROM zones WHERE code = 'HS'").await,
        id_of("SELECT id FROM zones WHERE code = 'HS2'").await,
        id_of("SELECT id FROM businesses WHERE code = 'CARD-APP'").await,
    );
    let holder_id = id_of("SELECT id FROM users WHERE login = 'holder'").await;
    let now = mamori_core::clock::Clock::now(&app.clock).timestamp_millis();
    let hour = 3_600_000;
    let exec = |sql: String| async move { sqlx::query(&sql).execute(pool).await.unwrap() };
    let mut cases = 0;
    for role in [Role::Operator, Role::BusinessLead, Role::DoorAgent] {
        for linked in [false, true] {
            for presence in [None, Some(hs), Some(hs2)] {
                for terminal in [None, Some(&right), Some(&other), Some(&revoked)] {
                    for standing in [false, true] {
                        // none, active view, expired, revoked, awaiting approval, input only
                        for grant in 0..6 {
                            exec(format!("DELETE FROM role_assignments WHERE user_id = {user}")).await;
                            exec(format!("INSERT INTO role_assignments (user_id, role, created_at) VALUES ({user}, '{}', 0)", role.as_str())).await;
                            exec(format!("UPDATE users SET person_id = {} WHERE id = {user}", if linked { person.to_string() } else { "NULL".into() })).await;
                            exec(format!("DELETE FROM presence WHERE person_id = {person}")).await;
                            if let Some(z) = presence {
                                exec(format!("INSERT INTO presence (person_id, zone_id, since) VALUES ({person}, {z}, 0)")).await;
                            }
                            exec(format!("DELETE FROM vault_holders WHERE user_id = {user}")).await;
                            if standing {
                                exec(format!("INSERT INTO vault_holders (business_id, user_id, approved_by, approved_at) VALUES ({biz}, {user}, 1, 0)")).await;
                            }
                            exec(format!("DELETE FROM vault_grants WHERE user_id = {user}")).await;
                            let (ops, starts, ends, revoked_at, needs) = match grant {
                                1 => ("view", now - hour, now + hour, "NULL", 0),
                                2 => ("view", now - 3 * hour, now - hour, "NULL", 0),
                                3 => ("view", now - hour, now + hour, "1", 0),
                                4 => ("input,view", now - hour, now + hour, "NULL", 1),
                                5 => ("input,change", now - hour, now + hour, "NULL", 0),
                                _ => ("", 0, 0, "NULL", 0),
                            };
                            if grant > 0 {
                                exec(format!(
                                    "INSERT INTO vault_grants (business_id, user_id, ops, purpose, starts_at, ends_at, granted_by, created_at, revoked_at, needs_second) \
                                     VALUES ({biz}, {user}, '{ops}', 'p', {starts}, {ends}, {holder_id}, 0, {revoked_at}, {needs})"
                                ))
                                .await;
                            }
                            app.set_terminal(terminal.cloned());
                            let (s, _) = status(app.post_as(&subject, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "phone", "purpose": "検証"})).await).await;
                            let should = role != Role::DoorAgent && linked && presence == Some(hs) && terminal == Some(&right) && (standing || grant == 1);
                            assert_eq!(s == 200, should, "role {role:?} linked {linked} presence {presence:?} terminal {} standing {standing} grant {grant}: {s}", terminal.is_some());
                            assert!(s == 200 || s == 403, "{s}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 864);
}
