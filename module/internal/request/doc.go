// Package request decodes and validates the JSON bodies of the remote
// execution API: an operator POSTs a command and the service runs it on the
// agent. The package is pure: bytes in, a typed value or an *Error out. It
// never panics, whatever the input.
//
// # Strict JSON
//
// Every decoder wants exactly one JSON object. It rejects an empty body,
// syntax errors, data after the object, invalid UTF-8, duplicate field
// names, unknown field names (the message lists the known ones), values of
// the wrong type (the message names the field and the expected type) and
// NUL bytes in any string, escaped ("\u0000") or not. A null value of an
// optional field is the same as leaving the field out.
//
// # POST /remote/execute: the seed form
//
//	{"command": "ls", "arguments": ["-la", "/tmp"], "shell": false, "timeout": 5}
//
// "command" (required) is the program; "arguments" are passed to it
// verbatim, without any expansion, after argv[0] = "command". With
// "shell": true the command line runs as /bin/sh -c "command" and
// "arguments" must be absent or empty. "timeout" is a number of seconds
// (fractions allowed) or a duration string (see [ParseDuration]); 0 or
// absent means the caller's default.
//
// # POST /remote/execute: the Mesos CommandInfo form
//
//	{"value": "/bin/ls", "shell": false, "arguments": ["ls", "-la"],
//	 "environment": {"variables": [{"name": "EXECUTE_TIMEOUT_SEC", "value": "5"}]},
//	 "user": "nobody"}
//
// A body with the field "value" and without "command" is a Mesos
// CommandInfo, decoded with mesos-go's mesos.CommandInfo and read as Mesos
// does: "shell" defaults to true; with shell true the command line is
// /bin/sh -c "value" and "arguments" are ignored (as in Mesos); with shell
// false "value" is the executable and "arguments" is the whole argv,
// argv[0] included (execlp semantics), or just ["value"] when empty. The
// environment variable EXECUTE_TIMEOUT_SEC, a positive number of seconds,
// sets the timeout and is not passed to the command. Secret variables and
// non-empty "uris" (fetching) are rejected.
//
// # POST /remote/tasks: the REST form
//
// The seed form's fields plus "env" (object of strings), "cwd" (absolute
// path), "user", "stdin" (standard base64), "grace" (a duration like
// "timeout"), "labels" (object of strings) and "idempotency_key". The
// CommandInfo form is not accepted there.
//
// # Process control
//
// [Pid], [Kill] and [Signal] decode {"pid": N}, {"pid": N, "signal": "TERM"}
// and {"signal": "HUP", "scope": "group"}; [ParseSignal] and [SignalName]
// convert Linux signal names and numbers.
package request
