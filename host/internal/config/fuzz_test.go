package config

import (
	"math"
	"testing"
)

// FuzzParseDuration: a duration from a flag or MESOS_ variable is never
// negative, and what FormatDuration writes (in /flags, to modules) parses
// back to the same duration, give or take float rounding.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30secs", "1.5mins", "100ms", "2hrs", "1weeks", "0ns", "1m30s", "-1secs", ".5days",
		"9007199254740993ns", "1e3secs", "NaNsecs", "Infsecs", "secs", "1.2.3ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
		out := FormatDuration(d)
		d2, err := ParseDuration(out)
		if err != nil {
			t.Fatalf("ParseDuration(%q) = %v, formatted %q, which does not parse: %v", s, d, out, err)
		}
		if diff := math.Abs(float64(d2 - d)); diff > math.Max(1, float64(d)*1e-12) {
			t.Fatalf("ParseDuration(%q) = %v; formatted %q parses to %v", s, d, out, d2)
		}
	})
}

// FuzzParseBytes: a size is never negative and survives FormatBytes.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"16MB", "0B", "1024KB", "3B", "2TB", "9223372036854775807B", "8388608TB", "16mb", "1.5MB", "-1MB", "MB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseBytes(%q) = %d, negative", s, n)
		}
		out := FormatBytes(n)
		n2, err := ParseBytes(out)
		if err != nil || n2 != n {
			t.Fatalf("ParseBytes(%q) = %d, formatted %q, parsed back %d, %v", s, n, out, n2, err)
		}
	})
}
