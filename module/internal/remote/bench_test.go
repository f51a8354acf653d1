package remote

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/execmod/execmod/module/internal/request"
)

// The module's own share of running `true` to its result, without the
// host's forwarding: Submit and Wait, and the HTTP handler of POST
// /tasks?wait=. BenchmarkSpawnTrue is the floor (os/exec alone); compare
// ns/op, e.g. go test -run=^$ -bench=. -cpu=1,8 ./module/internal/remote.

func BenchmarkSpawnTrue(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := exec.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchService(b *testing.B) *Service {
	b.Helper()
	p := DefaultParams()
	p.MaxConcurrent, p.MaxQueued, p.MaxTasks = 64, 1024, 1000
	s, err := Open(b.TempDir(), p, []string{"PATH=/usr/bin:/bin"}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkSubmitWaitTrue(b *testing.B) {
	s := benchService(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec, _, err := s.Submit(request.Command{Path: "true", Args: []string{"true"}}, "", nil)
			if err != nil {
				b.Fatal(err)
			}
			if rec, err = s.Wait(b.Context(), rec.ID, time.Minute); err != nil || rec.State != Exited {
				b.Fatalf("%+v %v", rec, err)
			}
		}
	})
}

func BenchmarkHTTPTrue(b *testing.B) {
	s := benchService(b)
	mux := http.NewServeMux()
	for _, r := range s.Routes(Info{}) {
		method, path, _ := strings.Cut(r.Pattern, " ")
		mux.Handle(method+" /remote"+path, r.Handler)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/remote/tasks?wait=60s", strings.NewReader(`{"command":"true"}`))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			if w.Code != 201 || !strings.Contains(w.Body.String(), `"state":"exited"`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkJournalAppend is the cost of the journal's reserve for a full
// disk (see journal): appending final records with it (a fallocate(2)
// every half reserve) and without, e.g.
// go test -run=^$ -bench=JournalAppend -benchtime=20000x ./module/internal/remote.
func BenchmarkJournalAppend(b *testing.B) {
	now := time.Now().UTC()
	line, err := encodeRecord(&record{Version: recordVersion, ID: newID(now), State: Exited, Command: "/usr/bin/true",
		Arguments: []string{"true"}, CreatedAt: now, StartedAt: &now, EndedAt: &now, Result: &result{DurationMs: 1}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		reserve int64
	}{{"reserve=1MiB", reserveSize}, {"reserve=0", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			j, _, err := openJournalReserve(b.TempDir(), slog.New(slog.DiscardHandler), bc.reserve)
			if err != nil {
				b.Fatal(err)
			}
			defer j.close()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := j.append(line, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
