//! Extraction of untrusted `.tar.gz` input beneath a root directory.
//!
//! Every name passes upstream's lexical RelPath check first (so errors carry upstream's
//! messages), and then every file-system operation is resolved *by the kernel* relative
//! to the root handle with `cap-std` (openat2 `RESOLVE_BENEATH` on Linux): `..`, absolute
//! symlinks and symlinks that already exist in the root and point outside it all fail
//! instead of escaping. Symlink entries are skipped (as upstream), hard links become empty
//! files (as upstream), devices and FIFOs are refused, future mtimes are clamped.

use std::collections::HashSet;
use std::fs::FileTimes;
use std::io::{self, BufRead, BufReader, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_std::fs::{Dir, DirBuilder, OpenOptions};
use cap_std::fs::{DirBuilderExt, OpenOptionsExt};
use flate2::bufread::MultiGzDecoder;
use tar::EntryType;

use crate::api::{GoFileMode, go_quote, rel_path};

/// Why an extraction failed. [`ExtractError::status`] gives upstream's HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The body is not gzip.
    #[error("requires gzip-compressed body: {0}")]
    Gzip(String),
    /// The tar stream (or the gzip data inside it) is corrupt.
    #[error("tar error: {0}")]
    Tar(String),
    /// An entry name failed the path check.
    #[error("tar file contained invalid name {}: {reason}", go_quote(.name))]
    InvalidName {
        /// The entry name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A FIFO, device, socket or other entry the buildlet does not create.
    #[error("tar file entry {name} contained unsupported file type {mode}")]
    Unsupported {
        /// The entry name.
        name: String,
        /// Go's mode string of the entry.
        mode: String,
    },
    /// An entry resolved outside the root (through a symlink already in it).
    #[error("tar file entry {name} escapes the work directory: {source}")]
    Escapes {
        /// The entry name.
        name: String,
        /// The refusal from the kernel-rooted lookup.
        source: io::Error,
    },
    /// The request body, or what the extraction would write, is over a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// Writing failed.
    #[error("{0}")]
    Io(String),
}

impl ExtractError {
    /// Upstream's status for this error: input errors 400, the rest 500.
    pub fn status(&self) -> u16 {
        match self {
            ExtractError::Io(_) => 500,
            ExtractError::TooLarge(_) => 413,
            _ => 400,
        }
    }

    /// An error reading the archive stream: a body over its limit (the reader's
    /// `FileTooLarge`) is [`ExtractError::TooLarge`]; anything else is `wrap`ped.
    fn from_stream(e: io::Error, wrap: impl FnOnce(String) -> ExtractError) -> ExtractError {
        if e.kind() == io::ErrorKind::FileTooLarge {
            ExtractError::TooLarge(e.to_string())
        } else {
            wrap(e.to_string())
        }
    }
}

/// Caps on what one extraction may create; `None` is unlimited, as upstream.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractLimits {
    /// Bytes of file content written, in total.
    pub max_bytes: Option<u64>,
    /// Entries (files and directories) created.
    pub max_entries: Option<u64>,
}

/// Go's `FileInfo().Mode()` of a tar header: permission and special bits, type bits from
/// the header's mode field, then from the typeflag.
fn go_mode(header: &tar::Header) -> GoFileMode {
    let raw = header.mode().unwrap_or(0);
    let mut m = GoFileMode::from_unix(raw & 0o177777).0;
    m |= match header.entry_type() {
        EntryType::Symlink => GoFileMode::SYMLINK,
        EntryType::Char => GoFileMode::DEVICE | GoFileMode::CHAR_DEVICE,
        EntryType::Block => GoFileMode::DEVICE,
        EntryType::Directory => GoFileMode::DIR,
        EntryType::Fifo => GoFileMode::NAMED_PIPE,
        _ => 0,
    };
    GoFileMode(m)
}

fn escapes(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.to_string().contains("outside")
}

/// Creates directories (0755) beneath the root, remembering which exist so deep trees
/// cost one lookup per new directory.
struct Dirs<'a> {
    root: &'a Dir,
    made: HashSet<String>,
    builder: DirBuilder,
}

impl<'a> Dirs<'a> {
    fn new(root: &'a Dir) -> Self {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o755);
        Dirs {
            root,
            made: HashSet::new(),
            builder,
        }
    }

    fn ensure(&mut self, rel: &str, name: &str) -> Result<(), ExtractError> {
        if rel.is_empty() || rel == "." || self.made.contains(rel) {
            return Ok(());
        }
        self.root.create_dir_with(rel, &self.builder).map_err(|e| {
            if escapes(&e) {
                ExtractError::Escapes {
                    name: name.to_owned(),
                    source: e,
                }
            } else {
                ExtractError::Io(format!("mkdir {rel}: {e}"))
            }
        })?;
        self.made.insert(rel.to_owned());
        Ok(())
    }
}

/// The parent of a cleaned relative slash path (`""` for a top-level name).
fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Extracts the `.tar.gz` stream `input` beneath `root`. `started` is the moment the
/// request began: later mtimes are clamped to it. Upstream's behaviour is kept: the
/// extraction is not atomic, and files written before an error stay.
pub fn extract<R: Read>(input: R, root: &Dir, started: SystemTime) -> Result<(), ExtractError> {
    extract_limited(input, root, started, ExtractLimits::default())
}

/// [`extract`] within `limits`: going over one stops the extraction with
/// [`ExtractError::TooLarge`] (what was written before stays, as with any error).
pub fn extract_limited<R: Read>(
    input: R,
    root: &Dir,
    started: SystemTime,
    limits: ExtractLimits,
) -> Result<(), ExtractError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| ExtractError::from_stream(e, ExtractError::Gzip))?;
    if head.len() < 2 || head[0] != 0x1f || head[1] != 0x8b {
        let msg = if head.is_empty() {
            "EOF"
        } else {
            "gzip: invalid header"
        };
        return Err(ExtractError::Gzip(msg.into()));
    }
    let mut archive = tar::Archive::new(MultiGzDecoder::new(input));
    let mut dirs = Dirs::new(root);
    let mut buf = vec![0u8; 256 * 1024];
    // Raw entries: long names and PAX records come to us unread, so their sizes are
    // checked before a byte of them is buffered (the tar crate would read any size).
    let entries = archive
        .entries()
        .map_err(|e| ExtractError::from_stream(e, ExtractError::Tar))?
        .raw(true);
    let mut pending = Pending::default();
    let mut budget = Budget::new(limits);
    for entry in entries {
        let mut entry = entry.map_err(|e| ExtractError::from_stream(e, ExtractError::Tar))?;
        let kind = entry.header().entry_type();
        if pending.take_special(kind, &mut entry)? {
            continue;
        }
        if kind.is_gnu_sparse() {
            return Err(ExtractError::Unsupported {
                name: shown(&entry.path_bytes()),
                mode: "sparse file".into(),
            });
        }
        let header_size = entry.header().entry_size().unwrap_or(0);
        if let Some(size) = pending.pax_size.take()
            && size != header_size
        {
            return Err(ExtractError::Tar(format!(
                "a PAX size record ({size}) differs from the entry's header ({header_size}); \
                 such archives are not supported"
            )));
        }
        let name_bytes = match (pending.pax_path.take(), pending.long_name.take()) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => entry.path_bytes().into_owned(),
        };
        if name_bytes.len() > MAX_NAME {
            return Err(ExtractError::InvalidName {
                name: shown(&name_bytes),
                reason: format!("name is longer than {MAX_NAME} bytes"),
            });
        }
        let name = String::from_utf8(name_bytes).map_err(|e| ExtractError::InvalidName {
            name: shown(e.as_bytes()),
            reason: "name is not valid UTF-8".into(),
        })?;
        rel_path(&name).map_err(|reason| ExtractError::InvalidName {
            name: name.clone(),
            reason,
        })?;
        let rel = crate::api::clean_slash(&name);
        let mode = go_mode(entry.header());
        if mode.is_regular() {
            budget.entry()?;
            budget.bytes(header_size)?;
            dirs.ensure(parent(&rel), &name)?;
            write_file(&mut entry, root, &rel, &name, mode, started, &mut buf)?;
        } else if mode.is_dir() {
            budget.entry()?;
            dirs.ensure(&rel, &name)?;
        } else if mode.0 & GoFileMode::SYMLINK != 0 {
            continue;
        } else {
            return Err(ExtractError::Unsupported {
                name,
                mode: mode.to_string(),
            });
        }
    }
    if pending.long_name.is_some() || pending.pax_path.is_some() {
        return Err(ExtractError::Tar(
            "the archive ends with a long-name or PAX header and no entry for it".into(),
        ));
    }
    Ok(())
}

/// What is left of an extraction's limits.
struct Budget {
    limits: ExtractLimits,
    entries: u64,
    bytes: u64,
}

impl Budget {
    fn new(limits: ExtractLimits) -> Budget {
        Budget {
            limits,
            entries: 0,
            bytes: 0,
        }
    }

    fn entry(&mut self) -> Result<(), ExtractError> {
        self.entries += 1;
        match self.limits.max_entries {
            Some(max) if self.entries > max => Err(ExtractError::TooLarge(format!(
                "the archive has more than {max} entries, the limit of this buildlet"
            ))),
            _ => Ok(()),
        }
    }

    /// Counts a file's size from its header before anything is written: a file that
    /// would go over the limit is not started.
    fn bytes(&mut self, size: u64) -> Result<(), ExtractError> {
        self.bytes = self.bytes.saturating_add(size);
        match self.limits.max_bytes {
            Some(max) if self.bytes > max => Err(ExtractError::TooLarge(format!(
                "the archive holds more than {max} bytes of files, the limit of this buildlet"
            ))),
            _ => Ok(()),
        }
    }
}

/// The largest long-name or PAX header accepted, as Go's `archive/tar` (whose limit this
/// is) and so upstream's buildlet.
pub const MAX_SPECIAL_HEADER: u64 = 1 << 20;

/// The longest entry name accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_NAME: usize = 4096;

/// A name as it may appear in an error message: at most 256 bytes of it.
fn shown(name: &[u8]) -> String {
    const SHOWN: usize = 256;
    if name.len() <= SHOWN {
        return String::from_utf8_lossy(name).into_owned();
    }
    format!(
        "{}… ({} bytes)",
        String::from_utf8_lossy(&name[..SHOWN]),
        name.len()
    )
}

/// What the special headers before an entry said about it.
#[derive(Default)]
struct Pending {
    /// A GNU long name (`L`), without its trailing NULs.
    long_name: Option<Vec<u8>>,
    /// A PAX `path` record.
    pax_path: Option<Vec<u8>>,
    /// A PAX `size` record.
    pax_size: Option<u64>,
}

impl Pending {
    /// Consumes `entry` if it is a special header (GNU long name or link, PAX local or
    /// global records), after checking its size; false for an ordinary entry.
    fn take_special<R: Read>(
        &mut self,
        kind: EntryType,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<bool, ExtractError> {
        let what = if kind.is_gnu_longname() {
            "GNU long name"
        } else if kind.is_gnu_longlink() {
            "GNU long link"
        } else if kind.is_pax_local_extensions() {
            "PAX"
        } else if kind.is_pax_global_extensions() {
            "PAX global"
        } else {
            return Ok(false);
        };
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| ExtractError::Tar(e.to_string()))?;
        if size > MAX_SPECIAL_HEADER {
            return Err(ExtractError::Tar(format!(
                "{what} header of {size} bytes is over the limit of {MAX_SPECIAL_HEADER}"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut data).map_err(|e| {
            ExtractError::from_stream(e, |e| {
                ExtractError::Tar(format!("reading a {what} header: {e}"))
            })
        })?;
        if kind.is_gnu_longname() {
            while data.last() == Some(&0) {
                data.pop();
            }
            self.long_name = Some(data);
        } else if kind.is_pax_local_extensions() {
            for ext in tar::PaxExtensions::new(&data) {
                let ext = ext.map_err(|e| ExtractError::Tar(format!("PAX record: {e}")))?;
                match ext.key_bytes() {
                    b"path" => self.pax_path = Some(ext.value_bytes().to_vec()),
                    b"size" => {
                        let size = std::str::from_utf8(ext.value_bytes())
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| {
                                ExtractError::Tar("PAX size record is not a number".into())
                            })?;
                        self.pax_size = Some(size);
                    }
                    _ => {}
                }
            }
        }
        Ok(true)
    }
}

fn write_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    root: &Dir,
    rel: &str,
    name: &str,
    mode: GoFileMode,
    started: SystemTime,
    buf: &mut [u8],
) -> Result<(), ExtractError> {
    let size = entry.header().entry_size().unwrap_or(0);
    let mtime = entry.header().mtime().unwrap_or(0);
    let mut opts = OpenOptions::new();
    opts.write(true)
        .create(true)
        .truncate(true)
        .mode(mode.perm());
    let file = root.open_with(rel, &opts).map_err(|e| {
        if escapes(&e) {
            ExtractError::Escapes {
                name: name.to_owned(),
                source: e,
            }
        } else {
            ExtractError::Io(format!("error writing to {rel}: {e}"))
        }
    })?;
    let mut file = file.into_std();
    let mut written: u64 = 0;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(ExtractError::from_stream(e, |e| {
                    ExtractError::Tar(format!("reading entry {name}: {e}"))
                }));
            }
        };
        std::io::Write::write_all(&mut file, &buf[..n])
            .map_err(|e| ExtractError::Io(format!("error writing to {rel}: {e}")))?;
        written += n as u64;
    }
    // Hard links carry no data upstream and become empty files: a zero size is expected.
    if written != size && entry.header().entry_type() != EntryType::Link {
        return Err(ExtractError::Io(format!(
            "only wrote {written} bytes to {rel}; expected {size}"
        )));
    }
    if mtime != 0 {
        // Any value a header can hold (base-256 reaches far past what SystemTime can):
        // a time past `started`, or past representable, is clamped to `started`.
        let t = UNIX_EPOCH
            .checked_add(Duration::from_secs(mtime))
            .map_or(started, |t| t.min(started));
        // Upstream ignores errors setting times.
        let _ = file.set_times(FileTimes::new().set_accessed(t).set_modified(t));
    }
    Ok(())
}
