//! The `git` CLI: mirrors of the watched repositories, new commits, source archives.
//!
//! Every repository is mirrored (`git clone --mirror`) under the data directory and fetched
//! on each poll; archives are made from the mirror with `git archive`, as upstream's
//! gitmirror served them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, ChildStdout, Command};

use crate::config::Source;
pub use crate::store::Commit;

/// A git failure, with the command and what git said.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not be started.
    #[error("running git: {0} (is git installed?)")]
    Spawn(std::io::Error),
    /// git did not finish in time (a remote that stopped answering, say); it was killed.
    #[error("git {args}: no answer within {limit:?}; killed")]
    Timeout {
        /// The command's arguments.
        args: String,
        /// The limit.
        limit: Duration,
    },
    /// git failed.
    #[error("git {args}: {stderr}")]
    Failed {
        /// The command's arguments.
        args: String,
        /// What git printed.
        stderr: String,
    },
    /// A revision that does not name a commit.
    #[error("unknown revision {0}")]
    UnknownRevision(String),
    /// Creating the mirror's directory failed.
    #[error("creating {0}: {1}")]
    Io(String, std::io::Error),
}

fn command(dir: Option<&Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args);
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    // A timed-out git is killed when its future is dropped.
    cmd.kill_on_drop(true);
    cmd
}

async fn git(dir: Option<&Path>, args: &[&str], limit: Duration) -> Result<Vec<u8>, GitError> {
    let out = tokio::time::timeout(limit, command(dir, args).output())
        .await
        .map_err(|_| GitError::Timeout {
            args: args.join(" "),
            limit,
        })?
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// How long a local git command (rev-parse, log) may take.
const LOCAL_LIMIT: Duration = Duration::from_secs(60);

/// The source for the checkout containing `cwd`, on its current branch.
pub fn checkout_source(cwd: &Path) -> Option<Source> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(cwd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let top = run(&["rev-parse", "--show-toplevel"])?;
    let branch = run(&["symbolic-ref", "--short", "HEAD"])?;
    let name = Path::new(&top).file_name()?.to_string_lossy().into_owned();
    Some(Source {
        name,
        url: top,
        branches: vec![branch],
        subrepo_of: None,
        go_branch: None,
        dir: None,
    })
}

/// A local mirror of one source.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// The mirror's git directory.
    pub dir: PathBuf,
    url: String,
    /// How long a fetch or clone may take.
    fetch_limit: Duration,
    /// One fetch at a time (the poller and enqueues may all fetch), holding when the
    /// last successful one started.
    fetching: std::sync::Arc<tokio::sync::Mutex<Option<std::time::Instant>>>,
}

/// Fetches and clones running at once, over every mirror: each is a process and a
/// network transfer, and a burst of enqueues must not start one per request.
const MAX_NETWORK_GIT: usize = 4;
static NETWORK_GIT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_NETWORK_GIT);

/// The mirror directory's name for a source name: the name with anything but ASCII
/// letters, digits, `-` and `_` replaced by `_` (configuration checks that no two sources
/// share one).
pub fn mirror_dir_name(source: &str) -> String {
    let safe: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.git")
}

impl Mirror {
    /// The mirror of `source` under `root` (not yet fetched); fetches and clones are
    /// killed after `fetch_limit`.
    pub fn new(root: &Path, source: &Source, fetch_limit: Duration) -> Mirror {
        Mirror {
            dir: root.join(mirror_dir_name(&source.name)),
            url: source.url.clone(),
            fetch_limit,
            fetching: Default::default(),
        }
    }

    /// Clones or fetches. A caller that waited for another fetch which started after
    /// it asked takes that fetch's result instead of running its own: a burst of
    /// enqueues costs one fetch, not one each.
    pub async fn fetch(&self) -> Result<(), GitError> {
        let asked = std::time::Instant::now();
        let mut last = self.fetching.lock().await;
        if last.is_some_and(|started| started >= asked) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let _slot = NETWORK_GIT.acquire().await.expect("never closed");
        self.fetch_now().await?;
        *last = Some(started);
        Ok(())
    }

    async fn fetch_now(&self) -> Result<(), GitError> {
        if self.dir.join("HEAD").exists() {
            git(
                Some(&self.dir),
                &["fetch", "--prune", "--quiet", "origin"],
                self.fetch_limit,
            )
            .await?;
        } else {
            if let Some(parent) = self.dir.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| GitError::Io(parent.display().to_string(), e))?;
            }
            let dir = self.dir.to_string_lossy().into_owned();
            let partial = self.dir.with_extension("partial");
            let _ = tokio::fs::remove_dir_all(&partial).await;
            let tmp = partial.to_string_lossy().into_owned();
            // Clone beside, then rename: a clone cut off by the timeout leaves no
            // half-made mirror that later fetches would trip on.
            git(
                None,
                &["clone", "--mirror", "--quiet", &self.url, &tmp],
                self.fetch_limit,
            )
            .await?;
            tokio::fs::rename(&partial, &dir)
                .await
                .map_err(|e| GitError::Io(dir.clone(), e))?;
        }
        Ok(())
    }

    /// The head of `branch`, if it exists.
    pub async fn head(&self, branch: &str) -> Result<Option<String>, GitError> {
        let refname = format!("refs/heads/{branch}");
        match git(
            Some(&self.dir),
            &["rev-parse", "--verify", "--quiet", &refname],
            LOCAL_LIMIT,
        )
        .await
        {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_string())),
            Err(_) => Ok(None),
        }
    }

    /// Commits reachable from `head` and not from `since`, oldest first, at most `max`.
    pub async fn new_commits(
        &self,
        since: Option<&str>,
        head: &str,
        max: usize,
    ) -> Result<Vec<Commit>, GitError> {
        let range = match since {
            Some(s) => format!("{s}..{head}"),
            None => head.to_string(),
        };
        let max = format!("--max-count={max}");
        let out = git(
            Some(&self.dir),
            &[
                "log",
                &max,
                "--format=%H%x00%an <%ae>%x00%cI%x00%s",
                "--end-of-options",
                &range,
                "--",
            ],
            LOCAL_LIMIT,
        )
        .await?;
        let mut commits: Vec<Commit> = String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\0');
                Some(Commit {
                    hash: f.next()?.to_string(),
                    author: f.next()?.to_string(),
                    date: f.next()?.to_string(),
                    desc: f.next()?.to_string(),
                })
            })
            .collect();
        commits.reverse();
        Ok(commits)
    }

    /// Metadata of one commit. `rev` may come from the network (the enqueue API): it is
    /// resolved to a commit hash first, and never read as an option (`--output=…`).
    pub async fn commit(&self, rev: &str) -> Result<Commit, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let hash = git(
            Some(&self.dir),
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
            LOCAL_LIMIT,
        )
        .await
        .map_err(|_| GitError::UnknownRevision(rev.to_string()))?;
        let hash = String::from_utf8_lossy(&hash).trim().to_string();
        self.new_commits(None, &hash, 1)
            .await?
            .pop()
            .ok_or_else(|| GitError::UnknownRevision(rev.to_string()))
    }

    /// The tree at `rev` as a `.tar.gz` stream from `git archive`, with a `.xbuild-rev`
    /// file naming the revision: nothing is held in memory, and the archive is made only
    /// once a buildlet is there to take it.
    pub fn archive(&self, rev: &str) -> Result<Archive, GitError> {
        if !rev.bytes().all(|b| b.is_ascii_hexdigit()) || rev.is_empty() {
            return Err(GitError::UnknownRevision(rev.to_string()));
        }
        let marker = format!("--add-virtual-file=.xbuild-rev:{rev}\n");
        let mut args = vec!["archive", "--format=tar.gz"];
        // git before 2.39 has no --add-virtual-file; the marker is then missing.
        if supports_virtual_files() {
            args.push(&marker);
        }
        args.push(rev);
        let mut child = command(Some(&self.dir), &args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(GitError::Spawn)?;
        let stream = child.stdout.take().expect("piped");
        Ok(Archive {
            stream,
            exit: ArchiveExit {
                child,
                args: args.join(" "),
            },
        })
    }
}

/// Whether this machine's git has `archive --add-virtual-file` (2.39 and later): asked
/// of git's own usage text once.
fn supports_virtual_files() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        std::process::Command::new("git")
            .args(["archive", "-h"])
            .output()
            .is_ok_and(|o| {
                let usage = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&usage).contains("--add-virtual-file")
            })
    })
}

/// A running `git archive`: read [`Archive::stream`], then [`ArchiveExit::finish`] to learn
/// whether git succeeded (a stream that ends early looks like a small tree otherwise).
#[derive(Debug)]
pub struct Archive {
    /// The `.tar.gz` bytes.
    pub stream: ChildStdout,
    /// git's exit.
    pub exit: ArchiveExit,
}

/// The process behind an [`Archive`].
#[derive(Debug)]
pub struct ArchiveExit {
    child: Child,
    args: String,
}

impl ArchiveExit {
    /// Waits for git to exit; an error if it failed.
    pub async fn finish(mut self) -> Result<(), GitError> {
        use tokio::io::AsyncReadExt;
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        let status = tokio::time::timeout(LOCAL_LIMIT, self.child.wait())
            .await
            .map_err(|_| GitError::Timeout {
                args: self.args.clone(),
                limit: LOCAL_LIMIT,
            })?
            .map_err(GitError::Spawn)?;
        if status.success() {
            Ok(())
        } else {
            Err(GitError::Failed {
                args: self.args,
                stderr: stderr.trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit, mirrored.
    async fn mirrored(dir: &Path) -> (Mirror, String) {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        run(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("f"), "x").unwrap();
        run(&["add", "f"]);
        run(&["commit", "-q", "-m", "first"]);
        let hash = run(&["rev-parse", "HEAD"]);
        let source = Source {
            name: "repo".into(),
            url: repo.to_string_lossy().into_owned(),
            branches: vec!["main".into()],
            subrepo_of: None,
            go_branch: None,
            dir: None,
        };
        let mirror = Mirror::new(&dir.join("mirrors"), &source, Duration::from_secs(60));
        mirror.fetch().await.unwrap();
        (mirror, hash)
    }

    #[tokio::test]
    async fn a_burst_of_fetches_runs_at_most_two() {
        let dir = tempfile::tempdir().unwrap();
        let (mirror, _) = mirrored(dir.path()).await;
        // Count the fetches that reach the origin: its upload-pack, through a script.
        let count = dir.path().join("count");
        let script = dir.path().join("upload-pack");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho x >> {}\nexec git-upload-pack \"$@\"\n",
                count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let set = std::process::Command::new("git")
            .arg("-C")
            .arg(&mirror.dir)
            .args(["config", "remote.origin.uploadpack"])
            .arg(&script)
            .status()
            .unwrap();
        assert!(set.success());
        let fetches = || std::fs::read_to_string(&count).map_or(0, |s| s.lines().count());
        // Ten at once: the first runs; the others, having asked while it ran, share the
        // next one.
        let all = futures_util::future::join_all((0..10).map(|_| mirror.fetch())).await;
        assert!(all.iter().all(Result::is_ok));
        let n = fetches();
        assert!((1..=2).contains(&n), "{n} fetches for a burst of ten");
        // One after another, each asks after the last ended: each fetches.
        mirror.fetch().await.unwrap();
        mirror.fetch().await.unwrap();
        assert_eq!(fetches(), n + 2);
    }

    #[tokio::test]
    async fn revisions_from_the_network_are_never_options() {
        let dir = tempfile::tempdir().unwrap();
        let (mirror, hash) = mirrored(dir.path()).await;
        assert_eq!(mirror.commit("main").await.unwrap().hash, hash);
        assert_eq!(mirror.commit(&hash[..8]).await.unwrap().desc, "first");
        let target = dir.path().join("written-by-git");
        for rev in [
            format!("--output={}", target.display()),
            "--all".to_string(),
            "-p".to_string(),
            "main..--output=x".to_string(),
        ] {
            let err = mirror.commit(&rev).await.unwrap_err().to_string();
            assert!(err.starts_with("unknown revision"), "{rev}: {err}");
        }
        assert!(!target.exists(), "git wrote a file named by the request");
    }
}
