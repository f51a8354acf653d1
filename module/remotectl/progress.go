package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// startProgress redraws a one-line status on stderr every second while
// waiting, when stderr is a terminal; stop erases it.
func (e *env) startProgress(line func(elapsed time.Duration) string) (stop func()) {
	if !e.progress {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		drawn := false
		for {
			select {
			case <-tick.C:
				fmt.Fprintf(e.stderr, "\r\033[K%s", line(time.Since(start)))
				drawn = true
			case <-done:
				if drawn {
					fmt.Fprint(e.stderr, "\r\033[K")
				}
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
