// Package sdk is how a module for execmod's host (bin/modhost) is written.
//
// A module is a Go value that lists net/http routes; its main is one call:
//
//	func main() { sdk.Serve("hello", &hello{}) }
//
// The host starts the module's executable from modules.json, mounts its
// routes under /<id>/ and forwards each HTTP request to it. The module sees
// an ordinary *http.Request (its path relative to the mount point) and
// writes an ordinary response; Flush goes through to the client at once, so
// streaming and Server-Sent Events work.
//
// Optional steps are small interfaces the SDK checks for:
//
//   - Provisioner: receives the agent's flags and the module's modules.json
//     parameters (Env.Params; Params.Required for one that must be given)
//     before any request; an error fails the host's start.
//   - io.Closer: runs when the host stops the module.
//   - MetricsProvider: figures the host publishes in /metrics/snapshot
//     under "<id>/".
//
// Serve also logs for the module (Env.Logger and the standard log package
// end up in the host's log under the module's name), turns a handler panic
// into a 500 without killing the module, and exits when the host is gone.
// Package sdktest runs a module in a test, through the same protocol.
//
// A module must not write to standard output before Serve: go-plugin's
// handshake line travels there.
package sdk
