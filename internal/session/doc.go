// Package session turns a transport connection into a player's session:
// the HELLO/WELCOME handshake, heartbeats in both directions with
// round-trip measurement, per-session rate limits and error replies. What a
// session does not handle itself (room operations and game messages) goes
// to a Router, which the room engine provides.
//
// A session speaks through a Conn, a small interface that the WebSocket
// transport satisfies and that other transports (the SSE fallback) can
// satisfy too; sessions know nothing about frames or sockets.
//
// Concurrency: Hub.Message for one session is called by one goroutine at a
// time per connection (the transport guarantees it) and serialized by the
// session's msgMu across connections: a resume takes it while it moves the
// session to its new connection, and messages still arriving from the old
// one are dropped (the client sends them again). The heartbeat sweeper
// runs on its own goroutine and only touches atomic fields and the Conn.
package session
