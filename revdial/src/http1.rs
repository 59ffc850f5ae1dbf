//! The little HTTP/1.1 that revdial speaks outside hyper: the pickup and registration
//! request it sends, the `101`/`307` responses it reads (accepting Go's `HTTP/0.0` status
//! line, which `httparse` rejects), and request heads it reads on hijacked connections.
//!
//! Parsers are pure functions over a buffer that return "complete, with the head's length"
//! or "incomplete"; the async helpers below only move bytes. Bytes read past a head are
//! never dropped: they stay in the caller's buffer and belong to the stream.

use std::fmt;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response or request head we accept.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest redirect or error body we read (the text goes into an error message).
pub const MAX_BODY: usize = 64 * 1024;
/// How many headers a head may carry.
const MAX_HEADERS: usize = 64;

/// The exact bytes a Go server writes when it switches a hijacked connection to revdial.
pub const GO_SWITCHING_PROTOCOLS: &[u8] = b"HTTP/0.0 101 Switching Protocols\r\n\r\n";

/// The same `101` accepting mux mode (a header Go peers never ask for, so they never see it).
pub const MUX_SWITCHING_PROTOCOLS: &[u8] =
    b"HTTP/0.0 101 Switching Protocols\r\nX-Revdial-Mux: h2/1\r\n\r\n";

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Header fields in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header(&self.headers, name)
    }

    /// Go's `resp.Status`: `"<code> <reason>"`.
    pub fn status_text(&self) -> String {
        format!("{} {}", self.status, self.reason)
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method.
    pub method: String,
    /// Request target (origin form: path and query).
    pub target: String,
    /// Minor version of HTTP/1.x.
    pub minor_version: u8,
    /// Header fields in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header(&self.headers, name)
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k)? == name)
                .then(|| percent_decode(v))
                .flatten()
        })
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Decodes `%XX` and `+` as Go's `url.ParseQuery` does; `None` on a bad escape.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What a parser found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A complete head of this many bytes.
    Complete(T, usize),
    /// Not enough bytes yet.
    Incomplete,
}

/// A malformed head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError(pub String);

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HeadError {}

fn bad(msg: impl Into<String>) -> HeadError {
    HeadError(msg.into())
}

/// Parses a response head. The status line is parsed by hand so that any
/// `HTTP/<digit>.<digit>` is accepted (Go writes `HTTP/0.0 101` on hijacked connections).
pub fn parse_response_head(buf: &[u8]) -> Result<Parsed<ResponseHead>, HeadError> {
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_HEAD {
            Err(bad("status line too long"))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = &buf[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| bad("status line is not UTF-8"))?;
    let (proto, rest) = line
        .split_once(' ')
        .ok_or_else(|| bad(format!("malformed HTTP response {line:?}")))?;
    let v = proto.as_bytes();
    let proto_ok = v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit();
    if !proto_ok {
        return Err(bad(format!("malformed HTTP version {proto:?}")));
    }
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("malformed HTTP status code {code:?}")));
    }
    let status: u16 = code.parse().map_err(|_| bad("bad status code"))?;
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let rest = &buf[line_end + 1..];
    match httparse::parse_headers(rest, &mut raw) {
        Ok(httparse::Status::Complete((n, hs))) => {
            let headers = hs
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            let head = ResponseHead {
                status,
                reason: reason.to_owned(),
                headers,
            };
            Ok(Parsed::Complete(head, line_end + 1 + n))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Err(bad("response head too large"))
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Incomplete),
        Err(e) => Err(bad(format!("malformed MIME header: {e}"))),
    }
}

/// Parses a request head (HTTP/1.0 or 1.1).
pub fn parse_request_head(buf: &[u8]) -> Result<Parsed<RequestHead>, HeadError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let head = RequestHead {
                method: req.method.unwrap_or("").to_owned(),
                target: req.path.unwrap_or("").to_owned(),
                minor_version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
            };
            Ok(Parsed::Complete(head, n))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Err(bad("request head too large"))
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Incomplete),
        Err(e) => Err(bad(format!("malformed request: {e}"))),
    }
}

/// Reads until `parse` finds a complete head; the head's bytes are consumed from `buf`
/// and anything after them stays there. EOF before a complete head is an error.
pub async fn read_head<IO, T>(
    io: &mut IO,
    buf: &mut BytesMut,
    parse: fn(&[u8]) -> Result<Parsed<T>, HeadError>,
) -> std::io::Result<T>
where
    IO: AsyncRead + Unpin,
{
    loop {
        if let Parsed::Complete(head, n) = parse(buf).map_err(invalid_data)? {
            buf.advance(n);
            return Ok(head);
        }
        if io.read_buf(buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a complete HTTP head",
            ));
        }
    }
}

fn invalid_data(e: HeadError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Writes a request the way Go's `http.Request.Write` does for a URL without a host:
/// an empty `Host:` line and Go's User-Agent, then any extra headers.
pub async fn write_get<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    target: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n");
    for (k, v) in extra {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes()).await?;
    io.flush().await
}

/// Why switching protocols failed; texts are upstream's `ReadProtoSwitchOrRedirect`'s.
#[derive(Debug)]
#[non_exhaustive]
pub enum SwitchError {
    /// Writing the request failed.
    Write(std::io::Error),
    /// The response could not be read or parsed.
    Read(std::io::Error),
    /// A 307 without `Location`.
    MissingLocation {
        /// Status line text.
        status: String,
        /// The body (bounded).
        body: String,
    },
    /// A 307 whose `Location` has a scheme or host.
    NotRelative {
        /// The `Location` value.
        location: String,
        /// `scheme` or `host`.
        contains: &'static str,
    },
    /// Any status but 101 and 307.
    Status {
        /// Go's `resp.Status`, e.g. `400 Bad Request`.
        status: String,
        /// The body (bounded).
        body: String,
    },
    /// A second 307.
    TooManyRedirects {
        /// The last `Location`.
        location: String,
    },
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::Write(e) => write!(f, "{e}"),
            SwitchError::Read(e) => write!(f, "switch failed: error reading response: {e}"),
            SwitchError::MissingLocation { status, body } => write!(
                f,
                "switch failed: redirect missing Location header; got {status}:\n\t{body}"
            ),
            SwitchError::NotRelative { location, contains } => write!(
                f,
                "switch failed: redirect Location must be relative: URL {location:?} is not relative: contains {contains}"
            ),
            SwitchError::Status { status, body } => write!(
                f,
                "switch failed: want HTTP status 101 or 307; got {status}:\n\t{body}"
            ),
            SwitchError::TooManyRedirects { .. } => f.write_str("too many redirects"),
        }
    }
}

impl std::error::Error for SwitchError {}

impl SwitchError {
    /// The path upstream puts in `pickup-failed` after this error (see spec §6.3 quirk);
    /// `None` means the key is omitted (the Listener keeps this quirk, so Go and Rust
    /// dialers see the same messages; ours then falls back to its stale tickets).
    pub fn last_location(&self) -> Option<&str> {
        match self {
            SwitchError::TooManyRedirects { location } => Some(location),
            _ => None,
        }
    }
}

/// Why a `Location` is not relative, following Go's `url.Parse`: a scheme is a leading
/// `[A-Za-z][A-Za-z0-9+.-]*:` before any `/`, `?` or `#`; a host is a `//` authority.
fn not_relative(location: &str) -> Option<&'static str> {
    let head = location.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((scheme, _)) = head.split_once(':') {
        let mut chars = scheme.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            return Some("scheme");
        }
    }
    location.starts_with("//").then_some("host")
}

/// Reads a bounded body described by `head` (Content-Length or chunked; otherwise none),
/// for inclusion in an error message.
async fn read_small_body<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    head: &ResponseHead,
) -> std::io::Result<String> {
    let len = head
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    while buf.len() < len {
        if io.read_buf(buf).await? == 0 {
            break;
        }
    }
    let n = len.min(buf.len());
    let body = String::from_utf8_lossy(&buf[..n]).into_owned();
    buf.advance(n);
    Ok(body)
}

/// Sends `GET target` and reads the answer, following at most one relative 307 on the
/// same connection (upstream sends at most two requests). On success, returns the `101`'s
/// head (its headers may accept an offer, such as mux mode), and the bytes already read
/// past it are left in `buf`; they belong to the stream.
pub async fn request_switch<IO>(
    io: &mut IO,
    buf: &mut BytesMut,
    target: &str,
    extra: &[(&str, &str)],
) -> Result<ResponseHead, SwitchError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut target = target.to_owned();
    for _ in 0..2 {
        write_get(io, &target, extra)
            .await
            .map_err(SwitchError::Write)?;
        let head = read_head(io, buf, parse_response_head)
            .await
            .map_err(SwitchError::Read)?;
        match head.status {
            101 => return Ok(head),
            307 => {
                let status = head.status_text();
                let body = read_small_body(io, buf, &head)
                    .await
                    .map_err(SwitchError::Read)?;
                let location = head
                    .header("location")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                if location.is_empty() {
                    return Err(SwitchError::MissingLocation { status, body });
                }
                if let Some(contains) = not_relative(&location) {
                    return Err(SwitchError::NotRelative { location, contains });
                }
                target = location;
            }
            _ => {
                let body = read_small_body(io, buf, &head).await.unwrap_or_default();
                return Err(SwitchError::Status {
                    status: head.status_text(),
                    body,
                });
            }
        }
    }
    Err(SwitchError::TooManyRedirects { location: target })
}

/// Writes a response as Go's `http.Error` does: `text/plain; charset=utf-8`,
/// `X-Content-Type-Options: nosniff`, the message and a newline, then closes nothing
/// (the caller drops the connection).
pub async fn write_go_error<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    status: u16,
    extra_headers: &[(&str, &str)],
    msg: &str,
) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        404 => "Not Found",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Error",
    };
    let body = format!("{msg}\n");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in extra_headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    io.write_all(out.as_bytes()).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_101_is_accepted() {
        let mut buf = GO_SWITCHING_PROTOCOLS.to_vec();
        buf.extend_from_slice(b"{\"command\":\"keep-alive\"}\n");
        let Parsed::Complete(h, n) = parse_response_head(&buf).unwrap() else {
            panic!("incomplete")
        };
        assert_eq!((h.status, n), (101, GO_SWITCHING_PROTOCOLS.len()));
        assert!(
            httparse::Response::new(&mut [httparse::EMPTY_HEADER; 4])
                .parse(GO_SWITCHING_PROTOCOLS)
                .is_err()
        );
    }

    #[test]
    fn relative_locations() {
        assert_eq!(not_relative("/x/reverse"), None);
        assert_eq!(not_relative("x?a=b:c"), None);
        assert_eq!(not_relative("https://evil/revdial"), Some("scheme"));
        assert_eq!(not_relative("//evil/x"), Some("host"));
        assert_eq!(not_relative("/a:b"), None);
    }

    #[test]
    fn query_params_decode() {
        let Parsed::Complete(h, _) =
            parse_request_head(b"GET /revdial?x=1&revdial.dialer=ab%63 HTTP/1.1\r\nHost: \r\n\r\n")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(h.path(), "/revdial");
        assert_eq!(h.query_param("revdial.dialer").as_deref(), Some("abc"));
        assert_eq!(h.query_param("nope"), None);
    }

    proptest! {
        #[test]
        fn response_parser_is_total(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_response_head(&data);
            let _ = parse_request_head(&data);
        }

        #[test]
        fn status_lines_round_trip(major in 0u8..10, minor in 0u8..10, status in 100u16..600,
                                   reason in "[A-Za-z ]{0,20}", extra in prop::collection::vec(any::<u8>(), 0..20)) {
            let mut buf = format!("HTTP/{major}.{minor} {status} {reason}\r\nLocation: /x\r\n\r\n").into_bytes();
            let head_len = buf.len();
            buf.extend_from_slice(&extra);
            let Parsed::Complete(h, n) = parse_response_head(&buf).unwrap() else { panic!() };
            prop_assert_eq!(n, head_len);
            prop_assert_eq!(h.status, status);
            prop_assert_eq!(&h.reason, &reason);
            prop_assert_eq!(h.header("LOCATION"), Some(&b"/x"[..]));
            // Any prefix is incomplete, never an error or a different head.
            for cut in 0..head_len {
                prop_assert_eq!(parse_response_head(&buf[..cut]).unwrap(), Parsed::Incomplete);
            }
        }
    }
}
