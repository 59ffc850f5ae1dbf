//! The tar codec against hostile archives, and random trees through pack → extract.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use buildlet_proto::tgz::{ExtractError, PackOptions, extract, pack};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use common::{build, node, snapshot};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;

mod common;

/// A W inside a sandbox directory, so "outside W" is observable and disposable.
struct Sandbox {
    _tmp: tempfile::TempDir,
    outside: std::path::PathBuf,
    w: std::path::PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path().join("w");
        std::fs::create_dir(&w).unwrap();
        Sandbox {
            outside: tmp.path().to_path_buf(),
            w,
            _tmp: tmp,
        }
    }

    fn root(&self) -> Dir {
        Dir::open_ambient_dir(&self.w, ambient_authority()).unwrap()
    }

    fn extract(&self, tgz: &[u8]) -> Result<(), ExtractError> {
        extract(tgz, &self.root(), SystemTime::now())
    }

    /// Everything in the sandbox outside W (must stay exactly `["w"]`).
    fn outside_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

/// One raw tar entry with any name bytes, type flag, link name and data.
fn raw(name: &[u8], typeflag: u8, link: &[u8], mode: u32, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.as_old_mut().linkflag[0] = typeflag;
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tgz(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut tar: Vec<u8> = entries.concat();
    tar.extend_from_slice(&[0u8; 1024]);
    gz(&tar)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (k, v) in records {
        let rest = format!(" {k}={v}\n");
        let mut len = rest.len() + 1;
        while format!("{len}{rest}").len() != len {
            len += 1;
        }
        body.push_str(&format!("{len}{rest}"));
    }
    raw(b"PaxHeader", b'x', b"", 0o644, body.as_bytes())
}

#[test]
fn parent_and_absolute_names_are_refused() {
    for name in [&b"../evil"[..], b"/abs/x", b"a/../../evil", b""] {
        let s = Sandbox::new();
        let e = s
            .extract(&tgz(&[raw(name, b'0', b"", 0o644, b"x")]))
            .unwrap_err();
        assert!(matches!(e, ExtractError::InvalidName { .. }), "{e}");
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string().starts_with("tar file contained invalid name"),
            "{e}"
        );
        assert_eq!(s.outside_entries(), ["w"]);
    }
}

#[test]
fn symlink_entry_then_file_through_it_stays_inside() {
    let s = Sandbox::new();
    let out = s.outside.join("target");
    std::fs::create_dir(&out).unwrap();
    let arc = tgz(&[
        raw(b"l", b'2', out.to_str().unwrap().as_bytes(), 0o777, b""),
        raw(b"l/x", b'0', b"", 0o644, b"data"),
    ]);
    s.extract(&arc).unwrap();
    // The symlink was skipped, so l/ is a real directory inside W.
    assert!(std::fs::symlink_metadata(s.w.join("l")).unwrap().is_dir());
    assert_eq!(std::fs::read(s.w.join("l/x")).unwrap(), b"data");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn hard_link_to_outside_becomes_an_empty_file() {
    let s = Sandbox::new();
    let secret = s.outside.join("secret");
    std::fs::write(&secret, "do not touch").unwrap();
    let arc = tgz(&[raw(
        b"h",
        b'1',
        secret.to_str().unwrap().as_bytes(),
        0o644,
        b"",
    )]);
    s.extract(&arc).unwrap();
    let meta = std::fs::metadata(s.w.join("h")).unwrap();
    assert_eq!(meta.len(), 0);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.nlink(), 1, "a hard link was created");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not touch");
}

#[test]
fn existing_symlink_in_w_pointing_outside_cannot_be_written_through() {
    let s = Sandbox::new();
    let out = s.outside.join("target");
    std::fs::create_dir(&out).unwrap();
    // Made earlier "via /exec": W/link -> outside.
    std::os::unix::fs::symlink(&out, s.w.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.w.join("file_link")).unwrap();
    for entry in [
        raw(b"link/evil", b'0', b"", 0o644, b"pwned"),
        raw(b"link/sub/evil", b'0', b"", 0o644, b"pwned"),
        raw(b"link/d", b'5', b"", 0o755, b""),
        raw(b"file_link", b'0', b"", 0o644, b"pwned"),
    ] {
        let e = s.extract(&tgz(&[entry])).unwrap_err();
        assert!(
            matches!(e, ExtractError::Escapes { .. } | ExtractError::Io(_)),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "wrote outside W"
        );
    }
    assert_ne!(
        std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
        "pwned"
    );
}

#[test]
fn pax_path_override_is_checked() {
    let s = Sandbox::new();
    let arc = tgz(&[
        pax(&[("path", "../../evil")]),
        raw(b"innocent", b'0', b"", 0o644, b"x"),
    ]);
    let e = s.extract(&arc).unwrap_err();
    assert!(e.to_string().contains("\"../../evil\""), "{e}");
    assert_eq!(s.outside_entries(), ["w"]);
    // A legitimate PAX path works.
    let s = Sandbox::new();
    s.extract(&tgz(&[
        pax(&[("path", "deep/ok.txt")]),
        raw(b"x", b'0', b"", 0o644, b"y"),
    ]))
    .unwrap();
    assert_eq!(std::fs::read(s.w.join("deep/ok.txt")).unwrap(), b"y");
}

#[test]
fn gnu_long_names_are_checked_and_supported() {
    let evil = format!("{}/../../../../evil", "a".repeat(150));
    let long = |n: &str| {
        raw(
            b"././@LongLink",
            b'L',
            b"",
            0o644,
            format!("{n}\0").as_bytes(),
        )
    };
    let s = Sandbox::new();
    let e = s
        .extract(&tgz(&[long(&evil), raw(b"x", b'0', b"", 0o644, b"x")]))
        .unwrap_err();
    assert!(matches!(e, ExtractError::InvalidName { .. }), "{e}");
    assert_eq!(s.outside_entries(), ["w"]);
    let ok = format!("{}/file", "b".repeat(180));
    s.extract(&tgz(&[long(&ok), raw(b"x", b'0', b"", 0o644, b"long")]))
        .unwrap();
    assert_eq!(std::fs::read(s.w.join(&ok)).unwrap(), b"long");
}

#[test]
fn devices_and_fifos_are_unsupported() {
    for (flag, mode) in [
        (b'6', "prw-r--r--"),
        (b'3', "Dcrw-r--r--"),
        (b'4', "Drw-r--r--"),
    ] {
        let s = Sandbox::new();
        let e = s
            .extract(&tgz(&[raw(b"dev", flag, b"", 0o644, b"")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("tar file entry dev contained unsupported file type {mode}")
        );
        assert!(!s.w.join("dev").exists());
    }
    // Type bits in the header's own mode field count too (here: a socket).
    let s = Sandbox::new();
    let e = s
        .extract(&tgz(&[raw(b"sock", b'0', b"", 0o140644, b"")]))
        .unwrap_err();
    assert!(matches!(e, ExtractError::Unsupported { .. }), "{e}");
}

#[test]
fn garbage_is_rejected_with_upstream_messages() {
    let s = Sandbox::new();
    let e = s.extract(b"not gzip").unwrap_err();
    assert_eq!(
        e.to_string(),
        "requires gzip-compressed body: gzip: invalid header"
    );
    let e = s
        .extract(&gz(
            b"this is not a tar archive at all, just text that is long enough",
        ))
        .unwrap_err();
    assert!(e.to_string().starts_with("tar error: "), "{e}");
    let mut truncated = tgz(&[raw(b"f", b'0', b"", 0o644, &[1u8; 4000])]);
    truncated.truncate(truncated.len() / 2);
    assert!(s.extract(&truncated).is_err());
}

#[test]
fn future_mtimes_are_clamped_and_multi_member_gzip_is_read() {
    let s = Sandbox::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("future").unwrap();
    h.set_size(1);
    h.set_mode(0o644);
    let year = 365 * 24 * 3600;
    let now = SystemTime::now();
    h.set_mtime(now.duration_since(UNIX_EPOCH).unwrap().as_secs() + year);
    h.set_cksum();
    let mut first = h.as_bytes().to_vec();
    first.extend_from_slice(&[b'x'; 512]);
    let second = raw(b"second", b'0', b"", 0o644, b"two");
    let mut arc = gz(&first);
    let mut tail = second;
    tail.extend_from_slice(&[0u8; 1024]);
    arc.extend(gz(&tail));
    s.extract(&arc).unwrap();
    let m = std::fs::metadata(s.w.join("future"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(m <= SystemTime::now() + Duration::from_secs(1));
    assert_eq!(std::fs::read(s.w.join("second")).unwrap(), b"two");
}

#[test]
fn non_utf8_names_are_refused() {
    let s = Sandbox::new();
    let e = s
        .extract(&tgz(&[raw(b"bad\xff", b'0', b"", 0o644, b"")]))
        .unwrap_err();
    assert!(matches!(e, ExtractError::InvalidName { .. }), "{e}");
}

// --- round trip ------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_trees_round_trip(children in prop::collection::btree_map("[a-zA-Z0-9_-]{1,12}", node(), 0..6),
                               chunk in prop::sample::select(vec![512usize, 4096, 1 << 20]),
                               threads in 1usize..4) {
        let children: Vec<_> = children.into_iter().collect();
        let src = tempfile::tempdir().unwrap();
        // Directories are created 0755 on extraction; make the source match.
        build(src.path(), &children);
        let dir = Dir::open_ambient_dir(src.path(), ambient_authority()).unwrap();
        let opts = PackOptions { chunk, level: 6, threads };
        let bytes = pack(&dir, Vec::new(), &opts).unwrap();
        // Deterministic: the same tree packs to the same bytes.
        prop_assert_eq!(&pack(&dir, Vec::new(), &opts).unwrap(), &bytes);
        let dst = Sandbox::new();
        dst.extract(&bytes).unwrap();
        prop_assert_eq!(snapshot(&dst.w), snapshot(src.path()));
    }
}

/// A special header that claims `size` bytes of zeros: gzip makes the claim cheap to
/// send (2 MiB of zeros compress to about 2 KB).
fn special_claiming(typeflag: u8, size: usize) -> Vec<u8> {
    raw(b"././@LongLink", typeflag, b"", 0o644, &vec![0u8; size])
}

#[test]
fn oversized_long_name_and_pax_headers_are_refused_before_they_are_read() {
    for flag in [b'L', b'K', b'x', b'g'] {
        let s = Sandbox::new();
        let arc = tgz(&[
            special_claiming(flag, 2 << 20),
            raw(b"x", b'0', b"", 0o644, b"x"),
        ]);
        assert!(arc.len() < 64 << 10, "the test archive itself is small");
        let e = s.extract(&arc).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("over the limit of 1048576"), "{msg}");
        assert_eq!(e.status(), 400);
        assert!(
            !s.w.join("x").exists(),
            "nothing after the refused header is written"
        );
    }
    // Exactly at Go's limit is still accepted.
    let s = Sandbox::new();
    let mut name = format!("{}/ok.txt", "d".repeat(100)).into_bytes();
    name.resize(1 << 20, 0);
    s.extract(&tgz(&[
        raw(b"././@LongLink", b'L', b"", 0o644, &name),
        raw(b"x", b'0', b"", 0o644, b"ok"),
    ]))
    .unwrap();
    assert_eq!(
        std::fs::read(s.w.join(format!("{}/ok.txt", "d".repeat(100)))).unwrap(),
        b"ok"
    );
}

#[test]
fn names_over_4096_bytes_are_refused_with_a_short_message() {
    let huge = "n/".repeat(300_000);
    for arc in [
        tgz(&[pax(&[("path", &huge)]), raw(b"x", b'0', b"", 0o644, b"x")]),
        tgz(&[
            raw(b"././@LongLink", b'L', b"", 0o644, huge.as_bytes()),
            raw(b"x", b'0', b"", 0o644, b"x"),
        ]),
    ] {
        let s = Sandbox::new();
        let e = s.extract(&arc).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ExtractError::InvalidName { .. }), "{msg:.300}");
        assert!(msg.contains("longer than 4096 bytes"), "{msg:.300}");
        assert!(msg.len() < 1024, "the message echoes {} bytes", msg.len());
    }
}

#[test]
fn any_mtime_a_header_can_hold_is_handled() {
    let started = SystemTime::now();
    for mtime in [u64::MAX, 1 << 62, 1 << 40] {
        let s = Sandbox::new();
        let mut h = tar::Header::new_gnu();
        h.set_path("t.txt").unwrap();
        h.set_size(1);
        h.set_mode(0o644);
        // Base-256 (GNU) numbers reach far past what SystemTime can represent.
        let field = &mut h.as_old_mut().mtime;
        field[0] = 0x80;
        field[4..].copy_from_slice(&mtime.to_be_bytes());
        h.set_cksum();
        let mut entry = h.as_bytes().to_vec();
        entry.extend_from_slice(b"t");
        entry.resize(1024, 0);
        extract(&tgz(&[entry])[..], &s.root(), started).unwrap();
        let got = std::fs::metadata(s.w.join("t.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(
            got <= started + Duration::from_secs(1),
            "mtime {got:?} not clamped"
        );
    }
}
