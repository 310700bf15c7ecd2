package gameserver

import (
	"sync"

	"github.com/gameserver/gameserver/game"
)

// Define registers a room type for every Server this process builds with
// New (and so for Main). Call it from main or an init function, before
// New. It panics on an invalid or duplicate definition, the way
// http.HandleFunc does, since that is a programming error.
func Define(kind string, factory game.HandlerFunc, cfg game.RoomConfig) {
	defaultTypes.add(kind, factory, cfg)
}

type definition struct {
	kind    string
	factory game.HandlerFunc
	cfg     game.RoomConfig
}

type registry struct {
	mu   sync.Mutex
	defs []definition
}

var defaultTypes registry

func (r *registry) add(kind string, factory game.HandlerFunc, cfg game.RoomConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.defs {
		if d.kind == kind {
			panic("gameserver: room type " + kind + " defined twice")
		}
	}
	if kind == "" || factory == nil {
		panic("gameserver: Define needs a name and a factory")
	}
	r.defs = append(r.defs, definition{kind, factory, cfg})
}

func (r *registry) list() []definition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]definition(nil), r.defs...)
}
