package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execmod/execmod/module/client"
)

// tracked is one acknowledged task and everything the soak saw of it.
type tracked struct {
	Key    string
	Job    *job
	Client int

	mu        sync.Mutex
	ID        string
	SubmitAt  time.Time // the first attempt
	AckAt     time.Time
	AckStatus int
	FinalAt   time.Time // first seen final
	Final     *client.Task
	Digest    string // of the first final answer, stdout and stderr included
	DigestNoO string // the same without the streams (as GET /tasks lists it)
	Raw       []byte // the first final answer, without the streams
	Stdout    []byte // raw stored stdout, as first read
	Followed  []byte // what a follow=true read got while it ran, if complete
	KillAt    time.Time
	KillAcked bool
	Purged    bool     // our DELETE hit it after it had ended: purged on purpose
	Vanished  []string // when and where a 404 was seen
	Problems  []string
}

func (t *tracked) problem(format string, args ...any) {
	t.mu.Lock()
	t.Problems = append(t.Problems, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

// store holds the tracked tasks.
type store struct {
	mu    sync.Mutex
	all   []*tracked
	byID  map[string]*tracked
	stats loadStats
}

type loadStats struct {
	Attempts      atomic.Int64 // POSTs sent
	Rejected429   atomic.Int64
	Queued202     atomic.Int64
	Replayed200   atomic.Int64
	GaveUp        atomic.Int64 // not acknowledged after retries
	SeedUnknown   atomic.Int64 // /execute whose answer was lost (no idempotency key to retry with)
	UnexpectedRej atomic.Int64 // a 4xx other than 429 for a valid body
	Follows       atomic.Int64
	FollowCut     atomic.Int64
}

func newStore() *store { return &store{byID: map[string]*tracked{}} }

func (s *store) add(t *tracked) {
	s.mu.Lock()
	s.all = append(s.all, t)
	s.byID[t.ID] = t
	s.mu.Unlock()
}

func (s *store) list() []*tracked {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*tracked(nil), s.all...)
}

// digests returns the digests of a task's JSON: whole, and without the
// output streams. Keys are sorted by re-encoding.
func digests(raw []byte) (full, noOutput string, stripped []byte) {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return "invalid", "invalid", nil
	}
	h := func(v any) (string, []byte) {
		b, _ := json.Marshal(v)
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:12]), b
	}
	full, _ = h(m)
	delete(m, "stdout")
	delete(m, "stderr")
	noOutput, stripped = h(m)
	return full, noOutput, stripped
}

// retryable reports whether an answer (or its absence) is one to retry
// after a moment: the host or the module is away.
func retryable(r reply, err error) bool {
	return err != nil || r.Status == http.StatusServiceUnavailable || r.Status >= 500
}

// pause waits d or until ctx is done; it paces retries, it synchronises
// nothing.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// submit posts j until it is acknowledged, rejected for good, or the run
// ends; nil means it was never acknowledged.
func (s *soak) submit(ctx context.Context, r *rand.Rand, cl int, key string, j *job) *tracked {
	path := "/remote/tasks"
	if j.Kind == kSeed {
		path = "/remote/execute"
	} else {
		j.Body["idempotency_key"] = key
	}
	tr := &tracked{Key: key, Job: j, Client: cl, SubmitAt: time.Now()}
	deadline := time.Now().Add(20 * time.Second)
	for busy := 0; ctx.Err() == nil && time.Now().Before(deadline); {
		s.tasks.stats.Attempts.Add(1)
		rep, err := s.api.do(ctx, 30*time.Second, http.MethodPost, path, j.Body)
		switch {
		case err == nil && (rep.Status == 200 || rep.Status == 201 || rep.Status == 202):
			var ack struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(rep.Body, &ack) != nil || len(ack.ID) != 26 {
				tr.problem("acknowledged with %d but no task id: %.200s", rep.Status, rep.Body)
				return nil
			}
			tr.ID, tr.AckAt, tr.AckStatus = ack.ID, time.Now(), rep.Status
			switch {
			case rep.Status == 202:
				s.tasks.stats.Queued202.Add(1)
			case rep.Status == 200 && j.Kind != kSeed:
				s.tasks.stats.Replayed200.Add(1)
			}
			s.tasks.add(tr)
			return tr
		case err == nil && rep.Status == http.StatusTooManyRequests:
			s.tasks.stats.Rejected429.Add(1)
			if busy++; busy > 40 {
				s.tasks.stats.GaveUp.Add(1)
				return nil
			}
			pause(ctx, time.Duration(30+r.IntN(200))*time.Millisecond)
		case retryable(rep, err):
			if j.Kind == kSeed {
				// No idempotency key in the seed's API: a retry could run it
				// twice, and whether the first ran is unknown.
				s.tasks.stats.SeedUnknown.Add(1)
				return nil
			}
			pause(ctx, time.Duration(100+r.IntN(200))*time.Millisecond)
		default:
			s.tasks.stats.UnexpectedRej.Add(1)
			s.noteProblem("submit %s: %d %.300s", j.Kind, rep.Status, rep.Body)
			return nil
		}
	}
	s.tasks.stats.GaveUp.Add(1)
	return nil
}

// getTask reads a task (long-polling wait); it returns the task, its raw
// JSON and the status.
func (s *soak) getTask(ctx context.Context, id string, wait time.Duration) (*client.Task, []byte, int, error) {
	path := "/remote/tasks/" + id
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	rep, err := s.api.do(ctx, wait+20*time.Second, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	if rep.Status != http.StatusOK {
		return nil, nil, rep.Status, nil
	}
	var t client.Task
	if err := json.Unmarshal(rep.Body, &t); err != nil {
		return nil, nil, rep.Status, err
	}
	return &t, rep.Body, rep.Status, nil
}

// readStream reads a stream's stored bytes whole.
func (s *soak) readStream(ctx context.Context, id, stream string) ([]byte, error) {
	for ctx.Err() == nil {
		rep, err := s.api.do(ctx, 60*time.Second, http.MethodGet, "/remote/tasks/"+id+"/"+stream, nil)
		switch {
		case err == nil && rep.Status == http.StatusOK:
			if n, _ := strconv.ParseInt(rep.Header.Get("X-Total-Bytes"), 10, 64); n > 0 && len(rep.Body) == 0 {
				return nil, fmt.Errorf("X-Total-Bytes %d with an empty body", n)
			}
			return rep.Body, nil
		case retryable(rep, err):
			pause(ctx, 200*time.Millisecond)
		default:
			return nil, fmt.Errorf("GET %s: %d %.200s", stream, rep.Status, rep.Body)
		}
	}
	return nil, ctx.Err()
}

// waitFinal long-polls until the task has ended, then records its first
// final answer and its output. It gives up at deadline (the sweep at the
// end tries again).
func (s *soak) waitFinal(ctx context.Context, tr *tracked, deadline time.Time) bool {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		t, raw, code, err := s.getTask(ctx, tr.ID, 3*time.Second)
		switch {
		case err == nil && code == http.StatusOK && t.Final():
			s.recordFinal(ctx, tr, t, raw)
			return true
		case err == nil && code == http.StatusOK:
			// still queued or running
		case err == nil && code == http.StatusNotFound:
			tr.mu.Lock()
			purged := tr.Purged
			if !purged {
				tr.Vanished = append(tr.Vanished, fmt.Sprintf("404 at +%.1fs while waiting", time.Since(s.start).Seconds()))
			}
			tr.mu.Unlock()
			return purged
		case err == nil && code != http.StatusServiceUnavailable && code < 500:
			tr.problem("GET task: unexpected %d", code)
			return false
		default:
			pause(ctx, 200*time.Millisecond)
		}
	}
	return false
}

func (s *soak) recordFinal(ctx context.Context, tr *tracked, t *client.Task, raw []byte) {
	var stdout []byte
	if t.Stdout != nil {
		if t.Stdout.TextComplete {
			stdout, _ = t.Stdout.Bytes()
		} else if b, err := s.readStream(ctx, tr.ID, "stdout"); err == nil {
			stdout = b
		} else {
			tr.problem("reading stdout: %v", err)
		}
	}
	full, noOut, stripped := digests(raw)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.Final != nil {
		return
	}
	tr.FinalAt, tr.Final, tr.Digest, tr.DigestNoO, tr.Raw, tr.Stdout = time.Now(), t, full, noOut, stripped, stdout
}

// follow reads stdout with follow=true from the start while the task runs.
func (s *soak) follow(ctx context.Context, tr *tracked) {
	s.tasks.stats.Follows.Add(1)
	rep, err := s.api.do(ctx, 60*time.Second, http.MethodGet, "/remote/tasks/"+tr.ID+"/stdout?follow=true", nil)
	if err != nil || rep.Status != http.StatusOK {
		s.tasks.stats.FollowCut.Add(1) // a fault cut it; the HTTP invariant judges the answer
		return
	}
	tr.mu.Lock()
	tr.Followed = rep.Body
	tr.mu.Unlock()
}

// kill kills a running task as the job says, retrying while the module is
// away.
func (s *soak) kill(ctx context.Context, r *rand.Rand, tr *tracked) {
	j := tr.Job
	if !pause(ctx, j.KillAfter) {
		return
	}
	tr.mu.Lock()
	tr.KillAt = time.Now()
	tr.mu.Unlock()
	deadline := time.Now().Add(6 * time.Second)
	unanswered := false // an earlier attempt got no answer: it may have been carried out
	for ctx.Err() == nil && time.Now().Before(deadline) {
		var rep reply
		var err error
		if j.Signal == "" {
			rep, err = s.api.do(ctx, 10*time.Second, http.MethodDelete, "/remote/tasks/"+url.PathEscape(tr.ID), nil)
		} else {
			rep, err = s.api.do(ctx, 10*time.Second, http.MethodPost, "/remote/tasks/"+url.PathEscape(tr.ID)+"/signal",
				map[string]string{"signal": j.Signal, "scope": "group"})
		}
		switch {
		case err == nil && (rep.Status == 200 || rep.Status == 202):
			tr.mu.Lock()
			tr.KillAcked = true
			tr.mu.Unlock()
			return
		case err == nil && rep.Status == http.StatusNoContent,
			// The same, when the answer to an earlier DELETE was lost in a
			// fault: that DELETE purged it, and this one finds nothing.
			err == nil && rep.Status == http.StatusNotFound && j.Signal == "" && unanswered:
			// It had ended (lost, killed by a host stop): DELETE purged it.
			tr.mu.Lock()
			tr.Purged = true
			tr.mu.Unlock()
			return
		case err == nil && rep.Status == http.StatusConflict:
			// A signal to a task that is queued (not started) or has ended.
			t, _, code, err := s.getTask(ctx, tr.ID, 0)
			if err == nil && code == 200 && t.Final() {
				return
			}
			pause(ctx, time.Duration(50+r.IntN(100))*time.Millisecond)
		case retryable(rep, err):
			unanswered = unanswered || err != nil || rep.Status >= 500
			pause(ctx, time.Duration(100+r.IntN(200))*time.Millisecond)
		default:
			tr.problem("kill: unexpected %d %.200s", rep.Status, rep.Body)
			return
		}
	}
}

// runJob submits j and follows it to its end.
func (s *soak) runJob(ctx context.Context, r *rand.Rand, cl int, key string, j *job) *tracked {
	tr := s.submit(ctx, r, cl, key, j)
	if tr == nil {
		return nil
	}
	var wg sync.WaitGroup
	if j.KillAfter > 0 {
		wg.Go(func() { s.kill(ctx, r, tr) })
	}
	if j.Follow {
		wg.Go(func() { s.follow(ctx, tr) })
	}
	s.waitFinal(ctx, tr, time.Now().Add(40*time.Second))
	wg.Wait()
	return tr
}

// taskEnv is the environment every command gets: the run's marker, which
// the /proc walk looks for.
func (s *soak) taskEnv() map[string]string {
	k, v, _ := strings.Cut(s.marker, "=")
	return map[string]string{k: v}
}
