package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// devMasterKey is upstream's development master key: a buildlet dialing any coordinator
// but farmer.golang.org derives its builder key from it.
const devMasterKey = "gophers rule"

// ourCoordinator is our coordinator binary serving one git source and the given builders.
type ourCoordinator struct {
	web, reverse string
	proc         *proc
	dataDir      string
	token        string // an admin API token
}

// gitRepo makes a repository with one commit and returns its path.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from the source tree\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "first"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			skipOrFail(t, "git %v: %v %s", args, err, out)
		}
	}
	return dir
}

func startCoordinator(t *testing.T, reverseTypes map[string]int, builders string) *ourCoordinator {
	t.Helper()
	bin := ourBinary(t, "coordinator")
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	os.WriteFile(key, []byte(devMasterKey+"\n"), 0o600)
	c := &ourCoordinator{web: freeAddr(t), reverse: freeAddr(t), dataDir: filepath.Join(dir, "data")}
	var pools strings.Builder
	for ht, n := range reverseTypes {
		fmt.Fprintf(&pools, "%q = %d\n", ht, n)
	}
	cfg := fmt.Sprintf(`listen = %q
reverse_listen = %q
data_dir = %q
master_key_file = %q
poll_secs = 3600

[[sources]]
name = "repo"
url = %q
branches = ["main"]

[pools.reverse]
%s
%s`, c.web, c.reverse, c.dataDir, key, gitRepo(t), pools.String(), builders)
	cfgPath := filepath.Join(dir, "coordinator.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	// Writes need a token: made with the coordinator's own CLI, as an operator would.
	out, err := exec.Command(bin, "token", "create", "--name", "interop", "--role", "admin", "--config", cfgPath).Output()
	if err != nil {
		t.Fatalf("coordinator token create: %v", err)
	}
	c.token = strings.TrimSpace(string(out))
	c.proc = startProc(t, bin, []string{"serve", "--config", cfgPath}, []string{"RUST_LOG=info"})
	waitHTTP(t, c.proc, "http://"+c.web+"/healthz")
	return c
}

func (c *ourCoordinator) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + c.web + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

type buildJSON struct {
	ID, State, Builder, Buildlet, LogURL string
}

// build enqueues builder at the head of main and waits for its end.
func (c *ourCoordinator) build(t *testing.T, builder string, limit time.Duration) (buildJSON, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"source": "repo", "rev": "main", "builder": builder})
	req, err := http.NewRequest("POST", "http://"+c.web+"/api/builds", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b buildJSON
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("enqueue: %d %s", res.StatusCode, raw)
	}
	json.Unmarshal(raw, &struct {
		ID *string `json:"id"`
	}{&b.ID})
	waitFor(t, "build "+b.ID+" of "+builder, limit, func() bool {
		_, s := c.get(t, "/api/builds/"+b.ID)
		var got struct {
			State    string `json:"state"`
			Buildlet string `json:"buildlet"`
			LogURL   string `json:"log_url"`
		}
		json.Unmarshal([]byte(s), &got)
		b.State, b.Buildlet, b.LogURL = got.State, got.Buildlet, got.LogURL
		switch got.State {
		case "succeeded", "failed", "canceled":
			return true
		}
		return false
	})
	_, log := c.get(t, b.LogURL)
	return b, log
}

const reverseBuilders = `
[[builders]]
name = "rev-ok"
host_type = "host-interop-rev"
steps = [["sh", "-c", "cat hello.txt; echo \"WORKDIR=$WORKDIR\""]]
step_timeout_secs = 60

[[builders]]
name = "rev-fail"
host_type = "host-interop-rev"
steps = [["sh", "-c", "echo about to fail; exit 7"], ["sh", "-c", "echo never runs"]]
step_timeout_secs = 60

[[builders]]
name = "rev-timeout"
host_type = "host-interop-rev"
steps = [["sh", "-c", "echo sleeping; sleep 600"]]
step_timeout_secs = 2
`

// TestUpstreamBuildletOnOurCoordinator: upstream's cmd/buildlet, unmodified, registers
// in reverse mode with our coordinator (TLS on a port other than 443, so its SNI is
// HOST:PORT) and runs builds.
func TestUpstreamBuildletOnOurCoordinator(t *testing.T) {
	up := upstreamBinary(t, upstreamBuildletPkg)
	c := startCoordinator(t, map[string]int{"host-interop-rev": 1}, reverseBuilders)
	b := startProc(t, up, []string{
		"-reverse-type", "host-interop-rev", "-coordinator", c.reverse,
		"-hostname", "upstream-interop", "-workdir", t.TempDir(),
		"-halt=false", "-reboot=false", "-health-addr", freeAddr(t),
	}, nil)

	if !t.Run("registers_over_tls_with_a_host_port_server_name", func(t *testing.T) {
		waitFor(t, "the upstream buildlet in /status", 60*time.Second, func() bool {
			if b.exited() {
				t.Fatalf("upstream buildlet exited:\n%s", b.out.String())
			}
			_, s := c.get(t, "/status")
			return strings.Contains(s, "upstream-interop")
		})
	}) {
		t.Fatal("the upstream buildlet never registered; no build can run")
	}
	t.Run("a_build_runs_to_ok", func(t *testing.T) {
		got, log := c.build(t, "rev-ok", 120*time.Second)
		if got.State != "succeeded" || !strings.Contains(log, "hello from the source tree") {
			t.Fatalf("state %q, log:\n%s", got.State, log)
		}
		if !strings.Contains(got.Buildlet, "upstream-interop") {
			t.Fatalf("ran on %q", got.Buildlet)
		}
	})
	t.Run("a_failing_step_fails_the_build", func(t *testing.T) {
		got, log := c.build(t, "rev-fail", 120*time.Second)
		if got.State != "failed" || !strings.Contains(log, "exit status 7") || strings.Contains(log, "never runs") {
			t.Fatalf("state %q, log:\n%s", got.State, log)
		}
	})
	t.Run("a_step_timeout_is_enforced_by_disconnecting", func(t *testing.T) {
		start := time.Now()
		got, log := c.build(t, "rev-timeout", 90*time.Second)
		if got.State != "failed" || !strings.Contains(log, "timed out") {
			t.Fatalf("state %q after %v, log:\n%s", got.State, time.Since(start), log)
		}
	})
	t.Run("the_buildlet_stays_usable_after_a_timeout", func(t *testing.T) {
		got, log := c.build(t, "rev-ok", 120*time.Second)
		if got.State != "succeeded" {
			t.Fatalf("state %q, log:\n%s", got.State, log)
		}
		_, s := c.get(t, "/status")
		if !strings.Contains(s, "upstream-interop") {
			t.Fatalf("the buildlet left the pool:\n%s", s)
		}
	})
}
