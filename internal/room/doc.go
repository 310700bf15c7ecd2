// Package room is the room engine: the registry of room types, matchmaking
// (create, join by id, join-or-create with option filters, listing, seat
// reservations), and the shards that run the rooms' game.Handlers: about
// one goroutine per core, each giving its rooms turns (shard.go).
//
// The engine talks to players through the Member interface (a session);
// it never sees connections or transports. Broadcasts are encoded once
// into a reference-counted frame that every recipient's queue shares, and
// each turn ends with one flush per player it wrote to.
package room
