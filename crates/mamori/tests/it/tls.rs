//! TLS with rustls when certificate files are configured (issue 2 item 5): HTTPS only, cookies
//! `Secure` (the session cookie with the `__Host-` prefix), and HSTS.

use std::process::{Command, Stdio};

#[tokio::test]
async fn serves_https_with_secure_cookies() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "CI=true but curl is missing");
        eprintln!("SKIP: curl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mamori"))
        .args(["--data-dir", data.to_str().unwrap(), "serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("MAMORI_TLS_CERT_FILE", &cert)
        .env("MAMORI_TLS_KEY_FILE", &key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://localhost:{port}/login");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut out = None;
    for _ in 0..100 {
        let o = Command::new("curl").args(["-s", "-i", "--cacert", cert.to_str().unwrap(), "--resolve", &resolve, &url]).output().unwrap();
        if o.status.success() {
            out = Some(String::from_utf8_lossy(&o.stdout).to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let plain = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/login")]).output().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = out.expect("no HTTPS answer");
    let lower = out.to_lowercase();
    assert!(lower.starts_with("http/1.1 200") || lower.starts_with("http/2 200"), "{out}");
    assert!(lower.contains("strict-transport-security: max-age="), "{out}");
    assert!(lower.contains("set-cookie: mamori_pre=") && lower.contains("; secure"), "{out}");
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200", "plain HTTP must not be served");
}
