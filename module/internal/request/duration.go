package request

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a non-negative duration in Go syntax ("30s",
// "1m30s", "100ms", "1.5h") or in Mesos syntax: a decimal number followed
// by one of the units ns, us, ms, secs, mins, hrs, days or weeks ("30secs",
// "1.5mins", "2hrs"). Errors are *Error values with an empty Field.
func ParseDuration(v string) (time.Duration, error) {
	if v == "" {
		return 0, errorf("", `empty duration (want e.g. "30s", "1m30s", "30secs" or "1.5mins")`)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return 0, errorf("", "duration contains a NUL byte")
	}
	if d, ok, err := parseMesosDuration(v); ok {
		return d, err
	}
	if strings.HasPrefix(v, "-") {
		return 0, errorf("", "negative duration %q (want zero or more)", v)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		switch {
		case isDecimal(v):
			return 0, errorf("", `duration %q has no unit (want e.g. "%ss" or "%ssecs")`, v, v, v)
		case strings.Contains(err.Error(), "overflow") || strings.Contains(err.Error(), "invalid duration") && isDurationLike(v):
			// Go's parser reports overflow as an invalid duration.
			return 0, errorf("", "duration %q is too large (the maximum is %v)", v, time.Duration(math.MaxInt64))
		}
		return 0, errorf("", `invalid duration %q (want Go syntax such as "30s" or "1m30s", `+
			`or Mesos syntax such as "30secs", "1.5mins", "100ms" or "2hrs")`, v)
	}
	if d < 0 {
		return 0, errorf("", "negative duration %q (want zero or more)", v)
	}
	return d, nil
}

// isDurationLike reports whether v is made only of what Go durations are
// made of, so that a parse failure is an overflow.
func isDurationLike(v string) bool {
	v = strings.TrimPrefix(v, "+")
	for v != "" {
		i := 0
		for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
			i++
		}
		if !isDecimal(v[:i]) {
			return false
		}
		v = v[i:]
		unit := ""
		for _, u := range []string{"ns", "us", "µs", "μs", "ms", "s", "m", "h"} {
			if strings.HasPrefix(v, u) && len(u) > len(unit) {
				unit = u
			}
		}
		if unit == "" {
			return false
		}
		v = v[len(unit):]
	}
	return true
}

// mesosUnit returns the length of the Mesos unit suffix of v and its size.
func mesosUnit(v string) (int, time.Duration) {
	for _, u := range []struct {
		name string
		d    time.Duration
	}{
		// "mins" before "ns": the longer unit wins.
		{"secs", time.Second},
		{"mins", time.Minute},
		{"hrs", time.Hour},
		{"days", 24 * time.Hour},
		{"weeks", 7 * 24 * time.Hour},
		{"ns", time.Nanosecond},
		{"us", time.Microsecond},
		{"ms", time.Millisecond},
	} {
		if strings.HasSuffix(v, u.name) {
			return len(u.name), u.d
		}
	}
	return 0, 0
}

// parseMesosDuration parses Mesos's syntax (a decimal number and one unit);
// ok is false when v is not in that syntax.
func parseMesosDuration(v string) (d time.Duration, ok bool, err error) {
	n, unit := mesosUnit(v)
	if n == 0 || !isDecimal(v[:len(v)-n]) {
		return 0, false, nil
	}
	d, fine := scaleDecimal(v[:len(v)-n], int64(unit))
	if !fine {
		return 0, true, errorf("", "duration %q is too large (the maximum is %v)", v, time.Duration(math.MaxInt64))
	}
	return d, true, nil
}

// isDecimal reports whether s is digits with at most one '.', and at least
// one digit.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digits++
		case s[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// scaleDecimal returns the decimal s (as accepted by isDecimal) times unit
// nanoseconds, exactly for the integer part; ok is false on overflow.
func scaleDecimal(s string, unit int64) (time.Duration, bool) {
	ip, fp, _ := strings.Cut(s, ".")
	var v int64
	for i := 0; i < len(ip); i++ {
		if v > (math.MaxInt64-9)/10 {
			return 0, false
		}
		v = v*10 + int64(ip[i]-'0')
	}
	if v > math.MaxInt64/unit {
		return 0, false
	}
	v *= unit
	var f, scale int64 = 0, 1
	for i := 0; i < len(fp) && scale < 1e18; i++ {
		f = f*10 + int64(fp[i]-'0')
		scale *= 10
	}
	add := int64(math.Round(float64(f) * (float64(unit) / float64(scale))))
	if add > math.MaxInt64-v {
		return 0, false
	}
	return time.Duration(v + add), true
}

// getDuration decodes the duration field (timeout or grace): a JSON number
// of seconds or a duration string. 0 means the caller's default. max, when
// positive, is the largest value allowed.
func getDuration(field string, raw json.RawMessage, max time.Duration) (time.Duration, error) {
	var (
		d    time.Duration
		what string
	)
	switch k := kind(raw); k {
	case "a number":
		num := strings.TrimSpace(string(raw))
		secs, err := strconv.ParseFloat(num, 64)
		switch {
		case secs < 0:
			return 0, errorf(field, "must not be negative, got %s (send a number of seconds, or 0 for the default)", num)
		case err != nil || secs >= float64(math.MaxInt64)/1e9:
			return 0, errorf(field, "%s seconds is too large (the maximum is %v)", num, time.Duration(math.MaxInt64))
		}
		d = time.Duration(math.Round(secs * 1e9))
		if d == 0 && secs > 0 {
			return 0, errorf(field, "%s seconds is less than a nanosecond (send 0 for the default)", num)
		}
		what = num + " seconds"
	case "a string":
		s, err := getString(field, raw)
		if err != nil {
			return 0, err
		}
		d, err = ParseDuration(s)
		if err != nil {
			e := err.(*Error)
			if isDecimal(s) {
				return 0, errorf(field, "%s, or send the JSON number %s for seconds", e.Msg, s)
			}
			return 0, errorf(field, "%s", e.Msg)
		}
		what = strconv.Quote(s)
	default:
		return 0, errorf(field, `want a number of seconds or a duration string such as "30s", got %s`, k)
	}
	if max > 0 && d > max {
		return 0, errorf(field, "%s is above the maximum of %v (parameter max_timeout)", what, max)
	}
	return d, nil
}
