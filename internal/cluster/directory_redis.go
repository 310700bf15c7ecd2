package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis is a Directory kept in one Redis server (standalone, 5.0 or newer).
//
// Keys, all under the prefix (default "gs:"):
//
//	nodes           set of the registered node ids
//	node:<id>       the node's NodeInfo as JSON, expiring after its TTL
//	lease:<room>    "<node>:<epoch>", expiring after the lease's TTL
//	epoch           counter the lease epochs are drawn from (INCR)
//	rooms:<node>    hash room id -> RoomEntry as JSON, expiring with the TTL
//	sessions        hash session id -> node
//	snap:<room>     a room snapshot, expiring after its TTL
//
// A node is alive while its node:<id> key exists; the set only lists the
// candidates, and Nodes removes the members whose key expired.
//
// Lease changes run as Lua scripts (EVALSHA, falling back to EVAL when the
// server does not have the script yet, as after a restart), so every
// check-and-set is atomic on the server.
//
// Cost per call, in commands sent to Redis as counted by Commands (measured
// by the tests, steady state, scripts already loaded on the server):
//
//	Register        2  (SET PX + SADD, one pipeline, one round trip)
//	Deregister      4  (MULTI, DEL node:<id> rooms:<id>, SREM, EXEC)
//	Nodes           2  (SMEMBERS, MGET; +1 EVALSHA when members expired)
//	Acquire         1  (EVALSHA)
//	Renew           1  (EVALSHA, whatever the number of leases; 0 for none)
//	Release         1  (EVALSHA)
//	Owner           1  (GET)
//	Publish         5  when the listing changed (MULTI, DEL, HSET, PEXPIRE, EXEC)
//	                1  when it did not (PEXPIRE; +5 if the hash had vanished)
//	                1  for an empty listing (DEL)
//	Rooms           1 + 2 per registered node (SMEMBERS, then one pipeline
//	                of EXISTS node:<id> + HVALS rooms:<id>)
//	SetSession      1  (HSET)
//	DropSession     1  (EVALSHA)
//	SessionNode     2  (HGET, EXISTS node:<id>)
//	Snapshots       1  (SET PX, GET or DEL)
//
// A script unknown to the server costs one more command (the NOSCRIPT
// EVALSHA before the EVAL) the first time it runs on that server. Opening
// a connection sends its handshake (HELLO, and SELECT for a database other
// than 0), which Commands counts too.
//
// The listing of a node must be written only by that node's directory: an
// unchanged listing is kept alive with a bare PEXPIRE.
type Redis struct {
	rdb    *redis.Client
	addr   string
	prefix string
	cmds   atomic.Uint64

	kNodes, kEpoch, kSessions string

	pubMu sync.Mutex
	pub   map[string]*published // by node id
}

// published is what Publish last wrote for a node.
type published struct {
	mu   sync.Mutex
	last []byte // the encoded listing, nil when unknown
}

// RedisOption configures NewRedis.
type RedisOption func(*redisConfig)

type redisConfig struct {
	prefix                 string
	dialTimeout, rwTimeout time.Duration
	poolSize               int
}

// DefaultRedisPrefix is the key prefix NewRedis uses unless told otherwise.
const DefaultRedisPrefix = "gs:"

// WithKeyPrefix puts every key under prefix, so several clusters (or
// tests) can share one Redis server.
func WithKeyPrefix(prefix string) RedisOption {
	return func(c *redisConfig) { c.prefix = prefix }
}

// WithTimeouts sets the dial timeout and the read/write timeout of every
// command (defaults: 1 s each). A directory call that cannot reach Redis
// fails within about twice the larger one.
func WithTimeouts(dial, readWrite time.Duration) RedisOption {
	return func(c *redisConfig) {
		if dial > 0 {
			c.dialTimeout = dial
		}
		if readWrite > 0 {
			c.rwTimeout = readWrite
		}
	}
}

// WithPoolSize sets the maximum number of connections to Redis (default:
// go-redis's, 10 per CPU).
func WithPoolSize(n int) RedisOption {
	return func(c *redisConfig) { c.poolSize = n }
}

// NewRedis returns a directory on the Redis server at rawURL, of the form
// redis://[[user]:password@]host[:port][/db] (port 6379 and database 0 by
// default; as with redis-cli, redis://secret@host means the password
// "secret"). It does not connect: the first call does, and every call
// fails with an error wrapping ErrUnavailable while the server cannot be
// reached.
func NewRedis(rawURL string, opts ...RedisOption) (*Redis, error) {
	cfg := redisConfig{
		prefix:      DefaultRedisPrefix,
		dialTimeout: time.Second,
		rwTimeout:   time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ro, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	ro.DialTimeout = cfg.dialTimeout
	ro.DialerRetries = 1
	ro.ReadTimeout = cfg.rwTimeout
	ro.WriteTimeout = cfg.rwTimeout
	ro.PoolTimeout = cfg.rwTimeout + cfg.dialTimeout
	ro.ContextTimeoutEnabled = true
	ro.PoolSize = cfg.poolSize
	// One retry, on a fresh connection, hides a connection the server
	// closed (as it does when it restarts). Every directory write is
	// idempotent, so a retried command that had already run is harmless.
	ro.MaxRetries = 1
	ro.MinRetryBackoff = 5 * time.Millisecond
	ro.MaxRetryBackoff = 50 * time.Millisecond
	ro.Protocol = 2
	ro.DisableIdentity = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	r := &Redis{
		addr:      ro.Addr,
		prefix:    cfg.prefix,
		kNodes:    cfg.prefix + "nodes",
		kEpoch:    cfg.prefix + "epoch",
		kSessions: cfg.prefix + "sessions",
		pub:       make(map[string]*published),
	}
	r.rdb = redis.NewClient(ro)
	r.rdb.AddHook(countHook{&r.cmds})
	return r, nil
}

// parseRedisURL checks a redis:// URL strictly and turns it into options.
func parseRedisURL(raw string) (*redis.Options, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("cluster: redis url %q: %s", redactURL(raw), fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("cluster: redis url is empty (want redis://host:port/db)")
	}
	if !strings.Contains(raw, "://") {
		return nil, bad("not a URL (want redis://host:port/db)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, bad("%v (want redis://host:port/db)", err)
	}
	if u.Scheme != "redis" {
		return nil, bad("unsupported scheme %q (want redis://host:port/db)", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, bad("query and fragment are not supported")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, bad("no host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return nil, bad("empty port")
	}
	if port == "" {
		port = "6379"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, bad("invalid port %q", port)
	}
	db := 0
	if path := strings.TrimPrefix(u.Path, "/"); path != "" {
		n, err := strconv.Atoi(path)
		if err != nil || n < 0 {
			return nil, bad("invalid database %q (want a number)", path)
		}
		db = n
	}
	o := &redis.Options{Network: "tcp", Addr: net.JoinHostPort(host, port), DB: db}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
		if _, ok := u.User.Password(); !ok {
			// redis://secret@host: a lone user part is the password, as
			// with redis-cli and requirepass.
			o.Username, o.Password = "", u.User.Username()
		}
	}
	return o, nil
}

// redactURL hides the user and password part of a URL, for messages.
func redactURL(raw string) string {
	head, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		head, rest = raw[:i+3], raw[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		return head + "xxxxx@" + rest[at+1:]
	}
	return raw
}

// countHook counts every command sent, one per command of a pipeline or
// transaction (MULTI and EXEC included).
type countHook struct{ n *atomic.Uint64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(uint64(len(cmds)))
		return next(ctx, cmds)
	}
}

// Commands returns the number of commands sent to Redis so far.
func (r *Redis) Commands() uint64 { return r.cmds.Load() }

// Close closes the connections to Redis.
func (r *Redis) Close() error { return r.rdb.Close() }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	return r.fail("ping", r.rdb.Ping(ctx).Err())
}

func (r *Redis) nodeKey(id string) string  { return r.prefix + "node:" + id }
func (r *Redis) leaseKey(id string) string { return r.prefix + "lease:" + id }
func (r *Redis) roomsKey(id string) string { return r.prefix + "rooms:" + id }
func (r *Redis) snapKey(id string) string  { return r.prefix + "snap:" + id }

// fail wraps an error of operation op: replies in which Redis refuses a
// command as such are returned as they are; everything else (no
// connection, timeouts, a server loading or read-only) wraps
// ErrUnavailable as well.
func (r *Redis) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var re redis.Error
	if errors.As(err, &re) && !unavailableReply(re.Error()) {
		return fmt.Errorf("cluster: redis %s: %w", op, err)
	}
	return fmt.Errorf("%w: redis %s at %s: %w", ErrUnavailable, op, r.addr, err)
}

// unavailableReply tells the error replies of a server that cannot serve
// right now from the ones about the command.
func unavailableReply(msg string) bool {
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "MISCONF", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// ttlMillis checks a TTL and returns it in milliseconds, rounded up: an
// entry never expires before the ttl its writer asked for.
func ttlMillis(op string, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("cluster: redis %s: ttl must be positive, got %v", op, ttl)
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}

// Register upserts the node's entry, alive for ttl.
func (r *Redis) Register(ctx context.Context, n NodeInfo, ttl time.Duration) error {
	ms, err := ttlMillis("register", ttl)
	if err != nil {
		return err
	}
	if n.ID == "" {
		return errors.New("cluster: redis register: empty node id")
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("cluster: redis register: %w", err)
	}
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.nodeKey(n.ID), b, time.Duration(ms)*time.Millisecond)
		p.SAdd(ctx, r.kNodes, n.ID)
		return nil
	})
	return r.fail("register", err)
}

// Deregister removes the node's entry and its room listing in one
// transaction.
func (r *Redis) Deregister(ctx context.Context, nodeID string) error {
	st := r.publishState(nodeID)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.last = nil
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.nodeKey(nodeID), r.roomsKey(nodeID))
		p.SRem(ctx, r.kNodes, nodeID)
		return nil
	})
	return r.fail("deregister", err)
}

// pruneScript removes from the node set (KEYS[1]) the ids in ARGV whose
// node key (KEYS[i+1]) does not exist, checking each at the moment of
// removal so a node that registered again in between stays.
var pruneScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV do
	if redis.call('EXISTS', KEYS[i+1]) == 0 then
		n = n + redis.call('SREM', KEYS[1], ARGV[i])
	end
end
return n
`)

// Nodes lists the live nodes, ordered by id, and forgets the ones whose
// entry expired.
func (r *Redis) Nodes(ctx context.Context) ([]NodeInfo, error) {
	ids, err := r.rdb.SMembers(ctx, r.kNodes).Result()
	if err != nil {
		return nil, r.fail("nodes", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.nodeKey(id)
	}
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, r.fail("nodes", err)
	}
	nodes := make([]NodeInfo, 0, len(ids))
	var gone []string
	var goneKeys []string
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			gone = append(gone, ids[i])
			goneKeys = append(goneKeys, keys[i])
			continue
		}
		var n NodeInfo
		if json.Unmarshal([]byte(s), &n) != nil {
			continue // not written by a directory: not a node
		}
		n.ID = ids[i]
		nodes = append(nodes, n)
	}
	if len(gone) > 0 {
		args := make([]any, len(gone))
		for i, id := range gone {
			args[i] = id
		}
		if err := pruneScript.Run(ctx, r.rdb, append([]string{r.kNodes}, goneKeys...), args...).Err(); err != nil {
			return nil, r.fail("nodes", err)
		}
	}
	return nodes, nil
}

// acquireScript takes the lease KEYS[1] for node ARGV[1] for ARGV[2] ms
// if it is free or already the node's, drawing a new epoch from KEYS[2]
// when it was free. It returns {1, epoch} when the node holds the lease
// and {0, holder} when another node does.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
	local at = string.find(v, ':[^:]*$')
	local holder = string.sub(v, 1, at - 1)
	if holder ~= ARGV[1] then
		return {0, holder}
	end
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return {1, string.sub(v, at + 1)}
end
local e = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. e, 'PX', ARGV[2])
return {1, e}
`)

// Acquire takes the lease of a room for node, for ttl, if it is free or
// node holds it already (then it keeps its epoch and gets the new ttl).
func (r *Redis) Acquire(ctx context.Context, roomID, node string, ttl time.Duration) (Lease, error) {
	ms, err := ttlMillis("acquire", ttl)
	if err != nil {
		return Lease{}, err
	}
	if node == "" {
		return Lease{}, errors.New("cluster: redis acquire: empty node id")
	}
	res, err := acquireScript.Run(ctx, r.rdb, []string{r.leaseKey(roomID), r.kEpoch}, node, ms).Slice()
	if err != nil {
		return Lease{}, r.fail("acquire", err)
	}
	if len(res) != 2 {
		return Lease{}, fmt.Errorf("cluster: redis acquire: unexpected reply %v", res)
	}
	ok, _ := res[0].(int64)
	val, _ := res[1].(string)
	if ok != 1 {
		return Lease{}, fmt.Errorf("%w: room %s is held by %s", ErrNotOwner, roomID, val)
	}
	epoch, err := strconv.ParseUint(val, 10, 64)
	if err != nil {
		return Lease{}, fmt.Errorf("cluster: redis acquire: bad epoch %q", val)
	}
	return Lease{RoomID: roomID, Node: node, Epoch: epoch}, nil
}

// leaseValue is what a lease key holds while l is current.
func leaseValue(l Lease) string { return l.Node + ":" + strconv.FormatUint(l.Epoch, 10) }

// renewScript extends, by ARGV[1] ms, each lease KEYS[i] that still holds
// exactly ARGV[i+1], and returns the (1-based) indexes of the others.
var renewScript = redis.NewScript(`
local lost = {}
for i = 1, #KEYS do
	if redis.call('GET', KEYS[i]) == ARGV[i+1] then
		redis.call('PEXPIRE', KEYS[i], ARGV[1])
	else
		lost[#lost+1] = i
	end
end
return lost
`)

// Renew extends the leases that are still held, in one script call, and
// returns the others, in the order given.
func (r *Redis) Renew(ctx context.Context, leases []Lease, ttl time.Duration) ([]Lease, error) {
	ms, err := ttlMillis("renew", ttl)
	if err != nil {
		return nil, err
	}
	if len(leases) == 0 {
		return nil, nil
	}
	keys := make([]string, len(leases))
	args := make([]any, 1+len(leases))
	args[0] = ms
	for i, l := range leases {
		keys[i] = r.leaseKey(l.RoomID)
		args[i+1] = leaseValue(l)
	}
	idx, err := renewScript.Run(ctx, r.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, r.fail("renew", err)
	}
	var lost []Lease
	for _, i := range idx {
		if i < 1 || int(i) > len(leases) {
			return nil, fmt.Errorf("cluster: redis renew: unexpected index %d", i)
		}
		lost = append(lost, leases[i-1])
	}
	return lost, nil
}

// releaseScript deletes KEYS[1] if it holds exactly ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Release gives a lease up if it is still held; a lease that expired or
// moved is left alone.
func (r *Redis) Release(ctx context.Context, l Lease) error {
	err := releaseScript.Run(ctx, r.rdb, []string{r.leaseKey(l.RoomID)}, leaseValue(l)).Err()
	return r.fail("release", err)
}

// Owner returns the node holding a room's lease, or "".
func (r *Redis) Owner(ctx context.Context, roomID string) (string, error) {
	v, err := r.rdb.Get(ctx, r.leaseKey(roomID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", r.fail("owner", err)
	}
	at := strings.LastIndexByte(v, ':')
	if at < 0 {
		return "", fmt.Errorf("cluster: redis owner: malformed lease %q", v)
	}
	return v[:at], nil
}

func (r *Redis) publishState(node string) *published {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	st := r.pub[node]
	if st == nil {
		st = &published{}
		r.pub[node] = st
	}
	return st
}

// Publish replaces node's room listing, alive for ttl. A listing equal to
// the one this directory last published for the node is only given the
// new ttl (one PEXPIRE); a changed one is rewritten in one transaction
// (DEL, HSET, PEXPIRE), so readers see the old listing or the new one.
func (r *Redis) Publish(ctx context.Context, node string, rooms []RoomEntry, ttl time.Duration) error {
	ms, err := ttlMillis("publish", ttl)
	if err != nil {
		return err
	}
	key := r.roomsKey(node)
	st := r.publishState(node)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(rooms) == 0 {
		st.last = nil
		return r.fail("publish", r.rdb.Del(ctx, key).Err())
	}
	sorted := slices.Clone(rooms)
	slices.SortFunc(sorted, func(a, b RoomEntry) int { return strings.Compare(a.ID, b.ID) })
	fields := make([]any, 0, 2*len(sorted))
	var enc bytes.Buffer
	for _, e := range sorted {
		e.Node = node
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("cluster: redis publish: room %s: %w", e.ID, err)
		}
		fields = append(fields, e.ID, b)
		enc.WriteString(strconv.Itoa(len(b)))
		enc.WriteByte(':')
		enc.Write(b)
	}
	if last := st.last; bytes.Equal(last, enc.Bytes()) {
		st.last = nil
		ok, err := r.rdb.PExpire(ctx, key, time.Duration(ms)*time.Millisecond).Result()
		if err != nil {
			return r.fail("publish", err)
		}
		if ok {
			st.last = last
			return nil
		}
		// The hash is gone (expired, deregistered, or the server lost
		// it): write it again.
	}
	st.last = nil
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, fields...)
		p.PExpire(ctx, key, time.Duration(ms)*time.Millisecond)
		return nil
	})
	if err != nil {
		return r.fail("publish", err)
	}
	st.last = enc.Bytes()
	return nil
}

// Rooms lists the published rooms of every live node, of one kind or of
// all when kind is "", ordered by node and room id.
func (r *Redis) Rooms(ctx context.Context, kind string) ([]RoomEntry, error) {
	ids, err := r.rdb.SMembers(ctx, r.kNodes).Result()
	if err != nil {
		return nil, r.fail("rooms", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	alive := make([]*redis.IntCmd, len(ids))
	lists := make([]*redis.StringSliceCmd, len(ids))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			alive[i] = p.Exists(ctx, r.nodeKey(id))
			lists[i] = p.HVals(ctx, r.roomsKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, r.fail("rooms", err)
	}
	var out []RoomEntry
	for i, id := range ids {
		if alive[i].Val() == 0 {
			continue
		}
		start := len(out)
		for _, v := range lists[i].Val() {
			var e RoomEntry
			if json.Unmarshal([]byte(v), &e) != nil {
				continue
			}
			if kind != "" && e.Kind != kind {
				continue
			}
			e.Node = id
			out = append(out, e)
		}
		slices.SortFunc(out[start:], func(a, b RoomEntry) int { return strings.Compare(a.ID, b.ID) })
	}
	return out, nil
}

// SetSession records that a session lives on node.
func (r *Redis) SetSession(ctx context.Context, sessionID, node string) error {
	return r.fail("set session", r.rdb.HSet(ctx, r.kSessions, sessionID, node).Err())
}

// dropSessionScript deletes field ARGV[1] of KEYS[1] if it holds ARGV[2].
var dropSessionScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
	return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)

// DropSession forgets a session if it is still recorded for node.
func (r *Redis) DropSession(ctx context.Context, sessionID, node string) error {
	err := dropSessionScript.Run(ctx, r.rdb, []string{r.kSessions}, sessionID, node).Err()
	return r.fail("drop session", err)
}

// SessionNode returns the node of a session, or "" if it is unknown or its
// node is no longer alive.
func (r *Redis) SessionNode(ctx context.Context, sessionID string) (string, error) {
	node, err := r.rdb.HGet(ctx, r.kSessions, sessionID).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", r.fail("session node", err)
	}
	n, err := r.rdb.Exists(ctx, r.nodeKey(node)).Result()
	if err != nil {
		return "", r.fail("session node", err)
	}
	if n == 0 {
		return "", nil
	}
	return node, nil
}

// SaveSnapshot stores a room's snapshot for ttl.
func (r *Redis) SaveSnapshot(ctx context.Context, roomID string, data []byte, ttl time.Duration) error {
	ms, err := ttlMillis("save snapshot", ttl)
	if err != nil {
		return err
	}
	err = r.rdb.Set(ctx, r.snapKey(roomID), data, time.Duration(ms)*time.Millisecond).Err()
	return r.fail("save snapshot", err)
}

// LoadSnapshot returns a room's snapshot, or nil when there is none.
func (r *Redis) LoadSnapshot(ctx context.Context, roomID string) ([]byte, error) {
	b, err := r.rdb.Get(ctx, r.snapKey(roomID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, r.fail("load snapshot", err)
	}
	return b, nil
}

// DeleteSnapshot removes a room's snapshot.
func (r *Redis) DeleteSnapshot(ctx context.Context, roomID string) error {
	return r.fail("delete snapshot", r.rdb.Del(ctx, r.snapKey(roomID)).Err())
}

var _ Directory = (*Redis)(nil)
