//! Entry points for the fuzz targets in `fuzz/` and the test that replays their seeds.
//! Each takes arbitrary bytes and must never panic.

use crate::api::{ExecRequest, LsEntry, clean_slash, parse_form, rel_path};

/// RelPath: whatever it accepts must stay beneath the root once cleaned.
pub fn rel_path_check(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = rel_path(s) {
        let c = clean_slash(p);
        assert!(
            !c.starts_with('/') && c != ".." && !c.starts_with("../"),
            "{s:?} escapes as {c:?}"
        );
        assert!(!c.contains('\0'));
    }
}

/// Secure extraction of arbitrary bytes into a fresh root: nothing may appear beside it.
pub fn tar_extract(data: &[u8]) {
    let tmp = std::env::temp_dir().join(format!(
        "xbuild-fuzz-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let w = tmp.join("w");
    if std::fs::create_dir_all(&w).is_err() {
        return;
    }
    if let Ok(root) = cap_std::fs::Dir::open_ambient_dir(&w, cap_std::ambient_authority()) {
        let _ = crate::tgz::extract(data, &root, std::time::SystemTime::now());
    }
    let beside: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(
        beside,
        [std::ffi::OsString::from("w")],
        "extraction wrote outside its root"
    );
}

fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `/ls` lines: whatever parses re-encodes to a line that parses the same.
pub fn ls_line(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(e) = LsEntry::parse(s)
        && !e.name.contains(['\t', '\n'])
        && e.name.trim() == e.name
        && !e.mode.contains(char::is_whitespace)
    {
        assert_eq!(LsEntry::parse(&e.to_line()), Some(e));
    }
}

/// The exec form: any body parses, and what parses re-encodes losslessly.
pub fn exec_form(data: &[u8]) {
    let pairs = parse_form(data);
    let r = ExecRequest::from_form(&[], &pairs);
    let again = ExecRequest::from_form(&[], &parse_form(r.to_form().as_bytes()));
    assert_eq!(again, r);
}
