// Package api is the HTTP face a game's backend and its operators use: the
// REST API under /api/v1 and the live monitor page at /monitor.
//
// Both are served from a [Backend], the interface the root package
// implements over the node's room engine; a cluster-wide implementation
// can replace the local one without touching the handlers. Every request
// but the monitor's static page needs one of the configured API keys, as a
// Bearer token or as the password of HTTP Basic auth; keys are compared in
// constant time.
//
// Requests and answers are JSON. Every error answer has the form
// {"code": <HTTP status>, "error": "<message>"}, plus "gameCode" when a
// room's own code refused the request. Game message bodies and room
// options given as JSON are encoded to msgpack here, with the smallest
// integer encodings and sorted map keys, as clients encode them; docs/
// openapi.json describes every route.
package api
