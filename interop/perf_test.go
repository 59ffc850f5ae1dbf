package interop

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/build/perfdata"
	"golang.org/x/perf/storage"
)

const perfBench = `goos: linux
goarch: amd64
pkg: example.com/interop
BenchmarkEncode-2   	 1000	      1250 ns/op	     512 B/op	       3 allocs/op
BenchmarkEncode-2   	 1000	      1260 ns/op	     512 B/op	       3 allocs/op
BenchmarkDecode-2   	 2000	       640 ns/op
`

// bearer sets `Authorization: Bearer <token>` on every request, as oauth2.Transport does.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// TestPerfClients drives our coordinator's /perf with upstream's two storage clients.
func TestPerfClients(t *testing.T) {
	c := startCoordinator(t, nil, "")
	base := "http://" + c.web + "/perf"
	// One connection, reused: a server that drops a connection without saying so shows
	// up as EOF on the next request.
	// Upstream's clients carry credentials in their http.Client (an oauth2 transport
	// setting `Authorization: Bearer`); ours carries the coordinator's token the same way.
	hc := &http.Client{Transport: bearer{c.token, &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}}
	pd := &perfdata.Client{BaseURL: base, HTTPClient: hc}
	st := &storage.Client{BaseURL: base, HTTPClient: hc}

	var uploadID string
	t.Run("perfdata_upload_commits_and_returns_ids", func(t *testing.T) {
		u := pd.NewUpload(ctxT(t, 30*time.Second))
		w, err := u.CreateFile("run1.txt")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "label: interop\n"+perfBench)
		s, err := u.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if s.UploadID == "" || len(s.FileIDs) != 1 || s.FileIDs[0] != s.UploadID+"/0" {
			t.Fatalf("%+v", s)
		}
		uploadID = s.UploadID
	})
	t.Run("perfdata_query_returns_the_records_with_server_labels", func(t *testing.T) {
		rc, err := pd.Query(ctxT(t, 30*time.Second), "upload:"+uploadID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		s := string(b)
		for _, want := range []string{"upload: " + uploadID, "upload-part: " + uploadID + "/0", "label: interop", "BenchmarkDecode-2"} {
			if !strings.Contains(s, want) {
				t.Fatalf("no %q in:\n%s", want, s)
			}
		}
		if n := strings.Count(s, "BenchmarkEncode-2"); n != 2 {
			t.Fatalf("%d Encode lines:\n%s", n, s)
		}
	})
	t.Run("perfdata_list_uploads_counts_records", func(t *testing.T) {
		ul := pd.ListUploads(ctxT(t, 30*time.Second), "label:interop", []string{"label"}, 10)
		defer ul.Close()
		var got []perfdata.UploadInfo
		for ul.Next() {
			got = append(got, ul.Info())
		}
		if err := ul.Err(); err != nil {
			t.Fatal(err)
		}
		// Upstream stores consecutive results with the same labels as one record: the
		// two Encode lines are one record, Decode another.
		if len(got) != 1 || got[0].Count != 2 || got[0].UploadID != uploadID || got[0].LabelValues["label"] != "interop" {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("storage_upload_of_two_files", func(t *testing.T) {
		u := st.NewUpload(ctxT(t, 30*time.Second))
		for i := 0; i < 2; i++ {
			w, err := u.CreateFile(fmt.Sprintf("part%d.txt", i))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(w, "part: p%d\nBenchmarkPart-2 10 %d ns/op\n", i, 100+i)
		}
		s, err := u.Commit()
		if err != nil || len(s.FileIDs) != 2 {
			t.Fatalf("%+v %v", s, err)
		}
	})
	t.Run("storage_query_parses_with_upstreams_benchfmt", func(t *testing.T) {
		q := st.Query(ctxT(t, 30*time.Second), "part:p1")
		defer q.Close()
		var n int
		for q.Next() {
			r := q.Result()
			n++
			if r.Labels["part"] != "p1" || !strings.HasPrefix(r.Content, "BenchmarkPart-2 10 101 ns/op") {
				t.Fatalf("%+v", r)
			}
		}
		if err := q.Err(); err != nil || n != 1 {
			t.Fatalf("%d results, %v", n, err)
		}
	})
	t.Run("storage_list_uploads_with_extra_labels", func(t *testing.T) {
		ul := st.ListUploads(ctxT(t, 30*time.Second), "", []string{"part"}, 10)
		defer ul.Close()
		var n int
		for ul.Next() {
			n++
		}
		if err := ul.Err(); err != nil || n != 2 {
			t.Fatalf("%d uploads, %v", n, err)
		}
	})
	t.Run("storage_query_without_matches_is_empty", func(t *testing.T) {
		q := st.Query(ctxT(t, 30*time.Second), "label:nothing-has-this")
		defer q.Close()
		if q.Next() {
			t.Fatalf("unexpected %+v", q.Result())
		}
		if err := q.Err(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a_failed_streamed_upload_leaves_the_next_request_working", func(t *testing.T) {
		// A streamed (chunked) upload that the server refuses at its first part, with
		// 256 KiB more behind it: the client finishes writing into the socket before the
		// answer comes, so Go's transport keeps the connection for the next request
		// unless the server says it will close it. The next request is a POST, which
		// Go does not retry on a reused connection found closed.
		for round := 0; round < 3; round++ {
			body := "--XB\r\nContent-Disposition: form-data; name=\"bogus\"\r\n\r\nx\r\n" +
				"--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\n" +
				strings.Repeat("BenchmarkX-2 1 1 ns/op\n", 256<<10/23) + "\r\n--XB--\r\n"
			req, _ := http.NewRequest("POST", base+"/upload", io.MultiReader(strings.NewReader(body)))
			req.Header.Set("Content-Type", "multipart/form-data; boundary=XB")
			res, err := hc.Do(req)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				t.Fatalf("round %d: an upload with an unexpected field succeeded", round)
			}
			next := st.NewUpload(ctxT(t, 30*time.Second))
			w, err := next.CreateFile("after.txt")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(w, "round: r%d\nBenchmarkAfter-2 10 %d ns/op\n", round, 10+round)
			if _, err := next.Commit(); err != nil {
				t.Fatalf("round %d: the upload after a failed one: %v", round, err)
			}
		}
	})
}
