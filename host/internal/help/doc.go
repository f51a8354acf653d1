// Package help renders and serves Mesos's /help pages exactly as libprocess
// does (3rdparty/libprocess/src/help.cpp and include/process/help.hpp), so
// that tools written against a Mesos agent's /help — including
// support/generate-endpoint-help.py, which reads /help?format=json — work
// unchanged against modhost.
//
// Format builds one route's help text, the libprocess
// HELP(TLDR(..), DESCRIPTION(..), AUTHENTICATION(..)) string. Handler serves
//
//	GET /help                   index of process ids (markdown, or HTML for browsers)
//	GET /help?format=json       every stored page, as {"processes":[...]}
//	GET /help/<id>              index of one process's routes
//	GET /help/<id>/<name...>    one route's stored page; <name> may contain slashes
//
// Bodies, status codes and content types are libprocess's, byte for byte,
// with two deliberate differences: a method other than GET is refused with
// 405 (libprocess answers any method), and browsers get a self-contained
// HTML page with the markdown in a <pre> instead of libprocess's page that
// renders it with an inlined marked.js.
package help
