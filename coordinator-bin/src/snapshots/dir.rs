//! Snapshots as files: `blobs/<sha256>.tar.gz` holds each distinct content once, and
//! `keys/<sha256 of the key>` names the blob of a (builder, revision). Writes go to
//! `tmp/` and are renamed into place, so a crash never leaves half a snapshot under a
//! key. When the blobs exceed the size bound, the least recently used keys go first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::hex::{hex, random_hex};

use super::{SnapshotError, SnapshotKey, SnapshotReader, SnapshotStore};

/// Snapshots in a directory, at most `max_bytes` of them.
#[derive(Debug)]
pub struct DirSnapshots {
    root: PathBuf,
    max_bytes: u64,
    /// Puts and evictions one at a time (reads need no lock: a blob is renamed into
    /// place whole and removed only when no key names it).
    write: tokio::sync::Mutex<()>,
}

fn err(what: &str, path: &Path, e: std::io::Error) -> SnapshotError {
    SnapshotError(format!("{what} {}: {e}", path.display()))
}

impl DirSnapshots {
    /// Snapshots under `root` (created if missing), bounded by `max_bytes`.
    pub fn open(root: &Path, max_bytes: u64) -> Result<DirSnapshots, SnapshotError> {
        for sub in ["blobs", "keys", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| err("creating", &d, e))?;
        }
        Ok(DirSnapshots {
            root: root.to_owned(),
            max_bytes,
            write: tokio::sync::Mutex::new(()),
        })
    }

    fn key_path(&self, key: &SnapshotKey) -> PathBuf {
        let mut h = Sha256::new();
        h.update(key.builder.as_bytes());
        h.update([0]);
        h.update(key.rev.as_bytes());
        self.root.join("keys").join(hex(&h.finalize()))
    }

    fn blob_path(&self, hash: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{hash}.tar.gz"))
    }

    /// The blob a key file names (its first line), if the key exists.
    async fn blob_of(&self, key: &SnapshotKey) -> Result<Option<String>, SnapshotError> {
        let path = self.key_path(key);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(text.lines().next().map(str::to_owned)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err("reading", &path, e)),
        }
    }

    /// Writes a key file (also how a read marks a key as recently used).
    async fn write_key(&self, key: &SnapshotKey, hash: &str) -> Result<(), SnapshotError> {
        let path = self.key_path(key);
        let tmp = self.root.join("tmp").join(random_hex(8));
        let text = format!("{hash}\n{}\n{}\n", key.builder, key.rev);
        tokio::fs::write(&tmp, text)
            .await
            .map_err(|e| err("writing", &tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| err("renaming into", &path, e))
    }

    /// Total size of the blobs; removes keys, least recently used first, until it is
    /// within the bound (never `keep`), then blobs no key names.
    async fn evict(&self, keep: &SnapshotKey) -> Result<(), SnapshotError> {
        let root = self.root.clone();
        let keep = self.key_path(keep);
        let max = self.max_bytes;
        tokio::task::spawn_blocking(move || evict_blocking(&root, &keep, max))
            .await
            .map_err(|e| SnapshotError(format!("eviction task: {e}")))?
    }
}

fn evict_blocking(root: &Path, keep: &Path, max: u64) -> Result<(), SnapshotError> {
    let keys_dir = root.join("keys");
    let blobs_dir = root.join("blobs");
    let mut keys: Vec<(SystemTime, PathBuf, String)> = Vec::new();
    for entry in std::fs::read_dir(&keys_dir).map_err(|e| err("listing", &keys_dir, e))? {
        let entry = entry.map_err(|e| err("listing", &keys_dir, e))?;
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let used = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        keys.push((used, path, text.lines().next().unwrap_or("").to_owned()));
    }
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for entry in std::fs::read_dir(&blobs_dir).map_err(|e| err("listing", &blobs_dir, e))? {
        let entry = entry.map_err(|e| err("listing", &blobs_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(hash) = name.strip_suffix(".tar.gz") {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            sizes.insert(hash.to_owned(), len);
        }
    }
    keys.sort();
    let referenced = |keys: &[(SystemTime, PathBuf, String)]| -> HashSet<String> {
        keys.iter().map(|k| k.2.clone()).collect()
    };
    let total = |live: &HashSet<String>| -> u64 { live.iter().filter_map(|h| sizes.get(h)).sum() };
    let mut live = referenced(&keys);
    let mut i = 0;
    while total(&live) > max && i < keys.len() {
        if keys[i].1 == keep {
            i += 1;
            continue;
        }
        let (_, path, _) = keys.remove(i);
        tracing::info!(key = %path.display(), "evicting a snapshot");
        let _ = std::fs::remove_file(&path);
        live = referenced(&keys);
    }
    for hash in sizes.keys() {
        if !live.contains(hash) {
            let _ = std::fs::remove_file(blobs_dir.join(format!("{hash}.tar.gz")));
        }
    }
    Ok(())
}

#[async_trait]
impl SnapshotStore for DirSnapshots {
    async fn exists(&self, key: &SnapshotKey) -> Result<bool, SnapshotError> {
        Ok(match self.blob_of(key).await? {
            Some(hash) => tokio::fs::try_exists(self.blob_path(&hash))
                .await
                .unwrap_or(false),
            None => false,
        })
    }

    async fn open(
        &self,
        key: &SnapshotKey,
    ) -> Result<Option<(SnapshotReader, u64)>, SnapshotError> {
        let Some(hash) = self.blob_of(key).await? else {
            return Ok(None);
        };
        let path = self.blob_path(&hash);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err("opening", &path, e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| err("reading", &path, e))?
            .len();
        // Marks the key as used; failing to do so only affects eviction order.
        if let Err(e) = self.write_key(key, &hash).await {
            tracing::warn!(error = %e, "marking a snapshot used");
        }
        Ok(Some((Box::new(file), len)))
    }

    async fn put(&self, key: &SnapshotKey, mut data: SnapshotReader) -> Result<u64, SnapshotError> {
        let tmp = self.root.join("tmp").join(random_hex(8));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| err("creating", &tmp, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut len = 0u64;
        let copied: Result<(), SnapshotError> = async {
            loop {
                let n = data
                    .read(&mut buf)
                    .await
                    .map_err(|e| SnapshotError(format!("reading the snapshot: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                len += n as u64;
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| err("writing", &tmp, e))?;
            }
            file.sync_all().await.map_err(|e| err("syncing", &tmp, e))
        }
        .await;
        drop(file);
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let hash = hex(&hasher.finalize());
        let _write = self.write.lock().await;
        let blob = self.blob_path(&hash);
        tokio::fs::rename(&tmp, &blob)
            .await
            .map_err(|e| err("renaming into", &blob, e))?;
        self.write_key(key, &hash).await?;
        self.evict(key).await?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(s: &DirSnapshots, key: &SnapshotKey, data: &[u8]) -> u64 {
        s.put(key, Box::new(std::io::Cursor::new(data.to_vec())))
            .await
            .unwrap()
    }

    async fn read(s: &DirSnapshots, key: &SnapshotKey) -> Option<Vec<u8>> {
        let (mut r, len) = s.open(key).await.unwrap()?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out.len() as u64, len);
        Some(out)
    }

    #[tokio::test]
    async fn stores_reads_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirSnapshots::open(dir.path(), 1 << 20).unwrap();
        let k = SnapshotKey::new("linux-amd64", "abc");
        assert!(!s.exists(&k).await.unwrap());
        assert_eq!(read(&s, &k).await, None);
        assert_eq!(put(&s, &k, b"first").await, 5);
        assert!(s.exists(&k).await.unwrap());
        put(&s, &k, b"second").await;
        assert_eq!(read(&s, &k).await.unwrap(), b"second");
        // The replaced content is gone; names with path syntax stay inside the store.
        let odd = SnapshotKey::new("../../etc", "/passwd");
        put(&s, &odd, b"x").await;
        assert_eq!(read(&s, &odd).await.unwrap(), b"x");
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            2
        );
    }

    #[tokio::test]
    async fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirSnapshots::open(dir.path(), 1 << 20).unwrap();
        put(&s, &SnapshotKey::new("a", "1"), b"same").await;
        put(&s, &SnapshotKey::new("b", "1"), b"same").await;
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            1
        );
    }

    #[tokio::test]
    async fn the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirSnapshots::open(dir.path(), 250).unwrap();
        let keys: Vec<SnapshotKey> = (0..3)
            .map(|i| SnapshotKey::new("b", &i.to_string()))
            .collect();
        put(&s, &keys[0], &[0; 100]).await;
        std::thread::sleep(std::time::Duration::from_millis(20));
        put(&s, &keys[1], &[1; 100]).await;
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Reading key 0 makes key 1 the oldest.
        assert!(read(&s, &keys[0]).await.is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        put(&s, &keys[2], &[2; 100]).await;
        assert!(s.exists(&keys[0]).await.unwrap());
        assert!(!s.exists(&keys[1]).await.unwrap(), "evicted");
        assert!(s.exists(&keys[2]).await.unwrap());
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            2
        );
        // A snapshot larger than the bound is still kept: the newest key is never evicted.
        put(&s, &keys[1], &[3; 400]).await;
        assert!(s.exists(&keys[1]).await.unwrap());
    }

    #[tokio::test]
    async fn a_failed_read_stores_nothing() {
        struct Broken;
        impl tokio::io::AsyncRead for Broken {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Err(std::io::Error::other("buildlet lost")))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let s = DirSnapshots::open(dir.path(), 1 << 20).unwrap();
        let k = SnapshotKey::new("a", "1");
        assert!(s.put(&k, Box::new(Broken)).await.is_err());
        assert!(!s.exists(&k).await.unwrap());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
