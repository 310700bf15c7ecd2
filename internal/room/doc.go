// Package room is the room engine: the registry of room types, matchmaking
// (create, join by id, join-or-create with option filters, listing, seat
// reservations), and the loop that runs each room's game.Handler on a
// goroutine of its own.
//
// The engine talks to players through the Member interface (a session);
// it never sees connections or transports. Broadcasts are encoded once
// into a reference-counted frame that every recipient's queue shares, and
// each loop wake-up ends with one flush per player it wrote to.
package room
