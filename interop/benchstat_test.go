package interop

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// benchFile writes a Go benchmark file: for each benchmark, n runs drawn around its
// center with the given relative spread (0: every run the same).
type benchSpec struct {
	name   string
	center float64
	spread float64
	n      int
	units  string // extra columns after ns/op, e.g. "\t 512 B/op"
}

func writeBench(t *testing.T, dir, file string, seed int64, header string, specs ...benchSpec) string {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	var b strings.Builder
	b.WriteString(header)
	for _, s := range specs {
		for i := 0; i < s.n; i++ {
			v := s.center * (1 + s.spread*(2*r.Float64()-1))
			fmt.Fprintf(&b, "%s \t %d\t %.1f ns/op%s\n", s.name, 1000, v, s.units)
		}
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

const benchHeader = "goos: linux\ngoarch: amd64\npkg: example.com/interop\ncpu: Interop CPU @ 2.00GHz\n"

// TestBenchstatAgreesWithUpstream compares our comparison (perfstore's benchstat example)
// with upstream's cmd/benchstat on the same files and projections: the output must be the
// same to the byte (numbers, table order, layout and footnotes). Upstream spells its flags
// -col, ours --col.
func TestBenchstatAgreesWithUpstream(t *testing.T) {
	up := upstreamBinary(t, upstreamBenchstatPkg)
	ours := ourBinary(t, filepath.Join("examples", "benchstat"))
	dir := t.TempDir()
	mem := "\t 512 B/op\t 3 allocs/op"
	files := map[string][]string{
		"small_samples_n3": {
			writeBench(t, dir, "s3-old.txt", 1, benchHeader, benchSpec{"BenchmarkSmall-2", 100, 0.02, 3, ""}),
			writeBench(t, dir, "s3-new.txt", 2, benchHeader, benchSpec{"BenchmarkSmall-2", 80, 0.02, 3, ""}),
		},
		"small_samples_n5_significant": {
			writeBench(t, dir, "s5-old.txt", 3, benchHeader, benchSpec{"BenchmarkFive-2", 100, 0.01, 5, ""}),
			writeBench(t, dir, "s5-new.txt", 4, benchHeader, benchSpec{"BenchmarkFive-2", 50, 0.01, 5, ""}),
		},
		"large_samples_n50": {
			writeBench(t, dir, "l-old.txt", 5, benchHeader, benchSpec{"BenchmarkLarge-2", 1000, 0.05, 50, ""}, benchSpec{"BenchmarkOther-2", 30, 0.1, 50, ""}),
			writeBench(t, dir, "l-new.txt", 6, benchHeader, benchSpec{"BenchmarkLarge-2", 990, 0.05, 50, ""}, benchSpec{"BenchmarkOther-2", 33, 0.1, 50, ""}),
		},
		"ties_across_files": {
			writeBench(t, dir, "t-old.txt", 7, benchHeader, benchSpec{"BenchmarkTie-2", 100, 0, 6, ""}, benchSpec{"BenchmarkHalf-2", 100, 0.0, 3, ""}, benchSpec{"BenchmarkHalf-2", 101, 0.0, 3, ""}),
			writeBench(t, dir, "t-new.txt", 8, benchHeader, benchSpec{"BenchmarkTie-2", 100, 0, 6, ""}, benchSpec{"BenchmarkHalf-2", 101, 0.0, 6, ""}),
		},
		"zero_variance_on_both_sides": {
			writeBench(t, dir, "z-old.txt", 9, benchHeader, benchSpec{"BenchmarkConst-2", 250, 0, 10, ""}),
			writeBench(t, dir, "z-new.txt", 10, benchHeader, benchSpec{"BenchmarkConst-2", 200, 0, 10, ""}),
		},
		"several_units": {
			writeBench(t, dir, "u-old.txt", 11, benchHeader, benchSpec{"BenchmarkAlloc-2", 400, 0.03, 10, mem}, benchSpec{"BenchmarkNoAlloc-2", 40, 0.03, 10, "\t 0 B/op\t 0 allocs/op"}),
			writeBench(t, dir, "u-new.txt", 12, benchHeader, benchSpec{"BenchmarkAlloc-2", 380, 0.03, 10, "\t 256 B/op\t 2 allocs/op"}, benchSpec{"BenchmarkNoAlloc-2", 41, 0.03, 10, "\t 0 B/op\t 0 allocs/op"}),
		},
		"throughput_and_custom_metric": {
			writeBench(t, dir, "m-old.txt", 13, benchHeader, benchSpec{"BenchmarkCopy-2", 1000, 0.02, 8, "\t 1048.58 MB/s\t 12.5 widgets/op"}),
			writeBench(t, dir, "m-new.txt", 14, benchHeader, benchSpec{"BenchmarkCopy-2", 500, 0.02, 8, "\t 2097.15 MB/s\t 12.5 widgets/op"}),
		},
		"missing_benchmarks_on_one_side": {
			writeBench(t, dir, "x-old.txt", 15, benchHeader, benchSpec{"BenchmarkBoth-2", 100, 0.02, 6, ""}, benchSpec{"BenchmarkOnlyOld-2", 70, 0.02, 6, ""}),
			writeBench(t, dir, "x-new.txt", 16, benchHeader, benchSpec{"BenchmarkBoth-2", 90, 0.02, 6, ""}, benchSpec{"BenchmarkOnlyNew-2", 60, 0.02, 6, ""}),
		},
		"different_sample_sizes": {
			writeBench(t, dir, "n-old.txt", 17, benchHeader, benchSpec{"BenchmarkN-2", 100, 0.05, 4, ""}),
			writeBench(t, dir, "n-new.txt", 18, benchHeader, benchSpec{"BenchmarkN-2", 95, 0.05, 12, ""}),
		},
		"three_files": {
			writeBench(t, dir, "a.txt", 19, benchHeader, benchSpec{"BenchmarkThree-2", 100, 0.02, 8, ""}),
			writeBench(t, dir, "b.txt", 20, benchHeader, benchSpec{"BenchmarkThree-2", 90, 0.02, 8, ""}),
			writeBench(t, dir, "c.txt", 21, benchHeader, benchSpec{"BenchmarkThree-2", 120, 0.02, 8, ""}),
		},
		"single_file_summary": {
			writeBench(t, dir, "single.txt", 22, benchHeader, benchSpec{"BenchmarkAlone-2", 100, 0.04, 10, mem}),
		},
		"sub_benchmarks_with_name_keys": {
			writeBench(t, dir, "k-old.txt", 23, benchHeader, benchSpec{"BenchmarkSort/size=10-2", 100, 0.02, 6, ""}, benchSpec{"BenchmarkSort/size=1000-2", 15000, 0.02, 6, ""}),
			writeBench(t, dir, "k-new.txt", 24, benchHeader, benchSpec{"BenchmarkSort/size=10-2", 95, 0.02, 6, ""}, benchSpec{"BenchmarkSort/size=1000-2", 12000, 0.02, 6, ""}),
		},
	}
	// One file per commit, as a farm records them: the commit splits the default tables
	// (one per commit, each with one column); projections put the commits side by side.
	commitHeader := func(c string) string { return benchHeader + "commit: " + c + "\n" }
	commits := []string{
		writeBench(t, dir, "c1.txt", 25, commitHeader("a1b2c3"), benchSpec{"BenchmarkHash/size=64-2", 120, 0.03, 8, mem}, benchSpec{"BenchmarkHash/size=4096-2", 5200, 0.03, 8, mem}),
		writeBench(t, dir, "c2.txt", 26, commitHeader("d4e5f6"), benchSpec{"BenchmarkHash/size=64-2", 100, 0.03, 8, mem}, benchSpec{"BenchmarkHash/size=4096-2", 5300, 0.03, 8, mem}),
		writeBench(t, dir, "c3.txt", 27, commitHeader("0789ab"), benchSpec{"BenchmarkHash/size=64-2", 90, 0.03, 8, mem}, benchSpec{"BenchmarkHash/size=4096-2", 4000, 0.03, 8, mem}),
	}
	projections := map[string][]string{
		"commits_split_tables_by_default": commits[:2],
		"col_commit":                      append([]string{"-col", "commit"}, commits...),
		"ignore_commit":                   append([]string{"-ignore", "commit"}, commits[:2]...),
		"col_name_key_row_name":           {"-col", "/size", "-row", ".name", commits[0]},
		"row_name_key_col_two_keys":       append([]string{"-row", "/size", "-col", "commit,goos"}, commits...),
		"row_name_merges_into_footnote":   {"-row", ".name", commits[0], commits[1]},
		"col_gomaxprocs":                  {"-col", "/gomaxprocs", files["sub_benchmarks_with_name_keys"][0]},
	}
	for name, args := range projections {
		files[name] = args
	}
	for name, args := range files {
		t.Run(name, func(t *testing.T) {
			run := func(bin string, args []string) string {
				cmd := exec.Command(bin, args...)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
				}
				return string(out)
			}
			var ourArgs []string
			for _, a := range args {
				if strings.HasPrefix(a, "-") {
					a = "-" + a
				}
				ourArgs = append(ourArgs, a)
			}
			want, got := run(up, args), run(ours, ourArgs)
			if want != got {
				t.Errorf("outputs differ\n--- upstream %v:\n%s\n--- ours %v:\n%s", args, want, ourArgs, got)
			}
		})
	}
}
