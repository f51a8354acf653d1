package main

import (
	"slices"
	"sync"
	"time"
)

// The kinds of fault window.
const (
	wModuleKill  = "module_kill"  // from the SIGKILL to the next "module serving"
	wHostRestart = "host_restart" // from the SIGTERM to the new host's "listening"
	wDiskFull    = "disk_full"    // while the work_dir's file system is full
)

// window is a stretch of time in which a fault was in effect.
type window struct {
	Kind  string    `json:"kind"`
	Start time.Time `json:"-"`
	End   time.Time `json:"-"` // zero while open
	// For the summary: seconds since the run started, and the length.
	AtS    float64 `json:"at_s"`
	LastMs int64   `json:"lasted_ms"`
	Note   string  `json:"note,omitempty"`
}

// events is the run's list of fault windows.
type events struct {
	mu  sync.Mutex
	t0  time.Time
	all []window
}

func (e *events) open(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	e.all = append(e.all, window{Kind: kind, Start: now, AtS: now.Sub(e.t0).Seconds()})
	return len(e.all) - 1
}

func (e *events) close(i int, note string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := &e.all[i]
	w.End = time.Now()
	w.LastMs = w.End.Sub(w.Start).Milliseconds()
	w.Note = note
}

func (e *events) list() []window {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

// overlaps reports whether [a, b] meets a window of one of kinds (an open
// window lasts until now).
func (e *events) overlaps(a, b time.Time, kinds ...string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b.IsZero() {
		b = time.Now()
	}
	for _, w := range e.all {
		end := w.End
		if end.IsZero() {
			end = time.Now()
		}
		if slices.Contains(kinds, w.Kind) && !a.After(end) && !b.Before(w.Start) {
			return true
		}
	}
	return false
}

func (e *events) count(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, w := range e.all {
		if w.Kind == kind && !w.End.IsZero() {
			n++
		}
	}
	return n
}
