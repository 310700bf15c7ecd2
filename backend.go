package gameserver

import (
	"context"
	"net/http"

	"github.com/gameserver/gameserver/internal/room"
)

// The backend integration: the REST API under /api/v1, signed webhooks,
// and the operator's monitor page.

// initBackend prepares the backend integration from the configuration; it
// runs in New before the room engine exists.
func (s *Server) initBackend() error { return nil }

// observer returns what hears the room engine's events (webhooks, the
// monitor), or nil.
func (s *Server) observer() room.Observer { return nil }

// mountBackend adds the backend endpoints to the server's mux.
func (s *Server) mountBackend(mux *http.ServeMux) {}

// backendDraining announces that the node is draining.
func (s *Server) backendDraining() {}

// stopBackend flushes what the backend still has to deliver, until ctx ends.
func (s *Server) stopBackend(ctx context.Context) {}
