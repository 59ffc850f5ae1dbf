//! The storage server's HTTP API, and a small HTML UI, as an axum [`Router`].
//!
//! | Path | |
//! |---|---|
//! | `POST /upload` | multipart `file` parts → `{"uploadid","fileids","viewurl"}` |
//! | `GET /upload` | an HTML upload form |
//! | `GET /search?q=` | matching records as benchmark text |
//! | `GET /uploads?q=&limit=&extra_label=` | one JSON object per upload, newest first |
//! | `GET /` | help, search and compare forms |
//! | `GET /ui/search?q=` | search results as HTML |
//! | `GET /ui/compare?old=&new=` | a benchstat table of two queries |
//!
//! Status codes and bodies are upstream's (`text/plain` errors ending in a newline), with
//! two deliberate differences: a query syntax error is `400 Bad Request` naming the bad term
//! (upstream answers 500 for what is the client's mistake; Go clients treat any non-200
//! alike), and an upload over [`ServerConfig::max_upload_bytes`] is `413` (upstream has no
//! limit). There is no authentication: mount the router behind your own tower layer, which
//! may set the uploading user with the [`User`] request extension.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;

use crate::compare;
use crate::ingest::{IngestError, SearchPrinter, ServerLabels, UploadBuilder};
use crate::query::{Query, QueryError};
use crate::store::{RecordBatch, Store, UploadId};

mod ui;
mod unread_body;

pub use unread_body::{MAX_DRAIN_BYTES, MAX_DRAIN_TIME, close_if_body_unread};

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted `POST /upload` body, in bytes; larger ones get 413.
    pub max_upload_bytes: u64,
    /// Base of the `viewurl` of upload responses (the ID is appended, URL-escaped), e.g.
    /// `https://perf.example.com/search?q=upload:`; `None` omits `viewurl`.
    pub view_url_base: Option<String>,
    /// Comparisons computed at once; more wait their turn. Default: the number of CPUs.
    pub max_concurrent_comparisons: usize,
    /// Largest benchmark text one side of a comparison may gather, in bytes; a larger
    /// one is refused with 413 (narrow the query).
    pub max_compare_bytes: usize,
    /// Uploads processed at once; more wait their turn. An upload's parse holds memory
    /// proportional to its size, so this bounds the total. Default 2.
    pub max_concurrent_uploads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 64 << 20,
            view_url_base: None,
            max_concurrent_comparisons: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_compare_bytes: 64 << 20,
            max_concurrent_uploads: 2,
        }
    }
}

/// The authenticated user of a request, set by an outer layer; becomes the `by` label.
#[derive(Debug, Clone)]
pub struct User(pub String);

/// A token an outer layer wants on the page's form posts (CSRF protection), set as a
/// request extension: the upload form sends it as `?csrf=` in its action (a multipart
/// body is not something a middleware reads to look for a field).
#[derive(Debug, Clone)]
pub struct FormToken(pub String);

#[derive(Debug)]
pub(crate) struct AppState {
    store: Arc<dyn Store>,
    config: ServerConfig,
    /// Permits for CPU-heavy work (comparisons), which runs on blocking threads so that
    /// it can never stall the async workers that serve every other request.
    cpu: Arc<tokio::sync::Semaphore>,
    /// Permits for uploads in progress.
    uploads: Arc<tokio::sync::Semaphore>,
}

type Shared = Arc<AppState>;

/// The API and UI over `store`.
pub fn router(store: Arc<dyn Store>, config: ServerConfig) -> Router {
    let permits = config.max_concurrent_comparisons.max(1);
    let upload_permits = config.max_concurrent_uploads.max(1);
    let state = Arc::new(AppState {
        store,
        config,
        cpu: Arc::new(tokio::sync::Semaphore::new(permits)),
        uploads: Arc::new(tokio::sync::Semaphore::new(upload_permits)),
    });
    Router::new()
        .route("/upload", axum::routing::any(upload))
        .route("/search", axum::routing::any(search))
        .route("/uploads", axum::routing::any(uploads))
        .route("/ui/search", axum::routing::get(ui::search_page))
        .route("/ui/compare", axum::routing::get(ui::compare_page))
        .route("/", axum::routing::get(ui::index_page))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(close_if_body_unread))
        .layer(axum::middleware::from_fn(log_server_errors))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    go_error(
        StatusCode::NOT_FOUND,
        format!("404 page not found: {}", uri.path()),
    )
}

/// Logs every 5xx answer: an operator must see the server's own failures.
async fn log_server_errors(req: Request, next: axum::middleware::Next) -> Response {
    // Method and URI clones are reference counts, not copies of the path.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let resp = next.run(req).await;
    if resp.status().is_server_error() {
        tracing::error!(%method, path = uri.path(), status = resp.status().as_u16(), "perf request failed");
    }
    resp
}

/// An error response as Go's `http.Error` writes it.
pub(crate) fn go_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn query_error(e: &QueryError) -> Response {
    go_error(StatusCode::BAD_REQUEST, e)
}

/// Form parameters from the URL query and, for form-encoded POST bodies, the body.
async fn params(req: Request) -> Result<Vec<(String, String)>, Response> {
    let mut out: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form && req.method() == Method::POST {
        // Go's ParseForm reads at most 10 MB of body.
        let body = axum::body::to_bytes(req.into_body(), 10 << 20)
            .await
            .map_err(|e| go_error(StatusCode::BAD_REQUEST, e))?;
        out.extend(form_urlencoded::parse(&body).into_owned());
    }
    Ok(out)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn search(State(state): State<Shared>, req: Request) -> Response {
    let params = match params(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let q = match param(&params, "q") {
        Some(q) if !q.is_empty() => q,
        _ => return go_error(StatusCode::BAD_REQUEST, "missing q parameter"),
    };
    let query = match Query::parse(q) {
        Ok(q) => q,
        Err(e) => return query_error(&e),
    };
    let records = match state.store.search(&query).await {
        Ok(s) => s,
        Err(e) => return go_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut printer = SearchPrinter::new();
    // Errors after the first byte cannot change the status; like upstream, they are
    // appended to the text.
    let body = records.map(move |r| {
        Ok::<_, std::convert::Infallible>(Bytes::from(match r {
            Ok(content) => printer.print_record(&content),
            Err(e) => format!("{e}\n").into_bytes(),
        }))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| go_error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn uploads(State(state): State<Shared>, req: Request) -> Response {
    let params = match params(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let q = param(&params, "q").unwrap_or("");
    let limit = match param(&params, "limit") {
        None | Some("") => Some(1000),
        Some(l) => match l.parse::<i64>() {
            // Negative limits are unlimited, as SQLite treats upstream's `LIMIT -1`.
            Ok(l) if l <= 0 => None,
            Ok(l) => Some(l as u64),
            Err(_) => return go_error(StatusCode::BAD_REQUEST, "invalid limit parameter"),
        },
    };
    let extra: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "extra_label")
        .map(|(_, v)| v.clone())
        .collect();
    let query = match Query::parse(q) {
        Ok(q) => q,
        Err(e) => return query_error(&e),
    };
    if query.never_matches() {
        // Upstream quirk kept: its query builder reports a contradiction as io.EOF, which
        // /uploads returns as an error (while /search answers an empty 200).
        return go_error(StatusCode::INTERNAL_SERVER_ERROR, "EOF");
    }
    let list = match state.store.uploads(&query, &extra, limit).await {
        Ok(l) => l,
        Err(e) => return go_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut body = Vec::new();
    for u in list {
        let info = UploadInfo {
            count: u.count,
            upload_id: u.upload_id,
            label_values: u
                .label_values
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
        };
        // Go's json.Encoder: one value per line.
        let _ = serde_json::to_writer(&mut body, &info);
        body.push(b'\n');
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One `/uploads` line, with upstream's field names and order.
#[derive(Debug, serde::Serialize)]
struct UploadInfo {
    #[serde(rename = "Count")]
    count: u64,
    #[serde(rename = "UploadID")]
    upload_id: String,
    #[serde(
        rename = "LabelValues",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    label_values: std::collections::BTreeMap<String, String>,
}

/// Why an upload failed, and the status it gets.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("upload is larger than the configured limit of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Multipart(String),
    #[error("unexpected field {0:?}")]
    UnexpectedField(String),
    #[error("no files processed")]
    NoFiles,
    #[error("{0}")]
    Ingest(#[from] IngestError),
    #[error("{0}")]
    Store(#[from] crate::StoreError),
}

impl UploadError {
    fn status(&self) -> StatusCode {
        match self {
            UploadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn multipart_error(e: multer::Error, limit: u64) -> UploadError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            UploadError::TooLarge(limit)
        }
        e => UploadError::Multipart(e.to_string()),
    }
}

/// The successful upload response.
#[derive(Debug, serde::Serialize)]
struct UploadStatus {
    uploadid: String,
    fileids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    viewurl: Option<String>,
}

async fn upload(State(state): State<Shared>, req: Request) -> Response {
    match *req.method() {
        Method::GET => return ui::upload_form(req.extensions().get::<FormToken>()),
        Method::POST => {}
        _ => {
            return go_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "/upload must be called as a POST request",
            );
        }
    }
    // Waiting here reads nothing of the body, so waiting uploads cost a connection each,
    // not their size.
    let Ok(_permit) = state.uploads.clone().acquire_owned().await else {
        return go_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    };
    let started = Utc::now();
    match receive_upload(&state, req, started).await {
        Ok(status) => match serde_json::to_vec(&status) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => go_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Err(e) => go_error(e.status(), e),
    }
}

async fn receive_upload(
    state: &AppState,
    req: Request,
    started: DateTime<Utc>,
) -> Result<UploadStatus, UploadError> {
    let limit = state.config.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(UploadError::TooLarge(limit));
    }
    let by = req.extensions().get::<User>().map(|u| u.0.clone());
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            UploadError::Multipart("request Content-Type isn't multipart/form-data".into())
        })
        .and_then(|ct| {
            multer::parse_boundary(ct).map_err(|_| {
                UploadError::Multipart("request Content-Type isn't multipart/form-data".into())
            })
        })?;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let body = req.into_body().into_data_stream();
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let time = started.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut parts = Parts::new(state.store.clone(), started, time, by);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, limit)),
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        match name.as_str() {
            "commit" => parts.skip(),
            "file" => parts.add_file(file_name, field, limit).await?,
            _ => return Err(UploadError::UnexpectedField(name)),
        }
    }
    let (id, fileids) = parts.finish().await?;
    let viewurl = state.config.view_url_base.as_ref().map(|base| {
        let escaped: String = form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect();
        format!("{base}{escaped}")
    });
    Ok(UploadStatus {
        uploadid: id.0,
        fileids,
        viewurl,
    })
}

/// Records handed to the store at a time by a streamed upload.
const UPLOAD_BATCH: usize = 1024;

/// The parts of one upload request, as they arrive. Each file is parsed while it is read
/// (on a blocking thread, fed from the request body) and its records go to the store in
/// batches of [`UPLOAD_BATCH`] inside one transaction, so an upload holds about a batch
/// of records, not its whole file, in memory.
struct Parts {
    store: Arc<dyn Store>,
    started: DateTime<Utc>,
    time: String,
    by: Option<String>,
    index: usize,
    fileids: Vec<String>,
    builder: Option<UploadBuilder>,
    /// Once the first file arrives: the upload, the channel to the store, and the task
    /// that writes it.
    sink: Option<Sink>,
}

struct Sink {
    id: UploadId,
    batches: tokio::sync::mpsc::Sender<RecordBatch>,
    writer: tokio::task::JoinHandle<Result<(), crate::StoreError>>,
}

impl Parts {
    fn new(
        store: Arc<dyn Store>,
        started: DateTime<Utc>,
        time: String,
        by: Option<String>,
    ) -> Self {
        Parts {
            store,
            started,
            time,
            by,
            index: 0,
            fileids: Vec::new(),
            builder: Some(UploadBuilder::new()),
            sink: None,
        }
    }

    fn skip(&mut self) {
        self.index += 1;
    }

    async fn sink(&mut self) -> Result<&Sink, UploadError> {
        if self.sink.is_none() {
            let id = self.store.allocate_upload(self.started).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            let (store, writer_id) = (self.store.clone(), id.clone());
            let writer =
                tokio::spawn(async move { store.insert_record_stream(&writer_id, rx).await });
            self.sink = Some(Sink {
                id,
                batches: tx,
                writer,
            });
        }
        Ok(self.sink.as_ref().expect("just set"))
    }

    async fn add_file(
        &mut self,
        file_name: Option<String>,
        field: multer::Field<'static>,
        limit: u64,
    ) -> Result<(), UploadError> {
        let sink = self.sink().await?;
        let (id, batches) = (sink.id.clone(), sink.batches.clone());
        let part = self.index;
        self.index += 1;
        let time = self.time.clone();
        let by = self.by.clone();
        let mut builder = self.builder.take().unwrap_or_default();
        // The body over the upload limit shows up as a read error inside the parser;
        // remember it so that the answer is 413, not a parse error.
        let too_large = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = too_large.clone();
        let stream = field.map(move |r| {
            r.map_err(|e| {
                if matches!(
                    e,
                    multer::Error::StreamSizeExceeded { .. }
                        | multer::Error::FieldSizeExceeded { .. }
                ) {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                std::io::Error::other(e)
            })
        });
        let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        // Parsing is CPU work proportional to the file: keep it off the async workers.
        let (builder, result) = tokio::task::spawn_blocking(move || {
            let server = ServerLabels {
                upload: &id,
                part,
                time: &time,
                file_name: file_name.as_deref(),
                by: by.as_deref(),
            };
            let input = std::io::BufReader::with_capacity(256 * 1024, input);
            let r = builder.read_file(&server, input, UPLOAD_BATCH, |records| {
                batches.blocking_send(RecordBatch::Records(records)).is_ok()
            });
            (builder, r)
        })
        .await
        .map_err(|e| UploadError::Multipart(format!("parsing failed: {e}")))?;
        if too_large.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(UploadError::TooLarge(limit));
        }
        if let Err(IngestError::Stopped) = result {
            // The writer failed: its error says why.
            if let Some(sink) = self.sink.take() {
                drop(sink.batches);
                sink.writer
                    .await
                    .map_err(|e| UploadError::Multipart(format!("storing failed: {e}")))??;
            }
        }
        result?;
        self.builder = Some(builder);
        let id = self
            .sink
            .as_ref()
            .map(|s| s.id.to_string())
            .unwrap_or_default();
        self.fileids.push(format!("{id}/{part}"));
        Ok(())
    }

    /// Hands the last records to the store and commits; dropping `Parts` without this
    /// abandons the upload, and the store keeps nothing of it.
    async fn finish(self) -> Result<(UploadId, Vec<String>), UploadError> {
        let sink = self.sink.ok_or(UploadError::NoFiles)?;
        let records = self.builder.unwrap_or_default().finish();
        // A send fails only if the writer has ended, and then its result says why.
        let _ = sink.batches.send(RecordBatch::Records(records)).await;
        let _ = sink.batches.send(RecordBatch::Done).await;
        drop(sink.batches);
        sink.writer
            .await
            .map_err(|e| UploadError::Multipart(format!("storing failed: {e}")))??;
        Ok((sink.id, self.fileids))
    }
}

/// What the UI's comparison page compares, and how (benchstat's projections).
#[derive(Debug, Default)]
pub(super) struct CompareRequest<'a> {
    /// The baseline query.
    pub(super) old: &'a str,
    /// The query compared with it; empty to split `old` alone by `col`.
    pub(super) new: &'a str,
    /// benchstat's `-col` (empty: one column per query).
    pub(super) col: &'a str,
    /// benchstat's `-row` (empty: `.fullname`).
    pub(super) row: &'a str,
    /// More keys to ignore, comma-separated.
    pub(super) ignore: &'a str,
}

/// Compares the results of two queries as benchstat would compare two files, for the UI.
pub(super) async fn compare_queries(
    state: &AppState,
    req: &CompareRequest<'_>,
) -> Result<String, (StatusCode, String)> {
    let bad = |e: &dyn std::fmt::Display| (StatusCode::BAD_REQUEST, e.to_string());
    let projection = |name: &str, spec: &str, default: compare::Projection| {
        if spec.trim().is_empty() {
            Ok(default)
        } else {
            compare::Projection::parse(spec).map_err(|e| bad(&format!("{name}: {e}")))
        }
    };
    let defaults = compare::Options::default();
    let col = projection("col", req.col, defaults.col.clone())?;
    let row = projection("row", req.row, defaults.row.clone())?;
    let limit = state.config.max_compare_bytes;
    let mut inputs = Vec::new();
    let sides = [("old", req.old), ("new", req.new)];
    for (label, q) in sides
        .into_iter()
        .filter(|(label, q)| *label == "old" || !q.is_empty())
    {
        let query = Query::parse(q).map_err(|e| bad(&e))?;
        let mut stream = state
            .store
            .search(&query)
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut printer = SearchPrinter::new();
        let mut text = Vec::new();
        while let Some(r) = stream.next().await {
            let r = r.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            text.extend(printer.print_record(&r));
            if text.len() > limit {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the {label} query matches more than {limit} bytes of results; narrow it"
                    ),
                ));
            }
        }
        inputs.push(compare::Input {
            label: label.to_string(),
            data: text,
        });
    }
    // The server's own labels, keys whose values differ between the sides (the commit,
    // above all: the main use is comparing one commit with another) unless a projection
    // shows them, and the caller's.
    let shown: Vec<&str> = col.config_keys().chain(row.config_keys()).collect();
    let mut ignored: Vec<String> = ["upload", "upload-part", "upload-time", "upload-file", "by"]
        .map(String::from)
        .to_vec();
    ignored.extend(
        compare::differing_config_keys(&inputs)
            .into_iter()
            .filter(|k| !shown.contains(&k.as_str())),
    );
    for key in req
        .ignore
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        compare::Field::parse(key).map_err(|e| bad(&format!("ignore: {e}")))?;
        ignored.push(key.to_string());
    }
    let options = compare::Options {
        ignore: ignored,
        col,
        row,
        ..defaults
    };
    let _permit = state
        .cpu
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    tokio::task::spawn_blocking(move || compare::benchstat(&inputs, &options))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
