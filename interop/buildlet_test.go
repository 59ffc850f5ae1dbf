package interop

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/build/buildlet"
)

// A buildlet in listen mode, ours or upstream's, and an upstream client for it.
type buildletUnderTest struct {
	impl    string // "ours" or "upstream"
	client  buildlet.Client
	workdir string
	addr    string
	proc    *proc
}

// startBuildlet starts a buildlet of impl on loopback; with kp non-zero it serves TLS with
// kp and requires kp's password, as upstream's direct-mode VMs do.
func startBuildlet(t *testing.T, impl string, kp buildlet.KeyPair) *buildletUnderTest {
	t.Helper()
	dir := t.TempDir()
	workdir := filepath.Join(dir, "workdir")
	if err := os.Mkdir(workdir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var env []string
	if !kp.IsZero() {
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		os.WriteFile(cert, []byte(kp.CertPEM), 0o600)
		os.WriteFile(key, []byte(kp.KeyPEM), 0o600)
		env = append(env, "META_tls_cert=@"+cert, "META_tls_key=@"+key, "META_password="+kp.Password())
	}
	var p *proc
	switch impl {
	case "ours":
		p = startProc(t, ourBinary(t, "buildlet"), []string{"--listen", addr, "--workdir", workdir, "--halt=false"}, env)
	case "upstream":
		p = startProc(t, upstreamBinary(t, upstreamBuildletPkg), []string{
			"-listen", addr, "-workdir", workdir,
			"-halt=false", "-reboot=false", "-health-addr", freeAddr(t),
		}, env)
	}
	scheme := "http"
	if !kp.IsZero() {
		scheme = "https"
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	waitFor(t, impl+" buildlet on "+addr, 60*time.Second, func() bool {
		if p.exited() {
			t.Fatalf("%s buildlet exited:\n%s", impl, p.out.String())
		}
		res, err := c.Get(scheme + "://" + addr + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return true
	})
	bc := buildlet.NewClient(addr, kp)
	t.Cleanup(func() { bc.Close() })
	return &buildletUnderTest{impl: impl, client: bc, workdir: workdir, addr: addr, proc: p}
}

// exec runs cmd and returns its output and both errors.
func (b *buildletUnderTest) exec(t *testing.T, cmd string, opts buildlet.ExecOpts) (out string, remoteErr, execErr error) {
	t.Helper()
	var buf bytes.Buffer
	opts.Output = &buf
	remoteErr, execErr = b.client.Exec(ctxT(t, 60*time.Second), cmd, opts)
	return buf.String(), remoteErr, execErr
}

// sh runs a shell script with sh from the system.
func (b *buildletUnderTest) sh(t *testing.T, script string, opts buildlet.ExecOpts) string {
	t.Helper()
	opts.SystemLevel = true
	opts.Args = append([]string{"-c", script}, opts.Args...)
	out, rerr, xerr := b.exec(t, "/bin/sh", opts)
	if rerr != nil || xerr != nil {
		t.Fatalf("sh -c %q: remote %v, exec %v; output %q", script, rerr, xerr, out)
	}
	return out
}

func (b *buildletUnderTest) write(t *testing.T, rel, content string, mode os.FileMode) {
	t.Helper()
	if err := b.client.Put(ctxT(t, 30*time.Second), strings.NewReader(content), rel, mode); err != nil {
		t.Fatalf("Put %s: %v", rel, err)
	}
}

func (b *buildletUnderTest) ls(t *testing.T, dir string, opts buildlet.ListDirOpts) ([]string, error) {
	var lines []string
	err := b.client.ListDir(ctxT(t, 30*time.Second), dir, opts, func(e buildlet.DirEntry) {
		lines = append(lines, e.Line)
	})
	return lines, err
}

// outside is a file beside the work dir that no request may touch.
func (b *buildletUnderTest) outside(t *testing.T) string {
	p := filepath.Join(filepath.Dir(b.workdir), "outside")
	os.WriteFile(p, []byte("keep"), 0o644)
	return p
}

func assertOutsideKept(t *testing.T, p string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "keep" {
		t.Fatalf("a file outside the work dir was changed: %q %v", got, err)
	}
}

// tgz builds a gzipped tar of the given entries (name → content; a trailing / is a dir).
func tgz(t *testing.T, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(entries[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1600000000, 0)}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if strings.HasSuffix(n, ".sh") {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, entries[n])
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// untgz reads a gzipped tar into name → content ("<dir>" for directories) and modes.
func untgz(t *testing.T, r io.Reader) (map[string]string, map[string]int64) {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	files, modes := map[string]string{}, map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, modes
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeDir {
			files[strings.TrimSuffix(h.Name, "/")] = "<dir>"
		} else {
			files[h.Name] = string(b)
		}
		modes[strings.TrimSuffix(h.Name, "/")] = h.Mode & 0o777
	}
}

// buildletCases are run against our buildlet and against upstream's, so each expectation
// is checked to be upstream's behaviour as well as ours.
var buildletCases = []struct {
	name string
	run  func(t *testing.T, b *buildletUnderTest)
}{
	{"status_reports_a_version_the_coordinator_accepts", func(t *testing.T, b *buildletUnderTest) {
		st, err := b.client.Status(ctxT(t, 20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// Upstream's coordinator refuses buildlets older than version 23.
		if st.Version < 23 {
			t.Fatalf("version %d", st.Version)
		}
	}},
	{"workdir_is_the_configured_directory", func(t *testing.T, b *buildletUnderTest) {
		wd, err := b.client.WorkDir(ctxT(t, 20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if wd != b.workdir {
			t.Fatalf("WorkDir %q, want %q", wd, b.workdir)
		}
	}},
	{"put_writes_a_file_with_its_mode", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "run.sh", "#!/bin/sh\necho hi\n", 0o755)
		fi, err := os.Stat(filepath.Join(b.workdir, "run.sh"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("stat: %v %v", fi, err)
		}
		out, rerr, xerr := b.exec(t, "run.sh", buildlet.ExecOpts{})
		if rerr != nil || xerr != nil || out != "hi\n" {
			t.Fatalf("%q %v %v", out, rerr, xerr)
		}
	}},
	{"put_creates_parent_directories", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "a/b/c.txt", "deep", 0o644)
		got, err := os.ReadFile(filepath.Join(b.workdir, "a/b/c.txt"))
		if err != nil || string(got) != "deep" {
			t.Fatalf("%q %v", got, err)
		}
	}},
	{"put_overwrites_an_existing_file", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "f.txt", "first version, longer", 0o644)
		b.write(t, "f.txt", "second", 0o644)
		got, _ := os.ReadFile(filepath.Join(b.workdir, "f.txt"))
		if string(got) != "second" {
			t.Fatalf("%q", got)
		}
	}},
	{"put_refuses_parent_traversal", func(t *testing.T, b *buildletUnderTest) {
		keep := b.outside(t)
		err := b.client.Put(ctxT(t, 20*time.Second), strings.NewReader("evil"), "../outside", 0o644)
		if err == nil {
			t.Fatal("Put ../outside succeeded")
		}
		assertOutsideKept(t, keep)
	}},
	{"put_refuses_an_absolute_path", func(t *testing.T, b *buildletUnderTest) {
		keep := b.outside(t)
		err := b.client.Put(ctxT(t, 20*time.Second), strings.NewReader("evil"), keep, 0o644)
		if err == nil {
			t.Fatal("Put of an absolute path succeeded")
		}
		assertOutsideKept(t, keep)
	}},
	{"puttar_extracts_into_the_workdir", func(t *testing.T, b *buildletUnderTest) {
		data := tgz(t, map[string]string{"src/": "", "src/main.go": "package main\n", "make.sh": "#!/bin/sh\necho made\n"})
		if err := b.client.PutTar(ctxT(t, 30*time.Second), bytes.NewReader(data), ""); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(b.workdir, "src/main.go"))
		if string(got) != "package main\n" {
			t.Fatalf("%q", got)
		}
		out, rerr, xerr := b.exec(t, "make.sh", buildlet.ExecOpts{})
		if out != "made\n" || rerr != nil || xerr != nil {
			t.Fatalf("extracted script: %q %v %v", out, rerr, xerr)
		}
	}},
	{"puttar_extracts_into_a_subdirectory", func(t *testing.T, b *buildletUnderTest) {
		data := tgz(t, map[string]string{"x.txt": "x"})
		if err := b.client.PutTar(ctxT(t, 30*time.Second), bytes.NewReader(data), "go1.4/sub"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(b.workdir, "go1.4/sub/x.txt")); string(got) != "x" {
			t.Fatalf("%q", got)
		}
	}},
	{"puttar_refuses_a_traversing_dir", func(t *testing.T, b *buildletUnderTest) {
		data := tgz(t, map[string]string{"outside": "evil"})
		keep := b.outside(t)
		if err := b.client.PutTar(ctxT(t, 30*time.Second), bytes.NewReader(data), "../"); err == nil {
			t.Fatal("PutTar into ../ succeeded")
		}
		assertOutsideKept(t, keep)
	}},
	{"puttar_refuses_a_traversing_entry", func(t *testing.T, b *buildletUnderTest) {
		data := tgz(t, map[string]string{"../outside": "evil"})
		keep := b.outside(t)
		if err := b.client.PutTar(ctxT(t, 30*time.Second), bytes.NewReader(data), ""); err == nil {
			t.Fatal("PutTar with a ../ entry succeeded")
		}
		assertOutsideKept(t, keep)
	}},
	{"puttar_refuses_a_corrupt_archive", func(t *testing.T, b *buildletUnderTest) {
		if err := b.client.PutTar(ctxT(t, 30*time.Second), strings.NewReader("not gzip at all"), ""); err == nil {
			t.Fatal("PutTar of garbage succeeded")
		}
	}},
	{"puttar_from_url_fetches_and_extracts", func(t *testing.T, b *buildletUnderTest) {
		data := tgz(t, map[string]string{"fetched.txt": "from url"})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
		defer srv.Close()
		if err := b.client.PutTarFromURL(ctxT(t, 30*time.Second), srv.URL+"/go.tar.gz", "dl"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(b.workdir, "dl/fetched.txt")); string(got) != "from url" {
			t.Fatalf("%q", got)
		}
	}},
	{"puttar_from_url_reports_the_fetch_status", func(t *testing.T, b *buildletUnderTest) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		err := b.client.PutTarFromURL(ctxT(t, 30*time.Second), srv.URL+"/missing.tar.gz", "")
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("want an error naming 404, got %v", err)
		}
	}},
	{"gettar_round_trips_files_and_modes", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "out/bin/tool", "binary", 0o755)
		b.write(t, "out/readme", "text", 0o644)
		rc, err := b.client.GetTar(ctxT(t, 30*time.Second), "out")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		files, modes := untgz(t, rc)
		if files["bin/tool"] != "binary" || files["readme"] != "text" {
			t.Fatalf("%v", files)
		}
		if modes["bin/tool"] != 0o755 || modes["readme"] != 0o644 {
			t.Fatalf("modes %v", modes)
		}
	}},
	{"gettar_of_the_whole_workdir", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "top.txt", "top", 0o644)
		rc, err := b.client.GetTar(ctxT(t, 30*time.Second), ".")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		files, _ := untgz(t, rc)
		if files["top.txt"] != "top" {
			t.Fatalf("%v", files)
		}
	}},
	{"gettar_refuses_traversal", func(t *testing.T, b *buildletUnderTest) {
		rc, err := b.client.GetTar(ctxT(t, 30*time.Second), "../")
		if err == nil {
			rc.Close()
			t.Fatal("GetTar ../ succeeded")
		}
	}},
	{"ls_lists_the_top_level", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "lsd/inner.txt", "12345", 0o644)
		b.write(t, "g.txt", "1", 0o644)
		lines, err := b.ls(t, ".", buildlet.ListDirOpts{})
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(lines, "\n")
		if !strings.Contains(joined, "\tlsd/") || !strings.Contains(joined, "\tg.txt\t") || strings.Contains(joined, "inner.txt") {
			t.Fatalf("%q", lines)
		}
	}},
	{"ls_line_format_is_mode_name_size_time", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "sized.txt", "12345", 0o640)
		lines, err := b.ls(t, ".", buildlet.ListDirOpts{})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			f := strings.Split(l, "\t")
			if len(f) >= 2 && f[1] == "sized.txt" {
				if f[0] != "-rw-r-----" || len(f) != 4 || f[2] != "5" {
					t.Fatalf("line %q", l)
				}
				if _, err := time.Parse(time.RFC3339, f[3]); err != nil {
					t.Fatalf("time %q: %v", f[3], err)
				}
				return
			}
		}
		t.Fatalf("no line for sized.txt in %q", lines)
	}},
	{"ls_recursive_walks_subdirectories", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "r/s/t.txt", "t", 0o644)
		lines, err := b.ls(t, "r", buildlet.ListDirOpts{Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(lines, "\n"), "s/t.txt") {
			t.Fatalf("%q", lines)
		}
	}},
	{"ls_skip_leaves_out_a_subtree", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "k/keep/a.txt", "a", 0o644)
		b.write(t, "k/skip/b.txt", "b", 0o644)
		lines, err := b.ls(t, "k", buildlet.ListDirOpts{Recursive: true, Skip: []string{"skip"}})
		if err != nil {
			t.Fatal(err)
		}
		j := strings.Join(lines, "\n")
		if !strings.Contains(j, "keep/a.txt") || strings.Contains(j, "b.txt") {
			t.Fatalf("%q", lines)
		}
	}},
	{"ls_digest_is_the_sha1_of_the_content", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "dg/x.txt", "digest me", 0o644)
		var entries []buildlet.DirEntry
		err := b.client.ListDir(ctxT(t, 20*time.Second), "dg", buildlet.ListDirOpts{Digest: true}, func(e buildlet.DirEntry) {
			entries = append(entries, e)
		})
		if err != nil || len(entries) != 1 {
			t.Fatalf("%v %v", entries, err)
		}
		want := fmt.Sprintf("%x", sha1.Sum([]byte("digest me")))
		if entries[0].Digest() != want || entries[0].Name() != "x.txt" || entries[0].IsDir() {
			t.Fatalf("%q: digest %q name %q", entries[0].Line, entries[0].Digest(), entries[0].Name())
		}
	}},
	{"ls_refuses_traversal", func(t *testing.T, b *buildletUnderTest) {
		if _, err := b.ls(t, "../", buildlet.ListDirOpts{}); err == nil {
			t.Fatal("ls ../ succeeded")
		}
	}},
	{"removeall_removes_files_and_trees", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "rm/a/b.txt", "b", 0o644)
		b.write(t, "rm2.txt", "x", 0o644)
		if err := b.client.RemoveAll(ctxT(t, 20*time.Second), "rm", "rm2.txt"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"rm", "rm2.txt"} {
			if _, err := os.Stat(filepath.Join(b.workdir, p)); !os.IsNotExist(err) {
				t.Fatalf("%s still there: %v", p, err)
			}
		}
	}},
	{"removeall_of_a_missing_path_succeeds", func(t *testing.T, b *buildletUnderTest) {
		if err := b.client.RemoveAll(ctxT(t, 20*time.Second), "never/was"); err != nil {
			t.Fatal(err)
		}
	}},
	{"removeall_refuses_traversal", func(t *testing.T, b *buildletUnderTest) {
		keep := b.outside(t)
		if err := b.client.RemoveAll(ctxT(t, 20*time.Second), "../outside"); err == nil {
			t.Fatal("RemoveAll ../outside succeeded")
		}
		assertOutsideKept(t, keep)
	}},
	{"exec_passes_arguments_verbatim", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `for a in "$@"; do printf '[%s]' "$a"; done`, buildlet.ExecOpts{Args: []string{"x", "a b", "", "'q'", "$HOME", "ü"}})
		if want := "[a b][][" + "'q'" + "][$HOME][ü]"; out != want {
			t.Fatalf("%q, want %q", out, want)
		}
	}},
	{"exec_extra_env_is_visible", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `echo "$GREETING"`, buildlet.ExecOpts{ExtraEnv: []string{"GREETING=hello there"}})
		if out != "hello there\n" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_later_env_entries_win", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `echo "$V"; env | grep -c '^V='`, buildlet.ExecOpts{ExtraEnv: []string{"V=1", "V=2"}})
		if out != "2\n1\n" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_child_sees_WORKDIR", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `echo "$WORKDIR"`, buildlet.ExecOpts{})
		if out != b.workdir+"\n" {
			t.Fatalf("WORKDIR=%q, want %q", out, b.workdir)
		}
	}},
	{"exec_path_expands_WORKDIR_inside_an_element", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "sub/bin/mytool", "#!/bin/sh\necho found mytool\n", 0o755)
		out := b.sh(t, `echo "$PATH"; mytool`, buildlet.ExecOpts{Path: []string{"$WORKDIR/sub/bin", "$PATH"}})
		lines := strings.Split(out, "\n")
		if !strings.HasPrefix(lines[0], b.workdir+"/sub/bin:") || lines[1] != "found mytool" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_path_expands_bare_WORKDIR", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `echo "$PATH"`, buildlet.ExecOpts{Path: []string{"/opt/x", "$WORKDIR"}})
		if out != "/opt/x:"+b.workdir+"\n" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_path_expands_PATH", func(t *testing.T, b *buildletUnderTest) {
		orig := b.sh(t, `echo "$PATH"`, buildlet.ExecOpts{})
		out := b.sh(t, `echo "$PATH"`, buildlet.ExecOpts{Path: []string{"/first", "$PATH"}})
		if out != "/first:"+orig {
			t.Fatalf("%q, want /first:%q", out, orig)
		}
	}},
	{"exec_empty_path_list_clears_PATH", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `printf '[%s]' "$PATH"`, buildlet.ExecOpts{Path: []string{}})
		if out != "[]" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_dir_is_relative_to_the_workdir", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "wd/sub/.keep", "", 0o644)
		out := b.sh(t, `pwd`, buildlet.ExecOpts{Dir: "wd/sub"})
		if out != filepath.Join(b.workdir, "wd/sub")+"\n" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_default_dir_is_the_commands_directory", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "tools/where.sh", "#!/bin/sh\npwd\n", 0o755)
		out, rerr, xerr := b.exec(t, "tools/where.sh", buildlet.ExecOpts{})
		if rerr != nil || xerr != nil || out != filepath.Join(b.workdir, "tools")+"\n" {
			t.Fatalf("%q %v %v", out, rerr, xerr)
		}
	}},
	{"exec_system_level_default_dir_is_the_workdir", func(t *testing.T, b *buildletUnderTest) {
		out, rerr, xerr := b.exec(t, "pwd", buildlet.ExecOpts{SystemLevel: true})
		if rerr != nil || xerr != nil || out != b.workdir+"\n" {
			t.Fatalf("%q %v %v", out, rerr, xerr)
		}
	}},
	{"exec_TMPDIR_and_GOCACHE_live_in_the_workdir", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `echo "$TMPDIR"; echo "$GOCACHE"`, buildlet.ExecOpts{})
		want := filepath.Join(b.workdir, "tmp") + "\n" + filepath.Join(b.workdir, "gocache") + "\n"
		if out != want {
			t.Fatalf("%q, want %q", out, want)
		}
	}},
	{"exec_PWD_is_the_command_dir", func(t *testing.T, b *buildletUnderTest) {
		b.write(t, "p/.keep", "", 0o644)
		out := b.sh(t, `echo "$PWD"`, buildlet.ExecOpts{Dir: "p"})
		if out != filepath.Join(b.workdir, "p")+"\n" {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_captures_stdout_and_stderr", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `echo out; echo err >&2`, buildlet.ExecOpts{})
		if !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
			t.Fatalf("%q", out)
		}
	}},
	{"exec_streams_output_before_the_command_ends", func(t *testing.T, b *buildletUnderTest) {
		pr, pw := io.Pipe()
		first := make(chan string, 1)
		go func() {
			buf := make([]byte, 64)
			n, _ := pr.Read(buf)
			first <- string(buf[:n])
			io.Copy(io.Discard, pr)
		}()
		// The command waits for a file the test writes only after the first line arrived.
		flag := filepath.Join(b.workdir, "go-on")
		done := make(chan error, 1)
		go func() {
			rerr, xerr := b.client.Exec(ctxT(t, 60*time.Second), "/bin/sh", buildlet.ExecOpts{
				SystemLevel: true, Output: pw,
				Args: []string{"-c", `echo first; while [ ! -e "$0" ]; do sleep 0.05; done; echo second`, flag},
			})
			pw.Close()
			done <- errors.Join(rerr, xerr)
		}()
		select {
		case got := <-first:
			if got != "first\n" {
				t.Fatalf("first read %q", got)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no output while the command was running")
		}
		os.WriteFile(flag, nil, 0o644)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}},
	{"exec_large_output_arrives_intact", func(t *testing.T, b *buildletUnderTest) {
		out := b.sh(t, `i=0; while [ $i -lt 20000 ]; do echo "line $i of the output"; i=$((i+1)); done`, buildlet.ExecOpts{})
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 20000 || lines[19999] != "line 19999 of the output" {
			t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
		}
	}},
	{"exec_reports_a_nonzero_exit_status", func(t *testing.T, b *buildletUnderTest) {
		_, rerr, xerr := b.exec(t, "/bin/sh", buildlet.ExecOpts{SystemLevel: true, Args: []string{"-c", "exit 3"}})
		if xerr != nil || rerr == nil || rerr.Error() != "exit status 3" {
			t.Fatalf("remote %v, exec %v", rerr, xerr)
		}
	}},
	{"exec_reports_a_fatal_signal", func(t *testing.T, b *buildletUnderTest) {
		_, rerr, xerr := b.exec(t, "/bin/sh", buildlet.ExecOpts{SystemLevel: true, Args: []string{"-c", "kill -9 $$"}})
		if xerr != nil || rerr == nil || rerr.Error() != "signal: killed" {
			t.Fatalf("remote %v, exec %v", rerr, xerr)
		}
	}},
	{"exec_reports_success_as_no_error", func(t *testing.T, b *buildletUnderTest) {
		_, rerr, xerr := b.exec(t, "/bin/true", buildlet.ExecOpts{SystemLevel: true})
		if rerr != nil || xerr != nil {
			t.Fatalf("remote %v, exec %v", rerr, xerr)
		}
	}},
	{"exec_missing_binary_is_refused_with_422", func(t *testing.T, b *buildletUnderTest) {
		_, rerr, xerr := b.exec(t, "no-such-cmd", buildlet.ExecOpts{})
		want := `buildlet: HTTP status 422 Unprocessable Entity: invalid 'cmd' parameter: command "no-such-cmd" not found` + "\n"
		if rerr != nil || xerr == nil || xerr.Error() != want {
			t.Fatalf("remote %v, exec %v", rerr, xerr)
		}
	}},
	{"exec_missing_binary_dir_fails_the_command", func(t *testing.T, b *buildletUnderTest) {
		_, rerr, xerr := b.exec(t, "no/such/cmd", buildlet.ExecOpts{})
		if rerr == nil || !strings.Contains(rerr.Error(), "no such file or directory") || xerr != nil {
			t.Fatalf("remote %v, exec %v", rerr, xerr)
		}
	}},
	{"exec_missing_system_binary_fails_the_command", func(t *testing.T, b *buildletUnderTest) {
		_, rerr, xerr := b.exec(t, "no-such-command-anywhere", buildlet.ExecOpts{SystemLevel: true})
		if rerr == nil && xerr == nil {
			t.Fatalf("a missing command succeeded")
		}
	}},
	{"exec_refuses_a_traversing_dir", func(t *testing.T, b *buildletUnderTest) {
		out, rerr, xerr := b.exec(t, "/bin/pwd", buildlet.ExecOpts{SystemLevel: true, Dir: "../.."})
		if xerr == nil && rerr == nil {
			t.Fatalf("exec in ../.. ran: %q", out)
		}
	}},
	{"exec_debug_prints_the_environment_first", func(t *testing.T, b *buildletUnderTest) {
		out, rerr, xerr := b.exec(t, "/bin/true", buildlet.ExecOpts{SystemLevel: true, Debug: true, ExtraEnv: []string{"DEBUGME=1"}})
		if rerr != nil || xerr != nil || !strings.Contains(out, "DEBUGME=1") {
			t.Fatalf("%q %v %v", out, rerr, xerr)
		}
	}},
	{"exec_deadline_disconnect_kills_the_command", func(t *testing.T, b *buildletUnderTest) {
		pidFile := filepath.Join(b.workdir, "pids")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, xerr := b.client.Exec(ctx, "/bin/sh", buildlet.ExecOpts{
			SystemLevel: true,
			Args:        []string{"-c", `sleep 300 & echo $$ $! > "$0"; wait`, pidFile},
		})
		if xerr == nil {
			t.Fatal("exec past its deadline reported no error")
		}
		var pids []int
		waitFor(t, "the pid file", 10*time.Second, func() bool {
			b, err := os.ReadFile(pidFile)
			pids = pids[:0]
			for _, f := range strings.Fields(string(b)) {
				p, _ := strconv.Atoi(f)
				pids = append(pids, p)
			}
			return err == nil && len(pids) == 2
		})
		gone := func(pid int) func() bool {
			return func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) }
		}
		waitFor(t, "the command to be killed", 20*time.Second, gone(pids[0]))
		// Upstream kills only the command (os.Process.Kill); ours kills its whole
		// process group, so a backgrounded grandchild cannot outlive the step.
		if b.impl == "ours" {
			waitFor(t, "the grandchild to be killed", 20*time.Second, gone(pids[1]))
		} else {
			syscall.Kill(pids[1], syscall.SIGKILL)
		}
	}},
	{"exec_after_a_failure_the_buildlet_still_works", func(t *testing.T, b *buildletUnderTest) {
		b.exec(t, "no/such/cmd", buildlet.ExecOpts{})
		if out := b.sh(t, "echo alive", buildlet.ExecOpts{}); out != "alive\n" {
			t.Fatalf("%q", out)
		}
	}},
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

// TestBuildletClient drives our buildlet, and upstream's, with upstream's client.
func TestBuildletClient(t *testing.T) {
	for _, impl := range []string{"ours", "upstream"} {
		t.Run(impl, func(t *testing.T) {
			b := startBuildlet(t, impl, buildlet.NoKeyPair)
			for _, c := range buildletCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, b) })
			}
		})
	}
}

// TestBuildletPassword: upstream's TLS key pair and password (direct-mode VMs).
func TestBuildletPassword(t *testing.T) {
	for _, impl := range []string{"ours", "upstream"} {
		t.Run(impl, func(t *testing.T) {
			kp, err := buildlet.NewKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			b := startBuildlet(t, impl, kp)
			t.Run("right_password_over_tls_is_accepted", func(t *testing.T) {
				if _, err := b.client.Status(ctxT(t, 20*time.Second)); err != nil {
					t.Fatal(err)
				}
				if out := b.sh(t, "echo ok", buildlet.ExecOpts{}); out != "ok\n" {
					t.Fatalf("%q", out)
				}
			})
			t.Run("wrong_password_is_refused_with_403", func(t *testing.T) {
				req, _ := http.NewRequest("GET", "https://"+b.addr+"/workdir", nil)
				req.SetBasicAuth("gomote", kp.Password()+"x")
				res, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 403 || string(body) != "invalid password\n" {
					t.Fatalf("status %d, body %q", res.StatusCode, body)
				}
			})
			t.Run("missing_password_is_refused", func(t *testing.T) {
				req, _ := http.NewRequest("GET", "https://"+b.addr+"/workdir", nil)
				res, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != 401 && res.StatusCode != 403 {
					t.Fatalf("status %d", res.StatusCode)
				}
			})
		})
	}
}
