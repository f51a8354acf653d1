package main

import (
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
)

// TestSoak runs the short soak: the real host and module under load and
// every fault, then every invariant. A violated invariant fails the test
// with its name and examples; the summary names the seed that reproduces
// the run (EXECMOD_SOAK_SEED=N go test ./soak).
func TestSoak(t *testing.T) {
	cfg := shortConfig()
	if v := os.Getenv("EXECMOD_SOAK_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("EXECMOD_SOAK_SEED=%q: %v", v, err)
		}
		cfg.Seed = n
	}
	if testing.Verbose() {
		cfg.Log = os.Stderr
	}
	cfg.JSON = os.Getenv("EXECMOD_SOAK_JSON")
	sum, err := run(t.Context(), cfg, t.Output())
	if err != nil {
		t.Fatalf("the soak could not run: %v", err)
	}
	for _, iv := range sum.Invariants {
		if iv.OK {
			continue
		}
		t.Errorf("invariant %q violated (%d; seed %d): %s", iv.Name, iv.Violations, sum.Seed, iv.Detail)
		for _, c := range slices.Sorted(maps.Keys(iv.Classes)) {
			t.Errorf("    %d x %s", iv.Classes[c], c)
		}
		for _, e := range iv.Examples {
			t.Errorf("    e.g. %s", e)
		}
	}
}
