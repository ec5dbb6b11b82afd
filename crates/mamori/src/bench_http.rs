//! The load generator's HTTP/1.1 client: keep-alive connections that each send one request
//! (bytes made before the run) and read its answer whole, as `wrk` does. A general client
//! (reqwest: URL parsing, header maps, cookie and redirect layers, a connection task per
//! connection) spent about a quarter of this 2-core machine on itself, and every cycle the
//! generator spends is one the server under test does not get.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most a header block may take before the answer is refused.
const MAX_HEAD: usize = 16 * 1024;

/// A request made once: method, path, the headers every request carries, and a body.
pub fn request(method: &str, host: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// One keep-alive connection and its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads what has arrived onto the end of the buffer.
    async fn more(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.stream.read_buf(&mut self.buf).await? > 0, "connection closed");
        Ok(())
    }

    /// Sends `req` and reads the answer: its status and body (the buffer holds it until the
    /// next request).
    async fn exchange(&mut self, req: &[u8]) -> anyhow::Result<(u16, &[u8])> {
        self.stream.write_all(req).await?;
        self.buf.clear();
        let (status, head, len) = loop {
            self.more().await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = resp.parse(&self.buf)? {
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .ok_or_else(|| anyhow::anyhow!("an answer without a Content-Length"))?;
                break (resp.code.unwrap_or(0), head, len);
            }
            anyhow::ensure!(self.buf.len() <= MAX_HEAD, "header block too long");
        };
        while self.buf.len() < head + len {
            self.more().await?;
        }
        anyhow::ensure!(self.buf.len() == head + len, "more bytes than the answer");
        Ok((status, &self.buf[head..head + len]))
    }
}

/// Idle connections to one server, opened as needed (at most as many as requests in flight).
pub struct Client {
    addr: SocketAddr,
    idle: Mutex<Vec<Conn>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Self { addr, idle: Mutex::new(Vec::new()) })
    }

    /// Sends `req` on an idle connection (or a new one); true if the answer is a success and
    /// `check` accepts its body. A connection that failed is closed.
    pub async fn send(&self, req: &[u8], check: impl FnOnce(&[u8]) -> bool) -> bool {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match idle {
            Some(c) => c,
            None => match TcpStream::connect(self.addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    Conn { stream, buf: Vec::with_capacity(8192) }
                }
                Err(_) => return false,
            },
        };
        let ok = match conn.exchange(req).await {
            Ok((status, body)) => (200..300).contains(&status) && check(body),
            Err(_) => return false,
        };
        if let Ok(mut v) = self.idle.lock() {
            v.push(conn);
        }
        ok
    }
}
