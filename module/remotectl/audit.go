package main

import (
	"errors"
	"fmt"

	"github.com/execmod/execmod/module/internal/audit"
)

// auditVerify checks the hash chain of an audit log copied from an agent
// (<work_dir>/modules/<name>/audit.jsonl) and prints where it ends, to
// compare with the module's last "audit" line in the host's log: lines cut
// off the end of a file leave an intact chain that ends too early.
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
	if o.json {
		return writeJSON(e.stdout, map[string]any{"file": path, "intact": true, "lines": tail.Lines, "hash": tail.Hash})
	}
	fmt.Fprintf(e.stdout, "%s: %d lines, chain intact\nlast: seq=%d hash=%s\n", path, tail.Lines, tail.Lines, tail.Hash)
	fmt.Fprintln(e.stdout, "(the host's log has the module's own record of its last append: an 'audit' line with seq and hash)")
	return nil
}
