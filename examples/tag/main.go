package main

import (
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/game"
)

const MsgMove game.MsgType = 0x1000

type Move struct {
	_msgpack struct{} `msgpack:",as_array"`
	X, Y     float32
}

type Tag struct {
	game.Base
	pos map[game.Player][2]float32
}

func (t *Tag) OnCreate(r game.Room, _ game.Options) error {
	t.pos = map[game.Player][2]float32{}
	game.On(r, MsgMove, func(r game.Room, p game.Player, m Move) error {
		t.pos[p] = [2]float32{m.X, m.Y}
		return nil
	})
	return nil
}

func (t *Tag) OnTick(r game.Room, _ time.Duration) {
	state := map[string][2]float32{}
	for p, xy := range t.pos {
		state[p.ID()] = xy
	}
	_ = r.BroadcastState(state)
}

func (t *Tag) OnLeave(r game.Room, p game.Player, _ game.LeaveReason) { delete(t.pos, p) }

func main() {
	gameserver.Define("tag", func() game.Handler { return &Tag{} }, game.RoomConfig{TickRate: 20, MaxPlayers: 8})
	gameserver.Main()
}
