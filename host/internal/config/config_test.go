package config

import (
	"bytes"
	"errors"
	goflag "flag"

	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = goflag.Bool("update", false, "rewrite testdata/*.golden")

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]string{"--work_dir=/var/lib/modhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		IP: "127.0.0.1", Port: 5051, WorkDir: "/var/lib/modhost", SandboxDirectory: "/mnt/mesos/sandbox",
		LoggingLevel: "INFO", ModuleStartTimeout: 30 * time.Second, MaxRequestBody: 16 << 20,
		DrainTimeout: 10 * time.Second,
	}
	if c != want {
		t.Errorf("Parse = %+v\nwant    %+v", c, want)
	}
	var got []string
	for _, f := range c.Flags() {
		got = append(got, f.Name+"="+f.Value)
	}
	wantFlags := "authenticate_http_readonly=false authenticate_http_readwrite=false drain_timeout=10secs insecure_unauthenticated=false ip=127.0.0.1 logging_level=INFO " +
		"max_request_body=16MB module_start_timeout=30secs port=5051 sandbox_directory=/mnt/mesos/sandbox work_dir=/var/lib/modhost"
	if s := strings.Join(got, " "); s != wantFlags {
		t.Errorf("Flags() = %s\nwant      %s", s, wantFlags)
	}
}

func TestParse(t *testing.T) {
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string
		check   func(Config) bool
		wantErr []string // substrings; nil means success
	}{
		{name: "every flag", args: []string{
			"--work_dir=/w", "--ip=::1", "--port=0", "--hostname=agent-1", "--sandbox_directory=/sb",
			"--modules=file:///etc/m.json", "--modules_path=/a:/b", "--logging_level=warning",
			"--module_start_timeout=1.5mins", "--max_request_body=1KB", "--drain_timeout=250ms", "--insecure_unauthenticated",
		}, check: func(c Config) bool {
			return c.IP == "::1" && c.Port == 0 && c.Hostname == "agent-1" && c.SandboxDirectory == "/sb" &&
				c.Modules == "file:///etc/m.json" && c.ModulesPath == "/a:/b" && c.LoggingLevel == "WARNING" &&
				c.ModuleStartTimeout == 90*time.Second && c.MaxRequestBody == 1024 &&
				c.DrainTimeout == 250*time.Millisecond && c.InsecureUnauthenticated
		}},
		{name: "environment", env: []string{"MESOS_WORK_DIR=/env", "MESOS_PORT=6000", "MESOS_UNKNOWN=1", "PORT=7"},
			check: func(c Config) bool { return c.WorkDir == "/env" && c.Port == 6000 }},
		{name: "command line wins", args: []string{"--port=7000"}, env: []string{"MESOS_WORK_DIR=/env", "MESOS_PORT=6000"},
			check: func(c Config) bool { return c.Port == 7000 }},
		{name: "relative work_dir is made absolute", args: []string{"--work_dir=rel"},
			check: func(c Config) bool { return c.WorkDir == filepath.Join(wd, "rel") }},
		{name: "dashes and --no-", args: []string{"--work-dir=/w", "--insecure_unauthenticated", "--no-insecure_unauthenticated"},
			wantErr: []string{"given twice"}},
		{name: "bool forms", args: []string{"--work_dir=/w", "--insecure_unauthenticated=false"},
			check: func(c Config) bool { return !c.InsecureUnauthenticated }},
		{name: "go durations", args: []string{"--work_dir=/w", "--drain_timeout=1m30s"},
			check: func(c Config) bool { return c.DrainTimeout == 90*time.Second }},
		{name: "work_dir required", wantErr: []string{"flag 'work_dir' is required"}},
		{name: "unknown flag", args: []string{"--work_dir=/w", "--prot=1"}, wantErr: []string{"unknown flag --prot"}},
		{name: "positional", args: []string{"--work_dir=/w", "serve"}, wantErr: []string{`unexpected argument "serve"`}},
		{name: "all problems at once", args: []string{"--port=x", "--ip=nowhere", "--max_request_body=16", "--logging_level=LOUD"},
			wantErr: []string{"'port'", "'ip'", "'max_request_body'", "'logging_level'", "'work_dir' is required"}},
		{name: "bad env", env: []string{"MESOS_WORK_DIR=/w", "MESOS_PORT=99999"}, wantErr: []string{"flag 'port' (MESOS_PORT)"}},
		{name: "missing value", args: []string{"--work_dir=/w", "--port"}, wantErr: []string{"flag 'port' needs a value"}},
		{name: "no- on non-bool", args: []string{"--work_dir=/w", "--no-port"}, wantErr: []string{"not a boolean"}},
		{name: "no- with value", args: []string{"--work_dir=/w", "--no-insecure_unauthenticated=true"}, wantErr: []string{"takes no value"}},
		{name: "bad bool", args: []string{"--work_dir=/w", "--insecure_unauthenticated=yes"}, wantErr: []string{`"yes" is not true or false`}},
		{name: "both modules flags", args: []string{"--work_dir=/w", "--modules={}", "--modules_dir=/d"},
			wantErr: []string{"only one of --modules or --modules_dir"}},
		{name: "non-loopback refused", args: []string{"--work_dir=/w", "--ip=0.0.0.0"}, wantErr: []string{"refusing to listen on 0.0.0.0", "--insecure_unauthenticated"}},
		{name: "non-loopback allowed", args: []string{"--work_dir=/w", "--ip=0.0.0.0", "--insecure_unauthenticated"},
			check: func(c Config) bool { return c.IP == "0.0.0.0" && !c.Loopback() }},
		{name: "non-loopback with read-write authentication", args: []string{"--work_dir=/w", "--ip=0.0.0.0",
			"--authenticate_http_readwrite", `--http_credentials={"credentials":[{"principal":"ops","secret":"s3cret"}]}`},
			check: func(c Config) bool {
				for _, f := range c.Flags() {
					if strings.Contains(f.Value, "s3cret") {
						return false // inline secrets must not reach /flags or modules
					}
				}
				return c.AuthenticateHTTPReadwrite && c.HTTPCredentials != ""
			}},
		{name: "authentication without credentials", args: []string{"--work_dir=/w", "--authenticate_http_readonly"},
			wantErr: []string{"need --http_credentials"}},
		{name: "half a TLS pair", args: []string{"--work_dir=/w", "--ssl_cert_file=/c.pem"}, wantErr: []string{"go together"}},
		{name: "client CA without TLS", args: []string{"--work_dir=/w", "--ssl_ca_file=/ca.pem"}, wantErr: []string{"needs --ssl_cert_file"}},
		{name: "zero start timeout", args: []string{"--work_dir=/w", "--module_start_timeout=0secs"}, wantErr: []string{"more than 0"}},
		{name: "relative sandbox", args: []string{"--work_dir=/w", "--sandbox_directory=sb"}, wantErr: []string{"not an absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.args, tc.env)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !tc.check(c) {
					t.Errorf("Parse = %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", c)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestHelp(t *testing.T) {
	if _, err := Parse([]string{"--port=x", "--help"}, nil); !errors.Is(err, ErrHelp) {
		t.Errorf("Parse(--help) = %v, want ErrHelp", err)
	}
}

func TestUsageGolden(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	golden := filepath.Join("testdata", "usage.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("Usage changed (go test -update to accept):\n%s", b.String())
	}
}

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"30secs", 30 * time.Second, "30secs"},
		{"1.5mins", 90 * time.Second, "1.5mins"},
		{"100ms", 100 * time.Millisecond, "100ms"},
		{"2weeks", 14 * 24 * time.Hour, "2weeks"},
		{"36hrs", 36 * time.Hour, "1.5days"},
		{"1m30s", 90 * time.Second, "1.5mins"},
		{"0ns", 0, "0ns"},
	} {
		d, err := ParseDuration(tc.in)
		if err != nil || d != tc.want || FormatDuration(d) != tc.out {
			t.Errorf("ParseDuration(%q) = %v, %v; formatted %q, want %v %q", tc.in, d, err, FormatDuration(d), tc.want, tc.out)
		}
	}
	for _, bad := range []string{"", "secs", "1", "1parsecs", "-1secs", "-1s", "1e400secs", "1.2.3secs"} {
		if d, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, d)
		}
	}
	for _, tc := range []struct {
		in   string
		want int64
		out  string
	}{
		{"16MB", 16 << 20, "16MB"}, {"1024KB", 1 << 20, "1MB"}, {"3B", 3, "3B"}, {"2TB", 2 << 40, "2TB"}, {"0B", 0, "0B"},
	} {
		n, err := ParseBytes(tc.in)
		if err != nil || n != tc.want || FormatBytes(n) != tc.out {
			t.Errorf("ParseBytes(%q) = %v, %v; formatted %q, want %v %q", tc.in, n, err, FormatBytes(n), tc.want, tc.out)
		}
	}
	for _, bad := range []string{"", "16", "MB", "1.5MB", "-1MB", "16mb", "9999999999999TB", "99999999999999999999B"} {
		if n, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %v, want an error", bad, n)
		}
	}
}

// FuzzParse: no input panics, and a successful parse has a work_dir and a
// listen address that is loopback or explicitly allowed.
func FuzzParse(f *testing.F) {
	f.Add("--work_dir=/w", "--port=0", "MESOS_IP=127.0.0.1")
	f.Add("--no-insecure_unauthenticated", "--max_request_body=1.5MB", "MESOS_DRAIN_TIMEOUT=1e9weeks")
	f.Add("--modules={}", "--ip=::", "MESOS_WORK_DIR=")
	f.Fuzz(func(t *testing.T, a, b, env string) {
		c, err := Parse([]string{a, b}, []string{env})
		if errors.Is(err, ErrHelp) || err != nil {
			return
		}
		if c.WorkDir == "" || !filepath.IsAbs(c.WorkDir) {
			t.Errorf("accepted without an absolute work_dir: %+v", c)
		}
		if !c.Loopback() && !c.InsecureUnauthenticated {
			t.Errorf("accepted a non-loopback address without --insecure_unauthenticated: %+v", c)
		}
		_ = c.Flags()
	})
}
