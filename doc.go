// Package gameserver is a realtime server for browser multiplayer games.
//
// New builds a Server from a Config whose zero value runs one node on
// ":8080" with no external dependencies; ListenAndServe serves the
// WebSocket endpoint (/ws), the demo page (/), health (/healthz, /readyz)
// and Prometheus metrics (/metrics) until Shutdown.
//
// The package is the composition root: it wires the transport (WebSocket
// on epoll), the session layer (handshake, heartbeats, limits) and the
// metrics together. docs/architecture.md shows the layers.
package gameserver
