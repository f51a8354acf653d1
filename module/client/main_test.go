package client_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/execmod/execmod/internal/hosttest"
	"github.com/execmod/execmod/module/client"
)

// bins holds modhost and remote-execute, built by TestMain with -race.
var bins string

// agent is the address ("127.0.0.1:port") of the host the examples use,
// started by TestMain.
var agent string

func TestMain(m *testing.M) {
	os.Exit(hosttest.Binaries(map[string]string{"modhost": "/host", "remote-execute": "/module/remote-execute"}, func(dir string) int {
		bins = dir
		stop, err := startExampleHost()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		code := m.Run()
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		return code
	}))
}

// remoteJSON is a modules.json loading remote-execute with params as key,
// value pairs.
func remoteJSON(params ...string) string {
	return hosttest.RemoteJSON(filepath.Join(bins, "remote-execute"), params...)
}

// startHost starts the real host with the remote module (params are its
// parameters, as key, value pairs) and extra host flags; it is stopped
// when the test ends.
func startHost(t *testing.T, params []string, args ...string) *hosttest.Host {
	t.Helper()
	return hosttest.Start(t, filepath.Join(bins, "modhost"), nil, append([]string{"--modules=" + remoteJSON(params...)}, args...)...)
}

// addr is h's host:port.
func addr(h *hosttest.Host) string { return strings.TrimPrefix(h.URL, "http://") }

// newClient returns a client of h whose every answer is checked against
// the OpenAPI document when the test ends.
func newClient(t *testing.T, h *hosttest.Host, opts ...client.Option) *client.Client {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport}
	t.Cleanup(func() { rec.check(t) })
	return recordedClient(t, h, rec, opts...)
}

// recordedClient is a client of h whose exchanges rec records.
func recordedClient(t *testing.T, h *hosttest.Host, rec *recorder, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addr(h), append([]client.Option{client.WithHTTPClient(&http.Client{Transport: rec})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange is one request and its answer, as the recorder saw them.
type exchange struct {
	method, path string // path without the query
	status       int
	contentType  string // the media type
	body         []byte // JSON bodies only
}

func (e exchange) String() string {
	return fmt.Sprintf("%s %s -> %d %s %.300s", e.method, e.path, e.status, e.contentType, e.body)
}

// recorder is a RoundTripper that keeps every exchange; JSON bodies are
// read whole and replayed, other bodies (raw output, maybe followed) are
// passed through.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	e := exchange{method: req.Method, path: req.URL.Path, status: resp.StatusCode, contentType: mt}
	if mt == "application/json" || resp.StatusCode == http.StatusNoContent {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		e.body = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	r.mu.Lock()
	r.seen = append(r.seen, e)
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.seen...)
}

// check validates every recorded answer against the OpenAPI document.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	doc := loadSpec(t)
	for _, e := range r.exchanges() {
		if err := doc.checkExchange(e); err != nil {
			t.Errorf("%v\n  answer: %s", err, e)
		}
	}
}

// startExampleHost starts the host the examples talk to, without a
// *testing.T, and returns how to stop it.
func startExampleHost() (stop func() error, err error) {
	work, err := os.MkdirTemp("", "mh")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bins, "modhost"), "--port=0", "--work_dir="+work, "--modules="+remoteJSON())
	cmd.Env = append(os.Environ(), hosttest.RaceEnv)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var log bytes.Buffer
	var logMu sync.Mutex
	listening := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		re := regexp.MustCompile(`listening: addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case listening <- m[1]:
				default:
				}
			}
		}
	}()
	stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-drained; done <- cmd.Wait() }()
		var err error
		select {
		case <-done: // its exit status after SIGTERM is not the point
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			err = errors.New("the examples' host did not stop within 30s of SIGTERM")
		}
		os.RemoveAll(work)
		logMu.Lock()
		defer logMu.Unlock()
		if strings.Contains(log.String(), "WARNING: DATA RACE") {
			return fmt.Errorf("the race detector reported a race in the examples' host:\n%s", log.String())
		}
		return err
	}
	select {
	case agent = <-listening:
		return stop, nil
	case <-drained:
	case <-time.After(60 * time.Second):
	}
	_ = stop()
	logMu.Lock()
	defer logMu.Unlock()
	return nil, fmt.Errorf("the examples' host did not start:\n%s", log.String())
}
