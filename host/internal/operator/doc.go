// Package operator serves the Mesos agent operator API, POST /api/v1, for
// the host, so that Mesos's own tools and mesos-go's agent client can ask
// the host what a Mesos agent would answer.
//
// # Supported calls
//
//   - GET_HEALTH: get_health.healthy from Source.Health.
//   - GET_FLAGS: get_flags.flags, every Source.Flags entry, sorted by name,
//     each with its value (possibly ""). When Source.Flags refuses (the
//     principal may not view the flags, Mesos's view_flags) the call is
//     403 Forbidden, as in Mesos, with a JSON body {"error", "rule"} that
//     names the deciding rule.
//   - GET_VERSION: get_version.version_info from Source.Version; build_date,
//     build_time and build_user always, git_sha, git_branch and git_tag only
//     when known.
//   - GET_METRICS: get_metrics.metrics from Source.Metrics, sorted by name,
//     NaN and infinities left out. get_metrics.timeout, if present, bounds
//     the call (a timeout of zero or less gives the Source an expired
//     context); figures that are late are left out, as in Mesos.
//   - GET_STATE: get_state with get_tasks, get_executors and get_frameworks,
//     all empty: the host runs modules, not frameworks, executors or tasks,
//     and v1's GetState has no place for anything else.
//   - GET_TASKS, GET_EXECUTORS, GET_FRAMEWORKS: the same empty lists GET_STATE
//     carries, so that the four calls agree.
//   - GET_AGENT: get_agent.agent_info with the hostname, the agent ID (when
//     known) and the port of the libprocess PID (when it has one). Resources
//     and attributes are empty; there is no domain or drain configuration.
//
// The host's start time and PID have no field in any v1 agent response;
// the uptime is in GET_METRICS as slave/uptime_secs.
//
// # Not supported
//
// UNKNOWN answers 501 with libprocess's body "501 Not Implemented.", as
// Mesos does. Every other known call type is validated as Mesos validates
// it (the sub-message it needs must be present) and then answered 501
// naming the call: GET_LOGGING_LEVEL and SET_LOGGING_LEVEL (the host has no
// glog level), LIST_FILES and READ_FILE (no /files sandbox browser),
// GET_CONTAINERS, GET_OPERATIONS and GET_RESOURCE_PROVIDERS, the
// container calls (LAUNCH_/WAIT_/KILL_/REMOVE_[NESTED_]CONTAINER,
// LAUNCH_NESTED_CONTAINER_SESSION, ATTACH_CONTAINER_INPUT/OUTPUT: the host
// has no containerizer), the resource provider calls and PRUNE_IMAGES.
// Streaming (application/recordio) requests and responses are understood
// as far as Mesos's checks go — the first record is read and validated,
// and the 415/406 answers Mesos gives are given — but no call streams.
// There is no authentication here: the host's HTTP layer does that, and
// Mesos puts /api/v1 in the mesos-agent-readwrite realm. Authorization is
// the Source's: it answers for the request's principal (see Forbidden).
//
// # Request handling
//
// Requests are checked in Mesos's order (src/slave/http.cpp Http::api and
// _api) with its status codes and bodies (text/plain; charset=utf-8):
// method (405, Allow: POST), Content-Type present (400) and exactly
// application/json, application/x-protobuf or application/recordio (415),
// Message-Content-Type (400/415), Accept (406: JSON if it allows JSON,
// else protobuf, else recordio, with libprocess's matching rules; no
// Accept means JSON, as in Mesos), Message-Accept (406), then the body:
// larger than MaxBody → 413 (our limit; Mesos has none), undecodable →
// 400 with Mesos's wording ("Failed to parse body into JSON: ...",
// "Failed to parse body into a protobuf object", "Expecting a JSON object",
// "Not expecting a JSON string for field 'x'", "Missing required fields:
// ..."), invalid → 400 "Failed to validate agent::Call: ...".
//
// JSON bodies are read as Mesos reads them (field names exact, unknown
// fields and null ignored, an unknown enum name dropped — so an unknown
// "type" gives "Expecting 'type' to be present") and then decoded with
// mesos-go's own JSON codec (encoding/json over the types' ffjson
// methods); protobuf bodies with the types' gogo Unmarshal. Responses are
// encoded as mesos-go's codecs encode them, with Content-Type exactly
// application/json or application/x-protobuf, so mesos-go's httpcli
// accepts them.
//
// Mount the handler at exactly /api/v1; it does not look at the path.
package operator
