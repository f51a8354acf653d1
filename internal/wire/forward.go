package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/execmod/execmod/proto/module/v1"
)

// ChunkSize is the most request or response body one stream message
// carries: far below gRPC's 4 MiB message limit, large enough that a
// small request or response is a single message.
const ChunkSize = 32 << 10

// PrincipalHeader is the header through which a module's handlers see the
// authenticated principal. The host strips it from every client request and
// the SDK sets it only from the host's own RequestHead.principal.
const PrincipalHeader = "X-Execmod-Principal"

// ForwardOptions are the per-route settings of Forward.
type ForwardOptions struct {
	Module    string // module id, for error messages
	Mount     string // "/hello": stripped from the path the module sees
	MaxBody   int64  // request body limit in bytes; 0 means none
	Principal string // the authenticated principal, or ""
}

var errBodyTooLarge = errors.New("request body too large")

// Forward sends r to the module over one ServeHTTP stream and copies the
// module's response to w, flushing whenever the module flushed. It returns
// when the response is complete or r's context is done. A body over
// opts.MaxBody is answered 413; a module that fails before answering, 502
// (or 503 when its process is gone); a module that fails mid-response
// aborts the connection, so a client never mistakes a cut body for a whole.
func (p *Process) Forward(w http.ResponseWriter, r *http.Request, opts ForwardOptions) {
	if opts.MaxBody > 0 && r.ContentLength > opts.MaxBody {
		tooLarge(w, opts.MaxBody)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stream, err := p.rpc.ServeHTTP(ctx)
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("module %q is not available: %s", opts.Module, status.Convert(err).Message()))
		return
	}
	rc := http.NewResponseController(w)
	if hasBody(r) {
		// The module may answer while the client is still sending; let it.
		_ = rc.EnableFullDuplex()
		go sendRequest(stream, r, opts, cancel)
	} else {
		sendHead(stream, r, opts)
	}

	first, err := stream.Recv()
	if err != nil {
		switch {
		case errors.Is(context.Cause(ctx), errBodyTooLarge):
			tooLarge(w, opts.MaxBody)
		case r.Context().Err() != nil:
			// The client went away; nobody is listening.
		case isDown(err):
			WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("module %q stopped while serving the request", opts.Module))
		default:
			WriteError(w, http.StatusBadGateway, fmt.Sprintf("module %q failed: %s", opts.Module, status.Convert(err).Message()))
		}
		return
	}
	head := first.GetHead()
	if head == nil || head.Status < 200 || head.Status > 999 {
		WriteError(w, http.StatusBadGateway, fmt.Sprintf("module %q answered with an invalid status %d", opts.Module, head.GetStatus()))
		return
	}
	hdr := w.Header()
	for _, h := range head.Headers {
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		if hopByHop(name) || !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range h.Values {
			// A control byte in a value would reach the client as a
			// malformed header line (HTTP/1 only folds CR and LF): such a
			// value is dropped, as net/http's HTTP/2 server drops it.
			if httpguts.ValidHeaderFieldValue(v) {
				hdr[name] = append(hdr[name], v)
			}
		}
	}
	if first.Last && hdr.Get("Content-Length") == "" && bodyAllowed(r.Method, int(head.Status)) {
		// The whole body is here: send it with its length, not chunked.
		hdr.Set("Content-Length", strconv.Itoa(len(first.Body)))
	}
	w.WriteHeader(int(head.Status))
	part := first
	for {
		if len(part.Body) > 0 {
			if _, err := w.Write(part.Body); err != nil {
				return // client gone; ctx cancels the stream
			}
		}
		if part.Flush {
			_ = rc.Flush()
		}
		if part.Last {
			return // complete; the stream's status adds nothing
		}
		part, err = stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			if r.Context().Err() == nil {
				// Headers are out: all that is left is to make the cut visible.
				panic(http.ErrAbortHandler)
			}
			return
		}
	}
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// bodyAllowed reports whether a response may have a body, and so a
// Content-Length describing it (RFC 9110 §8.6).
func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// sendHead sends a body-less request in one part, from the handler's own
// goroutine: there is nothing to stream.
func sendHead(stream modulev1.Module_ServeHTTPClient, r *http.Request, opts ForwardOptions) {
	part := &modulev1.HTTPRequestPart{Head: requestHead(r, opts), Eof: true}
	_ = stream.Send(part) // a failure shows in Recv
	_ = stream.CloseSend()
}

// requestHead is what the module sees of the request line and headers:
// the mount point stripped from the path, hop-by-hop headers and any
// client-sent principal header removed, the host's principal added.
func requestHead(r *http.Request, opts ForwardOptions) *modulev1.RequestHead {
	hdr := r.Header.Clone()
	hdr.Del(PrincipalHeader)
	for name := range hdr {
		if hopByHop(name) {
			delete(hdr, name)
		}
	}
	path := strings.TrimPrefix(r.URL.EscapedPath(), opts.Mount)
	if path == "" {
		path = "/"
	}
	return &modulev1.RequestHead{
		Method: r.Method, Path: path, RawQuery: r.URL.RawQuery, Headers: headersToProto(hdr),
		RemoteAddr: r.RemoteAddr, Host: r.Host, RequestUri: r.RequestURI, ContentLength: r.ContentLength,
		Principal: opts.Principal, Proto: r.Proto, Mount: opts.Mount,
	}
}

// sendRequest streams the request head and body to the module. It may still
// run after Forward returned (a client that sends its body slowly to a
// module that has already answered); it touches only the stream and the
// body, and ends when either does.
func sendRequest(stream modulev1.Module_ServeHTTPClient, r *http.Request, opts ForwardOptions, cancel context.CancelCauseFunc) {
	part := &modulev1.HTTPRequestPart{Head: requestHead(r, opts)}
	var sent int64
	buf := make([]byte, ChunkSize)
	for {
		n, err := r.Body.Read(buf)
		sent += int64(n)
		if opts.MaxBody > 0 && sent > opts.MaxBody {
			cancel(errBodyTooLarge)
			return
		}
		part.Body = buf[:n]
		switch {
		case err == io.EOF:
			part.Eof = true
		case err != nil:
			cancel(fmt.Errorf("reading request body: %w", err))
			return
		}
		if n > 0 || part.Eof || part.Head != nil {
			if stream.Send(part) != nil {
				return // the module answered or went away; Recv reports which
			}
		}
		if part.Eof {
			_ = stream.CloseSend()
			return
		}
		part = &modulev1.HTTPRequestPart{}
	}
}

func tooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Connection", "close")
	WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: the limit is %d bytes (--max_request_body)", limit))
}

func isDown(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.Canceled
}

// hopByHop reports whether a (canonical) header belongs to one connection
// and so must not be forwarded (RFC 9110 §7.6.1).
func hopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// WriteError answers with a JSON error body: {"error": msg}. The host and
// the bridge use it for every error they produce themselves.
func WriteError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	_, _ = w.Write(append(b, '\n'))
}
