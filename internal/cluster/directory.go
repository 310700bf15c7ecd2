package cluster

import (
	"context"
	"errors"
	"time"
)

// NodeInfo is a node as the registry knows it.
type NodeInfo struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"` // advertised host:port other nodes dial
	Players  int       `json:"players"`
	Rooms    int       `json:"rooms"`
	Draining bool      `json:"draining"`
	Updated  time.Time `json:"updated"`
}

// RoomEntry is a room as the directory publishes it for matchmaking and
// listings across the cluster. The owner node is the authority; entries
// are refreshed by it every heartbeat.
type RoomEntry struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Node       string `json:"node"`
	Players    int    `json:"players"`
	MaxPlayers int    `json:"maxPlayers"`
	Locked     bool   `json:"locked"`
	Private    bool   `json:"private"`
	// Filters holds the values of the room type's FilterBy options, as
	// msgpack (a map), so join-or-create can match across nodes.
	Filters []byte `json:"filters,omitempty"`
	// Metadata is the room's listing metadata, as msgpack (a map).
	Metadata []byte `json:"metadata,omitempty"`
}

// Lease is a node's ownership of a room. Epoch grows with every
// acquisition of the room, so an owner that lost its lease can tell.
type Lease struct {
	RoomID string
	Node   string
	Epoch  uint64
}

// ErrNotOwner is returned when a lease is held by another node.
var ErrNotOwner = errors.New("cluster: room owned by another node")

// ErrUnavailable wraps every failure to reach the directory's store.
var ErrUnavailable = errors.New("cluster: directory unavailable")

// Directory is the shared state of a cluster: which nodes are alive,
// which node owns each room (under a lease), the rooms' listing entries,
// where each session lives, and room snapshots.
//
// Every method may fail with an error wrapping ErrUnavailable when the
// store cannot be reached; callers retry with backoff.
type Directory interface {
	// Register upserts the node's entry, alive for ttl.
	Register(ctx context.Context, n NodeInfo, ttl time.Duration) error
	// Deregister removes the node's entry and its room listing at once.
	Deregister(ctx context.Context, nodeID string) error
	// Nodes lists the live nodes.
	Nodes(ctx context.Context) ([]NodeInfo, error)

	// Acquire takes the lease of a room for node if nobody holds it (or
	// node already does), for ttl. It returns ErrNotOwner when another
	// node holds it. Atomic: two nodes racing for one room never both win.
	Acquire(ctx context.Context, roomID, node string, ttl time.Duration) (Lease, error)
	// Renew extends the given leases by ttl, in one round trip; it returns
	// the ones that are no longer held (expired and possibly taken).
	Renew(ctx context.Context, leases []Lease, ttl time.Duration) (lost []Lease, err error)
	// Release gives a lease up if it is still held.
	Release(ctx context.Context, l Lease) error
	// Owner returns the node that holds a room's lease, or "" if none.
	Owner(ctx context.Context, roomID string) (string, error)

	// Publish replaces node's room listing (alive for ttl).
	Publish(ctx context.Context, node string, rooms []RoomEntry, ttl time.Duration) error
	// Rooms lists the published rooms of every live node, of one kind or
	// of all when kind is "".
	Rooms(ctx context.Context, kind string) ([]RoomEntry, error)

	// SetSession records that a session lives on node; DropSession forgets
	// it (only if it is still recorded for that node).
	SetSession(ctx context.Context, sessionID, node string) error
	DropSession(ctx context.Context, sessionID, node string) error
	// SessionNode returns the node of a session, or "" if unknown or if
	// that node is no longer alive.
	SessionNode(ctx context.Context, sessionID string) (string, error)

	// SaveSnapshot stores a room's snapshot for ttl; LoadSnapshot returns
	// it, or nil when there is none.
	SaveSnapshot(ctx context.Context, roomID string, data []byte, ttl time.Duration) error
	LoadSnapshot(ctx context.Context, roomID string) ([]byte, error)
	DeleteSnapshot(ctx context.Context, roomID string) error

	// Commands returns the number of store commands sent so far (for
	// metrics and the cost figures).
	Commands() uint64
	// Close releases the store connection.
	Close() error
}
