package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/execmod/execmod/module/internal/audit"
)

// auditVerify checks the hash chain of an audit log copied from an agent
// (<work_dir>/modules/<name>/audit.jsonl) and prints where it ends. With
// --host-log it also compares that end with the last audit record the
// module wrote to the host's log, which is how lines cut off the end of the
// file show: the chain stays intact but ends too early.
func (e *env) auditVerify(o *options, path string) error {
	tail, err := audit.Verify(path)
	var ce *audit.ChainError
	switch {
	case errors.As(err, &ce):
		if o.json {
			if err := writeJSON(e.stdout, map[string]any{"file": path, "intact": false, "line": ce.Line, "reason": ce.Reason}); err != nil {
				return err
			}
			return exitError{exitFailure, ""}
		}
		return exitError{exitFailure, fmt.Sprintf("%s: chain broken at line %d: %s", path, ce.Line, ce.Reason)}
	case err != nil:
		return usagef("audit verify: %v", err)
	}
	var mismatch string
	var anchor *logRecord
	if o.hostLog != "" {
		module := moduleOf(path)
		if anchor, err = lastAuditRecord(o.hostLog, module); err != nil {
			return usagef("audit verify --host-log: %v", err)
		}
		mismatch = compareTail(tail, anchor, module)
	}
	if o.json {
		v := map[string]any{"file": path, "intact": mismatch == "", "lines": tail.Lines, "hash": tail.Hash}
		if anchor != nil {
			v["host_log"] = map[string]any{"seq": anchor.seq, "hash": anchor.hash}
		}
		if mismatch != "" {
			v["reason"] = mismatch
		}
		if err := writeJSON(e.stdout, v); err != nil {
			return err
		}
		if mismatch != "" {
			return exitError{exitFailure, ""}
		}
		return nil
	}
	if mismatch != "" {
		return exitError{exitFailure, fmt.Sprintf("%s: %s", path, mismatch)}
	}
	fmt.Fprintf(e.stdout, "%s: %d lines, chain intact\nlast: seq=%d hash=%s\n", path, tail.Lines, tail.Lines, tail.Hash)
	if anchor != nil {
		fmt.Fprintf(e.stdout, "matches the last audit record in %s\n", o.hostLog)
	} else {
		fmt.Fprintln(e.stdout, "(compare with the host's log: --host-log FILE)")
	}
	return nil
}

// compareTail says how the file's end disagrees with the host log's last
// record, or "" when they agree.
func compareTail(tail audit.Tail, r *logRecord, module string) string {
	switch {
	case r == nil:
		return fmt.Sprintf("the host's log has no audit record of module %q to compare with", module)
	case r.seq > tail.Lines:
		return fmt.Sprintf("lines are missing from the end: the file ends at seq %d, the host logged seq %d (hash %.12s…)", tail.Lines, r.seq, r.hash)
	case r.seq < tail.Lines:
		return fmt.Sprintf("the host's log ends at seq %d, before the file's end at seq %d: is it the log of the host that wrote the file?", r.seq, tail.Lines)
	case r.hash != tail.Hash:
		return fmt.Sprintf("line %d is not the one the host logged (hash %.12s…, the file's %.12s…)", r.seq, r.hash, tail.Hash)
	}
	return ""
}

// moduleOf is the module name in <work_dir>/modules/<name>/audit.jsonl, or
// "" for a file kept elsewhere (any module's records then count).
func moduleOf(path string) string {
	dir := filepath.Dir(path)
	if filepath.Base(filepath.Dir(dir)) == "modules" {
		return filepath.Base(dir)
	}
	return ""
}

// logRecord is an audit record in the host's log.
type logRecord struct {
	seq  int
	hash string
}

// lastAuditRecord finds the last "audit" record that module (any, if "")
// logged in the host's log: lines "[WARN]  modhost.<module>: audit: k=v ...".
func lastAuditRecord(path, module string) (*logRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var last *logRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, ": audit: ")
		if i < 0 {
			continue
		}
		logger := line[strings.LastIndexByte(line[:i], ' ')+1 : i]
		if !strings.HasPrefix(logger, "modhost.") || (module != "" && logger != "modhost."+module) {
			continue
		}
		kv := parseKV(line[i+len(": audit: "):])
		seq, err := strconv.Atoi(kv["seq"])
		if err != nil || len(kv["hash"]) != 64 {
			continue
		}
		last = &logRecord{seq, kv["hash"]}
	}
	return last, sc.Err()
}

// parseKV reads hclog's key=value pairs, values bare or Go-quoted, so that
// a quoted value such as an argument " seq=9" is never taken for a key.
func parseKV(s string) map[string]string {
	kv := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key, rest := s[:eq], s[eq+1:]
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(rest) {
				break // unterminated: the line is not one of ours
			}
			v, err := strconv.Unquote(rest[:end+1])
			if err != nil {
				break
			}
			kv[key], s = v, rest[end+1:]
			continue
		}
		v, after, _ := strings.Cut(rest, " ")
		kv[key], s = v, after
	}
	return kv
}
