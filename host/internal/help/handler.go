package help

import (
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Endpoint is one documented route of a process.
type Endpoint struct {
	// Name is the route path relative to the process, with a leading
	// slash: "/execute", "/tasks/{id}". A name without one is treated as
	// if it had it.
	Name string
	// Text is the route's help text, normally built by Format, or "" when
	// the route has no help.
	Text string
}

// Process is one help id: a module id such as "remote", or a host process
// such as "version". The ids "help" and "__processes__" are never listed,
// as in libprocess, and neither is an empty id or a process with no
// endpoints.
type Process struct {
	ID string
	// Delegate marks the agent's delegate process (Mesos's "slave(1)"),
	// whose routes are also served without the id prefix; its usage lines
	// list both paths.
	Delegate  bool
	Endpoints []Endpoint
}

// Handler returns the handler for /help and everything below it. Mount it
// at both "/help" and "/help/" with method-less patterns, so that it sees
// every method and answers non-GET requests itself (405, Allow: GET); it
// reads the whole request path (r.URL.Path, already percent-decoded), so
// it must not be wrapped in http.StripPrefix.
//
// processes is called once per GET request, possibly from several
// goroutines at once, so it must be safe for concurrent use; the handler
// keeps nothing between requests, so the set may change as modules load.
// When two processes share an id their routes are merged, and a route
// listed twice keeps its last Text, as libprocess's map does. Handler
// panics if processes is nil.
func Handler(processes func() []Process) http.Handler {
	if processes == nil {
		panic("help: Handler called with nil processes")
	}
	return handler{processes: processes}
}

type handler struct {
	processes func() []Process
}

// pages maps id → route name → stored page, like libprocess's
// Help::helps (a std::map, so iteration is in byte order).
type pages map[string]map[string]string

func collect(procs []Process) pages {
	all := pages{}
	for _, p := range procs {
		if p.ID == "" || p.ID == "help" || p.ID == "__processes__" {
			continue
		}
		for _, e := range p.Endpoints {
			name := e.Name
			if !strings.HasPrefix(name, "/") {
				name = "/" + name
			}
			routes := all[p.ID]
			if routes == nil {
				routes = map[string]string{}
				all[p.ID] = routes
			}
			routes[name] = storedPage(p.ID, name, e.Text, p.Delegate)
		}
	}
	return all
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		write(w, http.StatusMethodNotAllowed, "text/plain; charset=utf-8",
			"405 Method Not Allowed. Expecting one of { 'GET' }, but received '"+r.Method+"'.")
		return
	}

	all := collect(h.processes())

	// libprocess: strings::tokenize(request.url.path, "/", 3), where
	// tokens[0] is "help", tokens[1] the id and tokens[2] the rest of the
	// path, slashes and all.
	tokens := tokenize(r.URL.Path, 3)

	var document, references strings.Builder
	switch len(tokens) {
	case 0, 1: // /help
		// As in libprocess, only /help honours format=json.
		if formatJSON(r.URL.RawQuery) {
			write(w, http.StatusOK, "application/json", jsonPages(all))
			return
		}
		document.WriteString("## HELP\n")
		for _, id := range slices.Sorted(maps.Keys(all)) {
			document.WriteString("> [/" + id + "][" + id + "]\n")
			references.WriteString("[" + id + "]: help/" + id + "\n")
		}
	case 2: // /help/<id>
		id := tokens[1]
		routes, ok := all[id]
		if !ok {
			badRequest(w, "/"+id)
			return
		}
		document.WriteString("## `/" + id + "` ##\n")
		for _, name := range slices.Sorted(maps.Keys(routes)) {
			path := usagePath(id, name)
			document.WriteString("> [/" + path + "][" + path + "]\n")
			references.WriteString("[" + path + "]: " + path + "\n")
		}
	default: // /help/<id>/<name...>
		id, name := tokens[1], tokens[2]
		routes, ok := all[id]
		if !ok {
			badRequest(w, "/"+id)
			return
		}
		page, ok := routes["/"+name]
		if !ok {
			badRequest(w, "/"+id+"/"+name)
			return
		}
		document.WriteString(page)
	}

	markdown := document.String() + "\n" + references.String()

	// libprocess sends raw markdown only to curl and HTTPie; everything
	// else is treated as a browser.
	if ua := r.Header.Get("User-Agent"); strings.HasPrefix(ua, "curl") || strings.HasPrefix(ua, "HTTPie") {
		write(w, http.StatusOK, "text/x-markdown", markdown)
		return
	}
	// The page loads nothing; the policy makes sure it cannot.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	write(w, http.StatusOK, "text/html", htmlPage(markdown))
}

// badRequest answers libprocess's 400 for a path with no help.
func badRequest(w http.ResponseWriter, path string) {
	write(w, http.StatusBadRequest, "text/plain; charset=utf-8",
		"No help available for '"+path+"'.\n")
}

func write(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body) // an error means the client has gone
}

// tokenize is stout's strings::tokenize(s, "/", n): the non-empty runs
// between slashes, except that the n'th token is the rest of s from its
// first byte, slashes included.
func tokenize(s string, n int) []string {
	var tokens []string
	for {
		rest := strings.TrimLeft(s, "/")
		if rest == "" {
			return tokens
		}
		end := strings.IndexByte(rest, '/')
		if end < 0 || len(tokens) == n-1 {
			return append(tokens, rest)
		}
		tokens = append(tokens, rest[:end])
		s = rest[end:]
	}
}

// formatJSON reports whether the query asks for format=json. libprocess
// splits the query on '&' and ';' and a repeated key keeps its last value.
func formatJSON(rawQuery string) bool {
	isJSON := false
	for _, pair := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || key != "format" {
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		isJSON = value == "json"
	}
	return isJSON
}

// jsonPages is libprocess's json(JSON::ObjectWriter*, const Help&):
//
//	{"processes":[{"id":id,"endpoints":[{"name":name,"text":page},...]},...]}
//
// written compactly, ids and names in byte order, strings escaped as
// stout's JSON writer escapes them.
func jsonPages(all pages) string {
	var b strings.Builder
	b.WriteString(`{"processes":[`)
	for i, id := range slices.Sorted(maps.Keys(all)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":`)
		jsonString(&b, id)
		b.WriteString(`,"endpoints":[`)
		routes := all[id]
		for j, name := range slices.Sorted(maps.Keys(routes)) {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":`)
			jsonString(&b, name)
			b.WriteString(`,"text":`)
			jsonString(&b, routes[name])
			b.WriteByte('}')
		}
		b.WriteString("]}")
	}
	b.WriteString("]}")
	return b.String()
}

// jsonString writes s as stout's JSON::StringWriter does: byte by byte,
// escaping '"', '\\' and '/', the short escapes \b \f \n \r \t, and any
// other byte below 0x20 or 0x7f as \u00xx; all other bytes pass through.
func jsonString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// htmlPage is the page browsers get: the markdown, HTML-escaped, in a
// <pre>, with libprocess's styling and nothing fetched from anywhere.
func htmlPage(markdown string) string {
	return `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Help</title>
<style>
body {
  font-family: Helvetica, arial, sans-serif;
  font-size: 14px;
  line-height: 1.6;
  background-color: white;
  padding: 30px;
}
pre {
  white-space: pre-wrap;
}
</style>
</head>
<body>
<pre>` + html.EscapeString(markdown) + `</pre>
</body>
</html>
`
}
