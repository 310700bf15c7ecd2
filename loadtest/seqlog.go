package main

// Kinds of sequenced messages a bot sends (docs/protocol.md, "Sequence
// numbers and resume": every client message after WELCOME but PING and
// PONG counts).
const (
	sentInput uint8 = iota + 1 // an arena input; arg is the input seq of the run's first
	sentJoin                   // arg is the JOIN's reqID
	sentLeave                  // arg is the LEAVE's reqID
	sentChat                   // a chat message
)

// sentRuns is how many runs of messages a bot's log holds. A run is a
// stretch of inputs with consecutive input seqs, of chat messages, or one
// JOIN or LEAVE, so a few runs cover everything a bot sends between two
// acknowledgements.
const sentRuns = 8

// sentRun is a stretch of sequenced messages of one kind.
type sentRun struct {
	n    uint32 // messages in the run
	arg  uint32
	kind uint8
}

// sentLog remembers the sequenced messages a bot sent on its session and
// the server has not acknowledged, without keeping their bytes: each can
// be built again from its kind and argument. After a resume the bot sends
// again those after RESUMED's clientSeq.
type sentLog struct {
	seq  uint64 // sequenced messages sent on the session
	base uint64 // client sequence number of the first message of runs[0]
	runs [sentRuns]sentRun
	n    int
	// gap is the last sequence number forgotten before it was
	// acknowledged (the log was full); a resume that needs it cannot
	// re-send everything.
	gap uint64
}

// reset starts the log of a new session.
func (l *sentLog) reset() { *l = sentLog{} }

// add notes one more message sent.
func (l *sentLog) add(kind uint8, arg uint32) {
	l.seq++
	if l.n > 0 {
		r := &l.runs[l.n-1]
		if r.kind == kind && (kind == sentChat || (kind == sentInput && r.arg+r.n == arg)) {
			r.n++
			return
		}
	}
	if l.n == 0 {
		l.base = l.seq
	}
	if l.n == sentRuns {
		l.gap = l.base + uint64(l.runs[0].n) - 1
		l.base += uint64(l.runs[0].n)
		copy(l.runs[:], l.runs[1:])
		l.n--
	}
	l.runs[l.n] = sentRun{n: 1, arg: arg, kind: kind}
	l.n++
}

// ack forgets the messages up to sequence number seq.
func (l *sentLog) ack(seq uint64) {
	for l.n > 0 && seq >= l.base {
		r := &l.runs[0]
		done := seq - l.base + 1
		if done < uint64(r.n) {
			k := uint32(done)
			r.n -= k
			if r.kind == sentInput {
				r.arg += k
			}
			l.base += done
			return
		}
		l.base += uint64(r.n)
		copy(l.runs[:], l.runs[1:l.n])
		l.n--
	}
}

// unacked calls f for each message after sequence number seq, in order,
// with its kind and argument. It reports false when some of them were
// forgotten.
func (l *sentLog) unacked(seq uint64, f func(kind uint8, arg uint32)) bool {
	complete := seq >= l.gap
	next := l.base
	for i := 0; i < l.n; i++ {
		r := l.runs[i]
		for k := uint32(0); k < r.n; k++ {
			if next > seq {
				arg := r.arg
				if r.kind == sentInput {
					arg += k
				}
				f(r.kind, arg)
			}
			next++
		}
	}
	return complete
}
