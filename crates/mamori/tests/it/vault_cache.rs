//! The in-memory cache behind API requests (issue 5 performance; `cache.rs`) never serves a
//! stale identity or decision: a change made straight in the store — as another process would
//! (the CLI, a second instance on PostgreSQL), outside every code path of the server — is seen
//! by the very next request, and time-limited grants still end on time (DATA-2, DATA-7).

use chrono::Duration as CDuration;
use mamori_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

use crate::vault::{ok, secure_room};

both_backends! {
    vault_cache_sees_outside_changes => cache_sees_outside_changes;
}

async fn sql(app: &TestApp, q: &str) {
    sqlx::query(q).execute(&app.app.db.pool).await.unwrap();
}

async fn cache_sees_outside_changes(app: TestApp) {
    let (ciso, agent, holder, colleague) = secure_room(&app).await;
    ok(app.post_as(&ciso, "/api/v1/vault/CARD-APP/fields", &json!([{"name": "app_no", "label": "申込番号", "sensitivity": "normal"}, {"name": "phone", "label": "電話番号", "sensitivity": "personal"}])).await).await;
    assert_eq!(app.post_as(&ciso, "/api/v1/vault/CARD-APP/holders", &json!({"login": "holder"})).await.status(), 201);
    for card in ["felica:0102030405060700", "felica:0102030405060701"] {
        assert_eq!(ok(app.post_as(&agent, "/api/v1/doors/decide", &json!({"reader": "IN", "card": card})).await).await["allowed"], true);
    }
    let rec = json!({"values": {"app_no": "A-1", "phone": "090-1111-2222"}});
    let uid = ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/records", &rec).await).await["uid"].as_str().unwrap().to_owned();
    let reveal = |t: String| {
        let (app, uid) = (&app, uid.clone());
        async move {
            let r = app.post_as(&t, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "phone", "purpose": "照合"})).await;
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null)["rule"].as_str().unwrap_or_default().to_owned())
        }
    };
    // Warm: the same request twice, so that every value it rests on is in memory.
    assert_eq!(reveal(holder.clone()).await.0, 200);
    assert_eq!(reveal(holder.clone()).await.0, 200);

    // Each change made in the store refuses the next reveal (with its rule, where one is
    // named), and undoing it opens it again: presence (DATA-7), the business moved out of the
    // secure room, the terminal revoked, the standing holder removed (DATA-1).
    let changes: [(&str, &str, Option<&str>); 4] = [
        (
            "DELETE FROM presence",
            "INSERT INTO presence (person_id, zone_id, since) SELECT id, (SELECT id FROM zones WHERE code = 'HS'), 0 FROM people",
            Some("outside-secure-zone"),
        ),
        (
            "UPDATE businesses SET zone_id = NULL WHERE code = 'CARD-APP'",
            "UPDATE businesses SET zone_id = (SELECT id FROM zones WHERE code = 'HS') WHERE code = 'CARD-APP'",
            None,
        ),
        ("UPDATE terminals SET revoked_at = 1", "UPDATE terminals SET revoked_at = NULL", Some("unregistered-terminal")),
        (
            "DELETE FROM vault_holders",
            "INSERT INTO vault_holders (business_id, user_id, approved_by, approved_at) SELECT b.id, u.id, 1, 0 FROM businesses b, users u WHERE u.login = 'holder'",
            None,
        ),
    ];
    for (change, undo, rule) in changes {
        sql(&app, change).await;
        let (s, refused_by) = reveal(holder.clone()).await;
        assert_eq!(s, 403, "{change}");
        if let Some(rule) = rule {
            assert_eq!(refused_by, rule, "{change}");
        }
        sql(&app, undo).await;
        assert_eq!(reveal(holder.clone()).await.0, 200, "{undo}");
    }

    // A grant, cached as data, still ends at its time without any change in the store (DATA-2),
    // and one revoked straight in the store ends at once.
    assert_eq!(reveal(colleague.clone()).await.0, 403);
    ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/grants", &json!({"login": "colleague", "ops": ["view"], "purpose": "照合応援", "hours": 2})).await).await;
    assert_eq!(reveal(colleague.clone()).await.0, 200);
    assert_eq!(reveal(colleague.clone()).await.0, 200);
    app.clock.advance(CDuration::hours(2) + CDuration::minutes(1));
    assert_eq!(reveal(colleague.clone()).await.0, 403, "an expired grant must not open anything");
    ok(app.post_as(&holder, "/api/v1/vault/CARD-APP/grants", &json!({"login": "colleague", "ops": ["view"], "purpose": "再応援", "hours": 2})).await).await;
    assert_eq!(reveal(colleague.clone()).await.0, 200);
    sql(&app, "UPDATE vault_grants SET revoked_at = 1").await;
    assert_eq!(reveal(colleague.clone()).await.0, 403);

    // The field's schema changed in the store: the next request sees the new schema.
    sql(&app, "DELETE FROM vault_fields WHERE name = 'phone'").await;
    let r = app.post_as(&holder, &format!("/api/v1/vault/CARD-APP/records/{uid}/reveal"), &json!({"field": "phone", "purpose": "照合"})).await;
    assert_eq!(r.status(), 422, "no such field any more");

    // The account disabled, a role taken away, the token revoked — each straight in the store.
    let me = ok(app.get_as(&holder, "/api/v1/me").await).await;
    assert!(me.to_string().contains("operator"), "{me}");
    sql(&app, "DELETE FROM role_assignments WHERE user_id = (SELECT id FROM users WHERE login = 'holder')").await;
    let me = ok(app.get_as(&holder, "/api/v1/me").await).await;
    assert!(!me.to_string().contains("operator"), "a removed role is gone at once: {me}");
    sql(&app, "UPDATE users SET disabled = 1 WHERE login = 'colleague'").await;
    assert_eq!(app.get_as(&colleague, "/api/v1/me").await.status(), 401);
    sql(&app, "UPDATE api_tokens SET revoked_at = 1 WHERE user_id = (SELECT id FROM users WHERE login = 'holder')").await;
    assert_eq!(app.get_as(&holder, "/api/v1/me").await.status(), 401);
}
