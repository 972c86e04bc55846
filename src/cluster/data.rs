//! Bulk object transfer beside the actor sessions: every node (and driver) serves the objects
//! it keeps on a data port of its own, one plain TCP (or TLS) stream per fetch, the bytes
//! written straight from the stored buffer. The actor messages would copy an object several
//! times (our encoding, the engine's protobuf framing, its 16 MiB frame limit in chunks).
//!
//! A connection proves it knows the cluster secret before it reads anything: the server sends
//! 32 random bytes, the client answers with SHA-256(secret ‖ nonce). Then requests
//! `[id u64][offset u64][len u64]` (big-endian), each answered `[len u64]` and the bytes, or
//! `u64::MAX` for an object that is not there. A client keeps a connection that has proved
//! itself for its next fetch from the same port ([`Pool`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::node::NodeState;
use super::tls::{Dialer, server_name};

/// How long a peer may take to prove itself or to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
const MISSING: u64 = u64::MAX;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Connections to other processes' data ports that have proved the secret, kept between
/// fetches: a new one costs a connect, a nonce from the OS and two more round trips, about a
/// fifth of a 1 MB fetch on loopback here. One pool per runtime (its secret, its dialer).
#[derive(Default)]
pub(crate) struct Pool(parking_lot::Mutex<HashMap<String, Vec<Box<dyn Stream>>>>);

/// Idle connections kept per data port (one per fetch running at once is enough).
const KEPT_PER_PORT: usize = 4;

impl Pool {
    fn take(&self, address: &str) -> Option<Box<dyn Stream>> {
        self.0.lock().get_mut(address).and_then(Vec::pop)
    }

    fn keep(&self, address: &str, s: Box<dyn Stream>) {
        let mut idle = self.0.lock();
        let v = idle.entry(address.to_string()).or_default();
        if v.len() < KEPT_PER_PORT {
            v.push(s);
        }
    }
}

fn proof(secret: &str, nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(secret.as_bytes());
    h.update(nonce);
    h.finalize().into()
}

fn nonce() -> std::io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b)
}

/// Serves this process's objects on `listener` until the runtime stops.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<NodeState>,
    secret: Arc<str>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (state, secret, tls) = (Arc::clone(&state), Arc::clone(&secret), tls.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(tcp),
                Some(a) => match tokio::time::timeout(HANDSHAKE, a.accept(tcp)).await {
                    Ok(Ok(s)) => Box::new(s),
                    _ => return,
                },
            };
            let _ = answer(stream, &state, &secret).await;
        });
    }
}

async fn answer(mut s: Box<dyn Stream>, state: &NodeState, secret: &str) -> std::io::Result<()> {
    let nonce = nonce()?;
    s.write_all(&nonce).await?;
    let mut reply = [0u8; 32];
    tokio::time::timeout(HANDSHAKE, s.read_exact(&mut reply))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    // Compared without an early exit.
    let want = proof(secret, &nonce);
    if reply
        .iter()
        .zip(want.iter())
        .fold(0u8, |d, (a, b)| d | (a ^ b))
        != 0
    {
        return Ok(());
    }
    loop {
        let mut req = [0u8; 24];
        if s.read_exact(&mut req).await.is_err() {
            return Ok(());
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&req[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        let (id, offset, len) = (field(0), field(1), field(2));
        match state.object(id) {
            None => s.write_all(&MISSING.to_be_bytes()).await?,
            Some(o) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(o.len());
                let end = start
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(o.len());
                s.write_all(&((end - start) as u64).to_be_bytes()).await?;
                s.write_all(&o[start..end]).await?;
            }
        }
        s.flush().await?;
    }
}

/// Reads object `id` (`size` bytes) from the data port at `address`, on a kept connection
/// when `pool` has one (a stale one, its peer gone, is dropped and a new one opened).
pub(crate) async fn fetch(
    address: &str,
    id: u64,
    size: u64,
    secret: &str,
    dialer: &Dialer,
    pool: &Pool,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let go = async {
        if let Some(mut s) = pool.take(address)
            && let Ok(b) = request(&mut s, address, id, size).await
        {
            pool.keep(address, s);
            return Ok(b);
        }
        let mut s = connect(address, secret, dialer).await?;
        let b = request(&mut s, address, id, size).await?;
        pool.keep(address, s);
        Ok(b)
    };
    tokio::time::timeout(timeout, go)
        .await
        .map_err(|_| format!("object {id} from {address}: no answer within {timeout:?}"))?
}

/// A new connection to the data port at `address` that has proved the secret.
async fn connect(address: &str, secret: &str, dialer: &Dialer) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot reach the data port {address}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut s: Box<dyn Stream> = match dialer {
        Dialer::Plain => Box::new(tcp),
        Dialer::Tls(c) => Box::new(
            c.connect(server_name(address)?, tcp)
                .await
                .map_err(|e| format!("TLS handshake with the data port {address}: {e}"))?,
        ),
    };
    let io = |e: std::io::Error| format!("the data port {address}: {e}");
    let mut nonce = [0u8; 32];
    s.read_exact(&mut nonce).await.map_err(io)?;
    s.write_all(&proof(secret, &nonce)).await.map_err(io)?;
    Ok(s)
}

/// One request on an open connection. Any error leaves the stream unusable: it is dropped.
async fn request(
    s: &mut Box<dyn Stream>,
    address: &str,
    id: u64,
    size: u64,
) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("object {id} from {address}: {e}");
    let mut req = [0u8; 24];
    req[..8].copy_from_slice(&id.to_be_bytes());
    req[16..].copy_from_slice(&size.to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut len = [0u8; 8];
    s.read_exact(&mut len).await.map_err(io)?;
    let len = u64::from_be_bytes(len);
    if len == MISSING {
        return Err(format!("no object {id} at {address}"));
    }
    if len != size {
        return Err(format!(
            "object {id} at {address}: {len} bytes, expected {size}"
        ));
    }
    let len = usize::try_from(len).map_err(|_| "too large".to_string())?;
    read_vec(s, len).await.map_err(io)
}

/// Reads exactly `len` bytes into a new vector. Its spare capacity is filled directly, not
/// zeroed first: a large one is a block the allocator kept (`ray::HugePageAlloc`), whose pages
/// are already there, and zeroing 100 MB costs as much as copying it.
async fn read_vec<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    use bytes::BufMut;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let left = len - out.len();
        if s.read_buf(&mut (&mut out).limit(left)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(out)
}

/// Binds the data port on `host` (any free port).
pub(crate) async fn bind(host: std::net::IpAddr) -> Result<(TcpListener, String), String> {
    let l = TcpListener::bind((host, 0))
        .await
        .map_err(|e| format!("cannot open a data port on {host}: {e}"))?;
    let a = l.local_addr().map_err(|e| e.to_string())?;
    Ok((l, a.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{NodeInfo, Payload};

    fn node(executor: tokio::runtime::Handle) -> Arc<NodeState> {
        let info = NodeInfo {
            node_id: "test-node".into(),
            address: String::new(),
            is_head: false,
            alive: true,
            total: Default::default(),
            available: Default::default(),
            pid: std::process::id(),
            objects: 0,
            data_address: String::new(),
        };
        let t = Duration::from_secs(5);
        NodeState::new(info, t, t, t, executor)
    }

    #[test]
    fn a_kept_connection_serves_the_next_fetch_and_a_stale_one_is_replaced() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let state = node(tokio::runtime::Handle::current());
            let object: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let Payload::Stored { id, size, .. } = state.payload(object.clone()) else {
                panic!("a 1 MB object is kept, not inlined");
            };
            let (listener, address) = bind("127.0.0.1".parse().expect("ip")).await.expect("bind");
            tokio::spawn(serve(
                listener,
                Arc::clone(&state),
                Arc::from("s3cret"),
                None,
            ));
            let (pool, t) = (Pool::default(), Duration::from_secs(10));
            let fetch = |pool| fetch(&address, id, size, "s3cret", &Dialer::Plain, pool, t);

            assert_eq!(fetch(&pool).await.expect("first fetch"), object);
            assert_eq!(pool.0.lock()[&address].len(), 1, "kept after the fetch");
            assert_eq!(fetch(&pool).await.expect("second fetch"), object);
            assert_eq!(pool.0.lock()[&address].len(), 1, "the same one came back");

            // A kept connection whose peer has gone: the fetch opens a new one.
            let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let stale = TcpStream::connect(dead.local_addr().expect("addr"))
                .await
                .expect("connect");
            drop(dead.accept().await.expect("accept"));
            drop(dead);
            *pool.0.lock().get_mut(&address).expect("kept") = vec![Box::new(stale)];
            assert_eq!(fetch(&pool).await.expect("after a stale one"), object);
            assert_eq!(pool.0.lock()[&address].len(), 1);

            // A wrong secret still gets nothing, and nothing is kept for it.
            let other = Pool::default();
            let refused =
                super::fetch(&address, id, size, "wrong", &Dialer::Plain, &other, t).await;
            assert!(refused.is_err(), "{refused:?}");
            assert!(other.0.lock().get(&address).is_none_or(Vec::is_empty));
        });
    }
}
