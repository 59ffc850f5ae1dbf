// Package interop drives xbuild-rs's binaries with the unmodified upstream Go code of
// golang.org/x/build and golang.org/x/perf, and drives upstream's binaries with ours.
//
// The upstream modules are ordinary dependencies pinned in go.mod; the upstream binaries
// (cmd/buildlet, cmd/benchstat) are built from the module cache by the tests themselves.
// Our binaries come from cargo: build them first, then run the suite:
//
//	cargo build --workspace --bins --examples
//	cd interop && go test ./...
//
// XBUILD_BIN_DIR names the folder holding our binaries (default: ../target/debug, or
// $CARGO_TARGET_DIR/debug). A case that cannot run for a reason outside the project (no
// binary, no Go toolchain able to build upstream) skips with a loud message;
// INTEROP_REQUIRE=1 turns every such skip into a failure, as CI runs it.
//
// Upstream's buildlet powers the machine off on /halt: every upstream buildlet started
// here runs with -halt=false -reboot=false and a loopback health address.
package interop
