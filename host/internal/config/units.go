package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Mesos writes durations as a number and a unit: 30secs, 1.5mins, 100ms
// (stout's Duration). Go's own syntax (30s, 1m30s) is accepted too, since
// operators type both.
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	{"weeks", 7 * 24 * time.Hour},
	{"days", 24 * time.Hour},
	{"hrs", time.Hour},
	{"mins", time.Minute},
	{"secs", time.Second},
	{"ms", time.Millisecond},
	{"us", time.Microsecond},
	{"ns", time.Nanosecond},
}

// ParseDuration parses a Mesos duration ("30secs", "1.5mins") or a Go
// one ("30s", "1m30s"). Negative durations are errors.
func ParseDuration(s string) (time.Duration, error) {
	num, unit := splitNumber(s)
	for _, u := range durationUnits {
		if unit != u.name {
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || num == "" {
			return 0, fmt.Errorf("invalid duration %q: want a number and a unit, e.g. 30secs", s)
		}
		d := f * float64(u.d)
		// float64(math.MaxInt64) is 2^63, one past the largest Duration:
		// a product equal to it would convert to a negative one.
		if d < 0 || d >= math.MaxInt64 || math.IsNaN(d) {
			return 0, fmt.Errorf("invalid duration %q: out of range", s)
		}
		return time.Duration(d), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number and one of the units ns, us, ms, secs, mins, hrs, days, weeks (e.g. 30secs)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return d, nil
}

// FormatDuration writes d as Mesos does: in the largest unit it reaches.
func FormatDuration(d time.Duration) string {
	for _, u := range durationUnits {
		if d >= u.d {
			return strconv.FormatFloat(float64(d)/float64(u.d), 'g', -1, 64) + u.name
		}
	}
	return "0ns"
}

var byteUnits = []struct {
	name string
	n    int64
}{
	{"TB", 1 << 40},
	{"GB", 1 << 30},
	{"MB", 1 << 20},
	{"KB", 1 << 10},
	{"B", 1},
}

// ParseBytes parses a Mesos byte size: a whole number and one of the
// units B, KB, MB, GB, TB (powers of 1024), e.g. 16MB.
func ParseBytes(s string) (int64, error) {
	num, unit := splitNumber(s)
	for _, u := range byteUnits {
		if unit != u.name {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 63)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return 0, fmt.Errorf("invalid size %q: out of range", s)
			}
			return 0, fmt.Errorf("invalid size %q: want a whole number and a unit, e.g. 16MB", s)
		}
		if n > uint64(math.MaxInt64/u.n) {
			return 0, fmt.Errorf("invalid size %q: out of range", s)
		}
		return int64(n) * u.n, nil
	}
	return 0, fmt.Errorf("invalid size %q: want a whole number and one of the units B, KB, MB, GB, TB (e.g. 16MB)", s)
}

// FormatBytes writes n as Mesos does: in the largest unit that divides it.
func FormatBytes(n int64) string {
	for _, u := range byteUnits {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.name
		}
	}
	return "0B"
}

// splitNumber splits "1.5mins" into "1.5" and "mins".
func splitNumber(s string) (num, unit string) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}
