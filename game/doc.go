// Package game is the API a game developer programs against: a room's
// logic is a Handler, and the server hands it a Room to act on.
//
// # The room loop
//
// Every room is run by its node's room loop, which owns the room's state.
// Every Handler method and every timer or Go continuation of one room runs
// on that loop, one call at a time, so game code needs no locks. A node has
// about one loop per core, each taking turns among its rooms, so calls
// must not block: a blocked callback holds up the other rooms of its loop.
// Use Room.Go for I/O.
//
// Order is guaranteed: OnCreate runs before anything else; a player's
// OnJoin comes before that player's first OnMessage; a player's messages
// arrive in the order they were sent, those that arrived between two ticks
// before the second OnTick; OnLeave is a player's last call; OnDispose is
// the room's last call of all, after its timers are stopped.
//
// After each turn (a batch of messages, a tick, a timer) the loop
// flushes everything Send and Broadcast queued, one write per player, so a
// tick that broadcasts state costs each player one system call.
//
// # Overload and failure
//
// Overload drops the player, never the room: a player over the message
// rate gets ErrRateLimited, one whose connection cannot keep up with what
// the room sends is disconnected. A panic in any callback is recovered:
// the room is disposed, its players receive ErrInternal and leave, the
// stack is logged with the room's id and kind, and every other room goes
// on.
package game
