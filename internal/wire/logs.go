package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine bounds one log line of a module; the rest of a longer line is
// dropped (and the cut said), so a module printing without newlines cannot
// grow the host's memory.
const maxLogLine = 64 << 10

// logWriter re-logs a module's stderr through the host's logger: hclog
// JSON lines at their own level with their fields, other lines with a level
// inferred from a "[LEVEL]" prefix (Error for a Go panic and what follows).
//
// go-plugin can do this itself, but it names the logger after the
// executable (modhost.<name>.<binary>), adds a "timestamp" field to every
// line, and panics on a JSON line whose @message is not a string, which a
// module in another language could print. This parser is total.
type logWriter struct {
	log     hclog.Logger
	mu      sync.Mutex
	line    []byte
	cut     bool // the current line is over maxLogLine
	inPanic bool
}

func newLogWriter(log hclog.Logger) *logWriter { return &logWriter{log: log} }

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(w.line); len(chunk) > room {
			chunk, w.cut = chunk[:room], true
		}
		w.line = append(w.line, chunk...)
		if i < 0 {
			break
		}
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *logWriter) emit() {
	line := w.line
	cut := w.cut
	w.line, w.cut = w.line[:0], false
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	level, msg, args, ok := parseLogLine(line)
	if !ok {
		s := string(line)
		level = inferLevel(s)
		switch {
		case strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: "):
			w.inPanic = true
			level = hclog.Error
		case w.inPanic:
			level = hclog.Error
		}
		msg = s
	}
	if cut {
		args = append(args, "truncated_at", maxLogLine)
	}
	w.log.Log(level, msg, args...)
}

// parseLogLine reads one hclog JSON line: @level, @message, and every other
// key but the bookkeeping ones as a field, in key order.
func parseLogLine(line []byte) (hclog.Level, string, []any, bool) {
	if len(line) == 0 || line[0] != '{' {
		return 0, "", nil, false
	}
	var raw map[string]any
	if err := json.Unmarshal(line, &raw); err != nil {
		return 0, "", nil, false
	}
	msg, ok := raw["@message"]
	if !ok {
		return 0, "", nil, false
	}
	level := hclog.Info
	if s, ok := raw["@level"].(string); ok {
		if l := hclog.LevelFromString(s); l != hclog.NoLevel {
			level = l
		}
	}
	var args []any
	keys := make([]string, 0, len(raw))
	for k := range raw {
		switch k {
		case "@message", "@level", "@timestamp", "@module", "@caller":
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, k, raw[k])
	}
	s, isString := msg.(string)
	if !isString {
		s = fmt.Sprint(msg)
	}
	return level, s, args, true
}

func inferLevel(s string) hclog.Level {
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}} {
		if strings.HasPrefix(s, p.prefix) {
			return p.level
		}
	}
	return hclog.Info
}

// pluginLogger is the logger go-plugin's client gets. go-plugin parses the
// module's stderr through logger.Named(<executable>) unless that logger is
// off; it is, so that logWriter does the parsing instead. go-plugin's own
// messages and its "stdio" logger still reach the host's log.
type pluginLogger struct{ hclog.Logger }

func (l pluginLogger) Named(name string) hclog.Logger {
	if name == "stdio" {
		return l.Logger.Named(name)
	}
	return hclog.NewNullLogger()
}
