package task

import (
	"context"
	"os/exec"
	"testing"
)

// BenchmarkStartWait runs `true` to its result with Start and Wait,
// without and with a Reaper (which sweeps at every task's end), next to
// os/exec alone: compare ns/op, e.g.
// go test -run='^$' -bench=StartWait -cpu=1,2,8 ./module/internal/task.
func BenchmarkStartWait(b *testing.B) {
	b.Run("exec", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := exec.Command("/bin/true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	run := func(b *testing.B, r *Reaper) {
		dir := b.TempDir()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tk, err := Start(Spec{Path: "/bin/true", OutputDir: dir, Reaper: r})
				if err != nil {
					b.Fatal(err)
				}
				if res, err := tk.Wait(context.Background()); err != nil || res.ExitCode != 0 || res.Signaled {
					b.Fatalf("%+v %v", res, err)
				}
			}
		})
	}
	b.Run("task", func(b *testing.B) { run(b, nil) })
	b.Run("reaper", func(b *testing.B) {
		r, err := NewReaper(ReaperOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		run(b, r)
	})
}

// BenchmarkSweep is a task's own sweep at its end when nothing escaped:
// what the Reaper adds to every task (with the fstats at Start).
func BenchmarkSweep(b *testing.B) {
	r, err := NewReaper(ReaperOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for b.Loop() {
		r.sweep(false)
	}
}
