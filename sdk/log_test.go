package sdk

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// A module's own attributes named like slog's built-ins are logged as
// they are; they once panicked the module (a string "time" read as a time).
func TestLoggerKeepsAttributesNamedLikeBuiltIns(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, slog.LevelInfo).Info("audit", "time", "2026-12-01T22:38:20Z", "level", "high", "seq", 3)
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("not one JSON line: %v: %q", err, buf.String())
	}
	if line["@message"] != "audit" || line["@level"] != "info" || !strings.HasPrefix(line["@timestamp"].(string), "20") {
		t.Errorf("built-ins = %v", line)
	}
	if line["time"] != "2026-12-01T22:38:20Z" || line["level"] != "high" || line["seq"] != float64(3) {
		t.Errorf("the module's own attributes = %v", line)
	}
}
