package sdk

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// levelTrace is hclog's TRACE below slog's DEBUG.
const levelTrace = slog.LevelDebug - 4

// parseLevel maps the host's level names (Mesos's INFO, WARNING, ERROR plus
// DEBUG and TRACE) to slog levels.
func parseLevel(s string) slog.Level {
	switch strings.ToUpper(s) {
	case "TRACE":
		return levelTrace
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// newLogger returns a slog.Logger that writes hclog's JSON line format, which
// the host re-logs at the line's own level under the module's name.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			// A module's own attribute may have the built-ins' keys ("time",
			// "level"); only the built-ins' kinds are renamed, never asserted.
			switch a.Key {
			case slog.TimeKey:
				if a.Value.Kind() == slog.KindTime {
					return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
				}
			case slog.LevelKey:
				if l, ok := a.Value.Any().(slog.Level); ok {
					return slog.String("@level", hclogLevel(l))
				}
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

// newPluginLogger is the hclog logger go-plugin's server side logs with.
func newPluginLogger(w io.Writer, level slog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Output: w, JSONFormat: true, Level: hclog.LevelFromString(hclogLevel(level)),
	})
}

// bridgeStdlog sends the standard log package to logger at INFO.
func bridgeStdlog(logger *slog.Logger) {
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(&stdlogWriter{logger: logger})
}

type stdlogWriter struct{ logger *slog.Logger }

func (w *stdlogWriter) Write(p []byte) (int, error) {
	w.logger.Log(context.Background(), slog.LevelInfo, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
