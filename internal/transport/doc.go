// Package transport moves WebSocket messages (and the HTTP fallback's)
// between the network and the session layer. It knows nothing about the game protocol: it accepts
// upgrades, watches every upgraded descriptor with an epoll loop (Linux),
// reads whole frames on a small pool of workers, and writes through a
// bounded, coalescing queue per connection.
//
// Upgrades come in two ways. A Front (Server.Listen) sits between a
// listener and an http.Server: it accepts sockets itself (accept4 on the
// listener's descriptor), watches them from the start, has the workers
// read each request head, upgrades WebSocket requests with gobwas/ws
// straight from that buffer, and passes every other connection to the
// http.Server as a net.Conn with the bytes it read put back in front. An
// upgrade through it makes no net.Conn, no goroutine and no net/http
// garbage (no bufio reader and writer, request, header map or context;
// its buffers are pooled). Server is also an
// http.Handler, for upgrades through net/http (embedding, tests, and what
// a Front passes on); both paths apply the same limits and end the same
// way.
//
// The HTTP fallback lives on the same loop. An SSEConn's stream leaves
// net/http right after its request (SSEConn.Serve hijacks it) and its
// socket is a Conn whose queue carries events instead of WebSocket frames.
// A Front answers the fallback's POSTs itself (QuickRoute) and keeps
// their connection for the next request; and HandBack, around the
// http.Server's handler, gives every kept-alive connection net/http
// served back to the Front after its response. No HTTP connection waits
// for its next request in a goroutine.
//
// An idle connection costs no goroutine: between messages it is only its
// socket descriptor, an entry in the epoll set and a *Conn in the
// descriptor table; so is a connection whose request head is still
// arriving at a Front, or that awaits its next request. A connection upgraded through net/http is taken out
// of its hijacked net.Conn right after the upgrade (a duplicate descriptor
// is kept and the net.Conn closed), so no net.Conn or runtime poll
// descriptor stays behind. When a
// descriptor becomes readable, the poller hands the connection to a worker,
// which reads until the socket is drained, parses frames in place (RFC 6455:
// masking, fragmentation, control frames between fragments, the close
// handshake) and calls Handler.OnMessage once per complete binary message.
// All Handler callbacks for one connection run one at a time.
//
// Outbound frames are reference-counted (see Frame) so one encoding is
// shared by every recipient. Conn.Send only queues; Conn.Flush writes every
// queued frame with one writev. A socket that cannot take more data keeps
// its queue and is finished by the poller when it becomes writable again; a
// queue that grows past Config.MaxOutboundBytes, or a write that makes no
// progress for Config.WriteTimeout, closes the connection with
// CloseSlowConsumer. No caller ever blocks on a slow peer.
package transport
