// Package client is a Go client of the remote-execution module's HTTP API
// (module/remote-execute), as mounted at /remote/ by modhost.
//
// A [Client] talks to one agent:
//
//	c, err := client.New("127.0.0.1:5051", client.WithBasicAuth("ops", secret))
//	t, err := c.Run(ctx, client.RunRequest{Command: "uname", Args: []string{"-r"}})
//	fmt.Print(t.Stdout.Text)
//
// The REST API has a method per route: [Client.Start], [Client.Run] (start
// and wait), [Client.Get], [Client.Wait] (long-poll), [Client.List],
// [Client.Signal], [Client.Kill], [Client.Delete], [Client.Output] (raw
// bytes, optionally following a live stream), [Client.Status] and
// [Client.PolicyCheck]. The Mesos execute module's seed API is there too:
// [Client.Execute], [Client.TaskByPid], [Client.Pids] and [Client.KillPid].
//
// # Errors
//
// Every answer that is not a 2xx is an [*Error] carrying the status, the
// server's message and, for an ACL denial, the deciding rule. The
// sentinels [ErrUnauthorized], [ErrForbidden], [ErrNotFound], [ErrBusy],
// [ErrUnavailable], [ErrConflict] and [ErrBadRequest] match an *Error by
// its status with errors.Is. A request that never got an answer (the agent
// is unreachable, the TLS handshake failed, the connection broke) is an
// error for which errors.Is(err, [ErrUnreachable]) holds; a cancelled
// context gives the context's error instead.
//
// The client never retries: a 429 or 503 carries the server's Retry-After
// in [Error.RetryAfter] for the caller to honour.
//
// The API is described by an OpenAPI 3.0 document, served by the module at
// GET /remote/openapi.json.
package client
