// Package wire is the plugin protocol's only Go implementation: the
// go-plugin handshake and plugin set, the gRPC codec, the module process
// as the host sees it (Start, Init, Forward, Stop) and the module's side of
// the HTTP bridge (Serve).
//
// It is the one package that imports hashicorp/go-plugin and the generated
// protocol (proto/module/v1); the host and the SDK use only the plain Go
// types declared here, so neither module authors nor host code ever see
// protobuf or go-plugin.
//
// # The HTTP bridge
//
// One HTTP request is one ServeHTTP gRPC stream. The host sends the request
// head with up to ChunkSize bytes of body in the first part, then the rest
// of the body in ChunkSize parts, and an eof part; the module answers with
// the status and headers, then body parts. The module's writer sends a part
// whenever ChunkSize bytes are buffered and at once on Flush, and the host
// flushes to the client after each flushed part, so Server-Sent Events pass
// through event by event. Cancelling the HTTP request cancels the stream and
// with it the handler's request context.
package wire
