package interop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Upstream packages built into binaries for the cases that run them.
const (
	upstreamBuildletPkg  = "golang.org/x/build/cmd/buildlet"
	upstreamBenchstatPkg = "golang.org/x/perf/cmd/benchstat"
)

// Set in the re-executed test process: it runs in a network namespace of its own.
const envInNetns = "INTEROP_IN_NETNS"

// TestMain moves the whole suite into a private network namespace with only a loopback
// interface when it can. Upstream's buildlet asks at start whether it runs on GCE or EC2
// (a DNS query and HTTP requests to the cloud metadata address); inside the namespace
// those fail at once and nothing leaves the machine. Upstream binaries are built first,
// outside, because building may need the module proxy.
func TestMain(m *testing.M) {
	if os.Getenv(envInNetns) == "" {
		if code, ok := reexecInNetns(); ok {
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}

// reexecInNetns builds the upstream binaries and runs this test binary again under
// `unshare --net`; ok is false when that is not possible here (the cases that need the
// namespace then skip, loudly).
func reexecInNetns() (code int, ok bool) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		return 0, false
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return 0, false
	}
	if out, err := exec.Command(unshare, "--net", "true").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "interop: cannot create a network namespace: %v %s\n", err, out)
		return 0, false
	}
	dir, err := os.MkdirTemp("", "interop-upstream-")
	if err != nil {
		return 0, false
	}
	defer os.RemoveAll(dir)
	env := append(os.Environ(), envInNetns+"=1")
	for _, pkg := range []string{upstreamBuildletPkg, upstreamBenchstatPkg} {
		bin := filepath.Join(dir, filepath.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			env = append(env, upstreamEnvKey(pkg)+"_ERROR="+strings.TrimSpace(string(out)))
			continue
		}
		env = append(env, upstreamEnvKey(pkg)+"="+bin)
	}
	args := append([]string{"--net", "--", "/bin/sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command(unshare, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, isExit := err.(*exec.ExitError); isExit {
			return ee.ExitCode(), true
		}
		fmt.Fprintf(os.Stderr, "interop: re-running in a network namespace: %v\n", err)
		return 1, true
	}
	return 0, true
}

func upstreamEnvKey(pkg string) string {
	return "INTEROP_UPSTREAM_" + strings.ToUpper(filepath.Base(pkg))
}

// skipOrFail skips a case that cannot run for a reason outside the project, loudly; with
// INTEROP_REQUIRE=1 (as CI runs) it fails instead.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("INTEROP_REQUIRE") == "1" {
		t.Fatalf("INTEROP_REQUIRE=1 and this case cannot run: %s", msg)
	}
	fmt.Fprintf(os.Stderr, "!!! interop: %s SKIPPED: %s (INTEROP_REQUIRE=1 makes this a failure)\n", t.Name(), msg)
	t.Skip(msg)
}

// binDir is where cargo put our binaries.
func binDir() string {
	if d := os.Getenv("XBUILD_BIN_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("CARGO_TARGET_DIR"); d != "" {
		return filepath.Join(d, "debug")
	}
	return filepath.Join("..", "target", "debug")
}

// ourBinary is the path of one of our binaries (examples live in examples/).
func ourBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(binDir(), name))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	skipOrFail(t, "our %s is not built (%v); run `cargo build --workspace --bins --examples` first, or set XBUILD_BIN_DIR", name, err)
	return ""
}

// upstreamBinary is the path of an upstream command built from the pinned module.
func upstreamBinary(t testing.TB, pkg string) string {
	t.Helper()
	if os.Getenv(envInNetns) == "" {
		skipOrFail(t, "%s is run only inside a private network namespace (it probes cloud metadata addresses at start), and none could be made here (needs root, unshare and ip)", pkg)
	}
	if p := os.Getenv(upstreamEnvKey(pkg)); p != "" {
		return p
	}
	skipOrFail(t, "building %s failed: %s", pkg, os.Getenv(upstreamEnvKey(pkg)+"_ERROR"))
	return ""
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer collects a child's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a child process that is ended when its test ends; its output is logged if the
// test failed.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t testing.TB, bin string, args []string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &proc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
		}
	})
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL after 5 s.
func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond every 50 ms until it holds, failing the test after limit.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHTTP waits until url answers any HTTP status.
func waitHTTP(t testing.TB, p *proc, url string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, url, 60*time.Second, func() bool {
		if p != nil && p.exited() {
			t.Fatalf("process exited before serving %s:\n%s", url, p.out.String())
		}
		res, err := c.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return true
	})
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func init() {
	if runtime.GOOS != "linux" {
		fmt.Fprintln(os.Stderr, "interop: written for Linux; other systems may skip cases")
	}
}
