//! Serve instances for the Serve page: each one announces its HTTP address in this machine's
//! session folder while it runs ([`announce_serve`]), and the dashboard reads its
//! `/-/status` over loopback HTTP.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest status document read.
const MAX_BODY: usize = 4 << 20;

/// A Serve instance's entry in the session folder; removed when dropped.
#[derive(Debug)]
pub struct ServeAnnouncement {
    path: PathBuf,
}

impl Drop for ServeAnnouncement {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn folder() -> Option<PathBuf> {
    let d = crate::cluster::session::dir().ok()?.join("serve");
    std::fs::create_dir_all(&d).ok()?;
    Some(d)
}

/// Tells dashboards on this machine that a Serve proxy listens at `address` (best effort:
/// `None` when the session folder cannot be written).
pub fn announce_serve(address: SocketAddr) -> Option<ServeAnnouncement> {
    let path = folder()?.join(format!("{}-{}.json", std::process::id(), address.port()));
    let text = json!({ "address": address.to_string(), "pid": std::process::id() }).to_string();
    std::fs::write(&path, text).ok()?;
    Some(ServeAnnouncement { path })
}

/// The announced instances whose process is alive: `(address, pid)`.
fn announced() -> Vec<(String, Option<u32>)> {
    let Some(d) = folder() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let (Some(addr), Some(pid)) = (v["address"].as_str(), v["pid"].as_u64()) else {
            continue;
        };
        let pid = pid as u32;
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            out.push((addr.to_string(), Some(pid)));
        }
    }
    out.sort();
    out
}

/// Polls Serve instances and turns their request counts into rates between polls.
pub(crate) struct Watcher {
    extra: Vec<String>,
    last: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

impl Watcher {
    pub(crate) fn new(extra: Vec<String>) -> Self {
        Watcher {
            extra,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Every instance with its deployments, or the error that reaching it gave.
    pub(crate) fn poll(&self) -> Vec<Value> {
        let mut targets = announced();
        for a in &self.extra {
            if !targets.iter().any(|(t, _)| t == a) {
                targets.push((a.clone(), None));
            }
        }
        let now = Instant::now();
        let mut out = Vec::new();
        for (address, pid) in targets {
            let status = http_get_json(&address, "/-/status");
            let mut entry = json!({ "address": address, "pid": pid });
            match status {
                Err(e) => entry["error"] = json!(e),
                Ok(mut s) => {
                    if let Some(ds) = s["deployments"].as_array_mut() {
                        for d in ds {
                            let name = d["name"].as_str().unwrap_or_default().to_string();
                            let total = d["requests_total"].as_u64().unwrap_or(0);
                            let key = (address.clone(), name);
                            let mut last = self.last.lock();
                            let rate = last.get(&key).and_then(|(t, n)| {
                                let dt = now.duration_since(*t).as_secs_f64();
                                (dt > 0.05).then(|| total.saturating_sub(*n) as f64 / dt)
                            });
                            last.insert(key, (now, total));
                            d["requests_per_s"] = json!(rate);
                        }
                    }
                    entry["status"] = s;
                }
            }
            out.push(entry);
        }
        out
    }
}

/// `GET http://address/path` on a plain connection, with deadlines; the body as JSON.
fn http_get_json(address: &str, path: &str) -> Result<Value, String> {
    let (status, _, body) = http_call(address, "GET", path, &[])?;
    if status != 200 {
        return Err(format!(
            "{address}{path} answered {status} (an rllib Serve instance answers 200)"
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{address}{path}: not JSON: {e}"))
}

/// One HTTP/1.1 request without a body on a plain connection, with deadlines: the status,
/// the head (lower-cased) and the body (de-chunked).
pub(crate) fn http_call(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, Vec<u8>), String> {
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot reach {address}: {e}"))?;
    s.set_read_timeout(Some(READ_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(READ_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{address}: {e}"))?;
    let mut raw = Vec::new();
    s.take(MAX_BODY as u64 + 64 * 1024)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{address}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{address}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{address}: not an HTTP answer"))?;
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body).ok_or_else(|| format!("{address}: a broken chunked body"))?;
    }
    Ok((status, head, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_join() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk(b"5\r\nab"), None);
    }

    #[test]
    fn an_unreachable_instance_is_an_error_entry() {
        // A port nothing listens on: bind one and let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let w = Watcher::new(vec![format!("127.0.0.1:{port}")]);
        let polled = w.poll();
        let e = polled
            .iter()
            .find(|e| e["address"] == json!(format!("127.0.0.1:{port}")))
            .unwrap();
        assert!(e["error"].as_str().unwrap().contains("cannot reach"), "{e}");
    }
}
