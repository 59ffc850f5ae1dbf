//! Streaming a directory out as `.tar.gz` (spec §3.5): entries in lexical order, symlinks
//! not followed (their target is recorded), no root entry, names relative to the
//! directory with `/` separators and a trailing `/` on directories.
//!
//! The tar stream is cut into chunks of uncompressed data (1 MiB, upstream's size) and
//! each chunk is gzipped as its own member, on every core at once; members are written in
//! order, so the output is deterministic for a given tree and options.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, FileTypeExt, MetadataExt};
use flate2::Compression;
use flate2::write::GzEncoder;

/// How to pack.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Uncompressed bytes per gzip member. Upstream: 1 MiB.
    pub chunk: usize,
    /// gzip level (0–9). Default 6, gzip's and Go's default.
    pub level: u32,
    /// Compression threads; default: every core.
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            chunk: 1 << 20,
            level: 6,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Writes `dir` (beneath its own handle) to `out` as multi-member `.tar.gz`.
pub fn pack<W: Write>(dir: &Dir, out: W, opts: &PackOptions) -> io::Result<W> {
    let gz = ParGz::new(out, opts);
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    walk(&mut builder, dir, "")?;
    builder.into_inner()?.finish()
}

fn walk<W: Write>(b: &mut tar::Builder<W>, dir: &Dir, prefix: &str) -> io::Result<()> {
    let mut names: Vec<String> = Vec::new();
    for entry in dir.entries()? {
        let name = entry?.file_name();
        names.push(
            name.into_string()
                .map_err(|n| io::Error::other(format!("non-UTF-8 file name {n:?}")))?,
        );
    }
    names.sort_unstable();
    for name in names {
        let rel = format!("{prefix}{name}");
        let meta = dir.symlink_metadata(&name)?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{rel}/"), io::empty())?;
            let sub = dir.open_dir_nofollow(&name)?;
            walk(b, &sub, &format!("{rel}/"))?;
        } else if ft.is_symlink() {
            let target = dir.read_link_contents(&name)?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &rel, target)?;
        } else if ft.is_file() {
            let mut f = dir.open(&name)?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            // A file that changes size while it is read would corrupt the stream; take
            // exactly the size in the header.
            b.append_data(&mut h, &rel, (&mut f).take(meta.len()))?;
        } else {
            let kind = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                return Err(io::Error::other(format!(
                    "archive/tar: sockets not supported: {rel}"
                )));
            };
            h.set_entry_type(kind);
            h.set_size(0);
            let rdev = meta.rdev();
            h.set_device_major(libc_major(rdev))?;
            h.set_device_minor(libc_minor(rdev))?;
            b.append_data(&mut h, &rel, io::empty())?;
        }
    }
    Ok(())
}

// glibc's encoding of dev_t.
fn libc_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}
fn libc_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

/// A writer that gzips fixed-size chunks as separate members on a pool of threads and
/// writes the members to `out` in order. At most `2 × threads` chunks are in flight.
struct ParGz<W: Write> {
    out: W,
    buf: Vec<u8>,
    chunk: usize,
    level: u32,
    next_seq: u64,
    next_out: u64,
    done: BTreeMap<u64, Vec<u8>>,
    pool: Option<Pool>,
}

struct Pool {
    jobs: SyncSender<(u64, Vec<u8>)>,
    results: Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<JoinHandle<()>>,
    max_in_flight: u64,
}

fn compress(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 3), Compression::new(level));
    enc.write_all(data)?;
    enc.finish()
}

impl<W: Write> ParGz<W> {
    fn new(out: W, opts: &PackOptions) -> Self {
        let threads = opts.threads.max(1);
        let pool = (threads > 1).then(|| {
            let (jobs, job_rx) = sync_channel::<(u64, Vec<u8>)>(threads);
            let (res_tx, results) = std::sync::mpsc::channel();
            let job_rx = Arc::new(Mutex::new(job_rx));
            let level = opts.level;
            let workers = (0..threads)
                .map(|_| {
                    let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
                    std::thread::spawn(move || {
                        loop {
                            let job = job_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            let Ok((seq, data)) = job else { return };
                            if res_tx.send((seq, compress(&data, level))).is_err() {
                                return;
                            }
                        }
                    })
                })
                .collect();
            Pool {
                jobs,
                results,
                workers,
                max_in_flight: 2 * threads as u64,
            }
        });
        ParGz {
            out,
            buf: Vec::with_capacity(opts.chunk),
            chunk: opts.chunk.max(1),
            level: opts.level,
            next_seq: 0,
            next_out: 0,
            done: BTreeMap::new(),
            pool,
        }
    }

    /// Sends the buffered chunk to be compressed (or compresses it inline).
    fn dispatch(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        let Some(max_in_flight) = self.pool.as_ref().map(|p| p.max_in_flight) else {
            let member = compress(&data, self.level)?;
            return self.out.write_all(&member);
        };
        while self.next_seq - self.next_out >= max_in_flight {
            self.collect_one()?;
        }
        let pool = self.pool.as_ref().expect("pool checked above");
        pool.jobs
            .send((self.next_seq, data))
            .map_err(|_| io::Error::other("compression worker exited"))?;
        self.next_seq += 1;
        Ok(())
    }

    /// Waits for one compressed member and writes every member that is now in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let pool = self.pool.as_ref().expect("collect_one needs the pool");
        let (seq, member) = pool
            .results
            .recv()
            .map_err(|_| io::Error::other("compression worker exited"))?;
        self.done.insert(seq, member?);
        while let Some(m) = self.done.remove(&self.next_out) {
            self.out.write_all(&m)?;
            self.next_out += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.dispatch()?;
        while self.pool.is_some() && self.next_out < self.next_seq {
            self.collect_one()?;
        }
        if let Some(pool) = self.pool.take() {
            drop(pool.jobs);
            for w in pool.workers {
                let _ = w.join();
            }
        }
        if self.next_seq == 0 && self.next_out == 0 {
            // An empty tree still yields a valid gzip stream.
            let member = compress(&[], self.level)?;
            self.out.write_all(&member)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.chunk {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
