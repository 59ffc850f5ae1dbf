//! The buildlet image, made without a registry or a Dockerfile: a root file system holding
//! a statically linked `buildlet` and a static busybox (a shell and the usual tools for
//! build steps), packed in the `docker save` archive format and loaded into the engine
//! (`POST /images/load`, which Docker and Podman both accept).
//!
//! Both programs must be statically linked: the image has no C library. Build the buildlet
//! so with `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target
//! x86_64-unknown-linux-gnu -p buildlet-proto --bin buildlet`; Debian's `busybox-static`
//! provides the other.

use std::path::{Path, PathBuf};

use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::super::ephemeral::{BackendError, DEFAULT_BUILDLET_PATH};

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Repository and tag, `localhost/xbuild-buildlet:latest`.
    pub tag: String,
    /// The static buildlet binary.
    pub buildlet: PathBuf,
    /// The static busybox binary.
    pub busybox: PathBuf,
}

/// The tag `coordinator image build` gives by default.
pub const DEFAULT_TAG: &str = "localhost/xbuild-buildlet:latest";

/// Where Debian's `busybox-static` installs busybox.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// Tools linked to busybox in `/bin`: a shell and what build scripts commonly call.
const APPLETS: &[&str] = &[
    "sh", "ash", "awk", "basename", "cat", "chmod", "cp", "cut", "date", "dirname", "echo", "env",
    "false", "find", "grep", "gzip", "gunzip", "head", "id", "kill", "ln", "ls", "mkdir", "mktemp",
    "mv", "printf", "ps", "pwd", "rm", "rmdir", "sed", "sleep", "sort", "tail", "tar", "tee",
    "test", "touch", "tr", "true", "uname", "uniq", "wc", "wget", "which", "xargs", "yes",
];

/// Whether the ELF file `bytes` is statically linked (has no `PT_INTERP` program header).
/// `None` if it is not a 64-bit little-endian ELF file.
pub fn is_static_elf(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

fn read_static(path: &Path, what: &str, hint: &str) -> Result<Vec<u8>, BackendError> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("reading {what} {}: {e}", path.display()))?;
    match is_static_elf(&bytes) {
        Some(true) => Ok(bytes),
        Some(false) => Err(format!(
            "{what} {} is dynamically linked, but the image has no C library; {hint}",
            path.display()
        )
        .into()),
        None => Err(format!("{what} {} is not an x86-64 ELF program", path.display()).into()),
    }
}

/// A header owned by root with a fixed time, so the same inputs make the same image.
fn header(mode: u32, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The layer: the root file system as a tar archive.
fn layer(buildlet: &[u8], busybox: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut t = tar::Builder::new(Vec::new());
    let dir = |t: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = header(mode, 0, tar::EntryType::Directory);
        t.append_data(&mut h, path, std::io::empty())
    };
    let file = |t: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = header(mode, data.len() as u64, tar::EntryType::Regular);
        t.append_data(&mut h, path, data)
    };
    for (d, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("usr", 0o755),
        ("usr/local", 0o755),
        ("usr/local/bin", 0o755),
        ("tmp", 0o1777),
        ("workdir", 0o755),
    ] {
        dir(&mut t, d, mode)?;
    }
    file(&mut t, "bin/busybox", 0o755, busybox)?;
    for applet in APPLETS {
        let mut h = header(0o777, 0, tar::EntryType::Symlink);
        t.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    let buildlet_path = DEFAULT_BUILDLET_PATH.trim_start_matches('/');
    file(&mut t, buildlet_path, 0o755, buildlet)?;
    file(
        &mut t,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
    )?;
    file(&mut t, "etc/group", 0o644, b"root:x:0:\n")?;
    t.into_inner()
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The image as a `docker save` archive: `manifest.json`, the image config, one layer.
pub fn archive(spec: &ImageSpec) -> Result<Vec<u8>, BackendError> {
    let hint_buildlet = "build it with RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build \
                         --release --target x86_64-unknown-linux-gnu -p buildlet-proto --bin buildlet";
    let buildlet = read_static(&spec.buildlet, "the buildlet", hint_buildlet)?;
    let busybox = read_static(
        &spec.busybox,
        "busybox",
        "install Debian's busybox-static, or pass a static busybox",
    )?;
    let layer = layer(&buildlet, &busybox)?;
    let diff_id = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/bin"],
            "Cmd": [DEFAULT_BUILDLET_PATH, "--help"],
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": "xbuild-rs buildlet"},
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "coordinator image build"}],
    });
    let config = serde_json::to_vec(&config)?;
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_name = format!("{diff_id}/layer.tar");
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [spec.tag],
        "Layers": [layer_name],
    }]))?;
    let mut t = tar::Builder::new(Vec::new());
    for (path, data) in [
        (config_name.as_str(), &config[..]),
        (layer_name.as_str(), &layer[..]),
        ("manifest.json", &manifest[..]),
    ] {
        let mut h = header(0o644, data.len() as u64, tar::EntryType::Regular);
        t.append_data(&mut h, path, data)?;
    }
    Ok(t.into_inner()?)
}

/// Builds the image and loads it into the engine; returns its size in bytes.
pub async fn build(docker: &Docker, spec: &ImageSpec) -> Result<u64, BackendError> {
    let tar = archive(spec)?;
    let size = tar.len() as u64;
    let mut progress = docker.import_image(
        bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        bollard::body_full(Bytes::from(tar)),
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(|e| format!("loading image {}: {e}", spec.tag))?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic_programs() {
        // This test binary is linked however the toolchain links; /bin/sh on a Debian host
        // is dynamic. Either way a garbage file is no ELF at all.
        assert_eq!(is_static_elf(b"#!/bin/sh\n"), None);
        assert_eq!(
            is_static_elf(b"\x7fELF\x02\x01\x01"),
            None,
            "truncated header"
        );
        if let Ok(sh) = std::fs::read("/bin/sh") {
            assert_eq!(
                is_static_elf(&sh),
                Some(false),
                "/bin/sh has an interpreter"
            );
        }
    }
}
