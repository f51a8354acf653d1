// Package execmod holds no code: it documents the repository and its tests
// keep the dependency rules of the layout true.
//
//	bin/modhost        a Mesos-agent-compatible host for modules (./host)
//	sdk, sdk/sdktest   how a module is written and tested
//	internal/wire      the only package that knows go-plugin and the protocol
//	proto/module/v1    the plugin protocol
//	examples/...       modules that teach
//
// See README.md.
package execmod
