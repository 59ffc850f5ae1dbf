// Command kube-apiserver runs a real Kubernetes API server for the pool's Kubernetes tests:
// upstream's kube-apiserver (k8s.io/kubernetes, pinned in go.mod) over an embedded etcd,
// on loopback, with a static bearer token. There is no scheduler or kubelet: the tests
// play the node themselves (pool/tests/kubernetes.rs).
//
// Usage:
//
//	kube-apiserver -dir DIR -port 6443 -token TOKEN
//
// It writes DIR/kubeconfig (server, CA and token) once the server answers, and runs until
// killed.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	dir := flag.String("dir", "", "state directory (etcd data, certificates, kubeconfig)")
	port := flag.Int("port", 6443, "loopback port of the API server")
	token := flag.String("token", "", "bearer token of the admin user")
	flag.Parse()
	if *dir == "" || *token == "" {
		log.Fatal("-dir and -token are required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	etcdURL, err := startEtcd(filepath.Join(*dir, "etcd"))
	if err != nil {
		log.Fatalf("etcd: %v", err)
	}
	saKey := filepath.Join(*dir, "sa.key")
	if err := writeKey(saKey); err != nil {
		log.Fatal(err)
	}
	tokens := filepath.Join(*dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(*token+",admin,admin,system:masters\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	certDir := filepath.Join(*dir, "certs")
	go writeKubeconfig(*dir, certDir, *port, *token)
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Loopback cannot be a service endpoint; nothing here needs the kubernetes service.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(*port),
		"--cert-dir=" + certDir,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/24",
		// No controller manager creates the default service account.
		"--disable-admission-plugins=ServiceAccount",
	})
	if err := cmd.Execute(); err != nil {
		log.Fatal(err)
	}
}

// startEtcd runs etcd in this process on a free loopback port.
func startEtcd(dir string) (string, error) {
	free := func() (*url.URL, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		return url.Parse("http://" + l.Addr().String())
	}
	client, err := free()
	if err != nil {
		return "", err
	}
	peer, err := free()
	if err != nil {
		return "", err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("not ready within 60s")
	}
	return client.String(), nil
}

// writeKey writes a new RSA key for service account tokens, unless one exists.
func writeKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return os.WriteFile(path, b, 0o600)
}

// writeKubeconfig waits until the server answers, then writes DIR/kubeconfig with its
// self-signed certificate as the CA.
func writeKubeconfig(dir, certDir string, port int, token string) {
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	insecure := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := insecure.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		log.Fatalf("reading the serving certificate: %v", err)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: admin
    namespace: default
current-context: test
`, server, b64(ca), token)
	tmp := filepath.Join(dir, "kubeconfig.tmp")
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "kubeconfig")); err != nil {
		log.Fatal(err)
	}
	log.Printf("kube-apiserver ready at %s; kubeconfig in %s", server, dir)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
