// Package examples holds no code of its own: each folder below it is a
// module that teaches one idea (hello, counter, clock, agentinfo,
// python-echo), with its README, its modules.json and its test.
// host_test.go runs each Go example under the real bin/modhost, started
// as its README says, from its own modules.json.
package examples
