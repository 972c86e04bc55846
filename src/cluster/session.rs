//! The files that let `rllib status`, `rllib stop` and `address: "auto"` find the nodes
//! started on this machine, and the cluster secret, all owner-only (as Ray's
//! `/tmp/ray/session_latest`). The folder is `$RLLIB_SESSION_DIR`, or `rllib-<user>` in the
//! temporary folder.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable that holds the cluster secret (instead of `--token`).
pub const SECRET_ENV: &str = "RLLIB_CLUSTER_SECRET";

/// What a node started on this machine left behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFile {
    /// The node's id.
    pub node_id: String,
    /// Its listening address.
    pub address: String,
    /// The head's address (its own for a head).
    pub head_address: String,
    /// The node process.
    pub pid: u32,
    /// Whether it is the head.
    pub is_head: bool,
    /// Its TLS files, when the cluster uses TLS.
    #[serde(default)]
    pub tls: Option<super::TlsFiles>,
    /// The dashboard's URL, when this node serves one.
    #[serde(default)]
    pub dashboard: Option<String>,
}

/// The session folder, created owner-only.
pub fn dir() -> Result<PathBuf, String> {
    let d = match std::env::var_os("RLLIB_SESSION_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("rllib-{user}"))
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .map_err(|e| format!("cannot create the session folder {}: {e}", d.display()))?;
    Ok(d)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A new random secret: 32 bytes from the OS, as hex.
pub fn new_secret() -> Result<String, String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom for a secret: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Stores the secret for later commands on this machine.
pub fn save_secret(secret: &str) -> Result<PathBuf, String> {
    let p = dir()?.join("secret");
    write_private(&p, secret)?;
    Ok(p)
}

/// The secret: `$RLLIB_CLUSTER_SECRET`, else the one stored on this machine.
pub fn load_secret() -> Result<String, String> {
    if let Ok(s) = std::env::var(SECRET_ENV)
        && !s.is_empty()
    {
        return Ok(s);
    }
    let p = dir()?.join("secret");
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            format!(
                "no cluster secret: pass --token, set {SECRET_ENV}, or start a node on this \
                 machine first ({} is missing)",
                p.display()
            )
        })
}

/// Records a node started on this machine.
pub fn save_node(n: &NodeFile) -> Result<PathBuf, String> {
    let port = n.address.rsplit(':').next().unwrap_or("0");
    let p = dir()?.join(format!("node-{port}.json"));
    let text = serde_json::to_string_pretty(n).map_err(|e| e.to_string())?;
    write_private(&p, &text)?;
    Ok(p)
}

/// The nodes recorded on this machine, with their files.
pub fn nodes() -> Result<Vec<(PathBuf, NodeFile)>, String> {
    let d = dir()?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("node-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if let Ok(n) = serde_json::from_str::<NodeFile>(&text) {
                out.push((p, n));
            }
        }
    }
    out.sort_by(|a, b| {
        b.1.is_head
            .cmp(&a.1.is_head)
            .then(a.1.address.cmp(&b.1.address))
    });
    Ok(out)
}

/// The TLS files of a node started on this machine in the cluster whose head is at
/// `head_address`, for drivers on this machine.
pub fn tls_for(head_address: &str) -> Option<super::TlsFiles> {
    nodes()
        .ok()?
        .into_iter()
        .find(|(_, n)| n.head_address == head_address)
        .and_then(|(_, n)| n.tls)
}

/// The head address `address: "auto"` means: that of a node recorded on this machine.
pub fn auto_address() -> Result<String, String> {
    nodes()?
        .into_iter()
        .map(|(_, n)| n.head_address)
        .next()
        .ok_or_else(|| {
            "address \"auto\": no node was started on this machine (rllib start --head)".into()
        })
}
