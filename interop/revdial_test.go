package interop

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/build/buildlet"
	"golang.org/x/build/revdial/v2"
)

func devBuilderKey(hostType string) string {
	h := hmac.New(md5.New, []byte(devMasterKey))
	io.WriteString(h, hostType)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// goCoordinator is a minimal coordinator around upstream's revdial/v2 Dialer, shaped
// like upstream's HandleReverse: it accepts reverse buildlets over TLS and hands out
// upstream buildlet clients that reach them through revdial.
type goCoordinator struct {
	srv     *httptest.Server
	mu      sync.Mutex
	headers []http.Header
	clients chan buildlet.Client
}

func startGoCoordinator(t *testing.T) *goCoordinator {
	g := &goCoordinator{clients: make(chan buildlet.Client, 4)}
	mux := http.NewServeMux()
	mux.Handle("/revdial", revdial.ConnHandler())
	mux.HandleFunc("/reverse", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.headers = append(g.headers, r.Header.Clone())
		g.mu.Unlock()
		if r.Header.Get("X-Revdial-Version") != "2" {
			http.Error(w, "unknown revdial version", http.StatusBadRequest)
			return
		}
		if r.Header.Get("X-Go-Builder-Key") != devBuilderKey(r.Header.Get("X-Go-Host-Type")) {
			http.Error(w, "invalid build key", http.StatusPreconditionFailed)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		(&http.Response{StatusCode: http.StatusSwitchingProtocols, Proto: "HTTP/1.1"}).Write(conn)
		d := revdial.NewDialer(conn, "/revdial")
		c := buildlet.NewClient(r.Header.Get("X-Go-Builder-Hostname"), buildlet.NoKeyPair)
		c.SetHTTPClient(&http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.Dial(ctx) },
		}})
		c.SetDialer(d.Dial)
		g.clients <- c
	})
	g.srv = httptest.NewUnstartedServer(mux)
	g.srv.StartTLS()
	t.Cleanup(g.srv.Close)
	return g
}

// TestOurReverseBuildletOnGoRevdial: our buildlet in reverse mode registers with a
// coordinator built on upstream's revdial/v2 Dialer, and upstream's buildlet client
// drives it through revdial.
func TestOurReverseBuildletOnGoRevdial(t *testing.T) {
	bin := ourBinary(t, "buildlet")
	g := startGoCoordinator(t)
	workdir := t.TempDir()
	startProc(t, bin, []string{
		"--reverse-type", "host-interop-go", "--coordinator", g.srv.Listener.Addr().String(),
		"--hostname", "ours-reverse", "--workdir", workdir, "--halt=false", "--health-addr", freeAddr(t),
	}, nil)
	var c buildlet.Client
	select {
	case c = <-g.clients:
	case <-time.After(60 * time.Second):
		t.Fatal("our buildlet did not register")
	}
	defer c.Close()
	t.Run("registration_sends_upstreams_headers", func(t *testing.T) {
		g.mu.Lock()
		h := g.headers[0]
		g.mu.Unlock()
		if h.Get("X-Go-Host-Type") != "host-interop-go" || h.Get("X-Go-Builder-Hostname") != "ours-reverse" ||
			h.Get("X-Go-Builder-Key") != devBuilderKey("host-interop-go") || h.Get("X-Go-Builder-Version") == "" {
			t.Fatalf("headers %v", h)
		}
	})
	t.Run("status_through_revdial", func(t *testing.T) {
		if _, err := c.Status(ctxT(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("exec_through_revdial", func(t *testing.T) {
		var out strings.Builder
		rerr, xerr := c.Exec(ctxT(t, 30*time.Second), "/bin/sh", buildlet.ExecOpts{
			SystemLevel: true, Output: &out, Args: []string{"-c", "echo over revdial; exit 2"},
		})
		if xerr != nil || rerr == nil || rerr.Error() != "exit status 2" || out.String() != "over revdial\n" {
			t.Fatalf("%q %v %v", out.String(), rerr, xerr)
		}
	})
	t.Run("files_through_revdial", func(t *testing.T) {
		if err := c.Put(ctxT(t, 30*time.Second), strings.NewReader("via revdial"), "r/x.txt", 0o644); err != nil {
			t.Fatal(err)
		}
		rc, err := c.GetTar(ctxT(t, 30*time.Second), "r")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		files, _ := untgz(t, rc)
		if files["x.txt"] != "via revdial" {
			t.Fatalf("%v", files)
		}
	})
	t.Run("many_concurrent_dials", func(t *testing.T) {
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.WorkDir(ctxT(t, 30*time.Second)); err != nil {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			t.Fatalf("%d of 16 calls failed", n)
		}
	})
}

// TestGoRevdialListenerOnOurCoordinator: a reverse peer built on upstream's revdial/v2
// Listener, dialing exactly as upstream's buildlet does (TLS server name HOST:PORT),
// registers at our coordinator's /reverse; our Dialer then reaches the peer's HTTP server
// through it (the coordinator's health checks), and the peer appears in /status.
func TestGoRevdialListenerOnOurCoordinator(t *testing.T) {
	c := startCoordinator(t, map[string]int{"host-interop-go": 1}, "")
	dial := func(ctx context.Context) (net.Conn, error) {
		tcp, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.reverse)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(tcp, &tls.Config{ServerName: c.reverse, InsecureSkipVerify: true})
		if err := conn.HandshakeContext(ctx); err != nil {
			tcp.Close()
			return nil, err
		}
		return conn, nil
	}
	register := func(t *testing.T, key string) (net.Conn, *bufio.Reader, error) {
		conn, err := dial(ctxT(t, 20*time.Second))
		if err != nil {
			return nil, nil, err
		}
		req, _ := http.NewRequest("GET", "/reverse", nil)
		req.Header.Set("X-Go-Host-Type", "host-interop-go")
		req.Header.Set("X-Go-Builder-Key", key)
		req.Header.Set("X-Go-Builder-Hostname", "go-listener")
		req.Header.Set("X-Go-Builder-Version", "38")
		req.Header.Set("X-Revdial-Version", "2")
		if err := req.Write(conn); err != nil {
			return nil, nil, err
		}
		br := bufio.NewReader(conn)
		loc, err := revdial.ReadProtoSwitchOrRedirect(br, req)
		if err == nil && loc != "" {
			err = fmt.Errorf("unexpected redirect to %q", loc)
		}
		return conn, br, err
	}

	t.Run("tls_handshake_with_a_host_port_server_name", func(t *testing.T) {
		conn, err := dial(ctxT(t, 20*time.Second))
		if err != nil {
			t.Fatalf("handshake with ServerName %q: %v", c.reverse, err)
		}
		conn.Close()
	})
	t.Run("a_wrong_key_is_refused_with_412", func(t *testing.T) {
		_, _, err := register(t, "not-the-key")
		if err == nil || !strings.Contains(err.Error(), "412") {
			t.Fatalf("want a 412 refusal, got %v", err)
		}
		// The operator can see why the machine never showed up.
		waitFor(t, "the refusal in the coordinator's log", 10*time.Second, func() bool {
			out := c.proc.out.String()
			return strings.Contains(out, "refused a reverse buildlet") && strings.Contains(out, "invalid build key")
		})
	})
	t.Run("registration_switches_protocols", func(t *testing.T) {
		conn, br, err := register(t, devBuilderKey("host-interop-go"))
		if err != nil {
			t.Fatal(err)
		}
		if br.Buffered() != 0 {
			t.Fatalf("%d unexpected bytes after the 101", br.Buffered())
		}
		var statusCalls atomic.Int32
		mux := http.NewServeMux()
		mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
			statusCalls.Add(1)
			fmt.Fprint(w, `{"Version":38}`)
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {})
		ln := revdial.NewListener(conn, dial)
		srv := &http.Server{Handler: mux}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })

		t.Run("the_peer_appears_in_status", func(t *testing.T) {
			waitFor(t, "go-listener in /status", 30*time.Second, func() bool {
				_, s := c.get(t, "/status")
				return strings.Contains(s, "go-listener")
			})
		})
		t.Run("our_dialer_reaches_the_peer_through_revdial", func(t *testing.T) {
			waitFor(t, "a health check through revdial", 60*time.Second, func() bool {
				return statusCalls.Load() > 0
			})
		})
	})
}
