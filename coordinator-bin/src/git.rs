//! The `git` CLI: mirrors of the watched repositories, new commits, source archives.
//!
//! Every repository is mirrored (`git clone --mirror`) under the data directory and fetched
//! on each poll; archives are made from the mirror with `git archive`, as upstream's
//! gitmirror served them.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::config::Source;

/// One commit's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full hash.
    pub hash: String,
    /// `Name <email>`.
    pub author: String,
    /// Committer time, RFC 3339.
    pub date: String,
    /// Title line.
    pub desc: String,
}

async fn git(dir: Option<&Path>, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args);
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    let out = cmd
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running git: {e} (is git installed?)"))?;
    if !out.status.success() {
        anyhow::bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

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
    })
}

/// A local mirror of one source.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// The mirror's git directory.
    pub dir: PathBuf,
    url: String,
}

impl Mirror {
    /// The mirror of `source` under `root` (not yet fetched).
    pub fn new(root: &Path, source: &Source) -> Mirror {
        let safe: String = source
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Mirror {
            dir: root.join(format!("{safe}.git")),
            url: source.url.clone(),
        }
    }

    /// Clones or fetches.
    pub async fn fetch(&self) -> anyhow::Result<()> {
        if self.dir.join("HEAD").exists() {
            git(Some(&self.dir), &["fetch", "--prune", "--quiet", "origin"]).await?;
        } else {
            if let Some(parent) = self.dir.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let dir = self.dir.to_string_lossy().into_owned();
            git(None, &["clone", "--mirror", "--quiet", &self.url, &dir]).await?;
        }
        Ok(())
    }

    /// The head of `branch`, if it exists.
    pub async fn head(&self, branch: &str) -> anyhow::Result<Option<String>> {
        let refname = format!("refs/heads/{branch}");
        match git(
            Some(&self.dir),
            &["rev-parse", "--verify", "--quiet", &refname],
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
    ) -> anyhow::Result<Vec<Commit>> {
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
    pub async fn commit(&self, rev: &str) -> anyhow::Result<Commit> {
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
        )
        .await
        .map_err(|_| anyhow::anyhow!("unknown revision {rev}"))?;
        let hash = String::from_utf8_lossy(&hash).trim().to_string();
        self.new_commits(None, &hash, 1)
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("unknown revision {rev}"))
    }

    /// The tree at `rev` as a `.tar.gz`, with a `.xbuild-rev` file naming the revision.
    pub async fn archive(&self, rev: &str) -> anyhow::Result<Vec<u8>> {
        if !rev.bytes().all(|b| b.is_ascii_hexdigit()) || rev.is_empty() {
            anyhow::bail!("revision {rev:?} is not a hash");
        }
        let prefix_file = format!("--add-virtual-file=.xbuild-rev:{rev}\n");
        match git(
            Some(&self.dir),
            &["archive", "--format=tar.gz", &prefix_file, rev],
        )
        .await
        {
            Ok(out) => Ok(out),
            // git before 2.40 has no --add-virtual-file; the marker is then missing.
            Err(_) => git(Some(&self.dir), &["archive", "--format=tar.gz", rev]).await,
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
        };
        let mirror = Mirror::new(&dir.join("mirrors"), &source);
        mirror.fetch().await.unwrap();
        (mirror, hash)
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
