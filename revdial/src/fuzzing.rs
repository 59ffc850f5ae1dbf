//! Entry points for the fuzz targets in `fuzz/` and the test that replays their seeds.
//! Each takes arbitrary bytes and must never panic.

use crate::control;
use crate::http1;

/// The control codec: framing, decoding, and re-encoding what decodes.
pub fn control_codec(data: &[u8]) {
    let _ = control::check_line(data);
    if let Ok(m) = control::decode(data) {
        let mut out = Vec::new();
        control::encode(&m, &mut out);
        // What we write, we read back identically.
        assert_eq!(control::decode(&out).ok(), Some(m));
    }
}

/// The `101`/`307` response parser and the request-head parser.
pub fn switch_response(data: &[u8]) {
    if let Ok(http1::Parsed::Complete(head, n)) = http1::parse_response_head(data) {
        assert!(n <= data.len());
        let _ = (head.status_text(), head.header("location"));
    }
    if let Ok(http1::Parsed::Complete(head, n)) = http1::parse_request_head(data) {
        assert!(n <= data.len());
        let _ = (head.path(), head.query_param("revdial.dialer"));
    }
}
