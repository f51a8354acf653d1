// Package pythonecho holds no Go code: the module in this directory is
// module.py, an execmod module written in Python against the protocol
// (proto/module/v1) rather than the Go SDK. echo_test.go runs it under the
// real bin/modhost; see README.md.
package pythonecho
