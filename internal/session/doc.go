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
// time (the transport guarantees it); the heartbeat sweeper runs on its own
// goroutine and only touches atomic fields and the Conn.
package session
