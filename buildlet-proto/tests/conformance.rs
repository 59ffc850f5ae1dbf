//! Spec `buildlet-protocol.md` §10 cases 1–42 against the real server on a loopback
//! socket (43–48 concern the coordinator and reverse mode). Password `P`, requests as
//! `any:P`, W holding only tmp/, gocache/ and goplscache/.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::{form, request, send, start, tgz};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const P: Option<&str> = Some("P");

#[tokio::test]
async fn case_01_root() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/", None, &[], b"")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "buildlet running on linux-amd64\n")
    );
}

#[tokio::test]
async fn case_02_unknown_path() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/nope", None, &[], b"")).await;
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    let r = send(s.addr, &request("GET", "/exec/", P, &[], b"")).await;
    assert_eq!(r.status, 404, "routing is by exact path");
}

#[tokio::test]
async fn case_03_healthz() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/healthz", None, &[], b"")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn case_04_password() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/status", None, &[], b"")).await;
    assert_eq!((r.status, r.text().as_str()), (403, "invalid password\n"));
    assert!(r.header("www-authenticate").is_none());
    let bad = common::basic("foo", "wrong");
    let r = send(
        s.addr,
        &request("GET", "/status", None, &[("Authorization", &bad)], b""),
    )
    .await;
    assert_eq!(r.status, 403);
    let good = common::basic("foo", "P");
    let r = send(
        s.addr,
        &request("GET", "/status", None, &[("Authorization", &good)], b""),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn case_05_auth_before_method() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/exec", None, &[], b"")).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn case_06_no_password_configured() {
    let s = start("").await;
    assert_eq!(
        send(s.addr, &request("GET", "/status", None, &[], b""))
            .await
            .status,
        200
    );
    assert_eq!(
        send(s.addr, &request("GET", "/status", Some("junk"), &[], b""))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn case_07_status() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/status", P, &[], b"")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.text(), "{\"Version\":29}");
    let r = send(s.addr, &request("POST", "/status", P, &[], b"")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "requires GET method\n")
    );
}

#[tokio::test]
async fn case_08_workdir() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/workdir", P, &[], b"")).await;
    assert_eq!((r.status, r.text()), (200, s.w.display().to_string()));
}

#[tokio::test]
async fn case_09_write() {
    let s = start("P").await;
    let r = send(
        s.addr,
        &request("PUT", "/write?path=a/b.txt&mode=420", P, &[], b"hi"),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let p = s.w.join("a/b.txt");
    assert_eq!(std::fs::read(&p).unwrap(), b"hi");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(s.w.join("a")).unwrap().count(), 1);
}

#[tokio::test]
async fn case_10_write_wrong_method() {
    let s = start("P").await;
    let r = send(
        s.addr,
        &request("POST", "/write?path=x&mode=420", P, &[], b""),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "requires POST method\n")
    );
}

#[tokio::test]
async fn case_11_write_bad_paths() {
    let s = start("P").await;
    for target in [
        "/write?path=../x&mode=420",
        "/write?path=/etc/x&mode=420",
        "/write?mode=420",
    ] {
        let r = send(s.addr, &request("PUT", target, P, &[], b"x")).await;
        assert_eq!(r.status, 400, "{target}");
        assert!(
            r.text().starts_with("invalid 'path' parameter:"),
            "{target}: {}",
            r.text()
        );
    }
    assert!(!s.w.parent().unwrap().join("x").exists());
}

#[tokio::test]
async fn case_12_bad_mode() {
    let s = start("P").await;
    for target in ["/write?path=x", "/write?path=x&mode=2147484141"] {
        let r = send(s.addr, &request("PUT", target, P, &[], b"x")).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, "bad mode\n"),
            "{target}"
        );
    }
}

#[tokio::test]
async fn case_13_writetgz() {
    let s = start("P").await;
    let arc = tgz(&[("d/", b'5', 0o755, b""), ("d/f", b'0', 0o755, b"content")]);
    let r = send(s.addr, &request("PUT", "/writetgz?dir=t", P, &[], &arc)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let f = s.w.join("t/d/f");
    assert_eq!(std::fs::read(&f).unwrap(), b"content");
    assert_ne!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o111,
        0
    );
}

#[tokio::test]
async fn case_14_writetgz_garbage() {
    let s = start("P").await;
    let r = send(s.addr, &request("PUT", "/writetgz", P, &[], b"not gzip")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("requires gzip-compressed body: "),
        "{}",
        r.text()
    );
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, &[7u8; 600]).unwrap();
    let r = send(
        s.addr,
        &request("PUT", "/writetgz", P, &[], &e.finish().unwrap()),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("tar error: "), "{}", r.text());
}

fn raw_entry(name: &[u8], flag: u8) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_size(0);
    h.as_old_mut().linkflag[0] = flag;
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn gz(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut tar = parts.concat();
    tar.extend_from_slice(&[0u8; 1024]);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, &tar).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn case_15_writetgz_invalid_names() {
    let s = start("P").await;
    for name in [&b"../evil"[..], b"/abs/x"] {
        let r = send(
            s.addr,
            &request("PUT", "/writetgz", P, &[], &gz(&[raw_entry(name, b'0')])),
        )
        .await;
        assert_eq!(r.status, 400);
        assert!(
            r.text().starts_with("tar file contained invalid name "),
            "{}",
            r.text()
        );
    }
    let parent = s.w.parent().unwrap();
    assert!(!parent.join("evil").exists());
}

#[tokio::test]
async fn case_16_symlink_entries_are_skipped() {
    let s = start("P").await;
    let mut h = tar::Header::new_gnu();
    h.set_path("l").unwrap();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_link_name("/etc").unwrap();
    h.set_size(0);
    h.set_cksum();
    let r = send(
        s.addr,
        &request("PUT", "/writetgz", P, &[], &gz(&[h.as_bytes().to_vec()])),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert!(std::fs::symlink_metadata(s.w.join("l")).is_err());
}

#[tokio::test]
async fn case_17_fifo_is_unsupported() {
    let s = start("P").await;
    let r = send(
        s.addr,
        &request("PUT", "/writetgz", P, &[], &gz(&[raw_entry(b"fifo", b'6')])),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unsupported file type"), "{}", r.text());
}

#[tokio::test]
async fn case_18_future_mtime_is_clamped() {
    let s = start("P").await;
    let mut h = tar::Header::new_gnu();
    h.set_path("f").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    let future = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    h.set_mtime(
        future
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    h.set_cksum();
    let before = SystemTime::now();
    let r = send(
        s.addr,
        &request("PUT", "/writetgz", P, &[], &gz(&[h.as_bytes().to_vec()])),
    )
    .await;
    assert_eq!(r.status, 200);
    let m = std::fs::metadata(s.w.join("f"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(
        m <= SystemTime::now() && m + Duration::from_secs(2) >= before,
        "{m:?}"
    );
}

#[tokio::test]
async fn case_19_multi_member_gzip() {
    let s = start("P").await;
    let a = tgz(&[("a", b'0', 0o644, b"1")]);
    // The first member's tar lacks its end blocks; the second member continues the tar.
    let mut tar_a = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut tar_a).unwrap();
    tar_a.truncate(1024);
    let mut first = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut first, &tar_a).unwrap();
    let mut body = first.finish().unwrap();
    body.extend(tgz(&[("b", b'0', 0o644, b"2")]));
    let r = send(s.addr, &request("PUT", "/writetgz", P, &[], &body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(std::fs::read(s.w.join("a")).unwrap(), b"1");
    assert_eq!(std::fs::read(s.w.join("b")).unwrap(), b"2");
}

#[tokio::test]
async fn case_20_writetgz_method_and_url() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/writetgz", P, &[], b"")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "requires PUT or POST method\n")
    );
    let r = send(s.addr, &form("POST", "/writetgz?dir=x", P, "")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "missing url POST param\n")
    );
}

#[tokio::test]
async fn case_21_go14_skip() {
    let s = start("P").await;
    std::fs::create_dir_all(s.w.join("go1.4")).unwrap();
    let r = send(
        s.addr,
        &form(
            "POST",
            "/writetgz?dir=go1.4",
            P,
            "url=http%3A%2F%2F127.0.0.1%3A9%2Fnever",
        ),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "SKIP"));
}

#[tokio::test]
async fn case_22_fetch_failure() {
    let s = start("P").await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let mut b = [0u8; 1024];
            let _ = c.read(&mut b).await;
            let _ = c
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let body = format!("url=http%3A%2F%2F{addr}%2Fx.tgz");
    let r = send(s.addr, &form("POST", "/writetgz?dir=t", P, &body)).await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("fetching provided URL"), "{}", r.text());
}

async fn tgz_entries(body: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(flate2::read::MultiGzDecoder::new(body));
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[tokio::test]
async fn case_23_tgz() {
    let s = start("P").await;
    let arc = tgz(&[("d/", b'5', 0o755, b""), ("d/f", b'0', 0o755, b"content")]);
    assert_eq!(
        send(s.addr, &request("PUT", "/writetgz?dir=t", P, &[], &arc))
            .await
            .status,
        200
    );
    let r = send(s.addr, &request("GET", "/tgz?dir=t", P, &[], b"")).await;
    assert_eq!(r.status, 200);
    assert!(r.complete && r.chunked);
    assert_eq!(tgz_entries(&r.body).await, ["d/", "d/f"]);
    assert!(r.header("content-encoding").is_none());
}

#[tokio::test]
async fn case_24_tgz_errors() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/tgz", P, &[], b"")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "invalid 'dir' parameter: path not provided\n")
    );
    let r = send(s.addr, &request("GET", "/tgz?dir=missing", P, &[], b"")).await;
    assert!(
        !r.complete,
        "a missing dir must not produce a complete response: {r:?}"
    );
}

fn mk_u(s: &common::Server) {
    let u = s.w.join("u");
    std::fs::create_dir_all(u.join("d")).unwrap();
    std::fs::write(u.join("f"), "hello").unwrap();
    std::fs::set_permissions(u.join("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(u.join("d/e"), "").unwrap();
    std::fs::set_permissions(u.join("d"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn case_25_ls() {
    let s = start("P").await;
    mk_u(&s);
    let r = send(s.addr, &request("GET", "/ls?dir=u", P, &[], b"")).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "drwxr-xr-x\td/");
    let f: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(&f[..3], ["-rw-r--r--", "f", "5"]);
    assert!(f[3].ends_with('Z') && f[3].len() == 20, "{}", f[3]);
    assert_eq!(lines.len(), 2);
}

#[tokio::test]
async fn case_26_ls_recursive_digest_skip() {
    let s = start("P").await;
    mk_u(&s);
    let r = send(
        s.addr,
        &request(
            "GET",
            "/ls?dir=u&recursive=true&digest=true&skip=d",
            P,
            &[],
            b"",
        ),
    )
    .await;
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let f: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(f[1], "f");
    assert_eq!(f[4], "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"); // sha1("hello")
}

#[tokio::test]
async fn case_27_ls_errors() {
    let s = start("P").await;
    let r = send(s.addr, &request("GET", "/ls?dir=missing", P, &[], b"")).await;
    assert_eq!(r.status, 500);
    assert!(r.text().starts_with("Walk error: "), "{}", r.text());
    let r = send(s.addr, &request("GET", "/ls?dir=..", P, &[], b"")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("invalid 'dir' parameter: "),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn case_28_removeall() {
    let s = start("P").await;
    std::fs::create_dir_all(s.w.join("a/b")).unwrap();
    let r = send(
        s.addr,
        &form("POST", "/removeall", P, "path=a&path=nonexistent"),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(!s.w.join("a").exists());
}

#[tokio::test]
async fn case_29_removeall_checks_first() {
    let s = start("P").await;
    std::fs::create_dir_all(s.w.join("a")).unwrap();
    let r = send(s.addr, &form("POST", "/removeall", P, "")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "requires 'path' parameter\n")
    );
    let r = send(s.addr, &form("POST", "/removeall", P, "path=a&path=../b")).await;
    assert_eq!(r.status, 400);
    assert!(s.w.join("a").exists());
}

#[tokio::test]
async fn case_30_removeall_w_then_write() {
    let s = start("P").await;
    assert_eq!(
        send(s.addr, &form("POST", "/removeall", P, "path=."))
            .await
            .status,
        200
    );
    assert!(!s.w.exists());
    let r = send(
        s.addr,
        &request("PUT", "/write?path=x&mode=420", P, &[], b"x"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(s.w.join("x").exists());
}

#[tokio::test]
async fn case_31_exec_http10_and_missing_cmd() {
    let s = start("P").await;
    let mut raw = b"POST /exec HTTP/1.0\r\n".to_vec();
    raw.extend_from_slice(
        format!(
            "Authorization: {}\r\nContent-Length: 0\r\n\r\n",
            common::basic("a", "P")
        )
        .as_bytes(),
    );
    let r = send(s.addr, &raw).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "HTTP/1.1 or higher required\n")
    );
    let r = send(s.addr, &form("POST", "/exec", P, "")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "invalid 'cmd' parameter: requires 'cmd' parameter\n"
    );
    assert_eq!(r.header("trailer"), Some("Process-State"));
    assert!(r.chunked);
}

#[tokio::test]
async fn case_32_command_not_found() {
    let s = start("P").await;
    let r = send(s.addr, &form("POST", "/exec", P, "cmd=no-such-cmd-xyz")).await;
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("command \"no-such-cmd-xyz\" not found"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn case_33_sys_mode_relative() {
    let s = start("P").await;
    let r = send(s.addr, &form("POST", "/exec", P, "mode=sys&cmd=a/b")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("'sys' mode requires absolute or system 'cmd' path")
    );
}

#[tokio::test]
async fn case_34_exec_output_and_trailer() {
    let s = start("P").await;
    let body = "cmd=sh&cmdArg=-c&cmdArg=echo+hi%3B+echo+err+%3E%262%3B+exit+3";
    let r = send(s.addr, &form("POST", "/exec", P, body)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_none(), "{:?}", r.headers);
    assert!(r.chunked && r.complete);
    assert_eq!(r.text(), "hi\nerr\n");
    assert_eq!(r.trailer("Process-State"), Some("exit status 3"));
}

#[tokio::test]
async fn case_35_exec_true() {
    let s = start("P").await;
    let r = send(s.addr, &form("POST", "/exec", P, "cmd=%2Fbin%2Ftrue")).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.trailer("Process-State"), Some("ok"));
}

#[tokio::test]
async fn case_36_exec_dir_and_pwd() {
    let s = start("P").await;
    std::fs::create_dir_all(s.w.join("t")).unwrap();
    let r = send(
        s.addr,
        &form("POST", "/exec", P, "mode=sys&cmd=%2Fbin%2Fpwd"),
    )
    .await;
    assert_eq!(r.text().trim_end(), s.w.display().to_string());
    let r = send(
        s.addr,
        &form("POST", "/exec", P, "mode=sys&cmd=%2Fbin%2Fpwd&dir=t"),
    )
    .await;
    assert_eq!(r.text().trim_end(), s.w.join("t").display().to_string());
    let r = send(
        s.addr,
        &form("POST", "/exec", P, "mode=sys&cmd=%2Fusr%2Fbin%2Fenv&dir=t"),
    )
    .await;
    assert!(
        r.text()
            .lines()
            .any(|l| l == format!("PWD={}", s.w.join("t").display())),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn case_37_exec_env() {
    let s = start("P").await;
    let r = send(
        s.addr,
        &form(
            "POST",
            "/exec",
            P,
            "cmd=%2Fusr%2Fbin%2Fenv&env=TMPDIR%3D%2Fx&env=FOO%3D1",
        ),
    )
    .await;
    let text = r.text();
    assert!(
        text.lines()
            .any(|l| l == format!("TMPDIR={}", s.w.join("tmp").display())),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "FOO=1"), "{text}");
}

#[tokio::test]
async fn case_38_exec_path() {
    let s = start("P").await;
    let r = send(
        s.addr,
        &form(
            "POST",
            "/exec",
            P,
            "cmd=%2Fusr%2Fbin%2Fenv&path=%2Fopt%2Fbin&path=%24PATH",
        ),
    )
    .await;
    let ours = std::env::var("PATH").unwrap();
    assert!(
        r.text()
            .lines()
            .any(|l| l == format!("PATH=/opt/bin:{ours}")),
        "{}",
        r.text()
    );
    let r = send(
        s.addr,
        &form("POST", "/exec", P, "cmd=%2Fusr%2Fbin%2Fenv&path=%24EMPTY"),
    )
    .await;
    assert!(r.text().lines().any(|l| l == "PATH="), "{}", r.text());
}

#[tokio::test]
async fn case_39_exec_missing_dir() {
    let s = start("P").await;
    let r = send(
        s.addr,
        &form("POST", "/exec", P, "cmd=%2Fbin%2Ftrue&dir=nodir"),
    )
    .await;
    assert_eq!(r.status, 200);
    let st = r.trailer("Process-State").unwrap();
    assert!(
        st.starts_with("chdir ") && st.ends_with("no such file or directory"),
        "{st}"
    );
}

#[tokio::test]
async fn case_40_disconnect_kills_the_process_group() {
    let s = start("P").await;
    // A grandchild (the backgrounded sleep) checks the group kill, not just the child.
    let body = "cmd=%2Fbin%2Fsh&cmdArg=-c&cmdArg=sleep+300+%26+echo+%24%21%3B+wait";
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(&form("POST", "/exec", P, body)).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let body_line = |got: &[u8]| {
        let text = String::from_utf8_lossy(got).into_owned();
        text.split_once("\r\n\r\n")
            .is_some_and(|(_, b)| b.ends_with("\n\r\n"))
    };
    while !body_line(&got) {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    let pid: u32 = body.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(common::alive(pid));
    drop(c);
    for _ in 0..100 {
        if !common::alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sleep {pid} survived the client's disconnect");
}

#[tokio::test]
async fn case_41_halt() {
    let s = start("P").await;
    let r = send(s.addr, &request("POST", "/halt", P, &[], b"")).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(
        !s.halted.load(std::sync::atomic::Ordering::SeqCst),
        "halted before the 1 s delay"
    );
    common::wait_halted(&s).await;
    let r = send(s.addr, &request("GET", "/halt", P, &[], b"")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn case_42_connect_ssh_needs_empty_body() {
    let s = start("P").await;
    let r = send(s.addr, &request("POST", "/connect-ssh", P, &[], b"x")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "requires zero Content-Length\n")
    );
}

#[tokio::test]
async fn failed_write_leaves_no_partial_file() {
    let s = start("P").await;
    // Announce 1000 bytes, send 10, hang up.
    let mut raw = request("PUT", "/write?path=d/partial&mode=420", P, &[], b"");
    let cl = b"Content-Length: 0\r\n";
    let at = raw.windows(cl.len()).position(|w| w == cl).unwrap();
    raw.splice(
        at..at + cl.len(),
        b"Content-Length: 1000\r\n".iter().copied(),
    );
    raw.extend_from_slice(b"0123456789");
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(&raw).await.unwrap();
    drop(c);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!s.w.join("d/partial").exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.w.join("d"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
