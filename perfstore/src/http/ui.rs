//! The HTML pages: help and forms, an upload form, search results, comparisons.

use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use futures_util::StreamExt;

use super::{CompareRequest, Shared, compare_queries, go_error};
use crate::ingest::SearchPrinter;
use crate::query::Query;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a page sits in the router: links are relative (the router may be mounted
/// anywhere, `/perf/` in the coordinator), so they depend on it.
#[derive(Clone, Copy)]
enum Depth {
    /// `/` and `/upload`.
    Top,
    /// `/ui/search` and `/ui/compare`.
    Ui,
}

impl Depth {
    /// The relative path from the page back to the router's root.
    fn root(self) -> &'static str {
        match self {
            Depth::Top => "./",
            Depth::Ui => "../",
        }
    }
}

fn page(title: &str, depth: Depth, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f4f4f4;padding:1em;overflow:auto;\
         font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace}}\
         input[type=text]{{width:40em}}input.key{{width:12em}}</style></head>\
         <body><h1>{t}</h1>{body}\
         <p><a href=\"{root}\">perf data</a> · <a href=\"{root}upload\">upload</a></p></body></html>\n",
        t = escape(title),
        root = depth.root(),
    ))
}

/// The values a page's forms show: the query it answers, so that it can be edited.
#[derive(Default)]
struct FormValues<'a> {
    q: &'a str,
    old: &'a str,
    new: &'a str,
    col: &'a str,
    row: &'a str,
    ignore: &'a str,
}

/// The search and compare forms, with actions relative to `depth`.
fn forms(depth: Depth, v: FormValues<'_>) -> String {
    let root = depth.root();
    let (q, old, new) = (escape(v.q), escape(v.old), escape(v.new));
    let (col, row, ignore) = (escape(v.col), escape(v.row), escape(v.ignore));
    let open = if [v.col, v.row, v.ignore].iter().any(|s| !s.is_empty()) {
        " open"
    } else {
        ""
    };
    format!(
        r#"
<form action="{root}ui/search" method="get"><label>Search <input type="text" name="q" value="{q}" placeholder="goos:linux pkg:encoding/json"></label> <button>Search</button></form>
<form action="{root}ui/compare" method="get"><p><label>Old <input type="text" name="old" value="{old}" placeholder="upload:20170214.1"></label></p>
<p><label>New <input type="text" name="new" value="{new}" placeholder="upload:20170214.2"></label> <button>Compare</button></p>
<details{open}><summary>Columns, rows and ignored keys (benchstat's <code>-col</code>, <code>-row</code>, <code>-ignore</code>)</summary>
<p><label>Columns <input class="key" type="text" name="col" value="{col}" placeholder=".file (one per query)"></label>
<label>Rows <input class="key" type="text" name="row" value="{row}" placeholder=".fullname"></label>
<label>Ignore <input class="key" type="text" name="ignore" value="{ignore}" placeholder="goos,/gomaxprocs"></label></p>
<p>Keys: <code>.file</code> (old or new), <code>.name</code>, <code>.fullname</code>, <code>/key</code> (a <code>key=value</code> part of the benchmark name) or a configuration key such as <code>commit</code>. With a column key, <i>New</i> may be empty: <code>old=pkg:example.com/x</code>, <code>col=commit</code> puts each commit beside the first.</p></details></form>
"#
    )
}

/// `GET /`: what this server is, with the search and compare forms.
pub(super) async fn index_page() -> Response {
    page(
        "Performance data",
        Depth::Top,
        &format!(
            "<p>Go benchmark results, stored and searched as golang.org/x/perf's perfdata does. \
             Upload with <code>benchsave -server URL files…</code> or the <a href=\"upload\">upload form</a>; \
             query with <code>/search?q=key:value …</code> (terms are ANDed; <code>key&lt;v</code>, \
             <code>key&gt;v</code>, <code>upload:ID</code>) and <code>/uploads</code>.</p>{forms}",
            forms = forms(Depth::Top, FormValues::default())
        ),
    )
    .into_response()
}

/// `GET /upload`: a form posting files to `/upload`.
pub(super) fn upload_form(token: Option<&super::FormToken>) -> Response {
    let action = match token {
        Some(t) => format!(
            "upload?csrf={}",
            form_urlencoded::byte_serialize(t.0.as_bytes()).collect::<String>()
        ),
        None => "upload".to_owned(),
    };
    page(
        "Upload benchmark results",
        Depth::Top,
        &format!(
            r#"<form action="{action}" method="post" enctype="multipart/form-data">
<input type="file" name="file" multiple> <input type="hidden" name="commit" value="1"> <button>Upload</button></form>"#
        ),
    )
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct SearchParams {
    #[serde(default)]
    q: String,
}

/// `GET /ui/search?q=`: the records as text in a page.
pub(super) async fn search_page(
    State(state): State<Shared>,
    Params(p): Params<SearchParams>,
) -> Response {
    let query = match Query::parse(&p.q) {
        Ok(q) => q,
        Err(e) => return go_error(StatusCode::BAD_REQUEST, e),
    };
    let mut stream = match state.store.search(&query).await {
        Ok(s) => s,
        Err(e) => return go_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut printer = SearchPrinter::new();
    let mut text = Vec::new();
    let mut records = 0usize;
    // A page is for reading: cap it, and point at /search for everything.
    while let Some(r) = stream.next().await {
        match r {
            Ok(c) => text.extend(printer.print_record(&c)),
            Err(e) => return go_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
        records += 1;
        if records >= 1000 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    page(
        "Search",
        Depth::Ui,
        &format!(
            "{forms}<p>{records} record(s) for <code>{q}</code>{more}.</p><pre>{body}</pre>",
            q = escape(&p.q),
            more = if records >= 1000 {
                " (first 1000; use /search for all)"
            } else {
                ""
            },
            body = escape(&text),
            forms = forms(
                Depth::Ui,
                FormValues {
                    q: &p.q,
                    ..FormValues::default()
                }
            ),
        ),
    )
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct CompareParams {
    #[serde(default)]
    old: String,
    #[serde(default)]
    new: String,
    /// benchstat's `-col`: what splits columns (`commit`, `/size`, …).
    #[serde(default)]
    col: String,
    /// benchstat's `-row`: what splits rows.
    #[serde(default)]
    row: String,
    /// More keys to leave out of the table key, comma-separated (benchstat's `-ignore`).
    #[serde(default)]
    ignore: String,
}

/// `GET /ui/compare?old=&new=[&col=&row=&ignore=]`: benchstat's table of two queries.
pub(super) async fn compare_page(
    State(state): State<Shared>,
    Params(p): Params<CompareParams>,
) -> Response {
    let req = CompareRequest {
        old: &p.old,
        new: &p.new,
        col: &p.col,
        row: &p.row,
        ignore: &p.ignore,
    };
    match compare_queries(&state, &req).await {
        Ok(table) => page(
            "Compare",
            Depth::Ui,
            &format!(
                "{}<p>{}</p><pre>{}</pre>",
                forms(
                    Depth::Ui,
                    FormValues {
                        old: &p.old,
                        new: &p.new,
                        col: &p.col,
                        row: &p.row,
                        ignore: &p.ignore,
                        ..FormValues::default()
                    }
                ),
                if p.new.is_empty() {
                    format!("results of <code>{}</code>", escape(&p.old))
                } else {
                    format!(
                        "old: <code>{}</code>, new: <code>{}</code>",
                        escape(&p.old),
                        escape(&p.new)
                    )
                },
                escape(&table)
            ),
        )
        .into_response(),
        Err((status, e)) => go_error(status, e),
    }
}
