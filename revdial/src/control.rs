//! The control-message codec: newline-delimited JSON objects (spec revdial §4), as pure
//! functions with no I/O.
//!
//! Decoding follows Go's `encoding/json` as upstream peers use it: keys match ASCII
//! case-insensitively, unknown keys are ignored, `null` is an empty message, surrounding
//! JSON whitespace (so CRLF) is accepted, and anything else (an empty line, trailing
//! data, a non-string field) is invalid. Encoding is byte-identical to Go's: keys in the
//! order `command`, `connPath`, `err`, empty fields omitted, and `<`, `>`, `&`, U+2028,
//! U+2029 escaped.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Longest control line a Go peer reads, including its LF (Go's `bufio.Reader` default).
pub const MAX_LINE: usize = 4096;

/// A control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Dialer → Listener: nothing to do (liveness only).
    KeepAlive,
    /// Dialer → Listener: open a pickup connection to `connPath`.
    ConnReady,
    /// Listener → Dialer: a pickup failed; `err` says why.
    PickupFailed,
    /// Any other value, including empty: ignored by both sides.
    Other(String),
}

impl Command {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Command::KeepAlive => "keep-alive",
            Command::ConnReady => "conn-ready",
            Command::PickupFailed => "pickup-failed",
            Command::Other(s) => s,
        }
    }

    fn from_wire(s: String) -> Command {
        match s.as_str() {
            "keep-alive" => Command::KeepAlive,
            "conn-ready" => Command::ConnReady,
            "pickup-failed" => Command::PickupFailed,
            _ => Command::Other(s),
        }
    }
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What to do.
    pub command: Command,
    /// The pickup path (`conn-ready`; best effort in `pickup-failed`).
    pub conn_path: String,
    /// Failure text (`pickup-failed`).
    pub err: String,
}

impl Message {
    /// `{"command":"keep-alive"}`.
    pub fn keep_alive() -> Message {
        Message::new(Command::KeepAlive, "", "")
    }

    /// `{"command":"conn-ready","connPath":…}`.
    pub fn conn_ready(path: &str) -> Message {
        Message::new(Command::ConnReady, path, "")
    }

    /// `{"command":"pickup-failed","connPath":…,"err":…}`.
    pub fn pickup_failed(path: &str, err: &str) -> Message {
        Message::new(Command::PickupFailed, path, err)
    }

    fn new(command: Command, conn_path: &str, err: &str) -> Message {
        Message {
            command,
            conn_path: conn_path.to_owned(),
            err: err.to_owned(),
        }
    }
}

/// Why a line is not a valid control message. The reader that gets one closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMessage(pub String);

impl fmt::Display for InvalidMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON: {}", self.0)
    }
}

impl std::error::Error for InvalidMessage {}

/// The result of looking for one line in a read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line of this many bytes (including the LF) is at the buffer's start.
    Line(usize),
    /// No LF yet; read more.
    Incomplete,
    /// No LF within [`MAX_LINE`] bytes: the peer is not speaking the protocol.
    TooLong,
}

/// Finds the first line in `buf` (mini-redis style `check`: no allocation, no parsing).
pub fn check_line(buf: &[u8]) -> Frame {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Frame::Line(i + 1),
        None if buf.len() >= MAX_LINE => Frame::TooLong,
        None => Frame::Incomplete,
    }
}

/// Decodes one line (with or without its LF) as Go's `json.Unmarshal` would.
pub fn decode(line: &[u8]) -> Result<Message, InvalidMessage> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let fields = de
        .deserialize_any(MessageVisitor)
        .map_err(|e| InvalidMessage(e.to_string()))?;
    de.end().map_err(|e| InvalidMessage(e.to_string()))?;
    Ok(Message {
        command: Command::from_wire(fields.command),
        conn_path: fields.conn_path,
        err: fields.err,
    })
}

#[derive(Default)]
struct Fields {
    command: String,
    conn_path: String,
    err: String,
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or null")
    }

    /// Go unmarshals `null` into a struct as a no-op: an empty message.
    fn visit_unit<E: de::Error>(self) -> Result<Fields, E> {
        Ok(Fields::default())
    }

    /// Keys are taken in document order so a later duplicate wins, as in Go.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = if key.eq_ignore_ascii_case("command") {
                &mut f.command
            } else if key.eq_ignore_ascii_case("connPath") {
                &mut f.conn_path
            } else if key.eq_ignore_ascii_case("err") {
                &mut f.err
            } else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            // Go leaves a string field unchanged when the value is null.
            if let Some(v) = map.next_value::<Option<String>>()? {
                *slot = v;
            }
        }
        Ok(f)
    }
}

/// Appends `msg` as Go encodes it, followed by `\n`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (key, value) in [
        ("command", msg.command.as_str()),
        ("connPath", msg.conn_path.as_str()),
        ("err", msg.err.as_str()),
    ] {
        if value.is_empty() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        encode_go_string(value, out);
    }
    out.extend_from_slice(b"}\n");
}

/// Writes a JSON string exactly as Go's `encoding/json` does with HTML escaping on.
pub fn encode_go_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                let n = c as u32;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(n >> 4) as usize]);
                out.push(HEX[(n & 0xf) as usize]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(m: &Message) -> String {
        let mut v = Vec::new();
        encode(m, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn encodes_like_go() {
        assert_eq!(
            enc(&Message::keep_alive()),
            "{\"command\":\"keep-alive\"}\n"
        );
        assert_eq!(
            enc(&Message::conn_ready("/x?a=b&revdial.dialer=ab")),
            "{\"command\":\"conn-ready\",\"connPath\":\"/x?a=b\\u0026revdial.dialer=ab\"}\n"
        );
        assert_eq!(
            enc(&Message::pickup_failed("", "dial tcp: <nil>")),
            "{\"command\":\"pickup-failed\",\"err\":\"dial tcp: \\u003cnil\\u003e\"}\n"
        );
    }

    #[test]
    fn decodes_like_go() {
        assert_eq!(
            decode(b"null\n").unwrap().command,
            Command::Other(String::new())
        );
        assert_eq!(
            decode(b"{\"command\":\"keep-alive\"}\r\n").unwrap().command,
            Command::KeepAlive
        );
        let m = decode(br#"{"Command":"conn-ready","ConnPath":"/p","extra":[1,{}]}"#).unwrap();
        assert_eq!(
            (m.command, m.conn_path.as_str()),
            (Command::ConnReady, "/p")
        );
        let m = decode(br#"{"command":"a","COMMAND":"keep-alive","err":null}"#).unwrap();
        assert_eq!(m.command, Command::KeepAlive);
        for bad in [
            &b"\n"[..],
            b"not json\n",
            b"{\"command\":5}\n",
            b"{}{}\n",
            b"[]\n",
            b"\"x\"\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lines_are_bounded() {
        assert_eq!(check_line(b"{}\nrest"), Frame::Line(3));
        assert_eq!(check_line(b"{}"), Frame::Incomplete);
        let mut long = vec![b' '; MAX_LINE - 1];
        long.push(b'\n');
        assert_eq!(check_line(&long), Frame::Line(MAX_LINE));
        assert_eq!(check_line(&vec![b' '; MAX_LINE]), Frame::TooLong);
        assert_eq!(check_line(&vec![b' '; 5000]), Frame::TooLong);
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::KeepAlive),
            Just(Command::ConnReady),
            Just(Command::PickupFailed),
            any::<String>()
                .prop_filter("non-empty", |s| !s.is_empty())
                .prop_map(Command::from_wire),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(command in command(), conn_path in any::<String>(), err in any::<String>()) {
            let m = Message { command, conn_path, err };
            let mut buf = Vec::new();
            encode(&m, &mut buf);
            prop_assert_eq!(check_line(&buf), if buf.len() <= MAX_LINE { Frame::Line(buf.len()) } else { Frame::TooLong });
            prop_assert_eq!(decode(&buf).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&data);
            let _ = check_line(&data);
        }

        #[test]
        fn chunked_framing_matches_whole(data in prop::collection::vec(any::<u8>(), 0..300),
                                         cut in 0usize..300) {
            let whole = check_line(&data);
            let cut = cut.min(data.len());
            // Seeing a prefix never yields a different complete line than the whole.
            match check_line(&data[..cut]) {
                Frame::Line(n) => prop_assert_eq!(whole, Frame::Line(n)),
                Frame::TooLong => prop_assert_eq!(whole, Frame::TooLong),
                Frame::Incomplete => {}
            }
        }
    }
}
