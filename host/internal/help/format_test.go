package help

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name              string
		tldr, description string
		authRequired      bool
		want              string
	}{
		{
			name:        "two description lines, no authentication",
			tldr:        "Executes a command on the agent.",
			description: "<line1>\n<line2>",
			want: "### TL;DR; ###\nExecutes a command on the agent.\n" +
				"\n### DESCRIPTION ###\n<line1>\n<line2>\n\n" +
				"\n### AUTHENTICATION ###\nThis endpoint does not require authentication.\n",
		},
		{
			// Mesos's own /health help, as docs/endpoints/slave/health.md shows it.
			name:        "agent health",
			tldr:        "Health check of the Agent.",
			description: "Returns 200 OK iff the Agent is healthy.\nDelayed responses are also indicative of poor health.",
			want: "### TL;DR; ###\nHealth check of the Agent.\n" +
				"\n### DESCRIPTION ###\nReturns 200 OK iff the Agent is healthy.\nDelayed responses are also indicative of poor health.\n\n" +
				"\n### AUTHENTICATION ###\nThis endpoint does not require authentication.\n",
		},
		{
			name:         "authentication required",
			tldr:         "Information about the agent.",
			description:  "One line.",
			authRequired: true,
			want: "### TL;DR; ###\nInformation about the agent.\n" +
				"\n### DESCRIPTION ###\nOne line.\n\n" +
				"\n### AUTHENTICATION ###\nThis endpoint requires authentication iff HTTP authentication is\nenabled.\n",
		},
		{
			// DESCRIPTION() is strings::join("\n", "\n"), a lone newline.
			name: "empty description",
			tldr: "Short.",
			want: "### TL;DR; ###\nShort.\n" +
				"\n### DESCRIPTION ###\n\n" +
				"\n### AUTHENTICATION ###\nThis endpoint does not require authentication.\n",
		},
		{
			// DESCRIPTION("a", "") is "a\n\n\n": the empty last line survives.
			name:        "description with a trailing newline",
			tldr:        "T.",
			description: "a\n",
			want: "### TL;DR; ###\nT.\n" +
				"\n### DESCRIPTION ###\na\n\n\n" +
				"\n### AUTHENTICATION ###\nThis endpoint does not require authentication.\n",
		},
		{
			// TLDR("") is "\n".
			name: "empty tldr",
			want: "### TL;DR; ###\n\n" +
				"\n### DESCRIPTION ###\n\n" +
				"\n### AUTHENTICATION ###\nThis endpoint does not require authentication.\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Format(tt.tldr, tt.description, tt.authRequired); got != tt.want {
				t.Errorf("Format(%q, %q, %v)\n got %q\nwant %q", tt.tldr, tt.description, tt.authRequired, got, tt.want)
			}
		})
	}
}

func TestStoredPage(t *testing.T) {
	text := Format("Health check of the Agent.", "Returns 200 OK iff the Agent is healthy.", false)
	tests := []struct {
		name           string
		id, route, txt string
		delegate       bool
		want           string
	}{
		{
			name: "help", id: "remote", route: "/execute", txt: text,
			want: "### USAGE ###\n>        /remote/execute\n\n" + text,
		},
		{
			name: "no help", id: "remote", route: "/task",
			want: "## No help page for `/remote/task`\n",
		},
		{
			// As in the generated docs/endpoints/slave/health.md.
			name: "delegate", id: "slave(1)", route: "/health", txt: text, delegate: true,
			want: "### USAGE ###\n>        /health\n>        /slave(1)/health\n\n" + text,
		},
		{
			name: "delegate without help", id: "slave(1)", route: "/flags", delegate: true,
			want: "## No help page for `/slave(1)/flags`\n",
		},
		{
			name: "root route", id: "version", route: "/", txt: text,
			want: "### USAGE ###\n>        /version\n\n" + text,
		},
		{
			name: "trailing slash is dropped from usage", id: "files", route: "/browse/", txt: text,
			want: "### USAGE ###\n>        /files/browse\n\n" + text,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := storedPage(tt.id, tt.route, tt.txt, tt.delegate); got != tt.want {
				t.Errorf("storedPage\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"/", nil},
		{"/help", []string{"help"}},
		{"/help/", []string{"help"}},
		{"//help//remote//", []string{"help", "remote"}},
		{"/help/remote/execute", []string{"help", "remote", "execute"}},
		{"/help/remote/tasks/{id}", []string{"help", "remote", "tasks/{id}"}},
		{"/help/remote/execute/", []string{"help", "remote", "execute/"}},
		{"/help/remote//a//b", []string{"help", "remote", "a//b"}},
	}
	for _, tt := range tests {
		got := tokenize(tt.in, 3)
		if len(got) != len(tt.want) {
			t.Errorf("tokenize(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("tokenize(%q) = %q, want %q", tt.in, got, tt.want)
				break
			}
		}
	}
}

func TestFormatJSON(t *testing.T) {
	tests := []struct {
		query string
		want  bool
	}{
		{"", false},
		{"format=json", true},
		{"format=JSON", false},
		{"x=1&format=json", true},
		{"x=1;format=json", true},
		{"format=json&format=md", false},
		{"format=md&format=json", true},
		{"format=%6Ason", true},
		{"format", false},
		{"format=json%zz", false},
	}
	for _, tt := range tests {
		if got := formatJSON(tt.query); got != tt.want {
			t.Errorf("formatJSON(%q) = %v, want %v", tt.query, got, tt.want)
		}
	}
}

func TestJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"/execute", `"\/execute"`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f\u007f"`},
		{"<&>'", `"<&>'"`},
		{"héllo ✓", `"héllo ✓"`},
		{"\xff", "\"\xff\""}, // stout passes bytes through, valid UTF-8 or not
	}
	for _, tt := range tests {
		var b strings.Builder
		jsonString(&b, tt.in)
		if got := b.String(); got != tt.want {
			t.Errorf("jsonString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
