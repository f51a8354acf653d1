package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func newTestLog(buf *bytes.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "modhost.m", Output: buf, Level: hclog.Trace, DisableTime: true})
}

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	w := newLogWriter(newTestLog(&buf))
	for _, chunk := range []string{
		`{"@level":"warn","@message":"disk low","@timestamp":"2026-11-25T10:00:00.000000Z","@module":"x","free":"1MB","path":"/w"}` + "\n",
		`{"@level":"debug","@mes`, `sage":"split across writes"}` + "\n",
		`{"@message":7,"@level":"nonsense"}` + "\n", // not a string: go-plugin would panic here
		`{"no":"message"}` + "\n",
		"[ERROR] a prefixed line\n",
		"plain line\n\n   \n",
		"panic: boom\n",
		"goroutine 1 [running]:\n",
		strings.Repeat("x", maxLogLine+10) + "\n",
		"after the long line\n",
	} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	want := []string{
		`[WARN]  modhost.m: disk low: free=1MB path=/w`,
		`[DEBUG] modhost.m: split across writes`,
		`[INFO]  modhost.m: 7`,
		`[INFO]  modhost.m: {"no":"message"}`,
		`[ERROR] modhost.m: [ERROR] a prefixed line`,
		`[INFO]  modhost.m: plain line`,
		`[ERROR] modhost.m: panic: boom`,
		`[ERROR] modhost.m: goroutine 1 [running]:`,
		`[ERROR] modhost.m: ` + strings.Repeat("x", maxLogLine) + `: truncated_at=65536`,
		`[ERROR] modhost.m: after the long line`, // still in the panic's trace
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %.200q\nwant %.200q", i, got[i], want[i])
		}
	}
}

// FuzzLogWriter: whatever a module prints, the host neither panics nor
// logs more than one line per input line.
func FuzzLogWriter(f *testing.F) {
	f.Add([]byte(`{"@level":"info","@message":"m","k":[1,{"a":null}]}` + "\n"))
	f.Add([]byte(`{"@message":{"x":1},"@level":5}` + "\n" + "panic: x\n"))
	f.Add([]byte("\x00\xff{\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf bytes.Buffer
		w := newLogWriter(newTestLog(&buf))
		_, _ = w.Write(data)
		if lines, in := bytes.Count(buf.Bytes(), []byte("modhost.m:")), bytes.Count(data, []byte("\n")); lines > in {
			t.Errorf("%d log lines from %d input lines", lines, in)
		}
	})
}
